"""Benchmark: data-parallel training throughput (frames/s) for 1 vs N DDP workers on the same global batch.

For each ``depth x width x batch`` setting, on the synthetic in-RAM frames of :mod:`asr.bench.train`
(40-dim features, 26-frame context windows, ``--pdfs`` senones):

- ``local``: the single-process trainer (:class:`asr.nnet.trainer.Trainer`) with all the threads one
  process gets (``--threads``, default all cores);
- ``ddp N``: ``N`` processes (``torch.multiprocessing`` spawn, the environment torchrun would set) running
  :class:`asr.nnet.distributed.DistributedTrainer` with the gloo backend on CPU (NCCL with ``--device cuda``,
  one GPU per worker): each trains on ``batch / N`` frames of every global batch, with ``cores / N`` torch
  threads (:func:`asr.nnet.distributed.threads_per_rank`) on CPU.

Frames/s count global-batch frames over the wall time of ``--steps`` updates (after ``--warmup`` updates,
from a barrier to a barrier; rank 0's clock); the best of ``--repeats``. On a CPU the workers share the
same cores, so ``ddp 2`` measures the cost of the gradient all-reduce against splitting the batch; the load
average is printed before and after (on a shared machine take the numbers as rough)::

    python -m asr.bench.train_parallel [--settings 4x512x256,4x1024x1024] [--workers 1,2] [--pdfs 1500]
        [--frames 50000] [--steps 20] [--warmup 3] [--repeats 3] [--device cpu] [--threads N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as asr.train sets it

import argparse
import json
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from asr.bench.train import FEAT_DIM, LEFT, RIGHT, synthetic_frames
from asr.nnet.distributed import start_ddp, threads_per_rank
from asr.nnet.frame_data import InMemoryFrameLoader
from asr.nnet.mlp import Mlp
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions


def _trainer(data, depth: int, width: int, batch: int, num_pdfs: int, device: torch.device, ctx=None):
    feats, offsets, targets = data
    loader = InMemoryFrameLoader(feats, offsets, targets, np.arange(len(targets)), batch, LEFT, RIGHT, device)
    torch.manual_seed(0)
    model = Mlp(FEAT_DIM * (LEFT + 1 + RIGHT), num_pdfs, depth, width).to(device)
    model.set_input_normalization(feats.mean(0), feats.std(0))
    optimizer = build_optimizer(model, "sgd", lr=0.01, momentum=0.9)
    options = TrainerOptions(epochs=10**6, checkpoint_every=0, log_every=10**9, progress="none", tensorboard=False)
    schedule = InverseTimeSchedule(0.01, 1000)
    if ctx is None:
        return Trainer(model, optimizer, schedule, loader, None, options)
    return ctx.make_trainer(model, optimizer, schedule, loader, None, options)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(trainer: Trainer, steps: int, warmup: int, repeats: int, device: torch.device, barrier=None) -> float:
    """Best wall seconds of ``steps`` updates over ``repeats`` timings, after ``warmup`` updates."""
    trainer.options.max_steps = trainer.step + warmup
    trainer.fit()
    best = float("inf")
    for _ in range(repeats):
        trainer.options.max_steps = trainer.step + steps
        _sync(device)
        if barrier:
            barrier()
        start = time.perf_counter()
        trainer.fit()
        _sync(device)
        if barrier:
            barrier()
        best = min(best, time.perf_counter() - start)
    return best


def _worker(local_rank: int, world: int, port: int, setting: tuple[int, int, int], args: dict, out: str) -> None:
    """One DDP rank (started by :func:`run_ddp`): time the updates; rank 0 writes the seconds to ``out``."""
    os.environ.update(
        RANK=str(local_rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank), LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    depth, width, batch = setting
    ctx = start_ddp(batch, device=args["device"], num_threads=args["threads_per_worker"])
    data = synthetic_frames(args["frames"], args["pdfs"])
    trainer = _trainer(data, depth, width, batch, args["pdfs"], ctx.device, ctx)
    seconds = time_steps(trainer, args["steps"], args["warmup"], args["repeats"], ctx.device, ctx.barrier)
    if ctx.is_main:
        Path(out).write_text(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))
    dist.barrier()
    ctx.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(world: int, setting: tuple[int, int, int], args: dict) -> tuple[float, int]:
    """``(seconds of --steps updates, torch threads per worker)`` of ``world`` DDP workers on ``setting``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.json")
        mp.start_processes(_worker, (world, _free_port(), setting, args, out), nprocs=world, start_method="spawn")
        result = json.loads(Path(out).read_text())
    return result["seconds"], result["threads"]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="4x512x256,4x1024x1024")
    parser.add_argument("--workers", default="1,2", help="DDP worker counts to time")
    parser.add_argument("--pdfs", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=50000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per worker)")
    parser.add_argument("--threads", type=int, default=0, help="threads of the local run (0: all cores)")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    print(f"{cores} cores, device {args.device}, load average {os.getloadavg()[0]:.2f} (before)")
    print(f"{'depth':>5} {'width':>6} {'batch':>6} {'trainer':>8} {'threads':>8} {'frames/s':>10} {'vs local':>9}")
    for text in args.settings.split(","):
        setting = tuple(int(v) for v in text.lower().split("x"))
        depth, width, batch = setting
        steps = max(args.steps, args.steps * 256 // batch)
        torch.set_num_threads(args.threads or cores)
        data = synthetic_frames(args.frames, args.pdfs)
        local = time_steps(_trainer(data, depth, width, batch, args.pdfs, device), steps, args.warmup, args.repeats,
                           device)  # fmt: skip
        local_fps = steps * batch / local
        row = f"{depth:>5} {width:>6} {batch:>6}"
        print(f"{row} {'local':>8} {torch.get_num_threads():>8} {local_fps:>10,.0f} {1.0:>9.2f}", flush=True)
        for world in (int(w) for w in args.workers.split(",")):
            opts = {
                "device": args.device, "threads_per_worker": threads_per_rank(0, world, cores) if device.type == "cpu"
                else 1, "frames": args.frames, "pdfs": args.pdfs, "steps": steps, "warmup": args.warmup,
                "repeats": args.repeats,
            }  # fmt: skip
            seconds, threads = run_ddp(world, setting, opts)
            fps = steps * batch / seconds
            print(f"{row} {f'ddp {world}':>8} {threads:>8} {fps:>10,.0f} {fps / local_fps:>9.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} (after)")


if __name__ == "__main__":
    main()
