"""Monophone GMM-HMM training from a flat start (Kaldi's ``steps/train_mono.sh``), and the Viterbi EM loop
that the triphone trainer (:mod:`asr.gmm.train_tri`) shares.

CLI::

    python -m asr.gmm.train_mono --data data/an4/train --lang data/an4/lang --out exp/an4/mono \\
        [--num-iters 40 --total-gauss 1000 --jobs 2 ...] [--force]

Steps (Kaldi's in brackets):

1. Topology from the lang's phones: 3-state left-to-right phones, 5-state silence (``topo``);
   :class:`~asr.hmm.tree.MonophoneContextDependency` with the silence phones (SIL, SPN) sharing their
   pdfs, as Kaldi's shared root for silence (``gmm-init-mono --shared-phones``; ``--no-share-silence``
   gives each its own); transition model; every pdf one Gaussian with the global mean and variance of
   the training frames, MFCC + deltas + delta-deltas (``gmm-init-mono``).
2. Transcripts to word ids (an OOV word becomes the lang's OOV word if it has one, else an InputError
   naming ``text`` and the line).
3. Iteration 0: equal alignment (``align-equal-compiled``): the first pronunciation of every word, with
   silence at both ends (``--no-equal-align-silence``: without), frames divided evenly over the HMM states;
   statistics; ML update (``gmm-est --min-gaussian-occupancy=3``).
4. Iterations 1..num_iters-1: realign at ``--realign-iters`` (Kaldi's ``1..10 12 14 ... 38``; the first
   realignment with beam 6, retry 24, then 10/40; acoustic scale 0.1) on alignment graphs with optional
   silence from L, compiled once at the first realignment with the transition probabilities of the model at
   that time; accumulate GMM statistics and transition counts; update GMMs (``gmm-est``) and transition
   probabilities; mix up (``--mix-up``, power 0.25, perturbation 0.01) towards ``total_gauss`` in equal steps
   until iteration ``max_iter_inc``.
5. Final alignment of the training data with the final model (on the graphs of training; with
   ``final_recompile`` on graphs with the final transition probabilities): ``ali.h5``, ``ali.ark``,
   ``phones.ctm``; then the model dir (:mod:`asr.gmm.model`), ``model.json`` last.

Utterances that fail to align are counted and listed (log and ``train_log.json``) and left out of that
iteration's statistics. Per iteration the log shows the average log-likelihood per frame of the aligned
frames under the model being re-estimated, the number of Gaussians and the time of each stage.

A model dir whose ``model.json`` has the fingerprint of the same inputs and options is complete: a re-run
returns at once (logged); ``--force`` retrains. Training logs go to ``<out>/log/train.log`` as well. After
every EM iteration the state is checkpointed (``<out>/em_state.pt``, :mod:`asr.gmm.em_checkpoint`): a run
killed in the middle and started again with the same inputs and options continues after the last complete
iteration and ends with the same model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.atomic import atomic_write
from asr.decode.align import AlignmentFailures
from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.gmm.align import (
    DEFAULT_JOBS,
    AlignmentJobs,
    AlignOptions,
    Transcripts,
    fingerprint,
    first_pronunciations,
    frame_timing,
    load_transcripts,
    torch_threads,
    write_alignments,
)
from asr.gmm.diag_gmm import DiagGmmSet, GmmUpdateOptions
from asr.gmm.em_checkpoint import EM_STATE, EmCheckpoint
from asr.gmm.model import (
    ALI_H5,
    GMM_FILE,
    MODEL_JSON,
    PHONES_TXT,
    TOPO_JSON,
    TRAIN_LOG_JSON,
    TRANSITION_MODEL_JSON,
    TREE_JSON,
    read_model_info,
    write_model_dir,
)
from asr.hmm.topology import Topology, make_topology
from asr.hmm.transition_model import ContextDependency, TransitionModel
from asr.hmm.tree import MonophoneContextDependency
from asr.lang.lang_dir import Lang
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

# Kaldi train_mono.sh: realign_iters="1 2 3 4 5 6 7 8 9 10 12 14 16 18 20 23 26 29 32 35 38"
MONO_REALIGN_ITERS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)


@dataclass(frozen=True)
class ViterbiOptions:
    """Options of Viterbi EM training (Kaldi's ``train_mono.sh`` / ``train_deltas.sh`` variables).

    Attributes:
        num_iters: EM iterations (the last model is ``num_iters.mdl`` in Kaldi's numbering).
        total_gauss: target number of Gaussians (``totgauss``).
        max_iter_inc: the Gaussians grow in equal steps until this iteration (``max_iter_inc``).
        realign_iters: iterations that start with a realignment.
        power: mixing-up exponent on occupancies (``--power``, 0.25 in both scripts).
        perturb_factor: mean perturbation when splitting (``gmm-est --perturb-factor``, 0.01).
        mixup_min_count: minimum frames per Gaussian when mixing up (``gmm-mixup --min-count``, 20).
        min_gaussian_occupancy: ``gmm-est --min-gaussian-occupancy`` (10).
        transition_floor, transition_min_count: ``gmm-est --transition-floor`` / ``--transition-min-count``.
        align: beams and scales of realignment.
        first_realign_beam: beam of the first realignment (train_mono.sh: 6, retry 4x); None: ``align.beam``.
        recompile_graph_iters: realignments before which graphs are recompiled with the current transition
            probabilities (they are always compiled at the first realignment).
        final_recompile: recompile the graphs with the final transition probabilities for the final alignment
            (default False: the graphs of training are reused; compiling costs about one realignment).
        seed: seed of the mixing-up perturbations.
    """

    num_iters: int = 40
    total_gauss: int = 1000
    max_iter_inc: int = 30
    realign_iters: tuple[int, ...] = MONO_REALIGN_ITERS
    power: float = 0.25
    perturb_factor: float = 0.01
    mixup_min_count: float = 20.0
    min_gaussian_occupancy: float = 10.0
    transition_floor: float = 0.01
    transition_min_count: float = 5.0
    align: AlignOptions = field(default_factory=AlignOptions)
    first_realign_beam: float | None = None
    recompile_graph_iters: tuple[int, ...] = ()
    final_recompile: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_iters < 1:
            raise ConfigError(f"num_iters must be >= 1, got {self.num_iters}")
        if self.total_gauss < 1:
            raise ConfigError(f"total_gauss must be >= 1, got {self.total_gauss}")
        if self.max_iter_inc < 1:
            raise ConfigError(f"max_iter_inc must be >= 1, got {self.max_iter_inc}")

    def align_options(self, first_realignment: bool) -> AlignOptions:
        """The alignment options of a realignment (the first one may use a narrower beam)."""
        if first_realignment and self.first_realign_beam is not None:
            beam = self.first_realign_beam
            return dataclasses.replace(self.align, beam=beam, retry_beam=4 * beam)
        return self.align


def parse_iters(text: str) -> tuple[int, ...]:
    """``"1 2 3"`` or ``"1,2,3"`` -> (1, 2, 3) (ConfigError on anything else)."""
    try:
        return tuple(sorted({int(x) for x in text.replace(",", " ").split()}))
    except ValueError:
        raise ConfigError(f"iteration list must be integers separated by spaces or commas, got {text!r}") from None


@dataclass
class TrainState:
    """What the EM loop carries from iteration to iteration."""

    gmm: DiagGmmSet
    transition_model: TransitionModel
    ctx_dep: ContextDependency
    num_gauss: int
    inc_gauss: int
    graphs_compiled: bool = False
    iterations: list[dict[str, Any]] = field(default_factory=list)
    graphs_model: dict[str, Any] | None = None  # the transition model (JSON) the jobs' graphs were compiled with


def _short_failures(failures: dict[str, str], limit: int = 50) -> list[list[str]]:
    return [[u, r] for u, r in list(failures.items())[:limit]]


def em_iteration(
    jobs: AlignmentJobs, state: TrainState, iteration: int, options: ViterbiOptions, *, realign: bool | None = None
) -> dict[str, Any]:
    """One Viterbi EM iteration: (realign,) accumulate, ML update of GMMs and transitions, mix up.

    Updates ``state`` in place (model, Gaussian target) and returns the iteration's record (also appended
    to ``state.iterations`` and logged).
    """
    t_start = time.perf_counter()
    if realign is None:
        realign = iteration in options.realign_iters
    first = realign and not state.graphs_compiled
    align_options = options.align_options(first)
    compile_seconds = 0.0
    if realign and (first or iteration in options.recompile_graph_iters):
        compile_seconds = jobs.set_model(state.transition_model, state.ctx_dep, align_options, compile_graphs=True)
        state.graphs_compiled = True
        state.graphs_model = state.transition_model.to_json_dict()  # for a resumed run (asr.gmm.em_checkpoint)
    result = jobs.run_pass(state.gmm, realign=realign, accumulate=True, options=align_options)
    t_update = time.perf_counter()
    stats = result.stats
    update_options = GmmUpdateOptions(min_gaussian_occupancy=options.min_gaussian_occupancy)
    if stats.num_frames <= 0:
        raise AsrError(f"iteration {iteration}: no utterance has an alignment ({len(result.failures)} failed)")
    gmm, report = state.gmm.update(stats, update_options)
    trans = state.transition_model.mle_update(
        result.transition_counts, floor=options.transition_floor, min_count=options.transition_min_count
    )
    gmm = gmm.split(
        state.num_gauss,
        stats.pdf_occupancy(),
        power=options.power,
        perturb_factor=options.perturb_factor,
        min_count=options.mixup_min_count,
        seed=options.seed * 1000 + iteration,
    )
    state.gmm = gmm
    if iteration <= options.max_iter_inc:
        state.num_gauss += state.inc_gauss
    seconds = {"graphs": round(compile_seconds, 3)}
    seconds.update({k: round(v, 3) for k, v in result.seconds.items()})
    seconds["update"] = round(time.perf_counter() - t_update, 3)
    seconds["total"] = round(time.perf_counter() - t_start, 3)
    record = {
        "iter": iteration,
        "realigned": bool(realign),
        "loglike_per_frame": round(report.loglike_per_frame, 6),
        "aux_change_per_frame": round(report.aux_objf_change_per_frame, 6),
        "transition_objf_gain_per_frame": round(trans["objf_gain_per_frame"], 6),
        "align_loglike_per_frame": (
            round(result.align_loglike / result.realigned_frames, 6) if result.realigned_frames else None
        ),
        "num_frames": int(stats.num_frames),
        "num_gauss": int(gmm.num_gauss),
        "num_failed": len(result.failures),
        "failed": _short_failures(result.failures),
        "seconds": seconds,
        "jobs_cpu_seconds": round(result.cpu_seconds, 3),
    }
    state.iterations.append(record)
    if realign and result.failures:
        report_failures = AlignmentFailures()
        for utt, reason in list(result.failures.items())[:10]:
            report_failures.add(utt, reason)
        report_failures.failures = list(result.failures.items())
        logger.warning("iteration %d: %s", iteration, report_failures.summary(result.num_utts))
    logger.info(
        "iter %2d: loglike/frame %.4f over %d frames%s, %d failed, %d Gaussians; %.2f s (%s)",
        iteration,
        report.loglike_per_frame,
        int(stats.num_frames),
        " (realigned)" if realign else "",
        len(result.failures),
        gmm.num_gauss,
        seconds["total"],
        ", ".join(f"{k} {v:.2f}" for k, v in seconds.items() if k != "total" and v),
    )
    return record


def run_em(
    jobs: AlignmentJobs,
    state: TrainState,
    iterations: Sequence[int],
    options: ViterbiOptions,
    on_iteration: Callable[[int, TrainState], None] | None = None,
) -> TrainState:
    """Run :func:`em_iteration` for each of ``iterations`` (then ``on_iteration(iteration, state)``)."""
    for x in iterations:
        em_iteration(jobs, state, x, options)
        if on_iteration is not None:
            on_iteration(x, state)
    return state


def add_file_log(path: Path) -> logging.Handler:
    """Also send INFO records of ``asr`` (and ``__main__``) to ``path``, appended as they come (not atomically:
    a crash keeps the log). Loggers whose effective level is above INFO are lowered to INFO until
    :func:`remove_file_log`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.INFO)
    handler.previous_levels = {}  # type: ignore[attr-defined]
    for name in ("asr", "__main__"):
        lg = logging.getLogger(name)
        if lg.getEffectiveLevel() > logging.INFO:
            handler.previous_levels[name] = lg.level  # type: ignore[attr-defined]
            lg.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler


def remove_file_log(handler: logging.Handler) -> None:
    """Undo :func:`add_file_log`."""
    logging.getLogger().removeHandler(handler)
    for name, level in getattr(handler, "previous_levels", {}).items():
        logging.getLogger(name).setLevel(level)
    handler.close()


def is_complete(out_dir: Path, fp_sha256: str) -> bool:
    """Whether ``out_dir`` holds a complete model trained from inputs with this fingerprint."""
    required = (MODEL_JSON, TOPO_JSON, TREE_JSON, TRANSITION_MODEL_JSON, GMM_FILE, PHONES_TXT, ALI_H5, TRAIN_LOG_JSON)
    if not all((out_dir / name).is_file() for name in required):
        return False
    try:
        info = read_model_info(out_dir)
    except InputError:
        return False
    return info.get("fingerprint", {}).get("sha256") == fp_sha256


def lang_input_files(lang_dir: Path) -> dict[str, Path]:
    """The lang files a trainer depends on (for the fingerprint)."""
    files = {"lang/phones.txt": lang_dir / "phones.txt", "lang/words.txt": lang_dir / "words.txt"}
    files["lang/L.fst"] = lang_dir / "L.fst"
    for name in ("lexiconp.txt", "lexicon.txt", "oov.txt"):
        if (lang_dir / name).is_file():
            files[f"lang/{name}"] = lang_dir / name
    return files


