"""Mixing up: split targets (Kaldi's GetSplitTargets) and splitting the heaviest Gaussians."""

from __future__ import annotations

import torch
from gmm_helpers import UNEVEN_SIZES, random_model

from asr.gmm import DiagGmmSet, split_targets


def _per_pdf_weight_sums(model: DiagGmmSet) -> torch.Tensor:
    return torch.zeros(model.num_pdfs, dtype=torch.float64).index_add_(0, model.gauss_to_pdf, model.weights.double())


def test_split_reaches_target_and_keeps_weights_normalised():
    model = DiagGmmSet.flat_start(20, torch.zeros(4), torch.ones(4))
    occupancy = torch.linspace(100.0, 5000.0, 20, dtype=torch.float64)
    split = model.split(150, occupancy)
    assert split.num_gauss == 150
    torch.testing.assert_close(_per_pdf_weight_sums(split), torch.ones(20, dtype=torch.float64))
    sizes = split.num_gauss_per_pdf
    assert (sizes.diff() >= 0).all() and sizes[-1] > sizes[0]  # more data, more Gaussians
    # shares follow occupancy^0.2: the largest pdf has about (5000/100)^0.2 = 2.2x the smallest
    assert 1.8 <= sizes[-1] / sizes[0] <= 2.7
    # a second round of mixing up starts from uneven sizes
    more = split.split(300, occupancy)
    assert more.num_gauss == 300 and (more.num_gauss_per_pdf >= sizes).all()
    torch.testing.assert_close(_per_pdf_weight_sums(more), torch.ones(20, dtype=torch.float64))


def test_split_of_one_gaussian_perturbs_by_the_stddev():
    model = DiagGmmSet(torch.tensor([[1.0, -2.0]]), torch.tensor([[4.0, 0.25]]), torch.ones(1), torch.tensor([0, 1]))
    split = model.split(2, torch.tensor([1000.0]), perturb_factor=0.2, seed=0)
    noise = torch.randn(1, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    delta = 0.2 * noise * torch.tensor([2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(split.means[0].double(), torch.tensor([1.0, -2.0]).double() - delta)
    torch.testing.assert_close(split.means[1].double(), torch.tensor([1.0, -2.0]).double() + delta)
    assert torch.equal(split.variances, model.variances.expand(2, -1))
    assert split.weights.tolist() == [0.5, 0.5]


def test_split_heaviest_first_and_deterministic():
    model = random_model(UNEVEN_SIZES, dim=3, seed=4)
    occupancy = torch.full((len(UNEVEN_SIZES),), 1000.0)
    a = model.split(80, occupancy, seed=7)
    b = model.split(80, occupancy, generator=torch.Generator().manual_seed(7))
    c = model.split(80, occupancy, seed=8)
    assert torch.equal(a.means, b.means) and torch.equal(a.weights, b.weights)
    assert not torch.equal(a.means, c.means)
    torch.testing.assert_close(_per_pdf_weight_sums(a), torch.ones(len(UNEVEN_SIZES), dtype=torch.float64))
    # pdf 0 had one Gaussian: after one split both halves weigh 0.5, the next splits take them in turn
    r = a.gauss_range(0)
    w = a.weights[r.start : r.stop]
    assert len(r) == 8 and torch.allclose(w, torch.full((8,), 0.125))
    # original Gaussians come first in each pdf; an unsplit Gaussian is unchanged
    r3 = a.gauss_range(7)
    assert len(r3) == 12  # pdf 7 already had 12 >= its target of 8: left alone
    assert torch.equal(a.means[r3.start : r3.stop], model.means[model.gauss_range(7).start : model.gauss_range(7).stop])


def test_split_targets_follow_kaldi():
    occ = torch.tensor([0.0, 10.0, 100.0, 1000.0, 10000.0])
    targets = split_targets(occ, 20, power=0.2, min_count=0.0)
    assert targets.sum() == 20
    assert targets[0] == 1  # no data: never split
    assert (targets[1:].diff() >= 0).all()
    # greedy allocation = water filling: the priority a/t of any pdf's next Gaussian is no higher than the
    # priority a/(t-1) at which any pdf got its last one
    a = occ[1:] ** 0.2
    t = targets[1:].double()
    assert (a / t).max() <= (a / (t - 1))[t > 1].min()
    # by hand: a = 1.58, 2.51, 3.98, 6.31; the 15 increments taken have priorities >= 0.837 (2.51/3), the best
    # one left is 3.98/5 = 0.796
    assert targets.tolist() == [1, 2, 4, 5, 8]
    # min_count caps: pdf with 100 frames and min_count 30 may hold at most 3 Gaussians (4 * 30 >= 100)
    capped = split_targets(occ, 1000, power=1.0, min_count=30.0)
    assert capped[2] == 3 and capped[1] == 1
    assert capped.sum() < 1000  # could not reach the target


def test_split_noop_when_at_target():
    model = random_model([2, 2], dim=2)
    assert model.split(3, torch.tensor([50.0, 50.0])) is model
