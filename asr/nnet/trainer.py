"""The DNN training loop: minibatch updates, held-out evaluation, checkpoints, resume, logs.

:class:`Trainer` runs epochs of :mod:`asr.nnet.frame_data` batches through the model with cross-entropy
loss, setting the learning rate of every update from the schedule (times ``lr_scale``, which optional
"newbob" halving lowers when the held-out loss stops improving; training stops early once it falls
below ``min_lr_scale``). It evaluates held-out frame accuracy and cross-entropy at every epoch end.

Checkpoints (:mod:`asr.nnet.checkpoint`) go to ``<out_dir>/checkpoints`` every ``checkpoint_every``
updates, at every epoch end and when ``max_steps`` stops the run; they hold everything the loop's
future depends on (weights, optimizer state, counters, the data-order generator's state at the start
of the current epoch, the global RNG state used by dropout), so :meth:`Trainer.resume` followed by
:meth:`Trainer.fit` reproduces the uninterrupted run exactly on CPU.

The hot loop has no device synchronization: losses and correct counts accumulate in tensors and are
read (one ``.item()``) every ``log_every`` updates, when the log line / progress bar / TensorBoard
scalars (loss, frame accuracy, learning rate, frames/s) are written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from asr.atomic import atomic_write
from asr.errors import ConfigError
from asr.features.context_window import splice_at
from asr.nnet.checkpoint import load_latest_checkpoint, save_checkpoint
from asr.nnet.frame_data import ChunkedFrameLoader, Epoch, HeldoutSet, InMemoryFrameLoader
from asr.nnet.schedule import InverseTimeSchedule, set_learning_rate

logger = logging.getLogger(__name__)

PROGRESS_MODES = ("auto", "bar", "log", "none")


@dataclass
class TrainerOptions:
    """How long to train and how to report.

    Attributes:
        epochs: passes over the training frames.
        max_steps: stop after this many updates in all (None: no limit); a later run with a larger
            limit continues from the checkpoint written at the stop.
        checkpoint_every: write a checkpoint every this many updates (0: only at epoch ends and stops).
        keep_checkpoints: newest checkpoints kept on disk (>= 2 so a damaged newest one has a fallback).
        log_every: updates between log lines / TensorBoard scalars.
        progress: ``"auto"`` (a tqdm bar on a terminal, log lines otherwise), ``"bar"``, ``"log"``, ``"none"``.
        tensorboard: write TensorBoard scalars under ``<out_dir>/tensorboard``.
        heldout_batch_frames: frames per forward pass in held-out evaluation.
        lr_halving: halve ``lr_scale`` after an epoch whose held-out loss improved by less than
            ``halving_threshold`` (relative) over the best so far.
        halving_threshold: see ``lr_halving``.
        min_lr_scale: with ``lr_halving``, stop early when ``lr_scale`` falls below this.
    """

    epochs: int = 4
    max_steps: int | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    progress: str = "auto"
    tensorboard: bool = True
    heldout_batch_frames: int = 8192
    lr_halving: bool = False
    halving_threshold: float = 0.002
    min_lr_scale: float = 1.0 / 64

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, not {self.epochs}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0 or None, not {self.max_steps}")
        if self.checkpoint_every < 0 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("checkpoint_every must be >= 0, log_every and keep_checkpoints >= 1")
        if self.progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, not {self.progress!r}")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, heldout: HeldoutSet, left: int, right: int, batch_frames: int = 8192
) -> tuple[float, float]:
    """Mean cross-entropy (nats/frame) and frame accuracy of ``model`` on ``heldout``."""
    was_training = model.training
    model.eval()
    device = heldout.feats.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, heldout.num_frames, batch_frames):
        index = heldout.frames[start : start + batch_frames]
        logits = model(splice_at(heldout.feats, heldout.offsets, index, left, right, check=False))
        targets = heldout.targets[index]
        loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        correct += (logits.argmax(dim=1) == targets).sum()
    model.train(was_training)
    n = max(heldout.num_frames, 1)
    return float(loss_sum) / n, float(correct) / n


def _same_path(a: Any, b: Any) -> bool:
    return (
        isinstance(a, str) and isinstance(b, str) and os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    )


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf that differs between two nested dicts (two strings that name the
    same existing path, e.g. ``exp/an4/tri1`` and its absolute form, are the same)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b and not _same_path(a, b):
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class Trainer:
    """Train ``model`` on a loader's batches (see the module docstring).

    Args:
        model: the network (on ``device``).
        optimizer: its optimizer.
        schedule: the learning-rate schedule.
        loader: training batches.
        heldout: held-out frames (on ``device``) or None.
        options: :class:`TrainerOptions`.
        out_dir: where checkpoints, ``train_log.json`` and TensorBoard files go; None keeps everything in
            memory (benchmarks).
        seed: seeds the data order.
        fingerprint: JSON-friendly description of everything that determines the result; a checkpoint
            made with another one is refused on resume.
    """

    def __init__(
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
    ):
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.loader = loader
        self.heldout = heldout
        self.options = options
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.fingerprint = fingerprint or {}
        self.generator = torch.Generator().manual_seed(seed)
        self.state: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "batch_in_epoch": 0,
            "epoch_rng_state": self.generator.get_state(),
            "lr_scale": 1.0,
            "best_heldout_loss": math.inf,
            "history": [],
            "frames_seen": 0,
            "train_seconds": 0.0,
            "epoch_loss_sum": 0.0,
            "epoch_correct": 0,
            "epoch_frames": 0,
            "done": False,
            "stopped_early": False,
        }
        self._writer = None

    # -- state ----------------------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path | None:
        """``<out_dir>/checkpoints`` (None without an out_dir)."""
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    @property
    def step(self) -> int:
        """Updates done."""
        return int(self.state["step"])

    @property
    def done(self) -> bool:
        """Whether all epochs ran (or training stopped early)."""
        return bool(self.state["done"])

    @property
    def history(self) -> list[dict]:
        """One dict per finished epoch (losses, accuracies, learning rate, frames/s, seconds)."""
        return self.state["history"]

    def _checkpoint_state(self) -> dict[str, Any]:
        state = dict(self.state)
        state["history"] = json.dumps(state["history"])
        state["best_heldout_loss"] = float(state["best_heldout_loss"])
        state["model"] = self.model.state_dict()
        state["optimizer"] = self.optimizer.state_dict()
        state["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng_state"] = torch.cuda.get_rng_state()
        state["config"] = json.dumps(self.fingerprint, sort_keys=True)
        return state

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current state (no-op without an out_dir)."""
        if self.ckpt_dir is None:
            return None
        path = save_checkpoint(self.ckpt_dir, self._checkpoint_state(), keep=self.options.keep_checkpoints)
        logger.debug("checkpoint %s", path)
        return path

    def resume(self) -> bool:
        """Load the newest usable checkpoint of ``out_dir``, if any; True when one was loaded.

        Raises:
            ConfigError: the checkpoint was made with another configuration fingerprint.
        """
        if self.ckpt_dir is None:
            return False
        found = load_latest_checkpoint(self.ckpt_dir)
        if found is None:
            return False
        self.apply_checkpoint(*found)
        return True

    def apply_checkpoint(self, ckpt: dict[str, Any], path: str | os.PathLike) -> None:
        """Continue from a loaded checkpoint (``path`` names it in messages): weights, optimizer, counters, RNGs.

        Raises:
            ConfigError: the checkpoint was made with another configuration fingerprint.
        """
        old = json.loads(ckpt.get("config", "{}"))
        new = json.loads(json.dumps(self.fingerprint, sort_keys=True))
        if old != new:
            diffs = "; ".join(config_differences(old, new))
            raise ConfigError(
                f"{path} was trained with another configuration ({diffs}); to start over in {self.out_dir} "
                "pass trainer.restart=true, or choose another run directory with name=<run name>"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng_state"])
        if "cuda_rng_state" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state(ckpt["cuda_rng_state"])
        for key in list(self.state):
            if key in ckpt:
                self.state[key] = ckpt[key]
        self.state["history"] = json.loads(ckpt["history"])
        for key in ("step", "epoch", "batch_in_epoch", "frames_seen", "epoch_correct", "epoch_frames"):
            self.state[key] = int(self.state[key])
        for key in ("lr_scale", "best_heldout_loss", "train_seconds", "epoch_loss_sum"):
            self.state[key] = float(self.state[key])
        self.state["stopped_early"] = bool(self.state["stopped_early"])
        # more epochs than the checkpoint's run had asked for: not done any more
        self.state["done"] = self.state["epoch"] >= self.options.epochs or self.state["stopped_early"]
        logger.info(
            "resumed from %s: step %d, epoch %d, batch %d of the epoch",
            path, self.step, self.state["epoch"] + 1, self.state["batch_in_epoch"],
        )  # fmt: skip

    # -- reporting ------------------------------------------------------------------------------------
    def _scalar(self, tag: str, value: float) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, self.step)

    def _open_writer(self) -> None:
        if self._writer is None and self.out_dir is not None and self.options.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step or None)

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _use_bar(self) -> bool:
        mode = self.options.progress
        return mode == "bar" or (mode == "auto" and sys.stderr.isatty())

    def _write_train_log(self) -> None:
        if self.out_dir is not None:
            with atomic_write(self.out_dir / "train_log.json") as f:
                json.dump({"epochs": self.history}, f, indent=1)

    # -- training -------------------------------------------------------------------------------------
    def current_lr(self) -> float:
        """The learning rate of the next update."""
        return self.schedule.lr(self.step) * float(self.state["lr_scale"])

    def _stop_requested(self) -> bool:
        return self.options.max_steps is not None and self.step >= self.options.max_steps

    def fit(self) -> list[dict]:
        """Train until all epochs are done, training stops early, or ``max_steps``; returns the history."""
        self._open_writer()
        try:
            while not self.done and not self._stop_requested():
                finished = self._run_epoch()
                if not finished:
                    break
                self._end_epoch()
        finally:
            if self._writer is not None:
                self._writer.flush()
        return self.history

    def _run_epoch(self) -> bool:
        """Train the rest of the current epoch; False when ``max_steps`` stopped it."""
        state, options = self.state, self.options
        model, optimizer = self.model, self.optimizer
        model.train()
        self.generator.set_state(state["epoch_rng_state"])
        epoch = self.loader.epoch(self.generator, start_batch=state["batch_in_epoch"])
        device = next(model.parameters()).device
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        window = self._window_start()
        epoch_start = time.perf_counter()
        bar = None
        if self._use_bar():
            from tqdm import tqdm

            bar = tqdm(
                total=epoch.num_batches,
                initial=epoch.start_batch,
                desc=f"epoch {state['epoch'] + 1}/{options.epochs}",
                unit="batch",
                dynamic_ncols=True,
                leave=False,
            )
        stopped = False
        try:
            for x, y in epoch:
                set_learning_rate(optimizer, self.current_lr())
                n = self._update(x, y, epoch, loss_sum, correct)
                state["step"] += 1
                state["batch_in_epoch"] += 1
                state["frames_seen"] += n
                state["epoch_frames"] += n
                if bar is not None:
                    bar.update(1)
                if self.step % options.log_every == 0:
                    self._fold(loss_sum, correct)
                    self._log_window(window, bar)
                    window = self._window_start()
                if options.checkpoint_every and self.step % options.checkpoint_every == 0:
                    self._fold(loss_sum, correct)
                    self.save_checkpoint()
                if self._stop_requested():
                    stopped = True
                    break
        finally:
            if bar is not None:
                bar.close()
            state["train_seconds"] += time.perf_counter() - epoch_start
            self._fold(loss_sum, correct)
        if stopped:
            logger.info("stopping at step %d (max_steps); a later run continues from here", self.step)
            self.save_checkpoint()
            return False
        return True

    def _update(
        self, x: torch.Tensor, y: torch.Tensor, epoch: Epoch, loss_sum: torch.Tensor, correct: torch.Tensor
    ) -> int:
        """One update on the batch ``(x, y)`` (batch ``state["batch_in_epoch"]`` of ``epoch``): adds its summed
        loss and correct count to the accumulators (no synchronization) and returns its frames."""
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        n = y.shape[0]
        with torch.no_grad():
            loss_sum += loss.detach() * n
            correct += (logits.argmax(dim=1) == y).sum()
        return n

    def _fold(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        """Move the tensor accumulators (one synchronization) into the epoch totals kept in the state."""
        self.state["epoch_loss_sum"] += float(loss_sum)
        self.state["epoch_correct"] += int(correct)
        loss_sum.zero_()
        correct.zero_()

    def _window_start(self) -> tuple[float, int, int, float]:
        s = self.state
        return s["epoch_loss_sum"], s["epoch_correct"], s["epoch_frames"], time.perf_counter()

    def _log_window(self, window: tuple[float, int, int, float], bar) -> None:
        loss0, correct0, frames0, start = window
        s = self.state
        frames = max(s["epoch_frames"] - frames0, 1)
        fps = frames / max(time.perf_counter() - start, 1e-9)
        loss = (s["epoch_loss_sum"] - loss0) / frames
        acc = (s["epoch_correct"] - correct0) / frames
        lr = self.current_lr()
        self._scalar("train/loss", loss)
        self._scalar("train/frame_accuracy", acc)
        self._scalar("train/learning_rate", lr)
        self._scalar("train/frames_per_second", fps)
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.1%}", lr=f"{lr:.2g}", fps=f"{fps:,.0f}", refresh=False)
        elif self.options.progress != "none":
            logger.info(
                "epoch %d step %d: loss %.4f, frame accuracy %.2f%%, lr %.4g, %.0f frames/s",
                s["epoch"] + 1, self.step, loss, 100 * acc, lr, fps,
            )  # fmt: skip

    def _evaluate_heldout(self) -> tuple[float, float]:
        """Held-out mean cross-entropy and frame accuracy of the current model."""
        return evaluate(
            self.model, self.heldout, self.loader.left, self.loader.right, self.options.heldout_batch_frames
        )

    def _end_epoch(self) -> None:
        state, options = self.state, self.options
        epoch = state["epoch"] + 1
        frames = state["epoch_frames"]
        entry: dict[str, Any] = {
            "epoch": epoch,
            "step": self.step,
            "lr": self.current_lr(),
            "lr_scale": state["lr_scale"],
            "train_loss": state["epoch_loss_sum"] / frames if frames else float("nan"),
            "train_frame_accuracy": state["epoch_correct"] / frames if frames else float("nan"),
        }
        if self.heldout is not None and self.heldout.num_frames:
            start = time.perf_counter()
            loss, acc = self._evaluate_heldout()
            entry.update(heldout_loss=loss, heldout_frame_accuracy=acc, heldout_seconds=time.perf_counter() - start)
            self._scalar("heldout/loss", loss)
            self._scalar("heldout/frame_accuracy", acc)
        entry["train_seconds"] = state["train_seconds"]
        entry["frames_per_second"] = state["frames_seen"] / max(state["train_seconds"], 1e-9)
        logger.info(
            "epoch %d done (step %d): train loss %.4f, frame accuracy %.2f%%; held-out loss %s, frame accuracy %s",
            epoch, self.step, entry["train_loss"], 100 * entry["train_frame_accuracy"],
            f"{entry['heldout_loss']:.4f}" if "heldout_loss" in entry else "-",
            f"{100 * entry['heldout_frame_accuracy']:.2f}%" if "heldout_loss" in entry else "-",
        )  # fmt: skip
        if "heldout_loss" in entry:
            loss, best = entry["heldout_loss"], state["best_heldout_loss"]
            if options.lr_halving and math.isfinite(best) and (best - loss) / best < options.halving_threshold:
                state["lr_scale"] *= 0.5
                logger.info(
                    "held-out loss improved by less than %.2g: learning rate factor now %g",
                    options.halving_threshold, state["lr_scale"],
                )  # fmt: skip
                if state["lr_scale"] < options.min_lr_scale:
                    logger.info("learning rate factor below %g: stopping early", options.min_lr_scale)
                    state["done"] = state["stopped_early"] = True
                    entry["stopped_early"] = True
            state["best_heldout_loss"] = min(best, loss)
        state["history"].append(entry)
        state["epoch"] = epoch
        state["batch_in_epoch"] = 0
        state["epoch_rng_state"] = self.generator.get_state()
        state["epoch_loss_sum"], state["epoch_correct"], state["epoch_frames"] = 0.0, 0, 0
        if epoch >= options.epochs:
            state["done"] = True
        self.save_checkpoint()
        self._write_train_log()
