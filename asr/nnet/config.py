"""Typed training configuration, checked and built from the composed Hydra config (``conf/``).

Hydra composes plain YAML, so an override like ``depth=abc`` composes fine; :func:`parse_train_config`
turns the composed config into dataclasses, checking every value's type and range, and raises a
:class:`~asr.errors.ConfigError` naming the key (and the top-level shortcut that sets it) otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr.errors import ConfigError
from asr.nnet.mlp import MAX_DEPTH
from asr.nnet.optimizer import OPTIMIZERS
from asr.nnet.trainer import PROGRESS_MODES

HELDOUT_MODES = ("auto", "dev", "fraction", "none")
# trainer.kind: one process (local), synchronous data-parallel over torchrun processes (ddp), asynchronous
# Downpour SGD on Ray (async: asr.nnet.downpour)
TRAINER_KINDS = ("local", "ddp", "async")
DDP_BACKENDS = ("auto", "nccl", "gloo")
# keys users set through a top-level shortcut (named in error messages)
SHORTCUTS = {"model.depth": "depth", "model.width": "width"}


@dataclass
class ModelConfig:
    """``model``: the network."""

    name: str
    depth: int
    width: int
    dropout: float = 0.0
    input_norm: bool = True


@dataclass
class OptimConfig:
    """``optim``: optimizer, batch size and the schedule ``eta_t = lr / max(1, t / decay_steps)``."""

    kind: str
    batch_size: int
    lr: float
    decay_steps: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0


@dataclass
class DataConfig:
    """``data``: features, context window, held-out set, loader memory."""

    feature_type: str = "fbank"
    left_context: int = 13
    right_context: int = 12
    heldout: str = "auto"
    heldout_fraction: float = 0.05
    heldout_alignments: str | None = None
    ram_budget_gb: float = 4.0
    chunk_frames: int = 20000


@dataclass
class PriorConfig:
    """``priors``: smoothing of the senone priors."""

    add: float = 1.0
    floor: float = 1e-8


@dataclass
class TrainerConfig:
    """``trainer``: epochs, checkpoints, logs, device."""

    epochs: int = 4
    max_steps: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    progress: str = "auto"
    tensorboard: bool = True
    lr_halving: bool = False
    halving_threshold: float = 0.002
    min_lr_scale: float = 1.0 / 64
    device: str = "auto"
    num_threads: int = 0
    restart: bool = False
    kind: str = "local"
    backend: str = "auto"  # ddp: torch.distributed backend (auto: nccl on CUDA, gloo on CPU)
    timeout_minutes: float = 30.0  # ddp: how long a rank waits for the others (collectives, preparation)
    n_replicas: int = 2  # async: model replicas (Ray actors), each with its own part of the training data
    n_shards: int = 2  # async: parameter-server shards (Ray actors), each a slice of the parameters
    n_fetch: int = 1  # async: minibatches between parameter fetches of a replica
    n_push: int = 1  # async: minibatches between gradient pushes of a replica
    server_optimizer: str = "adagrad"  # async: how shards apply gradients (sgd | adagrad); lr schedule from optim
    ray_address: str | None = None  # async: null = a local Ray; auto / HOST:6379 / ray://HOST:10001 = a cluster
    replica_max_restarts: int = 3  # async: Ray restarts (and task retries) per replica; -1 = unlimited


@dataclass
class CorpusConfig:
    """``corpus``: where the data dirs are and how the recipe makes what training needs."""

    name: str
    data_dir: str
    train: str
    dev: str | None = None
    test: str | None = None
    lang: str | None = None
    lang_test: str | None = None
    gmm: str = "tri1"
    recipe: str = ""
    feature_stages: str = ""
    gmm_stages: str = ""
    graph: str = "graph_tg"


@dataclass
class TrainConfig:
    """The whole training configuration."""

    corpus: CorpusConfig
    model: ModelConfig
    optim: OptimConfig
    data: DataConfig
    priors: PriorConfig
    trainer: TrainerConfig
    gmm_dir: str
    name: str
    seed: int = 0
    prepare: bool = True
    skip_bad: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """What determines the trained weights (a resumed run must match it; epochs may grow)."""
        data = dataclasses.asdict(self.data)
        for key in ("ram_budget_gb", "chunk_frames"):
            data.pop(key)
        trainer = {k: getattr(self.trainer, k) for k in ("lr_halving", "halving_threshold", "min_lr_scale")}
        return {
            "model": dataclasses.asdict(self.model),
            "optim": dataclasses.asdict(self.optim),
            "data": data,
            "priors": dataclasses.asdict(self.priors),
            "trainer": trainer,
            "seed": self.seed,
            "gmm_dir": self.gmm_dir,
            "train": f"{self.corpus.data_dir}/{self.corpus.train}",
        }


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _check_value(value: Any, tp, key: str) -> Any:
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0]
    if value is None:
        if optional:
            return None
        raise _bad(key, value, f"must be {_type_name(tp)}, not null")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # nan, inf (also 1e400): never a usable setting
                raise _bad(key, value, "must be a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is dict or typing.get_origin(tp) is dict:
        return value
    raise _bad(key, value, f"must be {_type_name(tp)}")


def _bad(key: str, value: Any, what: str) -> ConfigError:
    shortcut = f" (set by the override {SHORTCUTS[key]}=...)" if key in SHORTCUTS else ""
    return ConfigError(f"config value {key}={value!r} is invalid: {key} {what}{shortcut}")


def _build(cls, node: Any, prefix: str):
    if not isinstance(node, dict):
        raise ConfigError(f"config entry {prefix or '<root>'} must be a mapping, not {node!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.name not in node:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"config entry {key} is missing")
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, node[f.name], f"{key}.")
        else:
            kwargs[f.name] = _check_value(node[f.name], tp, key)
    return cls(**kwargs)


def _require(ok: bool, key: str, value: Any, what: str) -> None:
    if not ok:
        raise _bad(key, value, what)


def parse_train_config(cfg: DictConfig | dict) -> TrainConfig:
    """Check the composed config and return the typed :class:`TrainConfig`.

    Raises:
        ConfigError: naming the key, for a missing entry, a value of the wrong type (``depth=abc``) or out
            of range (``depth=13``, ``optim.batch_size=0``), an unknown optimizer, held-out mode, etc.
    """
    if isinstance(cfg, DictConfig):
        try:
            container = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as err:
            raise ConfigError(f"cannot resolve the configuration: {err}") from None
    else:
        container = dict(cfg)
    container = {k: v for k, v in container.items() if k != "hydra"}
    top = {k: container[k] for k in ("gmm_dir", "name", "seed", "prepare", "skip_bad") if k in container}
    sections = {k: container.get(k, {}) for k in ("corpus", "model", "optim", "data", "priors", "trainer")}
    built = _build(TrainConfig, {**sections, **top}, "")
    m, o, d, p, t = built.model, built.optim, built.data, built.priors, built.trainer
    _require(1 <= m.depth <= MAX_DEPTH, "model.depth", m.depth, f"must be in 1..{MAX_DEPTH}")
    _require(m.width >= 1, "model.width", m.width, "must be >= 1")
    _require(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "must be in [0, 1)")
    _require(o.kind in OPTIMIZERS, "optim.kind", o.kind, f"must be one of {OPTIMIZERS}")
    _require(o.batch_size >= 1, "optim.batch_size", o.batch_size, "must be >= 1")
    _require(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    _require(o.decay_steps >= 0, "optim.decay_steps", o.decay_steps, "must be >= 0 (0: constant rate)")
    _require(o.momentum >= 0, "optim.momentum", o.momentum, "must be >= 0")
    _require(not o.nesterov or o.momentum > 0, "optim.nesterov", o.nesterov, "needs optim.momentum > 0")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _require(d.left_context >= 0, "data.left_context", d.left_context, "must be >= 0")
    _require(d.right_context >= 0, "data.right_context", d.right_context, "must be >= 0")
    _require(d.heldout in HELDOUT_MODES, "data.heldout", d.heldout, f"must be one of {HELDOUT_MODES}")
    _require(0.0 <= d.heldout_fraction < 1.0, "data.heldout_fraction", d.heldout_fraction, "must be in [0, 1)")
    _require(d.ram_budget_gb > 0, "data.ram_budget_gb", d.ram_budget_gb, "must be > 0")
    _require(d.chunk_frames >= 1, "data.chunk_frames", d.chunk_frames, "must be >= 1")
    _require(p.add >= 0, "priors.add", p.add, "must be >= 0")
    _require(0 <= p.floor < 1, "priors.floor", p.floor, "must be in [0, 1)")
    _require(t.epochs >= 1, "trainer.epochs", t.epochs, "must be >= 1")
    _require(t.max_steps is None or t.max_steps >= 0, "trainer.max_steps", t.max_steps, "must be >= 0 or null")
    _require(t.checkpoint_every >= 0, "trainer.checkpoint_every", t.checkpoint_every, "must be >= 0")
    _require(t.keep_checkpoints >= 1, "trainer.keep_checkpoints", t.keep_checkpoints, "must be >= 1")
    _require(t.log_every >= 1, "trainer.log_every", t.log_every, "must be >= 1")
    _require(t.progress in PROGRESS_MODES, "trainer.progress", t.progress, f"must be one of {PROGRESS_MODES}")
    _require(t.num_threads >= 0, "trainer.num_threads", t.num_threads, "must be >= 0 (0: all cores)")
    _require(t.kind in TRAINER_KINDS, "trainer.kind", t.kind, f"must be one of {TRAINER_KINDS} (or trainer=<kind>)")
    _require(t.backend in DDP_BACKENDS, "trainer.backend", t.backend, f"must be one of {DDP_BACKENDS}")
    _require(t.timeout_minutes > 0, "trainer.timeout_minutes", t.timeout_minutes, "must be > 0")
    for key in ("n_replicas", "n_shards", "n_fetch", "n_push"):
        _require(getattr(t, key) >= 1, f"trainer.{key}", getattr(t, key), "must be >= 1")
    _require(t.server_optimizer in OPTIMIZERS, "trainer.server_optimizer", t.server_optimizer,
             f"must be one of {OPTIMIZERS}")  # fmt: skip
    _require(t.replica_max_restarts >= -1, "trainer.replica_max_restarts", t.replica_max_restarts,
             "must be >= -1 (-1: unlimited)")  # fmt: skip
    _require(t.kind != "async" or not t.lr_halving, "trainer.lr_halving", t.lr_halving,
             "is not supported with trainer.kind=async (the shards follow optim's schedule)")  # fmt: skip
    _require(t.device == "auto" or t.device.split(":")[0] in ("cpu", "cuda"), "trainer.device", t.device,
             "must be auto, cpu, cuda or cuda:N")  # fmt: skip
    _require(bool(built.name) and "/" not in built.name, "name", built.name, "must be a non-empty name without '/'")
    _require(0 <= built.seed < 2**63, "seed", built.seed, "must be in 0..2**63-1 (numpy and torch seeds)")
    return built
