"""Write and read graphs (``HCLG.fst``, alignment graphs) in OpenFst binary format.

Writes go through :func:`asr.atomic.atomic_path`, so a graph file exists only when complete. Reads check
the OpenFst magic number first and raise :class:`~asr.errors.InputError` naming the file for a missing,
truncated or foreign file (``kaldifst.StdVectorFst.read`` itself only returns ``None``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import kaldifst

from asr.atomic import atomic_path
from asr.errors import InputError

FST_MAGIC = 2125659606  # OpenFst's kFstMagicNumber, little-endian int32 at offset 0


def write_graph(fst: kaldifst.StdVectorFst, path: str | os.PathLike) -> None:
    """Write ``fst`` to ``path`` (OpenFst binary, vector type), atomically."""
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise OSError(f"kaldifst could not write {tmp}")


def read_graph(path: str | os.PathLike) -> kaldifst.StdVectorFst:
    """Read an OpenFst binary standard-arc FST written by :func:`write_graph` (or Kaldi/OpenFst tools).

    Raises:
        InputError: the file is missing, is not an OpenFst file, or cannot be read completely.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise InputError(f"cannot read graph: {err.strerror}", path) from None
    if len(head) < 4 or struct.unpack("<i", head)[0] != FST_MAGIC:
        raise InputError("not an OpenFst binary FST (bad magic number)", path)
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise InputError("cannot read FST (truncated file, or not a standard-arc vector FST)", path)
    return fst
