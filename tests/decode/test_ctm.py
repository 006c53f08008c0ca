"""Phone CTM: times follow the centre convention of DESIGN.md."""

from __future__ import annotations

import pytest

from asr.decode.ctm import ctm_lines, segment_start_seconds, write_phone_ctm


def test_segment_start_uses_centre_convention():
    assert segment_start_seconds(0) == pytest.approx(0.0075)
    assert segment_start_seconds(10) == pytest.approx(0.1075)
    assert segment_start_seconds(3, frame_shift=0.02, frame_length=0.04) == pytest.approx(0.07)


def test_ctm_lines_and_file(tmp_path):
    segments = [(1, 0, 12), (3, 12, 5), (4, 17, 30)]
    names = {1: "SIL", 3: "a", 4: "b"}
    assert ctm_lines("spk1-utt1", segments, names) == [
        "spk1-utt1 1 0.0075 0.1200 SIL",
        "spk1-utt1 1 0.1275 0.0500 a",
        "spk1-utt1 1 0.1775 0.3000 b",
    ]
    assert ctm_lines("u", [(3, 2, 1)])[0] == "u 1 0.0275 0.0100 3"
    path = tmp_path / "ctm"
    n = write_phone_ctm(path, [("u1", segments[:2]), ("u2", segments[2:])], names)
    assert n == 3
    assert path.read_text().splitlines() == [
        "u1 1 0.0075 0.1200 SIL",
        "u1 1 0.1275 0.0500 a",
        "u2 1 0.1775 0.3000 b",
    ]
