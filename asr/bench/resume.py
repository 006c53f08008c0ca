"""Benchmark: what the resume machinery (issue 7) costs, stage by stage, against the same run without it.

For each stage, the run with its resume state written at the default interval, with it off (or minimal where
it cannot be off), and with a small interval (``--small-frames``, many saves); the variants of a stage are run
``--repeats`` times, interleaved (variant order rotated each round), and the best and median wall times kept:

- ``features``: :func:`asr.features.compute.compute_features` (``force=True``, the model's feature type, per-speaker
  CMVN) of a copy of ``--data``'s text files in a temporary dir (the repo's data dir is only read): default parts
  (``part_frames`` 500000 or ``part_seconds`` 60) vs ``part_frames=0`` (no parts) vs ``part_frames=--small-frames``;
- ``alignment``: :func:`asr.gmm.align.align_data_dir` of ``--data`` with ``--model`` into temporary dirs: default
  blocks (``block_frames`` 1000000) vs ``block_frames=0`` (one block: still saved once; there is no "off") vs
  ``--small-frames``;
- ``EM checkpoint``: the real :meth:`asr.gmm.em_checkpoint.EmCheckpoint.save` of ``--model`` (its GMMs, transition
  model, and the per-frame alignment of its ``ali.h5``, the size a training run saves after each iteration; the
  ``jobs`` argument is a stand-in holding those alignments, not worker processes), timed alone, beside the
  median EM iteration of ``--model``'s ``train_log.json``;
- ``decoding``: :func:`asr.decode.decode_dir.decode_data_dir` of ``--decode-data`` at one LM weight (the one of
  ``<model>/decode_<set>/results.json``, else 10; ``--lm-weight``) with ``resumable=True`` (the per-utterance
  journal) vs ``resumable=False``.

"one save" is the median time of one save call in the run (features: closing a part, ``_PartWriter.save``;
alignment: :meth:`AlignmentBlocks.save`; decoding: :meth:`DecodeJournal.append`, one utterance), measured by
wrapping the real method with a timer; "saves" counts the calls that saved something in the best run. ``vs off``
is (best wall - best wall of the stage's baseline) / baseline. The 1/5/15-minute load averages are printed
before and after: on a shared machine differences of a few percent are noise::

    python -m asr.bench.resume [--data data/an4/train] [--model exp/an4/tri1] [--graph exp/an4/tri1/graph_tg] \\
        [--decode-data data/an4/dev] [--lang LANG] [--repeats 3] [--jobs 2] [--small-frames 20000] \\
        [--lm-weight W] [--stages features,alignment,em,decode] [--quick]

``--quick`` (for the yes/no corpus' sizes, the smoke test): one repeat, ``--small-frames`` 2000, 3 EM saves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.data.datadir import read_data_dir, write_data_dir
from asr.decode.acoustic_model import load_acoustic_model
from asr.decode.decode_dir import decode_data_dir
from asr.decode.journal import DecodeJournal
from asr.errors import ConfigError, InputError
from asr.features import compute as features_compute
from asr.features.compute import PART_FRAMES, PART_SECONDS, compute_features
from asr.gmm import align as gmm_align
from asr.gmm.align import DEFAULT_BLOCK_FRAMES, align_data_dir
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.em_checkpoint import EmCheckpoint
from asr.gmm.model import GmmAcousticModel
from asr.gmm.train_mono import TrainState
from asr.logging_setup import setup_logging

REPO = Path(__file__).resolve().parents[2]
STAGES = ("features", "alignment", "em", "decode")
DEFAULT_LM_WEIGHT = 10.0


@dataclass
class Row:
    """One line of the table: a stage's variant, its wall times (one per repeat) and its save timings."""

    stage: str
    variant: str
    walls: list[float] = field(default_factory=list)
    saves: int = 0  # calls that saved something, in the best run
    save_seconds: list[float] = field(default_factory=list)  # every save of every run
    baseline: bool = False
    note: str = ""

    @property
    def best(self) -> float:
        """The best wall time (s)."""
        return min(self.walls) if self.walls else float("nan")

    @property
    def median(self) -> float:
        """The median wall time (s)."""
        return statistics.median(self.walls) if self.walls else float("nan")


