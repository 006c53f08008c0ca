"""Benchmark: DNN log-likelihoods on the CPU with PyTorch, the TorchScript export and the ONNX export (onnxruntime).

::

    python -m asr.bench.export [--model exp/an4/dnn/mlp_d8_w512] [--depth 8 --width 512 --pdfs 500] \\
        [--utt-frames 300] [--batch-frames 8192] [--threads 1] [--repeat 20] [--no-optimize]

Without ``--model`` the network is an untrained ``--depth`` x ``--width`` MLP on 26 x 40 fbank windows with
``--pdfs`` outputs (speed does not depend on the weights). Each runtime computes the scaled log-likelihoods
``log p(s|x) - log p(s)`` of ``[T, 40]`` frames, context windows included:

- ``pytorch``: :meth:`asr.nnet.model.DnnAcousticModel.log_likelihoods` (``splice_at`` gather, MLP,
  log-softmax, in one batch of T frames), what ``asr.decode`` uses;
- ``torchscript``: the ``torch.jit.script`` export, loaded with ``torch.jit.load``;
- ``onnx``: the ONNX export in an ``onnxruntime`` CPU session (``--threads`` intra-op threads, no spinning).

Two batch sizes: one utterance (``--utt-frames``, 300 = 3 s of speech) and ``--batch-frames`` (8192). Each
figure is the median of ``--repeat`` timed calls after two warm-up calls, in frames per second (and the
median milliseconds per call). Torch and onnxruntime get ``--threads`` threads. Timings depend on what else the
machine runs: the 1-minute load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asr.features.context_window import DEFAULT_LEFT, DEFAULT_RIGHT
from asr.logging_setup import setup_logging
from asr.nnet.export import export_file
from asr.nnet.exported import OnnxRunner, TorchScriptRunner
from asr.nnet.mlp import Mlp
from asr.nnet.model import DnnAcousticModel


def synthetic_model(depth: int, width: int, pdfs: int, feat_dim: int = 40, seed: int = 0) -> DnnAcousticModel:
    """An untrained DNN acoustic model (random weights, flat priors) held in memory."""
    torch.manual_seed(seed)
    context = DEFAULT_LEFT + 1 + DEFAULT_RIGHT
    mlp = Mlp(context * feat_dim, pdfs, depth, width)
    prior = np.full(pdfs, -np.log(pdfs), dtype=np.float32)
    info = {"prior_add": 1.0, "prior_floor": 1e-8}
    return DnnAcousticModel(mlp, prior, DEFAULT_LEFT, DEFAULT_RIGHT, "fbank", info=info)


def time_calls(fn, frames: np.ndarray, repeat: int) -> float:
    """Median seconds of ``fn(frames)`` over ``repeat`` calls, after two warm-up calls."""
    for _ in range(2):
        fn(frames)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(frames)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m asr.bench.export", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a DNN model dir (default: an untrained MLP of the sizes below)")
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--pdfs", type=int, default=500)
    parser.add_argument("--utt-frames", type=int, default=300, help="frames of the one-utterance batch")
    parser.add_argument("--batch-frames", type=int, default=8192, help="frames of the large batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-optimize", action="store_true", help="skip the ONNX exporter's graph optimizer")
    args = parser.parse_args(argv)
    setup_logging(False)
    torch.set_num_threads(args.threads)
    model = DnnAcousticModel.load(args.model) if args.model else synthetic_model(args.depth, args.width, args.pdfs)
    model.batch_frames = max(args.utt_frames, args.batch_frames)  # one forward pass per call
    mlp = model.mlp
    print(
        f"model: {mlp.depth} x {mlp.width} ReLU, {mlp.input_dim} inputs, {mlp.num_outputs} pdfs, "
        f"{mlp.num_params() / 1e6:.2f}M parameters; torch {torch.__version__}, {args.threads} thread(s); "
        f"load average {os.getloadavg()[0]:.2f} (before)"
    )
    runners = {"pytorch": model.log_likelihoods}
    diffs = {}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        for fmt, runner_class in (("torchscript", TorchScriptRunner), ("onnx", OnnxRunner)):
            path = Path(tmp) / f"model.{fmt}"
            start = time.perf_counter()
            meta = export_file(model, fmt, path, optimize=not args.no_optimize)
            print(
                f"exported {fmt} in {time.perf_counter() - start:.1f} s ({path.stat().st_size / 1e6:.1f} MB), "
                f"max |difference| from PyTorch {meta.get('max_abs_diff', float('nan')):.2g}"
            )
            runner = runner_class(path) if fmt == "torchscript" else runner_class(path, "cpu", args.threads)
            runners[fmt] = runner
            diffs[fmt] = meta.get("max_abs_diff")
        rng = np.random.default_rng(0)
        rows = []
        for batch in (args.utt_frames, args.batch_frames):
            frames = rng.standard_normal((batch, model.feature_dim)).astype(np.float32)
            for name, fn in runners.items():
                seconds = time_calls(fn, frames, args.repeat)
                rows.append((batch, name, seconds))
    base = {batch: seconds for batch, name, seconds in rows if name == "pytorch"}
    print(f"\n{'frames/call':>11} {'runtime':>12} {'ms/call':>9} {'frames/s':>11} {'vs pytorch':>10}")
    for batch, name, seconds in rows:
        print(f"{batch:>11} {name:>12} {seconds * 1e3:>9.2f} {batch / seconds:>11.0f} {base[batch] / seconds:>9.2f}x")
    print(f"\nload average {os.getloadavg()[0]:.2f} (after)")


if __name__ == "__main__":
    main()
