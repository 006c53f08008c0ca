"""LDA+MLLT triphone training (Kaldi's ``steps/train_lda_mllt.sh``: tri2b).

CLI::

    python -m asr.gmm.train_lda_mllt --data data/an4/train --lang data/an4/lang --ali-dir exp/an4/tri1 \\
        --out exp/an4/tri2b [--num-leaves 625 --total-gauss 6000 --num-iters 35 --mllt-iters "2 4 6 12"] \\
        [--dim 40 --splice-context 3 --jobs 2] [--force]

``--ali-dir`` is a model or alignment dir whose ``ali.h5`` aligns the same data (as ``train_tri``).

Steps (Kaldi's in brackets):

1. Features: every frame of the 13 CMVN'd MFCC spliced with +-3 neighbours (91 dims, ``splice-feats``).
2. LDA (``acc-lda`` + ``est-lda --dim 40``): classes are the pdfs of the alignment's model, silence frames
   left out (``weight-silence-post 0.0``); 91 -> 40 dims (:func:`asr.gmm.lda_mllt.estimate_lda`).
3. Tree, transition model, one Gaussian per leaf and the converted alignment, as ``train_tri`` but on the
   LDA features (:func:`asr.gmm.train_tri.build_tree_from_alignment`).
4. Viterbi EM for iterations 1..num_iters-1 (realign at 10, 20, 30; mixing up to ``--total-gauss`` until
   iteration 25, power 0.25). At the MLLT iterations (2, 4, 6, 12) before the statistics: MLLT statistics
   of the non-silence frames under the current model (``gmm-acc-mllt``), the semi-tied transform ``A``
   from the identity (``est-mllt``), the means multiplied by ``A`` (``gmm-transform-means``) and the
   feature transform composed with it (``compose-transforms``); the jobs recompute their features.
   (Kaldi realigns before the MLLT step when both fall on one iteration; here MLLT comes first. The default
   schedules never coincide.)
5. Final alignment, ``ali.h5`` & co., and the model dir with ``final.mat.pt`` (the spliced LDA+MLLT
   transform, :class:`asr.gmm.lda_mllt.SplicedTransform`), which :class:`asr.gmm.model.GmmAcousticModel`
   applies on the fly, so ``asr.graph.mkgraph`` and ``asr.decode.decode_dir`` take the model dir as any other.

Every EM iteration is checkpointed (:mod:`asr.gmm.em_checkpoint`, with the current feature transform and the
MLLT records): a killed run started again with the same command continues after the last complete iteration
(steps 1-3 are redone: they are deterministic) and ends with the model files of a run never interrupted;
``--force`` ignores the checkpoint.

Defaults for AN4: ``--num-leaves 625 --total-gauss 6000``. Kaldi's recipes grow the system from tri1 to
tri2b by 1.25x leaves and 1.5x Gaussians (wsj, librispeech: 2000/10000 -> 2500/15000, kept for tri3b); our
tri1 is 500/4000 (Kaldi's 2000/10000 scaled to AN4), hence 625/6000 for tri2b and tri3b. (Small-corpus
recipes such as rm keep tri1's sizes instead. On AN4 dev, tri1's sizes 500/4000 gave tri2b 6.76% WER at LM
weight 10 / 5.32% at the best weight instead of 8.06 / 6.62, but tri3b 5.04 / 4.32 instead of 3.88 / 2.59:
the speaker-adapted model uses the extra Gaussians. The sizes were not tuned on dev.)

``train_log.json`` has the EM iterations (``loglike_per_frame`` in the current feature space) and ``mllt``:
per MLLT step the objective gain per frame, frames, ``log|det A|`` and the accumulated ``log|det|`` of all
MLLT steps (``loglike_per_frame + mllt_log_det_total`` is the likelihood in the LDA space).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
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

from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.gmm.align import AlignmentJobs, ShardFrames, fingerprint, load_transcripts, torch_threads
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.em_checkpoint import EmCheckpoint
from asr.gmm.lda_mllt import (
    LDA_DIM,
    SPLICE_CONTEXT,
    LdaStats,
    MlltStats,
    SplicedTransform,
    accumulate_mllt_stats,
    estimate_lda,
    estimate_mllt,
    log_det,
    splice_frames,
    transform_gmm_means,
)
from asr.gmm.model import ALI_H5, MODEL_JSON, TRANSFORM_FILE, TRANSITION_MODEL_JSON, read_model_info
from asr.gmm.train_mono import (
    TrainState,
    ViterbiOptions,
    add_file_log,
    add_viterbi_arguments,
    check_feature_archive,
    em_iteration,
    feature_archive_path,
    finish_training,
    is_complete,
    lang_input_files,
    log_transcript_problems,
    parse_iters,
    remove_file_log,
    viterbi_overrides,
)
from asr.gmm.train_tri import (
    SourceAlignment,
    TreeOptions,
    build_tree_from_alignment,
    converted_source_alignments,
    default_tri_options,
    load_source_alignment,
)
from asr.lang.lang_dir import Lang
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

MLLT_ITERS = (2, 4, 6, 12)
DEFAULT_NUM_LEAVES = 625
DEFAULT_TOTAL_GAUSS = 6000


@dataclass(frozen=True)
class LdaMlltOptions:
    """Options of the feature transform in :func:`train_lda_mllt`.

    Attributes:
        dim: LDA output dimension (40).
        splice_context: frames of context on each side (3).
        mllt_iters: iterations that start with an MLLT update (Kaldi's 2 4 6 12).
        mllt_min_post: Gaussian posteriors below this are left out of the MLLT statistics.
    """

    dim: int = LDA_DIM
    splice_context: int = SPLICE_CONTEXT
    mllt_iters: tuple[int, ...] = MLLT_ITERS
    mllt_min_post: float = 1e-4

    def __post_init__(self) -> None:
        if self.dim < 1 or self.splice_context < 0:
            raise ConfigError(f"bad LDA options: dim {self.dim}, splice context {self.splice_context}")


def default_lda_mllt_options(
    num_iters: int = 35, total_gauss: int = DEFAULT_TOTAL_GAUSS, **overrides: Any
) -> ViterbiOptions:
    """train_lda_mllt.sh's EM schedule: the same as train_deltas.sh (:func:`default_tri_options`)."""
    return default_tri_options(num_iters, total_gauss, **overrides)


# ----------------------------------------------------------------------------------------------------
# Statistics


def silence_weights(phones: np.ndarray, silence_phones: Sequence[int], silence_weight: float = 0.0) -> np.ndarray:
    """float64 [N]: ``silence_weight`` for frames of silence phones, 1 otherwise (``weight-silence-post``)."""
    weights = np.ones(len(phones))
    weights[np.isin(phones, np.asarray(list(silence_phones), dtype=np.int64))] = silence_weight
    return weights


def lda_stats_from_alignment(
    raw: np.ndarray,
    offsets: np.ndarray,
    source: SourceAlignment,
    silence_phones: Sequence[int],
    context: int,
    chunk: int = 32768,
) -> LdaStats:
    """LDA statistics of the spliced archive rows (``raw`` [T, d], ``offsets`` the archive's): classes are the
    pdfs of the source alignment's model, silence frames left out."""
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in source.aligned_positions])
    tm = source.transition_model
    pdfs = tm.tstate_to_pdf[source.tstate_ids].astype(np.int64)
    keep = silence_weights(tm.tstate_to_phone[source.tstate_ids], silence_phones) > 0
    rows, pdfs = rows[keep], pdfs[keep]
    stats = LdaStats.zeros(int(tm.num_pdfs), raw.shape[1] * (2 * context + 1))
    for s in range(0, len(rows), chunk):
        stats.accumulate(splice_frames(raw, offsets, context, context, rows[s : s + chunk]), pdfs[s : s + chunk])
    return stats


