"""Statistics accumulation: sums of posteriors and moments, additivity, weights, files."""

from __future__ import annotations

import pytest
import torch
from gmm_helpers import UNEVEN_SIZES, random_model

from asr.errors import InputError
from asr.gmm import DiagGmmSet, GmmStats, accumulate_pdf_stats, accumulate_stats, feature_mean_variance


def _data(n: int, dim: int, num_pdfs: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, dim, generator=gen), torch.randint(0, num_pdfs, (n,), generator=gen)


def test_stats_equal_explicit_posterior_sums():
    model = random_model(UNEVEN_SIZES, dim=4, seed=1)
    x, pdf_ids = _data(500, 4, model.num_pdfs)
    stats = accumulate_stats(model, x, pdf_ids, chunk_elements=200)
    _, gauss_ids, post = model.gauss_posteriors(x.double(), pdf_ids)
    dense = torch.zeros(500, model.num_gauss, dtype=torch.float64)
    valid = gauss_ids >= 0
    dense[torch.arange(500)[:, None].expand_as(gauss_ids)[valid], gauss_ids[valid]] = post[valid].double()
    xd = x.double()
    torch.testing.assert_close(stats.occupancy, dense.sum(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.first_order, dense.T @ xd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats.second_order, dense.T @ (xd * xd), rtol=1e-5, atol=1e-5)
    assert stats.num_frames == 500
    expected_loglike = model.to(dtype=torch.float64).log_likelihoods_of(xd, pdf_ids).sum()
    assert stats.loglike_sum.item() == pytest.approx(expected_loglike.item(), rel=1e-5)
    assert stats.occupancy.dtype == torch.float64
    # Per pdf, the occupancy is the number of frames aligned to it.
    torch.testing.assert_close(stats.pdf_occupancy(), torch.bincount(pdf_ids, minlength=model.num_pdfs).double())


def test_two_halves_sum_to_the_whole():
    model = random_model(UNEVEN_SIZES, dim=6, seed=2)
    x, pdf_ids = _data(1001, 6, model.num_pdfs, seed=3)
    whole = accumulate_stats(model, x, pdf_ids)
    first = accumulate_stats(model, x[:400], pdf_ids[:400])
    second = accumulate_stats(model, x[400:], pdf_ids[400:])
    summed = first + second
    for name in ("occupancy", "first_order", "second_order", "loglike_sum", "frame_count"):
        torch.testing.assert_close(getattr(summed, name), getattr(whole, name), rtol=1e-12, atol=1e-9)
    # accumulating into existing stats is the same as adding
    into = accumulate_stats(model, x[400:], pdf_ids[400:], accumulate_stats(model, x[:400], pdf_ids[:400]))
    torch.testing.assert_close(into.second_order, whole.second_order, rtol=1e-12, atol=1e-9)


def test_frame_weights_equal_repeated_frames():
    model = random_model([2, 3], dim=3, seed=4)
    x, pdf_ids = _data(50, 3, 2, seed=5)
    weights = torch.randint(0, 3, (50,)).double()
    weighted = accumulate_stats(model, x, pdf_ids, frame_weights=weights)
    reps = weights.long()
    repeated = accumulate_stats(model, x.repeat_interleave(reps, 0), pdf_ids.repeat_interleave(reps))
    for name in ("occupancy", "first_order", "second_order", "loglike_sum", "frame_count"):
        torch.testing.assert_close(getattr(weighted, name), getattr(repeated, name), rtol=1e-9, atol=1e-9)


def test_pdf_stats_and_from_stats_give_per_pdf_gaussians():
    x, pdf_ids = _data(3000, 5, 4, seed=6)
    x = x + pdf_ids[:, None].float()  # different means per pdf
    pdf_ids[pdf_ids == 2] = 1  # pdf 2 gets no data
    stats = accumulate_pdf_stats(x, pdf_ids, 4)
    model = DiagGmmSet.from_stats(stats)
    assert model.num_pdfs == 4 and model.num_gauss == 4
    gmean, gvar = feature_mean_variance(x)
    for p in (0, 1, 3):
        frames = x[pdf_ids == p].double()
        torch.testing.assert_close(model.means[p].double(), frames.mean(0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.variances[p].double(), frames.var(0, unbiased=False), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.means[2].double(), gmean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.variances[2].double(), gvar, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gmean, x.double().mean(0))
    torch.testing.assert_close(gvar, x.double().var(0, unbiased=False))


def test_flat_start():
    mean, var = torch.arange(3.0), torch.tensor([1.0, 2.0, 3.0])
    model = DiagGmmSet.flat_start(5, mean, var)
    assert model.num_pdfs == 5 and model.num_gauss == 5
    assert (model.means == mean).all() and (model.variances == var).all() and (model.weights == 1).all()
    ll = model.log_likelihoods(torch.randn(7, 3))
    assert torch.allclose(ll, ll[:, :1].expand_as(ll))  # every pdf scores the same


def test_stats_save_load_round_trip(tmp_path):
    model = random_model(UNEVEN_SIZES, dim=3, seed=9)
    x, pdf_ids = _data(200, 3, model.num_pdfs)
    stats = accumulate_stats(model, x, pdf_ids)
    path = tmp_path / "acc" / "1.acc"
    stats.save(path)
    loaded = GmmStats.load(path)
    for name in ("occupancy", "first_order", "second_order", "pdf_offsets", "loglike_sum", "frame_count"):
        assert torch.equal(getattr(loaded, name), getattr(stats, name)), name
    assert isinstance(torch.load(path, weights_only=True), dict)


def test_stats_layout_mismatch_is_refused():
    a = GmmStats.zeros(torch.tensor([0, 1, 3]), 2)
    b = GmmStats.zeros(torch.tensor([0, 2, 3]), 2)
    with pytest.raises(ValueError, match="different layouts"):
        a.add_(b)
    model = random_model([1, 2], dim=2)
    with pytest.raises(ValueError, match="layout"):
        model.update(b)
    with pytest.raises(ValueError, match="layout"):
        accumulate_stats(model, torch.randn(3, 2), torch.tensor([0, 1, 1]), b)


def test_accumulate_bad_input():
    model = random_model([1, 2], dim=2)
    with pytest.raises(InputError, match="pdf id 5"):
        accumulate_stats(model, torch.randn(3, 2), torch.tensor([0, 5, 1]))
    with pytest.raises(InputError, match="pdf id 3"):
        accumulate_pdf_stats(torch.randn(3, 2), torch.tensor([0, 3, 1]), 3)
    with pytest.raises(InputError, match="negative"):
        accumulate_stats(model, torch.randn(3, 2), torch.tensor([0, 1, 1]), frame_weights=torch.tensor([1.0, -1, 1]))
    with pytest.raises(InputError, match="non-finite"):
        accumulate_stats(model, torch.tensor([[0.0, float("inf")]]), torch.tensor([1]))


def test_stats_bad_file(tmp_path):
    path = tmp_path / "bad.acc"
    torch.save({"format": "asr.gmm_stats", "version": 1, "occupancy": torch.zeros(3)}, path)
    with pytest.raises(InputError, match="first_order") as err:
        GmmStats.load(path)
    assert err.value.path == str(path)
    stats = GmmStats.zeros(torch.tensor([0, 1, 3]), 2).state_dict()
    stats["occupancy"] = torch.full((3,), -1.0, dtype=torch.float64)
    torch.save(stats, path)
    with pytest.raises(InputError, match="negative occupancy"):
        GmmStats.load(path)
