"""Triphone GMM-HMM training with a phonetic decision tree (Kaldi's ``steps/train_deltas.sh``).

CLI::

    python -m asr.gmm.train_tri --data data/an4/train --lang data/an4/lang --ali-dir exp/an4/mono \\
        --out exp/an4/tri1 [--num-leaves 500 --total-gauss 4000 --num-iters 35 --jobs 2] [--force]

``--ali-dir`` is a model dir (its ``ali.h5`` aligns the same data dir) or an alignment dir made by
``python -m asr.gmm.align`` (which holds a copy of the model).

Steps (Kaldi's in brackets):

1. Tree statistics from the alignment (``acc-tree-stats``): per frame its phone, the pdf-class of its HMM
   state and the phones of the neighbouring phone SEGMENTS (instances are split where the HMM entry state
   starts again, so ``AH AH`` stays two instances), features with deltas; utterances that failed to align
   are left out.
2. Questions by clustering the phones (``cluster-phones``, plus silence/non-silence and boundary
   questions), roots: one per phone, the silence phones sharing one (Kaldi's shared root for SIL/SPN).
3. The tree (``build-tree``): ``--num-leaves`` (default :func:`asr.hmm.tree.suggest_max_leaves` of the
   number of frames, ~sqrt), ``--min-gain`` 300 and ``--cluster-thresh`` -1 as Kaldi, ``min_count`` from
   :func:`asr.hmm.tree.suggest_tree_options`.
4. Transition model of the tree; one Gaussian per leaf from the pooled tree statistics
   (``gmm-init-model``).
5. The monophone alignment converted to the new model (``convert-ali``): per frame the transition state of
   (phone, HMM state, the tree's pdf for the frame's triphone window).
6. Viterbi EM for iterations 1..num_iters-1 (realign at 10, 20, 30; graphs compiled at the first
   realignment with the transition probabilities of that time), mixing up in equal steps until iteration
   ``max_iter_inc`` (25) towards ``--total-gauss``; final alignment; model dir (as train_mono). Every
   iteration is checkpointed (:mod:`asr.gmm.em_checkpoint`): a killed run started again continues after the
   last complete iteration (steps 1-5 are redone: they are deterministic).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.errors import AsrError, InputError
from asr.features.archive import FeatureArchive
from asr.features.deltas import add_deltas
from asr.gmm.accumulate import GmmStats
from asr.gmm.align import (
    DEFAULT_JOBS,
    AlignmentJobs,
    check_phones_match,
    fingerprint,
    load_transcripts,
    torch_threads,
    transition_states_sha256,
)
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.em_checkpoint import EmCheckpoint
from asr.gmm.model import ALI_H5, MODEL_JSON, PHONES_TXT, TOPO_JSON, TRANSITION_MODEL_JSON, read_model_info
from asr.gmm.train_mono import (
    TrainState,
    ViterbiOptions,
    add_file_log,
    add_viterbi_arguments,
    check_feature_archive,
    feature_archive_path,
    finish_training,
    is_complete,
    lang_input_files,
    log_transcript_problems,
    remove_file_log,
    run_em,
    viterbi_overrides,
)
from asr.hmm.questions import build_question_set
from asr.hmm.topology import Topology
from asr.hmm.transition_model import ContextDependency, TransitionModel
from asr.hmm.tree import (
    TreeStats,
    build_tree,
    make_roots,
    phone_contexts,
    suggest_tree_options,
)
from asr.lang.lang_dir import Lang
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

TRI_REALIGN_ITERS = (10, 20, 30)


@dataclass(frozen=True)
class TreeOptions:
    """Options of tree building in :func:`train_tri`.

    Attributes:
        num_leaves: maximum leaves (None: :func:`asr.hmm.tree.suggest_max_leaves` of the frame count).
        min_gain: ``build-tree --thresh`` (300).
        cluster_thresh: ``build-tree --cluster-thresh`` (-1: the smallest split gain).
        min_count: fewest frames per leaf (None: :func:`asr.hmm.tree.suggest_tree_options`).
        share_silence: SIL and SPN start in one shared root.
        feature_type, delta_order, delta_window: features (as the monophone model's).
        num_jobs: parallel jobs.
    """

    num_leaves: int | None = None
    min_gain: float = 300.0
    cluster_thresh: float = -1.0
    min_count: float | None = None
    share_silence: bool = True
    feature_type: str = "mfcc"
    delta_order: int = 2
    delta_window: int = 2
    num_jobs: int = DEFAULT_JOBS


def default_tri_options(num_iters: int = 35, total_gauss: int = 4000, **overrides: Any) -> ViterbiOptions:
    """Kaldi's train_deltas.sh schedule (realign at 10, 20, 30; Gaussians grow until iteration 25), scaled
    when ``num_iters`` is not 35."""
    values: dict[str, Any] = {
        "num_iters": num_iters,
        "total_gauss": total_gauss,
        "max_iter_inc": 25 if num_iters == 35 else max(1, round(25 * num_iters / 35)),
        "realign_iters": tuple(x for x in TRI_REALIGN_ITERS if x < num_iters),
        "first_realign_beam": None,
    }
    values.update(overrides)
    return ViterbiOptions(**values)


# ----------------------------------------------------------------------------------------------------
# Frame-level helpers (vectorised over the whole corpus)


def pdf_class_table(topology: Topology) -> np.ndarray:
    """int64 ``[max_phone + 1, max_states]``: pdf-class of HMM state s of phone p (-1 where none)."""
    phones = topology.phones
    width = max(topology.hmm(p).num_states for p in phones)
    table = np.full((max(phones) + 1, width), -1, dtype=np.int64)
    for p in phones:
        for s, state in enumerate(topology.hmm(p).states):
            table[p, s] = state.pdf_class
    return table


def phone_instance_starts(tstate_ids: np.ndarray, transition_model: TransitionModel, offsets: np.ndarray) -> np.ndarray:
    """bool [T]: True where a phone instance starts (utterance start, phone change, or the entry HMM state
    entered from a different transition state), as :func:`asr.decode.align.phone_segments`."""
    ids = np.asarray(tstate_ids, dtype=np.int64)
    phones = transition_model.tstate_to_phone[ids]
    states = transition_model.tstate_to_hmm_state[ids]
    starts = np.zeros(ids.shape[0], dtype=bool)
    if ids.size:
        starts[0] = True
        starts[1:] = (phones[1:] != phones[:-1]) | ((states[1:] == 0) & (ids[1:] != ids[:-1]))
        starts[np.asarray(offsets[:-1])[np.asarray(offsets[:-1]) < ids.shape[0]]] = True
    return starts


@dataclass
class FrameContexts:
    """Per aligned frame: phone, HMM state, pdf-class, left and right context phones (int64 [T] each)."""

    phones: np.ndarray
    hmm_states: np.ndarray
    pdf_classes: np.ndarray
    left: np.ndarray
    right: np.ndarray


def frame_contexts(tstate_ids: np.ndarray, offsets: np.ndarray, transition_model: TransitionModel) -> FrameContexts:
    """Contexts of the frames of concatenated alignments (``offsets`` [U + 1]; no failed utterances)."""
    ids = np.asarray(tstate_ids, dtype=np.int64)
    phones = transition_model.tstate_to_phone[ids].astype(np.int64)
    states = transition_model.tstate_to_hmm_state[ids].astype(np.int64)
    classes = pdf_class_table(transition_model.topology)[phones, states]
    starts = phone_instance_starts(ids, transition_model, offsets)
    left, right = phone_contexts(phones, offsets, starts)
    return FrameContexts(phones, states, classes, left.astype(np.int64), right.astype(np.int64))


def tstate_lookup(
    transition_model: TransitionModel, phones: np.ndarray, states: np.ndarray, pdfs: np.ndarray
) -> np.ndarray:
    """Vectorised :meth:`TransitionModel.transition_state`: int32 transition states of (phone, state, pdf) triples.

    Raises:
        ValueError: a triple the model does not have (model and tree do not match).
    """
    table = transition_model.transition_states.astype(np.int64)
    base_s = int(table[:, 1].max()) + 1
    base_p = int(max(table[:, 2].max(), int(np.max(pdfs, initial=0)))) + 1
    keys = (table[:, 0] * base_s + table[:, 1]) * base_p + table[:, 2]  # sorted (tuples are sorted)
    query = (np.asarray(phones, np.int64) * base_s + np.asarray(states, np.int64)) * base_p + np.asarray(pdfs, np.int64)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    bad = keys[pos] != query
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"no transition state for (phone {int(phones[i])}, HMM state {int(states[i])}, pdf {int(pdfs[i])})"
        )
    return pos.astype(np.int32)


def convert_alignments(
    tstate_ids: np.ndarray,
    offsets: np.ndarray,
    old_model: TransitionModel,
    new_model: TransitionModel,
    ctx_dep: ContextDependency,
) -> np.ndarray:
    """Kaldi's ``convert-ali``: map concatenated alignments of one model to another model's transition states.

    Per frame the new transition state is ``(phone, HMM state, pdf)`` with the pdf that ``ctx_dep`` gives the
    frame's phone window (left/right phone segments, 0 at utterance edges) and pdf-class. The two models
    must share the topology.

    Args:
        tstate_ids: int [T] transition states of ``old_model`` (utterances concatenated, none failed).
        offsets: int [U + 1] utterance boundaries.
        old_model, new_model: transition models; ctx_dep: the new model's context dependency.

    Returns:
        int32 [T] transition states of ``new_model``.
    """
    if old_model.topology != new_model.topology:
        raise ValueError("convert_alignments needs the same topology in both models")
    if len(tstate_ids) == 0:
        return np.zeros(0, dtype=np.int32)
    ctx = frame_contexts(tstate_ids, offsets, old_model)
    width = int(ctx_dep.context_width)
    if width == 3:
        windows = np.stack([ctx.left, ctx.phones, ctx.right], axis=1)
    elif width == 1:
        windows = ctx.phones[:, None]
    else:
        raise ValueError(f"context width {width} is not supported (1 or 3)")
    pdfs = ctx_dep.compute_many(windows, ctx.pdf_classes)
    return tstate_lookup(new_model, ctx.phones, ctx.hmm_states, pdfs)


# ----------------------------------------------------------------------------------------------------
# Training


@dataclass
class SourceAlignment:
    """The alignment a triphone system starts from (an ``--ali-dir``)."""

    archive: AlignmentArchive
    transition_model: TransitionModel
    topology: Topology
    aligned_positions: list[int]  # archive positions of aligned utterances
    tstate_ids: np.ndarray  # concatenated over aligned utterances
    offsets: np.ndarray  # [len(aligned) + 1] into tstate_ids


def load_source_alignment(
    ali_dir: Path, utt_ids: Sequence[str], offsets: np.ndarray, lang_dir: Path
) -> SourceAlignment:
    """Read and check an ``--ali-dir``: ``ali.h5`` of the same feature archive, the model's transition model
    (its transition-state table must be the one the alignment was made with) and phones."""
    archive = AlignmentArchive(ali_dir / ALI_H5)
    archive.check_matches(utt_ids, offsets)
    tm = TransitionModel.load(ali_dir / TRANSITION_MODEL_JSON)
    want = archive.attrs.get("transition_states_sha256")
    if want is not None and want != transition_states_sha256(tm):
        raise InputError(
            f"the alignment was made with another transition model than {ali_dir / TRANSITION_MODEL_JSON}",
            ali_dir / ALI_H5,
        )
    if (ali_dir / PHONES_TXT).is_file():
        check_phones_match(ali_dir / PHONES_TXT, lang_dir / "phones.txt")
    topology = Topology.load(ali_dir / TOPO_JSON) if (ali_dir / TOPO_JSON).is_file() else tm.topology
    aligned = [i for i, u in enumerate(archive.utt_ids) if u not in archive.failed]
    if not aligned:
        raise InputError("no utterance is aligned", ali_dir / ALI_H5)
    pieces = [archive.tstate_ids[archive.offsets[i] : archive.offsets[i + 1]] for i in aligned]
    lengths = [len(p) for p in pieces]
    return SourceAlignment(
        archive,
        tm,
        topology,
        aligned,
        np.concatenate(pieces).astype(np.int64),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    )


def aligned_features(archive_path: Path, positions: Sequence[int], delta_order: int, delta_window: int) -> np.ndarray:
    """Features with deltas of the utterances at ``positions`` of the archive, concatenated."""
    with FeatureArchive(archive_path) as archive:
        everything = archive.read_all()
        feats = add_deltas(everything, archive.offsets, delta_order, delta_window)
        rows = np.concatenate([np.arange(archive.offsets[i], archive.offsets[i + 1]) for i in positions])
    return feats[rows]


@dataclass
class TreeInit:
    """A tree built from an alignment's statistics, its transition model and one Gaussian per leaf."""

    tree: Any
    transition_model: TransitionModel
    gmm: DiagGmmSet
    build_options: Any
    num_questions: int
    num_frames: int
    seconds: dict[str, float]


def build_tree_from_alignment(
    feats: np.ndarray, source: SourceAlignment, lang: Lang, tree_options: TreeOptions
) -> TreeInit:
    """Steps 1-4 of :func:`train_tri` on given features: tree statistics of the aligned frames ``feats``
    (``[len(source.tstate_ids), D]``, any feature kind: deltas, LDA, fMLLR-adapted), questions, roots, the
    tree, its transition model and one Gaussian per leaf (``gmm-init-model``)."""
    topology = source.topology
    t0 = time.perf_counter()
    ctx = frame_contexts(source.tstate_ids, source.offsets, source.transition_model)
    stats = TreeStats.from_frames(ctx.left, ctx.phones, ctx.right, ctx.pdf_classes, feats)
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    num_pdf_classes = {p: topology.num_pdf_classes(p) for p in topology.phones}
    questions = build_question_set(
        stats, max_num_pdf_classes=max(num_pdf_classes.values()), silence_phones=lang.silence_phones
    )
    roots = make_roots(topology.phones, [lang.silence_phones] if tree_options.share_silence else [])
    overrides: dict[str, Any] = {"min_gain": tree_options.min_gain, "cluster_thresh": tree_options.cluster_thresh}
    if tree_options.num_leaves is not None:
        overrides["max_leaves"] = tree_options.num_leaves
    if tree_options.min_count is not None:
        overrides["min_count"] = tree_options.min_count
    build_options = suggest_tree_options(stats.total_count, **overrides)
    tree = build_tree(stats, questions, num_pdf_classes, roots, build_options)
    t_tree = time.perf_counter() - t0
    tm = TransitionModel.build(topology, tree)
    leaf = tree.leaf_stats(stats)
    init_stats = GmmStats(
        torch.from_numpy(leaf.count),
        torch.from_numpy(leaf.sums),
        torch.from_numpy(leaf.sumsqs),
        torch.arange(tree.num_pdfs + 1),
    )
    gmm = DiagGmmSet.from_stats(init_stats)
    logger.info(
        "tree: %d leaves, %d pdfs (max_leaves %d, min_count %g) from %d frames; %d transition states; "
        "stats %.2f s, questions+tree %.2f s",
        tree.num_leaves,
        tree.num_pdfs,
        build_options.max_leaves,
        build_options.min_count,
        int(stats.total_count),
        tm.num_transition_states,
        t_stats,
        t_tree,
    )
    return TreeInit(
        tree,
        tm,
        gmm,
        build_options,
        len(questions.phone_questions),
        int(stats.total_count),
        {"tree_stats": t_stats, "tree": t_tree},
    )


def converted_source_alignments(
    source: SourceAlignment,
    transition_model: TransitionModel,
    tree: Any,
    utt_ids: Sequence[str],
    transcripts: Any,
    ali_dir: Path,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """Step 5 of :func:`train_tri`: the source alignment converted to the new model (``convert-ali``), per
    archive utterance (None where the source failed or the utterance has no transcript), and the reasons."""
    converted = convert_alignments(source.tstate_ids, source.offsets, source.transition_model, transition_model, tree)
    alignments: list[np.ndarray | None] = [None] * len(utt_ids)
    for k, pos in enumerate(source.aligned_positions):
        alignments[pos] = converted[source.offsets[k] : source.offsets[k + 1]]
    failures = {u: f"not aligned in {ali_dir / ALI_H5}: {r}" for u, r in source.archive.failed.items()}
    for pos, utt in enumerate(utt_ids):
        if transcripts.word_ids[pos] is None and alignments[pos] is not None:
            alignments[pos] = None  # no transcript: cannot be realigned; leave it out throughout
            failures[utt] = transcripts.missing[utt]
    return alignments, failures


def train_tri(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    ali_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ViterbiOptions | None = None,
    tree_options: TreeOptions | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Train a triphone GMM-HMM from an alignment (see the module docstring); returns its ``model.json``.

    Raises:
        InputError: missing or bad inputs (ali dir not matching the data's features, another phone set,
            transcripts with unknown words...).
    """
    t_start = time.perf_counter()
    options = options or default_tri_options()
    tree_options = tree_options or TreeOptions()
    data_dir, lang_dir, ali_dir, out_dir = Path(data_dir), Path(lang_dir), Path(ali_dir), Path(out_dir)
    archive_path = feature_archive_path(data_dir, tree_options.feature_type)
    inputs = {
        "text": data_dir / "text",
        "features": archive_path,
        "ali/ali.h5": ali_dir / ALI_H5,
        "ali/transition_model.json": ali_dir / TRANSITION_MODEL_JSON,
        **lang_input_files(lang_dir),
    }
    all_options = {"kind": "tri", "viterbi": dataclasses.asdict(options), "tree": dataclasses.asdict(tree_options)}
    all_options["tree"].pop("num_jobs")
    fp = fingerprint(inputs, all_options)
    if not force and is_complete(out_dir, fp["sha256"]):
        logger.info("%s is complete for these inputs: nothing to do (use --force to retrain)", out_dir)
        return read_model_info(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_JSON).unlink(missing_ok=True)
    handler = add_file_log(out_dir / "log" / "train.log")
    stack = contextlib.ExitStack()
    stack.enter_context(torch_threads(1))  # small tensor work: one thread is much faster on a busy machine
    try:
        logger.info(
            "training a triphone model: data %s, lang %s, alignment %s -> %s", data_dir, lang_dir, ali_dir, out_dir
        )
        lang = Lang.load(lang_dir)
        utt_ids, offsets = check_feature_archive(archive_path, tree_options.feature_type)
        source = load_source_alignment(ali_dir, utt_ids, offsets, lang_dir)
        topology = source.topology
        transcripts = load_transcripts(data_dir / "text", lang, utt_ids)
        log_transcript_problems(transcripts, data_dir / "text", archive_path)

        # 1-4. tree statistics, questions, roots, tree, transition model, one Gaussian per leaf
        feats = aligned_features(
            archive_path, source.aligned_positions, tree_options.delta_order, tree_options.delta_window
        )
        init = build_tree_from_alignment(feats, source, lang, tree_options)
        tree, tm, gmm, build_options = init.tree, init.transition_model, init.gmm, init.build_options
        del feats
        # 5. convert the alignment
        t0 = time.perf_counter()
        alignments, failures = converted_source_alignments(source, tm, tree, utt_ids, transcripts, ali_dir)
        t_convert = time.perf_counter() - t0
        # 6. EM
        t0 = time.perf_counter()
        with AlignmentJobs(
            archive_path,
            transcripts,
            lang_dir / "L.fst",
            tree_options.num_jobs,
            tree_options.delta_order,
            tree_options.delta_window,
        ) as jobs:
            setup_seconds = time.perf_counter() - t0
            num_gauss = tree.num_pdfs
            state = TrainState(
                gmm, tm, tree, num_gauss, max(0, (options.total_gauss - num_gauss) // options.max_iter_inc)
            )
            checkpoint = EmCheckpoint(out_dir, fp["sha256"], jobs.utt_ids)
            resumed = None if force else checkpoint.load()
            if resumed is not None:  # killed after an iteration: continue after it (asr.gmm.em_checkpoint)
                first_iter = checkpoint.restore(resumed, state, jobs, options.align) + 1
            else:
                jobs.set_model(tm, tree, options.align, compile_graphs=False)
                jobs.set_alignments(alignments, failures)
                first_iter = 1
            save = lambda x, s: checkpoint.save(x, s, jobs)  # noqa: E731
            run_em(jobs, state, range(first_iter, options.num_iters), options, save)
            info = {
                "name": out_dir.name,
                "stage": "tri",
                "feature_type": tree_options.feature_type,
                "delta_order": tree_options.delta_order,
                "delta_window": tree_options.delta_window,
                "phones": os.fspath(lang_dir / "phones.txt"),
                "lang": os.fspath(lang_dir),
                "train_data": os.fspath(data_dir),
                "ali_dir": os.fspath(ali_dir),
                "num_leaves": tree.num_leaves,
                "num_iters": options.num_iters,
                "fingerprint": fp,
            }
            train_log = {
                "kind": "tri",
                "options": all_options,
                "num_jobs": jobs.num_jobs,
                "num_utts": len(utt_ids),
                "num_frames": int(offsets[-1]),
                "tree": {
                    "num_leaves": tree.num_leaves,
                    "num_pdfs": tree.num_pdfs,
                    "build_options": dataclasses.asdict(build_options),
                    "num_questions": init.num_questions,
                    "objf_per_frame_initial": tree.build_info.get("objf_per_frame_initial"),
                    "objf_per_frame_final": tree.build_info.get("objf_per_frame_final"),
                },
                "not_aligned_in_source": len(source.archive.failed),
                "no_transcript": [[u, r] for u, r in list(transcripts.missing.items())[:50]],
                "seconds": {
                    "tree_stats": round(init.seconds["tree_stats"], 3),
                    "tree": round(init.seconds["tree"], 3),
                    "convert_alignments": round(t_convert, 3),
                    "jobs_setup": round(setup_seconds, 3),
                },
            }
            return finish_training(
                out_dir, jobs, state, options, topology, lang, data_dir, archive_path, info, train_log, t_start
            )
    finally:
        stack.close()
        remove_file_log(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.gmm.train_tri --data D --lang L --ali-dir A --out O [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.gmm.train_tri",
        description="Train a triphone GMM-HMM with a decision tree from an alignment (train_deltas.sh).",
    )
    parser.add_argument("--data", required=True, help="training data dir (text, <feature_type>.h5)")
    parser.add_argument("--lang", required=True, help="lang dir")
    parser.add_argument("--ali-dir", required=True, help="model or alignment dir whose ali.h5 aligns --data")
    parser.add_argument("--out", required=True, help="model dir to write (e.g. exp/an4/tri1)")
    parser.add_argument("--num-leaves", type=int, help="maximum tree leaves (default: ~sqrt(frames), 500 on AN4)")
    add_viterbi_arguments(parser, 35, 4000, "10 20 30")
    parser.add_argument("--min-gain", type=float, default=300.0, help="build-tree --thresh (300)")
    parser.add_argument("--cluster-thresh", type=float, default=-1.0, help="build-tree --cluster-thresh (-1)")
    parser.add_argument("--no-share-silence", action="store_true", help="SIL and SPN get separate tree roots")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        options = default_tri_options(args.num_iters, args.total_gauss, **viterbi_overrides(args))
        tree_options = TreeOptions(
            num_leaves=args.num_leaves,
            min_gain=args.min_gain,
            cluster_thresh=args.cluster_thresh,
            share_silence=not args.no_share_silence,
            feature_type=args.feature_type,
            num_jobs=args.jobs,
        )
        train_tri(args.data, args.lang, args.ali_dir, args.out, options, tree_options, force=args.force)
    except AsrError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
