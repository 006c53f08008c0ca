"""ML update: parameter recovery by EM, monotone objective, floors, pdfs without data, low counts."""

from __future__ import annotations

import pytest
import torch
from gmm_helpers import random_model

from asr.gmm import DiagGmmSet, GmmStats, GmmUpdateOptions, accumulate_pdf_stats, accumulate_stats

TRUE_WEIGHTS = torch.tensor([0.3, 0.7], dtype=torch.float64)
TRUE_MEANS = torch.tensor([[-2.0, 1.0, 0.0], [2.0, -1.0, 0.5]], dtype=torch.float64)
TRUE_VARS = torch.tensor([[0.5, 1.0, 0.3], [1.5, 0.3, 0.8]], dtype=torch.float64)


def _sample_mixture(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    comp = torch.multinomial(TRUE_WEIGHTS, n, replacement=True, generator=gen)
    noise = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return (TRUE_MEANS[comp] + noise * TRUE_VARS[comp].sqrt()).float()


def test_em_recovers_a_two_component_mixture():
    x = _sample_mixture(10000, seed=0)
    pdf_ids = torch.zeros(len(x), dtype=torch.int64)
    model = DiagGmmSet.from_stats(accumulate_pdf_stats(x, pdf_ids, 1))
    stats = accumulate_stats(model, x, pdf_ids)
    model = model.split(2, stats.pdf_occupancy(), seed=0)
    for _ in range(25):
        model, report = model.update(accumulate_stats(model, x, pdf_ids))
    assert model.num_gauss == 2 and report.num_gauss_removed == 0
    order = torch.argsort(model.means[:, 0])
    # tolerances: about 4 standard errors of the estimates from 10^4 samples (~3000 in the lighter component)
    torch.testing.assert_close(model.weights[order].double(), TRUE_WEIGHTS, atol=0.02, rtol=0)
    torch.testing.assert_close(model.means[order].double(), TRUE_MEANS, atol=0.1, rtol=0)
    torch.testing.assert_close(model.variances[order].double(), TRUE_VARS, atol=0, rtol=0.11)


def test_em_objective_never_decreases():
    gen = torch.Generator().manual_seed(1)
    sizes = [1, 2, 3, 4]
    truth = random_model(sizes, dim=4, seed=11)
    # sample data from the true model, one pdf per frame
    n = 8000
    pdf_ids = torch.randint(0, 4, (n,), generator=gen)
    lo, hi = truth.pdf_offsets[pdf_ids], truth.pdf_offsets[pdf_ids + 1]
    comp = lo + (torch.rand(n, generator=gen) * (hi - lo)).long()
    x = truth.means[comp] + torch.randn(n, 4, generator=gen) * truth.variances[comp].sqrt()
    model = DiagGmmSet.from_stats(accumulate_pdf_stats(x, pdf_ids, 4))
    model = model.split(10, torch.bincount(pdf_ids).double(), power=1.0, min_count=0.0, seed=3)
    assert model.num_gauss == 10 and model.num_gauss_per_pdf.tolist() != sizes
    options = GmmUpdateOptions(min_gaussian_occupancy=0.0, min_gaussian_weight=0.0)
    objectives = []
    for _ in range(12):
        model, report = model.update(accumulate_stats(model.to(dtype=torch.float64), x, pdf_ids), options)
        assert report.num_gauss_removed == 0 and report.num_variances_floored == 0
        assert report.aux_objf_change_per_frame >= -1e-9
        objectives.append(report.loglike_per_frame)
    diffs = torch.tensor(objectives).diff()
    assert (diffs >= -1e-7).all(), objectives
    assert objectives[-1] > objectives[0] + 0.01


def test_variance_floor_is_applied():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1000, 3, generator=gen) * torch.tensor([1.0, 2.0, 3.0])
    pdf_ids = torch.randint(0, 2, (1000,), generator=gen)
    x[pdf_ids == 1, 1] = 5.0  # a constant dimension within pdf 1
    stats = accumulate_pdf_stats(x, pdf_ids, 2)
    _, global_var = stats.global_mean_variance()
    model = DiagGmmSet.from_stats(stats)
    assert model.variances[1, 1].item() == pytest.approx(0.01 * global_var[1].item(), rel=1e-5)
    # the update applies the same floor and counts it
    new, report = model.update(accumulate_stats(model, x, pdf_ids))
    assert new.variances[1, 1].item() == pytest.approx(0.01 * global_var[1].item(), rel=1e-5)
    assert report.num_variances_floored == 1 and report.num_gauss_floored == 1
    # an explicit floor vector wins; the fraction is configurable
    explicit, _ = model.update(accumulate_stats(model, x, pdf_ids), variance_floor=torch.tensor([0.1, 0.7, 0.1]))
    assert explicit.variances[1, 1].item() == pytest.approx(0.7)
    frac, _ = model.update(accumulate_stats(model, x, pdf_ids), GmmUpdateOptions(var_floor_fraction=0.1))
    assert frac.variances[1, 1].item() == pytest.approx(0.1 * global_var[1].item(), rel=1e-5)
    assert (new.variances[0] > 0.5).all()  # unfloored pdf untouched by the floor


