"""Fuzzed wav files (a real yes/no wav with its header mutated, fields overwritten, the file truncated): reading
and extracting either gives sane samples and finite features or raises our InputError naming the file; never
another exception, a crash or a hang (run in an isolated worker process with a timeout)."""

from __future__ import annotations

import struct

import pytest
from fuzz_helpers import COUNTS, IsolatedWorker, assert_ours, fuzz_settings
from fuzz_targets import read_wav
from hypothesis import given
from hypothesis import strategies as st

from asr.data.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

# offsets of the canonical 44-byte header's fields: (offset, struct format)
HEADER_FIELDS = [
    (4, "<I"),  # RIFF size
    (16, "<I"),  # fmt chunk size
    (20, "<H"),  # format tag
    (22, "<H"),  # channels
    (24, "<I"),  # sample rate
    (28, "<I"),  # byte rate
    (32, "<H"),  # block align
    (34, "<H"),  # bits per sample
    (40, "<I"),  # data size
]
SPECIAL_INTS = [0, 1, 2, 3, 7, 8, 16, 24, 32, 64, 255, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 8000, 16000, 44100, 3, 1000000]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 63), st.integers(1, 255)),
    st.tuples(st.just("field"), st.sampled_from(range(len(HEADER_FIELDS))), st.sampled_from(SPECIAL_INTS)),
    st.tuples(st.just("field_random"), st.sampled_from(range(len(HEADER_FIELDS))), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("truncate"), st.integers(0, 2000)),
    st.tuples(st.just("insert"), st.integers(0, 64), st.binary(min_size=1, max_size=8)),
)


def _mutate(data: bytearray, m: tuple) -> bytearray:
    kind = m[0]
    if kind == "flip" and data:
        data[m[1] % len(data)] ^= m[2]
    elif kind in ("field", "field_random"):
        offset, fmt = HEADER_FIELDS[m[1]]
        value = m[2] & (0xFFFF if fmt == "<H" else 0xFFFFFFFF)
        data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    elif kind == "truncate":
        del data[m[1] :]
    elif kind == "insert":
        data[m[1] : m[1]] = m[2]
    return data


@pytest.fixture(scope="module")
def worker():
    w = IsolatedWorker(read_wav, timeout=60)
    yield w
    w.close()


def test_fuzz_wav_headers(yesno_root, tmp_path, worker):
    original = sorted((yesno_root / "waves_yesno").glob("*.wav"))[0].read_bytes()
    assert original[:4] == b"RIFF" and original[36:40] == b"data"  # the canonical 44-byte header
    path = tmp_path / "x.wav"

    @fuzz_settings(300, deadline_s=120)
    @given(mutations=st.lists(mutation, min_size=1, max_size=3), resample=st.booleans())
    def check(mutations, resample):
        COUNTS["wav"] += 1
        data = bytearray(original)
        for m in mutations:
            data = _mutate(data, m)
        path.write_bytes(bytes(data))
        outcome = worker.call(str(path), 8000 if resample else None)
        assert_ours(outcome, [path], f"read_audio of {bytes(data[:48])!r}")
        if outcome[0] == "ok":
            s = outcome[1]
            assert s["n"] > 0 and s["ndim"] == 1 and s["dtype"] == "float32" and s["finite"], s
            assert s["max_abs"] <= 1.0 + 1e-6, s  # float wav data beyond [-1, 1] would be garbage read as audio
            assert MIN_SAMPLE_RATE <= s["rate"] <= MAX_SAMPLE_RATE, s
            if resample:
                assert s["rate"] == 8000 and s["feats_finite"], s

    check()
    print(f"[fuzz] wav headers: {COUNTS['wav']} inputs")


def _float_wav(path, samples, rate: int) -> None:
    import numpy as np
    import soundfile

    soundfile.write(str(path), np.asarray(samples, dtype=np.float32), rate, format="WAV", subtype="FLOAT")


@pytest.mark.parametrize(
    "peak, resample, accepted",
    [
        (4.253624406776628e37, False, False),  # found by scripts/fuzz_parsers.py: float data of 4e37 read as audio
        (1.5, False, True),  # float overs: clipped to full scale
        (1.0, True, True),  # found by scripts/fuzz_parsers.py: resampling a full-scale square wave overshot 1.0
    ],
)
def test_float_and_resampled_samples_stay_in_full_scale(tmp_path, worker, peak, resample, accepted):
    """Regression cases of the atheris run: samples beyond [-1, 1] are clipped (overs, resampling overshoot) or,
    far beyond, refused as a corrupt file naming it."""
    path = tmp_path / "x.wav"
    square = [peak if (i // 20) % 2 else -peak for i in range(800)]
    _float_wav(path, square, 16000 if resample else 8000)
    outcome = worker.call(str(path), 8000 if resample else None)
    assert_ours(outcome, [path], f"peak {peak}")
    assert (outcome[0] == "ok") == accepted, outcome
    if accepted:
        s = outcome[1]
        assert s["finite"] and s["max_abs"] <= 1.0, s
        assert s["rate"] == 8000, s


def test_flac_header_claiming_billions_of_frames(tmp_path, worker):
    """Regression case of the atheris run: a FLAC STREAMINFO claiming 2^36 - 1 samples made soundfile allocate
    for all of them (MemoryError); it is our error naming the file (or, where the memory exists, the real data)."""
    import numpy as np
    import soundfile

    path = tmp_path / "x.flac"
    soundfile.write(str(path), np.full(400, 0.25, dtype=np.float32), 8000, format="FLAC", subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first: rate, channels, bits, total samples
    fields = int.from_bytes(data[18:26], "big")
    data[18:26] = (fields | (2**36 - 1)).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    outcome = worker.call(str(path), None)
    assert_ours(outcome, [path], "FLAC claiming 2^36 - 1 samples")
