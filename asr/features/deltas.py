"""Delta and delta-delta features (Kaldi's ``add-deltas``), vectorized over many utterances at once.

Kaldi's ``DeltaFeatures``: the order-1 filter is ``w1[j] = j / sum_k k^2`` for ``j = -N..N`` (N =
``window``); the order-i filter is the convolution of the order-(i-1) filter with ``w1``, applied to the
*static* features, with frame indices outside the utterance clamped to its first / last frame. The
output is ``[x, delta, delta-delta, ...]`` along the feature axis.

Here the input is the concatenated frames of many utterances plus their offsets (the feature-archive
layout), and every filter tap is one gather with indices clamped to the frame's own utterance, so no
utterance ever sees its neighbours' frames.
"""

from __future__ import annotations

import numpy as np

from asr.errors import ConfigError


def delta_filters(order: int = 2, window: int = 2) -> list[np.ndarray]:
    """Kaldi's delta filters: element i (0..order) has ``1 + 2 * i * window`` taps (float64), centred."""
    if order < 0 or window < 1:
        raise ConfigError(f"delta order must be >= 0 and window >= 1 (got order {order}, window {window})")
    first = np.arange(-window, window + 1, dtype=np.float64)
    first /= np.sum(first**2)
    filters = [np.ones(1)]
    for _ in range(order):
        filters.append(np.convolve(filters[-1], first))
    return filters


def check_offsets(offsets: np.ndarray, num_frames: int) -> np.ndarray:
    """Validate utterance offsets (``[num_utts + 1]``, 0 first, non-decreasing, last = ``num_frames``).

    Returns the offsets as int64; raises ``ValueError`` when they do not describe ``num_frames`` frames.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != num_frames:
        raise ValueError(f"offsets must start at 0 and end at the number of frames ({num_frames})")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must be non-decreasing")
    return offsets


def utterance_bounds(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the first frame and the last frame (inclusive) of the utterance it belongs to."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    first = np.repeat(offsets[:-1], lengths)
    last = np.repeat(offsets[1:] - 1, lengths)
    return first, last


def add_deltas(feats: np.ndarray, offsets: np.ndarray | None = None, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta features of orders 1..``order`` (Kaldi's ``add-deltas``).

    Args:
        feats: ``[total_frames, dim]`` frames of one or more utterances, concatenated.
        offsets: ``[num_utts + 1]`` utterance boundaries in ``feats`` (None: one utterance).
        order: highest delta order (2 gives deltas and delta-deltas).
        window: N, the half-width of the regression window.

    Returns:
        float32 ``[total_frames, dim * (order + 1)]``: ``[x, delta, delta-delta, ...]``.
    """
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"feats must be 2-D [frames, dim], not shape {feats.shape}")
    num_frames, dim = feats.shape
    if offsets is None:
        offsets = np.array([0, num_frames], dtype=np.int64)
    offsets = check_offsets(offsets, num_frames)
    filters = delta_filters(order, window)
    out = np.empty((num_frames, dim * (order + 1)), dtype=np.float32)
    out[:, :dim] = feats
    if order == 0 or num_frames == 0:
        return out
    first, last = utterance_bounds(offsets)
    frames = np.arange(num_frames, dtype=np.int64)
    src = feats.astype(np.float32, copy=False)
    for i in range(1, order + 1):
        taps = filters[i]
        half = (len(taps) - 1) // 2
        acc = np.zeros((num_frames, dim), dtype=np.float32)
        for j, weight in enumerate(taps):
            if weight == 0.0:
                continue
            index = np.clip(frames + (j - half), first, last)
            acc += np.float32(weight) * src[index]
        out[:, i * dim : (i + 1) * dim] = acc
    return out
