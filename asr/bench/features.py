"""Benchmark: 40-band fbank speed on AN4 train, raw kaldi-native-fbank against our whole pipeline.

Rows (x real time = seconds of audio per second of wall time):

- ``knf raw``: ``kaldi_native_fbank.OnlineFbank`` on audio already in memory (scaled to int16 range,
  passed as a memoryview, its fastest input), frames stacked into a numpy array, one process: the
  ceiling for one core;
- ``pipeline, 1 process``: :func:`asr.features.compute.compute_features` with ``jobs=1`` (read wav,
  extract, per-speaker CMVN, write the HDF5 archive); the goal is >= 80% of ``knf raw``;
- ``pipeline, N processes``: the same with N worker processes (all cores by default);
- ``torchaudio batched``: :class:`asr.features.extract.TorchaudioExtractor` on audio in memory, 64
  utterances per call, on the CPU (and on CUDA when available).

Each timed step runs ``--repeat`` times and the best is kept (the machine may be shared)::

    python -m asr.bench.features [--corpus $ASR_CORPORA/an4] [--limit N] [--jobs N] [--repeat 2] [--no-torchaudio]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import time
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import soundfile

from asr.data.datadir import DataDir, read_data_dir, write_data_dir
from asr.errors import InputError
from asr.features.compute import compute_features, default_jobs
from asr.features.extract import TorchaudioExtractor
from asr.features.options import FeatureOptions
from asr.logging_setup import setup_logging

REPO = Path(__file__).resolve().parents[2]


def an4_train_data_dir(an4_root: Path, out: Path, limit: int | None = None) -> Path:
    """Write a data dir of AN4's training part (ids ``<speaker>-<id>``, C-sorted); first ``limit`` utterances."""
    fileids = an4_root / "etc" / "an4_train.fileids"
    transcription = an4_root / "etc" / "an4_train.transcription"
    if not fileids.is_file() or not transcription.is_file():
        raise InputError("AN4 training lists not found (etc/an4_train.fileids, .transcription)", an4_root)
    words = {}
    for line in transcription.read_text().splitlines():
        match = re.match(r"^(.*)\((\S+)\)\s*$", line)
        if match:
            words[match.group(2)] = " ".join(w for w in match.group(1).split() if w not in ("<s>", "</s>"))
    wav_scp, text, utt2spk = {}, {}, {}
    for line in fileids.read_text().split():
        _, spk, original = line.split("/")
        utt = f"{spk}-{original}"
        wav_scp[utt] = str(an4_root / "wav" / f"{line}.wav")
        text[utt] = words.get(original, "")
        utt2spk[utt] = spk
    data = DataDir(wav_scp, text, utt2spk)
    if limit:
        data = data.subset(data.utt_ids[:limit])
    return write_data_dir(data, out)


def timed(function) -> tuple[float, float]:
    """Run ``function`` once; return (wall seconds, CPU seconds of this process and its finished children)."""
    before = os.times()
    start = time.perf_counter()
    function()
    wall = time.perf_counter() - start
    after = os.times()
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("user", "system", "children_user", "children_system"))
    return wall, cpu


def best_of(repeat: int, functions: dict[str, object]) -> dict[str, tuple[float, float]]:
    """Run each function ``repeat`` times, interleaved (so load changes hit all alike); best wall and CPU time."""
    best = {name: (float("inf"), float("inf")) for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            wall, cpu = timed(function)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    corpora = Path(os.environ.get("ASR_CORPORA", REPO.parent / "shared" / "corpora"))
    parser.add_argument("--corpus", type=Path, default=corpora / "an4", help="AN4 root (default $ASR_CORPORA/an4)")
    parser.add_argument("--limit", type=int, help="first N utterances only (default: all 948)")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="processes of the parallel run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing; the best is kept")
    parser.add_argument("--no-torchaudio", action="store_true", help="skip the torchaudio rows")
    args = parser.parse_args()
    setup_logging()
    logging.getLogger("asr.features.compute").setLevel(logging.WARNING)
    load = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        data_path = an4_train_data_dir(args.corpus, Path(tmp) / "train", args.limit)
        data = read_data_dir(data_path)
        utts = data.utt_ids
        waves = [soundfile.read(data.wav_scp[u], dtype="float32")[0] for u in utts]
        audio_seconds = sum(len(w) for w in waves) / 16000
        options = FeatureOptions()
        frames = sum(options.num_frames(len(w)) for w in waves)
        print(
            f"AN4 train: {len(utts)} utterances, {audio_seconds:.1f} s of audio, {frames} frames;"
            f" cores {os.cpu_count()}"
        )

        rows = []
        knf_options = options.knf_options()
        scaled = [memoryview(w * np.float32(32768)) for w in waves]  # int16 scale, as Kaldi reads wavs

        def knf_raw():
            for samples in scaled:
                computer = knf.OnlineFbank(knf_options)
                computer.accept_waveform(16000.0, samples)
                computer.input_finished()
                np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])

        out = Path(tmp) / "fbank.h5"

        def pipeline(jobs: int):
            return lambda: compute_features(data, out, options, jobs=jobs, force=True, progress=False)

        single = best_of(args.repeat, {"raw": knf_raw, "pipeline": pipeline(1)})
        rows.append(("knf raw (audio in memory)", 1, *single["raw"]))
        rows.append(("pipeline: wav -> fbank -> CMVN -> h5", 1, *single["pipeline"]))
        if args.jobs > 1:
            parallel = best_of(args.repeat, {"parallel": pipeline(args.jobs)})["parallel"]
            rows.append((f"pipeline, {args.jobs} processes", args.jobs, *parallel))
        if not args.no_torchaudio:
            import torch

            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            for device in devices:
                batched = TorchaudioExtractor(options, device)

                def run(batched=batched):
                    for i in range(0, len(waves), 64):
                        batched.compute_batch(waves[i : i + 64])

                run()  # warm-up (CUDA context, kernels)
                threads = torch.get_num_threads() if device == "cpu" else 1
                result = best_of(args.repeat, {device: run})[device]
                rows.append((f"torchaudio batched, {device} (in memory)", threads, *result))

    print()
    print("| what                                     | procs | wall s | CPU s | x RT (wall) | x RT per CPU s |")
    print("|------------------------------------------|-------|--------|-------|-------------|----------------|")
    for label, procs, wall, cpu in rows:
        print(
            f"| {label:<40} | {procs:>5} | {wall:>6.2f} | {cpu:>5.2f} | {audio_seconds / wall:>11.0f} | "
            f"{audio_seconds / cpu:>14.0f} |"
        )
    raw_cpu, pipeline_cpu = single["raw"][1], single["pipeline"][1]
    raw_wall, pipeline_wall = single["raw"][0], single["pipeline"][0]
    print()
    print(
        f"pipeline (1 process) / knf raw: {raw_cpu / pipeline_cpu:.1%} by CPU time, {raw_wall / pipeline_wall:.1%} "
        "by wall time (goal >= 80%)"
    )
    print(f"best of {args.repeat} interleaved runs each; x RT per CPU s = audio seconds per CPU-second (one core)")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (the machine may be shared)")


if __name__ == "__main__":
    main()
