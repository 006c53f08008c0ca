"""Fixtures for the feature tests: small data dirs from the real corpora and one archive made from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from features_helpers import make_an4_dir, make_yesno_dir

from asr.features.compute import compute_features


@pytest.fixture
def yesno_dir(tmp_path: Path, yesno_root: Path) -> Path:
    """4 yesno utterances (8 kHz, speaker ``yesno``) in a fresh data dir."""
    return make_yesno_dir(yesno_root, tmp_path / "yesno")


@pytest.fixture
def an4_dir(tmp_path: Path, an4_root: Path) -> Path:
    """3 utterances of each of the AN4 speakers fash and mblb (16 kHz) in a fresh data dir."""
    return make_an4_dir(an4_root, tmp_path / "an4")


@pytest.fixture(scope="session")
def an4_fbank_archive(tmp_path_factory, an4_root: Path) -> Path:
    """A per-speaker-CMVN fbank archive of 2 x 3 AN4 utterances, made once (do not modify it)."""
    data = make_an4_dir(an4_root, tmp_path_factory.mktemp("an4_archive") / "data")
    return compute_features(data, jobs=1)
