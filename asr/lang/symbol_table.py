"""OpenFst text symbol tables (``phones.txt``, ``words.txt``): ``symbol id`` per line, ``<eps>`` = 0.

A :class:`SymbolTable` maps symbols to non-negative integer ids and back. Reading is strict: a line
that does not have exactly two fields, an id that is not a non-negative integer, a symbol or an id
given twice, or ``<eps>`` with an id other than 0 is an :class:`~asr.errors.InputError` naming the
file and the 1-based line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import InputError

EPSILON = "<eps>"


class SymbolTable:
    """A bijection between symbols (strings without whitespace) and integer ids.

    A new table holds ``<eps>`` with id 0 unless ``with_epsilon=False``.
    """

    def __init__(self, symbols: Iterable[str] = (), *, with_epsilon: bool = True):
        self._id: dict[str, int] = {}
        self._sym: dict[int, str] = {}
        self._max_id = -1
        if with_epsilon:
            self.add(EPSILON, 0)
        for s in symbols:
            self.add(s)

    # ------------------------------------------------------------------ building
    def add(self, symbol: str, id: int | None = None) -> int:
        """Add ``symbol`` with ``id`` (default: one more than the largest id) and return its id.

        Adding a symbol that is already present with the same id (or with ``id=None``) returns the
        existing id. Raises ValueError for a symbol with whitespace, a negative id, or a clash.
        """
        if not symbol or any(c.isspace() for c in symbol):
            raise ValueError(f"symbol {symbol!r} is empty or contains whitespace")
        if symbol in self._id:
            if id is None or id == self._id[symbol]:
                return self._id[symbol]
            raise ValueError(f"symbol {symbol!r} already has id {self._id[symbol]}, not {id}")
        if id is None:
            id = self._max_id + 1
        if id < 0:
            raise ValueError(f"negative id {id} for symbol {symbol!r}")
        if id in self._sym:
            raise ValueError(f"id {id} already used by symbol {self._sym[id]!r}")
        self._id[symbol] = id
        self._sym[id] = symbol
        self._max_id = max(self._max_id, id)
        return id

    # ------------------------------------------------------------------ lookups
    def id(self, symbol: str) -> int:
        """Id of ``symbol``; KeyError naming it if absent."""
        try:
            return self._id[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} not in symbol table") from None

    def symbol(self, id: int) -> str:
        """Symbol with id ``id``; KeyError if absent."""
        try:
            return self._sym[int(id)]
        except KeyError:
            raise KeyError(f"id {id} not in symbol table") from None

    def get(self, symbol: str, default: int | None = None) -> int | None:
        """Id of ``symbol`` or ``default``."""
        return self._id.get(symbol, default)

    def ids(self, symbols: Iterable[str]) -> list[int]:
        """Ids of a sequence of symbols (KeyError on the first unknown one)."""
        return [self.id(s) for s in symbols]

    def symbols_of(self, ids: Iterable[int]) -> list[str]:
        """Symbols of a sequence of ids (KeyError on the first unknown one)."""
        return [self.symbol(i) for i in ids]

    def __getitem__(self, key: str | int) -> int | str:
        """``table["A"]`` -> id, ``table[3]`` -> symbol."""
        return self.symbol(key) if isinstance(key, int) else self.id(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._id
        if isinstance(key, int):
            return key in self._sym
        return False

    def __len__(self) -> int:
        return len(self._id)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        """``(symbol, id)`` pairs in increasing id order."""
        for i in sorted(self._sym):
            yield self._sym[i], i

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolTable) and self._id == other._id

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols, max id {self.max_id})"

    @property
    def symbols(self) -> list[str]:
        """All symbols in increasing id order."""
        return [s for s, _ in self]

    @property
    def max_id(self) -> int:
        """Largest id (-1 for an empty table)."""
        return self._max_id

    # ------------------------------------------------------------------ I/O
    @classmethod
    def read(cls, path: str | os.PathLike) -> SymbolTable:
        """Read an OpenFst text symbol table (``symbol id`` per line; blank lines are errors)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot read symbol table: {e.strerror}", path) from e
        except UnicodeDecodeError as e:
            raise InputError(f"symbol table is not valid UTF-8 ({e.reason})", path) from e
        table = cls(with_epsilon=False)
        first_line: dict[str, int] = {}
        id_line: dict[int, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if len(fields) != 2:
                raise InputError(f"expected 'symbol id', got {len(fields)} field(s): {line!r}", path, number)
            symbol, id_text = fields
            try:
                id = int(id_text)
            except ValueError:
                raise InputError(f"id {id_text!r} of symbol {symbol!r} is not an integer", path, number) from None
            if id < 0:
                raise InputError(f"negative id {id} for symbol {symbol!r}", path, number)
            if symbol in first_line:
                raise InputError(f"symbol {symbol!r} repeated (first on line {first_line[symbol]})", path, number)
            if id in id_line:
                raise InputError(
                    f"id {id} of {symbol!r} already used by {table.symbol(id)!r} on line {id_line[id]}", path, number
                )
            if symbol == EPSILON and id != 0:
                raise InputError(f"{EPSILON} must have id 0, not {id}", path, number)
            if id == 0 and symbol != EPSILON:
                raise InputError(f"id 0 is reserved for {EPSILON}, not {symbol!r}", path, number)
            first_line[symbol] = number
            id_line[id] = number
            table.add(symbol, id)
        return table

    def write(self, path: str | os.PathLike) -> None:
        """Write the table atomically as OpenFst text, in increasing id order."""
        with atomic_write(path) as f:
            for symbol, id in self:
                f.write(f"{symbol} {id}\n")
