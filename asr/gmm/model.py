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
- ``ali.h5`` (:mod:`asr.gmm.alignment_archive`), ``train_log.json``, ``log/``.

:class:`GmmAcousticModel` reads it back and scores one utterance's archive rows (13-dim CMVN'd MFCC; it
adds the deltas itself).
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
    this call, so that ``model.json`` still comes last.)

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
    if gmm.dim % (order + 1):
        raise ValueError(f"GMM dimension {gmm.dim} is not a multiple of delta_order + 1 = {order + 1}")
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
        "feature_dim": gmm.dim // (order + 1),
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
        feature_dim: dimension of the archive rows (before deltas).
    """

    def __init__(
        self,
        model_dir: Path,
        info: dict[str, Any],
        topology: Topology,
        ctx_dep: MonophoneContextDependency | ContextDependencyTree,
        transition_model: TransitionModel,
        gmm: DiagGmmSet,
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
        self.feature_dim = gmm.dim // (self.delta_order + 1)

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
        if gmm.dim % (order + 1) or ("feature_dim" in info and gmm.dim != int(info["feature_dim"]) * (order + 1)):
            raise InputError(
                f"GMM dimension {gmm.dim} does not fit feature_dim {info.get('feature_dim')} with delta_order {order}",
                json_path,
            )
        return cls(model_dir, info, topology, ctx_dep, transition_model, gmm)

    def features(self, feats: np.ndarray) -> np.ndarray:
        """Archive rows ``[T, feature_dim]`` -> model input ``[T, gmm.dim]`` (deltas appended)."""
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must be [T, {self.feature_dim}] ({self.feature_type} archive rows), got shape {feats.shape}"
            )
        if self.delta_order == 0:
            return np.ascontiguousarray(feats, dtype=np.float32)
        return add_deltas(feats, order=self.delta_order, window=self.delta_window)

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """Per-pdf log-likelihoods of one utterance: ``[T, feature_dim]`` archive rows -> float32 ``[T, num_pdfs]``.

        Deltas are added here (utterance edges clamped, as Kaldi's ``add-deltas``); the scores are not scaled.
        """
        x = torch.from_numpy(self.features(feats))
        with torch.no_grad():
            return self.gmm.log_likelihoods(x).cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (
            f"GmmAcousticModel({str(self.model_dir)!r}: {self.num_pdfs} pdfs, {self.gmm.num_gauss} Gaussians, "
            f"context width {self.ctx_dep.context_width}, {self.feature_type} + deltas {self.delta_order})"
        )
