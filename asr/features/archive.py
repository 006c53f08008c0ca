"""HDF5 feature archives: one file per data dir and feature type (DESIGN.md, "Feature archive").

Layout::

    /feats        float32 [total_frames, dim]  all utterances concatenated, chunked (Fletcher-32 checksums),
                                                optional compression
    /utt_ids      utf-8 strings [num_utts]      in the order of /feats
    /offsets      int64 [num_utts + 1]          utterance i is feats[offsets[i]:offsets[i + 1]]
    /cmvn/keys    utf-8 strings [num_groups]    speakers (or utterances) with CMVN statistics (optional)
    /cmvn/stats   float64 [num_groups, 2, base_dim + 1]   Kaldi cmvn.ark layout, of the features before
                                                          normalization and deltas
    /cmvn/utt_group  int32 [num_utts]           index into /cmvn/keys of each utterance's group
    /skipped_utt_ids utf-8 strings              utterances left out because their audio was bad (optional)

Attributes: ``format`` ("asr-feature-archive"), ``format_version``, ``feature_type``, ``options`` (JSON of
:class:`asr.features.options.FeatureOptions`, ``{}`` when unknown), ``cmvn`` (speaker / utterance / none),
``cmvn_norm_vars``, ``delta_order``, ``delta_window``, ``asr_version``, ``source`` (the data dir or
file the features came from), ``source_fingerprint``, ``num_skipped``, ``backend``, ``index_sha256``.

``index_sha256`` (written since this attribute exists; checked when present) is a sha256 over the utterance ids,
offsets, CMVN datasets, skipped ids and every other attribute: the Fletcher-32 checksums cover ``/feats``, this
covers what says how to read it, so a corrupted byte in the ids, offsets or attributes is refused instead of
giving other utterance boundaries or names.

``/feats`` holds the features as training reads them (CMVN applied, deltas appended); the raw ones are
``feats[:, :base_dim] * std + mean`` from the stored statistics.

:class:`ArchiveWriter` appends utterances and renames the file into place only when it is complete;
:class:`FeatureArchive` checks the layout on open and refuses truncated or inconsistent files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import asr
from asr.atomic import atomic_path, write_failure_errno
from asr.errors import InputError
from asr.features.options import FeatureOptions

FORMAT_NAME = "asr-feature-archive"
FORMAT_VERSION = 1
REQUIRED_ATTRS = ("format", "format_version", "feature_type", "options", "cmvn", "asr_version", "source")
COMPRESSIONS = (None, "gzip", "lzf")
INDEX_DIGEST_ATTR = "index_sha256"
# HDF5 1.10 file format: its metadata (superblock, object headers, chunk indexes) carries checksums, so a corrupt
# byte there is refused on open; in the older format it could send HDF5 into an endless loop (found by fuzzing).
# Readable by HDF5 >= 1.10 (h5py >= 2.7).
LIBVER = ("v110", "v110")


def _canonical_attr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return h5_attr_value(value)


def index_digest(
    utt_ids: Sequence[str],
    offsets: Sequence[int] | np.ndarray,
    attrs: Mapping[str, Any],
    cmvn: tuple[Sequence[str], np.ndarray, np.ndarray] | None = None,
    skipped: Sequence[str] = (),
) -> str:
    """Hex sha256 of an archive's index: utterance ids, offsets, CMVN keys/statistics/groups, skipped ids and
    the attributes (all but ``index_sha256`` itself), as stored in the ``index_sha256`` attribute."""
    digest = hashlib.sha256()
    digest.update(json.dumps(list(utt_ids)).encode("utf-8"))
    digest.update(np.asarray(offsets, dtype="<i8").tobytes())
    if cmvn is not None:
        keys, stats, utt_group = cmvn
        digest.update(json.dumps(list(keys)).encode("utf-8"))
        digest.update(np.ascontiguousarray(stats, dtype="<f8").tobytes())
        digest.update(np.ascontiguousarray(utt_group, dtype="<i4").tobytes())
    digest.update(json.dumps(list(skipped)).encode("utf-8"))
    for key in sorted(k for k in attrs if k != INDEX_DIGEST_ATTR):
        digest.update(json.dumps([key, _canonical_attr(attrs[key])], default=str).encode("utf-8"))
    return digest.hexdigest()


def _create_strings(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    """A dataset of fixed-length UTF-8 strings. Not variable-length ones: those live in HDF5's global heap, which
    has no checksum, and a corrupt byte there sent HDF5 into an endless loop on open (found by fuzzing)."""
    encoded = [v.encode("utf-8") for v in values]
    width = max([1, *map(len, encoded)])
    dtype = h5py.string_dtype("utf-8", width)
    group.create_dataset(name, data=np.array(encoded, dtype=dtype), dtype=dtype)


def _set_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    """Set an attribute; strings as fixed-length UTF-8 (see :func:`_create_strings`)."""
    if isinstance(value, str):
        encoded = value.encode("utf-8")
        width = max(1, len(encoded))
        dtype = h5py.string_dtype("utf-8", width)
        obj.attrs.create(key, np.array(encoded, dtype=dtype), dtype=dtype)
    else:
        obj.attrs[key] = value


def base_attrs(
    feature_type: str,
    options: FeatureOptions | None,
    source: str,
    cmvn: str = "none",
    cmvn_norm_vars: bool = False,
    delta_order: int = 0,
    delta_window: int = 2,
    **extra: Any,
) -> dict[str, Any]:
    """The attributes every archive carries (see the module docstring); ``extra`` adds more."""
    attrs = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "feature_type": feature_type,
        "options": options.to_json() if options is not None else "{}",
        "cmvn": cmvn,
        "cmvn_norm_vars": bool(cmvn_norm_vars),
        "delta_order": int(delta_order),
        "delta_window": int(delta_window),
        "asr_version": asr.__version__,
        "source": str(source),
        "num_skipped": 0,
    }
    attrs.update(extra)
    return attrs


class ArchiveWriter:
    """Write a feature archive utterance by utterance; the file appears under ``path`` only when complete.

    Use as a context manager::

        with ArchiveWriter(path, dim=40, attrs=base_attrs("fbank", options, "data/train")) as writer:
            for utt, feats in ...:
                writer.append(utt, feats)

    An exception inside the block removes the temporary file and leaves any previous ``path`` as it was.

    Args:
        path: the archive to write.
        dim: feature dimension.
        attrs: file attributes (:func:`base_attrs`); values must be str, int, float or bool.
        compression: None, ``"gzip"`` (level 4) or ``"lzf"``.
        chunk_rows: rows per HDF5 chunk (default: about 256 KiB per chunk).
        buffer_frames: frames kept in memory between writes to the file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dim: int,
        attrs: Mapping[str, Any],
        compression: str | None = None,
        chunk_rows: int | None = None,
        buffer_frames: int = 65536,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
        if dim <= 0:
            raise ValueError(f"feature dimension must be positive, not {dim}")
        self.path = Path(path)
        self.dim = int(dim)
        self.attrs = dict(attrs)
        self.compression = compression
        self.chunk_rows = chunk_rows or max(1, (256 * 1024) // (4 * self.dim))
        self.buffer_frames = buffer_frames
        self.utt_ids: list[str] = []
        self._seen: set[str] = set()
        self.offsets: list[int] = [0]
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0
        self._cmvn: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self._skipped: list[str] = []
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self._feats: h5py.Dataset | None = None
        self._tmp: Path | None = None
        self._doomed = False  # a write failed: the temporary file is discarded

    def __enter__(self) -> ArchiveWriter:
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(self.path))
        try:
            self._file = h5py.File(tmp, "w", libver=LIBVER)
            stack.callback(self._close_file, self._file)
            # one handle for the whole write: a dataset handle freed mid-way flushes its chunk cache in its
            # destructor, where a failed write (a full disk) is only printed, not raised
            self._feats = self._file.create_dataset(
                "feats",
                shape=(0, self.dim),
                maxshape=(None, self.dim),
                dtype=np.float32,
                chunks=(self.chunk_rows, self.dim),
                compression=self.compression,
                compression_opts=4 if self.compression == "gzip" else None,
                fletcher32=True,  # per-chunk checksums: a corrupted chunk fails to read instead of giving bad numbers
            )
        except BaseException as e:  # e.g. a full disk: remove the temporary file (atomic_path) and say so
            self._release_space(e, tmp)
            self._file = None
            if not stack.__exit__(type(e), e, e.__traceback__):
                raise
        self._stack = stack
        self._tmp = tmp
        return self

    def __contains__(self, utt: str) -> bool:
        """Whether ``utt`` was appended already."""
        return utt in self._seen

    @property
    def num_frames(self) -> int:
        """Frames appended so far."""
        return self.offsets[-1]

    def append(self, utt: str, feats: np.ndarray) -> None:
        """Add one utterance's features ``[frames, dim]`` (converted to float32) after the previous ones."""
        if self._file is None:
            raise RuntimeError("ArchiveWriter.append outside its 'with' block")
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"utterance {utt!r}: features of shape {feats.shape}, expected [frames, {self.dim}]")
        if utt in self._seen:
            raise ValueError(f"utterance {utt!r} appended twice")
        if not utt or any(c.isspace() or c == "\x00" for c in utt):
            raise ValueError(f"utterance id {utt!r} is empty or holds white space or NUL")
        self._seen.add(utt)
        self.utt_ids.append(utt)
        self.offsets.append(self.offsets[-1] + feats.shape[0])
        self._buffer.append(feats.astype(np.float32, copy=False))
        self._buffered += feats.shape[0]
        if self._buffered >= self.buffer_frames:
            self._flush()

    def set_cmvn_stats(self, keys: Sequence[str], stats: np.ndarray, utt_group: Sequence[int]) -> None:
        """Record CMVN statistics: ``stats`` ``[len(keys), 2, base_dim + 1]``, ``utt_group`` per utterance."""
        self._cmvn = (list(keys), np.asarray(stats, dtype=np.float64), np.asarray(utt_group, dtype=np.int32))

    def set_skipped(self, utt_ids: Iterable[str]) -> None:
        """Record the utterances left out (bad audio); stored as ``/skipped_utt_ids``, counted in ``num_skipped``."""
        self._skipped = list(utt_ids)

    def _flush(self) -> None:
        if not self._buffer:
            return
        block = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        feats = self._feats
        feats.resize(self._written + block.shape[0], axis=0)
        feats[self._written : self._written + block.shape[0]] = block
        self._written += block.shape[0]
        self._buffer, self._buffered = [], 0

    def _finish(self) -> None:
        self._flush()
        f = self._file
        _create_strings(f, "utt_ids", self.utt_ids)
        f.create_dataset("offsets", data=np.array(self.offsets, dtype=np.int64))
        if self._cmvn is not None:
            keys, stats, utt_group = self._cmvn
            if stats.shape[0] != len(keys) or utt_group.shape != (len(self.utt_ids),):
                raise ValueError("CMVN statistics do not match the keys or the utterances")
            group = f.create_group("cmvn")
            _create_strings(group, "keys", keys)
            group.create_dataset("stats", data=stats)
            group.create_dataset("utt_group", data=utt_group)
        if self._skipped:
            _create_strings(f, "skipped_utt_ids", self._skipped)
        self.attrs["num_skipped"] = len(self._skipped)
        self.attrs.pop(INDEX_DIGEST_ATTR, None)  # attrs copied from another archive: its digest is not ours
        for key, value in self.attrs.items():
            _set_attr(f, key, value)
        _set_attr(f, INDEX_DIGEST_ATTR, index_digest(self.utt_ids, self.offsets, self.attrs, self._cmvn, self._skipped))
        f.flush()  # a write that fails (full disk) raises here, not in close()

    def _close_file(self, file: h5py.File) -> None:
        """Close the HDF5 file; after a failed write HDF5 may fail to close it again (its metadata cache is in a
        state of its own): that is not a second error to report."""
        try:
            file.close()
        except Exception:
            if not self._doomed:
                raise

    def _release_space(self, err: BaseException, tmp: Path | None) -> None:
        """After a failed write (a full disk), let HDF5 close the doomed temporary file: closing flushes its
        caches, which fails again while the disk is full and leaves HDF5 in a state that crashes the process at
        exit. The file's descriptor is pointed at an anonymous in-memory file (the flush lands there and is
        dropped; atomic_path then deletes the temporary file); where that is impossible the file is emptied."""
        if tmp is None or not write_failure_errno(err)[0]:
            return
        self._doomed = True
        if self._file is not None and hasattr(os, "memfd_create"):
            try:
                fd = self._file.id.get_vfd_handle()
                sink = os.memfd_create("asr-discarded-archive")
                os.dup2(sink, fd)
                os.close(sink)
                return
            except Exception:  # not a POSIX file driver: fall back to emptying the file
                pass
        with contextlib.suppress(OSError):
            os.truncate(tmp, 0)

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                self._finish()
            except BaseException as e:
                self._release_space(e, self._tmp)
                self._file = self._feats = None
                if not stack.__exit__(type(e), e, e.__traceback__):
                    raise
                return False
        elif exc is not None:
            self._release_space(exc, self._tmp)
        self._file = self._feats = None
        return bool(stack.__exit__(exc_type, exc, tb))


