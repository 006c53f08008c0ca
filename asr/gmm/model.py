"""GMM-HMM model directories (``exp/<corpus>/<name>/``): write one, load one for decoding or alignment.

A model directory (the team's GMM interface) holds:

- ``model.json``: ``{"kind": "gmm", "name", "feature_type", "delta_order", "delta_window", "feature_dim",
  "num_pdfs", "num_gauss", "context_width", "phones", "lang", "train_data", "train_seconds",
  "fingerprint", ...}``; written LAST, so a directory with ``model.json`` is complete;
- ``topo.json`` (:class:`~asr.hmm.topology.Topology`), ``tree.json`` (context dependency, read with
  :func:`~asr.hmm.tree.load_context_dependency`), ``transition_model.json``
  (:class:`~asr.hmm.transition_model.TransitionModel`), ``final.gmm.pt``
  (:class:`~asr.gmm.diag_gmm.DiagGmmSet`), ``phones.txt`` (a copy of the lang's, which
  ``asr.graph.mkgraph`` prefers to the path in model.json);
- ``ali.h5`` (:mod:`asr.gmm.alignment_archive`), ``train_log.json``, ``log/``;
- LDA+MLLT systems (:mod:`asr.gmm.train_lda_mllt`, :mod:`asr.gmm.train_sat`): ``final.mat.pt``
  (:class:`~asr.gmm.lda_mllt.SplicedTransform`, named by model.json's ``"feature_transform"``; then
  ``delta_order`` is 0, ``feature_dim`` the archive row size and ``model_dim`` the GMM's).

:class:`GmmAcousticModel` reads it back and scores one utterance's archive rows (13-dim CMVN'd MFCC; it
adds the deltas itself, or splices and applies the LDA+MLLT matrix).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.atomic import atomic_path, atomic_write
from asr.errors import InputError
from asr.features.deltas import add_deltas
from asr.gmm.diag_gmm import DiagGmmSet
from asr.hmm.topology import Topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import ContextDependencyTree, MonophoneContextDependency, load_context_dependency

logger = logging.getLogger(__name__)

MODEL_JSON = "model.json"
TOPO_JSON = "topo.json"
TREE_JSON = "tree.json"
TRANSITION_MODEL_JSON = "transition_model.json"
GMM_FILE = "final.gmm.pt"
PHONES_TXT = "phones.txt"
ALI_H5 = "ali.h5"
TRAIN_LOG_JSON = "train_log.json"
TRANSFORM_FILE = "final.mat.pt"


def _check_info_types(info: dict[str, Any], json_path: Path) -> None:
    """InputError naming ``model.json`` when a field the loader reads has the wrong type or range."""
    checks = {
        "num_pdfs": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "delta_order": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "delta_window": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "feature_dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "feature_type": lambda v: isinstance(v, str) and bool(v),
        "feature_transform": lambda v: v is None or (isinstance(v, str) and bool(v) and "/" not in v),
    }
    for key, ok in checks.items():
        if key in info and not ok(info[key]):
            raise InputError(f"model.json field {key!r} has a bad value: {info[key]!r}", json_path)


def _load_transform(model_dir: Path, info: dict[str, Any]):
    """The model's spliced feature transform (None for delta models)."""
    name = info.get("feature_transform")
    if not name:
        return None
    from asr.gmm.lda_mllt import SplicedTransform

    return SplicedTransform.load(model_dir / str(name))


