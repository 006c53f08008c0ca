"""Hydra config composition (conf/) and its validation."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from asr.errors import ConfigError
from asr.nnet.config import parse_train_config
from asr.train import CONF_DIR


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_default_and_depth_shortcut():
    tc = parse_train_config(_compose())
    assert (tc.model.depth, tc.model.width, tc.optim.batch_size) == (4, 512, 256)
    assert tc.corpus.name == "synth" and tc.gmm_dir == "exp/synth/tri1"
    assert (tc.data.left_context, tc.data.right_context) == (13, 12)
    tc = parse_train_config(_compose("depth=8"))
    assert tc.model.depth == 8 and tc.name == "mlp_d8_w512"
    tc = parse_train_config(_compose("depth=2", "width=300", "corpus=an4"))
    assert (tc.model.depth, tc.model.width, tc.gmm_dir, tc.name) == (2, 300, "exp/an4/tri3b", "mlp_d2_w300")


def test_zeiler2013_preset():
    tc = parse_train_config(_compose("model=zeiler2013", "depth=8"))
    assert (tc.model.name, tc.model.depth, tc.model.width) == ("zeiler2013", 8, 2560)
    assert tc.optim.batch_size == 40 and tc.optim.kind == "sgd" and tc.optim.decay_steps > 0
    assert tc.name == "zeiler2013_d8_w2560"
    # explicit choices still win over the preset's
    tc = parse_train_config(_compose("model=zeiler2013", "optim=adagrad", "optim.batch_size=100"))
    assert tc.optim.kind == "adagrad" and tc.optim.batch_size == 100 and tc.model.width == 2560


def test_run_dirs_are_per_corpus_and_name():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["depth=8", "corpus=yesno"], return_hydra_config=True)
    assert cfg.hydra.run.dir == "exp/yesno/dnn/mlp_d8_w512"
    assert cfg.hydra.sweep.dir == "exp/yesno/dnn" and cfg.hydra.sweep.subdir == "mlp_d8_w512"


@pytest.mark.parametrize(
    "override, message",
    [
        ("depth=abc", r"model.depth='abc' is invalid: model.depth must be an integer \(set by the override depth="),
        ("depth=13", "model.depth must be in 1..12"),
        ("width=1.5", "model.width must be an integer"),
        ("optim.batch_size=0", "optim.batch_size must be >= 1"),
        ("optim.lr=fast", "optim.lr must be a number"),
        ("optim.kind=adam", "optim.kind must be one of"),
        ("trainer.restart=maybe", "trainer.restart must be true or false"),
        ("data.heldout=sometimes", "data.heldout must be one of"),
    ],
)
def test_bad_values_give_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        parse_train_config(_compose(override))
