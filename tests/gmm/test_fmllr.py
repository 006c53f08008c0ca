"""fMLLR (asr.gmm.fmllr) on synthetic speakers: features distorted by known affine maps are mapped back by
the estimated transforms (full and diagonal), the likelihood rises, the solution is a stationary point,
few-frame speakers keep the identity, and transforms compose, save and apply per utterance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.errors import ConfigError, InputError
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.fmllr import (
    SpeakerAdaptedTransform,
    SpeakerTransforms,
    accumulate_fmllr_stats,
    apply_affine,
    compose_affine,
    estimate_fmllr,
    fmllr_objective,
    identity_transform,
)
from asr.gmm.lda_mllt import SplicedTransform

DIM = 5


def _model(rng: np.random.Generator, num_pdfs: int = 12) -> DiagGmmSet:
    means = torch.from_numpy(rng.normal(scale=3.0, size=(num_pdfs, DIM)))
    variances = torch.from_numpy(rng.uniform(0.3, 2.0, size=(num_pdfs, DIM)))
    return DiagGmmSet(means, variances, torch.ones(num_pdfs, dtype=torch.float64), torch.arange(num_pdfs + 1))


def _sample(rng: np.random.Generator, gmm: DiagGmmSet, n: int) -> tuple[np.ndarray, np.ndarray]:
    pdf = rng.integers(0, gmm.num_pdfs, size=n)
    x = gmm.means.numpy()[pdf] + rng.normal(size=(n, DIM)) * np.sqrt(gmm.variances.numpy()[pdf])
    return x, pdf


def _loglike(gmm: DiagGmmSet, x: np.ndarray, pdf: np.ndarray) -> float:
    return float(gmm.log_likelihoods_of(torch.from_numpy(x), torch.from_numpy(pdf)).sum())


def test_fmllr_recovers_the_inverse_of_known_affine_maps_per_speaker():
    rng = np.random.default_rng(0)
    gmm = _model(rng)
    maps = [(rng.normal(scale=0.3, size=(DIM, DIM)) + np.eye(DIM) * s, rng.normal(size=DIM)) for s in (1.0, 1.6)]
    xs, ys, pdfs, spk = [], [], [], []
    for k, (m, c) in enumerate(maps):
        x, pdf = _sample(rng, gmm, 20000)
        xs.append(x)
        ys.append(x @ m.T + c)
        pdfs.append(pdf)
        spk.append(np.full(len(x), k))
    x, y, pdf, spk = map(np.concatenate, (xs, ys, pdfs, spk))
    stats = accumulate_fmllr_stats(gmm, torch.from_numpy(y), torch.from_numpy(pdf), spk, 2, chunk=3000)
    assert stats.beta == pytest.approx([20000, 20000])
    result = estimate_fmllr(stats)
    assert result.updated.all() and (result.gain > 0).all()
    for k, (m, c) in enumerate(maps):
        inverse = np.linalg.inv(m)
        expect = np.concatenate([inverse, (-inverse @ c)[:, None]], axis=1)
        np.testing.assert_allclose(result.w[k], expect, atol=0.05)
        rows = spk == k
        adapted = apply_affine(result.w[k], y[rows]).astype(np.float64)
        logdet = np.linalg.slogdet(result.w[k][:, :DIM])[1]
        before = _loglike(gmm, y[rows], pdf[rows])
        after = _loglike(gmm, adapted, pdf[rows]) + rows.sum() * logdet
        oracle = _loglike(gmm, x[rows], pdf[rows]) - rows.sum() * np.linalg.slogdet(m)[1]  # true map's likelihood
        assert after > before + 0.1 * rows.sum()
        assert after >= oracle - 1e-6 * abs(oracle)  # the ML estimate is at least as likely as the true inverse
    # the full update is a stationary point: d/dW = beta [A^-T 0] + K - [G_i w_i] = 0
    w = result.w[0]
    grad = stats.beta[0] * np.concatenate([np.linalg.inv(w[:, :DIM]).T, np.zeros((DIM, 1))], axis=1)
    grad += stats.k[0] - np.einsum("inm,im->in", stats.g[0], w)
    assert np.abs(grad).max() < 1e-4 * stats.beta[0]  # coordinate ascent stops at 1e-8 gain per frame and pass


def test_diag_update_min_count_and_objective():
    rng = np.random.default_rng(1)
    gmm = _model(rng)
    x, pdf = _sample(rng, gmm, 20000)
    scale, shift = rng.uniform(0.5, 2.0, size=DIM), rng.normal(size=DIM)
    y = x * scale + shift
    spk = np.zeros(len(x), dtype=np.int64)
    spk[:300] = 1  # a speaker with too few frames
    stats = accumulate_fmllr_stats(gmm, torch.from_numpy(y), torch.from_numpy(pdf), spk, 2)
    diag = estimate_fmllr(stats, update_type="diag")
    assert diag.updated.tolist() == [True, False]
    np.testing.assert_allclose(np.diag(diag.w[0][:, :DIM]), 1 / scale, rtol=0.03)
    np.testing.assert_allclose(diag.w[0][:, DIM], -shift / scale, atol=0.05)
    assert np.array_equal(diag.w[1], identity_transform(DIM)) and diag.gain[1] == 0
    full = estimate_fmllr(stats)
    assert full.gain[0] >= diag.gain[0] - 1e-6  # more parameters, at least as good
    gains = fmllr_objective(stats, full.w) - fmllr_objective(stats, np.stack([identity_transform(DIM)] * 2))
    assert gains[0] == pytest.approx(full.gain[0], rel=1e-9)
    # a few frames are enough when min_count allows it
    assert estimate_fmllr(stats, min_count=100).updated.all()
    with pytest.raises(ConfigError):
        estimate_fmllr(stats, update_type="offset")


def test_frame_weights_and_posterior_model():
    rng = np.random.default_rng(2)
    gmm = _model(rng)
    x, pdf = _sample(rng, gmm, 4000)
    feats, pdfs, spk = torch.from_numpy(x), torch.from_numpy(pdf), np.zeros(len(x), np.int64)
    weights = np.where(pdf < 3, 0.0, 1.0)
    weighted = accumulate_fmllr_stats(gmm, feats, pdfs, spk, 1, weights)
    kept = pdf >= 3
    subset = accumulate_fmllr_stats(gmm, feats[kept], pdfs[kept], spk[kept], 1)
    np.testing.assert_allclose(weighted.g, subset.g, rtol=1e-5)  # float32 outer products
    np.testing.assert_allclose(weighted.k, subset.k, rtol=1e-10)
    # posteriors from another model with the same layout (one Gaussian per pdf: the same statistics)
    other = DiagGmmSet(gmm.means + 1.0, gmm.variances, gmm.weights, gmm.pdf_offsets)
    via = accumulate_fmllr_stats(gmm, feats, pdfs, spk, 1, posterior_gmm=other, posterior_feats=feats + 1.0)
    np.testing.assert_allclose(via.g, accumulate_fmllr_stats(gmm, feats, pdfs, spk, 1).g, rtol=1e-5)


def test_compose_save_and_speaker_adapted_features(tmp_path):
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(DIM, DIM + 1)), rng.normal(size=(DIM, DIM + 1))
    x = rng.normal(size=(7, DIM)).astype(np.float32)
    np.testing.assert_allclose(
        apply_affine(compose_affine(w2, w1), x), apply_affine(w2, apply_affine(w1, x)), rtol=1e-4, atol=1e-4
    )
    trans = SpeakerTransforms(DIM, {"spk1": w1, "spk2": w2})
    trans.save(tmp_path / "trans.pt")
    back = SpeakerTransforms.load(tmp_path / "trans.pt")
    assert sorted(back.matrices) == ["spk1", "spk2"] and np.array_equal(back.matrices["spk2"], w2)
    assert np.array_equal(back.get("nobody"), identity_transform(DIM))
    with pytest.raises(InputError, match="not found"):
        SpeakerTransforms.load(tmp_path / "none.pt")
    base = SplicedTransform(rng.normal(size=(DIM, 3 * 2)), 1, 1)
    raw = rng.normal(size=(9, 2)).astype(np.float32)
    offsets = np.array([0, 4, 9])
    adapted = SpeakerAdaptedTransform(base, {"spk1-a": "spk1", "x-b": "x"}, back)
    out = adapted(raw, offsets, ["spk1-a", "x-b"])
    si = base(raw, offsets)
    np.testing.assert_allclose(out[:4], apply_affine(w1, si[:4]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[4:], si[4:])  # a speaker without a transform: unchanged
