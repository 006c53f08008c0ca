"""Asynchronous Downpour SGD on Ray (``trainer=async``): a sharded parameter server and free-running replicas.

This is the asynchronous trainer of Dean et al. (NIPS 2012), as the LeCun/Ranzato tutorial presents it:

- **Parameter-server shards** (:class:`asr.nnet.param_server.ParameterShard`, NumPy only, one Ray actor
  each, ``n_shards``): the network's trainable parameters, flattened in ``model.parameters()`` order, are
  cut into ``n_shards`` contiguous slices of equal size (+-1, :func:`~asr.nnet.param_server.partition_parameters`).
  A shard applies every gradient slice it receives at once, in arrival order: SGD with the schedule
  ``eta_t = eta / max(1, t / T)`` (optional momentum, Nesterov, weight decay on weight matrices; ``t`` =
  minibatch gradients that shard has applied, the same count as the local trainer's update number), or
  Adagrad (per-parameter rate ``eta_t / (sqrt(G) + eps)``, ``G`` the sum of squared gradients: torch's
  Adagrad). Each shard counts its updates (``version``).
- **Model replicas** (:class:`ReplicaWorker`, one Ray actor each, ``n_replicas``; a GPU each when the
  cluster has them and ``trainer.device`` allows, else CPU with ``trainer.num_threads`` torch threads,
  default 1): replica ``r`` reads its own disjoint part of the training utterances from the HDF5 archive
  and ``ali.h5`` itself (the driver sends a bit mask of utterances, never features), shuffles its frames
  every epoch, and loops: every ``n_fetch`` minibatches it fetches fresh parameters from all shards; it
  computes the minibatch gradient, adds it to its accrued gradient (and, when the next step does not
  fetch, takes a local SGD step as the paper's client does; SGD server only); every ``n_push`` minibatches
  it sends the accrued gradient slices to the shards without waiting for them (at most two pushes per
  shard in flight). It never waits for the other replicas. Staleness of an update = the shard's version
  when the push arrives minus the version the replica last fetched.
- **The driver** (:class:`DownpourTrainer`, in the ``asr.train`` process) hands each replica tasks of at
  most ``log_every / (2 n_replicas)`` minibatches (a task names its starting point: epoch, batch, the
  data-order RNG state), collects their statistics, and logs loss, frame accuracy, learning rate,
  frames/s, updates/s and staleness (log lines, TensorBoard scalars and a staleness histogram).

Barriers: at a checkpoint (every ``checkpoint_every`` minibatches, summed over replicas), at the end of
each epoch (every replica has finished that epoch: held-out evaluation) and at ``max_steps``, the driver
stops handing out tasks, lets the running ones finish (at most one task each), then snapshots the shards.
A checkpoint (:mod:`asr.nnet.checkpoint`, written atomically by the driver) holds the assembled network
(``model``: the shards' slices), each shard's version, step count, momentum buffer or Adagrad
accumulator (``optimizer.shards``), every replica's position, counters, the staleness histogram and the
history; a restarted run resumes from it (shards restored, replicas continue where their positions say).
The run is not bit-reproducible (the order in which pushes meet is up to the scheduler), except with one
replica, ``n_fetch = n_push = 1``, which reproduces the local trainer's updates.

Faults: replicas are created with ``max_restarts`` and ``max_task_retries``
(``trainer.replica_max_restarts``). A replica whose process dies (a killed process, a lost node) is
restarted by Ray, reloads its data, and the task it was running is retried from the task's starting point
(re-fetching the parameters first): the gradients it pushed before dying count twice, as in any
at-least-once parameter server; the run completes. The driver counts restarts (a replica's pid changed)
and reports them. The shards are not restarted: a dead shard ends the run, which then resumes from the
last checkpoint when started again.

Ray: ``ray.init()`` on this machine by default (``num_cpus`` = this process's cores, no dashboard, Ray's
own log lines at WARNING); ``trainer.ray_address`` joins a running cluster (``auto``, ``HOST:6379``, or a
``ray://HOST:10001`` client address); every node must see the archive and ``ali.h5`` paths. A Ray
session this module started is shut down at the end; one that was already running (tests) is left up.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as asr.train sets it, before torch loads (see there)

import json
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayActorError, RayError
from torch.nn import functional as F

from asr.atomic import atomic_write
from asr.errors import AsrError, ConfigError
from asr.features.archive import FeatureArchive
from asr.nnet.alignments import read_pdf_alignment
from asr.nnet.checkpoint import load_latest_checkpoint, save_checkpoint
from asr.nnet.frame_data import (
    ChunkedFrameLoader,
    InMemoryFrameLoader,
    TrainingData,
    frames_of_utts,
    gather_utterances,
    join_targets,
)
from asr.nnet.mlp import Mlp
from asr.nnet.param_server import (
    STALENESS_BINS,
    ParameterShard,
    ServerOptimizer,
    ShardSpec,
    count_staleness,
    partition_parameters,
    staleness_summary,
)
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import config_differences, evaluate

logger = logging.getLogger(__name__)

MAX_PUSHES_IN_FLIGHT = 2  # per shard and replica


class ReplicaFailedError(AsrError):
    """A replica died more often than ``trainer.replica_max_restarts`` allows, or Ray could not run it."""


# ----------------------------------------------------------------------------------------- flat parameters
def model_layout(model: torch.nn.Module) -> tuple[list[int], list[bool]]:
    """``(sizes, decayed)`` of ``model.parameters()``: element counts and whether each is a weight matrix."""
    params = list(model.parameters())
    return [p.numel() for p in params], [p.ndim >= 2 for p in params]


def flat_parameters(model: torch.nn.Module) -> np.ndarray:
    """float32 copy of the model's parameters concatenated in ``model.parameters()`` order."""
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().to("cpu", torch.float32).numpy().copy()


