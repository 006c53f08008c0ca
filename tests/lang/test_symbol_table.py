"""SymbolTable: OpenFst text round trip, lookups both ways, file:line errors."""

from __future__ import annotations

import pytest

from asr.errors import InputError
from asr.lang.symbol_table import SymbolTable


def test_round_trip_and_lookups(tmp_path):
    table = SymbolTable(["SIL", "SPN", "AA"])
    assert table.id("<eps>") == 0 and table.id("SIL") == 1 and table.id("AA") == 3
    assert table.symbol(2) == "SPN" and table[3] == "AA" and table["SPN"] == 2
    assert "AA" in table and 3 in table and "ZZ" not in table and 9 not in table
    assert table.add("#0", 10) == 10 and table.add("X") == 11  # gaps allowed, next id after the largest
    path = tmp_path / "phones.txt"
    table.write(path)
    assert path.read_text().splitlines() == ["<eps> 0", "SIL 1", "SPN 2", "AA 3", "#0 10", "X 11"]
    again = SymbolTable.read(path)
    assert again == table and again.symbols == table.symbols and again.max_id == 11
    assert again.ids(["AA", "X"]) == [3, 11] and again.symbols_of([0, 10]) == ["<eps>", "#0"]
    with pytest.raises(KeyError, match="ZZ"):
        again.id("ZZ")
    with pytest.raises(ValueError):
        table.add("SIL", 5)  # already has id 1
    with pytest.raises(ValueError):
        table.add("NEW", 1)  # id taken
    with pytest.raises(ValueError):
        table.add("A B")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("<eps> 0\nA 1\nB 2 3\n", 3, "expected 'symbol id'"),
        ("<eps> 0\nA 1\nA 2\n", 3, "repeated"),
        ("<eps> 0\nA 1\nB 1\n", 3, "already used"),
        ("<eps> 0\nA x\n", 2, "not an integer"),
        ("<eps> 0\nA -1\n", 2, "negative"),
        ("<eps> 3\n", 1, "must have id 0"),
        ("A 0\n", 1, "reserved"),
        ("<eps> 0\n\nA 1\n", 2, "expected 'symbol id'"),
    ],
)
def test_malformed_tables_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "words.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        SymbolTable.read(path)
    assert err.value.line == line and err.value.path == str(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        SymbolTable.read(tmp_path / "nope.txt")