def aligned_frames(view: ShardFrames) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, tstate_ids)`` of a job's aligned frames (rows index ``view.feats``)."""
    ok = [k for k, a in enumerate(view.alignments) if a is not None]
    if not ok:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.concatenate([np.arange(view.offsets[k], view.offsets[k + 1]) for k in ok])
    tstates = np.concatenate([view.alignments[k] for k in ok]).astype(np.int64)
    return rows, tstates


def mllt_stats_job(view: ShardFrames, gmm_state: dict, silence_phones: Sequence[int], min_post: float) -> MlltStats:
    """A job's MLLT statistics (run in the job by :meth:`AlignmentJobs.map_frames`): its aligned non-silence
    frames under the GMM."""
    gmm = DiagGmmSet.from_state_dict(gmm_state)
    rows, tstates = aligned_frames(view)
    tm = view.transition_model
    keep = silence_weights(tm.tstate_to_phone[tstates], silence_phones) > 0
    rows, tstates = rows[keep], tstates[keep]
    if len(rows) == 0:
        return MlltStats.zeros(gmm.dim)
    feats = view.feats[torch.from_numpy(rows)]
    pdf_ids = torch.from_numpy(tm.tstate_to_pdf[tstates].astype(np.int64))
    with torch.no_grad():
        return accumulate_mllt_stats(gmm, feats, pdf_ids, min_post=min_post)


