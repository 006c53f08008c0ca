"""Scoring: all-pdf and own-pdf log-likelihoods and posteriors against a naive float64 reference."""

from __future__ import annotations

import pytest
import torch
from gmm_helpers import UNEVEN_SIZES, random_model, reference_log_likelihoods

from asr.errors import InputError
from asr.gmm import DiagGmmSet


def test_log_likelihoods_match_reference_float64():
    model = random_model(UNEVEN_SIZES, dim=6, dtype=torch.float64)
    x = 2.5 * torch.randn(300, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = reference_log_likelihoods(model, x)
    got = model.log_likelihoods(x)
    assert got.shape == (300, len(UNEVEN_SIZES))
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_log_likelihoods_float32_any_batch_size(batch_size):
    model = random_model(UNEVEN_SIZES, dim=13, seed=3)
    x = 2.0 * torch.randn(150, 13, generator=torch.Generator().manual_seed(2))
    ref = reference_log_likelihoods(model, x)
    got = model.log_likelihoods(x, batch_size=batch_size)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-3)


def test_float32_precision_on_uncentred_features():
    # MFCC c0 without CMVN sits far from 0: the centring keeps float32 scores accurate.
    model = random_model(UNEVEN_SIZES, dim=39, seed=4, offset=60.0)
    x = 60.0 + 2.0 * torch.randn(200, 39, generator=torch.Generator().manual_seed(5))
    ref = reference_log_likelihoods(model, x)
    got = model.log_likelihoods(x).double()
    assert (got - ref).abs().max() < 2e-3 * ref.abs().max()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=5e-3)


def test_gauss_log_likelihoods_match_reference_per_gaussian():
    model = random_model([2, 1, 3], dim=4, dtype=torch.float64)
    x = torch.randn(20, 4, dtype=torch.float64)
    per_gauss = torch.distributions.Normal(model.means, model.variances.sqrt()).log_prob(x[:, None, :]).sum(-1)
    torch.testing.assert_close(model.gauss_log_likelihoods(x), per_gauss + model.weights.log())


@pytest.mark.parametrize("chunk_elements", [1, 100, None])
def test_own_pdf_scores_and_posteriors(chunk_elements):
    model = random_model(UNEVEN_SIZES, dim=5, seed=7, dtype=torch.float64)
    gen = torch.Generator().manual_seed(8)
    x = 2.0 * torch.randn(400, 5, generator=gen, dtype=torch.float64)
    pdf_ids = torch.randint(0, model.num_pdfs, (400,), generator=gen, dtype=torch.int32)
    ref = reference_log_likelihoods(model, x)[torch.arange(400), pdf_ids.long()]
    torch.testing.assert_close(model.log_likelihoods_of(x, pdf_ids, chunk_elements=chunk_elements), ref)

    loglikes, gauss_ids, post = model.gauss_posteriors(x, pdf_ids, chunk_elements=chunk_elements)
    torch.testing.assert_close(loglikes, ref)
    assert gauss_ids.shape == post.shape == (400, max(UNEVEN_SIZES))
    per_gauss = model.gauss_log_likelihoods(x)
    for n in range(0, 400, 37):
        r = model.gauss_range(int(pdf_ids[n]))
        m = len(r)
        assert gauss_ids[n, :m].tolist() == list(r) and (gauss_ids[n, m:] == -1).all()
        expected = torch.softmax(per_gauss[n, r.start : r.stop], dim=0)
        torch.testing.assert_close(post[n, :m], expected)
        assert (post[n, m:] == 0).all()
    torch.testing.assert_close(post.sum(1), torch.ones(400, dtype=torch.float64))


def test_empty_input():
    model = random_model(UNEVEN_SIZES, dim=3)
    assert model.log_likelihoods(torch.zeros(0, 3)).shape == (0, len(UNEVEN_SIZES))
    assert model.log_likelihoods_of(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64)).shape == (0,)


def test_bad_inputs():
    model = random_model([1, 2], dim=3)
    x = torch.randn(4, 3)
    with pytest.raises(InputError, match="pdf id 2"):
        model.log_likelihoods_of(x, torch.tensor([0, 1, 2, 0]))
    with pytest.raises(InputError, match="pdf id -1"):
        model.gauss_posteriors(x, torch.tensor([0, -1, 1, 0]))
    x[2, 1] = float("nan")
    with pytest.raises(InputError, match="non-finite.*frame 2"):
        model.log_likelihoods_of(x, torch.tensor([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="features"):
        model.log_likelihoods(torch.randn(4, 5))
    with pytest.raises(ValueError, match="pdf_ids"):
        model.log_likelihoods_of(torch.randn(4, 3), torch.tensor([0, 1]))


def test_far_apart_gaussians_in_one_pdf_stay_finite_and_exact():
    # Scores of one pdf's Gaussians differ by ~10^4 nats at these frames: exp() of the raw differences would
    # overflow float32; the per-pdf max shift must keep the result exact.
    dim = 39
    means = torch.stack([torch.zeros(dim), torch.full((dim,), 30.0), torch.full((dim,), -5.0)])
    model = DiagGmmSet(means, torch.ones(3, dim), torch.tensor([0.3, 0.7, 1.0]), torch.tensor([0, 2, 3]))
    x = torch.cat([torch.full((2, dim), 30.0), torch.zeros(2, dim), torch.full((1, dim), -40.0)])
    ref = reference_log_likelihoods(model, x)
    got = model.log_likelihoods(x).double()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-2)  # float32: ~2e-6 relative on 2e4 nats
    own = model.log_likelihoods_of(x, torch.zeros(5, dtype=torch.int64)).double()
    torch.testing.assert_close(own, ref[:, 0], rtol=1e-5, atol=1e-2)