def test_pdf_without_data_keeps_its_parameters(caplog):
    model = random_model([2, 3, 1], dim=3, seed=5)
    gen = torch.Generator().manual_seed(6)
    x = 2.0 * torch.randn(2000, 3, generator=gen)
    pdf_ids = torch.randint(0, 2, (2000,), generator=gen) * 2  # pdfs 0 and 2 only
    with caplog.at_level("WARNING"):
        new, report = model.update(accumulate_stats(model, x, pdf_ids))
    assert report.num_pdfs_without_data == 1
    assert "1 of 3 pdfs had no data" in caplog.text
    old_r, new_r = model.gauss_range(1), new.gauss_range(1)
    assert len(new_r) == 3
    for name in ("means", "variances", "weights"):
        assert torch.equal(getattr(new, name)[new_r.start : new_r.stop], getattr(model, name)[old_r.start : old_r.stop])
    assert not torch.equal(new.means[new.gauss_range(0).start], model.means[0])  # pdfs with data do move


def _two_gauss_stats(occupancies: list[float]) -> tuple[DiagGmmSet, GmmStats]:
    """One pdf with two Gaussians and hand-made statistics (mean 1 and 3, variance 1 each)."""
    model = DiagGmmSet(
        torch.tensor([[0.0], [4.0]]), torch.tensor([[2.0], [2.0]]), torch.tensor([0.5, 0.5]), torch.tensor([0, 2])
    )
    occ = torch.tensor(occupancies, dtype=torch.float64)
    mean = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    stats = GmmStats(occ, occ[:, None] * mean, occ[:, None] * (mean * mean + 1.0), model.pdf_offsets, 0.0, occ.sum())
    return model, stats


def test_low_count_gaussian_removed_or_kept():
    model, stats = _two_gauss_stats([100.0, 5.0])
    removed, report = model.update(stats)
    assert report.num_gauss_removed == 1 and removed.num_gauss == 1
    assert removed.means.tolist() == [[1.0]] and removed.weights.tolist() == [1.0]

    kept, report = model.update(stats, GmmUpdateOptions(remove_low_count_gaussians=False))
    assert report.num_gauss_removed == 0 and report.num_gauss_not_updated == 1 and kept.num_gauss == 2
    assert kept.means.tolist() == [[1.0], [4.0]]  # low-count Gaussian keeps its mean and variance
    assert kept.variances[1].item() == 2.0 and kept.variances[0].item() == pytest.approx(1.0)
    torch.testing.assert_close(kept.weights, torch.tensor([100 / 105, 5 / 105]))

    # every Gaussian of the pdf below the threshold: the most occupied one stays, unchanged
    model, stats = _two_gauss_stats([3.0, 6.0])
    new, report = model.update(stats)
    assert new.num_gauss == 1 and new.means.tolist() == [[4.0]] and new.weights.tolist() == [1.0]
    assert report.num_gauss_removed == 1 and report.num_gauss_not_updated == 1
