"""Decode with an exported DNN (TorchScript or ONNX, :mod:`asr.nnet.export`): model dirs of kind ``dnn-onnx`` and
``dnn-torchscript``.

:class:`ExportedDnnAcousticModel` is what :func:`asr.decode.acoustic_model.load_acoustic_model` gives for those
kinds: the same interface as :class:`asr.nnet.model.DnnAcousticModel` (``feature_type``, ``feature_dim``,
``num_pdfs``, ``left_context``, ``right_context``, ``log_priors``, ``transition_model``, ``ctx_dep``,
``topology``, ``log_likelihoods(feats)``, ``log_posteriors(feats)``), with the scores computed by the exported
graph: ``torch.jit.load`` for TorchScript, an ``onnxruntime.InferenceSession`` for ONNX (CPU, or CUDA with
``onnxruntime-gpu``). Long utterances are scored in chunks of ``batch_frames`` frames, each given its
``left`` / ``right`` context frames, so the result equals scoring the whole utterance at once.

:func:`load_runner` opens an exported file alone (no model dir): a callable from frames to log-likelihoods.

ONNX Runtime threads: ``intra_op_num_threads`` = ``torch.get_num_threads()`` when the model is loaded (as the
PyTorch model would use), with spinning threads off (the machine may be shared; see ``asr.train``'s
``OMP_WAIT_POLICY`` note).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.errors import ConfigError, InputError
from asr.files import read_json
from asr.hmm.topology import Topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import load_context_dependency
from asr.nnet.export import (
    EXPORT_FORMAT_NAME,
    EXPORT_FORMAT_VERSION,
    EXPORTED_KINDS,
    INPUT_NAME,
    METADATA_KEY,
    quiet_torchscript,
)
from asr.nnet.model import DEFAULT_BATCH_FRAMES, MODEL_JSON, PDF_COUNTS, resolve_device
from asr.nnet.priors import DEFAULT_PRIOR_ADD, DEFAULT_PRIOR_FLOOR, log_priors, read_pdf_counts

Runner = Callable[[np.ndarray], np.ndarray]


def _parse_metadata(text: str | bytes | None, path: Path) -> dict[str, Any]:
    if text is None:
        raise InputError(f"no {METADATA_KEY} metadata: not a file written by asr.nnet.export", path)
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"bad {METADATA_KEY} metadata: {err}", path) from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT_NAME:
        raise InputError(f"metadata format is not {EXPORT_FORMAT_NAME!r}", path)
    version = meta.get("format_version")
    if not isinstance(version, int) or version > EXPORT_FORMAT_VERSION:
        raise InputError(
            f"export format version {version!r}; this code reads versions up to {EXPORT_FORMAT_VERSION}", path
        )
    for key in ("feature_dim", "left_context", "right_context", "num_pdfs", "feature_type"):
        if key not in meta:
            raise InputError(f"metadata has no {key!r}", path)
    return meta


class TorchScriptRunner:
    """Run a TorchScript export: ``runner(frames [T, D]) -> [T, num_pdfs]`` (float32 numpy both ways).

    Attributes:
        metadata: the export metadata; device: where it runs.
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = "cpu"):
        path = Path(path)
        self.device = resolve_device(device)
        files = {f"{METADATA_KEY}.json": ""}
        try:
            with quiet_torchscript():
                self.module = torch.jit.load(str(path), map_location=self.device, _extra_files=files)
        except FileNotFoundError:
            raise InputError("exported model file not found", path) from None
        except Exception as err:  # not a TorchScript archive, truncated...
            raise InputError(f"cannot load as TorchScript: {str(err).splitlines()[0]}", path) from None
        self.module.eval()
        self.metadata = _parse_metadata(files[f"{METADATA_KEY}.json"] or None, path)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return self.module(x).cpu().numpy()


