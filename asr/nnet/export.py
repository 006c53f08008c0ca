"""Export a trained DNN acoustic model to TorchScript or ONNX: one graph from fbank frames to log-likelihoods.

::

    python -m asr.nnet.export --model exp/an4/dnn/mlp_d8_w512 --format onnx --out d8.onnx
    python -m asr.nnet.export --model exp/an4/dnn/mlp_d8_w512 --format torchscript --out d8.ts.pt \\
        --model-dir exp/an4/dnn/mlp_d8_w512_ts      # also a model dir that decodes like the original
    python -m asr.decode.decode_dir --graph exp/an4/tri1/graph_tg --model exp/an4/dnn/mlp_d8_w512_ts ...

The exported graph (:class:`LogLikelihoodNet`) takes one utterance's feature rows ``feats`` float32
``[T, feature_dim]`` (T >= 1; the archive rows the model was trained on, e.g. CMVN-normalized 40-band fbank)
and returns ``loglikes`` float32 ``[T, num_pdfs]`` = ``log p(s | x_t) - log p(s)``, the scaled likelihoods a
hybrid decoder reads (before the acoustic scale). Inside: the context window (frames ``t - left .. t +
right``, edge frames repeated as in :mod:`asr.features.context_window`), the network's input normalization
buffers, the ReLU MLP (:class:`asr.nnet.mlp.Mlp`), log-softmax, minus the log priors of ``pdf_counts.txt``
(:func:`asr.nnet.priors.log_priors` with the model's smoothing). So a user needs nothing from ``asr`` to
score frames: ``onnxruntime.InferenceSession("d8.onnx").run(None, {"feats": x})[0]``. The frame axis is
dynamic; a long recording can be scored in chunks by giving each chunk ``left`` / ``right`` real frames of
context on each side and dropping those rows of the output (as :class:`asr.nnet.exported.ExportedDnnAcousticModel`
does).

Formats:

- ``torchscript``: ``torch.jit.script`` of the module, saved with ``torch.jit.save`` (no extra dependency;
  loads with ``torch.jit.load``, also from C++ libtorch). TorchScript is deprecated in recent torch versions
  (``torch.jit.script`` and ``torch.jit.load`` warn; silenced here) but works in those this package accepts;
  the metadata below is the extra file ``asr_export.json``.
- ``onnx``: ``torch.onnx.export`` with the torch.export-based exporter (``pip install 'asr[onnx]'``: onnx,
  onnxscript, and onnxruntime to run it), dynamic frame axis ``frames``; the metadata is in the model's
  ``metadata_props`` (key ``asr_export``).

Metadata (JSON): ``format`` (``asr-exported-dnn``), ``format_version``, ``export_format``, ``input_name``,
``output_name``, ``feature_type``, ``feature_dim``, ``left_context``, ``right_context``, ``num_pdfs``,
``prior_add``, ``prior_floor``, ``source_model_dir``, ``source_weights_sha256``, ``asr_version``,
``torch_version``, and ``max_abs_diff``: the largest difference from the PyTorch model measured right after
export on 1000 frames drawn around the training mean (the export fails above :data:`VERIFY_TOLERANCE`).

``--model-dir DIR`` also writes a model directory that :func:`asr.decode.acoustic_model.load_acoustic_model`
decodes (kind ``dnn-onnx`` or ``dnn-torchscript``): the exported file (``model.onnx`` / ``model.ts.pt``),
``model.json`` (the source's, with the new kind, ``exported_file`` and ``export``), ``pdf_counts.txt``,
``topo.json``, ``tree.json``, ``transition_model.json``, ``phones.txt``, ``model.json`` last. It decodes with
the source model's graph. Bundles (:mod:`asr.bundle`) carry the PyTorch model, not these.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import asr
from asr.atomic import atomic_path, atomic_write
from asr.errors import AsrError, ConfigError
from asr.files import file_sha256
from asr.nnet.mlp import Mlp
from asr.nnet.model import HMM_FILES, MODEL_JSON, PDF_COUNTS, PHONES_TXT, WEIGHTS_FILE, DnnAcousticModel

log = logging.getLogger("asr.nnet.export")

EXPORT_FORMATS = ("torchscript", "onnx")
#: model.json kind of an exported model dir, per format.
EXPORTED_KINDS = {"torchscript": "dnn-torchscript", "onnx": "dnn-onnx"}
#: The exported file's name inside an exported model dir.
EXPORTED_FILES = {"torchscript": "model.ts.pt", "onnx": "model.onnx"}
EXPORT_FORMAT_NAME = "asr-exported-dnn"
EXPORT_FORMAT_VERSION = 1
INPUT_NAME = "feats"
OUTPUT_NAME = "loglikes"
METADATA_KEY = "asr_export"  # ONNX metadata_props key; TorchScript extra file METADATA_KEY + ".json"
VERIFY_FRAMES = 1000
VERIFY_TOLERANCE = 1e-3


class LogLikelihoodNet(nn.Module):
    """Frames ``[T, D]`` -> scaled log-likelihoods ``[T, num_pdfs]``: context window, the MLP (with its input
    normalization), log-softmax, minus the log priors. Scriptable and exportable (dynamic T).

    Args:
        mlp: the trained network (kept as a submodule; put in eval mode).
        log_prior: ``[num_pdfs]`` log priors (a buffer).
        left_context, right_context: the context window.
    """

    def __init__(self, mlp: Mlp, log_prior: np.ndarray | torch.Tensor, left_context: int, right_context: int):
        super().__init__()
        context = left_context + 1 + right_context
        if mlp.input_dim % context:
            raise ValueError(f"input dimension {mlp.input_dim} is not a multiple of the {context}-frame context")
        self.mlp = mlp.eval()
        self.register_buffer("log_prior", torch.as_tensor(log_prior, dtype=torch.float32).clone())
        self.register_buffer("offsets", torch.arange(-left_context, right_context + 1, dtype=torch.int64))
        if self.log_prior.shape != (mlp.num_outputs,):
            raise ValueError(f"{self.log_prior.numel()} log priors for {mlp.num_outputs} outputs")

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[T, D]`` frames of one utterance (T >= 1) -> ``[T, num_pdfs]`` log-likelihoods."""
        num_frames = feats.shape[0]
        index = torch.arange(num_frames, device=feats.device)[:, None] + self.offsets[None, :]
        index = index.clamp(0, num_frames - 1)
        windows = feats[index].reshape(num_frames, -1)
        return F.log_softmax(self.mlp(windows), dim=1) - self.log_prior