@contextlib.contextmanager
def timing_probe(owner: Any, name: str, counts: Callable[..., bool] | None = None) -> Iterator[list[float]]:
    """Wrap ``owner.name`` (a method, called in this process) with a timer while inside the block; yields the
    list the durations (s) of the calls are appended to (only calls for which ``counts(self, *args)`` is true,
    checked before the call). The real method runs; it is restored on exit."""
    original = getattr(owner, name)
    durations: list[float] = []

    def wrapper(self, *args, **kwargs):
        counted = counts is None or counts(self, *args)
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            if counted:
                durations.append(time.perf_counter() - t0)

    setattr(owner, name, wrapper)
    try:
        yield durations
    finally:
        setattr(owner, name, original)


def interleaved(rows: Sequence[Row], runs: dict[str, Callable[[], list[float]]], repeats: int) -> None:
    """Run each row's function ``repeats`` times, the variants interleaved (order rotated each round); record
    wall times and save durations in the rows (``saves``: the number of saves of the fastest run)."""
    best: dict[str, float] = {}
    for r in range(repeats):
        order = list(rows[r % len(rows) :]) + list(rows[: r % len(rows)])
        for row in order:
            t0 = time.perf_counter()
            saves = runs[row.variant]()
            wall = time.perf_counter() - t0
            row.walls.append(wall)
            row.save_seconds.extend(saves)
            if wall < best.get(row.variant, float("inf")):
                best[row.variant] = wall
                row.saves = len(saves)


def resolve(path: str | os.PathLike) -> Path:
    """A path as given if it exists, else relative to the repository (model.json paths are written relative to
    where a recipe ran)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    return REPO / path


def bench_features(data: Path, feature_type: str, jobs: int, small: int, repeats: int, tmp: Path) -> list[Row]:
    """Feature extraction of a copy of ``data`` (text files only) in ``tmp``: default parts, none, small ones."""
    copy = write_data_dir(read_data_dir(data), tmp / "features_data")
    out = copy / f"{feature_type}.h5"
    variants = {
        f"default parts (part_frames={PART_FRAMES}, part_seconds={PART_SECONDS:g})": (PART_FRAMES, PART_SECONDS),
        "no parts (part_frames=0)": (0, PART_SECONDS),
        f"small parts (part_frames={small})": (small, PART_SECONDS),
    }
    rows = [Row("features", v, baseline=frames == 0) for v, (frames, _) in variants.items()]

    def run(part_frames: int, part_seconds: float) -> list[float]:
        # a part is saved only when it holds something (save() returns at once otherwise)
        with timing_probe(features_compute._PartWriter, "save", lambda w: w._covered > 0) as saves:
            compute_features(
                copy, out, feature_type, jobs=jobs, force=True, progress=False,
                part_frames=part_frames, part_seconds=part_seconds,
            )  # fmt: skip
        out.unlink()
        return saves

    interleaved(rows, {v: (lambda a=a: run(*a)) for v, a in variants.items()}, repeats)
    return rows


def bench_alignment(data: Path, lang: Path, model: Path, jobs: int, small: int, repeats: int, tmp: Path) -> list[Row]:
    """Alignment of ``data`` with ``model`` into fresh dirs under ``tmp``: default blocks, one block, small ones."""
    variants = {
        f"default blocks (block_frames={DEFAULT_BLOCK_FRAMES})": DEFAULT_BLOCK_FRAMES,
        "one block (block_frames=0)": 0,
        f"small blocks (block_frames={small})": small,
    }
    rows = [Row("alignment", v, baseline=frames == 0) for v, frames in variants.items()]

    def run(block_frames: int) -> list[float]:
        out = tmp / "align_out"
        with timing_probe(gmm_align.AlignmentBlocks, "save") as saves:
            align_data_dir(data, lang, model, out, num_jobs=jobs, force=True, block_frames=block_frames)
        shutil.rmtree(out)
        return saves

    interleaved(rows, {v: (lambda f=f: run(f)) for v, f in variants.items()}, repeats)
    return rows


class _SavedAlignments:
    """What :meth:`EmCheckpoint.save` reads of :class:`~asr.gmm.align.AlignmentJobs` (``offsets`` and
    ``get_alignments()``), holding the transition-state alignment of an ``ali.h5`` instead of worker processes."""

    def __init__(self, ali: AlignmentArchive):
        self.offsets = ali.offsets
        self.utt_ids = ali.utt_ids
        self._alignments = [
            None if u in ali.failed else ali.tstate_ids[ali.offsets[i] : ali.offsets[i + 1]].copy()
            for i, u in enumerate(ali.utt_ids)
        ]
        self._failures = dict(ali.failed)

    def get_alignments(self) -> tuple[list[np.ndarray | None], dict[str, str]]:
        """The alignments (one int32 array per utterance, None if failed) and the failures."""
        return list(self._alignments), dict(self._failures)


def bench_em_checkpoint(model_dir: Path, saves: int, tmp: Path) -> tuple[Row, str]:
    """Time ``saves`` real :meth:`EmCheckpoint.save` calls of ``model_dir``'s model and alignment; returns the row
    and a line describing the checkpoint (size, frames) and the model's median EM iteration time."""
    model = GmmAcousticModel.load(model_dir)
    ali = AlignmentArchive(model_dir / "ali.h5")
    jobs = _SavedAlignments(ali)
    iterations: list[dict] = []
    train_log = model_dir / "train_log.json"
    if train_log.is_file():
        iterations = json.loads(train_log.read_text(encoding="utf-8")).get("iterations", [])
    state = TrainState(
        model.gmm,
        model.transition_model,
        model.ctx_dep,
        int(model.gmm.num_gauss),
        0,
        graphs_compiled=True,
        iterations=iterations,
        graphs_model=model.transition_model.to_json_dict(),
    )
    out = tmp / "em_checkpoint"
    out.mkdir()
    checkpoint = EmCheckpoint(out, "0" * 64, jobs.utt_ids)
    row = Row("EM checkpoint", "EmCheckpoint.save (em_state.pt)")
    for _ in range(saves):
        t0 = time.perf_counter()
        path = checkpoint.save(len(iterations), state, jobs)
        row.save_seconds.append(time.perf_counter() - t0)
    row.walls = list(row.save_seconds)
    row.saves = 1
    size = path.stat().st_size
    iteration_seconds = [it["seconds"]["total"] for it in iterations if "seconds" in it]
    line = (
        f"EM checkpoint of {model_dir}: {size / 1e6:.2f} MB ({model.gmm.num_gauss} Gaussians, {len(jobs.utt_ids)} "
        f"utterances, {int(ali.offsets[-1])} frames), {saves} saves"
    )
    if iteration_seconds:
        median_iteration = statistics.median(iteration_seconds)
        line += (
            f"; median EM iteration of its training {median_iteration:.3f} s (train_log.json, {len(iteration_seconds)}"
            f" iterations): one save = {statistics.median(row.save_seconds) / median_iteration:.1%} of it"
        )
        row.note = f"{statistics.median(row.save_seconds) / median_iteration:.1%} of an EM iteration"
    return row, line


