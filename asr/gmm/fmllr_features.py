"""Write speaker-adapted (fMLLR) features of a data dir as a feature archive, for DNNs trained on them (Kaldi
nnet1's ``steps/nnet/make_fmllr_feats.sh``).

Each utterance's archive rows (13 CMVN'd MFCC of ``<data>/<model feature_type>.h5``) go through the SAT
model's own pipeline (:class:`asr.gmm.fmllr.SpeakerAdaptedTransform`: splice +- 3, LDA+MLLT from
``final.mat.pt``, then the utterance's speaker's fMLLR transform), so the rows written are exactly the features
the GMM scores. The training speakers' transforms are the model's ``trans.pt``; a test set's come from the
two-pass decode (``<decode_dir>/trans.pt``, :mod:`asr.decode.decode_fmllr`).

Usage::

    python -m asr.gmm.fmllr_features --data data/an4/train --model exp/an4/tri3b \\
        --transforms exp/an4/tri3b/trans.pt --out data/an4/train/fmllr.h5

A speaker without a transform is an error (InputError naming the transforms file) unless
``--allow-missing`` (then it keeps the LDA+MLLT features, with a warning). The archive's attributes say
what it holds: ``feature_type`` (default ``"fmllr"``), ``source_model``, ``transforms``,
``transforms_sha256``, ``feature_transform_sha256``, ``source`` (the MFCC archive), ``source_cmvn``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from asr.data.datadir import read_data_dir
from asr.errors import AsrError, InputError
from asr.features.archive import ArchiveWriter, FeatureArchive, base_attrs
from asr.gmm.fmllr import SpeakerAdaptedTransform, SpeakerTransforms
from asr.gmm.model import GmmAcousticModel

logger = logging.getLogger(__name__)

FEATURE_TYPE = "fmllr"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def speaker_adapted_transform(
    model: GmmAcousticModel,
    utt2spk: dict[str, str],
    transforms: SpeakerTransforms,
    transforms_path: str | os.PathLike,
    *,
    allow_missing: bool = False,
) -> SpeakerAdaptedTransform:
    """The SAT feature pipeline of ``model`` for the utterances of ``utt2spk`` with the speakers' ``transforms``.

    Raises:
        InputError: ``model`` has no LDA+MLLT transform, the transforms' dimension is not the GMM's, or (unless
            ``allow_missing``) a speaker of ``utt2spk`` has no transform (naming ``transforms_path``).
    """
    if model.feature_transform is None:
        raise InputError("the model has no LDA+MLLT feature transform (final.mat.pt)", model.model_dir)
    if transforms.dim != model.gmm.dim:
        raise InputError(
            f"transforms of dimension {transforms.dim}, the model's features have {model.gmm.dim}", transforms_path
        )
    missing = sorted(set(utt2spk.values()) - set(transforms.matrices))
    if missing:
        names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if not allow_missing:
            raise InputError(f"no fMLLR transform for speaker(s) {names}", transforms_path)
        logger.warning("%s: no transform for speaker(s) %s: they keep the LDA+MLLT features", transforms_path, names)
    return SpeakerAdaptedTransform(model.feature_transform, utt2spk, transforms)


def write_fmllr_features(
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    transforms_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    allow_missing: bool = False,
    feature_type: str = FEATURE_TYPE,
    compression: str | None = None,
) -> dict:
    """Write ``out``: the fMLLR features of every utterance of ``<data_dir>/<model feature_type>.h5`` (in
    archive order). Returns ``{"utterances", "frames", "dim", "speakers", "speakers_without_transform"}``.

    Raises:
        InputError: a missing or malformed model, transforms file, data dir or archive; an utterance of the
            archive absent from utt2spk; a speaker without a transform (unless ``allow_missing``).
    """
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    model = GmmAcousticModel.load(model_dir)
    transforms = SpeakerTransforms.load(transforms_path)
    data = read_data_dir(data_dir)
    archive_path = data_dir / f"{model.feature_type}.h5"
    with FeatureArchive(archive_path) as archive:
        unknown = [u for u in archive.utt_ids if u not in data.utt2spk]
        if unknown:
            raise InputError(f"utterance {unknown[0]!r} of the archive is not in utt2spk", data_dir / "utt2spk")
        utt2spk = {u: data.utt2spk[u] for u in archive.utt_ids}
        transform = speaker_adapted_transform(model, utt2spk, transforms, transforms_path, allow_missing=allow_missing)
        if archive.dim != model.feature_dim:
            raise InputError(f"{archive.dim}-dim rows, the model reads {model.feature_dim}", archive_path)
        attrs = base_attrs(
            feature_type,
            archive.options,
            str(archive_path),
            cmvn="none",
            source_cmvn=archive.cmvn,
            source_model=str(model_dir),
            source_model_name=str(model.info.get("name", model_dir.name)),
            feature_transform_sha256=file_sha256(model_dir / str(model.info["feature_transform"])),
            transforms=str(transforms_path),
            transforms_sha256=file_sha256(transforms_path),
            splice_left=int(model.left_context),
            splice_right=int(model.right_context),
        )
        with ArchiveWriter(out, model.gmm.dim, attrs, compression=compression) as writer:
            for utt in archive.utt_ids:
                writer.append(utt, transform(archive.read(utt), None, [utt]))
            frames = writer.num_frames
    speakers = set(utt2spk.values())
    without = sorted(speakers - set(transforms.matrices))
    return {
        "utterances": len(utt2spk),
        "frames": int(frames),
        "dim": int(model.gmm.dim),
        "speakers": len(speakers),
        "speakers_without_transform": without,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m asr.gmm.fmllr_features", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data dir with <model feature_type>.h5 and utt2spk")
    parser.add_argument("--model", required=True, help="SAT model dir (final.mat.pt)")
    parser.add_argument("--transforms", help="speaker transforms (default <model>/trans.pt)")
    parser.add_argument("--out", required=True, help="archive to write (e.g. <data>/fmllr.h5)")
    parser.add_argument("--feature-type", default=FEATURE_TYPE, help="the archive's feature_type attribute")
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="speakers without a transform keep the LDA+MLLT features (warning) instead of an error",
    )
    parser.add_argument("--compression", choices=("gzip", "lzf"), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(asctime)s %(name)s: %(message)s")
    transforms = args.transforms or str(Path(args.model) / "trans.pt")
    try:
        summary = write_fmllr_features(
            args.data,
            args.model,
            transforms,
            args.out,
            allow_missing=args.allow_missing,
            feature_type=args.feature_type,
            compression=args.compression,
        )
    except AsrError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    logger.info(
        "wrote %s: %d utterances, %d frames x %d, %d speakers%s",
        args.out,
        summary["utterances"],
        summary["frames"],
        summary["dim"],
        summary["speakers"],
        f" ({len(summary['speakers_without_transform'])} without a transform)"
        if summary["speakers_without_transform"]
        else "",
    )


if __name__ == "__main__":
    main()