def feature_archive_path(data_dir: Path, feature_type: str) -> Path:
    """``<data>/<feature_type>.h5``; InputError saying how to make it when missing."""
    path = data_dir / f"{feature_type}.h5"
    if not path.is_file():
        raise InputError(
            f"no {feature_type} features: run python -m asr.features.compute --data {data_dir} --type {feature_type}",
            path,
        )
    return path


def check_feature_archive(archive_path: Path, feature_type: str, expected_dim: int | None = None) -> tuple[list, Any]:
    """Open the archive and check its type (and base dimension); returns ``(utt_ids, offsets)``."""
    with FeatureArchive(archive_path) as archive:
        if archive.feature_type != feature_type:
            raise InputError(f"archive holds {archive.feature_type!r} features, not {feature_type!r}", archive_path)
        if int(archive.attrs.get("delta_order", 0)) != 0:
            raise InputError("archive rows already include deltas; the GMM trainer adds its own", archive_path)
        if expected_dim is not None and archive.dim != expected_dim:
            raise InputError(f"features have dimension {archive.dim}, expected {expected_dim}", archive_path)
        if len(archive) == 0:
            raise InputError("the feature archive has no utterances", archive_path)
        return list(archive.utt_ids), archive.offsets.copy()


def log_transcript_problems(transcripts: Transcripts, text_path: Path, archive_path: Path) -> None:
    """Warn (with counts and the first ids) about utterances without transcripts or without features."""
    if transcripts.missing:
        ids = list(transcripts.missing)
        logger.warning(
            "%d utterances of %s have no usable transcript in %s and are not trained on: %s",
            len(ids),
            archive_path,
            text_path,
            " ".join(ids[:10]),
        )
    if transcripts.not_in_archive:
        logger.warning(
            "%d utterances of %s have no features in %s: %s",
            len(transcripts.not_in_archive),
            text_path,
            archive_path,
            " ".join(transcripts.not_in_archive[:10]),
        )


