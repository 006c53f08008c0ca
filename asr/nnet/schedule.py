"""The learning-rate schedule of Zeiler et al. (2013): ``eta_t = eta / max(1, t / T)``.

``t`` is the number of parameter updates done before the current one (0 for the first update), so the
rate stays at ``eta`` for the first ``T`` updates and then decays as ``eta * T / t``. ``T = 0`` (or None)
keeps it constant. A run-time factor (``lr_scale``, e.g. halved when the held-out loss stalls) multiplies
the scheduled value; it lives in the trainer's state, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class InverseTimeSchedule:
    """``eta_t = eta / max(1, t / T)``.

    Attributes:
        eta: the initial learning rate (> 0).
        decay_steps: ``T``, updates before the decay starts; 0 for a constant rate.
    """

    eta: float
    decay_steps: float = 0.0

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"learning rate eta must be > 0, not {self.eta}")
        if self.decay_steps is None or self.decay_steps < 0:
            raise ValueError(f"decay_steps (T) must be >= 0, not {self.decay_steps}")

    def lr(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, not {step}")
        if not self.decay_steps:
            return float(self.eta)
        return float(self.eta) / max(1.0, step / float(self.decay_steps))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` in every parameter group of ``optimizer`` (no device synchronization)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
