"""asr.data.validate: each bad input is refused at its file and line; fix_data_dir says what it dropped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datadir_helpers import make_data_dir, replace_line, write_lines, write_wav

from asr.data.datadir import read_data_dir
from asr.data.validate import check_text_words, fix_data_dir, main, validate_data_dir
from asr.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def assert_error_at(path: Path, line: int | None, match: str, **kwargs) -> InputError:
    """validate_data_dir(path.parent) raises InputError naming ``path`` and ``line``."""
    with pytest.raises(InputError, match=match) as err:
        validate_data_dir(path.parent, **kwargs)
    assert err.value.path == str(path), str(err.value)
    assert err.value.line == line, str(err.value)
    expected_prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err.value).startswith(expected_prefix)
    return err.value


def test_valid_dir_summary(tmp_path: Path):
    data = make_data_dir(tmp_path, seconds=0.25, rate=16000)
    summary = validate_data_dir(data)
    assert (summary.num_utts, summary.num_speakers, summary.num_recordings) == (5, 2, 5)
    assert summary.total_seconds == pytest.approx(6 * 0.25)
    assert summary.sample_rates == {16000: 5}
    assert summary.sample_rate == 16000
    assert "5 utterances" in str(summary)


def test_total_seconds_without_utt2dur_comes_from_the_headers(tmp_path: Path):
    data = make_data_dir(tmp_path, seconds=0.5, rate=8000)
    (data / "utt2dur").unlink()
    summary = validate_data_dir(data)
    assert summary.total_seconds == pytest.approx(3.0)
    assert summary.sample_rates == {8000: 5}
    assert validate_data_dir(data, check_audio=False).total_seconds is None


def test_unsorted_file(tmp_path: Path):
    data = make_data_dir(tmp_path)
    lines = (data / "text").read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]  # spkB-u1 before spkA-u2
    write_lines(data / "text", lines)
    assert_error_at(data / "text", 3, "not sorted: key 'spkA-u2' comes after 'spkB-u1'")


def test_upper_case_after_lower_case_is_unsorted_in_c_order(tmp_path: Path):
    data = tmp_path / "d"
    write_lines(data / "utt2spk", ["s-a s", "s-B s"])  # C order: 'B' (0x42) < 'a' (0x61)
    write_lines(data / "text", ["s-B X", "s-a Y"])
    write_lines(data / "wav.scp", ["s-B x.wav", "s-a y.wav"])
    assert_error_at(data / "utt2spk", 2, "not sorted", check_audio=False)


@pytest.mark.parametrize("file", ["text", "wav.scp"])
def test_utterance_missing_from_one_file(tmp_path: Path, file: str):
    data = make_data_dir(tmp_path)
    lines = (data / file).read_text().splitlines()
    write_lines(data / file, [line for line in lines if not line.startswith("spkB-u2 ")])
    assert_error_at(data / "utt2spk", 4, f"utterance 'spkB-u2' is not in {data / file}")


def test_utterance_missing_from_utt2spk(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "utt2spk", "spkB-u3 spkB", None)
    replace_line(data / "spk2utt", "spkB spkB-u1 spkB-u2 spkB-u3", "spkB spkB-u1 spkB-u2")
    (data / "utt2dur").unlink()
    assert_error_at(data / "text", 5, "utterance 'spkB-u3' is not in .*utt2spk")


def test_recording_without_utterance(tmp_path: Path):
    data = make_data_dir(tmp_path)
    wav = write_wav(tmp_path / "wav" / "spkC-u1.wav")
    write_lines(data / "wav.scp", (data / "wav.scp").read_text().splitlines() + [f"spkC-u1 {wav}"])
    assert_error_at(data / "wav.scp", 6, "recording 'spkC-u1' is not an utterance")


def test_speaker_id_not_prefixing_utterance_id(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "utt2spk", "spkB-u1 spkB", "spkB-u1 spkA")
    assert_error_at(data / "utt2spk", 3, "utterance id 'spkB-u1' does not start with its speaker id 'spkA'")


def test_speaker_utterances_not_contiguous(tmp_path: Path):
    data = tmp_path / "d"
    # every id starts with its speaker id, but C order interleaves the speakers: 'a-1' < 'a1' < 'ab'
    write_lines(data / "utt2spk", ["a-1 a", "a1 a1", "ab a"])
    write_lines(data / "text", ["a-1 X", "a1 Y", "ab Z"])
    write_lines(data / "wav.scp", ["a-1 x.wav", "a1 y.wav", "ab z.wav"])
    assert_error_at(data / "utt2spk", 3, "utterances of speaker 'a' are not contiguous", check_audio=False)


def test_empty_transcript(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "text", "spkA-u2 YES", "spkA-u2")
    assert_error_at(data / "text", 2, "empty transcript for utterance 'spkA-u2'")


def test_non_utf8_line(tmp_path: Path):
    data = make_data_dir(tmp_path)
    raw = (data / "text").read_bytes().replace(b"spkB-u1 NO NO", b"spkB-u1 NO N\xe9")
    (data / "text").write_bytes(raw)
    assert_error_at(data / "text", 3, "not valid UTF-8")


def test_repeated_key(tmp_path: Path):
    data = make_data_dir(tmp_path)
    lines = (data / "utt2spk").read_text().splitlines()
    write_lines(data / "utt2spk", lines[:2] + [lines[1]] + lines[2:])
    assert_error_at(data / "utt2spk", 3, r"key 'spkA-u2' repeated \(first on line 2\)")


def test_missing_wav(tmp_path: Path):
    data = make_data_dir(tmp_path)
    (tmp_path / "wav" / "spkB-u1.wav").unlink()
    err = assert_error_at(data / "wav.scp", 3, "audio file not found")
    assert "spkB-u1.wav" in err.message
    validate_data_dir(data, check_audio=False)  # the tables themselves are fine


def test_corrupt_wav(tmp_path: Path):
    data = make_data_dir(tmp_path)
    (tmp_path / "wav" / "spkB-u2.wav").write_bytes(os.urandom(4000))
    assert_error_at(data / "wav.scp", 4, "cannot read audio header")


def test_empty_wav(tmp_path: Path):
    data = make_data_dir(tmp_path)
    write_wav(tmp_path / "wav" / "spkA-u1.wav", seconds=0.0)
    assert_error_at(data / "wav.scp", 1, "holds no samples")


def test_spk2utt_inconsistent_with_utt2spk(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "spk2utt", "spkB spkB-u1 spkB-u2 spkB-u3", "spkB spkB-u1 spkB-u3")
    assert_error_at(data / "spk2utt", 2, "utterances of speaker 'spkB' differ")


def test_spk2utt_missing_speaker(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "spk2utt", "spkA spkA-u1 spkA-u2", None)
    assert_error_at(data / "utt2spk", 1, "speaker 'spkA' is missing from .*spk2utt")


def test_bad_gender_and_missing_gender(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "spk2gender", "spkB m", "spkB male")
    assert_error_at(data / "spk2gender", 2, "must be 'm' or 'f'")
    replace_line(data / "spk2gender", "spkB male", None)
    assert_error_at(data / "utt2spk", 3, "speaker 'spkB' is missing from .*spk2gender")


def test_utt2dur_disagreeing_with_audio(tmp_path: Path):
    data = make_data_dir(tmp_path, seconds=0.25)
    replace_line(data / "utt2dur", "spkB-u3 0.250", "spkB-u3 0.900")
    assert_error_at(data / "utt2dur", 5, "differs from its audio")
    replace_line(data / "utt2dur", "spkB-u3 0.900", "spkB-u3 -1")
    assert_error_at(data / "utt2dur", 5, "must be positive")


def _make_segmented_dir(tmp_path: Path) -> Path:
    data = tmp_path / "seg"
    wav = write_wav(tmp_path / "wav" / "rec1.wav", seconds=2.0)
    write_lines(data / "wav.scp", [f"rec1 {wav}"])
    write_lines(data / "segments", ["spk1-a rec1 0.00 0.80", "spk1-b rec1 0.80 -1"])
    write_lines(data / "text", ["spk1-a YES", "spk1-b NO"])
    write_lines(data / "utt2spk", ["spk1-a spk1", "spk1-b spk1"])
    return data


def test_segments(tmp_path: Path):
    data = _make_segmented_dir(tmp_path)
    summary = validate_data_dir(data)
    assert (summary.num_utts, summary.num_recordings) == (2, 1)
    assert summary.total_seconds == pytest.approx(2.0)
    replace_line(data / "segments", "spk1-b rec1 0.80 -1", "spk1-b rec2 0.80 -1")
    assert_error_at(data / "segments", 2, "recording 'rec2' is not in")
    replace_line(data / "segments", "spk1-b rec2 0.80 -1", "spk1-b rec1 0.80 3.5")
    assert_error_at(data / "segments", 2, "lies outside recording 'rec1'")
    replace_line(data / "segments", "spk1-b rec1 0.80 3.5", "spk1-b rec1 0.80 0.50")
    assert_error_at(data / "segments", 2, "bad segment times")
    replace_line(data / "segments", "spk1-b rec1 0.80 0.50", None)
    assert_error_at(data / "utt2spk", 2, "utterance 'spk1-b' is not in .*segments")


def test_pipes(tmp_path: Path):
    data = make_data_dir(tmp_path)
    wav = tmp_path / "wav" / "spkB-u2.wav"
    replace_line(data / "wav.scp", f"spkB-u2 {wav}", f"spkB-u2 cat {wav} |")
    summary = validate_data_dir(data)  # the command is not run by default
    assert summary.num_unchecked_pipes == 1
    assert summary.sample_rates == {16000: 4}
    summary = validate_data_dir(data, run_pipes=True)
    assert summary.num_unchecked_pipes == 0
    assert summary.sample_rates == {16000: 5}
    assert_error_at(data / "wav.scp", 4, "command entries", allow_pipes=False)
    replace_line(data / "wav.scp", f"spkB-u2 cat {wav} |", f"spkB-u2 cat {tmp_path}/nothing.wav |")
    validate_data_dir(data)  # not run: not noticed
    with pytest.raises(InputError, match="exited with"):
        validate_data_dir(data, run_pipes=True)


def test_check_text_words(tmp_path: Path):
    data = make_data_dir(tmp_path)
    words = {"HELLO", "WORLD", "YES", "NO", "ONE", "TWO", "THREE", "GO"}
    check_text_words(data, words)
    check_text_words(read_data_dir(data), words)
    with pytest.raises(InputError, match="word 'TWO' of utterance 'spkB-u2' is not in the word list") as err:
        check_text_words(data, words - {"TWO", "GO"})
    assert (err.value.path, err.value.line) == (str(data / "text"), 4)
    with pytest.raises(InputError, match="'GO'") as err:
        check_text_words(read_data_dir(data).subset(["spkB-u3"]), words - {"GO"})
    assert err.value.line == 5  # line of the file it was read from


def test_fix_reports_exactly_what_it_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    data = make_data_dir(tmp_path)
    # unsorted wav.scp, one utterance missing from text, one empty transcript, one extra recording,
    # a stale spk2utt, a 0.1 s utterance
    write_wav(tmp_path / "wav" / "spkA-u1.wav", seconds=0.1)
    replace_line(data / "utt2dur", "spkA-u1 0.250", "spkA-u1 0.100")
    wav_lines = (data / "wav.scp").read_text().splitlines()
    write_lines(data / "wav.scp", list(reversed(wav_lines)) + [f"spkC-x {tmp_path}/wav/spkC-x.wav"])
    replace_line(data / "text", "spkB-u1 NO NO", None)
    replace_line(data / "text", "spkA-u2 YES", "spkA-u2")
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    caplog.set_level(logging.INFO, logger="asr.data.validate")

    report = fix_data_dir(data, min_duration=0.2)

    assert report.dropped_utts == {
        "spkA-u1": "shorter than 0.2 s (0.100 s)",
        "spkA-u2": "empty transcript",
        "spkB-u1": "missing from text",
        "spkC-x": "missing from utt2spk, text",
    }
    assert report.reason_counts() == {
        "shorter than 0.2 s": 1,
        "empty transcript": 1,
        "missing from text": 1,
        "missing from utt2spk, text": 1,
    }
    assert report.kept_utts == 2
    assert report.dropped_speakers == ["spkA"]
    assert report.dropped_recordings == {
        r: "no utterance left uses it" for r in ("spkA-u1", "spkA-u2", "spkB-u1", "spkC-x")
    }
    assert sorted(report.rewritten_files) == sorted(["wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2dur"])
    # the ids and reasons are logged
    logged = caplog.text
    for utt in report.dropped_utts:
        assert utt in logged
    assert "empty transcript" in logged and "missing from text" in logged
    # what is left is valid and sorted; spk2utt rewritten
    summary = validate_data_dir(data)
    assert summary.num_utts == 2
    assert (data / "spk2utt").read_text() == "spkB spkB-u2 spkB-u3\n"
    assert (data / "text").read_text() == "spkB-u2 ONE TWO THREE\nspkB-u3 GO\n"
    # nothing lost: old versions backed up, dropped ids listed
    for name in report.rewritten_files:
        assert (data / ".backup" / name).read_bytes() == before[name]
    dropped_txt = (data / ".backup" / "dropped.txt").read_text().splitlines()
    assert dropped_txt == [f"{u} {r}" for u, r in report.dropped_utts.items()]
    # a second run changes nothing
    again = fix_data_dir(data, min_duration=0.2)
    assert (again.dropped_utts, again.rewritten_files, again.kept_utts) == ({}, [], 2)


def test_fix_drops_unreadable_audio_only_when_asked(tmp_path: Path):
    data = make_data_dir(tmp_path)
    (tmp_path / "wav" / "spkB-u3.wav").write_bytes(b"RIFF not really")
    report = fix_data_dir(data)
    assert report.dropped_utts == {}
    with pytest.raises(InputError):
        validate_data_dir(data)
    report = fix_data_dir(data, drop_unreadable_audio=True)
    assert list(report.dropped_utts) == ["spkB-u3"]
    assert report.dropped_utts["spkB-u3"].startswith("unreadable audio (cannot read audio header")
    assert validate_data_dir(data).num_utts == 4


def test_fix_removes_files_that_no_longer_cover_the_data_and_notes_it(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "utt2dur", "spkA-u1 0.250", None)
    report = fix_data_dir(data)
    assert report.dropped_utts == {}
    assert not (data / "utt2dur").exists()
    assert (data / ".backup" / "utt2dur").is_file()
    assert any("utt2dur removed" in note for note in report.notes)


def test_fix_cannot_fix_speaker_prefix(tmp_path: Path):
    data = make_data_dir(tmp_path)
    replace_line(data / "utt2spk", "spkB-u1 spkB", "spkB-u1 spkA")
    with pytest.raises(InputError, match="does not start with its speaker id"):
        fix_data_dir(data)


def test_cli_validate_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture):
    data = make_data_dir(tmp_path)
    assert main([str(data)]) == 0
    assert "OK" in capsys.readouterr().out
    replace_line(data / "text", "spkA-u2 YES", "spkA-u2")
    assert main([str(data)]) == 1
    assert f"{data / 'text'}:2: empty transcript" in capsys.readouterr().err
    assert main(["--fix", str(data)]) == 0
    assert "4 utterances" in capsys.readouterr().out


def test_cli_as_module(tmp_path: Path):
    data = make_data_dir(tmp_path)
    (tmp_path / "wav" / "spkA-u2.wav").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "asr.data.validate", str(data)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert f"{data / 'wav.scp'}:2: audio file not found" in proc.stderr


def test_fix_with_segments(tmp_path: Path):
    data = _make_segmented_dir(tmp_path)
    write_lines(data / "segments", ["spk1-a rec1 0.00 0.80", "spk1-b rec1 0.80 -1", "spk1-c rec2 0.0 1.0"])
    write_lines(data / "text", ["spk1-a YES", "spk1-b NO", "spk1-c YES"])
    write_lines(data / "utt2spk", ["spk1-a spk1", "spk1-b spk1", "spk1-c spk1"])
    with pytest.raises(InputError, match="recording 'rec2' is not in"):
        validate_data_dir(data)
    report = fix_data_dir(data, min_duration=1.0)
    assert report.dropped_utts == {
        "spk1-a": "shorter than 1 s (0.800 s)",
        "spk1-c": "missing from wav.scp (recording rec2)",
    }
    assert (data / "segments").read_text() == "spk1-b rec1 0.80 -1\n"  # values kept as written
    summary = validate_data_dir(data)
    assert (summary.num_utts, summary.total_seconds) == (1, pytest.approx(1.2))
