"""Context windows ("splicing") for the DNN input, as vectorized torch gathers.

A context window of frame t stacks frames ``t - left .. t + right`` of its own utterance (Zeiler et al.
2013 use 26 frames: ``left=13``, ``right=12``); indices outside the utterance repeat its first / last
frame, as Kaldi's ``splice-feats`` does. Output rows are ``[x[t-left], ..., x[t], ..., x[t+right]]``.

- :func:`splice`: all frames of one utterance, ``[T, D] -> [T, (left + 1 + right) * D]``;
- :func:`splice_at`: any frames of the concatenated archive array (frame-level shuffled training):
  each index is clamped to its own utterance's range, found from the offsets.

Both work on any device and dtype; the gather stays on the device of ``feats``.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_LEFT = 13
DEFAULT_RIGHT = 12


def _as_tensor(x, device=None, dtype=None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return torch.as_tensor(x, device=device, dtype=dtype)


def _check_context(left: int, right: int) -> None:
    if left < 0 or right < 0:
        raise ValueError(f"context must be non-negative (left {left}, right {right})")


def splice(feats: torch.Tensor | np.ndarray, left: int = DEFAULT_LEFT, right: int = DEFAULT_RIGHT) -> torch.Tensor:
    """Context windows of every frame of one utterance.

    Args:
        feats: ``[T, D]`` frames of one utterance (T >= 1).
        left, right: frames of context before and after.

    Returns:
        ``[T, (left + 1 + right) * D]`` on the device and in the dtype of ``feats``.
    """
    _check_context(left, right)
    feats = _as_tensor(feats)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"feats must be [T >= 1, D], not shape {tuple(feats.shape)}")
    num_frames = feats.shape[0]
    rel = torch.arange(-left, right + 1, device=feats.device)
    index = (torch.arange(num_frames, device=feats.device)[:, None] + rel[None, :]).clamp_(0, num_frames - 1)
    return feats[index].reshape(num_frames, -1)


def splice_at(
    feats: torch.Tensor | np.ndarray,
    offsets: torch.Tensor | np.ndarray,
    frames: torch.Tensor | np.ndarray,
    left: int = DEFAULT_LEFT,
    right: int = DEFAULT_RIGHT,
    check: bool = True,
) -> torch.Tensor:
    """Context windows of chosen frames of the concatenated frames of many utterances.

    Args:
        feats: ``[total_frames, D]`` all utterances concatenated (an archive's ``read_all()``, as a tensor
            to keep it on a GPU).
        offsets: ``[num_utts + 1]`` utterance boundaries (an archive's ``offsets``; empty utterances are
            fine).
        frames: ``[B]`` global frame indices (e.g. a shuffled minibatch), each in ``[0, total_frames)``.
        left, right: frames of context before and after.
        check: verify that the frame indices are in range (one device synchronization; pass False in a
            GPU training loop whose indices are known to be good).

    Returns:
        ``[B, (left + 1 + right) * D]``: the windows, each clamped to its own frame's utterance.
    """
    _check_context(left, right)
    feats = _as_tensor(feats)
    device = feats.device
    offsets = _as_tensor(offsets, device=device, dtype=torch.int64)
    frames = _as_tensor(frames, device=device, dtype=torch.int64)
    if feats.ndim != 2 or frames.ndim != 1:
        raise ValueError("feats must be [total_frames, D] and frames [B]")
    if check and frames.numel() and (int(frames.min()) < 0 or int(frames.max()) >= feats.shape[0]):
        raise IndexError(f"frame indices must lie in [0, {feats.shape[0]})")
    utt = torch.searchsorted(offsets, frames, right=True) - 1
    first = offsets[utt]
    last = offsets[utt + 1] - 1
    rel = torch.arange(-left, right + 1, device=device)
    index = frames[:, None] + rel[None, :]
    index = torch.maximum(torch.minimum(index, last[:, None]), first[:, None])
    return feats[index].reshape(frames.shape[0], -1)