def finish_training(
    out_dir: Path,
    jobs: AlignmentJobs,
    state: TrainState,
    options: ViterbiOptions,
    topology: Topology,
    lang: Lang,
    data_dir: Path,
    archive_path: Path,
    info: dict[str, Any],
    train_log: dict[str, Any],
    t_start: float,
) -> dict[str, Any]:
    """Final alignment with the final model, then ``ali.h5`` & co., ``train_log.json`` and the model files."""
    t0 = time.perf_counter()
    align_options = options.align
    compile_seconds = 0.0
    if options.final_recompile or not state.graphs_compiled:
        compile_seconds = jobs.set_model(state.transition_model, state.ctx_dep, align_options, compile_graphs=True)
    result = jobs.run_pass(state.gmm, realign=True, accumulate=False, options=align_options)
    alignments, failures = jobs.get_alignments()
    with FeatureArchive(archive_path) as archive:
        frame_shift, frame_length = frame_timing(archive)
    write_alignments(
        out_dir,
        jobs.utt_ids,
        jobs.offsets,
        alignments,
        failures,
        state.transition_model,
        lang.phones,
        {"model_dir": os.fspath(out_dir), "feature_archive": os.fspath(archive_path), "data_dir": os.fspath(data_dir)},
        frame_shift,
        frame_length,
    )
    final_seconds = time.perf_counter() - t0
    per_frame = result.align_loglike / result.realigned_frames if result.realigned_frames else math.nan
    logger.info(
        "final alignment: %d of %d utterances aligned, acoustic log-likelihood per frame %.4f, %.2f s",
        len(jobs.utt_ids) - len(failures),
        len(jobs.utt_ids),
        per_frame,
        final_seconds,
    )
    if failures:
        report = AlignmentFailures()
        for utt in jobs.utt_ids:
            if utt in failures:
                report.add(utt, failures[utt])
        logger.warning("final alignment: %s", report.summary(len(jobs.utt_ids)))
    train_seconds = time.perf_counter() - t_start
    train_log.update(
        {
            "iterations": state.iterations,
            "final_alignment": {
                "num_failed": len(failures),
                "failed": [[u, failures[u]] for u in jobs.utt_ids if u in failures],
                "acoustic_loglike_per_frame": round(per_frame, 6),
                "seconds": {
                    "graphs": round(compile_seconds, 3),
                    **{k: round(v, 3) for k, v in result.seconds.items()},
                    "total": round(final_seconds, 3),
                },
            },
            "train_seconds": round(train_seconds, 3),
        }
    )
    with atomic_write(out_dir / TRAIN_LOG_JSON) as f:
        json.dump(train_log, f, indent=1)
        f.write("\n")
    info = {**info, "train_seconds": round(train_seconds, 3), "num_failed_final_alignment": len(failures)}
    write_model_dir(out_dir, info, topology, state.ctx_dep, state.transition_model, state.gmm, lang.dir / "phones.txt")
    (out_dir / EM_STATE).unlink(missing_ok=True)  # the model dir is complete: the EM checkpoint is not needed
    logger.info(
        "trained %s: %d pdfs, %d Gaussians, %.1f s -> %s",
        info.get("name"),
        state.gmm.num_pdfs,
        state.gmm.num_gauss,
        train_seconds,
        out_dir,
    )
    return read_model_info(out_dir)


