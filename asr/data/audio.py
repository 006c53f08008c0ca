"""Reading audio named by a ``wav.scp`` entry: a file path or a ``command |`` pipe (Kaldi convention).

A pipe entry runs a shell command by design, exactly as Kaldi does; pass ``allow_pipes=False`` (the CLIs'
``--no-pipes``) when the data directory comes from an untrusted source, or set the environment variable
``ASR_ALLOW_PIPES=0``, which refuses command entries everywhere (every CLI, recipe, worker process and
Kaldi scp reader), whatever the arguments say.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import subprocess

import numpy as np
import soundfile

from asr.errors import InputError

log = logging.getLogger(__name__)

# Sample rates a header may claim; outside, the header is corrupt (a rate of 1 Hz made resampling to 8 kHz hang).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000
# Resampling from a to b Hz is exact polyphase filtering with a / gcd x b / gcd taps: rates whose reduced ratio is
# finer than this (7919 -> 8000 Hz needs 63M taps) come from corrupt headers, not from recordings.
MAX_RESAMPLE_RATIO_TERM = 1000
# Only floating-point encodings can hold NaN or infinity; integer PCM needs no check.
_FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"})
# Float samples beyond full scale: up to this peak they are clipped to [-1, 1] (overs, codec overshoot), as integer
# PCM would have clipped them; beyond it the file is corrupt (fuzzing found float data of 4e37 read as audio).
MAX_FLOAT_PEAK = 4.0


ALLOW_PIPES_ENV = "ASR_ALLOW_PIPES"


def is_pipe(entry: str) -> bool:
    """True if a wav.scp value is a ``command |`` entry."""
    return entry.rstrip().endswith("|")


def pipes_allowed(allow_pipes: bool = True) -> bool:
    """Whether ``command |`` entries may run: ``allow_pipes`` and the environment variable ``ASR_ALLOW_PIPES``
    is not ``0``, ``false``, ``no`` or ``off`` (it can only forbid, never allow)."""
    value = os.environ.get(ALLOW_PIPES_ENV, "").strip().lower()
    return bool(allow_pipes) and value not in ("0", "false", "no", "off")


def refused_pipe_message(entry: str) -> str:
    """The error text for a refused ``command |`` entry (says how pipes were disabled)."""
    return (
        f"refusing command entry {entry!r}: command entries ('... |') are disabled "
        f"(--no-pipes, allow_pipes=False or {ALLOW_PIPES_ENV}=0)"
    )


def _read_bytes_from_pipe(entry: str, where: str) -> bytes:
    cmd = entry.rstrip()[:-1]
    try:
        proc = subprocess.run(cmd, shell=True, capture_output=True, check=False, timeout=600)
    except subprocess.TimeoutExpired as e:
        raise InputError(f"command timed out after 600 s: {cmd!r}", where) from e
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-400:]
        raise InputError(f"command {cmd!r} exited with {proc.returncode}: {err}", where)
    if not proc.stdout:
        raise InputError(f"command {cmd!r} produced no audio", where)
    return proc.stdout


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation); returns float32."""
    if orig_rate == new_rate:
        return samples.astype(np.float32, copy=False)
    import torch

    with torch.inference_mode():
        out = _resampler(orig_rate, new_rate)(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
    return out.numpy()


@functools.lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int):
    """A torchaudio Resample transform per rate pair: its sinc filter is computed once, not per call."""
    import torchaudio.transforms

    return torchaudio.transforms.Resample(orig_rate, new_rate)


def read_audio(
    entry: str,
    sample_rate: int | None = None,
    *,
    where: str | None = None,
    allow_pipes: bool = True,
    start: float = 0.0,
    end: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read the audio a wav.scp value names.

    Args:
        entry: a file path, or a shell command ending in ``|`` that writes a wav/flac/... to stdout.
        sample_rate: the rate wanted; a file at another rate is resampled and a line is logged. None
            keeps the file's rate.
        where: how to name the source in errors (e.g. ``"data/train/wav.scp:12"``); defaults to entry.
        allow_pipes: refuse ``cmd |`` entries when False (untrusted data directories); ``ASR_ALLOW_PIPES=0``
            in the environment refuses them whatever this says.
        start, end: segment bounds in seconds (Kaldi ``segments``); end None = to the end.

    Returns:
        ``(samples, rate)``: mono float32 samples in [-1, 1] (first channel of multi-channel audio) and
        their sample rate.

    Raises:
        InputError: the file is missing, unreadable, corrupt or empty, or the pipe fails.
    """
    where = where or entry
    if is_pipe(entry):
        if not pipes_allowed(allow_pipes):
            raise InputError(refused_pipe_message(entry), where)
        source: object = io.BytesIO(_read_bytes_from_pipe(entry, where))
    else:
        source = entry.strip()
    try:
        with soundfile.SoundFile(source) as f:
            rate, subtype = f.samplerate, f.subtype
            samples = f.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise InputError(f"cannot read audio {entry!r}: {e}", where) from e
    except MemoryError as e:  # a header claiming billions of frames (a corrupt FLAC header, found by fuzzing)
        raise InputError(f"cannot read audio {entry!r}: {e} (a corrupt header?)", where) from None
    samples = samples[:, 0]
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InputError(
            f"audio {entry!r}: implausible sample rate {rate} Hz in its header (corrupt file?); expected "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            where,
        )
    if start or end is not None:
        first = int(round(start * rate))
        last = len(samples) if end is None or end < 0 else int(round(end * rate))
        if first >= len(samples) or last <= first:
            raise InputError(f"segment {start:.3f}-{end} s lies outside the audio ({len(samples) / rate:.3f} s)", where)
        samples = samples[first:last]
    if samples.size == 0:
        raise InputError(f"audio {entry!r} is empty", where)
    if subtype in _FLOAT_SUBTYPES:
        if not np.isfinite(samples).all():
            raise InputError(f"audio {entry!r} holds NaN or infinite samples", where)
        peak = float(np.abs(samples).max())
        if peak > MAX_FLOAT_PEAK:
            raise InputError(f"audio {entry!r} holds samples {peak:.3g} times full scale (corrupt file?)", where)
        if peak > 1.0:
            samples = np.clip(samples, -1.0, 1.0)
    if sample_rate is not None and rate != sample_rate:
        g = math.gcd(int(rate), int(sample_rate))
        if max(rate // g, sample_rate // g) > MAX_RESAMPLE_RATIO_TERM:
            raise InputError(
                f"audio {entry!r} at {rate} Hz cannot be resampled to {sample_rate} Hz (ratio {rate // g}:"
                f"{sample_rate // g}; a corrupt header? convert the file to {sample_rate} Hz first)",
                where,
            )
        log.info("%s: resampling %d Hz -> %d Hz", where, rate, sample_rate)
        samples = np.clip(resample(samples, rate, sample_rate), -1.0, 1.0)  # the filter overshoots near full scale
        rate = sample_rate
    return samples, rate
