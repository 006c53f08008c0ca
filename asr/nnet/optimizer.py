"""Optimizers for the acoustic model: minibatch SGD (optional momentum, Nesterov, weight decay) or Adagrad.

Weight decay applies to weight matrices only, not to biases. The learning rate each update is set by
the trainer from :class:`asr.nnet.schedule.InverseTimeSchedule`.
"""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adagrad")


def build_optimizer(
    model: nn.Module,
    kind: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    adagrad_eps: float = 1e-10,
    adagrad_initial_accumulator: float = 0.0,
) -> torch.optim.Optimizer:
    """Make the optimizer of ``model``.

    Args:
        model: the network; parameters with ``ndim >= 2`` get ``weight_decay``, the others none.
        kind: ``"sgd"`` or ``"adagrad"``.
        lr: initial learning rate (the trainer overwrites it every update from the schedule).
        momentum, nesterov: SGD momentum (0 disables it).
        weight_decay: L2 penalty coefficient on weights.
        adagrad_eps, adagrad_initial_accumulator: Adagrad's constants.

    Returns:
        A ``torch.optim`` optimizer with two parameter groups (decayed weights, biases).
    """
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {kind!r}")
    decayed = [p for p in model.parameters() if p.ndim >= 2]
    others = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]
    if kind == "sgd":
        if momentum < 0 or (nesterov and momentum == 0):
            raise ValueError(f"momentum must be >= 0 (and > 0 with nesterov), not {momentum}")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, foreach=True)
    return torch.optim.Adagrad(
        groups, lr=lr, eps=adagrad_eps, initial_accumulator_value=adagrad_initial_accumulator, foreach=True
    )
