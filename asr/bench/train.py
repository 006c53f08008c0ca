"""Benchmark: DNN training throughput (frames/s) against the bare matrix products of the same shapes.

For each ``depth x width x batch`` setting, on synthetic features held in RAM (``--frames`` frames of 40
dims in utterances of 200-800 frames, ``--pdfs`` senones, 26-frame context windows = 1040 inputs):

- ``ours``: the real training loop (:class:`asr.nnet.trainer.Trainer` with the in-RAM frame loader:
  shuffled frame indices, context windows spliced per batch, input normalization, ReLU MLP,
  cross-entropy, SGD with momentum 0.9 and the lr schedule, loss / accuracy accumulation);
- ``bare``: the forward and backward matrix products of the same shapes only (``x @ W`` per layer, then
  ``h.T @ g`` and ``g @ W.T``; no data, no nonlinearity, no loss, no update): the compute floor;
- ``ratio`` = ours / bare (goal on CPU: >= 0.8 at batch >= 256 and width >= 1024).

Then the loaders alone (frames/s of batches produced, no model): in RAM, and chunked from an archive on
disk (written to a temporary directory), which must be far faster than training.

Like ``asr.train``, this sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says otherwise.

Timings are wall-clock, the best of ``--repeats``; the load average is printed before and after (on a
shared machine take the numbers as rough)::

    python -m asr.bench.train [--settings 2x1024x256,4x1024x256,8x1024x256,4x2048x256,4x1024x40,4x512x256]
        [--pdfs 1500] [--frames 100000] [--steps 20] [--warmup 3] [--repeats 3] [--device auto] [--threads N]
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

from asr.features.archive import ArchiveWriter, base_attrs
from asr.logging_setup import setup_logging
from asr.nnet.frame_data import ChunkedFrameLoader, InMemoryFrameLoader
from asr.nnet.mlp import Mlp
from asr.nnet.model import resolve_device
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions

FEAT_DIM = 40
LEFT, RIGHT = 13, 12


def synthetic_frames(num_frames: int, num_pdfs: int, seed: int = 0):
    """Random features ``[num_frames, 40]``, offsets of 200-800-frame utterances, random targets."""
    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < num_frames:
        lengths.append(int(rng.integers(200, 800)))
    lengths[-1] -= sum(lengths) - num_frames
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    feats = rng.normal(size=(num_frames, FEAT_DIM)).astype(np.float32)
    targets = rng.integers(0, num_pdfs, size=num_frames).astype(np.int64)
    return feats, offsets, targets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_runner(data, depth, width, batch, num_pdfs, steps, warmup, device):
    """A function that runs ``steps`` updates of the real training loop and returns the seconds taken."""
    feats, offsets, targets = data
    loader = InMemoryFrameLoader(feats, offsets, targets, np.arange(len(targets)), batch, LEFT, RIGHT, device)
    torch.manual_seed(0)
    model = Mlp(FEAT_DIM * (LEFT + 1 + RIGHT), num_pdfs, depth, width).to(device)
    model.set_input_normalization(feats.mean(0), feats.std(0))
    optimizer = build_optimizer(model, "sgd", lr=0.01, momentum=0.9)
    options = TrainerOptions(epochs=10**6, checkpoint_every=0, log_every=10**9, progress="none", tensorboard=False)
    trainer = Trainer(model, optimizer, InverseTimeSchedule(0.01, 1000), loader, None, options, out_dir=None)
    options.max_steps = warmup
    trainer.fit()

    def run() -> float:
        options.max_steps = trainer.step + steps
        _sync(device)
        start = time.perf_counter()
        trainer.fit()
        _sync(device)
        return time.perf_counter() - start

    return run


def bare_runner(depth, width, batch, num_pdfs, steps, warmup, device):
    """A function that runs ``steps`` forward + backward matrix product chains and returns the seconds taken."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    dims = [FEAT_DIM * (LEFT + 1 + RIGHT)] + [width] * depth + [num_pdfs]
    weights = [(torch.randn(dims[i], dims[i + 1], generator=gen) * 0.01).to(device) for i in range(len(dims) - 1)]
    x = torch.randn(batch, dims[0], generator=gen).to(device)
    grad_out = torch.randn(batch, num_pdfs, generator=gen).to(device)

    def step():
        hs = [x]
        for w in weights:
            hs.append(hs[-1] @ w)
        g = grad_out
        for i in range(len(weights) - 1, -1, -1):
            hs[i].T @ g  # weight gradient
            if i:
                g = g @ weights[i].T

    for _ in range(warmup):
        step()

    def run() -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        return time.perf_counter() - start

    return run


