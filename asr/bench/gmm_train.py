"""Benchmark: GMM-HMM training on AN4 (monophone, tri1) and alignment of the training set, with Kaldi's times.

Runs the real trainers on a prepared data dir (``bash recipes/an4/run.sh --stop-stage 2`` makes
``data/an4/train`` with ``mfcc.h5`` and ``data/an4/lang``), each with ``force`` so that nothing is reused::

    python -m asr.bench.gmm_train [--data data/an4/train] [--lang data/an4/lang] [--exp /tmp/asr_bench_gmm]
        [--jobs 2] [--mono-iters 40] [--tri-iters 35] [--skip-tri]

Prints a markdown table: wall and CPU seconds of each stage (CPU = this process plus its job processes),
and per EM iteration the mean wall seconds of realignment (likelihoods + Viterbi, in the jobs),
accumulation (E-step statistics, in the jobs) and the update (this process); graph compilation; the
final alignment; then ``python -m asr.gmm.align`` of the training set with tri1. The load average is
printed before and after: on a shared machine wall times depend on it, CPU seconds much less.

Kaldi reference (``steps/train_mono.sh`` / ``train_deltas.sh`` on AN4 train, 2 jobs on 2 cores): mono 25 s,
tri1 13 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from statistics import mean

from asr.gmm.align import align_data_dir
from asr.gmm.train_mono import MonoOptions, default_mono_options, train_mono
from asr.gmm.train_tri import TreeOptions, default_tri_options, train_tri
from asr.logging_setup import setup_logging

KALDI_SECONDS = {"mono": 25.0, "tri1": 13.0}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn, *args, **kwargs) -> tuple[object, float, float]:
    w0, c0 = time.perf_counter(), _cpu()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, _cpu() - c0


def iteration_summary(train_log: dict) -> dict[str, float]:
    """Mean seconds per iteration of each stage, from a ``train_log.json``."""
    its = train_log["iterations"]
    realigned = [it for it in its if it["realigned"]]

    def avg(rows, key):
        return mean(it["seconds"].get(key, 0.0) for it in rows) if rows else 0.0

    return {
        "iterations": len(its),
        "realignments": len(realigned),
        "align_per_realign": avg(realigned, "likelihoods") + avg(realigned, "viterbi"),
        "likelihoods_per_realign": avg(realigned, "likelihoods"),
        "viterbi_per_realign": avg(realigned, "viterbi"),
        "accumulate_per_iter": avg(its, "accumulate"),
        "update_per_iter": avg(its, "update"),
        "iteration_mean": avg(its, "total"),
        "graphs_total": sum(it["seconds"].get("graphs", 0.0) for it in its),
        "final_alignment": train_log["final_alignment"]["seconds"]["total"],
        "jobs_cpu_per_iter": mean(it.get("jobs_cpu_seconds", 0.0) for it in its),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/an4/train")
    parser.add_argument("--lang", default="data/an4/lang")
    parser.add_argument("--exp", default="/tmp/asr_bench_gmm")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--mono-iters", type=int, default=40)
    parser.add_argument("--tri-iters", type=int, default=35)
    parser.add_argument("--skip-tri", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="only warnings in the log")
    args = parser.parse_args(argv)
    setup_logging()
    if args.quiet:
        import logging

        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    exp = Path(args.exp)
    load_before = os.getloadavg()
    rows = []
    mono_dir, tri_dir = exp / "mono", exp / "tri1"
    _, wall, cpu = _timed(
        train_mono,
        args.data,
        args.lang,
        mono_dir,
        default_mono_options(args.mono_iters),
        MonoOptions(num_jobs=args.jobs),
        force=True,
    )
    rows.append(("mono", wall, cpu, iteration_summary(json.loads((mono_dir / "train_log.json").read_text()))))
    if not args.skip_tri:
        _, wall, cpu = _timed(
            train_tri,
            args.data,
            args.lang,
            mono_dir,
            tri_dir,
            default_tri_options(args.tri_iters),
            TreeOptions(num_jobs=args.jobs),
            force=True,
        )
        log = json.loads((tri_dir / "train_log.json").read_text())
        rows.append(("tri1", wall, cpu, iteration_summary(log)))
        tree_seconds = log["seconds"]
    align_model = tri_dir if not args.skip_tri else mono_dir
    summary, align_wall, align_cpu = _timed(
        align_data_dir,
        args.data,
        args.lang,
        align_model,
        exp / f"{align_model.name}_ali_train",
        num_jobs=args.jobs,
        force=True,
    )
    load_after = os.getloadavg()

    print(
        f"\nGMM training on {args.data} ({args.jobs} jobs); "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print(
        "\n| stage | wall s | CPU s | Kaldi s | iters | realigns | s/iter | align s/realign (lik + vit) "
        "| acc s/iter | update s/iter | graphs s | final ali s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, wall, cpu, s in rows:
        print(
            f"| {name} | {wall:.1f} | {cpu:.1f} | {KALDI_SECONDS[name]:.0f} | {s['iterations']} "
            f"| {s['realignments']} | "
            f"{s['iteration_mean']:.2f} | {s['align_per_realign']:.2f} ({s['likelihoods_per_realign']:.2f} + "
            f"{s['viterbi_per_realign']:.2f}) | {s['accumulate_per_iter']:.2f} | {s['update_per_iter']:.3f} | "
            f"{s['graphs_total']:.2f} | {s['final_alignment']:.2f} |"
        )
    secs = summary["seconds"]
    print(
        f"\nalign {args.data} with {align_model.name}: wall {align_wall:.1f} s, CPU {align_cpu:.1f} s "
        f"(graphs {secs.get('graphs', 0):.2f}, likelihoods {secs.get('likelihoods', 0):.2f}, "
        f"viterbi {secs.get('viterbi', 0):.2f} per job; {summary['num_failed']} failed of {summary['num_utts']})"
    )
    if not args.skip_tri:
        print(f"tri1 tree stages: {tree_seconds}")


if __name__ == "__main__":
    main()