def load_flat_parameters(model: torch.nn.Module, flat: np.ndarray | torch.Tensor) -> None:
    """Copy a flat parameter vector (``model.parameters()`` order) into ``model``."""
    first = next(model.parameters())
    vec = torch.as_tensor(np.asarray(flat, dtype=np.float32).copy()).to(first.device, first.dtype)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(vec, model.parameters())


# ----------------------------------------------------------------------------------------- the replicas
@dataclass(frozen=True)
class ReplicaData:
    """What a replica reads: its utterances of the training archive and how to batch them.

    Attributes:
        archive: the training feature archive (must be readable at this path on every node).
        alignment: its ``ali.h5``.
        num_pdfs: senones.
        utt_mask: ``np.packbits`` of the bool mask (over the archive's utterances) of this replica's training
            utterances (one bit per utterance keeps the actor's arguments small; made by :meth:`pack`).
        num_utts: utterances in the archive.
        batch_size: frames per minibatch.
        left, right: context window.
        ram_budget_bytes: the replica's features go to RAM when they fit, else a chunked shuffle buffer.
        chunk_frames: disk chunk size (chunked loader).
    """

    archive: str
    alignment: str
    num_pdfs: int
    utt_mask: bytes
    num_utts: int
    batch_size: int
    left: int
    right: int
    ram_budget_bytes: int = 4 << 30
    chunk_frames: int = 20000

    @staticmethod
    def pack(utt_indices: np.ndarray, num_utts: int) -> bytes:
        """The ``utt_mask`` of some utterance indices."""
        mask = np.zeros(num_utts, dtype=bool)
        mask[np.asarray(utt_indices, dtype=np.int64)] = True
        return np.packbits(mask).tobytes()

    @property
    def utt_indices(self) -> np.ndarray:
        """Sorted int64 indices of the replica's utterances."""
        bits = np.unpackbits(np.frombuffer(self.utt_mask, dtype=np.uint8), count=self.num_utts)
        return np.nonzero(bits)[0].astype(np.int64)


