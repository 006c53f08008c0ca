"""Shared fixtures: where the real corpora are."""

from __future__ import annotations

import os
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