# ----------------------------------------------------------------------------------------------------
# Monophone training


@dataclass(frozen=True)
class MonoOptions:
    """Options of :func:`train_mono` besides the EM loop's.

    Attributes:
        feature_type: archive to read (``<data>/<feature_type>.h5``).
        delta_order, delta_window: deltas added to the archive rows.
        num_nonsilence_states, num_silence_states: HMM sizes.
        share_silence: SIL and SPN share their pdfs.
        equal_align_silence: put silence at both ends of the equal alignment.
        num_jobs: parallel jobs.
    """

    feature_type: str = "mfcc"
    delta_order: int = 2
    delta_window: int = 2
    num_nonsilence_states: int = 3
    num_silence_states: int = 5
    share_silence: bool = True
    equal_align_silence: bool = True
    num_jobs: int = DEFAULT_JOBS


def default_mono_options(num_iters: int = 40, total_gauss: int = 1000, **overrides: Any) -> ViterbiOptions:
    """Kaldi's train_mono.sh schedule, scaled when ``num_iters`` is not 40: Gaussians grow until 3/4 of the
    iterations, realignments at the listed iterations below ``num_iters``."""
    values: dict[str, Any] = {
        "num_iters": num_iters,
        "total_gauss": total_gauss,
        "max_iter_inc": 30 if num_iters == 40 else max(1, round(0.75 * num_iters)),
        "realign_iters": tuple(x for x in MONO_REALIGN_ITERS if x < num_iters),
        "first_realign_beam": 6.0,
    }
    values.update(overrides)
    return ViterbiOptions(**values)


