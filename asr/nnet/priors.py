"""Senone priors for the hybrid decoder: counts from the training alignments, smoothed and floored.

The DNN gives posteriors ``p(s | x)``; the HMM needs likelihoods, so decoding uses the scaled likelihood
``log p(s | x) - log p(s)``. The prior ``p(s)`` is the relative frequency of pdf id ``s`` in the training
alignments, smoothed by adding ``add`` to every count (a senone never seen in training must not get a
near-zero prior, which would give it a huge scaled likelihood) and floored at ``floor``.

File: ``pdf_counts.txt`` holds the raw counts as one Kaldi text vector (``[ 12 0 873 ... ]``), the format
of Kaldi's ``ali_train_pdf.counts``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr.atomic import atomic_write
from asr.errors import InputError

DEFAULT_PRIOR_ADD = 1.0
DEFAULT_PRIOR_FLOOR = 1e-8


def pdf_counts(pdf_ids: np.ndarray, num_pdfs: int) -> np.ndarray:
    """Frames per pdf id: int64 ``[num_pdfs]``. ValueError if an id is outside ``[0, num_pdfs)``."""
    pdf_ids = np.asarray(pdf_ids)
    if pdf_ids.size and (pdf_ids.min() < 0 or pdf_ids.max() >= num_pdfs):
        raise ValueError(f"pdf ids range over [{pdf_ids.min()}, {pdf_ids.max()}], outside [0, {num_pdfs})")
    return np.bincount(pdf_ids.astype(np.int64, copy=False), minlength=num_pdfs).astype(np.int64)


def log_priors(counts: np.ndarray, add: float = DEFAULT_PRIOR_ADD, floor: float = DEFAULT_PRIOR_FLOOR) -> np.ndarray:
    """Log prior per pdf: ``log(max((c + add) / sum(c + add), floor))``, renormalized; float32 ``[num_pdfs]``.

    Args:
        counts: frames per pdf (non-negative).
        add: added to every count before normalizing (1 = add-one smoothing; 0 = none).
        floor: smallest prior probability.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
        raise ValueError("counts must be a non-empty 1-D array of non-negative numbers")
    if add < 0 or floor < 0:
        raise ValueError(f"add and floor must be >= 0 (add {add}, floor {floor})")
    smoothed = counts + add
    total = smoothed.sum()
    if total <= 0:
        raise ValueError("all counts are zero and add is 0: no prior can be estimated")
    prior = np.maximum(smoothed / total, floor)
    prior /= prior.sum()
    with np.errstate(divide="ignore"):
        return np.log(prior).astype(np.float32)


def write_pdf_counts(path: str | os.PathLike, counts: np.ndarray) -> None:
    """Write counts as a Kaldi text vector ``[ c0 c1 ... ]`` (atomically)."""
    values = " ".join(str(int(c)) for c in np.asarray(counts))
    with atomic_write(path) as f:
        f.write(f"[ {values} ]\n")


def read_pdf_counts(path: str | os.PathLike) -> np.ndarray:
    """Read :func:`write_pdf_counts`'s file: int64 ``[num_pdfs]`` (InputError naming the file when malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read pdf counts: {err.strerror}", path) from None
    tokens = text.split()
    if len(tokens) < 2 or tokens[0] != "[" or tokens[-1] != "]":
        raise InputError("pdf counts must be one Kaldi text vector '[ c0 c1 ... ]'", path, 1)
    try:
        counts = np.array([float(t) for t in tokens[1:-1]])
    except ValueError as err:
        raise InputError(f"pdf counts: {err}", path, 1) from None
    if counts.size == 0 or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise InputError("pdf counts must be non-negative integers, at least one", path, 1)
    return counts.astype(np.int64)
