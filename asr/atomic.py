"""Atomic file writes: a file appears under its final name only once it is complete.

Writers create ``.<name>.tmp.<host>.<pid>`` beside the target, flush and fsync it, then ``os.replace`` it
onto the final name, so an interrupted run (``kill -9``, a full disk) never leaves a half-written file that a
later stage would mistake for a finished one, and a previous complete version stays intact.

A write that fails for lack of space (``ENOSPC``, quota, file too large, read-only or failing disk) raises
:class:`asr.errors.WriteError` naming the file, after removing the temporary file. The temporary files of
writers that were killed (their process no longer exists on this host) are deleted the first time a process
writes into their directory.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from asr.errors import AsrError, WriteError

logger = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMP_MARKER = f".tmp.{_HOST}."
_cleaned_dirs: set[str] = set()
# errno values that mean "this file cannot be written" rather than a programming or input error
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_WRITE_MESSAGES = (
    ("No space left on device", errno.ENOSPC),
    ("errno = 28", errno.ENOSPC),
    ("Disk quota exceeded", errno.EDQUOT),
    ("file write failed", None),  # torch.save's zip writer on a path: no errno
    ("iostream error", None),
)


def temp_path_for(path: str | os.PathLike) -> Path:
    """Return the temporary name used while ``path`` is being written (same directory)."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TEMP_MARKER}{os.getpid()}")


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files in ``directory`` of atomic writers on this host that no longer run (killed
    mid-write); returns the paths removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        head, _, pid_text = name.rpartition(".")
        if not name.startswith(".") or not pid_text.isdigit() or not (head + ".").endswith(_TEMP_MARKER):
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _process_exists(pid):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    if removed:
        logger.info(
            "removed %d temporary file(s) left by killed writers in %s: %s",
            len(removed),
            directory,
            " ".join(p.name for p in removed[:5]),
        )
    return removed


def _clean_once(directory: Path) -> None:
    key = os.path.abspath(directory)
    if key not in _cleaned_dirs:
        _cleaned_dirs.add(key)
        remove_stale_temps(directory)


def write_failure_errno(err: BaseException) -> tuple[bool, int | None]:
    """Whether ``err`` means the output could not be written (disk full, quota, I/O error), and its errno.

    Covers ``OSError`` with such an errno and the messages h5py and ``torch.save`` give for the same
    failures; other errors (a missing input, a bug) are not write failures.
    """
    if isinstance(err, AsrError) or not isinstance(err, (OSError, RuntimeError)):
        return False, None
    if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
        return True, err.errno
    text = str(err)
    for needle, number in _WRITE_MESSAGES:
        if needle in text:
            return True, number
    return False, None


def _write_error(path: Path, err: BaseException, number: int | None) -> WriteError:
    reason = os.strerror(number) if number is not None else f"write failed ({str(err).splitlines()[0][:200]})"
    hint = " (is the disk full?)" if number in (None, errno.ENOSPC, errno.EDQUOT) else ""
    return WriteError(f"cannot write: {reason}{hint}; the previous version, if any, is unchanged", path, number)


def torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a Python file object, so that a failed write (a full disk) raises
    ``OSError`` with its errno; torch's own writer of a path says only ``iostream error``."""
    import torch

    with open(path, "wb") as f:
        torch.save(obj, f)


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
    _clean_once(path.parent)
    tmp = temp_path_for(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        failed, number = write_failure_errno(err)
        if failed:
            raise _write_error(path, err, number) from err
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
