"""CMVN statistics and normalization (Kaldi layout, compared with kaldi-native-fbank) and grouping."""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import pytest
from features_helpers import make_an4_dir

from asr.data.datadir import read_data_dir
from asr.errors import ConfigError, InputError
from asr.features.cmvn import apply_cmvn, cmvn_groups, cmvn_stats


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(200, 6)) * [1, 2, 3, 4, 5, 0.5] + [10, -3, 0, 7, 1, 2]).astype(np.float32)


def test_stats_match_kaldi_native_fbank(feats):
    stats = cmvn_stats(feats)
    assert stats.shape == (2, 7) and stats.dtype == np.float64
    assert stats[0, -1] == 200 and stats[1, -1] == 0
    np.testing.assert_allclose(stats, knf.compute_cmvn_stats(feats), rtol=1e-10)


@pytest.mark.parametrize("norm_vars", [False, True])
def test_apply_matches_kaldi_native_fbank(feats, norm_vars):
    stats = cmvn_stats(feats)
    opts = knf.CmvnOptions()
    opts.norm_vars = norm_vars
    ours = apply_cmvn(feats, stats, norm_vars)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, knf.apply_cmvn(stats, opts, feats), atol=1e-5)
    np.testing.assert_allclose(ours.mean(axis=0), 0, atol=1e-4)
    if norm_vars:
        np.testing.assert_allclose(ours.std(axis=0), 1, atol=1e-4)


def test_stats_of_parts_add_up(feats):
    np.testing.assert_allclose(cmvn_stats(feats[:50]) + cmvn_stats(feats[50:]), cmvn_stats(feats))


def test_constant_dimension_is_floored_not_nan():
    feats = np.ones((10, 2), dtype=np.float32)
    out = apply_cmvn(feats, cmvn_stats(feats), norm_vars=True)
    assert np.isfinite(out).all()


def test_groups_per_speaker_utterance_none():
    utts = ["a-1", "a-2", "b-1", "c-1", "c-2"]
    utt2spk = {"a-1": "a", "a-2": "a", "b-1": "b", "c-1": "c", "c-2": "c"}
    assert cmvn_groups(utts, utt2spk, "speaker") == [("a", 0, 2), ("b", 2, 3), ("c", 3, 5)]
    assert cmvn_groups(utts, utt2spk, "utterance") == [(u, i, i + 1) for i, u in enumerate(utts)]
    assert cmvn_groups(utts, utt2spk, "none") == []
    with pytest.raises(ConfigError):
        cmvn_groups(utts, utt2spk, "global")


def test_non_contiguous_speaker_is_an_input_error_naming_the_line(tmp_path, an4_root):
    data_path = make_an4_dir(an4_root, tmp_path / "data", speakers=("fash", "mblb"), per_speaker=2)
    data = read_data_dir(data_path)
    # give the last utterance to the first speaker: its utterances are no longer contiguous
    last = data.utt_ids[-1]
    data.utt2spk[last] = "fash"
    (data_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(data.utt2spk.items())))
    with pytest.raises(InputError, match="not contiguous") as info:
        cmvn_groups(data.utt_ids, data.utt2spk, "speaker", data_path / "utt2spk")
    assert info.value.path == str(data_path / "utt2spk") and info.value.line == 4
    with pytest.raises(InputError, match="no speaker"):
        cmvn_groups(["x-1"], {}, "speaker")
