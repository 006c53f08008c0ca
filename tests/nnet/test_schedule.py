"""The learning-rate schedule eta_t = eta / max(1, t / T) and the optimizers."""

from __future__ import annotations

import pytest
import torch

from asr.nnet.mlp import Mlp
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule, set_learning_rate


def test_schedule_values_exactly():
    s = InverseTimeSchedule(eta=0.08, decay_steps=1000)
    assert s.lr(0) == 0.08
    assert s.lr(1) == 0.08
    assert s.lr(999) == 0.08
    assert s.lr(1000) == 0.08
    assert s.lr(1500) == 0.08 / 1.5
    assert s.lr(2000) == 0.04
    assert s.lr(4000) == 0.02
    assert s.lr(10_000) == 0.08 / 10
    # max(1, t/T) with t/T in floating point, computed exactly as the formula says
    for t in (0, 7, 999, 1001, 12345):
        assert s.lr(t) == 0.08 / max(1.0, t / 1000.0)


def test_constant_schedule_and_bad_values():
    assert InverseTimeSchedule(0.1, 0).lr(10**9) == 0.1
    with pytest.raises(ValueError):
        InverseTimeSchedule(0.0, 10)
    with pytest.raises(ValueError):
        InverseTimeSchedule(0.1, -1)
    with pytest.raises(ValueError):
        InverseTimeSchedule(0.1, 10).lr(-1)


def test_optimizers_and_weight_decay_groups():
    model = Mlp(20, 5, depth=2, width=8)
    sgd = build_optimizer(model, "sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(sgd, torch.optim.SGD)
    decayed, others = sgd.param_groups
    assert decayed["weight_decay"] == 1e-4 and others["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1 for p in others["params"])
    set_learning_rate(sgd, 0.005)
    assert [g["lr"] for g in sgd.param_groups] == [0.005, 0.005]
    assert isinstance(build_optimizer(model, "adagrad", lr=0.01), torch.optim.Adagrad)
    with pytest.raises(ValueError):
        build_optimizer(model, "adam")
    with pytest.raises(ValueError):
        build_optimizer(model, "sgd", momentum=0.0, nesterov=True)
