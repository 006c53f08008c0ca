"""Model bundles: one self-contained, checksummed directory that ``python -m asr.transcribe`` loads.

A trained acoustic model dir (``exp/<corpus>/dnn/<run>`` or a GMM dir such as ``exp/<corpus>/tri1``) needs
more than itself to transcribe a wav: the decoding graph, the feature options and CMVN statistics of the
training archive, the lexicon for word times. Export gathers them::

    python -m asr.bundle export --model exp/an4/dnn/mlp_d8_w512 --graph exp/an4/tri1/graph_tg \\
        --out models/an4_d8 [--lang data/an4/lang_test_tg] [--features data/an4/train/fbank.h5] \\
        [--cmvn online|global|utterance|none] [--lm-weight 10] [--force]
    python -m asr.bundle verify models/an4_d8     # checks every checksum, prints a summary

Layout of a bundle::

    manifest.json    format name and version, asr / torch / python versions, creation time, and every other
                     file with its sha256 and size
    bundle.json      kind, feature options, the trained CMVN and the CMVN policy for new audio, global CMVN
                     statistics of the training features, LM weight, decoder options, where it came from
    model/           model.json, weights (final.pt or final.gmm.pt), pdf_counts.txt (DNN priors), topo.json,
                     tree.json, transition_model.json, phones.txt, config.resolved.yaml (when the run has one),
                     the feature transform model.json names (an LDA+MLLT GMM's final.mat.pt)
    graph/           HCLG.fst, words.txt, graph.json
    lang/            lexicon.txt, phones.txt, optional_silence.txt (word times; absent without a lang dir)

Defaults at export: the feature archive is ``<model.json train_data>/<feature_type>.h5`` (its options,
CMVN kind and per-speaker statistics, summed into global statistics); the lang dir is the one ``graph.json``
names; the LM weight is the one ``<model>/decode_dev/results.json`` selected, else 10; the CMVN policy for new
audio is ``online`` (Kaldi's online CMVN, causal, so streaming and offline agree; see
:mod:`asr.features.online` and ``python -m asr.bench.transcribe`` for its WER against the trained per-speaker
CMVN), or ``none`` for a model trained without CMVN.

Loading (:func:`load_bundle`) verifies every file of the manifest (size and sha256: a changed, truncated or
missing file is an :class:`~asr.errors.InputError` naming it) and refuses a bundle of another format or of a
newer format version than this code reads, with a message saying which versions. The weights are loaded
with ``torch.load(weights_only=True)`` (by the model loaders). The bundle is written to a temporary
directory and renamed into place, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import asr
from asr.atomic import atomic_write, fsync_dir
from asr.errors import AsrError, ConfigError, InputError
from asr.features.online import CMVN_POLICIES, DEFAULT_CMVN_POLICY, CmvnPolicy
from asr.features.options import FeatureOptions
from asr.files import file_sha256, read_json

logger = logging.getLogger("asr.bundle")

BUNDLE_FORMAT = "asr-model-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SETTINGS_NAME = "bundle.json"
MODEL_SUBDIR, GRAPH_SUBDIR, LANG_SUBDIR = "model", "graph", "lang"
HMM_FILES = ("topo.json", "tree.json", "transition_model.json", "phones.txt")
#: Files of a model dir that a bundle carries, per model kind (all required).
MODEL_FILES: dict[str, tuple[str, ...]] = {
    "dnn": ("model.json", "final.pt", "pdf_counts.txt", *HMM_FILES),
    "gmm": ("model.json", "final.gmm.pt", *HMM_FILES),
}
OPTIONAL_MODEL_FILES = ("config.resolved.yaml",)
GRAPH_FILES = ("HCLG.fst", "words.txt")
OPTIONAL_GRAPH_FILES = ("graph.json",)


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class Bundle:
    """A verified bundle directory.

    Attributes:
        path: the bundle directory.
        manifest: ``manifest.json``.
        settings: ``bundle.json``.
        kind: the acoustic model kind (``"dnn"``, ``"gmm"``).
        feature_options: how features are computed (the training archive's options).
        cmvn: the default :class:`~asr.features.online.CmvnPolicy` for new audio.
        trained_cmvn: what the model was trained with (``{"kind": "speaker", "norm_vars": false}``).
        global_cmvn_stats: float64 ``[2, dim + 1]`` statistics of all training frames (None without CMVN).
        lm_weight: the LM weight to decode at (acoustic scale ``1 / lm_weight``).
        decoder: beam, max_active, min_active.
    """

    path: Path
    manifest: dict[str, Any]
    settings: dict[str, Any]
    kind: str
    feature_options: FeatureOptions
    cmvn: CmvnPolicy
    trained_cmvn: dict[str, Any]
    global_cmvn_stats: np.ndarray | None
    lm_weight: float
    decoder: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        """The model dir inside the bundle (a model dir that :func:`load_acoustic_model` reads)."""
        return self.path / MODEL_SUBDIR

    @property
    def graph_dir(self) -> Path:
        """The graph dir inside the bundle (``HCLG.fst``, ``words.txt``, ``graph.json``)."""
        return self.path / GRAPH_SUBDIR

    @property
    def lang_dir(self) -> Path | None:
        """The bundle's lexicon dir, or None when exported without a lang dir."""
        lang = self.path / LANG_SUBDIR
        return lang if (lang / "lexicon.txt").is_file() else None

    def cmvn_policy(self, kind: str | None = None) -> CmvnPolicy:
        """The bundle's CMVN policy, or another ``kind`` with the same settings (variance normalization as
        in training). ConfigError when the kind needs statistics the bundle lacks."""
        if kind is None or kind == self.cmvn.kind:
            return self.cmvn
        policy = CmvnPolicy(kind, self.cmvn.norm_vars, self.cmvn.window, self.cmvn.global_frames)
        if kind in ("online", "global") and self.global_cmvn_stats is None:
            raise ConfigError(f"CMVN policy {kind!r} needs global statistics, which this bundle lacks")
        return policy

    def load_model(self, device: str = "cpu"):
        """Load the acoustic model (:func:`asr.decode.acoustic_model.load_acoustic_model`)."""
        from asr.decode.acoustic_model import load_acoustic_model

        return load_acoustic_model(self.model_dir, device=device)


def _guess_graph(model_dir: Path) -> str:
    """The graph dir a model dir is likely decoded with (for hints): its own, or its GMM's."""
    try:
        info = read_json(model_dir / "model.json")
    except InputError:
        info = {}
    homes = [model_dir] + ([Path(info["gmm_dir"])] if isinstance(info, dict) and info.get("gmm_dir") else [])
    for home in homes:
        for name in ("graph_tg", "graph"):
            if (home / name / "HCLG.fst").is_file():
                return os.fspath(home / name)
    return "<graph dir>"


def read_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``manifest.json``: format name, a format version this code reads, a file table.

    Raises:
        InputError: no bundle, another format, a newer (or invalid) format version, a malformed table.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise InputError("model bundle not found (export one with python -m asr.bundle export)", bundle_dir)
    if not path.is_file():
        if (bundle_dir / "model.json").is_file():
            raise InputError(
                "this is a model dir, not a bundle: export one first with python -m asr.bundle export --model "
                f"{bundle_dir} --graph {_guess_graph(bundle_dir)} --out <bundle dir>",
                bundle_dir,
            )
        raise InputError(
            "not a model bundle: no manifest.json (export one with python -m asr.bundle export)", bundle_dir
        )
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise InputError(f"not an {BUNDLE_FORMAT} manifest", path)
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"invalid format_version {version!r}", path)
    if version > BUNDLE_FORMAT_VERSION:
        raise InputError(
            f"bundle format version {version} (made by asr {manifest.get('asr_version', '?')}) is newer than this "
            f"asr {asr.__version__} reads (format version {BUNDLE_FORMAT_VERSION}): upgrade asr, or export the "
            "model again with this version",
            path,
        )
    if manifest.get("asr_version") != asr.__version__:
        logger.info("%s was exported by asr %s (this is %s)", bundle_dir, manifest.get("asr_version"), asr.__version__)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InputError("manifest has no file table", path)
    for name, entry in files.items():
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts or name == MANIFEST_NAME:
            raise InputError(f"bad file name {name!r} in the file table", path)
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not isinstance(entry.get("size"), int)
        ):
            raise InputError(f"file {name!r}: entry needs a sha256 string and an integer size", path)
    return manifest


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every file the manifest lists (size, then sha256); returns the manifest.

    Raises:
        InputError: naming the first missing or changed file (or the manifest's problem).
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for name, entry in manifest["files"].items():
        path = bundle_dir / name
        if not path.is_file():
            raise InputError("file of the bundle is missing (listed in manifest.json)", path)
        size = path.stat().st_size
        if size != int(entry["size"]):
            raise InputError(
                f"checksum mismatch: {size} bytes, the manifest says {entry['size']} (the file was changed after "
                "export; export the bundle again)",
                path,
            )
        if file_sha256(path) != entry["sha256"]:
            raise InputError(
                "checksum mismatch: sha256 differs from manifest.json (the file was changed after export; export "
                "the bundle again)",
                path,
            )
    return manifest


def load_bundle(bundle_dir: str | os.PathLike) -> Bundle:
    """Verify a bundle (:func:`verify_bundle`) and read its settings.

    Raises:
        InputError: a failed check, or a malformed ``bundle.json`` (naming it).
    """
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    if SETTINGS_NAME not in manifest["files"]:
        raise InputError(f"the manifest does not list {SETTINGS_NAME}", bundle_dir / MANIFEST_NAME)
    settings_path = bundle_dir / SETTINGS_NAME
    settings = read_json(settings_path)
    try:
        kind = str(settings["kind"])
        options = FeatureOptions.from_dict(settings["feature_options"])
        cmvn = CmvnPolicy.from_dict(settings["cmvn"])
        stats = settings.get("global_cmvn_stats")
        stats = None if stats is None else np.asarray(stats, dtype=np.float64)
        if stats is not None and stats.shape != (2, options.dim + 1):
            raise ValueError(f"global_cmvn_stats of shape {stats.shape}, expected (2, {options.dim + 1})")
        bundle = Bundle(
            bundle_dir,
            manifest,
            settings,
            kind,
            options,
            cmvn,
            dict(settings.get("trained_cmvn", {})),
            stats,
            float(settings["lm_weight"]),
            dict(settings.get("decoder", {})),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, AsrError) as err:
        raise InputError(f"bad bundle settings: {err}", settings_path) from None
    for name in MODEL_FILES.get(kind, ()):
        if f"{MODEL_SUBDIR}/{name}" not in manifest["files"]:
            raise InputError(f"the manifest does not list {MODEL_SUBDIR}/{name}", bundle_dir / MANIFEST_NAME)
    return bundle


# ---------------------------------------------------------------------------------------------- export
def _training_features(model_info: dict, model_dir: Path, features: str | os.PathLike | None) -> Path:
    if features is not None:
        path = Path(features)
    else:
        train_data = model_info.get("train_data")
        if not train_data:
            raise ConfigError(f"{model_dir}/model.json names no train_data: pass --features <training archive>")
        path = Path(train_data) / f"{model_info.get('feature_type', 'fbank')}.h5"
    if not path.is_file():
        raise ConfigError(
            f"training feature archive {path} not found (its feature options and CMVN statistics go into the "
            "bundle): pass --features <the archive the model was trained on>"
        )
    return path


def _feature_settings(archive_path: Path, model, feature_type: str) -> dict[str, Any]:
    """Feature options, trained CMVN and global statistics from the training archive."""
    from asr.features.archive import FeatureArchive
    from asr.features.cmvn import cmvn_stats

    with FeatureArchive(archive_path) as archive:
        if archive.feature_type != feature_type:
            raise InputError(
                f"archive holds {archive.feature_type!r} features, the model reads {feature_type!r}", archive_path
            )
        options = archive.options
        if options is None:
            raise InputError("the archive does not record its feature options", archive_path)
        if int(archive.attrs.get("delta_order", 0)) != 0:
            raise InputError("archives with deltas appended are not supported in bundles", archive_path)
        kind = archive.cmvn
        norm_vars = bool(archive.attrs.get("cmvn_norm_vars", False))
        per_group = archive.cmvn_stats()
        if per_group:
            stats = np.sum(np.stack(list(per_group.values())), axis=0)
        elif kind == "none":
            stats = cmvn_stats(archive.read_all())
        else:
            raise InputError(f"the archive says cmvn={kind!r} but holds no CMVN statistics", archive_path)
        num_utts = len(archive)
    model_dim = getattr(model, "feature_dim", options.dim)
    if options.dim != model_dim:
        raise InputError(f"archive features of dimension {options.dim}, the model reads {model_dim}", archive_path)
    return {
        "feature_options": options.to_dict(),
        "trained_cmvn": {"kind": kind, "norm_vars": norm_vars, "groups": len(per_group or {}), "utterances": num_utts},
        "global_cmvn_stats": stats.tolist(),
    }


def _default_lm_weight(model_dir: Path) -> tuple[float, str]:
    from asr.decode.lm_weight import DEFAULT_LM_WEIGHT

    dev = model_dir / "decode_dev" / "results.json"
    if dev.is_file():
        results = read_json(dev)
        if isinstance(results, dict) and isinstance(results.get("lm_weight"), (int, float)):
            return float(results["lm_weight"]), f"selected on dev ({dev})"
    return DEFAULT_LM_WEIGHT, "default (no decode_dev/results.json)"


def _lang_files(graph_info: dict | None, lang_dir: str | os.PathLike | None) -> dict[str, Path]:
    """The lexicon files to copy (bundle name -> source); empty when there is no lang dir."""
    if lang_dir is None and graph_info is not None and graph_info.get("lang"):
        lang_dir = graph_info["lang"]
        if not Path(lang_dir).is_dir():
            logger.warning("the graph's lang dir %s is gone: word times will come from label positions", lang_dir)
            return {}
    if lang_dir is None:
        logger.warning("no lang dir (--lang): word times will come from label positions")
        return {}
    lang = Path(lang_dir)
    files = {"lexicon.txt": lang / "lexicon.txt", "phones.txt": lang / "phones.txt"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise InputError(f"the lang dir lacks {', '.join(missing)}", lang)
    if (lang / "phones" / "optional_silence.txt").is_file():
        files["optional_silence.txt"] = lang / "phones" / "optional_silence.txt"
    return files


def export_bundle(
    model_dir: str | os.PathLike,
    graph_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    lang_dir: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    cmvn: str | None = None,
    lm_weight: float | None = None,
    beam: float | None = None,
    max_active: int | None = None,
    force: bool = False,
) -> Path:
    """Write a bundle directory (see the module docstring); returns its path.

    Args:
        model_dir: a DNN or GMM model dir (``model.json`` ``"kind"``).
        graph_dir: a graph dir built for this model's tree (``HCLG.fst``, ``words.txt``, ``graph.json``).
        out: the bundle directory to write (must not exist unless ``force``).
        lang_dir: the lang dir for word times (default: the one ``graph.json`` names).
        features: the training feature archive (default: ``<train_data>/<feature_type>.h5`` of model.json).
        cmvn: default CMVN policy for new audio (default ``online``; ``none`` for a model trained without).
        lm_weight: LM weight (default: the one decode_dev selected, else 10).
        beam, max_active: decoder options (default :class:`asr.decode.decoder.DecoderOptions`).
        force: replace an existing ``out``.

    Raises:
        InputError: a missing or inconsistent input, naming it. ConfigError: bad options, ``out`` exists.
    """
    from asr.decode.acoustic_model import load_acoustic_model, model_kind
    from asr.decode.decode_dir import check_graph_matches_model, open_graph_dir
    from asr.decode.decoder import DecoderOptions
    from asr.graph.mkgraph import read_model_json

    model_dir, graph_dir, out = Path(model_dir), Path(graph_dir), Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} exists: pass --force to replace it")
    kind = model_kind(model_dir)
    if kind not in MODEL_FILES:
        raise ConfigError(f"model kind {kind!r} cannot be bundled yet (kinds: {sorted(MODEL_FILES)})")
    info = read_model_json(model_dir)
    if info.get("adaptation"):
        raise ConfigError(
            f"{model_dir} is a speaker-adapted ({info['adaptation']}) model: it needs transforms estimated on each "
            "speaker's audio, which a bundle cannot carry; bundle a speaker-independent model (its alignment model)"
        )
    model = load_acoustic_model(model_dir)  # the model must load before it is shipped
    graph = open_graph_dir(graph_dir)
    check_graph_matches_model(graph, model.transition_model)
    archive = _training_features(info, model_dir, features)
    feature_settings = _feature_settings(archive, model, model.feature_type)
    trained = feature_settings["trained_cmvn"]
    if cmvn is None:
        cmvn = "none" if trained["kind"] == "none" else DEFAULT_CMVN_POLICY
    if cmvn not in CMVN_POLICIES or cmvn == "speaker":
        raise ConfigError(f"the bundle's CMVN policy must be one of online, global, utterance, none (not {cmvn!r})")
    if trained["kind"] == "none" and cmvn != "none":
        logger.warning("the model was trained without CMVN but the bundle normalizes with %r", cmvn)
    policy = CmvnPolicy(cmvn, norm_vars=bool(trained["norm_vars"]))
    if lm_weight is None:
        lm_weight, lm_source = _default_lm_weight(model_dir)
    else:
        lm_source = "given at export"
    if not lm_weight > 0:
        raise ConfigError(f"the LM weight must be positive, not {lm_weight}")
    defaults = DecoderOptions()
    decoder = {
        "beam": float(beam if beam is not None else defaults.beam),
        "max_active": int(max_active if max_active is not None else defaults.max_active),
        "min_active": int(defaults.min_active),
    }
    lang_files = _lang_files(graph.info, lang_dir)

    copies: dict[str, Path] = {}
    for name in MODEL_FILES[kind]:
        if not (model_dir / name).is_file():
            raise InputError(f"the model dir has no {name}", model_dir)
        copies[f"{MODEL_SUBDIR}/{name}"] = model_dir / name
    extra = [str(info["feature_transform"])] if info.get("feature_transform") else []  # LDA+MLLT matrix
    for name in extra:
        if not (model_dir / name).is_file():
            raise InputError(f"the model dir has no {name} (model.json's feature_transform)", model_dir)
        copies[f"{MODEL_SUBDIR}/{name}"] = model_dir / name
    for name in OPTIONAL_MODEL_FILES:
        if (model_dir / name).is_file():
            copies[f"{MODEL_SUBDIR}/{name}"] = model_dir / name
    for name in GRAPH_FILES:
        copies[f"{GRAPH_SUBDIR}/{name}"] = graph_dir / name
    for name in OPTIONAL_GRAPH_FILES:
        if (graph_dir / name).is_file():
            copies[f"{GRAPH_SUBDIR}/{name}"] = graph_dir / name
    for name, src in lang_files.items():
        copies[f"{LANG_SUBDIR}/{name}"] = src

    from asr.decode.streaming import model_context

    context = model_context(model)
    settings = {
        "kind": kind,
        "name": info.get("name", model_dir.name),
        "feature_type": model.feature_type,
        **feature_settings,
        "cmvn": policy.to_dict(),
        "lm_weight": float(lm_weight),
        "lm_weight_source": lm_source,
        "decoder": decoder,
        "context_frames": {"left": int(context[0]), "right": int(context[1])},
        "num_pdfs": int(model.num_pdfs),
        "word_times": "lexicon" if lang_files else "labels",
        "sources": {
            "model": os.fspath(model_dir.resolve()),
            "graph": os.fspath(graph_dir.resolve()),
            "lang": os.fspath(Path(lang_files["lexicon.txt"]).parent.resolve()) if lang_files else None,
            "features": os.fspath(archive.resolve()),
        },
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, src in copies.items():
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(src, dst)
            except OSError as err:
                raise InputError(f"cannot copy into the bundle: {err.strerror}", src) from None
        with atomic_write(tmp / SETTINGS_NAME) as f:
            json.dump(settings, f, indent=1)
            f.write("\n")
        files = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            name = path.relative_to(tmp).as_posix()
            files[name] = {"sha256": file_sha256(path), "size": path.stat().st_size}
        import torch

        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "asr_version": asr.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kind": kind,
            "files": files,
        }
        with atomic_write(tmp / MANIFEST_NAME) as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(e["size"] for e in files.values())
    logger.info(
        "wrote bundle %s: %s model %s, %d files, %.1f MB; CMVN %s (trained: %s), LM weight %g (%s)",
        out, kind, settings["name"], len(files), total / 1e6, policy.kind, trained["kind"], lm_weight, lm_source,
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------- CLI
def describe(bundle: Bundle) -> str:
    """A few lines about a loaded bundle (what ``verify`` prints)."""
    m, s = bundle.manifest, bundle.settings
    size = sum(int(e["size"]) for e in m["files"].values())
    opts = bundle.feature_options
    return "\n".join(
        [
            f"{bundle.path}: {BUNDLE_FORMAT} v{m['format_version']} (asr {m.get('asr_version')}, torch "
            f"{m.get('torch_version')}, {m.get('created')}), {len(m['files'])} files, {size / 1e6:.1f} MB, "
            "checksums OK",
            f"  model: {bundle.kind} {s.get('name')}, {s.get('num_pdfs')} pdfs, context {s.get('context_frames')}",
            f"  features: {opts.type} dim {opts.dim} at {opts.sample_rate} Hz; trained CMVN "
            f"{bundle.trained_cmvn.get('kind')}, policy for new audio {bundle.cmvn.kind}",
            f"  decoding: LM weight {bundle.lm_weight:g} ({s.get('lm_weight_source')}), {bundle.decoder}; word times "
            f"from {s.get('word_times')}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.bundle", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write a bundle from a model dir and a graph dir")
    exp.add_argument("--model", required=True, help="model dir (DNN run dir or GMM dir)")
    exp.add_argument("--graph", required=True, help="graph dir (HCLG.fst, words.txt, graph.json)")
    exp.add_argument("--out", required=True, help="bundle dir to write")
    exp.add_argument("--lang", default=None, help="lang dir for word times (default: the graph's)")
    exp.add_argument("--features", default=None, help="training feature archive (default: from model.json)")
    exp.add_argument(
        "--cmvn", choices=[c for c in CMVN_POLICIES if c != "speaker"], default=None, help="default: online"
    )
    exp.add_argument("--lm-weight", type=float, default=None, help="default: decode_dev's choice, else 10")
    exp.add_argument("--beam", type=float, default=None)
    exp.add_argument("--max-active", type=int, default=None)
    exp.add_argument("--force", action="store_true", help="replace an existing bundle")
    ver = sub.add_parser("verify", help="check a bundle's checksums and print a summary")
    ver.add_argument("bundle")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.command == "export":
            path = export_bundle(
                args.model,
                args.graph,
                args.out,
                lang_dir=args.lang,
                features=args.features,
                cmvn=args.cmvn,
                lm_weight=args.lm_weight,
                beam=args.beam,
                max_active=args.max_active,
                force=args.force,
            )
            print(describe(load_bundle(path)))
        else:
            print(describe(load_bundle(args.bundle)))
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
