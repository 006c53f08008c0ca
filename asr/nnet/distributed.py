"""Synchronous data-parallel DNN training with PyTorch DDP (``trainer=ddp``), one process per device.

Launch with ``torchrun``; every process ("rank") runs the same ``asr.train`` command::

    # one machine: N processes (N GPUs; on CPU, N groups of cores)
    torchrun --nproc_per_node=N -m asr.train trainer=ddp depth=8

    # M machines with N processes each, machine K of 0..M-1 (HOST0: machine 0's address, reachable
    # from the others; any free port)
    torchrun --nnodes=M --node_rank=K --nproc_per_node=N --master_addr=HOST0 --master_port=29500 \\
        -m asr.train trainer=ddp depth=8

    # or the same command on every machine, ranks assigned at rendezvous (JOB: any id shared by the run)
    torchrun --nnodes=M --nproc_per_node=N --rdzv_backend=c10d --rdzv_endpoint=HOST0:29400 --rdzv_id=JOB \\
        -m asr.train trainer=ddp depth=8

Every machine needs the code, the training features and the GMM dir at the same paths (a shared file system
or copies). Checkpoints and results are written by rank 0 only and read back by rank 0 only: with
``--node_rank`` rank 0 is always on machine 0, so ``exp/`` need not be shared; with the c10d rendezvous rank
0 may land on any machine, so keep ``exp/`` on a shared file system.

What the processes agree on:

- **Global batch.** ``optim.batch_size`` is the global batch. Every rank draws the same shuffled frame order
  from the same seeded generator and trains on its own contiguous ``1 / world_size`` slice of each global
  batch (``batch_size / world_size`` frames; ``batch_size`` must be divisible by the number of processes,
  else :class:`~asr.errors.ConfigError`), so over an epoch the ranks read disjoint shards that together
  cover every training frame once. DDP averages the ranks' gradients, which makes each update the gradient
  of the global batch's mean loss (an epoch's last, smaller batch is split as evenly as possible and
  weighted by frames, so it is exact too). Updates are counted globally, so the learning-rate schedule
  ``eta_t``, ``max_steps``, ``checkpoint_every`` and ``log_every`` mean what they mean in one process:
  training is equivalent to single-process training with the same batch, up to the order of float
  reductions. Dropout masks differ from a single process's (each rank has its own random stream).
- **Writes.** Only rank 0 writes checkpoints, log lines, TensorBoard scalars, ``train_log.json`` and the
  model dir; the other ranks log warnings and errors only. The logged loss, frame accuracy and frames/s
  are global (summed over the ranks when logged).
- **Resume.** Rank 0 reads the newest checkpoint and broadcasts it; every rank continues from it (so the
  other machines need not see rank 0's files), with their own dropout random states when the checkpoint
  was made by as many processes. A run may be resumed with another number of processes or with
  ``trainer=local``: the result does not depend on it beyond float reduction order. On Linux a rank dies
  with the torchrun that started it (:func:`die_with_launcher`), so a ``kill -9`` of torchrun leaves no
  orphan rank training next to the run started again.
- **Held-out evaluation** is sharded: each rank scores every ``world_size``-th held-out frame, and the sums
  are all-reduced, so all ranks see the same held-out loss (and take the same lr-halving decisions).
- **Devices.** On CUDA each rank uses ``cuda:LOCAL_RANK`` and the NCCL backend; on CPU, gloo, with
  ``trainer.num_threads`` torch threads per rank (0: the machine's cores divided by the processes on it).
  ``trainer.backend`` forces ``gloo`` or ``nccl``.

Each rank holds the whole training set (in RAM or on its GPU, as a single process would; with the chunked
loader each rank reads every buffer and keeps its slice). Without ``torchrun``, ``trainer=ddp`` runs as one
process of a process group of one.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from asr.errors import ConfigError
from asr.nnet.checkpoint import load_latest_checkpoint
from asr.nnet.config import TrainConfig
from asr.nnet.frame_data import ChunkedFrameLoader, Epoch, HeldoutSet, InMemoryFrameLoader
from asr.nnet.launcher import die_with_launcher
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions, evaluate

logger = logging.getLogger(__name__)

_OWNED_GROUP = False  # whether this module initialized the default process group (and so destroys it)


@dataclass(frozen=True)
class LaunchInfo:
    """Where this process stands among the processes torchrun started.

    Attributes:
        rank: global rank (0 .. world_size - 1).
        world_size: processes in all.
        local_rank: rank among the processes of this machine.
        local_world_size: processes on this machine.
        torchrun: whether the torchrun environment variables were present.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    torchrun: bool = False