def mllt_step(
    jobs: AlignmentJobs,
    state: TrainState,
    transform: SplicedTransform,
    silence_phones: Sequence[int],
    min_post: float = 1e-4,
) -> tuple[SplicedTransform, dict[str, Any]]:
    """One MLLT update on the jobs' current alignments: statistics, ``A``, the means times ``A`` (in
    ``state``), and the composed transform (sent to the jobs). Returns ``(new transform, record)``."""
    t0 = time.perf_counter()
    stats = None
    for s in jobs.map_frames(mllt_stats_job, state.gmm.state_dict(), list(silence_phones), min_post):
        stats = s if stats is None else stats.add_(s)
    result = estimate_mllt(stats)
    state.gmm = transform_gmm_means(state.gmm, result.matrix)
    new = transform.compose(result.matrix)
    jobs.set_feature_transform(new)
    record = {
        "objf_gain_per_frame": round(result.gain_per_frame, 6),
        "frames": round(result.count, 1),
        "log_det": round(log_det(result.matrix), 6),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return new, record


# ----------------------------------------------------------------------------------------------------
# Training


def train_lda_mllt(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    ali_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ViterbiOptions | None = None,
    tree_options: TreeOptions | None = None,
    lda_options: LdaMlltOptions | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Train an LDA+MLLT triphone GMM-HMM from an alignment (see the module docstring); returns its
    ``model.json``.

    Raises:
        InputError: missing or bad inputs (as :func:`asr.gmm.train_tri.train_tri`).
        ValueError: LDA impossible (fewer non-silence frames than dimensions...).
    """
    t_start = time.perf_counter()
    options = options or default_lda_mllt_options()
    tree_options = tree_options or TreeOptions(num_leaves=DEFAULT_NUM_LEAVES)
    lda_options = lda_options or LdaMlltOptions()
    data_dir, lang_dir, ali_dir, out_dir = Path(data_dir), Path(lang_dir), Path(ali_dir), Path(out_dir)
    archive_path = feature_archive_path(data_dir, tree_options.feature_type)
    inputs = {
        "text": data_dir / "text",
        "features": archive_path,
        "ali/ali.h5": ali_dir / ALI_H5,
        "ali/transition_model.json": ali_dir / TRANSITION_MODEL_JSON,
        **lang_input_files(lang_dir),
    }
    all_options = {
        "kind": "lda_mllt",
        "viterbi": dataclasses.asdict(options),
        "tree": dataclasses.asdict(tree_options),
        "lda_mllt": dataclasses.asdict(lda_options),
    }
    all_options["tree"].pop("num_jobs")
    fp = fingerprint(inputs, all_options)
    if not force and is_complete(out_dir, fp["sha256"]) and (out_dir / TRANSFORM_FILE).is_file():
        logger.info("%s is complete for these inputs: nothing to do (use --force to retrain)", out_dir)
        return read_model_info(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_JSON).unlink(missing_ok=True)
    handler = add_file_log(out_dir / "log" / "train.log")
    stack = contextlib.ExitStack()
    stack.enter_context(torch_threads(1))
    try:
        logger.info(
            "training an LDA+MLLT triphone model: data %s, lang %s, alignment %s -> %s",
            data_dir,
            lang_dir,
            ali_dir,
            out_dir,
        )
        lang = Lang.load(lang_dir)
        utt_ids, offsets = check_feature_archive(archive_path, tree_options.feature_type)
        source = load_source_alignment(ali_dir, utt_ids, offsets, lang_dir)
        transcripts = load_transcripts(data_dir / "text", lang, utt_ids)
        log_transcript_problems(transcripts, data_dir / "text", archive_path)

        # 1-2. splice, LDA
        t0 = time.perf_counter()
        with FeatureArchive(archive_path) as archive:
            raw = archive.read_all()
        ctx = lda_options.splice_context
        lda_stats = lda_stats_from_alignment(raw, offsets, source, lang.silence_phones, ctx)
        lda = estimate_lda(lda_stats, lda_options.dim)
        transform = SplicedTransform(lda.matrix, ctx, ctx)
        t_lda = time.perf_counter() - t0
        logger.info(
            "LDA: %d -> %d dims from %d non-silence frames of %d classes; eigenvalues %.2f .. %.3f (kept), "
            "%.4f (first dropped); %.2f s",
            lda_stats.dim,
            lda_options.dim,
            int(lda.num_frames),
            lda.num_classes,
            lda.eigenvalues[0],
            lda.eigenvalues[lda_options.dim - 1],
            lda.eigenvalues[lda_options.dim] if lda_options.dim < len(lda.eigenvalues) else float("nan"),
            t_lda,
        )
        # 3. tree on the LDA features, converted alignment
        rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in source.aligned_positions])
        feats = transform(raw, offsets)[rows]
        del raw
        init = build_tree_from_alignment(feats, source, lang, tree_options)
        del feats
        t0 = time.perf_counter()
        alignments, failures = converted_source_alignments(
            source, init.transition_model, init.tree, utt_ids, transcripts, ali_dir
        )
        t_convert = time.perf_counter() - t0
        # 4. EM with MLLT updates (resumed after the last complete iteration of a killed run)
        checkpoint = EmCheckpoint(out_dir, fp["sha256"], utt_ids)
        resumed = None if force else checkpoint.load()
        mllt_records: list[dict[str, Any]] = []
        log_det_total = 0.0
        if resumed is not None:
            transform, mllt_records, log_det_total = _restore_lda_mllt_extra(checkpoint, resumed)
        t0 = time.perf_counter()
        with AlignmentJobs(
            archive_path, transcripts, lang_dir / "L.fst", tree_options.num_jobs, feature_transform=transform
        ) as jobs:
            setup_seconds = time.perf_counter() - t0
            num_gauss = init.tree.num_pdfs
            state = TrainState(
                init.gmm,
                init.transition_model,
                init.tree,
                num_gauss,
                max(0, (options.total_gauss - num_gauss) // options.max_iter_inc),
            )
            if resumed is not None:  # killed after an iteration: continue after it (asr.gmm.em_checkpoint)
                first_iter = checkpoint.restore(resumed, state, jobs, options.align) + 1
            else:
                jobs.set_model(init.transition_model, init.tree, options.align, compile_graphs=False)
                jobs.set_alignments(alignments, failures)
                first_iter = 1
            for x in range(first_iter, options.num_iters):
                if x in lda_options.mllt_iters:
                    transform, record = mllt_step(
                        jobs, state, transform, lang.silence_phones, lda_options.mllt_min_post
                    )
                    log_det_total += record["log_det"]
                    record.update({"iter": x, "mllt_log_det_total": round(log_det_total, 6)})
                    mllt_records.append(record)
                    logger.info(
                        "iter %2d: MLLT objective gain %.4f per frame over %d frames, log|det A| %.4f; %.2f s",
                        x,
                        record["objf_gain_per_frame"],
                        int(record["frames"]),
                        record["log_det"],
                        record["seconds"],
                    )
                em_iteration(jobs, state, x, options)
                extra = {
                    "feature_transform": transform.state_dict(),
                    "mllt_records": json.dumps(mllt_records),
                    "mllt_log_det_total": log_det_total,
                }
                checkpoint.save(x, state, jobs, extra)
            transform.save(out_dir / TRANSFORM_FILE)
            info = {
                "name": out_dir.name,
                "stage": "lda_mllt",
                "feature_type": tree_options.feature_type,
                "delta_order": 0,
                "feature_transform": TRANSFORM_FILE,
                "splice_context": ctx,
                "phones": os.fspath(lang_dir / "phones.txt"),
                "lang": os.fspath(lang_dir),
                "train_data": os.fspath(data_dir),
                "ali_dir": os.fspath(ali_dir),
                "num_leaves": init.tree.num_leaves,
                "num_iters": options.num_iters,
                "fingerprint": fp,
            }
            train_log = {
                "kind": "lda_mllt",
                "options": all_options,
                "num_jobs": jobs.num_jobs,
                "num_utts": len(utt_ids),
                "num_frames": int(offsets[-1]),
                "lda": {
                    "input_dim": int(lda_stats.dim),
                    "dim": lda_options.dim,
                    "frames": round(lda.num_frames, 1),
                    "classes": lda.num_classes,
                    "eigenvalues": [round(float(v), 6) for v in lda.eigenvalues],
                },
                "mllt": mllt_records,
                "tree": tree_log(init),
                "not_aligned_in_source": len(source.archive.failed),
                "no_transcript": [[u, r] for u, r in list(transcripts.missing.items())[:50]],
                "seconds": {
                    "lda": round(t_lda, 3),
                    "tree_stats": round(init.seconds["tree_stats"], 3),
                    "tree": round(init.seconds["tree"], 3),
                    "convert_alignments": round(t_convert, 3),
                    "jobs_setup": round(setup_seconds, 3),
                },
            }
            return finish_training(
                out_dir, jobs, state, options, source.topology, lang, data_dir, archive_path, info, train_log, t_start
            )
    finally:
        stack.close()
        remove_file_log(handler)


def _restore_lda_mllt_extra(
    checkpoint: EmCheckpoint, blob: dict[str, Any]
) -> tuple[SplicedTransform, list[dict[str, Any]], float]:
    """The feature transform, MLLT records and accumulated ``log|det|`` saved with an LDA+MLLT checkpoint.

    Raises:
        InputError: a checkpoint without them or with malformed ones (naming the file).
    """
    extra = checkpoint.extra(blob)
    try:
        transform = SplicedTransform.from_state_dict(extra["feature_transform"], checkpoint.path)
        records = json.loads(extra["mllt_records"])
        log_det_total = float(extra["mllt_log_det_total"])
        if not isinstance(records, list):
            raise TypeError("mllt_records is not a list")
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"malformed LDA+MLLT EM checkpoint ({type(err).__name__}: {err})", checkpoint.path) from None
    return transform, records, log_det_total


def tree_log(init: Any) -> dict[str, Any]:
    """The ``tree`` entry of ``train_log.json`` from a :class:`asr.gmm.train_tri.TreeInit`."""
    return {
        "num_leaves": init.tree.num_leaves,
        "num_pdfs": init.tree.num_pdfs,
        "build_options": dataclasses.asdict(init.build_options),
        "num_questions": init.num_questions,
        "objf_per_frame_initial": init.tree.build_info.get("objf_per_frame_initial"),
        "objf_per_frame_final": init.tree.build_info.get("objf_per_frame_final"),
    }


def add_tree_arguments(parser: argparse.ArgumentParser, num_leaves: int) -> None:
    """Tree options shared by the LDA+MLLT and SAT CLIs."""
    parser.add_argument("--num-leaves", type=int, default=num_leaves, help=f"maximum tree leaves ({num_leaves})")
    parser.add_argument("--min-gain", type=float, default=300.0, help="build-tree --thresh (300)")
    parser.add_argument("--cluster-thresh", type=float, default=-1.0, help="build-tree --cluster-thresh (-1)")
    parser.add_argument("--no-share-silence", action="store_true", help="SIL and SPN get separate tree roots")


def tree_options_from_args(args: argparse.Namespace) -> TreeOptions:
    """:class:`TreeOptions` from :func:`add_tree_arguments` and the shared EM arguments."""
    return TreeOptions(
        num_leaves=args.num_leaves,
        min_gain=args.min_gain,
        cluster_thresh=args.cluster_thresh,
        share_silence=not args.no_share_silence,
        feature_type=args.feature_type,
        num_jobs=args.jobs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.gmm.train_lda_mllt --data D --lang L --ali-dir A --out O [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.gmm.train_lda_mllt",
        description="Train an LDA+MLLT triphone GMM-HMM from an alignment (train_lda_mllt.sh).",
    )
    parser.add_argument("--data", required=True, help="training data dir (text, <feature_type>.h5)")
    parser.add_argument("--lang", required=True, help="lang dir")
    parser.add_argument("--ali-dir", required=True, help="model or alignment dir whose ali.h5 aligns --data")
    parser.add_argument("--out", required=True, help="model dir to write (e.g. exp/an4/tri2b)")
    add_tree_arguments(parser, DEFAULT_NUM_LEAVES)
    add_viterbi_arguments(parser, 35, DEFAULT_TOTAL_GAUSS, "10 20 30")
    parser.add_argument("--mllt-iters", default="2 4 6 12", help="iterations with an MLLT update (2 4 6 12)")
    parser.add_argument("--dim", type=int, default=LDA_DIM, help=f"LDA dimension ({LDA_DIM})")
    parser.add_argument("--splice-context", type=int, default=SPLICE_CONTEXT, help="frames each side (3)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        options = default_lda_mllt_options(args.num_iters, args.total_gauss, **viterbi_overrides(args))
        lda_options = LdaMlltOptions(
            dim=args.dim, splice_context=args.splice_context, mllt_iters=parse_iters(args.mllt_iters)
        )
        train_lda_mllt(
            args.data,
            args.lang,
            args.ali_dir,
            args.out,
            options,
            tree_options_from_args(args),
            lda_options,
            force=args.force,
        )
    except (AsrError, ValueError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
