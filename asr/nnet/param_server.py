"""The parameter server of Downpour SGD (:mod:`asr.nnet.downpour`): parameter partitioning and the shards' update
rule, in NumPy only.

A shard process (a Ray actor) imports this module and nothing heavier: no torch, which would cost each shard
process seconds of start-up and hundreds of MB.

- :func:`partition_parameters`: cut the flattened parameters (``model.parameters()`` order) into ``n_shards``
  contiguous slices of equal size (+-1), each knowing which of its elements are weight-matrix elements
  (weight decay applies to them only, as in :func:`asr.nnet.optimizer.build_optimizer`).
- :class:`ParameterShard`: one slice and its update rule: SGD with ``eta_t = eta / max(1, t / T)``
  (:class:`asr.nnet.schedule.InverseTimeSchedule`'s formula; momentum, Nesterov and weight decay as
  ``torch.optim.SGD``) or Adagrad (``torch.optim.Adagrad``'s rule), with a version counter (updates applied)
  and a step counter (minibatch gradients applied, the schedule's ``t``).
- :func:`staleness_summary`: mean, max and counts of a staleness histogram.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OPTIMIZERS = ("sgd", "adagrad")  # as asr.nnet.optimizer.OPTIMIZERS (not imported: that module loads torch)
STALENESS_BINS = 64  # histogram bins 0..62 exactly, the last one counts staleness >= 63
ADAGRAD_EPS = 1e-10  # as asr.nnet.optimizer.build_optimizer's default


def scheduled_lr(eta: float, decay_steps: float, step: int) -> float:
    """``eta / max(1, step / decay_steps)`` (constant when ``decay_steps`` is 0): the rate of minibatch ``step``."""
    if not decay_steps:
        return float(eta)
    return float(eta) / max(1.0, step / float(decay_steps))


@dataclass(frozen=True)
class ShardSpec:
    """One parameter-server shard's slice of the flattened parameters.

    Attributes:
        index: shard number.
        start, end: the slice ``[start, end)`` of the flat parameter vector.
        decayed: ``(lo, hi)`` ranges, relative to ``start``, of weight-matrix elements (weight decay
            applies to them only, as in :func:`asr.nnet.optimizer.build_optimizer`).
    """

    index: int
    start: int
    end: int
    decayed: tuple[tuple[int, int], ...] = ()

    @property
    def size(self) -> int:
        """Parameters in the shard."""
        return self.end - self.start


def partition_parameters(sizes: Sequence[int], n_shards: int, decayed: Sequence[bool] | None = None) -> list[ShardSpec]:
    """Cut the concatenation of parameters of ``sizes`` elements into ``n_shards`` contiguous, equal slices.

    Args:
        sizes: element counts of the parameters, in flattening order (``p.numel()`` of ``model.parameters()``).
        n_shards: number of slices (>= 1, at most the total element count).
        decayed: per parameter, whether weight decay applies to it (default: none).

    Returns:
        ``n_shards`` :class:`ShardSpec`, covering ``[0, sum(sizes))`` exactly once; sizes differ by at most one.

    Raises:
        ValueError: ``n_shards`` < 1 or more than the elements.
    """
    total = int(sum(sizes))
    if n_shards < 1 or n_shards > total:
        raise ValueError(f"n_shards must be in 1..{total} (the number of parameters), not {n_shards}")
    decayed = [False] * len(sizes) if decayed is None else list(decayed)
    if len(decayed) != len(sizes):
        raise ValueError(f"{len(decayed)} weight-decay flags for {len(sizes)} parameters")
    param_bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    base, extra = divmod(total, n_shards)
    specs, start = [], 0
    for i in range(n_shards):
        end = start + base + (1 if i < extra else 0)
        ranges = []
        for j, flag in enumerate(decayed):
            lo, hi = max(int(param_bounds[j]), start), min(int(param_bounds[j + 1]), end)
            if flag and lo < hi:
                ranges.append((lo - start, hi - start))
        specs.append(ShardSpec(i, start, end, tuple(ranges)))
        start = end
    return specs


@dataclass(frozen=True)
class ServerOptimizer:
    """How a shard applies gradients.

    Attributes:
        kind: ``"sgd"`` or ``"adagrad"``.
        lr: ``eta`` of the schedule ``eta_t = eta / max(1, t / decay_steps)``.
        decay_steps: ``T`` (0: constant rate).
        momentum, nesterov: SGD momentum (torch.optim.SGD's rule; 0 disables it).
        weight_decay: L2 coefficient on weight-matrix elements.
        eps: Adagrad's denominator constant.
    """

    kind: str = "sgd"
    lr: float = 0.01
    decay_steps: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    eps: float = ADAGRAD_EPS

    def __post_init__(self) -> None:
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"server optimizer must be one of {OPTIMIZERS}, not {self.kind!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, not {self.lr}")
        if self.decay_steps < 0:
            raise ValueError(f"decay_steps must be >= 0, not {self.decay_steps}")


class ParameterShard:
    """A slice of the parameters and the rule that updates it (a Ray actor in :class:`DownpourTrainer`).

    Args:
        spec: which slice.
        params: float32 ``[spec.size]`` initial values.
        optimizer: the update rule.
        state: a :meth:`state_dict` to continue from (checkpoint), or None.

    Update of a push carrying ``g`` (the sum of ``k`` minibatch gradients), ``t`` = minibatch gradients
    applied before it, ``lr = eta / max(1, t / T)``:

    - SGD: ``g += k * wd * p`` on weight elements; with momentum ``mu``: ``b = mu * b + g`` (``b = g`` on the
      first push), ``d = g + mu * b`` (Nesterov) or ``b``; else ``d = g``; ``p -= lr * d``.
    - Adagrad: ``g += k * wd * p``; ``G += g * g``; ``p -= lr * g / (sqrt(G) + eps)``.

    Then ``t += k`` and ``version += 1``.
    """

    def __init__(
        self, spec: ShardSpec, params: np.ndarray, optimizer: ServerOptimizer, state: dict[str, Any] | None = None
    ):
        params = np.asarray(params, dtype=np.float32)
        if params.shape != (spec.size,):
            raise ValueError(f"shard {spec.index} holds {spec.size} parameters, got an array of shape {params.shape}")
        self.spec = spec
        self.optimizer = optimizer
        self.params = params.copy()
        self.version = 0
        self.step = 0
        self.buffer: np.ndarray | None = None  # momentum buffer (SGD) or sum of squared gradients (Adagrad)
        if optimizer.kind == "adagrad":
            self.buffer = np.zeros_like(self.params)
        if state is not None:
            self.load_state_dict(state)

    def lr(self) -> float:
        """The scheduled learning rate of the next minibatch gradient."""
        return scheduled_lr(self.optimizer.lr, self.optimizer.decay_steps, self.step)

    def fetch(self, copy: bool = True) -> dict[str, Any]:
        """``{"version", "step", "lr", "params"}``: the current slice and its counters.

        Args:
            copy: return a copy of the slice; a Ray actor call may pass False, since Ray serializes the result
                when the method returns, before the next call can change the slice.
        """
        params = self.params.copy() if copy else self.params
        return {"version": self.version, "step": self.step, "lr": self.lr(), "params": params}

    def push(self, grad: np.ndarray, num_batches: int = 1, fetched_version: int | None = None) -> int:
        """Apply the sum ``grad`` of ``num_batches`` minibatch gradients; returns the update's staleness.

        Args:
            grad: float32 ``[spec.size]``.
            num_batches: minibatch gradients summed in ``grad`` (>= 1); advances the schedule by as many.
            fetched_version: the version the pushing replica last fetched (None: staleness 0).

        Returns:
            ``version - fetched_version`` before this update (updates by others and by the same replica
            since its fetch).
        """
        g = np.asarray(grad, dtype=np.float32)
        if g.shape != self.params.shape:
            raise ValueError(f"shard {self.spec.index}: gradient of shape {g.shape}, parameters {self.params.shape}")
        if num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, not {num_batches}")
        staleness = 0 if fetched_version is None else max(self.version - int(fetched_version), 0)
        opt, p = self.optimizer, self.params
        lr = np.float32(self.lr())
        if opt.weight_decay and self.spec.decayed:
            g = g.copy()
            for lo, hi in self.spec.decayed:
                g[lo:hi] += np.float32(num_batches * opt.weight_decay) * p[lo:hi]
        if opt.kind == "adagrad":
            assert self.buffer is not None
            tmp = g * g
            self.buffer += tmp
            np.sqrt(self.buffer, out=tmp)
            tmp += np.float32(opt.eps)
            np.divide(g, tmp, out=tmp)
            tmp *= lr
            p -= tmp
        else:
            d = g
            if opt.momentum:
                mu = np.float32(opt.momentum)
                if self.buffer is None:
                    self.buffer = g.copy()
                else:
                    self.buffer *= mu
                    self.buffer += g
                d = g + mu * self.buffer if opt.nesterov else self.buffer
            p -= lr * d
        self.step += int(num_batches)
        self.version += 1
        return staleness

    def state_dict(self) -> dict[str, Any]:
        """Counters and optimizer state (not the parameters): ``{"index", "start", "end", "version", "step",
        "buffer"}`` (``buffer``: momentum buffer or Adagrad accumulator, float32, or None)."""
        return {
            "index": self.spec.index,
            "start": self.spec.start,
            "end": self.spec.end,
            "version": self.version,
            "step": self.step,
            "buffer": None if self.buffer is None else self.buffer.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s counters and buffer (ValueError when it is another slice's)."""
        if (int(state["start"]), int(state["end"])) != (self.spec.start, self.spec.end):
            raise ValueError(
                f"shard state of slice [{state['start']}, {state['end']}) "
                f"for shard [{self.spec.start}, {self.spec.end})"
            )
        self.version, self.step = int(state["version"]), int(state["step"])
        buf = state.get("buffer")
        self.buffer = None if buf is None else np.asarray(buf, dtype=np.float32).copy()
        if self.optimizer.kind == "adagrad" and self.buffer is None:
            self.buffer = np.zeros_like(self.params)

    def snapshot(self) -> dict[str, Any]:
        """:meth:`state_dict` plus ``"params"`` (a copy of the slice)."""
        return {**self.state_dict(), "params": self.params.copy()}

    def pid(self) -> int:
        """The process id (of the actor)."""
        return os.getpid()


def count_staleness(hist: np.ndarray, values: Sequence[int]) -> None:
    """Add staleness ``values`` to the int64 histogram ``hist`` (values beyond its last bin go there)."""
    for v in values:
        hist[min(int(v), STALENESS_BINS - 1)] += 1


def staleness_summary(hist: np.ndarray | Sequence[int]) -> dict[str, Any]:
    """``{"mean", "max", "counts"}`` of a staleness histogram (``counts``: ``{"0": n0, "1": n1, ...}``, non-zero
    bins only; the last bin, ``"63+"``, counts 63 and more)."""
    hist = np.asarray(hist, dtype=np.int64)
    total = int(hist.sum())
    values = np.arange(len(hist))
    nonzero = np.nonzero(hist)[0]
    names = [str(i) if i < len(hist) - 1 else f"{i}+" for i in nonzero]
    return {
        "mean": float((hist * values).sum() / total) if total else 0.0,
        "max": int(nonzero[-1]) if nonzero.size else 0,
        "counts": {name: int(hist[i]) for name, i in zip(names, nonzero)},
    }