def launch_info(environ: Mapping[str, str] | None = None) -> LaunchInfo:
    """This process's :class:`LaunchInfo` from torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
    ``LOCAL_WORLD_SIZE`` (a single process when ``RANK`` / ``WORLD_SIZE`` are absent).

    Raises:
        ConfigError: a variable is not an integer or out of range.
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return LaunchInfo()
    values = {}
    for name, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", None)):
        text = env.get(name, default if default is not None else env.get("WORLD_SIZE"))
        try:
            values[name] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name}={text!r} must be an integer (set by torchrun)") from None
    info = LaunchInfo(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"], True)
    if not (0 <= info.rank < info.world_size and 0 <= info.local_rank < info.local_world_size <= info.world_size):
        raise ConfigError(f"inconsistent torchrun environment: {info}")
    return info


def check_global_batch(batch_size: int, world_size: int) -> int:
    """Frames per rank of a global batch of ``batch_size`` split over ``world_size`` processes.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of ``world_size``.
    """
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        raise ConfigError(
            f"config value optim.batch_size={batch_size} is invalid for trainer=ddp with {world_size} processes: "
            f"it is the global batch, split evenly over the processes, so it must be a multiple of {world_size} "
            f"(e.g. {lower or world_size} or {lower + world_size})"
        )
    return batch_size // world_size


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of the rank with ``local_rank`` for ``trainer.device`` (auto | cpu | cuda).

    Returns:
        ``cuda:<local_rank>`` for ``cuda`` (and for ``auto`` when CUDA is available), else ``cpu``.

    Raises:
        ConfigError: ``cuda:N`` (each rank picks its GPU), no CUDA, or fewer GPUs than local ranks.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda":
        raise ConfigError(
            f"config value trainer.device={device!r} is invalid for trainer=ddp: use auto, cpu or cuda "
            "(each process takes the GPU cuda:LOCAL_RANK; restrict the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    if not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but CUDA is not available")
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"process with LOCAL_RANK {local_rank} has no GPU: {torch.cuda.device_count()} visible; "
            "start at most as many processes per machine as it has GPUs (--nproc_per_node)"
        )
    return torch.device("cuda", local_rank)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``trainer.backend`` for ranks on ``device``: auto -> ``nccl`` on CUDA, ``gloo`` on CPU.

    Raises:
        ConfigError: ``nccl`` for CPU ranks, or an unknown backend.
    """
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"config value trainer.backend={backend!r} is invalid: must be auto, nccl or gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("trainer.backend=nccl needs CUDA devices; use gloo (or auto) on CPU")
    return backend


def threads_per_rank(num_threads: int, local_world_size: int, cores: int | None = None) -> int:
    """Torch threads of one rank: ``num_threads`` when > 0, else the machine's (usable) cores divided by
    the processes on it (at least 1)."""
    if num_threads > 0:
        return num_threads
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, cores // max(local_world_size, 1))