def build_net(model: DnnAcousticModel) -> LogLikelihoodNet:
    """A CPU copy of a loaded DNN model as a :class:`LogLikelihoodNet` (the model itself is not changed)."""
    mlp = Mlp.from_hparams(model.mlp.hparams())
    mlp.load_state_dict({k: v.detach().cpu() for k, v in model.mlp.state_dict().items()})
    return LogLikelihoodNet(mlp, model.log_priors.detach().cpu(), model.left_context, model.right_context).eval()


def export_metadata(model: DnnAcousticModel, fmt: str) -> dict[str, Any]:
    """The metadata stored in an exported file (module docstring), without ``max_abs_diff``."""
    info = model.info
    weights = Path(model.model_dir) / WEIGHTS_FILE if model.model_dir is not None else None
    return {
        "format": EXPORT_FORMAT_NAME,
        "format_version": EXPORT_FORMAT_VERSION,
        "export_format": fmt,
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "feature_type": model.feature_type,
        "feature_dim": int(model.feature_dim),
        "left_context": int(model.left_context),
        "right_context": int(model.right_context),
        "num_pdfs": int(model.num_pdfs),
        "prior_add": info.get("prior_add"),
        "prior_floor": info.get("prior_floor"),
        "source_model_dir": None if model.model_dir is None else os.fspath(model.model_dir),
        "source_weights_sha256": file_sha256(weights) if weights is not None and weights.is_file() else None,
        "asr_version": asr.__version__,
        "torch_version": torch.__version__,
    }


