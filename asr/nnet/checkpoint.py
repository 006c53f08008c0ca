"""Training checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``, resumed from the latest.

A checkpoint is ``<dir>/ckpt-<step:09d>.pt``, a dict of tensors and plain values only (no pickled
objects): model and optimizer state dicts, counters (``step``, ``epoch``, ``batch_in_epoch``), RNG states
as uint8 tensors (data order, dropout), the learning-rate factor, the per-epoch history and the
training configuration fingerprint. :func:`save_checkpoint` writes through :func:`asr.atomic.atomic_path`
and then removes all but the newest ``keep``; :func:`load_latest_checkpoint` tries the newest first and,
when a file cannot be read (truncated, corrupt, not a checkpoint), logs it and falls back to the previous.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from asr.atomic import atomic_path, torch_save

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "asr-dnn-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "model", "optimizer", "step", "epoch", "batch_in_epoch")
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


def checkpoint_path(ckpt_dir: str | os.PathLike, step: int) -> Path:
    """The file name of the checkpoint after ``step`` updates."""
    return Path(ckpt_dir) / f"ckpt-{step:09d}.pt"


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint files in ``ckpt_dir``, oldest (fewest steps) first; [] when the directory is absent."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def save_checkpoint(ckpt_dir: str | os.PathLike, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (must hold ``step``) atomically as the newest checkpoint; keep the newest ``keep``.

    Returns:
        The path written.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, not {keep}")
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    path = checkpoint_path(ckpt_dir, int(state["step"]))
    with atomic_path(path) as tmp:
        torch_save(state, tmp)
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True``; ValueError when it is not a complete checkpoint."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, bad magic, unpickling refused: all mean "unusable"
        raise ValueError(f"cannot load ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not an asr DNN checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint version {state.get('version')} is newer than this reader's")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    return state


def load_latest_checkpoint(
    ckpt_dir: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``ckpt_dir`` and its path, or None when there is none.

    An unreadable newer file (truncated by a crash during copying, corrupt) is skipped with a warning
    naming it and the checkpoint used instead.
    """
    candidates = list_checkpoints(ckpt_dir)
    for i in range(len(candidates) - 1, -1, -1):
        path = candidates[i]
        try:
            return load_checkpoint(path, map_location), path
        except ValueError as err:
            previous = candidates[i - 1].name if i > 0 else "none left: starting from scratch"
            logger.warning("checkpoint %s is unusable (%s); falling back to the previous one (%s)", path, err, previous)
    return None