def train_mono(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ViterbiOptions | None = None,
    mono_options: MonoOptions | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Train a monophone GMM-HMM (see the module docstring) into ``out_dir``; returns its ``model.json``.

    Raises:
        InputError: missing or bad inputs (data dir, features, lang dir), an unknown word in a transcript
            without an OOV word, naming the file and line.
        AsrError: no utterance could be aligned.
    """
    t_start = time.perf_counter()
    options = options or default_mono_options()
    mono_options = mono_options or MonoOptions()
    data_dir, lang_dir, out_dir = Path(data_dir), Path(lang_dir), Path(out_dir)
    archive_path = feature_archive_path(data_dir, mono_options.feature_type)
    inputs = {"text": data_dir / "text", "features": archive_path, **lang_input_files(lang_dir)}
    all_options = {"kind": "mono", "viterbi": dataclasses.asdict(options), "mono": dataclasses.asdict(mono_options)}
    all_options["mono"].pop("num_jobs")
    fp = fingerprint(inputs, all_options)
    if not force and is_complete(out_dir, fp["sha256"]):
        logger.info("%s is complete for these inputs: nothing to do (use --force to retrain)", out_dir)
        return read_model_info(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_JSON).unlink(missing_ok=True)  # the dir is incomplete from here until model.json is back
    handler = add_file_log(out_dir / "log" / "train.log")
    stack = contextlib.ExitStack()
    stack.enter_context(torch_threads(1))  # small tensor work: one thread is much faster on a busy machine
    try:
        logger.info("training a monophone model: data %s, lang %s -> %s", data_dir, lang_dir, out_dir)
        lang = Lang.load(lang_dir)
        utt_ids, offsets = check_feature_archive(archive_path, mono_options.feature_type)
        transcripts = load_transcripts(data_dir / "text", lang, utt_ids)
        log_transcript_problems(transcripts, data_dir / "text", archive_path)

        topology = make_topology(
            lang.nonsilence_phones,
            lang.silence_phones,
            num_nonsilence_states=mono_options.num_nonsilence_states,
            num_silence_states=mono_options.num_silence_states,
        )
        shared = [lang.silence_phones] if mono_options.share_silence else []
        ctx_dep = MonophoneContextDependency({p: topology.num_pdf_classes(p) for p in topology.phones}, shared)
        tm = TransitionModel.build(topology, ctx_dep)
        t0 = time.perf_counter()
        with AlignmentJobs(
            archive_path,
            transcripts,
            lang_dir / "L.fst",
            mono_options.num_jobs,
            mono_options.delta_order,
            mono_options.delta_window,
        ) as jobs:
            setup_seconds = time.perf_counter() - t0
            mean, var = jobs.feature_stats().global_mean_variance()
            gmm = DiagGmmSet.flat_start(ctx_dep.num_pdfs, mean, var)
            logger.info(
                "%d phones, %d pdfs, %d transition states; %d utterances, %d frames, %d jobs (set-up %.2f s)",
                len(topology.phones),
                ctx_dep.num_pdfs,
                tm.num_transition_states,
                len(utt_ids),
                int(offsets[-1]),
                jobs.num_jobs,
                setup_seconds,
            )
            num_gauss = gmm.num_gauss
            state = TrainState(
                gmm, tm, ctx_dep, num_gauss, max(0, (options.total_gauss - num_gauss) // options.max_iter_inc)
            )
            checkpoint = EmCheckpoint(out_dir, fp["sha256"], jobs.utt_ids)
            resumed = None if force else checkpoint.load()
            if resumed is not None:  # killed after an iteration: continue after it (asr.gmm.em_checkpoint)
                first_iter = checkpoint.restore(resumed, state, jobs, options.align) + 1
            else:
                # Iteration 0: equal alignment, then EM with min-gaussian-occupancy 3 (train_mono.sh).
                jobs.set_model(tm, ctx_dep, options.align, compile_graphs=False)
                silence = lang.phones.id("SIL") if mono_options.equal_align_silence else None
                failures = jobs.equal_align(first_pronunciations(lang), silence)
                if failures:
                    logger.warning(
                        "equal alignment: %d utterances failed, e.g. %s", len(failures), next(iter(failures.items()))
                    )
                em_iteration(jobs, state, 0, dataclasses.replace(options, min_gaussian_occupancy=3.0), realign=False)
                checkpoint.save(0, state, jobs)
                first_iter = 1
            run_em(jobs, state, range(first_iter, options.num_iters), options, lambda x, s: checkpoint.save(x, s, jobs))
            info = {
                "name": out_dir.name,
                "stage": "mono",
                "feature_type": mono_options.feature_type,
                "delta_order": mono_options.delta_order,
                "delta_window": mono_options.delta_window,
                "phones": os.fspath(lang_dir / "phones.txt"),
                "lang": os.fspath(lang_dir),
                "train_data": os.fspath(data_dir),
                "num_iters": options.num_iters,
                "fingerprint": fp,
            }
            train_log = {
                "kind": "mono",
                "options": all_options,
                "num_jobs": jobs.num_jobs,
                "num_utts": len(utt_ids),
                "num_frames": int(offsets[-1]),
                "no_transcript": _short_failures(transcripts.missing),
                "not_in_feature_archive": transcripts.not_in_archive,
                "setup_seconds": round(setup_seconds, 3),
            }
            return finish_training(
                out_dir, jobs, state, options, topology, lang, data_dir, archive_path, info, train_log, t_start
            )
    finally:
        stack.close()
        remove_file_log(handler)


def add_viterbi_arguments(parser: argparse.ArgumentParser, num_iters: int, total_gauss: int, realign: str) -> None:
    """The EM-loop options shared by the mono and tri CLIs."""
    parser.add_argument("--num-iters", type=int, default=num_iters, help=f"EM iterations (default {num_iters})")
    parser.add_argument("--total-gauss", type=int, default=total_gauss, help=f"target Gaussians ({total_gauss})")
    parser.add_argument("--max-iter-inc", type=int, help="grow Gaussians until this iteration (default: Kaldi's)")
    parser.add_argument("--realign-iters", help=f"iterations that realign (default: {realign})")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"parallel jobs (default {DEFAULT_JOBS})")
    parser.add_argument("--beam", type=float, default=AlignOptions.beam)
    parser.add_argument("--retry-beam", type=float, default=AlignOptions.retry_beam)
    parser.add_argument("--acoustic-scale", type=float, default=AlignOptions.acoustic_scale)
    parser.add_argument("--power", type=float, default=0.25, help="mixing-up power (0.25)")
    parser.add_argument("--recompile-graph-iters", default="", help="also recompile graphs at these iterations")
    parser.add_argument(
        "--final-recompile", action="store_true", help="final alignment on graphs with the final transition probs"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-type", default="mfcc")
    parser.add_argument("--force", action="store_true", help="retrain even if --out is complete")
    parser.add_argument("--verbose", action="store_true")


def viterbi_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """ViterbiOptions fields from the shared CLI arguments."""
    values: dict[str, Any] = {
        "power": args.power,
        "seed": args.seed,
        "align": AlignOptions(acoustic_scale=args.acoustic_scale, beam=args.beam, retry_beam=args.retry_beam),
        "recompile_graph_iters": parse_iters(args.recompile_graph_iters),
        "final_recompile": args.final_recompile,
    }
    if args.max_iter_inc is not None:
        values["max_iter_inc"] = args.max_iter_inc
    if args.realign_iters is not None:
        values["realign_iters"] = parse_iters(args.realign_iters)
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.gmm.train_mono --data D --lang L --out O [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.gmm.train_mono", description="Train a monophone GMM-HMM from a flat start (train_mono.sh)."
    )
    parser.add_argument("--data", required=True, help="training data dir (text, <feature_type>.h5)")
    parser.add_argument("--lang", required=True, help="lang dir")
    parser.add_argument("--out", required=True, help="model dir to write (e.g. exp/an4/mono)")
    add_viterbi_arguments(parser, 40, 1000, "Kaldi's 1..10 12 14 16 18 20 23 26 29 32 35 38")
    parser.add_argument("--first-beam", type=float, default=6.0, help="beam of the first realignment (6)")
    parser.add_argument("--no-share-silence", action="store_true", help="SIL and SPN get their own pdfs")
    parser.add_argument("--no-equal-align-silence", action="store_true", help="no silence in the equal alignment")
    parser.add_argument("--num-silence-states", type=int, default=5)
    parser.add_argument("--num-nonsilence-states", type=int, default=3)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        options = default_mono_options(
            args.num_iters, args.total_gauss, first_realign_beam=args.first_beam, **viterbi_overrides(args)
        )
        mono_options = MonoOptions(
            feature_type=args.feature_type,
            num_silence_states=args.num_silence_states,
            num_nonsilence_states=args.num_nonsilence_states,
            share_silence=not args.no_share_silence,
            equal_align_silence=not args.no_equal_align_silence,
            num_jobs=args.jobs,
        )
        train_mono(args.data, args.lang, args.out, options, mono_options, force=args.force)
    except AsrError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
