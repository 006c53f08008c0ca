"""Kaldi interop: export a feature archive to ``ark`` (+ ``scp``), import ``ark``/``scp`` into an archive.

Matrices go through kaldi-io (binary ``FM`` float32 matrices, as ``copy-feats`` writes them), so a
round trip is bit-exact. Command line::

    python -m asr.features.kaldi_ark export data/an4/train/fbank.h5 feats.ark [--scp feats.scp] [--cmvn-ark cmvn.ark]
    python -m asr.features.kaldi_ark import scp:feats.scp data/an4/train/fbank.h5 [--type fbank] [--cmvn none]

An import source is ``ark:PATH``, ``scp:PATH``, or a path ending in ``.ark`` / ``.scp``. As in Kaldi, an
scp entry may carry a byte offset (``file.ark:1234``) and a row/column range (``file.ark:1234[0:99]``),
and an entry ending in ``|`` is a shell command (refused with ``allow_pipes=False``). Keys are UTF-8.
Double (``DM``) and compressed (``CM``) matrices are converted to float32 on import.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from asr.atomic import atomic_write
from asr.data.audio import pipes_allowed, refused_pipe_message
from asr.data.datadir import read_table_lines
from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import COMPRESSIONS, ArchiveWriter, FeatureArchive, base_attrs
from asr.features.cmvn import CMVN_KINDS
from asr.logging_setup import setup_logging

log = logging.getLogger("asr.features.kaldi_ark")

_RANGE = re.compile(r"^(.*)\[([0-9]*:[0-9]*)(?:,([0-9]*:[0-9]*))?\]$")


def import_kaldi_io():
    """Import kaldi_io without its import-time side effects (a KALDI_ROOT warning and a changed PATH)."""
    if "kaldi_io" in sys.modules:
        return sys.modules["kaldi_io"]
    saved = {name: os.environ.get(name) for name in ("KALDI_ROOT", "PATH")}
    if "KALDI_ROOT" not in os.environ:
        os.environ["KALDI_ROOT"] = tempfile.gettempdir()  # exists: no warning; nothing is run from it
    try:
        import kaldi_io
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return kaldi_io


def export_kaldi(
    archive_path: str | os.PathLike,
    ark_path: str | os.PathLike,
    scp_path: str | os.PathLike | None = None,
    cmvn_ark_path: str | os.PathLike | None = None,
) -> int:
    """Write an archive's utterances to a Kaldi binary ark (and an scp indexing it), in archive order.

    Args:
        archive_path: the HDF5 feature archive.
        ark_path: the ark to write; the scp names it exactly as given here (relative paths stay relative,
            as with Kaldi's ``copy-feats ark,scp:a.ark,a.scp``).
        scp_path: optional scp (``utt ark_path:byte_offset``).
        cmvn_ark_path: optional ark of the CMVN statistics (Kaldi ``cmvn.ark``: double ``[2, dim + 1]`` per
            speaker or utterance); the archive must hold statistics.

    Returns:
        the number of utterances written.
    """
    kaldi_io = import_kaldi_io()
    scp_lines: list[str] = []
    with FeatureArchive(archive_path) as archive:
        stats = archive.cmvn_stats() if cmvn_ark_path is not None else None
        if cmvn_ark_path is not None and stats is None:
            raise InputError("the archive holds no CMVN statistics to export", archive_path)
        with atomic_write(ark_path, "wb") as f:
            for utt, feats in archive:
                key = utt.encode("utf-8") + b" "
                f.write(key)
                scp_lines.append(f"{utt} {os.fspath(ark_path)}:{f.tell()}\n")
                kaldi_io.write_mat(f, np.ascontiguousarray(feats, dtype=np.float32))
        if scp_path is not None:
            with atomic_write(scp_path) as f:
                f.writelines(scp_lines)
        if stats is not None:
            with atomic_write(cmvn_ark_path, "wb") as f:
                for key, matrix in stats.items():
                    f.write(key.encode("utf-8") + b" ")
                    kaldi_io.write_mat(f, np.asarray(matrix, dtype=np.float64))
        log.info("exported %d utterances of %s to %s", len(archive), archive_path, ark_path)
        return len(archive)


def _read_ark(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, matrix)`` pairs of a Kaldi ark file, in file order."""
    kaldi_io = import_kaldi_io()
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot open ark: {e.strerror}", path) from e
    with f:
        while True:
            start = f.tell()
            key_bytes = bytearray()
            while True:
                c = f.read(1)
                if not c or c == b" ":
                    break
                key_bytes += c
            key_bytes = key_bytes.strip()
            if not key_bytes:
                if c:
                    raise InputError(f"empty key at byte {start}", path)
                return
            try:
                key = key_bytes.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"key at byte {start} is not UTF-8", path) from e
            if not c:
                raise InputError(f"file ends after key {key!r} (truncated ark?)", path)
            try:
                matrix = kaldi_io.read_mat(f)
            except Exception as e:  # kaldi_io raises assorted types (AssertionError, ValueError...)
                raise InputError(
                    f"cannot read the matrix of {key!r} at byte {start}: {type(e).__name__}: {e}", path
                ) from e
            yield key, matrix