def load_replica_loader(
    data: ReplicaData, device: str | torch.device = "cpu"
) -> InMemoryFrameLoader | ChunkedFrameLoader:
    """The loader over ``data.utt_indices``' aligned frames: features in RAM (only those utterances) when they
    fit ``ram_budget_bytes``, else read from disk through the chunked shuffle buffer."""
    archive = FeatureArchive(data.archive)
    try:
        alignment = read_pdf_alignment(data.alignment)
        targets, _ = join_targets(archive, alignment, data.num_pdfs)
        utts = data.utt_indices
        lengths = np.diff(archive.offsets)[utts]
        if int(lengths.sum()) * (archive.dim * 4 + 8) <= data.ram_budget_bytes:
            feats, offsets, index = gather_utterances(archive, archive.offsets, utts)
            local_targets = targets[index]
            frames = np.nonzero(local_targets >= 0)[0]
            return InMemoryFrameLoader(
                feats, offsets, local_targets, frames, data.batch_size, data.left, data.right, device
            )
        mask = np.zeros(len(archive), dtype=bool)
        mask[utts] = True
        frames = frames_of_utts(archive.offsets, mask, targets)
        buffer_frames = max(data.chunk_frames, data.ram_budget_bytes // 4 // (archive.dim * 4))
        return ChunkedFrameLoader(
            archive.path, targets, frames, data.batch_size, buffer_frames, data.chunk_frames, data.left, data.right,
            device,
        )  # fmt: skip
    finally:
        archive.close()


def assign_utterances(utt_indices: np.ndarray, utt_frames: np.ndarray, n_replicas: int, seed: int) -> list[np.ndarray]:
    """Deal utterances to replicas: a seeded random order, each to the replica with the fewest frames so far.

    Args:
        utt_indices: the training utterances (archive indices).
        utt_frames: their training frame counts.
        n_replicas: number of parts (at most the number of utterances).
        seed: the order's seed.

    Returns:
        ``n_replicas`` sorted int64 arrays, disjoint, together ``utt_indices``; with one replica, all of them.
    """
    utt_indices = np.asarray(utt_indices, dtype=np.int64)
    if not 1 <= n_replicas <= len(utt_indices):
        raise ConfigError(
            f"trainer.n_replicas={n_replicas}: each replica needs at least one training utterance "
            f"(there are {len(utt_indices)})"
        )
    order = np.random.default_rng(seed).permutation(len(utt_indices))
    load = np.zeros(n_replicas, dtype=np.int64)
    parts: list[list[int]] = [[] for _ in range(n_replicas)]
    for i in order:
        r = int(np.argmin(load))
        parts[r].append(int(utt_indices[i]))
        load[r] += int(utt_frames[i])
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@dataclass(frozen=True)
class ReplicaOptions:
    """How a replica trains.

    Attributes:
        n_fetch: minibatches between parameter fetches.
        n_push: minibatches between gradient pushes.
        local_sgd: take a plain SGD step (at the shards' current rate) on the replica's own copy between
            fetches (Dean et al.'s client; only with the SGD server optimizer).
        threads: torch threads (CPU).
        device: ``"cpu"`` or ``"cuda"``.
    """

    n_fetch: int = 1
    n_push: int = 1
    local_sgd: bool = True
    threads: int = 1
    device: str = "cpu"


def _rng_state(seed: int) -> np.ndarray:
    return torch.Generator().manual_seed(int(seed)).get_state().numpy().copy()


class ReplicaWorker:
    """A model replica (a Ray actor in :class:`DownpourTrainer`; see the module docstring).

    Args:
        index: replica number.
        shards: the shard actors' names (``ray.get_actor``), in slice order.
        specs: their :class:`ShardSpec`.
        mlp_hparams: :meth:`asr.nnet.mlp.Mlp.hparams` of the network.
        buffers: the network's buffers (input normalization) as float32 arrays by name.
        data: its :class:`ReplicaData`.
        options: :class:`ReplicaOptions`.
    """

    def __init__(
        self,
        index: int,
        shards: Sequence[str],
        specs: Sequence[ShardSpec],
        mlp_hparams: dict[str, Any],
        buffers: dict[str, np.ndarray],
        data: ReplicaData,
        options: ReplicaOptions,
    ):
        torch.set_num_threads(max(1, options.threads))
        self.index = index
        self.shards = [ray.get_actor(name) for name in shards]
        self.specs = list(specs)
        self.options = options
        self.device = torch.device(options.device)
        self.loader = load_replica_loader(data, self.device)
        self.model = Mlp.from_hparams(mlp_hparams)
        with torch.no_grad():
            for name, value in buffers.items():
                getattr(self.model, name).copy_(torch.from_numpy(np.array(value, dtype=np.float32)))
        self.model.to(self.device).train()
        params = list(self.model.parameters())
        total = sum(p.numel() for p in params)
        if self.specs[-1].end != total:
            raise ValueError(f"the shards hold {self.specs[-1].end} parameters, the network {total}")
        # parameters and gradients are views of two flat buffers: fetch and push copy slices, no gathering
        self.flat = torch.zeros(total, device=self.device)
        self.flat_grad = torch.zeros(total, device=self.device)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.flat_grad[offset : offset + n].view_as(p)
            offset += n
        self.accrued = torch.zeros(total, device=self.device) if options.n_push > 1 else None
        self.fetched_versions = [0] * len(self.specs)
        self.lr = 0.0
        self._cursor: tuple | None = None  # (epoch, rng bytes, next batch, iterator, num_batches, next rng)
        self.pid_value = os.getpid()

    @ray.method(concurrency_group="control")  # answers while a training task runs
    def pid(self) -> int:
        """This replica's process id."""
        return self.pid_value

    @ray.method(concurrency_group="control")
    def info(self) -> dict[str, Any]:
        """``{"pid", "host", "device", "num_frames"}``."""
        return {
            "pid": self.pid_value,
            "host": socket.gethostname(),
            "device": str(self.device),
            "num_frames": self.loader.num_frames,
        }

    def _fetch(self) -> None:
        results = ray.get([shard.fetch.remote(False) for shard in self.shards])
        for spec, res in zip(self.specs, results):
            if self.device.type == "cpu":
                np.copyto(self.flat[spec.start : spec.end].numpy(), res["params"])
            else:
                self.flat[spec.start : spec.end].copy_(torch.from_numpy(np.array(res["params"])))
            self.fetched_versions[spec.index] = int(res["version"])
        self.lr = float(results[0]["lr"])

    def _push(self, grad: torch.Tensor, num_batches: int, in_flight: list, staleness: np.ndarray) -> int:
        host = grad.detach().to("cpu").numpy()
        for spec, shard in zip(self.specs, self.shards):
            # Ray serializes the arguments in .remote(), so the buffer may be reused for the next gradient at once
            chunk = host[spec.start : spec.end]
            in_flight.append(shard.push.remote(chunk, num_batches, self.fetched_versions[spec.index]))
        limit = MAX_PUSHES_IN_FLIGHT * len(self.shards)
        if len(in_flight) > limit:
            done, rest = ray.wait(in_flight, num_returns=len(in_flight) - limit)
            count_staleness(staleness, ray.get(done))
            in_flight[:] = rest
        return 1

    def _epoch_iterator(self, epoch: int, rng: np.ndarray, batch: int):
        key = (epoch, rng.tobytes(), batch)
        if self._cursor is not None and self._cursor[:3] == key:
            return self._cursor[3], self._cursor[4], self._cursor[5]
        generator = torch.Generator()
        generator.set_state(torch.from_numpy(np.array(rng, dtype=np.uint8)))
        ep = self.loader.epoch(generator, start_batch=batch)
        next_rng = generator.get_state().numpy().copy()
        return iter(ep), ep.num_batches, next_rng

    def train(self, position: dict[str, Any], max_batches: int) -> dict[str, Any]:
        """Train from ``position`` for up to ``max_batches`` minibatches, stopping at the epoch's end.

        Args:
            position: ``{"epoch", "batch", "rng"}``: where to start (``rng``: uint8 state of the data-order
                generator at the start of that epoch).
            max_batches: at most this many minibatches (>= 1).

        Returns:
            ``{"position", "batches", "frames", "loss_sum", "correct", "pushes", "fetches", "staleness"
            (int64 histogram), "seconds", "pid", "epoch_batches", "epoch"}``; the position is where the next
            task starts (the next epoch's first batch after the last one). All pushes have been applied by the
            shards when this returns.
        """
        start_time = time.perf_counter()
        opts = self.options
        torch.set_num_threads(max(1, opts.threads))  # this thread's (an actor with concurrency groups is threaded)
        epoch, batch = int(position["epoch"]), int(position["batch"])
        rng = np.asarray(position["rng"], dtype=np.uint8)
        iterator, num_batches, next_rng = self._epoch_iterator(epoch, rng, batch)
        staleness = np.zeros(STALENESS_BINS, dtype=np.int64)
        in_flight: list = []
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        done = frames = pushes = fetches = pending = 0
        model = self.model
        while done < max_batches and batch < num_batches:
            if done % opts.n_fetch == 0:
                self._fetch()
                fetches += 1
            x, y = next(iterator)
            self.flat_grad.zero_()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            n = y.shape[0]
            with torch.no_grad():
                loss_sum += loss.detach() * n
                correct += (logits.argmax(dim=1) == y).sum()
                if self.accrued is not None:
                    self.accrued += self.flat_grad
                pending += 1
                if opts.local_sgd and (done + 1) % opts.n_fetch != 0:
                    self.flat.sub_(self.flat_grad, alpha=self.lr)
            done += 1
            batch += 1
            frames += n
            if pending == opts.n_push or done == max_batches or batch == num_batches:
                pushes += self._push(self.accrued if self.accrued is not None else self.flat_grad, pending, in_flight,
                                     staleness)  # fmt: skip
                if self.accrued is not None:
                    self.accrued.zero_()
                pending = 0
        count_staleness(staleness, ray.get(in_flight))
        if batch >= num_batches:
            new_position = {"epoch": epoch + 1, "batch": 0, "rng": next_rng}
            self._cursor = None
        else:
            new_position = {"epoch": epoch, "batch": batch, "rng": rng}
            self._cursor = (epoch, rng.tobytes(), batch, iterator, num_batches, next_rng)
        return {
            "position": new_position,
            "epoch": epoch,
            "epoch_batches": num_batches,
            "batches": done,
            "frames": frames,
            "loss_sum": float(loss_sum),
            "correct": int(correct),
            "pushes": pushes,
            "fetches": fetches,
            "staleness": staleness,
            "seconds": time.perf_counter() - start_time,
            "pid": self.pid_value,
        }


# ----------------------------------------------------------------------------------------- the driver
@dataclass
class DownpourOptions:
    """The asynchronous trainer's settings (from ``conf/trainer/async.yaml``; see :func:`downpour_options`).

    Attributes:
        n_replicas, n_shards, n_fetch, n_push: see the module docstring.
        server: the shards' update rule.
        ray_address: None: a local Ray; otherwise ``ray.init(address=...)``.
        replica_max_restarts: Ray restarts per replica (-1: unlimited); also its task retries.
        threads: torch threads per CPU replica.
        device: ``"auto"`` (a GPU per replica when the cluster has them), ``"cpu"``, ``"cuda"``.
        epochs, max_steps, checkpoint_every, keep_checkpoints, log_every, progress, tensorboard: as the local
            trainer's (:class:`asr.nnet.trainer.TrainerOptions`); steps are minibatches summed over replicas.
        local_sgd: see :class:`ReplicaOptions`.
        heldout_batch_frames: frames per forward pass in held-out evaluation.
    """

    n_replicas: int = 2
    n_shards: int = 2
    n_fetch: int = 1
    n_push: int = 1
    server: ServerOptimizer = field(default_factory=ServerOptimizer)
    ray_address: str | None = None
    replica_max_restarts: int = 3
    threads: int = 1
    device: str = "auto"
    epochs: int = 4
    max_steps: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    progress: str = "log"
    tensorboard: bool = True
    local_sgd: bool = True
    heldout_batch_frames: int = 8192

    def __post_init__(self) -> None:
        for key in ("n_replicas", "n_shards", "n_fetch", "n_push", "epochs", "log_every", "keep_checkpoints"):
            if getattr(self, key) < 1:
                raise ConfigError(f"trainer.{key} must be >= 1, not {getattr(self, key)}")
        if self.replica_max_restarts < -1:
            raise ConfigError(
                f"trainer.replica_max_restarts must be >= -1 (-1: unlimited), not {self.replica_max_restarts}"
            )

    def fingerprint(self) -> dict[str, Any]:
        """What changes the result or the data split (a resumed run must match it)."""
        return {
            "kind": "async",
            "n_replicas": self.n_replicas,
            "n_shards": self.n_shards,
            "n_fetch": self.n_fetch,
            "n_push": self.n_push,
            "server": asdict(self.server),
            "local_sgd": self.local_sgd,
        }


def downpour_options(tc: Any) -> DownpourOptions:
    """:class:`DownpourOptions` from a :class:`asr.nnet.config.TrainConfig` (``trainer`` and ``optim``)."""
    t, o = tc.trainer, tc.optim
    sgd = t.server_optimizer == "sgd"
    server = ServerOptimizer(
        kind=t.server_optimizer,
        lr=o.lr,
        decay_steps=o.decay_steps,
        momentum=o.momentum if sgd else 0.0,
        nesterov=o.nesterov if sgd else False,
        weight_decay=o.weight_decay,
    )
    return DownpourOptions(
        n_replicas=t.n_replicas,
        n_shards=t.n_shards,
        n_fetch=t.n_fetch,
        n_push=t.n_push,
        server=server,
        ray_address=t.ray_address or None,
        replica_max_restarts=t.replica_max_restarts,
        threads=t.num_threads or 1,
        device=t.device,
        epochs=t.epochs,
        max_steps=t.max_steps,
        checkpoint_every=t.checkpoint_every,
        keep_checkpoints=t.keep_checkpoints,
        log_every=t.log_every,
        progress=t.progress,
        tensorboard=t.tensorboard,
    )


def downpour_trainer_factory(
    tc: Any, data: TrainingData, archive: str | os.PathLike, alignment: str | os.PathLike, num_pdfs: int
) -> Callable[..., DownpourTrainer]:
    """A function with :class:`asr.nnet.trainer.Trainer`'s signature ``(model, optimizer, schedule, loader,
    heldout, options, out_dir, seed, fingerprint)`` that makes the :class:`DownpourTrainer` of ``tc`` (the
    optimizer, schedule and loader it is given are not used: the shards and replicas make their own)."""

    def make(model, optimizer, schedule, loader, heldout, options, out_dir=None, seed=0, fingerprint=None):
        return DownpourTrainer(
            model, data, downpour_options(tc), archive, alignment, num_pdfs, out_dir, seed, fingerprint,
            int(tc.data.ram_budget_gb * 2**30), tc.data.chunk_frames,
        )  # fmt: skip

    return make


@dataclass
class _Replica:
    index: int
    handle: Any
    position: dict[str, Any]
    pid: int = 0
    restarts: int = 0
    num_frames: int = 0
    in_flight: Any = None
    assigned: int = 0


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: a running session is reused; ``address`` joins a cluster; otherwise a local Ray with
    ``num_cpus`` (default: this process's cores), no dashboard, Ray's logs at WARNING.

    Returns:
        True when this call started (and the caller should shut down) the session.
    """
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if address:
            ray.init(address=address, **quiet)
            logger.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())
        else:
            cpus = num_cpus or len(os.sched_getaffinity(0))
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
            logger.info("started a local Ray with %d CPUs", cpus)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ConfigError(f"cannot start {where}: {err}") from None
    return True


class DownpourTrainer:
    """Downpour SGD: the driver of the parameter-server shards and replicas (module docstring).

    The interface follows :class:`asr.nnet.trainer.Trainer` (``resume``, ``fit``, ``close``, ``done``,
    ``step``, ``history``, ``state`` with ``train_seconds`` / ``frames_seen`` / ``epoch``), so
    ``asr.train`` writes the model dir the same way; after :meth:`fit` ``model`` holds the shards' parameters.

    Args:
        model: the network with its initial weights and input normalization (on the driver's device, used for
            held-out evaluation).
        data: the driver's :class:`~asr.nnet.frame_data.TrainingData` (its loader's frames say which
            utterances are training utterances; its held-out set is evaluated here).
        options: :class:`DownpourOptions`.
        archive: the training feature archive (replicas read it).
        alignment: its ``ali.h5``.
        num_pdfs: senones.
        out_dir: run directory (checkpoints, TensorBoard, ``train_log.json``); None keeps nothing (benchmarks).
        seed: data split and orders.
        fingerprint: the configuration a checkpoint must match (the options' fingerprint is added).
        ram_budget_bytes, chunk_frames: each replica's loader memory (as ``data.ram_budget_gb``).
        on_result: called as ``on_result(trainer, replica_index)`` after every finished replica task (tests).
    """

    def __init__(
        self,
        model: Mlp,
        data: TrainingData,
        options: DownpourOptions,
        archive: str | os.PathLike,
        alignment: str | os.PathLike,
        num_pdfs: int,
        out_dir: str | os.PathLike | None = None,
        seed: int = 0,
        fingerprint: dict | None = None,
        ram_budget_bytes: int = 4 << 30,
        chunk_frames: int = 20000,
        on_result: Callable[[DownpourTrainer, int], None] | None = None,
    ):
        self.model = model
        self.data = data
        self.options = options
        self.archive = str(archive)
        self.alignment = str(alignment)
        self.num_pdfs = int(num_pdfs)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.seed = int(seed)
        self.fingerprint = {**(fingerprint or {}), "downpour": options.fingerprint()}
        self.ram_budget_bytes = int(ram_budget_bytes)
        self.chunk_frames = int(chunk_frames)
        self.on_result = on_result
        sizes, decayed = model_layout(model)
        self.specs = partition_parameters(sizes, options.n_shards, decayed)
        self.parts = self._split_data()
        self.state: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "history": [],
            "frames_seen": 0,
            "train_seconds": 0.0,
            "startup_seconds": 0.0,  # Ray and actor start-up, all runs (not in train_seconds)
            "pushes": 0,
            "replica_restarts": 0,
            "staleness": np.zeros(STALENESS_BINS, dtype=np.int64),
            "epoch_stats": {},  # epoch -> [loss_sum, correct, frames, batches]
            "positions": [
                {"epoch": 0, "batch": 0, "rng": _rng_state(self.seed if r == 0 else self.seed + 7919 * r)}
                for r in range(options.n_replicas)
            ],
            "done": False,
        }
        self._shard_states: list[dict[str, Any]] | None = None
        self._writer = None
        self._shards: list[Any] = []
        self._replicas: list[_Replica] = []
        self._owns_ray = False
        self._window: dict[str, Any] = {}
        # a replica task: several per log window (steadier frames/s), what is redone after a replica dies
        self.task_batches = max(1, options.log_every // (2 * options.n_replicas))

    # -- data split -------------------------------------------------------------------------------------
    def _split_data(self) -> list[np.ndarray]:
        archive = FeatureArchive(self.archive)
        offsets = archive.offsets
        self.num_utts = len(archive)
        archive.close()
        frames = np.asarray(self.data.loader.frames, dtype=np.int64)
        frame_utt = np.searchsorted(offsets, frames, side="right") - 1
        utts, counts = np.unique(frame_utt, return_counts=True)
        return assign_utterances(utts, counts, self.options.n_replicas, self.seed)

    # -- state ------------------------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path | None:
        """``<out_dir>/checkpoints`` (None without an out_dir)."""
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    @property
    def step(self) -> int:
        """Minibatches trained, summed over replicas."""
        return int(self.state["step"])

    @property
    def done(self) -> bool:
        """Whether every replica finished all epochs."""
        return bool(self.state["done"])

    @property
    def history(self) -> list[dict]:
        """One dict per finished epoch."""
        return self.state["history"]

    def current_lr(self) -> float:
        """The schedule's rate after :attr:`step` minibatch gradients (the shards' current rate)."""
        return InverseTimeSchedule(self.options.server.lr, self.options.server.decay_steps).lr(self.step)

    def _checkpoint_state(self, snapshots: list[dict[str, Any]]) -> dict[str, Any]:
        flat = np.concatenate([s["params"] for s in snapshots])
        load_flat_parameters(self.model, flat)
        shards = {}
        for s in snapshots:
            shards[str(s["index"])] = {
                k: (torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v)
                for k, v in s.items()
                if k != "params"
            }
        st = self.state
        return {
            "step": st["step"],
            "epoch": st["epoch"],
            "batch_in_epoch": 0,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": {"kind": "downpour", "shards": shards},
            "replicas": {
                str(r): {"epoch": p["epoch"], "batch": p["batch"], "rng": torch.from_numpy(np.array(p["rng"]))}
                for r, p in enumerate(st["positions"])
            },
            "staleness": torch.from_numpy(st["staleness"].copy()),
            "history": json.dumps(st["history"]),
            "epoch_stats": json.dumps(st["epoch_stats"]),
            "frames_seen": st["frames_seen"],
            "train_seconds": st["train_seconds"],
            "startup_seconds": st["startup_seconds"],
            "pushes": st["pushes"],
            "replica_restarts": st["replica_restarts"],
            "done": st["done"],
            "config": json.dumps(self.fingerprint, sort_keys=True),
        }

    def _snapshot_shards(self) -> list[dict[str, Any]]:
        return ray.get([s.snapshot.remote() for s in self._shards])

    def save_checkpoint(self) -> Path | None:
        """Snapshot the shards (call only when no replica task runs) and write a checkpoint; None without out_dir."""
        snapshots = self._snapshot_shards()
        state = self._checkpoint_state(snapshots)
        if self.ckpt_dir is None:
            return None
        path = save_checkpoint(self.ckpt_dir, state, keep=self.options.keep_checkpoints)
        logger.debug("checkpoint %s", path)
        return path

    def resume(self) -> bool:
        """Load the newest usable checkpoint of ``out_dir``, if any (network, shard states, replica positions,
        counters); True when one was loaded.

        Raises:
            ConfigError: the checkpoint was made with another configuration (or by another trainer).
        """
        if self.ckpt_dir is None:
            return False
        found = load_latest_checkpoint(self.ckpt_dir)
        if found is None:
            return False
        ckpt, path = found
        old = json.loads(ckpt.get("config", "{}"))
        new = json.loads(json.dumps(self.fingerprint, sort_keys=True))
        if old != new or "replicas" not in ckpt:
            diffs = "; ".join(config_differences(old, new)) or "not an asynchronous (trainer=async) checkpoint"
            raise ConfigError(
                f"{path} was trained with another configuration ({diffs}); to start over in {self.out_dir} "
                "pass trainer.restart=true, or choose another run directory with name=<run name>"
            )
        self.model.load_state_dict(ckpt["model"])
        shards = ckpt["optimizer"]["shards"]
        self._shard_states = []
        for spec in self.specs:
            s = dict(shards[str(spec.index)])
            if s.get("buffer") is not None:
                s["buffer"] = s["buffer"].numpy()
            self._shard_states.append(s)
        st = self.state
        st["positions"] = [
            {"epoch": int(p["epoch"]), "batch": int(p["batch"]), "rng": p["rng"].numpy().copy()}
            for _, p in sorted(ckpt["replicas"].items(), key=lambda kv: int(kv[0]))
        ]
        st["staleness"] = ckpt["staleness"].numpy().astype(np.int64)
        st["history"] = json.loads(ckpt["history"])
        st["epoch_stats"] = json.loads(ckpt["epoch_stats"])
        for key in ("step", "epoch", "frames_seen", "pushes", "replica_restarts"):
            st[key] = int(ckpt[key])
        st["train_seconds"] = float(ckpt["train_seconds"])
        st["startup_seconds"] = float(ckpt.get("startup_seconds", 0.0))
        st["done"] = all(p["epoch"] >= self.options.epochs for p in st["positions"])
        logger.info(
            "resumed from %s: step %d (minibatches of all replicas), epoch %d, shard versions %s",
            path, self.step, st["epoch"] + 1, [int(s["version"]) for s in self._shard_states],
        )  # fmt: skip
        return True

    def metrics(self) -> dict[str, Any]:
        """Throughput and staleness for ``model.json`` / ``train_log.json``: ``{"trainer": "async", "n_replicas",
        "n_shards", "n_fetch", "n_push", "server_optimizer", "updates", "updates_per_second",
        "frames_per_second", "staleness", "replica_restarts", "startup_seconds"}`` (start-up: Ray and the actors,
        all runs together; not in the rates)."""
        st, o = self.state, self.options
        seconds = max(st["train_seconds"], 1e-9)
        return {
            "trainer": "async",
            "n_replicas": o.n_replicas,
            "n_shards": o.n_shards,
            "n_fetch": o.n_fetch,
            "n_push": o.n_push,
            "server_optimizer": o.server.kind,
            "updates": st["pushes"],
            "updates_per_second": st["pushes"] / seconds,
            "frames_per_second": st["frames_seen"] / seconds,
            "staleness": staleness_summary(st["staleness"]),
            "replica_restarts": st["replica_restarts"],
            "startup_seconds": st["startup_seconds"],
        }

    # -- reporting --------------------------------------------------------------------------------------
    def _open_writer(self) -> None:
        if self._writer is None and self.out_dir is not None and self.options.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step or None)

    def close(self) -> None:
        """Flush and close the TensorBoard writer; stop the actors and a Ray session this trainer started."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._stop_actors()

    def _scalar(self, tag: str, value: float) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, self.step)

    def _write_train_log(self) -> None:
        if self.out_dir is not None:
            with atomic_write(self.out_dir / "train_log.json") as f:
                json.dump({"epochs": self.history, "async": self.metrics()}, f, indent=1)

    def _log_window(self) -> None:
        w, st = self._window, self.state
        seconds = max(time.perf_counter() - w["start"], 1e-9)
        frames = max(w["frames"], 1)
        hist = st["staleness"] - w["staleness"]
        summary = staleness_summary(hist)
        loss, acc = w["loss_sum"] / frames, w["correct"] / frames
        fps, ups, lr = w["frames"] / seconds, w["pushes"] / seconds, self.current_lr()
        self._scalar("train/loss", loss)
        self._scalar("train/frame_accuracy", acc)
        self._scalar("train/learning_rate", lr)
        self._scalar("train/frames_per_second", fps)
        self._scalar("train/updates_per_second", ups)
        self._scalar("train/staleness_mean", summary["mean"])
        if self._writer is not None and hist.sum():
            values = np.arange(STALENESS_BINS, dtype=np.float64)
            nz = np.nonzero(hist)[0]
            self._writer.add_histogram_raw(
                "train/staleness", min=float(nz[0]), max=float(nz[-1]), num=int(hist.sum()),
                sum=float((hist * values).sum()), sum_squares=float((hist * values**2).sum()),
                bucket_limits=(values + 0.5).tolist(), bucket_counts=hist.tolist(), global_step=self.step,
            )  # fmt: skip
        if self.options.progress != "none":
            logger.info(
                "epoch %d step %d: loss %.4f, frame accuracy %.2f%%, lr %.4g, %.0f frames/s, %.1f updates/s, "
                "staleness mean %.2f max %d",
                st["epoch"] + 1, self.step, loss, 100 * acc, lr, fps, ups, summary["mean"], summary["max"],
            )  # fmt: skip
        self._reset_window()

    def _reset_window(self) -> None:
        self._window = {
            "start": time.perf_counter(),
            "frames": 0,
            "loss_sum": 0.0,
            "correct": 0,
            "pushes": 0,
            "staleness": self.state["staleness"].copy(),
        }

    # -- actors -----------------------------------------------------------------------------------------
    def _replica_resources(self) -> tuple[float, float, str]:
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1.0)), float(resources.get("GPU", 0.0))
        n = self.options.n_replicas
        device = self.options.device
        if device.startswith("cuda") and gpus <= 0:
            raise ConfigError(f"trainer.device={device} but the Ray cluster has no GPU ({resources})")
        if device != "cpu" and gpus > 0:
            return min(1.0, cpus / n), min(1.0, gpus / n), "cuda"
        return min(1.0, cpus / n), 0.0, "cpu"

    def _start_actors(self) -> None:
        start = time.perf_counter()
        self._owns_ray = start_ray(self.options.ray_address)
        shard_cls = ray.remote(ParameterShard)
        flat = flat_parameters(self.model)
        # named, so that a replica (re)starting looks them up: actor handles among the constructor arguments of
        # a restartable actor are kept in the object store, which Ray warns may break restarts
        names = [f"asr-downpour-{uuid.uuid4().hex[:12]}-shard-{spec.index}" for spec in self.specs]
        self._shards = [
            shard_cls.options(name=names[spec.index], num_cpus=0, max_restarts=0).remote(
                spec,
                flat[spec.start : spec.end],
                self.options.server,
                self._shard_states[spec.index] if self._shard_states else None,
            )  # fmt: skip
            for spec in self.specs
        ]
        num_cpus, num_gpus, device = self._replica_resources()
        replica_cls = ray.remote(concurrency_groups={"control": 1})(ReplicaWorker)
        buffers = {name: b.detach().cpu().numpy().copy() for name, b in self.model.named_buffers()}
        loader = self.data.loader
        local_sgd = self.options.local_sgd and self.options.server.kind == "sgd"
        self._replicas = []
        for r in range(self.options.n_replicas):
            data = ReplicaData(
                self.archive, self.alignment, self.num_pdfs, ReplicaData.pack(self.parts[r], self.num_utts),
                self.num_utts, loader.batch_size, loader.left, loader.right, self.ram_budget_bytes, self.chunk_frames,
            )  # fmt: skip
            ropts = ReplicaOptions(self.options.n_fetch, self.options.n_push, local_sgd, self.options.threads, device)
            handle = replica_cls.options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                max_restarts=self.options.replica_max_restarts,
                max_task_retries=self.options.replica_max_restarts,
            ).remote(r, names, self.specs, self.model.hparams(), buffers, data, ropts)
            self._replicas.append(_Replica(r, handle, self.state["positions"][r]))
        infos = self._get([rep.handle.info.remote() for rep in self._replicas])
        for rep, info in zip(self._replicas, infos):
            rep.pid, rep.num_frames = info["pid"], info["num_frames"]
        startup = time.perf_counter() - start
        self.state["startup_seconds"] += startup
        logger.info(
            "Downpour SGD: %d parameter shards (%s parameters each, %s), %d replicas on %s (frames %s, pids %s), "
            "n_fetch %d, n_push %d; started in %.1f s",
            len(self._shards), "/".join(str(s.size) for s in self.specs), self.options.server.kind,
            len(self._replicas), device, [rep.num_frames for rep in self._replicas],
            [rep.pid for rep in self._replicas], self.options.n_fetch, self.options.n_push, startup,
        )  # fmt: skip

    def _stop_actors(self) -> None:
        if not self._shards and not self._replicas and not self._owns_ray:
            return
        for handle in [rep.handle for rep in self._replicas] + self._shards:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # already gone
                pass
        self._replicas, self._shards = [], []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def _get(self, refs):
        try:
            return ray.get(refs)
        except AsrError:
            raise
        except RayActorError as err:
            raise ReplicaFailedError(
                f"a Downpour actor died and could not be restarted (trainer.replica_max_restarts="
                f"{self.options.replica_max_restarts}): {str(err).splitlines()[0]}"
            ) from None
        except RayError as err:
            raise ReplicaFailedError(f"Ray failed: {str(err).splitlines()[0]}") from None

    def replica_pids(self) -> list[int]:
        """Process ids of the replicas (as last reported)."""
        return [rep.pid for rep in self._replicas]

    def replica_handles(self) -> list[Any]:
        """The replicas' Ray actor handles (``pid.remote()`` answers even while the replica trains)."""
        return [rep.handle for rep in self._replicas]

    # -- training ---------------------------------------------------------------------------------------
    def _stop_requested(self) -> bool:
        return self.options.max_steps is not None and self.step >= self.options.max_steps

    def fit(self) -> list[dict]:
        """Train until every replica finished all epochs, or ``max_steps``; returns the history. Leaves the
        shards' final parameters in ``model``."""
        if self.done or self._stop_requested():
            return self.history
        self._open_writer()
        self._start_actors()
        try:
            self._loop()
            snapshots = self._snapshot_shards()
            load_flat_parameters(self.model, np.concatenate([s["params"] for s in snapshots]))
        finally:
            self._stop_actors()
            if self._writer is not None:
                self._writer.flush()
        return self.history

    def _assign(self, rep: _Replica, budget: int) -> int:
        size = min(self.task_batches, budget)
        if size <= 0 or rep.position["epoch"] >= self.options.epochs:
            return 0
        rep.in_flight = rep.handle.train.remote(rep.position, size)
        rep.assigned = size
        return size

    def _loop(self) -> None:
        o, st = self.options, self.state
        self._reset_window()
        next_log = (self.step // o.log_every + 1) * o.log_every
        next_ckpt = (self.step // o.checkpoint_every + 1) * o.checkpoint_every if o.checkpoint_every else math.inf
        assigned = 0  # minibatches handed out and not yet reported
        while True:
            budget = (o.max_steps - self.step - assigned) if o.max_steps is not None else math.inf
            draining = False
            for rep in self._replicas:
                if rep.in_flight is None:
                    n = self._assign(rep, int(min(budget, 2**31)))
                    assigned += n
                    budget -= n
            t0 = time.perf_counter()
            while any(rep.in_flight is not None for rep in self._replicas):
                refs = {rep.in_flight: rep for rep in self._replicas if rep.in_flight is not None}
                ready, _ = ray.wait(list(refs), num_returns=1)
                rep = refs[ready[0]]
                rep.in_flight = None
                result = self._get(ready[0])
                assigned -= rep.assigned
                self._account(rep, result)
                if self.on_result is not None:
                    self.on_result(self, rep.index)
                if self.step >= next_log:
                    self._log_window()
                    next_log = (self.step // o.log_every + 1) * o.log_every
                epoch_done = min(p["epoch"] for p in st["positions"]) > st["epoch"]
                if self.step >= next_ckpt or epoch_done or self._stop_requested():
                    draining = True
                if not draining:
                    budget = (o.max_steps - self.step - assigned) if o.max_steps is not None else math.inf
                    n = self._assign(rep, int(min(budget, 2**31)))
                    assigned += n
            st["train_seconds"] += time.perf_counter() - t0
            assigned = 0
            ended = False
            while min(p["epoch"] for p in st["positions"]) > st["epoch"]:
                self._end_epoch()  # held-out evaluation, checkpoint, train_log.json; done after the last epoch
                ended = True
            if not ended and (self.step >= next_ckpt or self._stop_requested()):
                self.save_checkpoint()
            if o.checkpoint_every:
                next_ckpt = (self.step // o.checkpoint_every + 1) * o.checkpoint_every
            if self.done:
                return
            if self._stop_requested():
                logger.info("stopping at step %d (max_steps); a later run continues from here", self.step)
                return

    def _account(self, rep: _Replica, result: dict[str, Any]) -> None:
        st, w = self.state, self._window
        if result["pid"] != rep.pid:
            rep.restarts += 1
            st["replica_restarts"] += 1
            logger.warning(
                "replica %d was restarted by Ray (pid %d -> %d); it re-fetched the parameters and went on",
                rep.index, rep.pid, result["pid"],
            )  # fmt: skip
            rep.pid = result["pid"]
        rep.position = result["position"]
        st["positions"][rep.index] = rep.position
        st["step"] += result["batches"]
        st["frames_seen"] += result["frames"]
        st["pushes"] += result["pushes"]
        st["staleness"] += np.asarray(result["staleness"], dtype=np.int64)
        stats = st["epoch_stats"].setdefault(str(result["epoch"]), [0.0, 0, 0, 0])
        stats[0] += result["loss_sum"]
        stats[1] += result["correct"]
        stats[2] += result["frames"]
        stats[3] += result["batches"]
        w["frames"] += result["frames"]
        w["loss_sum"] += result["loss_sum"]
        w["correct"] += result["correct"]
        w["pushes"] += result["pushes"]

    def _end_epoch(self) -> None:
        st = self.state
        epoch = st["epoch"] + 1
        loss_sum, correct, frames, batches = st["epoch_stats"].pop(str(epoch - 1), [0.0, 0, 0, 0])
        snapshots = self._snapshot_shards()
        load_flat_parameters(self.model, np.concatenate([s["params"] for s in snapshots]))
        seconds = max(st["train_seconds"], 1e-9)
        entry: dict[str, Any] = {
            "epoch": epoch,
            "step": self.step,
            "lr": self.current_lr(),
            "train_loss": loss_sum / frames if frames else float("nan"),
            "train_frame_accuracy": correct / frames if frames else float("nan"),
            "train_minibatches": batches,
        }
        heldout = self.data.heldout
        if heldout is not None and heldout.num_frames:
            start = time.perf_counter()
            loss, acc = evaluate(
                self.model, heldout, self.data.loader.left, self.data.loader.right, self.options.heldout_batch_frames
            )
            entry.update(heldout_loss=loss, heldout_frame_accuracy=acc, heldout_seconds=time.perf_counter() - start)
            self._scalar("heldout/loss", loss)
            self._scalar("heldout/frame_accuracy", acc)
        entry["train_seconds"] = st["train_seconds"]
        entry["frames_per_second"] = st["frames_seen"] / seconds
        entry["updates_per_second"] = st["pushes"] / seconds
        entry["staleness"] = staleness_summary(st["staleness"])
        logger.info(
            "epoch %d done (step %d): train loss %.4f, frame accuracy %.2f%%; held-out loss %s, frame accuracy %s; "
            "%.0f frames/s, %.1f updates/s, staleness mean %.2f",
            epoch, self.step, entry["train_loss"], 100 * entry["train_frame_accuracy"],
            f"{entry['heldout_loss']:.4f}" if "heldout_loss" in entry else "-",
            f"{100 * entry['heldout_frame_accuracy']:.2f}%" if "heldout_loss" in entry else "-",
            entry["frames_per_second"], entry["updates_per_second"], entry["staleness"]["mean"],
        )  # fmt: skip
        st["history"].append(entry)
        st["epoch"] = epoch
        if epoch >= self.options.epochs:
            st["done"] = True
        self.save_checkpoint()
        self._write_train_log()
