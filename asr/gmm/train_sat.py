"""Speaker adaptive training with fMLLR on LDA+MLLT features (Kaldi's ``steps/train_sat.sh``: tri3b).

CLI::

    python -m asr.gmm.train_sat --data data/an4/train --lang data/an4/lang --ali-dir exp/an4/tri2b \\
        --out exp/an4/tri3b [--num-leaves 625 --total-gauss 6000 --num-iters 35 --fmllr-iters "2 4 6 12"] \\
        [--jobs 2] [--force]

``--ali-dir``: an LDA+MLLT model dir (or an alignment dir made from one) whose ``ali.h5`` aligns ``--data``;
its ``final.mat.pt`` defines the speaker-independent features (splice + LDA+MLLT), kept unchanged. Speakers
come from ``<data>/utt2spk``.

Steps (Kaldi's in brackets):

1. Initial per-speaker fMLLR transforms from the alignment with the ali dir's model on the
   speaker-independent features, silence frames left out (``gmm-est-fmllr --fmllr-update-type=full``,
   ``weight-silence-post 0.0``).
2. Tree, transition model, one Gaussian per leaf and the converted alignment on the adapted features (as
   ``train_tri``).
3. Viterbi EM for iterations 1..num_iters-1 (realign at 10, 20, 30; mixing up until iteration 25 with power
   0.2, train_sat.sh's). At the fMLLR iterations (2, 4, 6, 12), before the statistics: new transforms
   estimated on the current adapted features with the current model, starting from the identity, composed
   with the old ones (``gmm-est-fmllr`` + ``compose-transforms --b-is-affine``); the jobs recompute their
   features.
4. The alignment model ``final.alimdl.gmm.pt``: one ML update of the final model from the
   speaker-independent features with the Gaussian posteriors of the final model on the adapted features
   (``gmm-acc-stats-twofeats``, ``gmm-est --remove-low-count-gaussians=false``): Gaussian for Gaussian the
   same model, for the first pass of decoding (:mod:`asr.decode.decode_fmllr`).
5. Final alignment on the adapted features (as ``align_fmllr.sh``): ``ali.h5`` & co.; the model dir with
   ``final.mat.pt``, ``trans.pt`` (the training speakers' transforms, :class:`asr.gmm.fmllr.SpeakerTransforms`)
   and model.json's ``"adaptation": "fmllr"``, ``"alignment_model"``, ``"speaker_transforms"``.

Every EM iteration is checkpointed (:mod:`asr.gmm.em_checkpoint`), iteration 0 being the state after step 2,
with the speakers' initial (step 1) and current fMLLR transforms and the fMLLR records: a killed run started again
with the same command rebuilds the tree from the saved initial transforms (step 2 is deterministic), continues
after the last complete iteration and ends with the model files of a run never interrupted; ``--force`` ignores
the checkpoint.

Decode with ``python -m asr.decode.decode_fmllr``; plain ``decode_dir`` would score unadapted features with
the adapted model.
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

from asr.data.datadir import read_table
from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.gmm.align import AlignmentJobs, fingerprint, load_transcripts, torch_threads
from asr.gmm.diag_gmm import DiagGmmSet, GmmUpdateOptions
from asr.gmm.em_checkpoint import EmCheckpoint
from asr.gmm.fmllr import (
    FMLLR_MIN_COUNT,
    FMLLR_NUM_ITERS,
    SpeakerAdaptedTransform,
    SpeakerTransforms,
    compose_affine,
    estimate_fmllr,
    fmllr_stats_job,
    gather_fmllr_stats,
    two_feats_stats_job,
)
from asr.gmm.lda_mllt import SplicedTransform
from asr.gmm.model import (
    ALI_H5,
    GMM_FILE,
    MODEL_JSON,
    TRANSFORM_FILE,
    TRANSITION_MODEL_JSON,
    TREE_JSON,
    read_model_info,
)
from asr.gmm.train_lda_mllt import (
    DEFAULT_NUM_LEAVES,
    DEFAULT_TOTAL_GAUSS,
    add_tree_arguments,
    tree_log,
    tree_options_from_args,
)
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
    TreeOptions,
    build_tree_from_alignment,
    converted_source_alignments,
    default_tri_options,
    load_source_alignment,
)
from asr.hmm.tree import load_context_dependency
from asr.lang.lang_dir import Lang
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

FMLLR_ITERS = (2, 4, 6, 12)
ALIGNMENT_MODEL_FILE = "final.alimdl.gmm.pt"
SPEAKER_TRANSFORMS_FILE = "trans.pt"


@dataclass(frozen=True)
class SatOptions:
    """Options of the speaker adaptation in :func:`train_sat`.

    Attributes:
        fmllr_iters: iterations that start with new fMLLR transforms (Kaldi's 2 4 6 12).
        silence_weight: weight of silence frames in the fMLLR statistics (0.0).
        update_type: ``"full"`` or ``"diag"`` (:func:`asr.gmm.fmllr.estimate_fmllr`).
        min_count: speakers with fewer (weighted) frames keep their transform (500).
        num_fmllr_iters: passes of the row-by-row update (40).
    """

    fmllr_iters: tuple[int, ...] = FMLLR_ITERS
    silence_weight: float = 0.0
    update_type: str = "full"
    min_count: float = FMLLR_MIN_COUNT
    num_fmllr_iters: int = FMLLR_NUM_ITERS

    def __post_init__(self) -> None:
        if not 0.0 <= self.silence_weight <= 1.0:
            raise ConfigError(f"silence_weight must be in [0, 1], got {self.silence_weight}")


def default_sat_options(
    num_iters: int = 35, total_gauss: int = DEFAULT_TOTAL_GAUSS, **overrides: Any
) -> ViterbiOptions:
    """train_sat.sh's EM schedule: train_deltas.sh's with mixing-up power 0.2."""
    return default_tri_options(num_iters, total_gauss, **{"power": 0.2, **overrides})


def read_utt2spk(data_dir: Path, utt_ids: Sequence[str]) -> dict[str, str]:
    """``<data>/utt2spk`` for the archive's utterances (InputError naming the file when one is missing)."""
    path = data_dir / "utt2spk"
    if not path.is_file():
        raise InputError("missing utt2spk (speaker adaptation needs the speakers)", path)
    table = read_table(path)
    missing = [u for u in utt_ids if u not in table]
    if missing:
        raise InputError(f"{len(missing)} utterances have no speaker, e.g. {missing[0]!r}", path)
    return {u: table[u] for u in utt_ids}


def fmllr_step(
    jobs: AlignmentJobs,
    gmm: DiagGmmSet,
    adapted: SpeakerAdaptedTransform,
    speakers: Sequence[str],
    silence_phones: Sequence[int],
    options: SatOptions,
) -> tuple[SpeakerAdaptedTransform, dict[str, Any]]:
    """New fMLLR transforms on the jobs' current features and alignments with ``gmm``, composed with the
    current ones and sent to the jobs. Returns ``(new transform, record)``."""
    t0 = time.perf_counter()
    dim = adapted.base.output_dim
    results = jobs.map_frames(
        fmllr_stats_job, gmm.state_dict(), adapted.utt2spk, list(speakers), list(silence_phones), options.silence_weight
    )
    stats = gather_fmllr_stats(results, len(speakers), dim)
    est = estimate_fmllr(
        stats, update_type=options.update_type, min_count=options.min_count, num_iters=options.num_fmllr_iters
    )
    composed = SpeakerTransforms(dim, dict(adapted.transforms.matrices))
    for s, spk in enumerate(speakers):
        if est.updated[s]:
            composed.matrices[spk] = compose_affine(est.w[s], adapted.transforms.get(spk))
    new = SpeakerAdaptedTransform(adapted.base, adapted.utt2spk, composed)
    jobs.set_feature_transform(new)
    record = {
        "objf_gain_per_frame": round(est.gain_per_frame, 6),
        "frames": round(float(est.count.sum()), 1),
        "speakers_updated": int(est.updated.sum()),
        "speakers": len(speakers),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return new, record


def _log_fmllr(what: str, record: dict[str, Any]) -> None:
    logger.info(
        "%s: fMLLR objective gain %.4f per frame over %d frames, %d of %d speakers updated; %.2f s",
        what,
        record["objf_gain_per_frame"],
        int(record["frames"]),
        record["speakers_updated"],
        record["speakers"],
        record["seconds"],
    )


def train_sat(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    ali_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ViterbiOptions | None = None,
    tree_options: TreeOptions | None = None,
    sat_options: SatOptions | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Speaker adaptive training (see the module docstring); returns the model's ``model.json``.

    Raises:
        InputError: missing or bad inputs (an ali dir without an LDA+MLLT transform, no utt2spk...).
    """
    t_start = time.perf_counter()
    options = options or default_sat_options()
    tree_options = tree_options or TreeOptions(num_leaves=DEFAULT_NUM_LEAVES)
    sat_options = sat_options or SatOptions()
    data_dir, lang_dir, ali_dir, out_dir = Path(data_dir), Path(lang_dir), Path(ali_dir), Path(out_dir)
    archive_path = feature_archive_path(data_dir, tree_options.feature_type)
    ali_info = read_model_info(ali_dir)
    if not ali_info.get("feature_transform"):
        raise InputError(
            "the alignment's model has no LDA+MLLT transform (train one with python -m asr.gmm.train_lda_mllt)",
            ali_dir / MODEL_JSON,
        )
    base_path = ali_dir / str(ali_info["feature_transform"])
    inputs = {
        "text": data_dir / "text",
        "utt2spk": data_dir / "utt2spk",
        "features": archive_path,
        "ali/ali.h5": ali_dir / ALI_H5,
        "ali/transition_model.json": ali_dir / TRANSITION_MODEL_JSON,
        "ali/final.gmm.pt": ali_dir / GMM_FILE,
        "ali/transform": base_path,
        **lang_input_files(lang_dir),
    }
    all_options = {
        "kind": "sat",
        "viterbi": dataclasses.asdict(options),
        "tree": dataclasses.asdict(tree_options),
        "sat": dataclasses.asdict(sat_options),
    }
    all_options["tree"].pop("num_jobs")
    fp = fingerprint(inputs, all_options)
    extra = (TRANSFORM_FILE, ALIGNMENT_MODEL_FILE, SPEAKER_TRANSFORMS_FILE)
    if not force and is_complete(out_dir, fp["sha256"]) and all((out_dir / n).is_file() for n in extra):
        logger.info("%s is complete for these inputs: nothing to do (use --force to retrain)", out_dir)
        return read_model_info(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_JSON).unlink(missing_ok=True)
    handler = add_file_log(out_dir / "log" / "train.log")
    stack = contextlib.ExitStack()
    stack.enter_context(torch_threads(1))
    try:
        logger.info(
            "speaker adaptive training: data %s, lang %s, alignment %s -> %s", data_dir, lang_dir, ali_dir, out_dir
        )
        lang = Lang.load(lang_dir)
        utt_ids, offsets = check_feature_archive(archive_path, tree_options.feature_type)
        source = load_source_alignment(ali_dir, utt_ids, offsets, lang_dir)
        transcripts = load_transcripts(data_dir / "text", lang, utt_ids)
        log_transcript_problems(transcripts, data_dir / "text", archive_path)
        utt2spk = read_utt2spk(data_dir, utt_ids)
        speakers = sorted(set(utt2spk.values()))
        base = SplicedTransform.load(base_path)
        source_gmm = DiagGmmSet.load(ali_dir / GMM_FILE)
        if source_gmm.dim != base.output_dim:
            raise InputError(f"the GMM has dimension {source_gmm.dim}, the transform {base.output_dim}", base_path)
        adapted = SpeakerAdaptedTransform(base, utt2spk, SpeakerTransforms(base.output_dim))
        fmllr_records: list[dict[str, Any]] = []
        checkpoint = EmCheckpoint(out_dir, fp["sha256"], utt_ids)
        resumed = None if force else checkpoint.load()
        initial = None  # the speakers' transforms of step 1
        if resumed is not None:
            initial, current, fmllr_records = _restore_sat_extra(checkpoint, resumed, base.output_dim)
            adapted = SpeakerAdaptedTransform(base, utt2spk, current)
        t0 = time.perf_counter()
        with AlignmentJobs(
            archive_path, transcripts, lang_dir / "L.fst", tree_options.num_jobs, feature_transform=adapted
        ) as jobs:
            setup_seconds = time.perf_counter() - t0
            if initial is None:
                # 1. initial transforms with the alignment's model on the speaker-independent features
                source_alignments: list[np.ndarray | None] = [None] * len(utt_ids)
                for k, pos in enumerate(source.aligned_positions):
                    source_alignments[pos] = source.tstate_ids[source.offsets[k] : source.offsets[k + 1]]
                failed = {u: "not aligned in the source" for u, a in zip(utt_ids, source_alignments) if a is None}
                ctx_dep = load_context_dependency(ali_dir / TREE_JSON)
                jobs.set_model(source.transition_model, ctx_dep, options.align, False)
                jobs.set_alignments(source_alignments, failed)
                adapted, record = fmllr_step(jobs, source_gmm, adapted, speakers, lang.silence_phones, sat_options)
                record["iter"] = 0
                fmllr_records.append(record)
                _log_fmllr("initial transforms (alignment model)", record)
                initial = adapted.transforms
            # 2. tree on the adapted features, converted alignment
            with FeatureArchive(archive_path) as archive:
                raw = archive.read_all()
            rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in source.aligned_positions])
            feats = SpeakerAdaptedTransform(base, utt2spk, initial)(raw, offsets, utt_ids)[rows]
            del raw
            init = build_tree_from_alignment(feats, source, lang, tree_options)
            del feats
            t1 = time.perf_counter()
            alignments, failures = converted_source_alignments(
                source, init.transition_model, init.tree, utt_ids, transcripts, ali_dir
            )
            t_convert = time.perf_counter() - t1
            # 3. EM with fMLLR updates (resumed after the last complete iteration of a killed run)
            num_gauss = init.tree.num_pdfs
            state = TrainState(
                init.gmm,
                init.transition_model,
                init.tree,
                num_gauss,
                max(0, (options.total_gauss - num_gauss) // options.max_iter_inc),
            )

            def save(x: int) -> None:
                extra = {
                    "initial_transforms": _transforms_state(initial),
                    "speaker_transforms": _transforms_state(adapted.transforms),
                    "fmllr_records": json.dumps(fmllr_records),
                }
                checkpoint.save(x, state, jobs, extra)

            if resumed is not None:  # killed after an iteration: continue after it (asr.gmm.em_checkpoint)
                first_iter = checkpoint.restore(resumed, state, jobs, options.align) + 1
            else:
                jobs.set_model(init.transition_model, init.tree, options.align, compile_graphs=False)
                jobs.set_alignments(alignments, failures)
                save(0)  # step 1 is not redone after a kill
                first_iter = 1
            for x in range(first_iter, options.num_iters):
                if x in sat_options.fmllr_iters:
                    adapted, record = fmllr_step(jobs, state.gmm, adapted, speakers, lang.silence_phones, sat_options)
                    record["iter"] = x
                    fmllr_records.append(record)
                    _log_fmllr(f"iter {x:2d}", record)
                em_iteration(jobs, state, x, options)
                save(x)
            # 4. the alignment model (speaker-independent features, the final model's posteriors)
            t1 = time.perf_counter()
            stats = None
            for s in jobs.map_frames(two_feats_stats_job, state.gmm.state_dict(), base):
                stats = s if stats is None else stats.add_(s)
            alimdl, report = state.gmm.update(stats, GmmUpdateOptions(remove_low_count_gaussians=False))
            alimdl.save(out_dir / ALIGNMENT_MODEL_FILE)
            t_alimdl = time.perf_counter() - t1
            logger.info(
                "alignment model: %d Gaussians re-estimated on speaker-independent features; %.2f s",
                alimdl.num_gauss,
                t_alimdl,
            )
            base.save(out_dir / TRANSFORM_FILE)
            adapted.transforms.save(out_dir / SPEAKER_TRANSFORMS_FILE)
            info = {
                "name": out_dir.name,
                "stage": "sat",
                "feature_type": tree_options.feature_type,
                "delta_order": 0,
                "feature_transform": TRANSFORM_FILE,
                "splice_context": base.left,
                "adaptation": "fmllr",
                "alignment_model": ALIGNMENT_MODEL_FILE,
                "speaker_transforms": SPEAKER_TRANSFORMS_FILE,
                "phones": os.fspath(lang_dir / "phones.txt"),
                "lang": os.fspath(lang_dir),
                "train_data": os.fspath(data_dir),
                "ali_dir": os.fspath(ali_dir),
                "num_leaves": init.tree.num_leaves,
                "num_iters": options.num_iters,
                "fingerprint": fp,
            }
            train_log = {
                "kind": "sat",
                "options": all_options,
                "num_jobs": jobs.num_jobs,
                "num_utts": len(utt_ids),
                "num_speakers": len(speakers),
                "num_frames": int(offsets[-1]),
                "fmllr": fmllr_records,
                "tree": tree_log(init),
                "alignment_model": {"loglike_per_frame": round(report.loglike_per_frame, 6)},
                "not_aligned_in_source": len(source.archive.failed),
                "no_transcript": [[u, r] for u, r in list(transcripts.missing.items())[:50]],
                "seconds": {
                    "tree_stats": round(init.seconds["tree_stats"], 3),
                    "tree": round(init.seconds["tree"], 3),
                    "convert_alignments": round(t_convert, 3),
                    "jobs_setup": round(setup_seconds, 3),
                    "alignment_model": round(t_alimdl, 3),
                },
            }
            return finish_training(
                out_dir, jobs, state, options, source.topology, lang, data_dir, archive_path, info, train_log, t_start
            )
    finally:
        stack.close()
        remove_file_log(handler)


def _transforms_state(transforms: SpeakerTransforms) -> dict[str, Any]:
    """Speaker transforms as checkpoint ``extra`` (the speakers that have one, sorted, and their float64
    matrices [S, d, d + 1]; speakers without one keep the identity)."""
    speakers = sorted(transforms.matrices)
    dim = transforms.dim
    mats = np.stack([transforms.matrices[s] for s in speakers]) if speakers else np.zeros((0, dim, dim + 1))
    return {"dim": dim, "speakers": speakers, "matrices": torch.from_numpy(np.asarray(mats, np.float64))}


def _transforms_from_state(state: Any, dim: int) -> SpeakerTransforms:
    """Inverse of :func:`_transforms_state` (TypeError/ValueError/KeyError on a malformed one)."""
    speakers, mats = list(state["speakers"]), state["matrices"].numpy()
    if int(state["dim"]) != dim or mats.shape != (len(speakers), dim, dim + 1):
        raise ValueError(f"transforms of shape {tuple(mats.shape)} for {len(speakers)} speakers, dimension {dim}")
    return SpeakerTransforms(dim, {s: mats[i].astype(np.float64) for i, s in enumerate(speakers)})


def _restore_sat_extra(
    checkpoint: EmCheckpoint, blob: dict[str, Any], dim: int
) -> tuple[SpeakerTransforms, SpeakerTransforms, list[dict[str, Any]]]:
    """The initial and current speaker transforms and the fMLLR records saved with a SAT checkpoint.

    Raises:
        InputError: a checkpoint without them or with malformed ones (naming the file).
    """
    extra = checkpoint.extra(blob)
    try:
        initial = _transforms_from_state(extra["initial_transforms"], dim)
        current = _transforms_from_state(extra["speaker_transforms"], dim)
        records = json.loads(extra["fmllr_records"])
        if not isinstance(records, list):
            raise TypeError("fmllr_records is not a list")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InputError(f"malformed SAT EM checkpoint ({type(err).__name__}: {err})", checkpoint.path) from None
    return initial, current, records


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.gmm.train_sat --data D --lang L --ali-dir A --out O [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.gmm.train_sat",
        description="Speaker adaptive training with fMLLR on LDA+MLLT features (train_sat.sh).",
    )
    parser.add_argument("--data", required=True, help="training data dir (text, utt2spk, <feature_type>.h5)")
    parser.add_argument("--lang", required=True, help="lang dir")
    parser.add_argument("--ali-dir", required=True, help="LDA+MLLT model or alignment dir whose ali.h5 aligns --data")
    parser.add_argument("--out", required=True, help="model dir to write (e.g. exp/an4/tri3b)")
    add_tree_arguments(parser, DEFAULT_NUM_LEAVES)
    add_viterbi_arguments(parser, 35, DEFAULT_TOTAL_GAUSS, "10 20 30")
    parser.set_defaults(power=0.2)
    parser.add_argument("--fmllr-iters", default="2 4 6 12", help="iterations with new fMLLR transforms (2 4 6 12)")
    parser.add_argument("--silence-weight", type=float, default=0.0, help="silence weight in fMLLR statistics (0)")
    parser.add_argument("--fmllr-update-type", default="full", choices=["full", "diag"])
    parser.add_argument("--fmllr-min-count", type=float, default=FMLLR_MIN_COUNT, help="frames for a transform (500)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        options = default_sat_options(args.num_iters, args.total_gauss, **viterbi_overrides(args))
        sat_options = SatOptions(
            fmllr_iters=parse_iters(args.fmllr_iters),
            silence_weight=args.silence_weight,
            update_type=args.fmllr_update_type,
            min_count=args.fmllr_min_count,
        )
        train_sat(
            args.data,
            args.lang,
            args.ali_dir,
            args.out,
            options,
            tree_options_from_args(args),
            sat_options,
            force=args.force,
        )
    except (AsrError, ValueError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