def rank_seed(seed: int, rank: int, step: int) -> int:
    """A seed for rank ``rank``'s own random stream (dropout) from the run's seed and the update count."""
    digest = hashlib.sha256(f"asr-ddp:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _quiet_logging() -> None:
    """On ranks other than 0: warnings and errors only, on the console (no log file)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)


def _destroy_owned_group() -> None:
    global _OWNED_GROUP
    if _OWNED_GROUP and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED_GROUP = False


atexit.register(_destroy_owned_group)  # a run that failed before its trainer closed the group

# The model's buffers (input normalization) are the same on every rank and never change: no sync per forward
# (the keyword changed name in torch 2.14).
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


@dataclass
class DdpContext:
    """This process's place in a DDP run (made by :func:`init_ddp`).

    Attributes:
        rank, world_size, local_rank, local_world_size: as torchrun numbers the processes.
        device: this rank's device.
        backend: ``"nccl"`` or ``"gloo"``.
        timeout: how long collectives wait for the other ranks.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str
    timeout: timedelta = timedelta(minutes=30)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank got here."""
        if self.world_size > 1:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; ``obj`` of other ranks is ignored)."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def make_trainer(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: InverseTimeSchedule,
        loader: InMemoryFrameLoader | ChunkedFrameLoader,
        heldout: HeldoutSet | None,
        options: TrainerOptions,
        out_dir: str | os.PathLike | None = None,
        seed: int = 0,
        fingerprint: dict | None = None,
    ) -> DistributedTrainer:
        """A :class:`DistributedTrainer` of this rank; the arguments are :class:`~asr.nnet.trainer.Trainer`'s."""
        return DistributedTrainer(
            self, model, optimizer, schedule, loader, heldout, options, out_dir, seed, fingerprint
        )

    def close(self) -> None:
        """End the process group (when :func:`init_ddp` started it)."""
        _destroy_owned_group()


def init_ddp(tc: TrainConfig, environ: Mapping[str, str] | None = None) -> DdpContext:
    """:func:`start_ddp` with the settings of a training configuration (``trainer=ddp``): ``optim.batch_size``,
    ``trainer.device``, ``trainer.backend``, ``trainer.num_threads``, ``trainer.timeout_minutes``."""
    t = tc.trainer
    return start_ddp(tc.optim.batch_size, t.device, t.backend, t.num_threads, t.timeout_minutes, environ)


def start_ddp(
    batch_size: int,
    device: str = "auto",
    backend: str = "auto",
    num_threads: int = 0,
    timeout_minutes: float = 30.0,
    environ: Mapping[str, str] | None = None,
) -> DdpContext:
    """Join the DDP run this process was started for: check the global batch against the number of
    processes, pick this rank's device (and make it current), set its torch threads, start the process group
    (torchrun's ``env://`` rendezvous; a group of one without torchrun), quiet the logs of ranks > 0.

    Args:
        batch_size: the global batch (frames per update, all ranks together).
        device: ``auto``, ``cpu`` or ``cuda`` (:func:`rank_device`).
        backend: ``auto``, ``nccl`` or ``gloo`` (:func:`resolve_backend`).
        num_threads: torch threads of this rank (0: :func:`threads_per_rank`).
        timeout_minutes: how long collectives wait for the other ranks.
        environ: the environment to read torchrun's variables from (default ``os.environ``).

    Returns:
        The :class:`DdpContext`.

    Raises:
        ConfigError: ``batch_size`` not divisible by the processes, a bad device or backend, a bad torchrun
            environment, or a process group of another size already running in this process.
    """
    global _OWNED_GROUP
    info = launch_info(environ)
    check_global_batch(batch_size, info.world_size)
    dev = rank_device(device, info.local_rank)
    backend = resolve_backend(backend, dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    torch.set_num_threads(threads_per_rank(num_threads, info.local_world_size))
    timeout = timedelta(minutes=timeout_minutes)
    if dist.is_initialized():
        if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
            raise ConfigError(
                f"a process group of {dist.get_world_size()} processes is already running in this process, "
                f"not the {info.world_size} torchrun announced"
            )
    elif info.torchrun:
        die_with_launcher()  # no orphan ranks when torchrun is killed
        dist.init_process_group(backend, timeout=timeout)
        _OWNED_GROUP = True
    else:
        logger.info("trainer=ddp without torchrun: one process (torchrun --nproc_per_node=N ... starts N)")
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
        _OWNED_GROUP = True
    ctx = DdpContext(info.rank, info.world_size, info.local_rank, info.local_world_size, dev, backend, timeout)
    if not ctx.is_main:
        _quiet_logging()
    logger.info(
        "DDP: %d processes (%d on this machine), backend %s, rank 0 on %s with %d threads; global batch %d = "
        "%d x %d frames",
        ctx.world_size, ctx.local_world_size, backend, dev, torch.get_num_threads(), batch_size,
        ctx.world_size, batch_size // ctx.world_size,
    )  # fmt: skip
    return ctx


class DistributedTrainer(Trainer):
    """:class:`~asr.nnet.trainer.Trainer` for one DDP rank (see the module docstring for the semantics).

    The loader's ``shard`` is set to this rank's; the model is wrapped in :class:`DistributedDataParallel`
    for the updates (checkpoints hold the plain model's weights, as a single process's do). On ranks > 0
    ``out_dir`` is dropped (no files) and progress output is off. Every rank must make the same calls
    (:meth:`resume`, :meth:`fit`, :meth:`save_checkpoint`) in the same order: they synchronize.

    Args:
        ctx: this rank's :class:`DdpContext`.
        model, optimizer, schedule, loader, heldout, options, out_dir, seed, fingerprint: as for
            :class:`~asr.nnet.trainer.Trainer` (the same on every rank; ``loader.batch_size`` is the global batch).

    Raises:
        ConfigError: the loader's batch size is not divisible by the number of processes.
    """

    def __init__(
        self,
        ctx: DdpContext,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: InverseTimeSchedule,
        loader: InMemoryFrameLoader | ChunkedFrameLoader,
        heldout: HeldoutSet | None,
        options: TrainerOptions,
        out_dir: str | os.PathLike | None = None,
        seed: int = 0,
        fingerprint: dict | None = None,
    ):
        check_global_batch(loader.batch_size, ctx.world_size)
        if not ctx.is_main:
            options = dataclasses.replace(options, progress="none", tensorboard=False)
            out_dir = None
        super().__init__(model, optimizer, schedule, loader, heldout, options, out_dir, seed, fingerprint)
        self.ctx = ctx
        self.seed = seed
        loader.shard = (ctx.rank, ctx.world_size)
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        self.ddp_model = DistributedDataParallel(
            model, device_ids=device_ids, gradient_as_bucket_view=True, **_NO_BUFFER_SYNC
        )
        self._rank_rng_states: list | None = None
        if ctx.world_size > 1:  # own dropout masks per rank (world 1 keeps the single-process stream)
            torch.manual_seed(rank_seed(seed, ctx.rank, 0))

    # -- updates --------------------------------------------------------------------------------------
    def _update(
        self, x: torch.Tensor, y: torch.Tensor, epoch: Epoch, loss_sum: torch.Tensor, correct: torch.Tensor
    ) -> int:
        """One synchronous update: this rank's slice of the global batch through the DDP model; returns the
        global batch's frames."""
        n = epoch.global_batch_frames(self.state["batch_in_epoch"])
        logits = self.ddp_model(x)
        if y.shape[0] * self.ctx.world_size == n:  # the usual even split: DDP's mean of means is the mean
            loss = F.cross_entropy(logits, y)
            local_sum = loss.detach() * y.shape[0]
        else:  # an uneven last batch (a rank may even have no frames): weigh by frames
            summed = F.cross_entropy(logits, y, reduction="sum")
            loss = summed * (self.ctx.world_size / n)
            local_sum = summed.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            loss_sum += local_sum
            correct += (logits.argmax(dim=1) == y).sum()
        return n

    def _fold(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        """Sum the ranks' accumulators (one all-reduce), then fold them into the (global) epoch totals."""
        if self.ctx.world_size > 1:
            both = torch.stack([loss_sum, correct.to(loss_sum.dtype)])
            dist.all_reduce(both)
            loss_sum.copy_(both[0])
            correct.copy_(both[1].round().to(correct.dtype))
        super()._fold(loss_sum, correct)

    def _evaluate_heldout(self) -> tuple[float, float]:
        """Held-out loss and frame accuracy, every rank scoring every ``world_size``-th frame (all-reduced)."""
        if self.ctx.world_size == 1:
            return super()._evaluate_heldout()
        h = self.heldout
        part = HeldoutSet(h.feats, h.offsets, h.targets, h.frames[self.ctx.rank :: self.ctx.world_size], h.source)
        loss, acc = evaluate(self.model, part, self.loader.left, self.loader.right, self.options.heldout_batch_frames)
        n = part.num_frames
        sums = torch.tensor([loss * n, acc * n, n], dtype=torch.float64, device=h.feats.device)
        dist.all_reduce(sums)
        total = max(float(sums[2]), 1.0)
        return float(sums[0]) / total, float(sums[1]) / total

    # -- checkpoints ----------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def save_checkpoint(self) -> Path | None:
        """Gather every rank's random state, then rank 0 writes the checkpoint (the other ranks return None)."""
        if self.ctx.world_size > 1:
            states: list = [None] * self.ctx.world_size
            dist.all_gather_object(states, self._rng_state())
            self._rank_rng_states = [{k: v.cpu() for k, v in s.items()} for s in states]
        return super().save_checkpoint()

    def _checkpoint_state(self) -> dict[str, Any]:
        state = super()._checkpoint_state()
        if self._rank_rng_states is not None:
            state["rank_rng_states"] = self._rank_rng_states
        return state

    def resume(self) -> bool:
        """Continue from rank 0's newest checkpoint, broadcast to every rank; True when one was loaded.

        Raises:
            ConfigError: the checkpoint was made with another configuration (on every rank alike).
        """
        found = None
        if self.ctx.is_main and self.ckpt_dir is not None:
            try:
                found = load_latest_checkpoint(self.ckpt_dir)
            except Exception as err:  # passed to the other ranks, then raised on all of them
                found = err
        found = self.ctx.broadcast_object(found)
        if isinstance(found, Exception):
            raise found
        if found is None:
            return False
        ckpt, path = found
        self.apply_checkpoint(ckpt, path)
        saved = ckpt.get("rank_rng_states")
        if saved is not None and len(saved) == self.ctx.world_size:
            torch.set_rng_state(saved[self.ctx.rank]["cpu"])
            if "cuda" in saved[self.ctx.rank] and self.ctx.device.type == "cuda":
                torch.cuda.set_rng_state(saved[self.ctx.rank]["cuda"], self.ctx.device)
        elif self.ctx.world_size > 1:
            torch.manual_seed(rank_seed(self.seed, self.ctx.rank, self.step))
        return True
