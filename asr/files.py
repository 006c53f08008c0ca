"""Small readers shared by every stage, whose errors name the file: JSON documents and file digests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from asr.errors import InputError


def read_json(path: str | os.PathLike) -> Any:
    """Parse a UTF-8 JSON file; returns the decoded value.

    Raises:
        InputError: unreadable file, not UTF-8, or invalid JSON (with the line of the syntax error).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    except UnicodeDecodeError as e:
        raise InputError("file is not UTF-8", path) from e
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg}", path, e.lineno) from e


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (InputError naming the file when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", path) from None
    return digest.hexdigest()
