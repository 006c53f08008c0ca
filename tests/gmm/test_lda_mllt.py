"""LDA and MLLT (asr.gmm.lda_mllt) on synthetic data: splicing as splice-feats, LDA finds the discriminant
subspace, MLLT raises the data likelihood at every step and undoes a shared linear mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.errors import InputError
from asr.features.context_window import splice
from asr.gmm.accumulate import accumulate_pdf_stats
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.lda_mllt import (
    LdaStats,
    SplicedTransform,
    accumulate_mllt_stats,
    context_indices,
    estimate_lda,
    estimate_mllt,
    transform_gmm_means,
)


def test_spliced_transform_is_splice_then_matrix(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(23, 4)).astype(np.float32)
    offsets = np.array([0, 1, 9, 23])  # a one-frame utterance too
    matrix = rng.normal(size=(5, 7 * 4))
    transform = SplicedTransform(matrix, 3, 3)
    out = transform(raw, offsets)
    expect = np.concatenate([splice(raw[a:b], 3, 3).numpy() @ matrix.T for a, b in zip(offsets[:-1], offsets[1:])])
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
    assert transform.input_dim == 4 and transform.output_dim == 5
    idx = context_indices(offsets, 3, 3, np.array([0, 1, 22]))
    assert idx.tolist() == [[0] * 7, [1, 1, 1, 1, 2, 3, 4], [19, 20, 21, 22, 22, 22, 22]]
    # composition and the file round trip
    a = rng.normal(size=(5, 5))
    np.testing.assert_allclose(transform.compose(a)(raw, offsets), out @ a.T, rtol=1e-4, atol=1e-4)
    transform.save(tmp_path / "t.pt")
    back = SplicedTransform.load(tmp_path / "t.pt")
    assert np.array_equal(back.matrix, transform.matrix) and (back.left, back.right) == (3, 3)
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read transform"):
        SplicedTransform.load(tmp_path / "bad.pt")


def test_lda_recovers_the_discriminant_directions():
    rng = np.random.default_rng(1)
    dim, num_classes, per_class = 6, 8, 3000
    # class means differ only inside span(V); the within-class covariance W is shared and far from identity
    v = np.linalg.qr(rng.normal(size=(dim, 2)))[0]
    centres = rng.normal(scale=3.0, size=(num_classes, 2)) @ v.T
    mix = rng.normal(size=(dim, dim)) + 2 * np.eye(dim)
    within = mix @ mix.T
    x = np.concatenate([rng.multivariate_normal(c, within, size=per_class) for c in centres])
    labels = np.repeat(np.arange(num_classes), per_class)
    stats = LdaStats.zeros(num_classes, dim).accumulate(x, labels, chunk=5000)
    lda = estimate_lda(stats, dim=2)
    # the discriminant directions are W^-1 V: the LDA rows must lie in their span
    basis = np.linalg.qr(np.linalg.solve(within, v))[0]
    rows = lda.matrix / np.linalg.norm(lda.matrix, axis=1, keepdims=True)
    residual = rows - (rows @ basis) @ basis.T
    assert np.linalg.norm(residual, axis=1).max() < 0.05, residual
    # two informative eigenvalues, the others ~0; projected within-class covariance = identity
    assert lda.eigenvalues[1] > 20 * np.abs(lda.eigenvalues[2:]).max(), lda.eigenvalues
    y = x @ lda.matrix.T
    wc = sum(np.cov(y[labels == c].T, bias=True) * per_class for c in range(num_classes)) / len(y)
    np.testing.assert_allclose(wc, np.eye(2), atol=0.05)
    with pytest.raises(ValueError, match="LDA dimension"):
        estimate_lda(stats, dim=7)


def _log_likelihood(gmm: DiagGmmSet, x: torch.Tensor, pdf: torch.Tensor) -> float:
    return float(gmm.log_likelihoods_of(x, pdf).double().sum())


def test_mllt_raises_the_likelihood_monotonically_and_undoes_the_mixing():
    rng = np.random.default_rng(2)
    dim, num_classes, per_class = 5, 6, 2000
    mixing = rng.normal(size=(dim, dim)) + 1.5 * np.eye(dim)  # shared full covariances: mixing diag(s_c) mixing^T
    z = np.concatenate(
        [
            rng.normal(size=(per_class, dim)) * rng.uniform(0.3, 3.0, size=dim) + rng.normal(scale=4, size=dim)
            for _ in range(num_classes)
        ]
    )
    x = torch.from_numpy(z @ mixing.T)
    pdf = torch.from_numpy(np.repeat(np.arange(num_classes), per_class))
    gmm = DiagGmmSet.from_stats(accumulate_pdf_stats(x, pdf, num_classes), dtype=torch.float64)
    log_det_total = 0.0
    total = np.eye(dim)
    history = [_log_likelihood(gmm, x, pdf)]
    for _ in range(6):
        stats = accumulate_mllt_stats(gmm, x, pdf, min_post=0.0)
        result = estimate_mllt(stats)
        assert result.objf_gain >= -1e-6 and result.count == pytest.approx(len(x))
        a = result.matrix
        # after the MLLT step (old variances, means times A): the likelihood in the original space rises
        x = x @ torch.from_numpy(a).T
        gmm = transform_gmm_means(gmm, a)
        log_det_total += np.linalg.slogdet(a)[1]
        total = a @ total
        history.append(_log_likelihood(gmm, x, pdf) + len(x) * log_det_total)
        # and again after re-estimating means and variances in the new space
        gmm = DiagGmmSet.from_stats(accumulate_pdf_stats(x, pdf, num_classes), dtype=torch.float64)
        history.append(_log_likelihood(gmm, x, pdf) + len(x) * log_det_total)
    gains = np.diff(history)
    assert (gains > -1e-6 * abs(history[0])).all(), gains
    assert (history[-1] - history[0]) / len(x) > 0.5  # a full-covariance structure was recovered
    # A_total undoes the mixing up to row scaling and permutation: A_total @ mixing is a scaled permutation
    product = total @ mixing
    product /= np.abs(product).max(axis=1, keepdims=True)
    assert np.sort(np.abs(product), axis=1)[:, -2].max() < 0.1, product
