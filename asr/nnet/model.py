"""DNN model directories (``exp/<corpus>/dnn/<run>/``): write one after training, load one for decoding.

A DNN model directory follows the GMM interface (``model.json`` + the HMM parts the decoder needs):

- ``model.json``: ``{"kind": "dnn", "name", "feature_type": "fbank", "feature_dim", "left_context",
  "right_context", "num_pdfs", "context_width", "depth", "width", "num_params", "mlp": {...},
  "prior_add", "prior_floor", "phones", "lang", "gmm_dir", "alignments", "train_data", "train_seconds",
  "frames_per_second", ...}``; written LAST, so a directory with ``model.json`` is complete;
- ``final.pt``: the :class:`~asr.nnet.mlp.Mlp` state dict (weights and input normalization buffers;
  ``torch.load(weights_only=True)``);
- ``pdf_counts.txt``: senone counts of the training alignments (:mod:`asr.nnet.priors`);
- ``topo.json``, ``tree.json``, ``transition_model.json``, ``phones.txt``: copies of the GMM dir's, so the
  DNN dir decodes (and builds graphs with ``asr.graph.mkgraph``) on its own.

:class:`DnnAcousticModel` reads it back; ``log_likelihoods(feats)`` gives the scaled likelihoods
``log p(s | x) - log p(s)`` (before the acoustic scale) with a batched forward pass, on the GPU when asked.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from asr.atomic import atomic_path, atomic_write, torch_save
from asr.errors import InputError
from asr.features.context_window import splice_at
from asr.hmm.topology import Topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import load_context_dependency
from asr.nnet.mlp import Mlp
from asr.nnet.priors import DEFAULT_PRIOR_ADD, DEFAULT_PRIOR_FLOOR, log_priors, read_pdf_counts, write_pdf_counts

MODEL_JSON = "model.json"
WEIGHTS_FILE = "final.pt"
PDF_COUNTS = "pdf_counts.txt"
HMM_FILES = ("topo.json", "tree.json", "transition_model.json")
PHONES_TXT = "phones.txt"
DEFAULT_BATCH_FRAMES = 4096


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _read_model_json(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MODEL_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read model description: {err.strerror}", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
    if not isinstance(data, dict):
        raise InputError("model.json must hold a JSON object", path)
    return data


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_dnn_model_dir(
    model_dir: str | os.PathLike,
    mlp: Mlp,
    pdf_counts: np.ndarray,
    gmm_dir: str | os.PathLike,
    info: dict[str, Any],
    left_context: int,
    right_context: int,
    feature_type: str = "fbank",
    prior_add: float = DEFAULT_PRIOR_ADD,
    prior_floor: float = DEFAULT_PRIOR_FLOOR,
) -> Path:
    """Write the files of a DNN model directory, each atomically, ``model.json`` last.

    Args:
        model_dir: the directory (created if needed; it may already hold checkpoints and logs).
        mlp: the trained network.
        pdf_counts: int ``[num_pdfs]`` senone counts of the training alignments.
        gmm_dir: the GMM model dir whose tree and transition model the network's outputs follow; its
            ``topo.json``, ``tree.json``, ``transition_model.json`` and ``phones.txt`` are copied.
        info: extra ``model.json`` entries (name, training data, timings...).
        left_context, right_context: the context window the network was trained with.
        feature_type: the archive the network reads.
        prior_add, prior_floor: prior smoothing (:func:`asr.nnet.priors.log_priors`).

    Returns:
        ``model_dir`` as a Path.

    Raises:
        InputError: a file of the GMM dir is missing; ValueError: the parts disagree on the pdf count.
    """
    model_dir, gmm_dir = Path(model_dir), Path(gmm_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    counts = np.asarray(pdf_counts)
    if counts.shape != (mlp.num_outputs,):
        raise ValueError(f"{counts.shape[0]} pdf counts for a network with {mlp.num_outputs} outputs")
    for name in (*HMM_FILES, PHONES_TXT):
        if not (gmm_dir / name).is_file():
            raise InputError(f"the GMM model dir has no {name}", gmm_dir)
    ctx_dep = load_context_dependency(gmm_dir / "tree.json")
    if ctx_dep.num_pdfs != mlp.num_outputs:
        raise ValueError(f"the tree has {ctx_dep.num_pdfs} pdfs, the network {mlp.num_outputs} outputs")
    for name in (*HMM_FILES, PHONES_TXT):
        _copy_atomic(gmm_dir / name, model_dir / name)
    weights = {k: v.detach().cpu() for k, v in mlp.state_dict().items()}
    with atomic_path(model_dir / WEIGHTS_FILE) as tmp:
        torch_save(weights, tmp)
    write_pdf_counts(model_dir / PDF_COUNTS, counts)
    context = left_context + 1 + right_context
    full = {
        "kind": "dnn",
        **info,
        "feature_type": feature_type,
        "feature_dim": mlp.input_dim // context,
        "left_context": int(left_context),
        "right_context": int(right_context),
        "num_pdfs": int(mlp.num_outputs),
        "context_width": int(ctx_dep.context_width),
        "depth": mlp.depth,
        "width": mlp.width,
        "num_params": mlp.num_params(),
        "mlp": mlp.hparams(),
        "prior_add": float(prior_add),
        "prior_floor": float(prior_floor),
        "phones": PHONES_TXT,
        "gmm_dir": str(gmm_dir),
    }
    with atomic_write(model_dir / MODEL_JSON) as f:
        json.dump(full, f, indent=1)
        f.write("\n")
    return model_dir


class DnnAcousticModel:
    """A trained DNN-HMM hybrid: the network, senone priors, and the GMM's HMM parts.

    Attributes:
        model_dir: where it was read from (None when built in memory).
        info: ``model.json``.
        mlp: the network (eval mode, on ``device``).
        log_priors: float32 tensor ``[num_pdfs]``.
        left_context, right_context: the context window.
        feature_type: the archive to read (``"fbank"``); feature_dim: its row size.
        num_pdfs, topology, ctx_dep, transition_model: as the decoder needs them.
        batch_frames: frames per forward pass.
    """

    def __init__(
        self,
        mlp: Mlp,
        log_prior: np.ndarray | torch.Tensor,
        left_context: int,
        right_context: int,
        feature_type: str,
        topology: Topology | None = None,
        ctx_dep=None,
        transition_model: TransitionModel | None = None,
        info: dict[str, Any] | None = None,
        model_dir: Path | None = None,
        device: str | torch.device | None = "cpu",
        batch_frames: int = DEFAULT_BATCH_FRAMES,
    ):
        self.device = resolve_device(device)
        self.mlp = mlp.to(self.device).eval()
        self.log_priors = torch.as_tensor(log_prior, dtype=torch.float32).to(self.device)
        if self.log_priors.shape != (mlp.num_outputs,):
            raise ValueError(f"{self.log_priors.numel()} log priors for {mlp.num_outputs} outputs")
        self.left_context, self.right_context = int(left_context), int(right_context)
        context = self.left_context + 1 + self.right_context
        if mlp.input_dim % context:
            raise ValueError(f"input dimension {mlp.input_dim} is not a multiple of the {context}-frame context")
        self.feature_dim = mlp.input_dim // context
        self.feature_type = feature_type
        self.num_pdfs = mlp.num_outputs
        self.topology = topology
        self.ctx_dep = ctx_dep
        self.transition_model = transition_model
        self.info = info or {}
        self.model_dir = model_dir
        self.batch_frames = int(batch_frames)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, device: str | torch.device | None = "cpu") -> DnnAcousticModel:
        """Read a directory written by :func:`write_dnn_model_dir`.

        Args:
            model_dir: the DNN model directory.
            device: ``"cpu"``, ``"cuda"``, or ``"auto"`` (the GPU when there is one).

        Raises:
            InputError: naming the file: a missing or malformed part, a kind other than ``"dnn"``, or parts
                that disagree (pdf counts, weights that do not fit model.json).
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise InputError("model directory not found", model_dir)
        info = _read_model_json(model_dir)
        json_path = model_dir / MODEL_JSON
        if info.get("kind") != "dnn":
            raise InputError(f"model kind is {info.get('kind')!r}, not 'dnn'", json_path)
        for key in ("mlp", "feature_type", "left_context", "right_context", "num_pdfs"):
            if key not in info:
                raise InputError(f"model.json has no {key!r}", json_path)
        try:
            mlp = Mlp.from_hparams(info["mlp"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"bad 'mlp' entry: {err}", json_path) from None
        weights_path = model_dir / WEIGHTS_FILE
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            mlp.load_state_dict(state)
        except FileNotFoundError:
            raise InputError("weights file missing", weights_path) from None
        except Exception as err:  # truncated file, or weights of another shape
            raise InputError(f"cannot load the weights: {str(err).splitlines()[0]}", weights_path) from None
        counts = read_pdf_counts(model_dir / PDF_COUNTS)
        topology = Topology.load(model_dir / "topo.json")
        ctx_dep = load_context_dependency(model_dir / "tree.json")
        transition_model = TransitionModel.load(model_dir / "transition_model.json")
        if not (len(counts) == mlp.num_outputs == ctx_dep.num_pdfs == transition_model.num_pdfs == info["num_pdfs"]):
            raise InputError(
                f"the parts disagree on the number of pdfs: model.json {info['num_pdfs']}, network "
                f"{mlp.num_outputs}, pdf counts {len(counts)}, tree {ctx_dep.num_pdfs}, transition model "
                f"{transition_model.num_pdfs}",
                model_dir,
            )
        prior = log_priors(
            counts, float(info.get("prior_add", DEFAULT_PRIOR_ADD)), float(info.get("prior_floor", DEFAULT_PRIOR_FLOOR))
        )
        return cls(
            mlp,
            prior,
            int(info["left_context"]),
            int(info["right_context"]),
            str(info["feature_type"]),
            topology,
            ctx_dep,
            transition_model,
            info,
            model_dir,
            device,
        )

    def _forward(self, feats: np.ndarray, fn) -> np.ndarray:
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must be [T, {self.feature_dim}] ({self.feature_type} archive rows), got shape {feats.shape}"
            )
        num_frames = feats.shape[0]
        out = np.empty((num_frames, self.num_pdfs), dtype=np.float32)
        if num_frames == 0:
            return out
        x = torch.as_tensor(np.ascontiguousarray(feats, dtype=np.float32)).to(self.device)
        offsets = torch.tensor([0, num_frames], device=self.device)
        with torch.inference_mode():
            for start in range(0, num_frames, self.batch_frames):
                end = min(start + self.batch_frames, num_frames)
                index = torch.arange(start, end, device=self.device)
                windows = splice_at(x, offsets, index, self.left_context, self.right_context, check=False)
                out[start:end] = fn(self.mlp(windows)).cpu().numpy()
        return out

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        """``log p(s | x)`` of one utterance: ``[T, feature_dim]`` archive rows -> float32 ``[T, num_pdfs]``."""
        return self._forward(feats, lambda logits: F.log_softmax(logits, dim=1))

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """Scaled log-likelihoods ``log p(s | x) - log p(s)`` of one utterance (not multiplied by the acoustic
        scale): ``[T, feature_dim]`` archive rows -> float32 ``[T, num_pdfs]``."""
        return self._forward(feats, lambda logits: F.log_softmax(logits, dim=1) - self.log_priors)
