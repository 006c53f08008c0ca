"""Fuzzed Hydra overrides of ``python -m asr.train`` (wrong types, NaN/inf, huge or negative numbers, lists,
mappings, nulls): composing gives Hydra's own override error or a config that :func:`parse_train_config` either
refuses with our ConfigError naming the key, or accepts with values of the right type, finite, in range and
usable (the seed seeds numpy and torch, the RAM budget converts to bytes)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from fuzz_helpers import COUNTS, fuzz_settings
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from asr.errors import ConfigError
from asr.nnet import config
from asr.nnet.config import TrainConfig, parse_train_config
from asr.train import CONF_DIR

SECTIONS = {
    "corpus": config.CorpusConfig,
    "model": config.ModelConfig,
    "optim": config.OptimConfig,
    "data": config.DataConfig,
    "priors": config.PriorConfig,
    "trainer": config.TrainerConfig,
}
KEYS = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
KEYS += ["gmm_dir", "name", "seed", "prepare", "depth", "width"]
VALUES = [
    "abc", "'1'", "''", "1.5", "-3", "0", "1", "2", "13", "-1", "nan", "inf", "-inf", "1e400", "-1e400", "null",
    "true", "false", "[1,2]", "[]", "{a:1}", "{}", "10000000000000000000000", "2.0", "0.0", "1e-300", "cuda:x", "a/b",
    "gpu", "auto", "cpu", "sgd", "adam", "local", "ddp", "async", "fraction", "'${depth}'",
]  # fmt: skip


def _check_accepted(tc: TrainConfig) -> None:
    def walk(obj, prefix=""):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif isinstance(value, float):
                assert math.isfinite(value), f"{prefix}{f.name}={value} accepted"

    walk(tc)
    np.random.default_rng(tc.seed)  # the data order's generator takes the seed
    torch.Generator().manual_seed(tc.seed)
    assert int(tc.data.ram_budget_gb * 2**30) >= 0  # 0: the chunked loader
    assert 1 <= tc.model.depth <= 12 and tc.model.width >= 1 and tc.optim.batch_size >= 1


@pytest.mark.slow
def test_fuzz_train_overrides():
    """Overrides are parsed by Hydra's own override parser and applied as Hydra applies them to the composed
    config (``OmegaConf.update`` with ``force_add`` for ``++key=value``); composing once per corpus keeps each
    example fast."""
    parser = OverridesParser.create()
    hydra_errors = accepted = 0
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        bases = {corpus: compose("config", overrides=[f"corpus={corpus}"]) for corpus in ("synth", "yesno", "an4")}

    @fuzz_settings(200)
    @given(
        overrides=st.lists(
            st.tuples(st.sampled_from(KEYS), st.one_of(st.sampled_from(VALUES), st.integers().map(str))),
            min_size=1,
            max_size=3,
        ),
        corpus=st.sampled_from(sorted(bases)),
    )
    def check(overrides, corpus):
        nonlocal hydra_errors, accepted
        COUNTS["train overrides"] += 1
        strings = [f"++{k}={v}" for k, v in overrides]
        cfg = copy.deepcopy(bases[corpus])
        try:
            with open_dict(cfg):
                for override in parser.parse_overrides(strings):
                    OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True, force_add=True)
        except (HydraException, OmegaConfBaseException):
            hydra_errors += 1  # Hydra's own message at the command line (an override it cannot apply)
            return
        try:
            tc = parse_train_config(cfg)
        except ConfigError as err:
            assert str(err), strings
            return
        accepted += 1
        _check_accepted(tc)

    check()
    print(
        f"[fuzz] train overrides: {COUNTS['train overrides']} inputs ({accepted} accepted, {hydra_errors} refused "
        "by Hydra)"
    )
