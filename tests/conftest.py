"""Shared fixtures: where the real corpora are."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _corpora_root() -> Path:
    return Path(os.environ.get("ASR_CORPORA", REPO.parent / "shared" / "corpora")).resolve()


@pytest.fixture(scope="session")
def corpora_root() -> Path:
    """Root of the shared corpora (env ``ASR_CORPORA``, default ``../shared/corpora``)."""
    root = _corpora_root()
    if not (root / "an4").is_dir() or not (root / "yesno").is_dir():
        pytest.fail(f"corpora not found under {root}: set ASR_CORPORA to the folder holding an4/ and yesno/")
    return root


@pytest.fixture(scope="session")
def an4_root(corpora_root: Path) -> Path:
    return corpora_root / "an4"


@pytest.fixture(scope="session")
def yesno_root(corpora_root: Path) -> Path:
    return corpora_root / "yesno"


@dataclass(frozen=True)
class RecipeOutputs:
    """Where a recipe run by a fixture wrote: ``data`` (data dirs, lang) and ``exp`` (models)."""

    data: Path
    exp: Path


def run_recipe(recipe: str, out: Path, *options: str) -> RecipeOutputs:
    """Run ``bash recipes/<recipe>/run.sh --data <out>/data --exp <out>/exp <options>`` with this Python first
    on PATH; returns the two dirs. A failing recipe fails the test with the tail of its output."""
    data, exp = out / "data", out / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["ASR_CORPORA"] = str(_corpora_root())
    cmd = ["bash", str(REPO / "recipes" / recipe / "run.sh"), "--data", str(data), "--exp", str(exp), *options]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return RecipeOutputs(data, exp)


@pytest.fixture(scope="session")
def yesno_recipe(tmp_path_factory, yesno_root: Path) -> RecipeOutputs:
    """Kaldi's yes/no corpus through ``recipes/yesno/run.sh`` (all stages: data, lang, fbank + MFCC features,
    monophone GMM with ``exp/mono/ali.h5``, its graph ``exp/mono/graph`` and test decode), once per session.
    Read-only for tests: copy what you change."""
    return run_recipe("yesno", tmp_path_factory.mktemp("yesno_recipe"), "--jobs", "1")