class OnnxRunner:
    """Run an ONNX export with onnxruntime: ``runner(frames [T, D]) -> [T, num_pdfs]``.

    Args:
        path: the ``.onnx`` file.
        device: ``cpu``, ``cuda`` (needs onnxruntime-gpu) or ``auto``.
        num_threads: intra-op threads (default ``torch.get_num_threads()``).
    """

    def __init__(self, path: str | os.PathLike, device: str | None = "cpu", num_threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("running an ONNX model needs onnxruntime: pip install 'asr[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise InputError("exported model file not found", path)
        available = ort.get_available_providers()
        want = str(device or "cpu")
        if want == "auto":
            want = "cuda" if "CUDAExecutionProvider" in available else "cpu"
        if want.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise ConfigError(f"onnxruntime has no CUDA provider here ({available}); install onnxruntime-gpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif want == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ConfigError(f"device must be cpu, cuda or auto for ONNX, not {device!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for a bad file
            raise InputError(f"cannot load as ONNX: {str(err).splitlines()[0]}", path) from None
        custom = self.session.get_modelmeta().custom_metadata_map
        self.metadata = _parse_metadata(custom.get(METADATA_KEY), path)
        self.device = want
        self._input = self.metadata.get("input_name", INPUT_NAME)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(frames, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0]


def load_runner(path: str | os.PathLike, fmt: str, device: str | torch.device | None = "cpu") -> Any:
    """Open an exported file: a :class:`TorchScriptRunner` (``fmt="torchscript"``) or :class:`OnnxRunner`
    (``"onnx"``). Raises ConfigError for another format or a missing onnxruntime, InputError for a bad file."""
    if fmt == "torchscript":
        return TorchScriptRunner(path, device)
    if fmt == "onnx":
        return OnnxRunner(path, None if device is None else str(device))
    raise ConfigError(f"exported format must be torchscript or onnx, not {fmt!r}")


class ExportedDnnAcousticModel:
    """A DNN-HMM hybrid whose network runs as an exported graph (module docstring).

    Attributes:
        runner: the exported graph (:class:`TorchScriptRunner` / :class:`OnnxRunner`).
        metadata: the export metadata; info: ``model.json``; model_dir: where it was read from.
        feature_type, feature_dim, num_pdfs, left_context, right_context: from the metadata.
        log_priors: float32 ``[num_pdfs]`` (the ones inside the graph, for posteriors).
        topology, ctx_dep, transition_model: the HMM parts (None when built from a file alone).
        batch_frames: frames per call of the graph.
    """

    def __init__(
        self,
        runner: Runner,
        metadata: dict[str, Any],
        log_prior: np.ndarray,
        topology: Topology | None = None,
        ctx_dep=None,
        transition_model: TransitionModel | None = None,
        info: dict[str, Any] | None = None,
        model_dir: Path | None = None,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
    ):
        self.runner = runner
        self.metadata = metadata
        self.feature_type = str(metadata["feature_type"])
        self.feature_dim = int(metadata["feature_dim"])
        self.num_pdfs = int(metadata["num_pdfs"])
        self.left_context = int(metadata["left_context"])
        self.right_context = int(metadata["right_context"])
        self.log_priors = np.asarray(log_prior, dtype=np.float32)
        self.topology = topology
        self.ctx_dep = ctx_dep
        self.transition_model = transition_model
        self.info = info or {}
        self.model_dir = model_dir
        self.batch_frames = int(batch_frames)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, device: str | torch.device | None = "cpu") -> ExportedDnnAcousticModel:
        """Read an exported model dir (``asr.nnet.export --model-dir``).

        Raises:
            InputError: naming the file: a missing or malformed part, a kind that is not an exported DNN,
                parts that disagree (pdf counts, metadata, tree); ConfigError: ONNX without onnxruntime.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise InputError("model directory not found", model_dir)
        json_path = model_dir / MODEL_JSON
        info = read_json(json_path)
        if not isinstance(info, dict):
            raise InputError("model.json must hold a JSON object", json_path)
        formats = {kind: fmt for fmt, kind in EXPORTED_KINDS.items()}
        kind = info.get("kind")
        if kind not in formats:
            raise InputError(f"model kind is {kind!r}, not one of {sorted(formats)}", json_path)
        name = info.get("exported_file")
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise InputError("model.json needs 'exported_file', a file name in the model dir", json_path)
        runner = load_runner(model_dir / name, formats[kind], device)
        meta = runner.metadata
        counts = read_pdf_counts(model_dir / PDF_COUNTS)
        topology = Topology.load(model_dir / "topo.json")
        ctx_dep = load_context_dependency(model_dir / "tree.json")
        transition_model = TransitionModel.load(model_dir / "transition_model.json")
        if not (len(counts) == meta["num_pdfs"] == ctx_dep.num_pdfs == transition_model.num_pdfs):
            raise InputError(
                f"the parts disagree on the number of pdfs: exported graph {meta['num_pdfs']}, pdf counts "
                f"{len(counts)}, tree {ctx_dep.num_pdfs}, transition model {transition_model.num_pdfs}",
                model_dir,
            )
        add = meta.get("prior_add")
        floor = meta.get("prior_floor")
        prior = log_priors(
            counts,
            float(DEFAULT_PRIOR_ADD if add is None else add),
            float(DEFAULT_PRIOR_FLOOR if floor is None else floor),
        )
        return cls(runner, meta, prior, topology, ctx_dep, transition_model, info, model_dir)

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """Scaled log-likelihoods ``log p(s | x) - log p(s)`` of one utterance (not multiplied by the acoustic
        scale): ``[T, feature_dim]`` archive rows -> float32 ``[T, num_pdfs]``."""
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must be [T, {self.feature_dim}] ({self.feature_type} archive rows), got shape {feats.shape}"
            )
        num_frames = feats.shape[0]
        out = np.empty((num_frames, self.num_pdfs), dtype=np.float32)
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        for start in range(0, num_frames, self.batch_frames):
            end = min(start + self.batch_frames, num_frames)
            first = max(0, start - self.left_context)
            last = min(num_frames, end + self.right_context)
            scores = self.runner(feats[first:last])
            out[start:end] = scores[start - first : end - first]
        return out

    def log_posteriors(self, feats: np.ndarray) -> np.ndarray:
        """``log p(s | x)`` of one utterance (the log-likelihoods plus the log priors)."""
        return self.log_likelihoods(feats) + self.log_priors
