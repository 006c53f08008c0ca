"""Frame alignments of a data dir in HDF5 (``ali.h5``): training targets that join the feature archive by offset.

Layout (DESIGN.md, "Feature archive"; one row per frame of the feature archive, in its order)::

    /pdf_ids          int32 [total_frames]   pdf id (senone) per frame; -1 in utterances that failed
    /phone_ids        int32 [total_frames]   phone id per frame (phones.txt ids); -1 where failed
    /tstate_ids       int32 [total_frames]   transition-state id per frame (0-based); -1 where failed
    /utt_ids          utf-8 strings [num_utts]      == the feature archive's /utt_ids
    /offsets          int64 [num_utts + 1]          == the feature archive's /offsets
    /failed_utt_ids   utf-8 strings [num_failed]    utterances without an alignment
    /failed_reasons   utf-8 strings [num_failed]    why, in words

Attributes: ``format`` ("asr-alignment-archive"), ``format_version``, ``model_dir`` (the model that
aligned), ``feature_archive`` (path), ``feature_type``, ``num_pdfs``, ``num_transition_states``,
``transition_states_sha256`` (hash of the model's ``(phone, hmm_state, pdf_id)`` table, the meaning of
``/tstate_ids``), ``num_failed``, ``failed_utts`` (JSON list of ``[utt_id, reason]``), ``asr_version``.

Every utterance of the feature archive has a row range, so ``feats[offsets[i]:offsets[i+1]]`` and
``pdf_ids[offsets[i]:offsets[i+1]]`` always belong together; an utterance that failed to align (or had
no transcript) is *marked* (all its frames -1, its id in ``/failed_utt_ids``), never silently dropped.
Training code selects frames with ``pdf_ids >= 0`` (:meth:`AlignmentArchive.frame_mask`).

:func:`write_alignment_archive` writes atomically; :class:`AlignmentArchive` validates on open (shapes,
offsets, id ranges, failed utterances all -1 and the others none) and refuses a truncated or
inconsistent file with an :class:`~asr.errors.InputError` naming it; :meth:`AlignmentArchive.check_matches`
checks utterance order and frame counts against a feature archive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import asr
from asr.atomic import atomic_path
from asr.errors import InputError
from asr.features.archive import h5_attr_value

FORMAT_NAME = "asr-alignment-archive"
FORMAT_VERSION = 1
FRAME_DATASETS = ("pdf_ids", "phone_ids", "tstate_ids")
REQUIRED_ATTRS = ("format", "format_version", "model_dir", "num_pdfs", "num_transition_states", "num_failed")
_STR = h5py.string_dtype("utf-8")


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=object)


def write_alignment_archive(
    path: str | os.PathLike,
    utt_ids: Sequence[str],
    offsets: np.ndarray,
    pdf_ids: np.ndarray,
    phone_ids: np.ndarray,
    tstate_ids: np.ndarray,
    failed: Mapping[str, str],
    attrs: Mapping[str, Any],
) -> None:
    """Write ``ali.h5`` atomically (see the module docstring).

    Args:
        path: output file.
        utt_ids, offsets: the feature archive's utterance ids and offsets ``[num_utts + 1]``.
        pdf_ids, phone_ids, tstate_ids: int [total_frames], -1 in the frames of failed utterances.
        failed: utterance id -> reason, for every utterance without an alignment.
        attrs: at least ``model_dir``, ``num_pdfs``, ``num_transition_states``; str/int/float/bool values.

    Raises:
        ValueError: inconsistent arrays (a caller's bug): lengths, -1 outside failed utterances, ...
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    arrays = {name: np.asarray(a, dtype=np.int32) for name, a in zip(FRAME_DATASETS, (pdf_ids, phone_ids, tstate_ids))}
    total = int(offsets[-1]) if offsets.size else 0
    if offsets.shape != (len(utt_ids) + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must be [num_utts + 1], start at 0 and not decrease")
    for name, a in arrays.items():
        if a.shape != (total,):
            raise ValueError(f"{name} has shape {a.shape}, expected ({total},)")
    unknown = sorted(set(failed) - set(utt_ids))
    if unknown:
        raise ValueError(f"failed utterances not in utt_ids: {unknown[:5]}")
    problem = _check_failed_marking(list(utt_ids), offsets, arrays, set(failed))
    if problem:
        raise ValueError(problem)
    failed_ids = [u for u in utt_ids if u in failed]  # archive order
    all_attrs = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "asr_version": asr.__version__,
        "num_failed": len(failed_ids),
        "failed_utts": json.dumps([[u, failed[u]] for u in failed_ids]),
        **attrs,
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a, chunks=True if a.size else None, fletcher32=bool(a.size))
            f.create_dataset("utt_ids", data=_strings(utt_ids), dtype=_STR)
            f.create_dataset("offsets", data=offsets)
            f.create_dataset("failed_utt_ids", data=_strings(failed_ids), dtype=_STR)
            f.create_dataset("failed_reasons", data=_strings([failed[u] for u in failed_ids]), dtype=_STR)
            for key, value in all_attrs.items():
                f.attrs[key] = value


def _check_failed_marking(
    utt_ids: list[str], offsets: np.ndarray, arrays: Mapping[str, np.ndarray], failed: set[str]
) -> str | None:
    """Return a description of the first inconsistency between -1 frames and the failed set, or None."""
    lengths = np.diff(offsets)
    utt_of_frame = np.repeat(np.arange(len(utt_ids)), lengths)
    failed_utt = np.array([u in failed for u in utt_ids], dtype=bool)
    failed_frame = failed_utt[utt_of_frame] if utt_of_frame.size else np.zeros(0, dtype=bool)
    for name, a in arrays.items():
        negative = a < 0
        bad = np.flatnonzero(negative != failed_frame)
        if bad.size:
            utt = utt_ids[int(utt_of_frame[bad[0]])]
            if failed_frame[bad[0]]:
                return f"/{name}: utterance {utt!r} is listed as failed but has frame values >= 0"
            return f"/{name}: utterance {utt!r} has a negative value but is not listed as failed"
        if np.any(a[negative] != -1):
            return f"/{name}: negative values other than -1"
    return None


class AlignmentArchive:
    """Read and validate an ``ali.h5``; everything is loaded into memory (int32 per frame: small).

    Attributes:
        path: the file.
        utt_ids: utterance ids (the feature archive's order); offsets: int64 ``[num_utts + 1]``.
        pdf_ids, phone_ids, tstate_ids: int32 ``[num_frames]``, -1 in failed utterances.
        failed: utterance id -> reason (archive order).
        attrs: the file attributes as Python values.

    Raises (on open):
        InputError naming the file: missing, not HDF5 (truncated), a dataset or attribute missing,
        inconsistent shapes or offsets, ids out of range, -1 frames that do not match the failed list.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("alignment archive does not exist", self.path)
        try:
            with h5py.File(self.path, "r") as f:
                self._load(f)
        except InputError:
            raise
        except OSError as e:
            raise self._fail(f"cannot read as HDF5 (truncated or corrupt?): {e}") from e
        except (KeyError, ValueError, TypeError) as e:
            raise self._fail(f"cannot read ({type(e).__name__}: {e}); the file is truncated or corrupt") from e

    def _fail(self, message: str) -> InputError:
        return InputError(f"bad alignment archive: {message}", self.path)

    def _load(self, f: h5py.File) -> None:
        for name in (*FRAME_DATASETS, "utt_ids", "offsets", "failed_utt_ids", "failed_reasons"):
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

        def strings(name: str) -> list[str]:
            return [str(u) for u in f[name].asstr()[()]] if f[name].shape != (0,) else []

        utt_ids = strings("utt_ids")
        offsets = f["offsets"][()]
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or offsets.shape[0] != len(utt_ids) + 1:
            raise self._fail(f"/offsets must be int [{len(utt_ids) + 1}], not {offsets.dtype} {offsets.shape}")
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise self._fail("/offsets must start at 0 and never decrease")
        if len(set(utt_ids)) != len(utt_ids):
            raise self._fail("utterance ids repeat")
        total = int(offsets[-1])
        arrays = {}
        for name in FRAME_DATASETS:
            a = f[name][()]
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise self._fail(f"/{name} must be a 1-D integer array, not {a.dtype} {a.shape}")
            if a.shape[0] != total:
                raise self._fail(f"/{name} has {a.shape[0]} frames but the offsets end at {total}")
            arrays[name] = a.astype(np.int32)
        limits = {"pdf_ids": int(attrs["num_pdfs"]), "tstate_ids": int(attrs["num_transition_states"])}
        for name, limit in limits.items():
            if arrays[name].size and arrays[name].max() >= limit:
                raise self._fail(f"/{name} holds {int(arrays[name].max())}, outside [0, {limit})")
        failed_ids = strings("failed_utt_ids")
        reasons = strings("failed_reasons")
        if len(reasons) != len(failed_ids) or len(failed_ids) != int(attrs["num_failed"]):
            raise self._fail(
                f"{len(failed_ids)} failed utterance ids, {len(reasons)} reasons, num_failed {attrs['num_failed']}"
            )
        unknown = sorted(set(failed_ids) - set(utt_ids))
        if unknown:
            raise self._fail(f"failed utterance {unknown[0]!r} is not in /utt_ids")
        problem = _check_failed_marking(utt_ids, offsets, arrays, set(failed_ids))
        if problem:
            raise self._fail(problem)
        self.utt_ids: list[str] = utt_ids
        self.offsets: np.ndarray = offsets
        self.pdf_ids: np.ndarray = arrays["pdf_ids"]
        self.phone_ids: np.ndarray = arrays["phone_ids"]
        self.tstate_ids: np.ndarray = arrays["tstate_ids"]
        self.failed: dict[str, str] = dict(zip(failed_ids, reasons))
        self._index = {u: i for i, u in enumerate(utt_ids)}

    # -- access ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.utt_ids)

    @property
    def num_frames(self) -> int:
        """Total frames (= the feature archive's)."""
        return int(self.offsets[-1])

    @property
    def model_dir(self) -> str:
        """The model directory that made the alignments."""
        return str(self.attrs["model_dir"])

    @property
    def num_pdfs(self) -> int:
        """Number of pdfs of that model."""
        return int(self.attrs["num_pdfs"])

    def utt_index(self, utt: str) -> int:
        """Position of ``utt``; KeyError if absent."""
        return self._index[utt]

    def aligned(self, utt: str) -> bool:
        """Whether ``utt`` has an alignment (not failed)."""
        return utt in self._index and utt not in self.failed

    def frame_mask(self) -> np.ndarray:
        """bool ``[num_frames]``: frames of aligned utterances (``pdf_ids >= 0``)."""
        return self.pdf_ids >= 0

    def tstates(self, utt: str) -> np.ndarray | None:
        """int32 ``[T]`` transition states of ``utt``, or None when it failed. KeyError if absent."""
        i = self._index[utt]
        if utt in self.failed:
            return None
        return self.tstate_ids[self.offsets[i] : self.offsets[i + 1]]

    def pdfs(self, utt: str) -> np.ndarray | None:
        """int32 ``[T]`` pdf ids of ``utt``, or None when it failed."""
        i = self._index[utt]
        if utt in self.failed:
            return None
        return self.pdf_ids[self.offsets[i] : self.offsets[i + 1]]

    def check_matches(self, utt_ids: Sequence[str], offsets: np.ndarray, what: str = "the feature archive") -> None:
        """Check that this archive has exactly ``utt_ids`` in order with the same ``offsets`` (frame counts).

        Raises:
            InputError: naming this file and the first utterance that differs.
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        if list(utt_ids) != self.utt_ids:
            mine, theirs = self.utt_ids, list(utt_ids)
            k = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
            where = f"at position {k}: {mine[k] if k < len(mine) else '<end>'!r} here, "
            where += f"{theirs[k] if k < len(theirs) else '<end>'!r} in {what}"
            raise self._fail(f"utterances differ from {what} ({len(mine)} vs {len(theirs)} utterances; {where})")
        if not np.array_equal(offsets, self.offsets):
            k = int(np.flatnonzero(np.diff(offsets) != np.diff(self.offsets))[0])
            raise self._fail(
                f"utterance {self.utt_ids[k]!r} has {int(self.offsets[k + 1] - self.offsets[k])} frames here but "
                f"{int(offsets[k + 1] - offsets[k])} in {what}"
            )

    def __repr__(self) -> str:
        return (
            f"AlignmentArchive({str(self.path)!r}: {len(self.utt_ids)} utts, {self.num_frames} frames, "
            f"{len(self.failed)} failed, model {self.model_dir!r})"
        )
