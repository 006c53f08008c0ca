"""Atomic file writes: a file appears under its final name only once it is complete.

Writers create ``<name>.tmp.<pid>`` beside the target, flush and fsync it, then ``os.replace`` it onto
the final name, so an interrupted run (``kill -9``, a full disk) never leaves a half-written file that a
later stage would mistake for a finished one, and a previous complete version stays intact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temp_path_for(path: str | os.PathLike) -> Path:
    """Return the temporary name used while ``path`` is being written (same directory)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync a directory so that a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is fsynced and renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` (if it existed) is left untouched.
    Use this for writers that need a file name (h5py, kaldifst); use :func:`atomic_write` for text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open ``path`` for writing atomically; yields the open file object.

    Args:
        path: final file name.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding (ignored for binary mode).
    """
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
