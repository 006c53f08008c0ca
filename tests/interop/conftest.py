"""Fixtures for the export and interop tests: a tiny DNN trained on the yes/no recipe's monophone alignments (the
transcription tests' recipe, imported from tests/transcribe/conftest.py), and its TorchScript and ONNX exports."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from asr.nnet.export import export_model


def _transcribe_fixtures():
    """tests/transcribe/conftest.py as a module (conftest files are not importable by name)."""
    name = "asr_tests_transcribe_conftest"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "transcribe" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before exec: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


train_tiny_dnn = _transcribe_fixtures().train_tiny_dnn


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread: the models are tiny and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class YesnoDnn:
    """The yes/no recipe and a 1 x 32 DNN trained on its mono alignments. Read-only for tests."""

    data: Path  # data/{train,test,lang}
    exp: Path  # exp/mono (ali.h5, graph/)
    dnn: Path  # the DNN model dir


@dataclass(frozen=True)
class Exported:
    """Exported model dirs of the DNN (kinds dnn-torchscript / dnn-onnx) and the export metadata."""

    torchscript: Path
    onnx: Path
    metadata: dict


@pytest.fixture(scope="session")
def yesno_dnn(yesno_recipe, tmp_path_factory) -> YesnoDnn:
    """Train the tiny DNN once per session (a few seconds)."""
    root = tmp_path_factory.mktemp("interop_dnn")
    before = torch.get_num_threads()
    try:
        dnn = train_tiny_dnn(yesno_recipe, root / "dnn")
    finally:
        torch.set_num_threads(before)
    return YesnoDnn(yesno_recipe.data, yesno_recipe.exp, dnn)


@pytest.fixture(scope="session")
def exported(yesno_dnn, tmp_path_factory) -> Exported:
    """Export the DNN to both formats (model dirs) once per session; the ONNX export takes ~5-15 s."""
    root = tmp_path_factory.mktemp("exported")
    metadata = {}
    for fmt in ("torchscript", "onnx"):
        metadata[fmt] = export_model(yesno_dnn.dnn, fmt, root / f"file.{fmt}", exported_model_dir=root / fmt)
    return Exported(root / "torchscript", root / "onnx", metadata)