@contextlib.contextmanager
def quiet_torchscript():
    """Silence TorchScript's deprecation warnings (torch >= 2.10) inside the block; nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
        yield


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _require_onnx() -> None:
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 6):
        raise ConfigError(f"ONNX export needs torch >= 2.6 (its torch.export-based exporter), not {torch.__version__}")
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'asr[onnx]' (onnx, onnxscript)") from None


def _torchscript_saver(net: LogLikelihoodNet):
    with quiet_torchscript():
        scripted = torch.jit.script(net)

    def save(path: Path, metadata: dict[str, Any]) -> None:
        with quiet_torchscript():
            torch.jit.save(scripted, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})

    return save


def _onnx_saver(net: LogLikelihoodNet, example: torch.Tensor, optimize: bool):
    _require_onnx()
    frames = torch.export.Dim("frames", min=1)
    # The exporter prints progress lines on stdout (keep the CLI's stdout for results) and logs warnings about
    # optional torchvision ops and INFO lines of its passes.
    with contextlib.redirect_stdout(io.StringIO()), _quiet_loggers("torch.onnx", "onnx_ir", "onnxscript"):
        program = torch.onnx.export(
            net,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"feats": {0: frames}},
            optimize=optimize,
            dynamo=True,
        )

    def save(path: Path, metadata: dict[str, Any]) -> None:
        program.model.metadata_props[METADATA_KEY] = json.dumps(metadata)
        program.save(path)

    return save


def verification_frames(model: DnnAcousticModel, num_frames: int = VERIFY_FRAMES, seed: int = 0) -> np.ndarray:
    """``[num_frames, feature_dim]`` float32 frames drawn around the network's input mean with its spread
    (the input normalization buffers), so the check exercises the range the model was trained on."""
    dim = model.feature_dim
    shift = model.mlp.input_shift.detach().cpu().numpy()[:dim]
    scale = model.mlp.input_scale.detach().cpu().numpy()[:dim]
    rng = np.random.default_rng(seed)
    return (shift + rng.standard_normal((num_frames, dim)) / scale).astype(np.float32)


def export_file(
    model: DnnAcousticModel, fmt: str, path: str | os.PathLike, *, optimize: bool = True, verify: bool = True
) -> dict[str, Any]:
    """Export a loaded DNN model to one file (atomically).

    Args:
        model: the model (e.g. :meth:`DnnAcousticModel.load`; one built in memory works too).
        fmt: ``"torchscript"`` or ``"onnx"``.
        path: the file to write.
        optimize: run the ONNX exporter's graph optimizer (constant folding...); ignored for TorchScript.
        verify: load the written file and compare it with the PyTorch model on :func:`verification_frames`
            (ONNX needs onnxruntime; skipped with a warning without it).

    Returns:
        The metadata written (with ``max_abs_diff`` when verified).

    Raises:
        ConfigError: an unknown format or the ONNX extra missing; AsrError: the exported graph differs from the
        PyTorch model by more than :data:`VERIFY_TOLERANCE` (nothing is written).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {EXPORT_FORMATS}, not {fmt!r}")
    path = Path(path)
    net = build_net(model)
    metadata = export_metadata(model, fmt)
    frames = verification_frames(model)
    if fmt == "torchscript":
        save = _torchscript_saver(net)
    else:
        save = _onnx_saver(net, torch.from_numpy(frames[:64]), optimize)
    with atomic_path(path) as tmp:
        save(tmp, metadata)
        diff = _verify(tmp, fmt, model, frames) if verify else None
        if diff is not None:
            if not diff <= VERIFY_TOLERANCE:
                raise AsrError(f"{path}: the exported graph differs from the PyTorch model by {diff:.3g}")
            metadata["max_abs_diff"] = diff
            save(tmp, metadata)
    return metadata