def h5_attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (bytes -> str, numpy scalar -> Python scalar)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


class FeatureArchive:
    """Read a feature archive; the layout is checked when it is opened.

    Attributes:
        path: the file.
        utt_ids: utterance ids, in file order.
        offsets: int64 ``[num_utts + 1]``.
        dim: feature dimension.
        num_frames: total frames.
        attrs: the file's attributes as a dict of Python values.

    Raises (on open):
        InputError: naming the file, when it is missing, not HDF5, truncated, or its datasets and
            attributes are inconsistent (offsets not monotonic, ``offsets[-1]`` not the frame count, one
            offset too many or too few, a required attribute missing...).

    The HDF5 handle stays open until :meth:`close` (or the end of a ``with`` block). Pickling reopens the
    file by path, so an archive can be handed to DataLoader worker processes.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._open()

    def _fail(self, message: str) -> InputError:
        return InputError(f"bad feature archive: {message}", self.path)

    def _open(self) -> None:
        if not self.path.is_file():
            raise InputError("feature archive does not exist", self.path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise self._fail(f"cannot open as HDF5 (truncated or corrupt?): {e}") from e
        try:
            self._validate()
        except InputError:
            self.close()
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            self.close()  # h5py raises any of these on corrupt metadata
            raise self._fail(f"cannot read ({type(e).__name__}: {e}); the file is truncated or corrupt") from e

    def _validate(self) -> None:
        f = self._file
        for name in ("feats", "utt_ids", "offsets"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise self._fail(f"dataset /{name} is missing")
        attrs = {k: h5_attr_value(v) for k, v in f.attrs.items()}
        missing = [a for a in REQUIRED_ATTRS if a not in attrs]
        if missing:
            raise self._fail(f"attribute(s) missing: {', '.join(missing)}")
        if attrs["format"] != FORMAT_NAME:
            raise self._fail(f"format is {attrs['format']!r}, not {FORMAT_NAME!r}")
        if attrs["format_version"] > FORMAT_VERSION:
            raise self._fail(f"format version {attrs['format_version']} is newer than this reader's ({FORMAT_VERSION})")
        self.attrs: dict[str, Any] = attrs
        feats = f["feats"]
        if feats.ndim != 2 or feats.dtype != np.float32:
            raise self._fail(f"/feats must be float32 [frames, dim], not {feats.dtype} {feats.shape}")
        offsets = f["offsets"][()]
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
            raise self._fail(f"/offsets must be a 1-D integer array, not {offsets.dtype} {offsets.shape}")
        offsets = offsets.astype(np.int64)
        utt_ids = [str(u) for u in f["utt_ids"].asstr()[()]] if f["utt_ids"].shape != (0,) else []
        if len(offsets) != len(utt_ids) + 1:
            raise self._fail(f"{len(utt_ids)} utterance ids but {len(offsets)} offsets (expected {len(utt_ids) + 1})")
        if offsets[0] != 0:
            raise self._fail(f"offsets[0] is {offsets[0]}, not 0")
        if np.any(np.diff(offsets) < 0):
            bad = int(np.argmax(np.diff(offsets) < 0))
            raise self._fail(f"offsets decrease at utterance {bad + 1} ({utt_ids[bad]!r})")
        if offsets[-1] != feats.shape[0]:
            raise self._fail(f"offsets end at {offsets[-1]} but /feats has {feats.shape[0]} frames")
        index = {u: i for i, u in enumerate(utt_ids)}
        if len(index) != len(utt_ids):
            raise self._fail("utterance ids repeat")
        self.utt_ids: list[str] = utt_ids
        self.offsets: np.ndarray = offsets
        self.dim: int = int(feats.shape[1])
        self.num_frames: int = int(feats.shape[0])
        self._index = index
        if "cmvn" in f:
            self._validate_cmvn()
        if INDEX_DIGEST_ATTR in attrs:
            self._check_index_digest()

    def _check_index_digest(self) -> None:
        f = self._file
        cmvn = None
        if "cmvn" in f:
            group = f["cmvn"]
            keys = [str(k) for k in group["keys"].asstr()[()]] if group["keys"].shape != (0,) else []
            cmvn = (keys, group["stats"][()], group["utt_group"][()])
        skipped = self.skipped_utt_ids
        if index_digest(self.utt_ids, self.offsets, self.attrs, cmvn, skipped) != self.attrs[INDEX_DIGEST_ATTR]:
            raise self._fail(
                "the checksum of its utterance ids, offsets and attributes does not match (index_sha256): the file "
                "is corrupt"
            )

    def _validate_cmvn(self) -> None:
        group = self._file["cmvn"]
        for name in ("keys", "stats", "utt_group"):
            if name not in group:
                raise self._fail(f"dataset /cmvn/{name} is missing")
        num_keys = group["keys"].shape[0]
        base_dim = self.dim // (int(self.attrs.get("delta_order", 0)) + 1)
        if group["stats"].shape != (num_keys, 2, base_dim + 1):
            raise self._fail(f"/cmvn/stats has shape {group['stats'].shape}, expected {(num_keys, 2, base_dim + 1)}")
        utt_group = group["utt_group"][()]
        if utt_group.shape != (len(self.utt_ids),) or (
            utt_group.size and (utt_group.min() < 0 or utt_group.max() >= num_keys)
        ):
            raise self._fail("/cmvn/utt_group does not match the utterances or the keys")

    # -- access ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __contains__(self, utt: str) -> bool:
        return utt in self._index

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(utt_id, feats)`` in file order."""
        for utt in self.utt_ids:
            yield utt, self.read(utt)

    @property
    def feature_type(self) -> str:
        """``"fbank"``, ``"mfcc"``, or whatever an import named it."""
        return str(self.attrs["feature_type"])

    @property
    def options(self) -> FeatureOptions | None:
        """The extraction options, or None when unknown (imported features)."""
        values = json.loads(self.attrs["options"])
        return FeatureOptions.from_dict(values) if values else None

    @property
    def cmvn(self) -> str:
        """CMVN kind applied to ``/feats``: speaker, utterance or none."""
        return str(self.attrs["cmvn"])

    @property
    def skipped_utt_ids(self) -> list[str]:
        """Utterances left out when the archive was written (bad audio)."""
        if "skipped_utt_ids" not in self._file:
            return []
        return [str(u) for u in self._file["skipped_utt_ids"].asstr()[()]]

    def utt_index(self, utt: str) -> int:
        """Position of ``utt`` in the archive; KeyError if absent."""
        return self._index[utt]

    def num_frames_of(self, utt: str) -> int:
        """Frames of one utterance."""
        i = self._index[utt]
        return int(self.offsets[i + 1] - self.offsets[i])

    def _read(self, start: int, end: int) -> np.ndarray:
        try:
            return self._file["feats"][start:end]
        except (OSError, RuntimeError, ValueError) as e:  # a checksum error, corrupt chunk metadata
            raise self._fail(f"cannot read frames {start}..{end}: {e}") from e

    def read(self, utt: str) -> np.ndarray:
        """Features of one utterance: float32 ``[frames, dim]``. KeyError if the utterance is absent."""
        i = self._index[utt]
        return self._read(int(self.offsets[i]), int(self.offsets[i + 1]))

    def read_frames(self, start: int, end: int) -> np.ndarray:
        """Rows ``start:end`` of ``/feats`` (frames of consecutive utterances)."""
        return self._read(int(start), int(end))

    def read_all(self) -> np.ndarray:
        """All frames into RAM: float32 ``[num_frames, dim]``, in the order of :attr:`offsets`."""
        return self._read(0, self.num_frames)

    def frame_utt_index(self) -> np.ndarray:
        """int64 ``[num_frames]``: for each frame, the position of its utterance in :attr:`utt_ids`."""
        return np.repeat(np.arange(len(self.utt_ids), dtype=np.int64), np.diff(self.offsets))

    def cmvn_stats(self) -> dict[str, np.ndarray] | None:
        """CMVN statistics per speaker (or utterance): key -> float64 ``[2, base_dim + 1]``; None if absent."""
        if "cmvn" not in self._file:
            return None
        group = self._file["cmvn"]
        keys = [str(k) for k in group["keys"].asstr()[()]] if group["keys"].shape != (0,) else []
        stats = group["stats"][()]
        return {k: stats[i] for i, k in enumerate(keys)}

    def cmvn_utt_group(self) -> np.ndarray | None:
        """int32 ``[num_utts]``: index of each utterance's CMVN group in :meth:`cmvn_stats` order; None if absent."""
        if "cmvn" not in self._file:
            return None
        return self._file["cmvn/utt_group"][()]

    # -- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HDF5 handle."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None

    def __enter__(self) -> FeatureArchive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._file = None
        self._open()

    def __repr__(self) -> str:
        return f"FeatureArchive({str(self.path)!r}: {len(self.utt_ids)} utts, {self.num_frames} frames, dim {self.dim})"