def bench_decode(
    graph: Path, model_dir: Path, data: Path, lm_weight: float, jobs: int, repeats: int, tmp: Path
) -> tuple[list[Row], list[str]]:
    """Decoding of ``data`` with the journal and without, into fresh dirs under ``tmp``; also the WER lines."""
    model = load_acoustic_model(model_dir)
    variants = {"journal (resumable=True)": True, "no journal (resumable=False)": False}
    rows = [Row("decoding", v, baseline=not on) for v, on in variants.items()]
    wers: dict[str, float] = {}

    def run(variant: str, resumable: bool) -> list[float]:
        out = tmp / "decode_out"
        with timing_probe(DecodeJournal, "append") as saves:
            result = decode_data_dir(
                graph, model_dir, data, out, lm_weights=[lm_weight], jobs=jobs, model=model, resumable=resumable
            )
        wers[variant] = result["wer"]
        shutil.rmtree(out)
        return saves

    interleaved(rows, {v: (lambda v=v, on=on: run(v, on)) for v, on in variants.items()}, repeats)
    lines = [f"decoding {data} at LM weight {lm_weight:g}: WER {', '.join(f'{w}% ({v})' for v, w in wers.items())}"]
    return rows, lines


def format_table(rows: Sequence[Row]) -> str:
    """The results as a markdown table (one line per row)."""
    header = (
        "| stage         | variant                                              | saves | best s  | median s | "
        "vs off  | one save ms |"
    )
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    baselines = {r.stage: r.best for r in rows if r.baseline}
    for r in rows:
        if r.baseline:
            versus = "base"
        elif r.stage in baselines:
            versus = f"{(r.best - baselines[r.stage]) / baselines[r.stage]:+.1%}"
        else:
            versus = "-"
        one_save = f"{statistics.median(r.save_seconds) * 1000:.2f}" if r.save_seconds else "-"
        lines.append(
            f"| {r.stage:<13} | {r.variant:<52} | {r.saves:>5} | {r.best:>7.3f} | {r.median:>8.3f} | {versus:>7} | "
            f"{one_save:>11} |"
        )
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _lm_weight_of(model_dir: Path, data: Path) -> float:
    results = model_dir / f"decode_{data.resolve().name}" / "results.json"
    try:
        return float(json.loads(results.read_text(encoding="utf-8"))["lm_weight"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_LM_WEIGHT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/an4/train"), help="training data dir")
    parser.add_argument("--model", type=Path, default=Path("exp/an4/tri1"), help="GMM model dir (with ali.h5)")
    parser.add_argument("--graph", type=Path, default=Path("exp/an4/tri1/graph_tg"), help="graph dir of --model")
    parser.add_argument("--decode-data", type=Path, default=Path("data/an4/dev"), help="data dir to decode")
    parser.add_argument("--lang", type=Path, help="lang dir for alignment (default: the model's model.json 'lang')")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each variant")
    parser.add_argument("--jobs", type=int, default=2, help="processes of extraction, alignment and decoding")
    parser.add_argument("--small-frames", type=int, help="frames per part/block of the 'small' variants (20000)")
    parser.add_argument("--lm-weight", type=float, help="decoding LM weight (default: the model's dev decode's)")
    parser.add_argument("--em-saves", type=int, help="EM checkpoint saves timed (default max(5, repeats))")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--quick", action="store_true", help="yes/no-sized inputs: 1 repeat, small frames 2000")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    small = args.small_frames or (2000 if args.quick else 20000)
    em_saves = args.em_saves or (3 if args.quick else max(5, args.repeats))
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or args.repeats < 1 or small < 1 or args.jobs < 1:
        raise ConfigError(f"bad options: stages {unknown or 'ok'}, repeats {args.repeats}, small frames {small}")
    setup_logging()
    logging.getLogger("asr").setLevel(logging.WARNING)

    data, model_dir = resolve(args.data), resolve(args.model)
    graph, decode_data = resolve(args.graph), resolve(args.decode_data)
    model_json = model_dir / "model.json"
    if not model_json.is_file():
        raise InputError("model dir without model.json", model_json)
    info = json.loads(model_json.read_text(encoding="utf-8"))
    lang = resolve(args.lang or info.get("lang", ""))
    feature_type = str(info.get("feature_type", "mfcc"))
    lm_weight = args.lm_weight or _lm_weight_of(model_dir, decode_data)

    print(
        f"resume machinery: data {data}, model {model_dir}, graph {graph}, decode {decode_data}; "
        f"{args.repeats} interleaved repeat(s), {args.jobs} job(s), small parts/blocks {small} frames; "
        f"{os.cpu_count()} cores"
    )
    print(f"load average before: {_load()}")
    rows: list[Row] = []
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_resume_") as tmp_name:
        tmp = Path(tmp_name)
        if "features" in stages:
            rows += bench_features(data, feature_type, args.jobs, small, args.repeats, tmp)
        if "alignment" in stages:
            rows += bench_alignment(data, lang, model_dir, args.jobs, small, args.repeats, tmp)
        if "em" in stages:
            row, line = bench_em_checkpoint(model_dir, em_saves, tmp)
            rows.append(row)
            lines.append(line)
        if "decode" in stages:
            decode_rows, decode_lines = bench_decode(
                graph, model_dir, decode_data, lm_weight, args.jobs, args.repeats, tmp
            )
            rows += decode_rows
            lines += decode_lines
    print()
    print(format_table(rows))
    print()
    for line in lines:
        print(line)
    print(
        "best/median of the interleaved runs; vs off = best against the stage's 'base' row (features: no parts; "
        "alignment: one block, saved once, there is no off; decoding: no journal); one save = median of every "
        "save call (features: closing a part; alignment: one block; EM: the whole checkpoint; decoding: one "
        "utterance's journal line); saves = calls in the best run"
    )
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
