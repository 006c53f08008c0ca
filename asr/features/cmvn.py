"""Cepstral mean (and variance) normalization, per speaker, per utterance or none.

Statistics use Kaldi's ``cmvn.ark`` layout, one float64 ``[2, dim + 1]`` matrix per speaker or
utterance: row 0 = per-dimension sums and the frame count in the last column, row 1 = sums of squares
(last column unused, 0). Kaldi's ``apply-cmvn``: subtract the mean; with ``norm_vars`` also divide by
the standard deviation (variance floored at 1e-20).

Per-speaker normalization relies on the data-dir convention that utterance ids start with the speaker
id, so that a speaker's utterances are contiguous in sorted order; :func:`cmvn_groups` checks it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from asr.errors import ConfigError, InputError

CMVN_KINDS = ("speaker", "utterance", "none")
VARIANCE_FLOOR = 1e-20


def check_cmvn_kind(kind: str) -> str:
    """Return ``kind`` if it is one of :data:`CMVN_KINDS`, else raise :class:`ConfigError`."""
    if kind not in CMVN_KINDS:
        raise ConfigError(f"cmvn must be one of {CMVN_KINDS}, not {kind!r}")
    return kind


def cmvn_stats(feats: np.ndarray) -> np.ndarray:
    """Kaldi CMVN statistics of ``feats`` ``[frames, dim]``: float64 ``[2, dim + 1]`` (count in [0, -1])."""
    feats = np.asarray(feats, dtype=np.float64)
    stats = np.zeros((2, feats.shape[1] + 1), dtype=np.float64)
    stats[0, :-1] = feats.sum(axis=0)
    stats[1, :-1] = np.square(feats).sum(axis=0)
    stats[0, -1] = feats.shape[0]
    return stats


def cmvn_transform(stats: np.ndarray, norm_vars: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scale, shift)`` (float64 ``[dim]``) so that normalized = feats * scale + shift.

    Raises:
        ValueError: the stats count no frames.
    """
    stats = np.asarray(stats, dtype=np.float64)
    count = stats[0, -1]
    if count <= 0:
        raise ValueError("CMVN stats count no frames")
    mean = stats[0, :-1] / count
    if not norm_vars:
        return np.ones_like(mean), -mean
    var = np.maximum(stats[1, :-1] / count - mean**2, VARIANCE_FLOOR)
    scale = 1.0 / np.sqrt(var)
    return scale, -mean * scale


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Normalize ``feats`` ``[frames, dim]`` with ``stats`` (Kaldi ``apply-cmvn``); returns float32."""
    scale, shift = cmvn_transform(stats, norm_vars)
    feats = np.asarray(feats, dtype=np.float32)
    if not norm_vars:
        return feats + shift.astype(np.float32)
    return feats * scale.astype(np.float32) + shift.astype(np.float32)


def cmvn_groups(
    utt_ids: Sequence[str],
    utt2spk: Mapping[str, str],
    kind: str,
    utt2spk_path: str | os.PathLike | None = None,
) -> list[tuple[str, int, int]]:
    """Split utterances (in archive order) into the groups that share CMVN statistics.

    Args:
        utt_ids: utterance ids in the order they are written.
        utt2spk: utterance -> speaker.
        kind: ``"speaker"`` (one group per speaker), ``"utterance"`` or ``"none"`` (no groups).
        utt2spk_path: named in errors (its line numbers are looked up when the file exists).

    Returns:
        ``(key, first, end)`` per group: the speaker or utterance id and the half-open range of positions
        in ``utt_ids``.

    Raises:
        InputError: an utterance without a speaker, or a speaker whose utterances are not contiguous
            (the utterance ids do not start with the speaker id).
    """
    check_cmvn_kind(kind)
    if kind == "none":
        return []
    if kind == "utterance":
        return [(utt, i, i + 1) for i, utt in enumerate(utt_ids)]
    groups: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for i, utt in enumerate(utt_ids):
        if utt not in utt2spk:
            raise InputError(f"utterance {utt!r} has no speaker", utt2spk_path)
        spk = utt2spk[utt]
        if groups and groups[-1][0] == spk:
            groups[-1] = (spk, groups[-1][1], i + 1)
            continue
        if spk in seen:
            raise InputError(
                f"speaker {spk!r}: its utterances are not contiguous in sorted order (at {utt!r}); utterance "
                "ids must start with their speaker id for per-speaker CMVN",
                utt2spk_path,
                _line_of(utt2spk_path, utt),
            )
        seen.add(spk)
        groups.append((spk, i, i + 1))
    return groups


def _line_of(path: str | os.PathLike | None, key: str) -> int | None:
    """1-based line of ``key`` in a table file, or None."""
    if path is None or not Path(path).is_file():
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split(maxsplit=1)
            if fields and fields[0] == key:
                return number
    return None
