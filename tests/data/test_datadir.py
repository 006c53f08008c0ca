"""asr.data.datadir: reading and writing data directories round-trips, tables are read strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from datadir_helpers import make_data_dir, write_lines

from asr.data.datadir import DataDir, Segment, read_data_dir, read_table_lines, write_data_dir
from asr.errors import InputError


def test_round_trip_with_all_files(tmp_path: Path):
    data = DataDir(
        wav_scp={"rec1": "/a/rec1.wav", "rec2": "sox /a/rec2.flac -t wav - |"},
        text={"spk1-u2": "NO", "spk1-u1": "HELLO WORLD", "spk2-u1": "YES"},
        utt2spk={"spk1-u2": "spk1", "spk1-u1": "spk1", "spk2-u1": "spk2"},
        segments={
            "spk1-u1": Segment("rec1", 0.0, 1.25),
            "spk1-u2": Segment("rec1", 1.25, -1.0),
            "spk2-u1": Segment("rec2", 0.5, 2.0),
        },
        spk2gender={"spk1": "f", "spk2": "m"},
        utt2dur={"spk1-u1": 1.25, "spk1-u2": 0.75, "spk2-u1": 1.5},
    )
    out = write_data_dir(data, tmp_path / "d")
    back = read_data_dir(out)
    assert (back.text, back.wav_scp, back.utt2spk, back.segments) == (
        data.text,
        data.wav_scp,
        data.utt2spk,
        data.segments,
    )
    assert (back.spk2gender, back.utt2dur) == (data.spk2gender, data.utt2dur)
    assert (out / "spk2utt").read_text() == "spk1 spk1-u1 spk1-u2\nspk2 spk2-u1\n"
    # every file sorted by key in C order
    for name in ("wav.scp", "text", "utt2spk", "segments", "spk2gender", "utt2dur"):
        keys = [line.split()[0] for line in (out / name).read_text().splitlines()]
        assert keys == sorted(keys, key=lambda k: k.encode()), name
    # writing what was read gives the same bytes
    again = write_data_dir(back, tmp_path / "d2")
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "spk2gender", "utt2dur"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_round_trip_of_handwritten_dir(tmp_path: Path):
    src = make_data_dir(tmp_path)
    data = read_data_dir(src)
    assert data.utt_ids == ["spkA-u1", "spkA-u2", "spkB-u1", "spkB-u2", "spkB-u3"]
    assert data.spk2utt == {"spkA": ["spkA-u1", "spkA-u2"], "spkB": ["spkB-u1", "spkB-u2", "spkB-u3"]}
    out = write_data_dir(data, tmp_path / "copy")
    for name in ("wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2dur"):
        assert (out / name).read_text() == (src / name).read_text(), name
    assert read_data_dir(out) == data


def test_transcript_whitespace_is_normalised_on_read(tmp_path: Path):
    write_lines(tmp_path / "d" / "text", ["spk1-u1   HELLO \t WORLD  "])
    write_lines(tmp_path / "d" / "utt2spk", ["spk1-u1 spk1"])
    write_lines(tmp_path / "d" / "wav.scp", ["spk1-u1 /a.wav"])
    assert read_data_dir(tmp_path / "d").text == {"spk1-u1": "HELLO WORLD"}


def test_c_order_puts_upper_case_before_lower(tmp_path: Path):
    data = DataDir(
        {"b": "x.wav", "B": "y.wav", "a": "z.wav"}, {"b": "X", "B": "Y", "a": "Z"}, {"b": "b", "B": "B", "a": "a"}
    )
    out = write_data_dir(data, tmp_path / "d")
    assert [line.split()[0] for line in (out / "text").read_text().splitlines()] == ["B", "a", "b"]


def test_subset_keeps_only_what_the_utterances_use(tmp_path: Path):
    data = read_data_dir(make_data_dir(tmp_path))
    sub = data.subset(["spkB-u1", "spkB-u3"])
    assert sub.utt_ids == ["spkB-u1", "spkB-u3"]
    assert set(sub.wav_scp) == {"spkB-u1", "spkB-u3"}
    assert sub.spk2gender == {"spkB": "m"}


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"a 1\nb 2\na 3\n", 3, "repeated"),
        (b"a 1\n\nb 2\n", 2, "blank line"),
        (b"a 1\nb\n", 2, "no value"),
        (b"a 1\nb \xff\xfe\n", 2, "UTF-8"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path: Path, content: bytes, line: int, message: str):
    path = tmp_path / "table"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        read_table_lines(path)
    assert (err.value.path, err.value.line) == (str(path), line)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_read_data_dir_refuses_missing_files(tmp_path: Path):
    write_lines(tmp_path / "d" / "text", ["u1 A"])
    with pytest.raises(InputError, match="missing wav.scp"):
        read_data_dir(tmp_path / "d")
    with pytest.raises(InputError, match="does not exist"):
        read_data_dir(tmp_path / "nowhere")