def export_model(
    model_dir: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    *,
    exported_model_dir: str | os.PathLike | None = None,
    optimize: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Export a DNN model dir's network to ``fmt`` (see the module docstring).

    Args:
        model_dir: a DNN model directory (``model.json`` kind ``dnn``).
        fmt: ``"torchscript"`` or ``"onnx"``.
        out: the file to write (atomically); None to write only ``exported_model_dir``.
        exported_model_dir: also write a decodable model dir of kind ``dnn-<fmt>`` there.
        optimize, verify: as for :func:`export_file`.

    Returns:
        The metadata written (with ``max_abs_diff`` when verified) plus ``"files"``: the paths written.

    Raises:
        ConfigError: an unknown format, neither ``out`` nor ``exported_model_dir``, or the ONNX extra missing;
        InputError: the model dir (from :meth:`DnnAcousticModel.load`); AsrError: the exported graph differs
        from the PyTorch model by more than :data:`VERIFY_TOLERANCE`.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {EXPORT_FORMATS}, not {fmt!r}")
    if out is None and exported_model_dir is None:
        raise ConfigError("give a file to write (out) or an exported model dir, or both")
    model = DnnAcousticModel.load(model_dir)
    targets = []
    if out is not None:
        targets.append(Path(out))
    if exported_model_dir is not None:
        Path(exported_model_dir).mkdir(parents=True, exist_ok=True)
        targets.append(Path(exported_model_dir) / EXPORTED_FILES[fmt])
    metadata = export_file(model, fmt, targets[0], optimize=optimize, verify=verify)
    for target in targets[1:]:
        with atomic_path(target) as tmp:
            shutil.copyfile(targets[0], tmp)
    if exported_model_dir is not None:
        _write_exported_model_dir(Path(exported_model_dir), model, fmt, metadata)
    log.info(
        "exported %s (%d pdfs, context %d+1+%d) to %s%s",
        model_dir, model.num_pdfs, model.left_context, model.right_context, ", ".join(map(str, targets)),
        f"; max |difference| from PyTorch {metadata['max_abs_diff']:.2g}" if "max_abs_diff" in metadata else "",
    )  # fmt: skip
    return {**metadata, "files": [os.fspath(t) for t in targets]}


def _verify(path: Path, fmt: str, model: DnnAcousticModel, frames: np.ndarray) -> float | None:
    from asr.nnet.exported import load_runner

    try:
        runner = load_runner(path, fmt, "cpu")
    except ConfigError as err:  # onnxruntime missing
        log.warning("not verifying %s: %s", path, err)
        return None
    reference = model.log_likelihoods(frames)
    return float(np.abs(runner(frames) - reference).max())


def _write_exported_model_dir(out_dir: Path, model: DnnAcousticModel, fmt: str, metadata: dict[str, Any]) -> None:
    src = Path(model.model_dir)
    for name in (*HMM_FILES, PHONES_TXT, PDF_COUNTS):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(src / name, tmp)
    info = {
        **model.info,
        "kind": EXPORTED_KINDS[fmt],
        "exported_file": EXPORTED_FILES[fmt],
        "export": {k: v for k, v in metadata.items() if k not in ("files",)},
        "source_model_dir": os.fspath(src),
    }
    with atomic_write(out_dir / MODEL_JSON) as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (module docstring); prints the metadata as JSON, returns the exit status."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m asr.nnet.export", description="Export a DNN acoustic model to TorchScript or ONNX."
    )
    parser.add_argument("--model", required=True, help="DNN model dir (model.json kind 'dnn')")
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("--out", help="exported file to write (e.g. model.onnx, model.ts.pt)")
    parser.add_argument("--model-dir", help="also write a decodable model dir (kind dnn-onnx / dnn-torchscript)")
    parser.add_argument("--no-optimize", action="store_true", help="skip the ONNX graph optimizer")
    parser.add_argument("--no-verify", action="store_true", help="skip the comparison with the PyTorch model")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.out is None and args.model_dir is None:
        parser.error("give --out, --model-dir, or both")
    try:
        result = export_model(
            args.model,
            args.format,
            args.out,
            exported_model_dir=args.model_dir,
            optimize=not args.no_optimize,
            verify=not args.no_verify,
        )
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