def best_fps(runners, steps: int, batch: int, repeats: int) -> list[float]:
    """Frames/s of each runner, best of ``repeats``, the runners alternating (so load changes hit all alike)."""
    best = [float("inf")] * len(runners)
    for _ in range(repeats):
        for i, run in enumerate(runners):
            best[i] = min(best[i], run())
    return [steps * batch / b for b in best]


def time_loader(loader, batches: int, device) -> float:
    """Frames/s of ``batches`` batches from ``loader`` (whole epochs restarted as needed), no model."""
    gen = torch.Generator().manual_seed(0)
    frames, start = 0, time.perf_counter()
    while True:
        for _, y in loader.epoch(gen):
            frames += y.shape[0]
            batches -= 1
            if batches == 0:
                _sync(device)
                return frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default="2x1024x256,4x1024x256,8x1024x256,4x2048x256,4x1024x40,4x512x256")
    parser.add_argument("--pdfs", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=100000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = parser.parse_args(argv)
    setup_logging()
    logging.getLogger("asr.nnet.trainer").setLevel(logging.WARNING)  # no "stopping at step" lines
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = resolve_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f} (before)")
    data = synthetic_frames(args.frames, args.pdfs)
    print(f"{'depth':>5} {'width':>6} {'batch':>6} {'ours fr/s':>11} {'bare fr/s':>11} {'ratio':>6}")
    for setting in args.settings.split(","):
        depth, width, batch = (int(v) for v in setting.lower().split("x"))
        steps = max(args.steps, args.steps * 256 // batch)  # about as many frames per timing at small batches
        ours_run = ours_runner(data, depth, width, batch, args.pdfs, steps, args.warmup, device)
        bare_run = bare_runner(depth, width, batch, args.pdfs, steps, args.warmup, device)
        ours, bare = best_fps([ours_run, bare_run], steps, batch, args.repeats)
        print(f"{depth:>5} {width:>6} {batch:>6} {ours:>11,.0f} {bare:>11,.0f} {ours / bare:>6.2f}", flush=True)

    feats, offsets, targets = data
    for batch in (40, 256, 1024):
        ram = InMemoryFrameLoader(feats, offsets, targets, np.arange(len(targets)), batch, LEFT, RIGHT, device)
        fps = time_loader(ram, max(50, 20000 // batch), device)
        print(f"loader alone, in RAM,        batch {batch:>5}: {fps:>12,.0f} frames/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fbank.h5"
        with ArchiveWriter(path, FEAT_DIM, base_attrs("fbank", None, "synthetic")) as writer:
            for i in range(len(offsets) - 1):
                writer.append(f"utt{i:06d}", feats[offsets[i] : offsets[i + 1]])
        for batch in (256,):
            chunked = ChunkedFrameLoader(
                path, targets, np.arange(len(targets)), batch, buffer_frames=len(targets) // 4, device=device
            )
            fps = time_loader(chunked, 2 * len(targets) // batch, device)
            print(f"loader alone, chunked disk,  batch {batch:>5}: {fps:>12,.0f} frames/s (two epochs, incl. reads)")
    print(f"load average {os.getloadavg()[0]:.2f} (after)")


if __name__ == "__main__":
    main()
