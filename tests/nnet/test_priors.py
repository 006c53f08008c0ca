"""Senone priors and the scaled likelihoods of DnnAcousticModel (log_softmax - log prior)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnet_helpers import tiny_hmm
from torch.nn import functional as F

from asr.errors import InputError
from asr.nnet.mlp import Mlp
from asr.nnet.model import DnnAcousticModel, write_dnn_model_dir
from asr.nnet.priors import log_priors, pdf_counts, read_pdf_counts, write_pdf_counts


def test_counts_smoothing_and_floor():
    counts = pdf_counts(np.array([0, 0, 2, 2, 2, 3]), 5)
    assert counts.tolist() == [2, 0, 3, 1, 0]
    lp = log_priors(counts, add=1.0, floor=0.0)
    assert np.allclose(np.exp(lp), np.array([3, 1, 4, 2, 1]) / 11)
    raw = np.exp(log_priors(counts, add=0.0, floor=1e-3))  # unseen pdfs floored, then renormalized
    assert np.all(raw > 0) and abs(raw.sum() - 1) < 1e-6
    assert raw[1] == pytest.approx(1e-3 / (1 + 2e-3), rel=1e-4)
    with pytest.raises(ValueError):
        pdf_counts(np.array([5]), 5)
    with pytest.raises(ValueError):
        log_priors(np.zeros(3), add=0.0)


def test_pdf_counts_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "pdf_counts.txt"
    write_pdf_counts(path, np.array([3, 0, 17]))
    assert path.read_text() == "[ 3 0 17 ]\n"
    assert read_pdf_counts(path).tolist() == [3, 0, 17]
    for bad in ("3 0 17\n", "[ 3 x ]\n", "[ ]\n", "[ -1 2 ]\n"):
        path.write_text(bad)
        with pytest.raises(InputError) as err:
            read_pdf_counts(path)
        assert err.value.path == str(path) and err.value.line == 1


def test_log_likelihoods_are_log_posteriors_minus_log_priors(tmp_path):
    gmm_dir = tmp_path / "gmm"
    _, ctx_dep, _ = tiny_hmm(gmm_dir)
    torch.manual_seed(0)
    mlp = Mlp(26 * 8, ctx_dep.num_pdfs, depth=2, width=16)
    mlp.set_input_normalization(np.full(8, 0.5), np.full(8, 2.0))
    counts = np.arange(ctx_dep.num_pdfs) * 10
    model_dir = write_dnn_model_dir(tmp_path / "dnn", mlp, counts, gmm_dir, {"name": "t"}, 13, 12)
    info = json.loads((model_dir / "model.json").read_text())
    assert info["kind"] == "dnn" and info["num_pdfs"] == 16 and info["feature_dim"] == 8
    for name in ("final.pt", "pdf_counts.txt", "topo.json", "tree.json", "transition_model.json", "phones.txt"):
        assert (model_dir / name).is_file()
    model = DnnAcousticModel.load(model_dir)
    assert model.feature_type == "fbank" and model.num_pdfs == 16
    assert model.transition_model.num_pdfs == 16 and model.ctx_dep.num_pdfs == 16
    feats = np.random.default_rng(0).normal(size=(37, 8)).astype(np.float32)
    model.batch_frames = 10  # several forward batches
    got = model.log_likelihoods(feats)
    assert got.shape == (37, 16) and got.dtype == np.float32
    from asr.features.context_window import splice

    expected = F.log_softmax(mlp.eval()(splice(feats, 13, 12)), dim=1).detach().numpy() - log_priors(counts)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, model.log_posteriors(feats) - log_priors(counts), rtol=1e-6, atol=1e-6)
    assert model.log_likelihoods(np.zeros((0, 8), np.float32)).shape == (0, 16)
    with pytest.raises(ValueError):
        model.log_likelihoods(np.zeros((5, 9), np.float32))


def test_load_refuses_bad_model_dirs(tmp_path):
    gmm_dir = tmp_path / "gmm"
    _, ctx_dep, _ = tiny_hmm(gmm_dir)
    mlp = Mlp(26 * 4, ctx_dep.num_pdfs, depth=1, width=8)
    model_dir = write_dnn_model_dir(tmp_path / "dnn", mlp, np.ones(16), gmm_dir, {}, 13, 12)
    weights = model_dir / "final.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot load the weights"):
        DnnAcousticModel.load(model_dir)
    weights.write_bytes(data)
    (model_dir / "pdf_counts.txt").write_text("[ 1 2 ]\n")
    with pytest.raises(InputError, match="disagree on the number of pdfs"):
        DnnAcousticModel.load(model_dir)
    with pytest.raises(InputError, match="not 'dnn'"):
        DnnAcousticModel.load(gmm_dir)
    with pytest.raises(ValueError):
        write_dnn_model_dir(tmp_path / "x", Mlp(26, 5, 1, 4), np.ones(5), gmm_dir, {}, 13, 12)
