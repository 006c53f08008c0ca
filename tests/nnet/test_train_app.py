"""The training app (asr.train) on a tiny corpus: model dir, continue-not-restart, restart, errors, CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from nnet_helpers import write_tiny_corpus

from asr.errors import ConfigError
from asr.nnet.checkpoint import list_checkpoints
from asr.nnet.model import DnnAcousticModel
from asr.train import CONF_DIR, ensure_gmm, run_training

REPO = Path(__file__).resolve().parents[2]


def _overrides(root: Path, *extra: str) -> list[str]:
    return [
        "corpus=synth",
        f"corpus.data_dir={root / 'data'}",
        "corpus.name=tiny",
        f"gmm_dir={root / 'exp' / 'tiny' / 'mono'}",
        f"exp_root={root / 'exp'}",
        "depth=1",
        "width=16",
        "optim.batch_size=64",
        "optim.lr=0.05",
        "optim.decay_steps=20",
        "data.left_context=2",
        "data.right_context=2",
        "trainer.epochs=2",
        "trainer.checkpoint_every=4",
        "trainer.log_every=3",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "decode.enabled=false",
        *extra,
    ]


def _cfg(root: Path, *extra: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=_overrides(root, *extra))


def test_train_writes_a_loadable_model_dir_and_a_second_run_continues(tmp_path, caplog):
    train, dev, gmm_dir = write_tiny_corpus(tmp_path, dev_alignment=True)
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        run_training(_cfg(tmp_path), run_dir)
    info = json.loads((run_dir / "model.json").read_text())
    assert info["kind"] == "dnn" and info["depth"] == 1 and info["width"] == 16 and info["num_pdfs"] == 16
    assert info["epochs"] == 2 and str(dev.archive) in info["heldout"]
    assert info["heldout_frame_accuracy"] > 0.3
    assert (run_dir / "config.resolved.yaml").is_file() and (run_dir / "train_log.json").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    model = DnnAcousticModel.load(run_dir)
    feats = train.feats[: train.offsets[1]]
    assert model.log_likelihoods(feats).shape == (len(feats), 16)
    assert "frame accuracy" in caplog.text and "frames/s" in caplog.text

    weights = (run_dir / "final.pt").read_bytes()
    steps = info["steps"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_training(_cfg(tmp_path), run_dir)  # the same command again: continues (nothing left to do)
    assert "resumed from" in caplog.text and "complete" in caplog.text
    assert json.loads((run_dir / "model.json").read_text())["steps"] == steps
    assert (run_dir / "final.pt").read_bytes() == weights
    # more epochs: continues from the last checkpoint
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_training(_cfg(tmp_path, "trainer.epochs=3"), run_dir)
    assert f"resumed from {run_dir / 'checkpoints'}" in caplog.text
    assert json.loads((run_dir / "model.json").read_text())["epochs"] == 3
    # another learning rate in the same run dir is refused; restart starts over
    with pytest.raises(ConfigError, match="optim.lr: 0.05 -> 0.1"):
        run_training(_cfg(tmp_path, "optim.lr=0.1", "trainer.epochs=3"), run_dir)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_training(_cfg(tmp_path, "optim.lr=0.1", "trainer.restart=true"), run_dir)
    assert "deleting the checkpoints" in caplog.text and "resumed from" not in caplog.text
    assert json.loads((run_dir / "model.json").read_text())["epochs"] == 2


def test_interrupted_app_run_matches_an_uninterrupted_one(tmp_path):
    write_tiny_corpus(tmp_path)
    run_training(_cfg(tmp_path), tmp_path / "full")
    run_training(_cfg(tmp_path, "trainer.max_steps=5"), tmp_path / "cut")
    assert not (tmp_path / "cut" / "model.json").exists()
    assert [p.name for p in list_checkpoints(tmp_path / "cut" / "checkpoints")][-1] == "ckpt-000000005.pt"
    run_training(_cfg(tmp_path), tmp_path / "cut")
    a = torch.load(tmp_path / "full" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "final.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_gmm_or_features_name_the_recipe(tmp_path):
    write_tiny_corpus(tmp_path)
    (tmp_path / "exp" / "tiny" / "mono" / "ali.h5").unlink()
    hint = r"alignments .*mono lacks ali.h5; make it with: bash recipes/synth/run.sh --stage 3"
    with pytest.raises(ConfigError, match=hint):
        ensure_gmm(_cfg(tmp_path, "prepare=false"))
    with pytest.raises(ConfigError, match=r"GMM model dir .*absent lacks model.json"):
        ensure_gmm(_cfg(tmp_path, "prepare=false", f"gmm_dir={tmp_path / 'absent'}"))
    with pytest.raises(ConfigError, match=r"training features .*fbank.h5 not found; make it with: bash recipes/synth"):
        ensure_gmm(_cfg(tmp_path, "prepare=false", f"corpus.data_dir={tmp_path / 'nothing'}"))


def test_prepare_runs_the_recipe_stages_that_make_missing_alignments(tmp_path):
    """prepare=true runs `bash <corpus.recipe> <corpus.gmm_stages>`; a failing recipe is a clear error."""
    write_tiny_corpus(tmp_path)
    ali = tmp_path / "exp" / "tiny" / "mono" / "ali.h5"
    ali.rename(tmp_path / "saved_ali.h5")
    recipe = tmp_path / "run.sh"
    recipe.write_text(f'[ "$1 $2" = "--stage 3" ] || exit 3\ncp {tmp_path / "saved_ali.h5"} {ali}\n')
    gmm_dir = ensure_gmm(_cfg(tmp_path, f"corpus.recipe={recipe}", "corpus.gmm_stages='--stage 3'"))
    assert gmm_dir == ali.parent and ali.is_file()
    ali.unlink()
    with pytest.raises(ConfigError, match=r"recipe command failed: bash .*run.sh --stage 9"):
        ensure_gmm(_cfg(tmp_path, f"corpus.recipe={recipe}", "corpus.gmm_stages='--stage 3; --stage 9'"))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "asr.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_bad_override_is_a_clear_error(tmp_path):
    result = _cli(["depth=abc"], tmp_path)
    assert result.returncode == 2
    assert "model.depth='abc' is invalid: model.depth must be an integer (set by the override depth=...)" in (
        result.stdout + result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_multirun_sweep_makes_one_run_dir_each(tmp_path):
    write_tiny_corpus(tmp_path)
    overrides = [o for o in _overrides(tmp_path) if not o.startswith("depth=")]
    result = _cli(["-m", "depth=1,2", *overrides, "trainer.epochs=1", "trainer.tensorboard=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for depth in (1, 2):
        run_dir = tmp_path / "exp" / "tiny" / "dnn" / f"mlp_d{depth}_w16"
        assert json.loads((run_dir / "model.json").read_text())["depth"] == depth
        assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "train.log").is_file()
        assert np.isfinite(json.loads((run_dir / "train_log.json").read_text())["epochs"][0]["heldout_loss"])
