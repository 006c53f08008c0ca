"""add_deltas over concatenated utterances == Kaldi's add-deltas applied per utterance."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch
import torchaudio.functional
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.errors import ConfigError
from asr.features.deltas import add_deltas, delta_filters


def deltas_loop(feats: np.ndarray, order: int, window: int) -> np.ndarray:
    """Kaldi's DeltaFeatures::Process, frame by frame, for one utterance (float64)."""
    num_frames, dim = feats.shape
    filters = delta_filters(order, window)
    out = np.zeros((num_frames, dim * (order + 1)))
    for t in range(num_frames):
        for i, taps in enumerate(filters):
            half = (len(taps) - 1) // 2
            for j in range(-half, half + 1):
                source = min(max(t + j, 0), num_frames - 1)
                out[t, i * dim : (i + 1) * dim] += taps[j + half] * feats[source]
    return out


def random_utterances(rng, lengths, dim=5):
    feats = rng.normal(size=(sum(lengths), dim)).astype(np.float32) * 3
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return feats, offsets


def test_filters_are_kaldis():
    first, second = delta_filters(2, 2)[1:]
    np.testing.assert_allclose(first, [-0.2, -0.1, 0, 0.1, 0.2])
    np.testing.assert_allclose(second, [0.04, 0.04, 0.01, -0.04, -0.1, -0.04, 0.01, 0.04, 0.04])


@pytest.mark.parametrize("order,window", [(2, 2), (1, 1), (3, 1), (0, 2)])
def test_concatenated_equals_per_utterance_loop(order, window):
    rng = np.random.default_rng(0)
    lengths = [7, 1, 2, 30, 4, 9]  # includes utterances shorter than the filters
    feats, offsets = random_utterances(rng, lengths)
    out = add_deltas(feats, offsets, order, window)
    assert out.shape == (feats.shape[0], 5 * (order + 1)) and out.dtype == np.float32
    for first, end in zip(offsets[:-1], offsets[1:]):
        np.testing.assert_allclose(out[first:end], deltas_loop(feats[first:end], order, window), rtol=1e-5, atol=1e-5)


def test_never_crosses_utterance_boundaries():
    """Changing one utterance's frames leaves the deltas of every other utterance unchanged."""
    rng = np.random.default_rng(1)
    feats, offsets = random_utterances(rng, [5, 6, 5])
    before = add_deltas(feats, offsets)
    feats[5:11] += 100.0
    after = add_deltas(feats, offsets)
    np.testing.assert_array_equal(before[:5], after[:5])
    np.testing.assert_array_equal(before[11:], after[11:])
    assert not np.allclose(before[5:11], after[5:11])


def test_matches_kaldi_native_fbank_compute_deltas():
    rng = np.random.default_rng(2)
    feats, offsets = random_utterances(rng, [50, 3, 1, 20], dim=13)
    out = add_deltas(feats, offsets, order=2, window=2)
    for first, end in zip(offsets[:-1], offsets[1:]):
        expected = knf.compute_deltas(knf.DeltaOptions(order=2, window=2), feats[first:end])
        np.testing.assert_allclose(out[first:end], expected, rtol=1e-5, atol=1e-5)


def test_first_order_matches_torchaudio_compute_deltas():
    """torchaudio's compute_deltas (replicate padding, win_length = 2N + 1) is Kaldi's first order."""
    rng = np.random.default_rng(3)
    feats, offsets = random_utterances(rng, [40, 12], dim=4)
    out = add_deltas(feats, offsets, order=1, window=2)
    for first, end in zip(offsets[:-1], offsets[1:]):
        expected = torchaudio.functional.compute_deltas(torch.from_numpy(feats[first:end]).T, win_length=5).T
        np.testing.assert_allclose(out[first:end, 4:], expected.numpy(), rtol=1e-5, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6), st.integers(0, 3), st.integers(1, 3))
def test_property_any_lengths(lengths, order, window):
    rng = np.random.default_rng(sum(lengths))
    feats, offsets = random_utterances(rng, lengths, dim=2)
    out = add_deltas(feats, offsets, order, window)
    for first, end in zip(offsets[:-1], offsets[1:]):
        if end > first:
            np.testing.assert_allclose(out[first:end], deltas_loop(feats[first:end], order, window), atol=1e-4)


def test_no_offsets_means_one_utterance_and_bad_arguments_fail():
    rng = np.random.default_rng(4)
    feats, _ = random_utterances(rng, [9])
    np.testing.assert_array_equal(add_deltas(feats), add_deltas(feats, [0, 9]))
    with pytest.raises(ValueError, match="offsets"):
        add_deltas(feats, [0, 4, 8])
    with pytest.raises(ValueError, match="non-decreasing"):
        add_deltas(feats, [0, 5, 3, 9])
    with pytest.raises(ConfigError):
        add_deltas(feats, order=2, window=0)
