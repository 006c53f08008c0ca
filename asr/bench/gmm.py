"""Benchmark: E-step throughput of the diagonal GMM acoustic model at AN4 triphone scale.

A synthetic model shaped like an AN4 tied-state triphone system after mixing up: D = 39, P = 500 pdfs,
about 3000 Gaussians shared out by Kaldi's rule (``occupancy^0.2``, log-normal occupancies), random
parameters; frames drawn from the model with random pdf ids. Prints frames per second (best of
``--repeats`` runs) for:

- ``matmul``: the bare ``[B, 2D + 1] @ [2D + 1, G]`` product of the same shape (the floor the scoring builds on);
- ``loglikes all pdfs``: :meth:`DiagGmmSet.log_likelihoods` (decoding, alignment);
- ``loglikes padded``: the same via a padded [P, Mmax] layout reducing over the innermost axis (the
  alternative the module docstring argues against), for comparison;
- ``loglikes own pdf``: :meth:`DiagGmmSet.log_likelihoods_of`;
- ``accumulate``: :func:`accumulate_stats` (training E-step: posteriors + float64 statistics);
- the M-step (``update``) and a mix-up (``split``) once each.

Timings are wall-clock on whatever else the machine is doing; on a shared machine take them as rough::

    python -m asr.bench.gmm [--frames 200000] [--pdfs 500] [--gauss 3000] [--dim 39] [--device cpu]
        [--batch-sizes 256,1024,4096] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

from asr.gmm import DiagGmmSet, accumulate_stats, split_targets
from asr.gmm.diag_gmm import DEFAULT_CHUNK_ELEMENTS
from asr.logging_setup import setup_logging


def synthetic_model(num_pdfs: int, num_gauss: int, dim: int, seed: int = 0) -> DiagGmmSet:
    """Return a random model whose mixture sizes follow Kaldi's mix-up shares of log-normal occupancies."""
    gen = torch.Generator().manual_seed(seed)
    occupancy = torch.exp(torch.randn(num_pdfs, generator=gen, dtype=torch.float64) * 1.2 + 6.0)
    sizes = split_targets(occupancy, num_gauss, power=0.2, min_count=0.0)
    g = int(sizes.sum())
    g2p = torch.repeat_interleave(torch.arange(num_pdfs), sizes)
    weights = torch.rand(g, generator=gen, dtype=torch.float64) + 0.1
    weights = weights / torch.zeros(num_pdfs, dtype=torch.float64).index_add_(0, g2p, weights)[g2p]
    means = torch.randn(g, dim, generator=gen) * 2.0
    variances = torch.rand(g, dim, generator=gen) + 0.5
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
    return DiagGmmSet(means, variances, weights.float(), offsets)


def padded_log_likelihoods(model: DiagGmmSet, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The padded-layout alternative: matmul over [P * Mmax] columns, log-sum-exp over the innermost axis."""
    p, mmax = model.num_pdfs, model.max_gauss_per_pdf
    valid = torch.arange(mmax, device=model.device) < model.num_gauss_per_pdf[:, None]
    weight = torch.zeros(p * mmax, 2 * model.dim + 1, dtype=model.dtype, device=model.device)
    weight[:, -1] = -math.inf  # padding slots: gconst -inf
    weight[valid.reshape(-1)] = model.natural_params.weight
    weight_t = weight.T.contiguous()
    out = torch.empty(x.shape[0], p, dtype=model.dtype, device=model.device)
    for s in range(0, x.shape[0], batch_size):
        feats = model.scoring_features(x[s : s + batch_size])
        out[s : s + feats.shape[0]] = (feats @ weight_t).view(-1, p, mmax).logsumexp(-1)
    return out


def best_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--pdfs", type=int, default=500)
    parser.add_argument("--gauss", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=39)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="", help="comma-separated frame batches for the all-pdf scoring")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    model = synthetic_model(args.pdfs, args.gauss, args.dim, args.seed).to(device)
    gen = torch.Generator().manual_seed(args.seed + 1)
    n = args.frames
    pdf_ids = torch.randint(0, model.num_pdfs, (n,), generator=gen)
    lo, hi = model.pdf_offsets.cpu()[pdf_ids], model.pdf_offsets.cpu()[pdf_ids + 1]
    comp = lo + (torch.rand(n, generator=gen) * (hi - lo)).long()
    x = model.means.cpu()[comp] + torch.randn(n, model.dim, generator=gen) * model.variances.cpu()[comp].sqrt()
    x, pdf_ids = x.to(device), pdf_ids.to(device)
    g, d = model.num_gauss, model.dim
    default_batch = max(64, DEFAULT_CHUNK_ELEMENTS // g)
    sizes = model.num_gauss_per_pdf.float()
    print(
        f"device {device}, threads {torch.get_num_threads()}, frames {n}, dim {d}, pdfs {model.num_pdfs}, "
        f"Gaussians {g} (per pdf min {int(sizes.min())} mean {float(sizes.mean()):.1f} max {int(sizes.max())}), "
        f"best of {args.repeats}"
    )
    _ = model._all_pdf_layout  # build the cached scoring layout outside the timings

    batches = [int(b) for b in args.batch_sizes.split(",") if b] or [default_batch]
    weight_t = model.natural_params.weight.T.contiguous()
    for batch in batches:
        feats_all = model.scoring_features(x)

        def bare_matmul(batch=batch, feats_all=feats_all) -> None:
            out = torch.empty(batch, g, dtype=model.dtype, device=device)
            for s in range(0, n, batch):
                f = feats_all[s : s + batch]
                torch.mm(f, weight_t, out=out[: f.shape[0]])

        t = best_time(bare_matmul, args.repeats, device)
        gflops = 2.0 * n * g * (2 * d + 1) / t / 1e9
        shape = f"[B,{2 * d + 1}]x[{2 * d + 1},{g}]"
        print(f"batch {batch:6d}  matmul {shape}     {n / t:12,.0f} frames/s  ({gflops:.1f} GFLOP/s)")
        t = best_time(lambda batch=batch: model.log_likelihoods(x, batch_size=batch), args.repeats, device)
        print(f"batch {batch:6d}  loglikes all pdfs [N,{model.num_pdfs}]   {n / t:12,.0f} frames/s")
        t = best_time(lambda batch=batch: padded_log_likelihoods(model, x, batch), args.repeats, device)
        print(f"batch {batch:6d}  loglikes padded layout (compare)  {n / t:12,.0f} frames/s")
    t = best_time(lambda: model.log_likelihoods_of(x, pdf_ids), args.repeats, device)
    print(f"loglikes own pdf [N]                       {n / t:12,.0f} frames/s")
    t = best_time(lambda: accumulate_stats(model, x, pdf_ids), args.repeats, device)
    print(f"accumulate stats (posteriors + float64 sums) {n / t:10,.0f} frames/s")
    stats = accumulate_stats(model, x, pdf_ids)
    t0 = time.perf_counter()
    new_model, report = model.update(stats)
    t1 = time.perf_counter()
    new_model.split(int(new_model.num_gauss * 1.5), stats.pdf_occupancy())
    t2 = time.perf_counter()
    print(f"update (M-step): {(t1 - t0) * 1e3:.1f} ms; split to 1.5x Gaussians: {(t2 - t1) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
