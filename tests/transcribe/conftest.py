"""Fixtures for transcription tests: bundles made from the yes/no recipe's monophone GMM and from a tiny DNN
trained on its alignments (real training, real graph, real corpus audio)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from asr.bundle import export_bundle
from asr.data.datadir import read_data_dir
from asr.train import CONF_DIR, run_training


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread: the models are tiny and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class YesnoBundles:
    """Bundles of the yes/no models and what they were made from."""

    gmm: Path  # exp/mono + exp/mono/graph
    dnn: Path  # a 1 x 32 DNN on mono's senones + the same graph
    dnn_dir: Path
    data: Path  # the recipe's data dir (train, test, lang)
    exp: Path

    def test_wavs(self, n: int | None = None) -> list[tuple[str, str]]:
        """``(utt id, wav path)`` of the test set, in order (the first ``n``)."""
        data = read_data_dir(self.data / "test")
        utts = data.utt_ids[:n] if n else data.utt_ids
        return [(u, data.wav_scp[u]) for u in utts]


def train_tiny_dnn(recipe, run_dir: Path) -> Path:
    """Train a 1-hidden-layer, 32-unit DNN on the yes/no recipe's mono alignments (a few seconds)."""
    overrides = [
        "corpus=yesno",
        f"corpus.data_dir={recipe.data}",
        f"exp_root={run_dir.parent / 'exp'}",
        f"gmm_dir={recipe.exp / 'mono'}",
        "prepare=false",
        "depth=1",
        "width=32",
        "optim.batch_size=64",
        "trainer.epochs=3",
        "trainer.tensorboard=false",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "decode.enabled=false",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return run_training(cfg, run_dir)


@pytest.fixture(scope="session")
def yesno_bundles(yesno_recipe, tmp_path_factory) -> YesnoBundles:
    """Export the GMM bundle and train + export the DNN bundle once per session. Read-only for tests."""
    root = tmp_path_factory.mktemp("yesno_bundles")
    graph = yesno_recipe.exp / "mono" / "graph"
    gmm = export_bundle(yesno_recipe.exp / "mono", graph, root / "gmm_bundle")
    dnn_dir = train_tiny_dnn(yesno_recipe, root / "dnn")
    dnn = export_bundle(dnn_dir, graph, root / "dnn_bundle")
    return YesnoBundles(gmm, dnn, dnn_dir, yesno_recipe.data, yesno_recipe.exp)
