"""Error types shared by every stage.

Every parser and reader in ``asr`` raises :class:`InputError` for bad input, naming the file and,
where it applies, the 1-based line number, so a user can open the offending spot directly.
"""

from __future__ import annotations

import os


class AsrError(Exception):
    """Base class of all errors raised on purpose by ``asr``."""


class InputError(AsrError, ValueError):
    """Bad input data: a malformed line, an unreadable file, an unknown word.

    Args:
        message: what is wrong, in words.
        path: the file the problem is in (optional).
        line: the 1-based line number in ``path`` (optional).

    ``str(err)`` is ``"path:line: message"`` (parts omitted when unknown); the parts stay available as
    ``err.path``, ``err.line`` and ``err.message``.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        return where + self.message

    def __reduce__(self):  # picklable across worker processes
        return (self.__class__, (self.message, self.path, self.line))


class ConfigError(AsrError, ValueError):
    """An option or a combination of options that cannot work."""


class WriteError(AsrError):
    """An output file could not be written (full disk, quota, read-only file system, I/O error).

    Args:
        message: what went wrong, in words.
        path: the file that was being written.
        errno: the system error number when known (``errno.ENOSPC`` for a full disk).

    ``str(err)`` is ``"path: message"``. Writers go through :mod:`asr.atomic`, so the previous version of
    ``path`` (if any) is left as it was and no partial file remains.
    """

    def __init__(self, message: str, path: str | os.PathLike, errno: int | None = None):
        self.message = message
        self.path = os.fspath(path)
        self.errno = errno
        super().__init__(f"{self.path}: {message}")

    def __reduce__(self):  # picklable across worker processes
        return (self.__class__, (self.message, self.path, self.errno))
