"""Helpers for the GMM tests: random models with uneven mixture sizes and a float64 reference scorer."""

from __future__ import annotations

import torch

from asr.gmm import DiagGmmSet


def random_model(
    sizes: list[int], dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float32, offset: float = 0.0
) -> DiagGmmSet:
    """A model whose pdf ``p`` has ``sizes[p]`` Gaussians with random means (around ``offset``),
    variances and weights."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.tensor(sizes)
    num_gauss = int(counts.sum())
    gauss_to_pdf = torch.repeat_interleave(torch.arange(len(sizes)), counts)
    weights = torch.rand(num_gauss, generator=gen, dtype=torch.float64) + 0.2
    weights = weights / torch.zeros(len(sizes), dtype=torch.float64).index_add_(0, gauss_to_pdf, weights)[gauss_to_pdf]
    means = offset + 2.0 * torch.randn(num_gauss, dim, generator=gen, dtype=torch.float64)
    variances = 0.3 + 2.0 * torch.rand(num_gauss, dim, generator=gen, dtype=torch.float64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    return DiagGmmSet(means.to(dtype), variances.to(dtype), weights.to(dtype), offsets)


def reference_log_likelihoods(model: DiagGmmSet, x: torch.Tensor) -> torch.Tensor:
    """[N, P] float64 per-pdf log-likelihoods, the naive way: torch.distributions per Gaussian, then a
    log-sum-exp per pdf in a Python loop."""
    means = model.means.double()
    scales = model.variances.double().sqrt()
    per_gauss = torch.distributions.Normal(means, scales).log_prob(x.double()[:, None, :]).sum(-1)
    per_gauss = per_gauss + model.weights.double().log()
    cols = []
    for p in range(model.num_pdfs):
        r = model.gauss_range(p)
        cols.append(torch.logsumexp(per_gauss[:, r.start : r.stop], dim=1))
    return torch.stack(cols, dim=1)


# Mixture sizes that differ per pdf (as after mixing up), including singletons.
UNEVEN_SIZES = [1, 3, 2, 7, 1, 4, 4, 12, 2, 5]