def read_model_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``<model_dir>/model.json`` (InputError naming the file when missing or malformed)."""
    path = Path(model_dir) / MODEL_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read model description: {e.strerror}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    if not isinstance(data, dict):
        raise InputError("model.json must hold a JSON object", path)
    return data


def write_model_dir(
    model_dir: str | os.PathLike,
    info: dict[str, Any],
    topology: Topology,
    ctx_dep: MonophoneContextDependency | ContextDependencyTree,
    transition_model: TransitionModel,
    gmm: DiagGmmSet,
    phones_txt: str | os.PathLike,
) -> None:
    """Write the model files of a GMM model directory, each atomically, ``model.json`` last.

    ``info`` is completed with ``kind``, ``num_pdfs``, ``num_gauss``, ``context_width`` and ``feature_dim``
    from the objects. (``ali.h5``, ``train_log.json`` and ``log/`` are written by the trainer, before
    this call, so that ``model.json`` still comes last.) When ``info["feature_transform"]`` names a
    transform file (written by the trainer into ``model_dir``), ``feature_dim`` is its input dimension and
    ``model_dim`` its output dimension, which must be the GMM's.

    Raises:
        ValueError: the parts disagree (number of pdfs, feature dimension).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if not (ctx_dep.num_pdfs == transition_model.num_pdfs == gmm.num_pdfs):
        raise ValueError(
            f"pdf counts differ: tree {ctx_dep.num_pdfs}, transition model {transition_model.num_pdfs}, "
            f"GMM {gmm.num_pdfs}"
        )
    order = int(info.get("delta_order", 0))
    transform = _load_transform(model_dir, info)
    if transform is not None:
        if order != 0 or transform.output_dim != gmm.dim:
            raise ValueError(
                f"the transform makes {transform.output_dim}-dim features (delta_order {order}), the GMM has {gmm.dim}"
            )
        dims = {"feature_dim": transform.input_dim, "model_dim": gmm.dim}
    elif gmm.dim % (order + 1):
        raise ValueError(f"GMM dimension {gmm.dim} is not a multiple of delta_order + 1 = {order + 1}")
    else:
        dims = {"feature_dim": gmm.dim // (order + 1)}
    topology.save(model_dir / TOPO_JSON)
    ctx_dep.save(model_dir / TREE_JSON)
    transition_model.save(model_dir / TRANSITION_MODEL_JSON)
    gmm.save(model_dir / GMM_FILE)
    with atomic_path(model_dir / PHONES_TXT) as tmp:
        shutil.copyfile(phones_txt, tmp)
    full = {
        "kind": "gmm",
        **info,
        "num_pdfs": int(gmm.num_pdfs),
        "num_gauss": int(gmm.num_gauss),
        "context_width": int(ctx_dep.context_width),
        **dims,
    }
    with atomic_write(model_dir / MODEL_JSON) as f:
        json.dump(full, f, indent=1)
        f.write("\n")


class GmmAcousticModel:
    """A trained GMM-HMM: topology, context dependency, transition model and GMMs, plus feature settings.

    Attributes:
        model_dir: the directory it was read from.
        info: ``model.json`` as a dict.
        topology, ctx_dep, transition_model, gmm: the parts.
        feature_type: the archive to read (``<data>/<feature_type>.h5``).
        num_pdfs: number of pdfs (senones).
        delta_order, delta_window: deltas added by :meth:`log_likelihoods`.
        feature_transform: None, or the :class:`~asr.gmm.lda_mllt.SplicedTransform` (splice + LDA+MLLT)
            applied instead of deltas.
        feature_dim: dimension of the archive rows (before deltas / the transform).
        left_context, right_context: frames of context the features read on each side.
    """

    def __init__(
        self,
        model_dir: Path,
        info: dict[str, Any],
        topology: Topology,
        ctx_dep: MonophoneContextDependency | ContextDependencyTree,
        transition_model: TransitionModel,
        gmm: DiagGmmSet,
        feature_transform: Any = None,
    ):
        self.model_dir = model_dir
        self.info = info
        self.topology = topology
        self.ctx_dep = ctx_dep
        self.transition_model = transition_model
        self.gmm = gmm
        self.feature_type = str(info.get("feature_type", "mfcc"))
        self.delta_order = int(info.get("delta_order", 0))
        self.delta_window = int(info.get("delta_window", 2))
        self.num_pdfs = int(gmm.num_pdfs)
        self.feature_transform = feature_transform
        if feature_transform is not None:
            self.feature_dim = int(feature_transform.input_dim)
            self.left_context, self.right_context = int(feature_transform.left), int(feature_transform.right)
        else:
            self.feature_dim = gmm.dim // (self.delta_order + 1)
            self.left_context = self.right_context = self.delta_order * self.delta_window

    @classmethod
    def load(cls, model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> GmmAcousticModel:
        """Read a model directory written by :func:`write_model_dir`.

        Raises:
            InputError: naming the file: a missing or malformed part, a kind other than ``"gmm"``, or parts
                that do not fit together (pdf counts, feature dimension).
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise InputError("model directory not found", model_dir)
        info = read_model_info(model_dir)
        json_path = model_dir / MODEL_JSON
        if info.get("kind") != "gmm":
            raise InputError(f"model kind is {info.get('kind')!r}, not 'gmm'", json_path)
        for key in ("feature_type", "delta_order", "num_pdfs"):
            if key not in info:
                raise InputError(f"model.json has no {key!r}", json_path)
        _check_info_types(info, json_path)
        topology = Topology.load(model_dir / TOPO_JSON)
        ctx_dep = load_context_dependency(model_dir / TREE_JSON)
        transition_model = TransitionModel.load(model_dir / TRANSITION_MODEL_JSON)
        gmm = DiagGmmSet.load(model_dir / GMM_FILE, device=device)
        if not (ctx_dep.num_pdfs == transition_model.num_pdfs == gmm.num_pdfs == int(info["num_pdfs"])):
            raise InputError(
                f"the parts disagree on the number of pdfs: model.json {info['num_pdfs']}, tree {ctx_dep.num_pdfs}, "
                f"transition model {transition_model.num_pdfs}, GMM {gmm.num_pdfs}",
                model_dir,
            )
        if transition_model.topology != topology:
            raise InputError("topo.json differs from the transition model's topology", model_dir / TOPO_JSON)
        order = int(info["delta_order"])
        transform = _load_transform(model_dir, info)
        if transform is not None:
            if transform.output_dim != gmm.dim or order != 0:
                raise InputError(
                    f"the feature transform makes {transform.output_dim}-dim features (delta_order {order}), "
                    f"the GMM has {gmm.dim}",
                    model_dir / str(info["feature_transform"]),
                )
        elif gmm.dim % (order + 1) or ("feature_dim" in info and gmm.dim != int(info["feature_dim"]) * (order + 1)):
            raise InputError(
                f"GMM dimension {gmm.dim} does not fit feature_dim {info.get('feature_dim')} with delta_order {order}",
                json_path,
            )
        return cls(model_dir, info, topology, ctx_dep, transition_model, gmm, transform)

    def features(self, feats: np.ndarray) -> np.ndarray:
        """Archive rows ``[T, feature_dim]`` -> model input ``[T, gmm.dim]`` (deltas appended, or spliced and
        transformed)."""
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must be [T, {self.feature_dim}] ({self.feature_type} archive rows), got shape {feats.shape}"
            )
        if self.feature_transform is not None:
            return self.feature_transform(feats)
        if self.delta_order == 0:
            return np.ascontiguousarray(feats, dtype=np.float32)
        return add_deltas(feats, order=self.delta_order, window=self.delta_window)

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """Per-pdf log-likelihoods of one utterance: ``[T, feature_dim]`` archive rows -> float32 ``[T, num_pdfs]``.

        Deltas are added here (utterance edges clamped, as Kaldi's ``add-deltas``), or the frames spliced and
        transformed (LDA+MLLT); the scores are not scaled.
        """
        x = torch.from_numpy(self.features(feats))
        with torch.no_grad():
            return self.gmm.log_likelihoods(x).cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        feats = (
            f"{self.feature_type} + deltas {self.delta_order}"
            if self.feature_transform is None
            else f"{self.feature_type} spliced +-{self.left_context} -> {self.gmm.dim} (LDA+MLLT)"
        )
        return (
            f"GmmAcousticModel({str(self.model_dir)!r}: {self.num_pdfs} pdfs, {self.gmm.num_gauss} Gaussians, "
            f"context width {self.ctx_dep.context_width}, {feats})"
        )
