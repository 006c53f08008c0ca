"""Benchmark: asynchronous Downpour SGD (``trainer=async``) throughput for 1, 2, ... replicas.

On a synthetic training set written to a temporary directory with the real writers (``fbank.h5`` of
``--frames`` random 40-dim frames in 200-800-frame utterances, an ``ali.h5`` of random senones), it runs the
real :class:`asr.nnet.downpour.DownpourTrainer` (parameter-server shards and replicas as Ray actors, each
replica reading its part of the archive) for ``--steps`` minibatches per replica, once per replica count,
and prints per run: minibatches trained, frames/s and updates/s (wall clock of the training loop, summed
over replicas; actor start-up excluded and shown apart), and the staleness of the updates. For reference it
also times the local trainer (:class:`asr.nnet.trainer.Trainer`, one process) with 1 torch thread (what
each CPU replica uses) and with all cores. The load average is printed before and after: on a shared
machine take the figures as rough::

    python -m asr.bench.train_async [--replicas 1,2] [--shards 2] [--depth 4 --width 512 --batch 256]
        [--pdfs 1500] [--frames 60000] [--steps 150] [--n-fetch 1] [--n-push 1] [--server adagrad]
        [--ray-address ADDRESS]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as asr.train sets it (see there)

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asr.bench.train import LEFT, RIGHT, ours_runner, synthetic_frames
from asr.features.archive import ArchiveWriter, base_attrs
from asr.gmm.alignment_archive import write_alignment_archive
from asr.logging_setup import setup_logging
from asr.nnet.alignments import read_pdf_alignment
from asr.nnet.downpour import DownpourOptions, DownpourTrainer, ServerOptimizer, start_ray
from asr.nnet.frame_data import load_training_data
from asr.nnet.mlp import Mlp


def write_synthetic_set(out_dir: Path, feats: np.ndarray, offsets: np.ndarray, targets: np.ndarray, num_pdfs: int):
    """``out_dir/fbank.h5`` and ``out_dir/ali.h5`` of synthetic frames; returns their paths."""
    archive, ali = out_dir / "fbank.h5", out_dir / "ali.h5"
    utt_ids = [f"spk-utt{i:06d}" for i in range(len(offsets) - 1)]
    with ArchiveWriter(archive, feats.shape[1], base_attrs("fbank", None, "synthetic")) as writer:
        for i, utt in enumerate(utt_ids):
            writer.append(utt, feats[offsets[i] : offsets[i + 1]])
    zeros = np.zeros(len(targets), dtype=np.int32)
    attrs = {"model_dir": str(out_dir), "num_pdfs": num_pdfs, "num_transition_states": 1}
    write_alignment_archive(ali, utt_ids, offsets, targets.astype(np.int32), zeros, zeros, {}, attrs)
    return archive, ali


def run_async(archive: Path, ali: Path, args, n_replicas: int) -> dict:
    """One DownpourTrainer run of ``args.steps`` minibatches per replica; its metrics plus ``steps``, ``seconds``."""
    data = load_training_data(archive, read_pdf_alignment(ali), args.pdfs, args.batch, seed=0, left=LEFT,
                              right=RIGHT, heldout_fraction=0.0)  # fmt: skip
    torch.manual_seed(0)
    mlp = Mlp(data.feat_dim * (LEFT + 1 + RIGHT), args.pdfs, args.depth, args.width)
    mlp.set_input_normalization(data.feat_mean, data.feat_std)
    options = DownpourOptions(
        n_replicas=n_replicas,
        n_shards=args.shards,
        n_fetch=args.n_fetch,
        n_push=args.n_push,
        server=ServerOptimizer(args.server, lr=0.01, decay_steps=1000),
        ray_address=args.ray_address,
        device=args.device,
        epochs=10**6,
        max_steps=args.steps * n_replicas,
        checkpoint_every=0,
        log_every=args.log_every,
        progress="none",
        tensorboard=False,
    )
    trainer = DownpourTrainer(mlp, data, options, archive, ali, args.pdfs, out_dir=None, seed=0)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return {**trainer.metrics(), "steps": trainer.step, "seconds": trainer.state["train_seconds"]}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2", help="replica counts to run, comma-separated")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--pdfs", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=60000)
    parser.add_argument("--steps", type=int, default=150, help="minibatches per replica")
    parser.add_argument("--n-fetch", type=int, default=1)
    parser.add_argument("--n-push", type=int, default=1)
    parser.add_argument("--server", default="adagrad", choices=("sgd", "adagrad"))
    parser.add_argument("--log-every", type=int, default=100, help="replica tasks are log_every / (2 replicas)")
    parser.add_argument("--device", default="cpu", help="replicas' device: cpu, or auto (a GPU each when present)")
    parser.add_argument("--ray-address", default=None, help="join this Ray cluster instead of a local Ray")
    parser.add_argument("--no-local", action="store_true", help="skip the local trainer's reference timings")
    args = parser.parse_args(argv)
    setup_logging()
    for name in ("asr.nnet.downpour", "asr.nnet.frame_data", "asr.nnet.trainer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cores = len(os.sched_getaffinity(0))
    print(
        f"model {args.depth}x{args.width}, {args.pdfs} senones, batch {args.batch}, {args.frames} frames; "
        f"{cores} cores; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (before)",
        flush=True,
    )
    feats, offsets, targets = data = synthetic_frames(args.frames, args.pdfs)
    if not args.no_local:
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            run = ours_runner(data, args.depth, args.width, args.batch, args.pdfs, args.steps, 3, torch.device("cpu"))
            fps = args.steps * args.batch / run()
            print(f"local trainer, {threads} thread(s): {fps:,.0f} frames/s, {fps / args.batch:,.1f} updates/s")
    torch.set_num_threads(1)
    owned = start_ray(args.ray_address, num_cpus=None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive, ali = write_synthetic_set(Path(tmp), feats, offsets, targets, args.pdfs)
            print(
                f"{'replicas':>8} {'shards':>6} {'minibatches':>11} {'frames/s':>10} {'updates/s':>9} "
                f"{'staleness mean':>14} {'max':>4} {'train s':>7} {'start-up s':>10}"
            )
            for n in (int(v) for v in args.replicas.split(",")):
                start = time.perf_counter()
                m = run_async(archive, ali, args, n)
                st = m["staleness"]
                print(
                    f"{n:>8} {args.shards:>6} {m['steps']:>11} {m['frames_per_second']:>10,.0f} "
                    f"{m['updates_per_second']:>9,.1f} {st['mean']:>14.2f} {st['max']:>4} {m['seconds']:>7.1f} "
                    f"{m['startup_seconds']:>10.1f}   ({time.perf_counter() - start:.1f} s in all)",
                    flush=True,
                )
    finally:
        if owned:
            import ray

            ray.shutdown()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (after)")


if __name__ == "__main__":
    main()