def _read_scp(path: Path, allow_pipes: bool) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, matrix)`` pairs of a Kaldi scp file, in file order."""
    kaldi_io = import_kaldi_io()
    for number, key, value in read_table_lines(path):
        rxfile, rows, cols = value, slice(None), slice(None)
        match = _RANGE.match(value)
        if match:
            rxfile = match.group(1)
            rows = slice(*[int(x) if x else None for x in match.group(2).split(":")])
            if match.group(3):
                cols = slice(*[int(x) if x else None for x in match.group(3).split(":")])
            rows = slice(rows.start, None if rows.stop is None else rows.stop + 1)  # Kaldi ranges are inclusive
            cols = slice(cols.start, None if cols.stop is None else cols.stop + 1)
        if rxfile.rstrip().endswith("|") and not pipes_allowed(allow_pipes):
            raise InputError(refused_pipe_message(rxfile), path, number)
        try:
            matrix = kaldi_io.read_mat(rxfile)
        except Exception as e:  # missing file, bad offset, corrupt matrix: kaldi_io raises assorted types
            raise InputError(f"cannot read matrix {rxfile!r}: {type(e).__name__}: {e}", path, number) from e
        yield key, matrix[rows, cols]


def read_kaldi_matrices(source: str, allow_pipes: bool = True) -> Iterator[tuple[str, np.ndarray]]:
    """Iterate ``(key, matrix)`` over ``ark:PATH``, ``scp:PATH`` or a ``.ark`` / ``.scp`` path."""
    kind, _, path = source.partition(":")
    if kind not in ("ark", "scp") or not path:
        kind, path = Path(source).suffix.lstrip("."), source
        if kind not in ("ark", "scp"):
            raise InputError("give ark:PATH, scp:PATH, or a path ending in .ark or .scp", source)
    path = Path(path)
    return _read_ark(path) if kind == "ark" else _read_scp(path, allow_pipes)


def import_kaldi(
    source: str,
    out: str | os.PathLike,
    feature_type: str = "kaldi",
    cmvn: str = "none",
    compression: str | None = None,
    allow_pipes: bool = True,
) -> Path:
    """Write the matrices of a Kaldi ark/scp into a feature archive (in the source's order).

    Args:
        source: ``ark:PATH``, ``scp:PATH`` or a ``.ark`` / ``.scp`` path.
        out: the archive to write (atomically).
        feature_type: stored as the ``feature_type`` attribute (the options are unknown: ``{}``).
        cmvn: what normalization the features already carry (stored as the ``cmvn`` attribute).
        compression: None, ``"gzip"`` or ``"lzf"``.
        allow_pipes: allow ``command |`` scp entries.

    Returns:
        the archive's path.

    Raises:
        InputError: unreadable or corrupt input, a repeated key, matrices of different widths, no matrix.
    """
    if cmvn not in CMVN_KINDS:
        raise ConfigError(f"cmvn must be one of {CMVN_KINDS}, not {cmvn!r}")
    matrices = read_kaldi_matrices(source, allow_pipes)
    first = next(matrices, None)
    if first is None:
        raise InputError("no matrix in the Kaldi source", source)
    dim = first[1].shape[1] if first[1].ndim == 2 else -1
    if dim <= 0:
        raise InputError(f"matrix {first[0]!r} is not a 2-D matrix with columns", source)
    attrs = base_attrs(feature_type, None, source=source, cmvn=cmvn)
    out = Path(out)
    with ArchiveWriter(out, dim, attrs, compression=compression) as writer:
        for key, matrix in _chain(first, matrices):
            if matrix.ndim != 2 or matrix.shape[1] != dim:
                raise InputError(f"matrix {key!r} has shape {matrix.shape}, expected [frames, {dim}]", source)
            if key in writer:
                raise InputError(f"key {key!r} repeated", source)
            writer.append(key, matrix.astype(np.float32, copy=False))
        count, frames = len(writer.utt_ids), writer.num_frames
    log.info("imported %d matrices (%d frames, dim %d) from %s into %s", count, frames, dim, source, out)
    return out


def _chain(first, rest):
    yield first
    yield from rest


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``export`` / ``import``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.features.kaldi_ark", description="Kaldi ark/scp export and import of feature archives."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="archive -> ark (+ scp, cmvn.ark)")
    exp.add_argument("archive", help="HDF5 feature archive")
    exp.add_argument("ark", help="Kaldi ark to write")
    exp.add_argument("--scp", help="also write this scp")
    exp.add_argument("--cmvn-ark", help="also write the CMVN statistics as a Kaldi cmvn.ark")
    imp = sub.add_parser("import", help="ark/scp -> archive")
    imp.add_argument("source", help="ark:PATH, scp:PATH, or a .ark/.scp path")
    imp.add_argument("out", help="HDF5 feature archive to write")
    imp.add_argument("--type", default="kaldi", help="feature_type attribute (default 'kaldi')")
    imp.add_argument("--cmvn", choices=CMVN_KINDS, default="none", help="normalization already applied")
    imp.add_argument("--compression", choices=[c for c in COMPRESSIONS if c], help="compress /feats")
    imp.add_argument("--no-pipes", action="store_true", help="refuse 'command |' scp entries")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.command == "export":
            export_kaldi(args.archive, args.ark, args.scp, args.cmvn_ark)
        else:
            import_kaldi(args.source, args.out, args.type, args.cmvn, args.compression, not args.no_pipes)
    except AsrError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
