"""asr.data.audio: wav.scp entries (files and ``cmd |`` pipes), channels, resampling, bad audio."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from datadir_helpers import make_data_dir, replace_line, write_wav

from asr.data.audio import is_pipe, read_audio
from asr.data.datadir import read_data_dir
from asr.errors import InputError


def test_plain_file_and_pipe_give_the_same_samples(tmp_path: Path):
    wav = write_wav(tmp_path / "a.wav", seconds=0.3, rate=16000)
    plain, rate = read_audio(str(wav))
    piped, piped_rate = read_audio(f"cat {wav} |")
    assert (rate, piped_rate) == (16000, 16000)
    assert plain.dtype == np.float32 and plain.shape == (4800,)
    np.testing.assert_array_equal(plain, piped)
    expected, _ = soundfile.read(str(wav), dtype="float32")
    np.testing.assert_array_equal(plain, expected)


def test_is_pipe():
    assert is_pipe("sox a.flac -t wav - |")
    assert is_pipe("cat a.wav |  ")
    assert not is_pipe("/data/a.wav")


def test_pipes_refused_when_not_allowed(tmp_path: Path):
    wav = write_wav(tmp_path / "a.wav")
    marker = tmp_path / "ran"
    with pytest.raises(InputError, match="refusing command entry"):
        read_audio(f"touch {marker}; cat {wav} |", allow_pipes=False, where="data/wav.scp:3")
    assert not marker.exists(), "the command must not run"


def test_failing_pipe(tmp_path: Path):
    with pytest.raises(InputError, match="exited with 1") as err:
        read_audio(f"cat {tmp_path}/missing.wav |", where="data/wav.scp:7")
    assert str(err.value).startswith("data/wav.scp:7: ")
    with pytest.raises(InputError, match="produced no audio"):
        read_audio("true |")


def test_data_dir_load_audio_through_a_pipe(tmp_path: Path):
    data = make_data_dir(tmp_path)
    wav = tmp_path / "wav" / "spkB-u2.wav"
    replace_line(data / "wav.scp", f"spkB-u2 {wav}", f"spkB-u2 cat {wav} |")
    dd = read_data_dir(data)
    samples = dd.load_audio("spkB-u2")
    assert samples.shape == (8000,)  # 0.5 s at 16 kHz
    with pytest.raises(InputError, match="refusing command entry"):
        dd.load_audio("spkB-u2", allow_pipes=False)
    assert dd.load_audio("spkA-u1", allow_pipes=False).shape == (4000,)


def test_stereo_gives_the_first_channel(tmp_path: Path):
    wav = write_wav(tmp_path / "stereo.wav", seconds=0.1, rate=16000, channels=2)
    samples, _ = read_audio(str(wav))
    both, _ = soundfile.read(str(wav), dtype="float32")
    assert both.shape == (1600, 2) and samples.shape == (1600,)
    np.testing.assert_array_equal(samples, both[:, 0])
    assert not np.array_equal(samples, both[:, 1])


def test_resampling_8k_to_16k_is_logged_and_doubles_the_length(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    wav = write_wav(tmp_path / "narrow.wav", seconds=0.5, rate=8000, freq=500.0)
    caplog.set_level(logging.INFO, logger="asr.data.audio")
    samples, rate = read_audio(str(wav), 16000, where="data/wav.scp:1")
    assert rate == 16000
    assert samples.shape == (8000,)
    assert "data/wav.scp:1: resampling 8000 Hz -> 16000 Hz" in caplog.text
    # still a 500 Hz tone: its spectrum peaks at 500 Hz
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / 16000)[np.argmax(spectrum)] == pytest.approx(500.0, abs=2.0)
    caplog.clear()
    read_audio(str(wav), 8000)
    assert "resampling" not in caplog.text


def test_segment_bounds(tmp_path: Path):
    wav = write_wav(tmp_path / "a.wav", seconds=1.0, rate=16000)
    whole, _ = read_audio(str(wav))
    part, _ = read_audio(str(wav), start=0.25, end=0.5)
    np.testing.assert_array_equal(part, whole[4000:8000])
    tail, _ = read_audio(str(wav), start=0.75, end=-1)
    np.testing.assert_array_equal(tail, whole[12000:])
    with pytest.raises(InputError, match="outside the audio"):
        read_audio(str(wav), start=1.5, end=2.0)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "empty"])
def test_bad_audio(tmp_path: Path, kind: str):
    wav = tmp_path / "bad.wav"
    if kind == "corrupt":
        wav.write_bytes(os.urandom(2000))
    elif kind == "empty":
        write_wav(wav, seconds=0.0)
    with pytest.raises(InputError, match="is empty" if kind == "empty" else "cannot read audio") as err:
        read_audio(str(wav), where="data/wav.scp:9")
    assert (err.value.path, err.value.line) == ("data/wav.scp:9", None)
