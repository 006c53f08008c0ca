"""Load any kind of acoustic model directory for decoding, dispatching on ``model.json``'s ``"kind"``.

Every model kind gives an object with (the decoder needs nothing else):

- ``feature_type: str``: the archive to read, ``<data>/<feature_type>.h5`` (e.g. ``"mfcc"``, ``"fbank"``);
- ``num_pdfs: int``; ``transition_model`` (:class:`asr.hmm.transition_model.TransitionModel`);
  ``ctx_dep`` (context dependency);
- ``log_likelihoods(feats: np.ndarray) -> np.ndarray``: one utterance's archive rows in, float32
  ``[T, num_pdfs]`` (unscaled) log-likelihoods out; the model adds deltas / context itself.

Kinds: ``"gmm"`` -> :class:`asr.gmm.model.GmmAcousticModel` (the GMM trainer's loader); ``"dnn"``; ``"dnn-onnx"``
and ``"dnn-torchscript"`` (exported DNNs, :mod:`asr.nnet.exported`). Add a kind by
adding its ``"module:Class"`` (a class with ``load(model_dir)``) to :data:`MODEL_KINDS`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from asr.errors import AsrError, InputError
from asr.hmm.transition_model import ContextDependency, TransitionModel

MODEL_KINDS: dict[str, str] = {
    "gmm": "asr.gmm.model:GmmAcousticModel",
    "dnn": "asr.nnet.model:DnnAcousticModel",
    "dnn-onnx": "asr.nnet.exported:ExportedDnnAcousticModel",
    "dnn-torchscript": "asr.nnet.exported:ExportedDnnAcousticModel",
}


class AcousticModel(Protocol):
    """What decoding needs from an acoustic model (see the module docstring)."""

    feature_type: str
    num_pdfs: int
    transition_model: TransitionModel
    ctx_dep: ContextDependency

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray: ...


def model_kind(model_dir: str | os.PathLike) -> str:
    """The ``"kind"`` of ``<model_dir>/model.json`` (InputError when missing or unknown)."""
    from asr.graph.mkgraph import read_model_json

    info = read_model_json(model_dir)
    kind = info.get("kind")
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise InputError(f"model kind {kind!r} is not one of {sorted(MODEL_KINDS)}", Path(model_dir) / "model.json")
    return kind


# what a loader raises on a model file of the right kind that is malformed inside (a field of the wrong type, a
# bad shape, an absurd size)
_MALFORMED = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError, RuntimeError, MemoryError)


def load_acoustic_model(model_dir: str | os.PathLike, device: str = "cpu") -> AcousticModel:
    """Load the acoustic model in ``model_dir`` for decoding.

    Args:
        model_dir: a model directory with ``model.json`` (``"kind"`` selects the loader).
        device: torch device for the model's computations.

    Returns:
        An object with ``feature_type``, ``num_pdfs``, ``transition_model``, ``ctx_dep`` and
        ``log_likelihoods(feats)``.

    Raises:
        InputError: no model directory / ``model.json``, an unknown kind, or the kind's loader's errors.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model directory not found", model_dir)
    kind = model_kind(model_dir)
    module_name, class_name = MODEL_KINDS[kind].split(":")
    loader = getattr(importlib.import_module(module_name), class_name)
    try:
        model = loader.load(model_dir, device=device)
    except AsrError:
        raise
    except _MALFORMED as err:
        # a model file of the right kind but malformed inside (a field of the wrong type, a bad shape)
        raise InputError(f"malformed {kind} model ({type(err).__name__}: {err})", model_dir) from err
    if int(model.transition_model.num_pdfs) != int(model.num_pdfs):
        raise InputError(
            f"the transition model has {model.transition_model.num_pdfs} pdfs, the acoustic model {model.num_pdfs}",
            model_dir,
        )
    return model
