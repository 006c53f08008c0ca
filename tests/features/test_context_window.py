"""Context windows: vectorized splice / splice_at == a plain Python loop, edges and 1-frame utterances."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from asr.features.context_window import splice, splice_at


def window_loop(feats: np.ndarray, first: int, end: int, t: int, left: int, right: int) -> np.ndarray:
    """The context window of global frame t, whose utterance spans [first, end)."""
    rows = []
    for j in range(-left, right + 1):
        rows.append(feats[min(max(t + j, first), end - 1)])
    return np.concatenate(rows)


def utterances(lengths, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(sum(lengths), dim)).astype(np.float32)
    return feats, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@pytest.mark.parametrize("length", [1, 2, 5, 40])
@pytest.mark.parametrize("left,right", [(13, 12), (0, 0), (2, 5)])
def test_splice_one_utterance(length, left, right):
    feats, _ = utterances([length])
    out = splice(torch.from_numpy(feats), left, right)
    assert out.shape == (length, (left + 1 + right) * 3)
    expected = np.stack([window_loop(feats, 0, length, t, left, right) for t in range(length)])
    np.testing.assert_array_equal(out.numpy(), expected)


def test_default_is_the_26_frame_window_and_matches_kaldi_native_fbank():
    feats, _ = utterances([30], dim=4)
    out = splice(feats)
    assert out.shape == (30, 26 * 4)
    opts = knf.SpliceOptions()
    opts.left_context, opts.right_context = 13, 12
    np.testing.assert_array_equal(out.numpy(), knf.splice_frames(feats, opts))


def test_splice_at_equals_loop_with_edges_and_one_frame_utterances():
    lengths = [6, 1, 3, 1, 20, 2]
    feats, offsets = utterances(lengths)
    rng = np.random.default_rng(5)
    frames = np.concatenate([rng.permutation(sum(lengths)), [0, 5, 6, 7, 10, 32]])  # shuffled + edges
    out = splice_at(torch.from_numpy(feats), torch.from_numpy(offsets), torch.from_numpy(frames), 4, 3)
    assert out.shape == (len(frames), 8 * 3)
    for row, t in zip(out.numpy(), frames):
        u = np.searchsorted(offsets, t, side="right") - 1
        np.testing.assert_array_equal(row, window_loop(feats, offsets[u], offsets[u + 1], t, 4, 3))


def test_splice_at_agrees_with_splice_per_utterance_and_skips_empty_utterances():
    lengths = [5, 0, 7, 1]
    feats, offsets = utterances(lengths, dim=2)
    everything = splice_at(feats, offsets, np.arange(feats.shape[0]))
    for first, end in zip(offsets[:-1], offsets[1:]):
        if end > first:
            np.testing.assert_array_equal(everything[first:end].numpy(), splice(feats[first:end]).numpy())


def test_bad_arguments():
    feats, offsets = utterances([4])
    with pytest.raises(IndexError):
        splice_at(feats, offsets, [4])
    with pytest.raises(ValueError):
        splice(feats, left=-1)
    with pytest.raises(ValueError):
        splice(feats[:0])
