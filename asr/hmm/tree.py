"""Phonetic decision trees for tied-state triphones (Kaldi's ``acc-tree-stats`` + ``build-tree``).

Pipeline (each step vectorised; no Python loop over frames or over all 42^3 windows):

1. :func:`phone_contexts` gives every frame its left and right phone from per-frame phone alignments
   (the neighbouring phone SEGMENTS, 0 at utterance edges); :meth:`TreeStats.from_frames` accumulates
   single-Gaussian statistics (count, sum, sum of squares) per key ``(left, centre, right, pdf_class)``;
   :func:`accumulate_tree_stats` does both.
2. :mod:`asr.hmm.questions` makes the questions (Kaldi's ``cluster-phones``).
3. :func:`build_tree` grows the tree: one root per centre phone or per set of phones sharing a root
   (Kaldi ``roots.txt``: ``shared``/``not-shared``, ``split``/``not-split``), greedy best-first splitting
   of ALL leaves by log-likelihood gain of a diagonal Gaussian with a variance floor (Kaldi's
   ``GaussClusterable``), stopped by ``max_leaves`` (Kaldi ``--max-leaves``), ``min_gain`` (``--thresh``)
   and ``min_count`` (frames per leaf); then leaves of the same root (or of the whole tree) whose merge
   costs less than ``cluster_thresh`` share a pdf (Kaldi ``--cluster-thresh``; -1 = the smallest split
   gain, as Kaldi).
4. The result, :class:`ContextDependencyTree`, implements the team's context dependency interface
   (``context_width`` 3, ``central_position`` 1, ``compute(window, pdf_class) -> pdf_id``, ``num_pdfs``)
   plus ``compute_many`` (vectorised), ``pdfs_for(phone, pdf_class)``, leaf statistics and JSON files.
   :class:`MonophoneContextDependency` is the width-1 case.

``python -m asr.hmm.tree show tree.json [--phones phones.txt] [--draw]`` prints a tree (Kaldi's
``tree-info`` / ``draw-tree``).

Choosing ``max_leaves``: :func:`suggest_max_leaves` (about sqrt(number of frames); see its docstring).
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from asr.atomic import atomic_path, atomic_write
from asr.errors import ConfigError, InputError
from asr.files import read_json

if TYPE_CHECKING:
    from asr.hmm.questions import QuestionSet

logger = logging.getLogger(__name__)

LOG_2PI = math.log(2.0 * math.pi)
DEFAULT_VAR_FLOOR = 0.01  # Kaldi acc-tree-stats --var-floor

KEY_LEFT, KEY_CENTRE, KEY_RIGHT, KEY_PDF_CLASS = 0, 1, 2, 3
KEY_NAMES = ("left", "centre", "right", "pdf_class")
CD_FORMAT = "asr.context_dependency"

_MAX_PHONE = 32767  # keys are packed into 16-bit fields
_MAX_PDF_CLASSES = 1000  # per phone (HMM topologies have a handful; a huge number is a corrupt file)
_MAX_PDF_CLASS = 65535


# ----------------------------------------------------------------------------------------------------
# Gaussian objective


def gaussian_objf(
    count: np.ndarray | float, sums: np.ndarray, sumsqs: np.ndarray, var_floor: float = DEFAULT_VAR_FLOOR
) -> np.ndarray:
    """Log-likelihood of data under its own ML diagonal Gaussian with floored variance (Kaldi's Objf).

    Args:
        count: [...] frame counts.
        sums: [..., D] sums of the frames.
        sumsqs: [..., D] sums of squared frames.
        var_floor: absolute variance floor.

    Returns:
        [...] float64: ``count * (-0.5 * sum_d var_d / fvar_d - 0.5 * (sum_d log fvar_d + D log 2pi))`` with
        ``fvar = max(var, var_floor)``; 0 where count <= 0. This is the exact log-likelihood of the
        frames under the floored Gaussian, so a split's gain (children minus parent) is never negative.
    """
    count = np.asarray(count, dtype=np.float64)
    sums = np.asarray(sums, dtype=np.float64)
    sumsqs = np.asarray(sumsqs, dtype=np.float64)
    dim = sums.shape[-1]
    positive = count > 0
    safe = np.where(positive, count, 1.0)[..., None]
    mean = sums / safe
    var = sumsqs / safe - mean * mean
    fvar = np.maximum(var, var_floor)
    per_frame = -0.5 * (var / fvar).sum(-1) - 0.5 * (np.log(fvar).sum(-1) + dim * LOG_2PI)
    return np.where(positive, per_frame * np.where(positive, count, 0.0), 0.0)


def _objf_packed(packed: np.ndarray, var_floor: float) -> np.ndarray:
    """:func:`gaussian_objf` of packed rows ``[..., 1 + 2D]`` = (count, sums, sumsqs)."""
    dim = (packed.shape[-1] - 1) // 2
    return gaussian_objf(packed[..., 0], packed[..., 1 : 1 + dim], packed[..., 1 + dim :], var_floor)


# ----------------------------------------------------------------------------------------------------
# Statistics


def _pack_keys(keys: np.ndarray) -> np.ndarray:
    k = keys.astype(np.int64)
    return (k[:, 0] << 48) | (k[:, 1] << 32) | (k[:, 2] << 16) | k[:, 3]


def _unpack_keys(packed: np.ndarray) -> np.ndarray:
    out = np.empty((packed.shape[0], 4), dtype=np.int32)
    out[:, 0] = (packed >> 48) & 0xFFFF
    out[:, 1] = (packed >> 32) & 0xFFFF
    out[:, 2] = (packed >> 16) & 0xFFFF
    out[:, 3] = packed & 0xFFFF
    return out


def _group_sum(packed: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sum rows of each array in ``columns`` over equal ``packed`` keys; returns (sorted unique keys, sums)."""
    if packed.size == 0:
        return packed.copy(), [np.zeros((0,) + c.shape[1:], dtype=np.float64) for c in columns]
    order = np.argsort(packed, kind="stable")
    sorted_keys = packed[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sums = [np.add.reduceat(np.asarray(c, dtype=np.float64)[order], starts, axis=0) for c in columns]
    return sorted_keys[starts], sums


class TreeStats:
    """Single-Gaussian statistics per triphone key ``(left, centre, right, pdf_class)``.

    Attributes:
        keys: int32 [K, 4], sorted and unique; 0 in left/right = utterance boundary.
        count: float64 [K] frame counts.
        sums: float64 [K, D] sums of feature vectors.
        sumsqs: float64 [K, D] sums of squared feature vectors.
    """

    def __init__(self, keys: np.ndarray, count: np.ndarray, sums: np.ndarray, sumsqs: np.ndarray):
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 4)
        count = np.asarray(count, dtype=np.float64).reshape(-1)
        sums = np.asarray(sums, dtype=np.float64)
        sumsqs = np.asarray(sumsqs, dtype=np.float64)
        if sums.ndim != 2 or sums.shape != sumsqs.shape or sums.shape[0] != keys.shape[0]:
            raise ValueError(
                f"inconsistent shapes: keys {keys.shape}, count {count.shape}, sums {sums.shape}, sumsqs {sumsqs.shape}"
            )
        if count.shape[0] != keys.shape[0]:
            raise ValueError(f"keys {keys.shape} and count {count.shape} differ in length")
        _check_key_ranges(keys)
        packed, (self.count, self.sums, self.sumsqs) = _group_sum(_pack_keys(keys), count, sums, sumsqs)
        self.keys = _unpack_keys(packed)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.sums.shape[1]

    @property
    def num_keys(self) -> int:
        """Number of distinct keys K."""
        return self.keys.shape[0]

    @property
    def total_count(self) -> float:
        """Total number of frames."""
        return float(self.count.sum())

    @classmethod
    def empty(cls, dim: int) -> TreeStats:
        """Return statistics with no keys for features of dimension ``dim``."""
        return cls(np.zeros((0, 4), np.int64), np.zeros(0), np.zeros((0, dim)), np.zeros((0, dim)))

    @classmethod
    def from_frames(
        cls,
        left: np.ndarray,
        centre: np.ndarray,
        right: np.ndarray,
        pdf_class: np.ndarray,
        feats: np.ndarray,
        *,
        chunk_frames: int = 65536,
    ) -> TreeStats:
        """Accumulate statistics from per-frame arrays (vectorised: sort by key, then ``np.add.reduceat``).

        Args:
            left, centre, right, pdf_class: int [T] per-frame key fields (see :func:`phone_contexts`).
            feats: [T, D] features (float32 or float64).
            chunk_frames: frames processed at once (bounds the float64 temporaries).

        Returns:
            The statistics of the T frames.
        """
        feats = np.asarray(feats)
        if feats.ndim != 2:
            raise ValueError(f"feats must be [T, D], got shape {feats.shape}")
        num_frames = feats.shape[0]
        fields = [np.asarray(a).reshape(-1) for a in (left, centre, right, pdf_class)]
        for name, a in zip(KEY_NAMES, fields, strict=True):
            if a.shape[0] != num_frames:
                raise ValueError(f"{name} has {a.shape[0]} frames, feats has {num_frames}")
        keys = np.stack(fields, axis=1).astype(np.int64) if num_frames else np.zeros((0, 4), np.int64)
        _check_key_ranges(keys)
        packed = _pack_keys(keys)
        parts_keys, parts_count, parts_sums, parts_sumsqs = [], [], [], []
        for start in range(0, num_frames, chunk_frames):
            sl = slice(start, start + chunk_frames)
            x = feats[sl].astype(np.float64)
            uniq, (c, s, ss) = _group_sum(packed[sl], np.ones(x.shape[0]), x, x * x)
            parts_keys.append(uniq)
            parts_count.append(c)
            parts_sums.append(s)
            parts_sumsqs.append(ss)
        if not parts_keys:
            return cls.empty(feats.shape[1])
        if len(parts_keys) == 1:
            return cls(_unpack_keys(parts_keys[0]), parts_count[0], parts_sums[0], parts_sumsqs[0])
        return cls(
            _unpack_keys(np.concatenate(parts_keys)),
            np.concatenate(parts_count),
            np.concatenate(parts_sums),
            np.concatenate(parts_sumsqs),
        )

    def merge(self, other: TreeStats) -> TreeStats:
        """Return the sum of two statistics (e.g. from parallel jobs)."""
        if other.dim != self.dim:
            raise ValueError(f"dimension mismatch: {self.dim} vs {other.dim}")
        return TreeStats(
            np.concatenate([self.keys, other.keys]),
            np.concatenate([self.count, other.count]),
            np.concatenate([self.sums, other.sums]),
            np.concatenate([self.sumsqs, other.sumsqs]),
        )

    __add__ = merge

    def packed(self) -> np.ndarray:
        """Return [K, 1 + 2D] float64 rows ``(count, sums, sumsqs)``."""
        return np.concatenate([self.count[:, None], self.sums, self.sumsqs], axis=1)

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics to an ``.npz`` file (no pickled objects), atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    format=np.array("asr.tree_stats"),
                    keys=self.keys,
                    count=self.count,
                    sums=self.sums,
                    sumsqs=self.sumsqs,
                )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TreeStats:
        """Read statistics written by :meth:`save`.

        Raises:
            InputError: unreadable file, missing arrays, inconsistent shapes or invalid keys.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != "asr.tree_stats":
                    raise InputError("not a tree statistics file (format tag 'asr.tree_stats' missing)", path)
                arrays = {k: data[k] for k in ("keys", "count", "sums", "sumsqs")}
        except InputError:
            raise
        except KeyError as e:
            raise InputError(f"array {e} missing", path) from e
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"cannot read tree statistics: {e}", path) from e
        try:
            return cls(arrays["keys"], arrays["count"], arrays["sums"], arrays["sumsqs"])
        except ValueError as e:
            raise InputError(f"bad tree statistics: {e}", path) from e


def _check_key_ranges(keys: np.ndarray) -> None:
    if keys.size == 0:
        return
    lo = keys.min(axis=0)
    hi = keys.max(axis=0)
    if (lo < 0).any():
        field_name = KEY_NAMES[int(np.argmax(lo < 0))]
        raise ValueError(f"negative {field_name} in tree statistics keys")
    if (hi[:3] > _MAX_PHONE).any():
        raise ValueError(f"phone id above {_MAX_PHONE} in tree statistics keys")
    if hi[3] > _MAX_PDF_CLASS:
        raise ValueError(f"pdf_class above {_MAX_PDF_CLASS} in tree statistics keys")
    if keys.shape[0] and lo[1] == 0:
        raise ValueError("centre phone 0 (epsilon/boundary) in tree statistics keys")


def phone_contexts(
    phone_ids: np.ndarray,
    offsets: np.ndarray | None = None,
    segment_starts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right context phone of every frame, from per-frame phone alignments.

    A frame's left (right) context is the phone of the previous (next) phone SEGMENT of the same
    utterance, 0 at the utterance edges. A segment is a run of frames with the same phone id; two
    consecutive instances of the same phone (``... AH | AH ...``) look like one segment unless
    ``segment_starts`` marks where the second begins (derive it from transition ids / the first HMM
    state when the alignment has them).

    Args:
        phone_ids: int [T] phone id per frame (all > 0), utterances concatenated.
        offsets: int [U + 1] utterance boundaries (ali.h5's ``/offsets``); ``None`` = one utterance.
        segment_starts: optional bool [T], True where a new phone instance begins.

    Returns:
        ``(left, right)``, two int32 [T] arrays.
    """
    phone_ids = np.asarray(phone_ids).reshape(-1)
    num_frames = phone_ids.shape[0]
    if num_frames == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    if (phone_ids <= 0).any():
        raise ValueError(f"phone id {int(phone_ids[np.argmax(phone_ids <= 0)])} <= 0 in alignment")
    if offsets is None:
        offsets = np.array([0, num_frames])
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets[0] != 0 or offsets[-1] != num_frames or (np.diff(offsets) < 0).any():
        raise ValueError(f"offsets must rise from 0 to {num_frames}")
    utt_start = np.zeros(num_frames, dtype=bool)
    utt_start[offsets[:-1][offsets[:-1] < num_frames]] = True
    starts = utt_start.copy()
    starts[1:] |= phone_ids[1:] != phone_ids[:-1]
    if segment_starts is not None:
        segment_starts = np.asarray(segment_starts, dtype=bool).reshape(-1)
        if segment_starts.shape[0] != num_frames:
            raise ValueError(f"segment_starts has {segment_starts.shape[0]} frames, phone_ids {num_frames}")
        starts |= segment_starts
    seg_of_frame = np.cumsum(starts) - 1
    seg_phone = phone_ids[starts].astype(np.int32)
    seg_first = utt_start[starts]  # segment opens an utterance
    seg_left = np.zeros_like(seg_phone)
    seg_left[1:] = seg_phone[:-1]
    seg_left[seg_first] = 0
    seg_right = np.zeros_like(seg_phone)
    seg_right[:-1] = seg_phone[1:]
    seg_right[:-1][seg_first[1:]] = 0
    return seg_left[seg_of_frame], seg_right[seg_of_frame]


def accumulate_tree_stats(
    phone_ids: np.ndarray,
    pdf_classes: np.ndarray,
    feats: np.ndarray,
    offsets: np.ndarray | None = None,
    segment_starts: np.ndarray | None = None,
) -> TreeStats:
    """Tree statistics from aligned frames (Kaldi's ``acc-tree-stats``).

    Args:
        phone_ids: int [T] phone per frame; pdf_classes: int [T] HMM pdf-class per frame;
        feats: [T, D] features; offsets: [U + 1] utterance boundaries (None = one utterance);
        segment_starts: see :func:`phone_contexts`.

    Returns:
        :class:`TreeStats` keyed by (left, centre, right, pdf_class).
    """
    left, right = phone_contexts(phone_ids, offsets, segment_starts)
    return TreeStats.from_frames(left, phone_ids, right, pdf_classes, feats)


# ----------------------------------------------------------------------------------------------------
# Roots and options


@dataclass(frozen=True)
class RootSpec:
    """One tree root (a line of Kaldi's ``roots.txt``).

    Attributes:
        phones: centre phones sharing this root (e.g. SIL and SPN).
        shared: all pdf-classes start in one leaf and are separated by pdf-class questions as the data
            asks (Kaldi ``shared``); False: one leaf per pdf-class from the start (``not-shared``).
        split: whether the root may be split by questions (Kaldi ``split``). ``not-shared not-split``
            gives one pdf per pdf-class and no context dependency (e.g. for silence).
    """

    phones: tuple[int, ...]
    shared: bool = True
    split: bool = True


def make_roots(
    phones: Iterable[int],
    shared_phone_sets: Sequence[Sequence[int]] = (),
    unsplit_phones: Iterable[int] = (),
) -> list[RootSpec]:
    """Return roots: one per set in ``shared_phone_sets``, one per remaining phone (all ``shared split``).

    A root containing any of ``unsplit_phones`` becomes ``not-shared not-split`` (one pdf per
    pdf-class, no context). Roots are ordered by their smallest phone.
    """
    phones = sorted({int(p) for p in phones})
    unsplit = {int(p) for p in unsplit_phones}
    taken: dict[int, int] = {}
    groups: list[tuple[int, ...]] = []
    for i, s in enumerate(shared_phone_sets):
        group = tuple(sorted({int(p) for p in s}))
        for p in group:
            if p in taken:
                raise ConfigError(f"phone {p} is in two shared phone sets")
            taken[p] = i
        if group:
            groups.append(group)
    groups.extend((p,) for p in phones if p not in taken)
    groups.sort()
    return [
        RootSpec(g, shared=False, split=False) if set(g) & unsplit else RootSpec(g, shared=True, split=True)
        for g in groups
    ]


def read_roots(path: str | os.PathLike, symbols: Mapping[str, int] | None = None) -> list[RootSpec]:
    """Read a Kaldi ``roots.txt`` / ``roots.int``: ``shared|not-shared split|not-split PHONE...`` per line.

    Phones are integer ids or, with ``symbols`` (``{name: id}``), names.

    Raises:
        InputError: a malformed line, an unknown phone, a phone on two lines (names file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    except UnicodeDecodeError as e:
        raise InputError("file is not UTF-8", path) from e
    roots: list[RootSpec] = []
    seen: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if len(tokens) < 3:
            raise InputError("expected 'shared|not-shared split|not-split PHONE...'", path, number)
        if tokens[0] not in ("shared", "not-shared"):
            raise InputError(f"first field must be 'shared' or 'not-shared', got {tokens[0]!r}", path, number)
        if tokens[1] not in ("split", "not-split"):
            raise InputError(f"second field must be 'split' or 'not-split', got {tokens[1]!r}", path, number)
        phones = []
        for tok in tokens[2:]:
            if symbols is not None and tok in symbols:
                p = symbols[tok]
            else:
                try:
                    p = int(tok)
                except ValueError:
                    raise InputError(f"unknown phone {tok!r}", path, number) from None
            if p <= 0:
                raise InputError(f"phone id must be > 0, got {p}", path, number)
            if p in seen:
                raise InputError(f"phone {tok!r} already on line {seen[p]}", path, number)
            seen[p] = number
            phones.append(p)
        roots.append(RootSpec(tuple(sorted(phones)), shared=tokens[0] == "shared", split=tokens[1] == "split"))
    return roots


def write_roots(path: str | os.PathLike, roots: Sequence[RootSpec], symbols: Mapping[int, str] | None = None) -> None:
    """Write roots in Kaldi ``roots.txt`` form (ids, or names through ``symbols`` = ``{id: name}``)."""
    with atomic_write(path) as f:
        for r in roots:
            names = " ".join(symbols[p] if symbols is not None else str(p) for p in r.phones)
            f.write(f"{'shared' if r.shared else 'not-shared'} {'split' if r.split else 'not-split'} {names}\n")


@dataclass(frozen=True)
class TreeBuildOptions:
    """Options of :func:`build_tree` (Kaldi ``build-tree`` names in brackets).

    Attributes:
        max_leaves: stop splitting at this many leaves; 0 = no limit (``--max-leaves``).
        min_gain: smallest log-likelihood gain (nats) worth a split (``--thresh``, Kaldi default 300).
        min_count: fewest frames a leaf may have after a split.
        var_floor: variance floor of the Gaussian objective (``acc-tree-stats --var-floor``).
        cluster_thresh: after splitting, merge leaves while the cheapest merge loses less than this;
            negative = the smallest split gain (Kaldi default -1); 0 or None = no merging
            (``--cluster-thresh``).
        cluster_scope: ``"root"`` merges only leaves grown from the same initial leaf, i.e. of the same
            root and, in a ``not-shared`` root, of the same pdf-class (Kaldi's
            ``ClusterEventMapRestrictedByMap``); ``"global"`` any two leaves. Leaves without frames are
            never merged (as in Kaldi).
    """

    max_leaves: int = 0
    min_gain: float = 300.0
    min_count: float = 50.0
    var_floor: float = DEFAULT_VAR_FLOOR
    cluster_thresh: float | None = -1.0
    cluster_scope: str = "root"

    def __post_init__(self) -> None:
        if self.max_leaves < 0:
            raise ConfigError(f"max_leaves must be >= 0, got {self.max_leaves}")
        if self.min_count < 0:
            raise ConfigError(f"min_count must be >= 0, got {self.min_count}")
        if self.var_floor <= 0:
            raise ConfigError(f"var_floor must be > 0, got {self.var_floor}")
        if self.cluster_scope not in ("root", "global"):
            raise ConfigError(f"cluster_scope must be 'root' or 'global', got {self.cluster_scope!r}")


def suggest_max_leaves(num_frames: float) -> int:
    """Suggest ``max_leaves`` for ``num_frames`` training frames: ``sqrt(num_frames)``, rounded to 10s.

    The rule fits the leaf counts of Kaldi's recipes within a factor of ~2 (frames at 100/s):
    RM 1.4M frames -> 1800 leaves (rule 1180), mini_librispeech 1.8M -> 2000 (1340), WSJ si84 5.4M -> 2000
    (2320), LibriSpeech 100h 36M -> 4200 (6000), Switchboard 300h 108M -> 11500 (10400); AN4's
    training part (42 min, 254k frames) gets 500, yesno (31 files, ~19k frames) 140. Clipped to
    [20, 20000]. The mean leaf then holds about sqrt(num_frames) frames.
    """
    value = int(round(math.sqrt(max(num_frames, 0.0)) / 10.0)) * 10
    return int(min(max(value, 20), 20000))


def suggest_tree_options(num_frames: float, **overrides) -> TreeBuildOptions:
    """Return :class:`TreeBuildOptions` scaled to the data.

    ``max_leaves`` from :func:`suggest_max_leaves`; ``min_count`` = a tenth of the mean leaf occupancy
    (``0.1 * sqrt(num_frames)``, at least 20 frames: 50 for AN4, 600 for LibriSpeech 100h); the rest at
    Kaldi's defaults. Keyword ``overrides`` replace any field.
    """
    values = {
        "max_leaves": suggest_max_leaves(num_frames),
        "min_count": float(max(20, round(0.1 * math.sqrt(max(num_frames, 0.0))))),
    }
    values.update(overrides)
    return TreeBuildOptions(**values)


# ----------------------------------------------------------------------------------------------------
# Tree nodes and the context dependency objects


@dataclass(frozen=True)
class LeafNode:
    """A leaf: every window reaching it maps to ``pdf``."""

    pdf: int


@dataclass(frozen=True)
class SplitNode:
    """``value(key) in yes`` ? go to ``yes_child`` : go to ``no_child``."""

    key: int
    yes: frozenset[int]
    yes_child: int
    no_child: int


@dataclass(frozen=True)
class TableNode:
    """Go to ``children[value(key)]``; a value missing from the table is invalid."""

    key: int
    children: Mapping[int, int]


Node = LeafNode | SplitNode | TableNode


@runtime_checkable
class ContextDependency(Protocol):
    """The team's context dependency interface (conventions.md), as implemented here."""

    context_width: int
    central_position: int
    num_pdfs: int

    def compute(self, phone_window: Sequence[int], pdf_class: int) -> int: ...

    def compute_many(self, windows: np.ndarray, pdf_classes: np.ndarray) -> np.ndarray: ...

    def pdfs_for(self, phone: int, pdf_class: int) -> list[int]: ...

    def save(self, path: str | os.PathLike) -> None: ...


@dataclass
class LeafStats:
    """Pooled statistics per pdf: ``count`` [P], ``sums`` [P, D], ``sumsqs`` [P, D] (float64)."""

    count: np.ndarray
    sums: np.ndarray
    sumsqs: np.ndarray

    def means_vars(self, var_floor: float = DEFAULT_VAR_FLOOR) -> tuple[np.ndarray, np.ndarray]:
        """Return the single Gaussian per pdf: means [P, D] and floored variances [P, D] (0 / floor if empty)."""
        safe = np.where(self.count > 0, self.count, 1.0)[:, None]
        means = self.sums / safe
        variances = np.maximum(self.sumsqs / safe - means * means, var_floor)
        return means, variances


def _num_pdf_classes_dict(num_pdf_classes: Mapping[int, int]) -> dict[int, int]:
    out = {}
    for p, n in num_pdf_classes.items():
        p, n = int(p), int(n)
        if p <= 0 or p > _MAX_PHONE:
            raise ValueError(f"phone id {p} out of range 1..{_MAX_PHONE}")
        if n <= 0 or n > _MAX_PDF_CLASSES:
            raise ValueError(f"phone {p} has {n} pdf-classes (must be in 1..{_MAX_PDF_CLASSES})")
        out[p] = n
    if not out:
        raise ValueError("no phones")
    return dict(sorted(out.items()))


def _check_pdf_classes(phones: np.ndarray, pdf_classes: np.ndarray, max_class: np.ndarray) -> None:
    bad = (pdf_classes < 0) | (pdf_classes >= max_class[phones])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"pdf_class {int(pdf_classes[i])} invalid for phone {int(phones[i])}")


def _json_lines(header: dict, blocks: dict[str, list]) -> str:
    """JSON with the small ``header`` fields one per line and each list in ``blocks`` one element per line."""
    parts = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in header.items()]
    for k, items in blocks.items():
        if items:
            body = ",\n".join("    " + json.dumps(x) for x in items)
            parts.append(f"  {json.dumps(k)}: [\n{body}\n  ]")
        else:
            parts.append(f"  {json.dumps(k)}: []")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _read_json(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != CD_FORMAT:
        raise InputError(f"not a context dependency file (format tag {CD_FORMAT!r} missing)", path)
    if data.get("version") != 1:
        raise InputError(f"unsupported version {data.get('version')!r} (this reader knows version 1)", path)
    return data


def _int_key_dict(value: object, what: str) -> dict[int, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    out = {}
    for k, v in value.items():
        try:
            key = int(k)
        except ValueError:
            raise ValueError(f"{what}: key {k!r} is not an integer") from None
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{what}[{k}] is not an integer")
        out[key] = v
    return out


class ContextDependencyTree:
    """A triphone decision tree: (left, centre, right) window + pdf-class -> pdf id (senone).

    Node 0 is a table on the centre phone leading to each root's subtree; nodes are stored in pre-order
    (every child index is larger than its parent's). pdf ids are 0..num_pdfs-1, every one used; after
    leaf merging several leaves may share a pdf.

    Attributes:
        context_width: 3. central_position: 1. num_pdfs: number of pdfs.
        nodes: the nodes (:class:`LeafNode`, :class:`SplitNode`, :class:`TableNode`).
        num_pdf_classes: ``{phone: number of pdf-classes}`` for every centre phone.
        roots: the :class:`RootSpec` list the tree was built with.
        pdf_occs: optional float64 [num_pdfs] frames per pdf in the training statistics.
        build_info: optional dict (objective values, options, the split sequence).
    """

    context_width = 3
    central_position = 1

    def __init__(
        self,
        nodes: Sequence[Node],
        num_pdf_classes: Mapping[int, int],
        roots: Sequence[RootSpec],
        pdf_occs: np.ndarray | None = None,
        build_info: dict | None = None,
    ):
        self.nodes = list(nodes)
        self.num_pdf_classes = _num_pdf_classes_dict(num_pdf_classes)
        self.roots = list(roots)
        self.build_info = build_info or {}
        self.phones = tuple(self.num_pdf_classes)
        self._validate()
        self.num_pdfs = 1 + max(n.pdf for n in self.nodes if isinstance(n, LeafNode))
        self.pdf_occs = None if pdf_occs is None else np.asarray(pdf_occs, dtype=np.float64)
        if self.pdf_occs is not None and self.pdf_occs.shape != (self.num_pdfs,):
            raise ValueError(f"pdf_occs has shape {self.pdf_occs.shape}, expected ({self.num_pdfs},)")
        self._build_arrays()
        self._pdfs_for_cache: dict[tuple[int, int], list[int]] = {}

    # -- validation and lookup arrays

    def _validate(self) -> None:
        nodes = self.nodes
        if not nodes:
            raise ValueError("tree has no nodes")
        root = nodes[0]
        if not isinstance(root, TableNode) or root.key != KEY_CENTRE:
            raise ValueError("node 0 must be a table on the centre phone")
        if set(root.children) != set(self.phones):
            raise ValueError("the centre table's phones differ from num_pdf_classes' phones")
        referenced = np.zeros(len(nodes), dtype=np.int64)
        for i, n in enumerate(nodes):
            if isinstance(n, LeafNode):
                if n.pdf < 0:
                    raise ValueError(f"node {i}: negative pdf {n.pdf}")
                continue
            if n.key not in (KEY_LEFT, KEY_CENTRE, KEY_RIGHT, KEY_PDF_CLASS):
                raise ValueError(f"node {i}: invalid key {n.key}")
            children = [n.yes_child, n.no_child] if isinstance(n, SplitNode) else list(n.children.values())
            for c in children:
                if not (i < c < len(nodes)):
                    raise ValueError(f"node {i}: child {c} is not a later node (nodes are stored in pre-order)")
                referenced[c] += 1
            if isinstance(n, SplitNode) and any(v < 0 for v in n.yes):
                raise ValueError(f"node {i}: negative value in question")
        unreferenced = [i for i in range(1, len(nodes)) if referenced[i] == 0]
        if unreferenced:
            raise ValueError(f"node {unreferenced[0]} is not reachable from node 0")
        pdfs = sorted({n.pdf for n in nodes if isinstance(n, LeafNode)})
        if not pdfs or pdfs != list(range(len(pdfs))):
            raise ValueError("pdf ids of the leaves are not 0..num_pdfs-1 without gaps")
        root_phones = [p for r in self.roots for p in r.phones]
        if sorted(root_phones) != list(self.phones):
            raise ValueError("roots do not cover each phone exactly once")

    def _build_arrays(self) -> None:
        values = [p for p in self.phones] + [self.num_pdf_classes[p] for p in self.phones]
        for n in self.nodes:
            if isinstance(n, SplitNode):
                values.extend(n.yes)
            elif isinstance(n, TableNode):
                values.extend(n.children)
        width = max(values) + 2  # last column: values out of range
        num = len(self.nodes)
        key = np.full(num, -1, dtype=np.int64)
        pdf = np.full(num, -1, dtype=np.int64)
        child = np.full((num, width), -1, dtype=np.int64)
        for i, n in enumerate(self.nodes):
            if isinstance(n, LeafNode):
                pdf[i] = n.pdf
            elif isinstance(n, SplitNode):
                key[i] = n.key
                child[i, :] = n.no_child
                child[i, list(n.yes)] = n.yes_child
            else:
                key[i] = n.key
                for v, c in n.children.items():
                    child[i, v] = c
        self._key, self._pdf, self._child, self._width = key, pdf, child, width
        max_class = np.zeros(width, dtype=np.int64)
        for p, c in self.num_pdf_classes.items():
            max_class[p] = c
        self._max_class = max_class

    # -- the interface

    def compute(self, phone_window: Sequence[int], pdf_class: int) -> int:
        """Return the pdf id of HMM state ``pdf_class`` of the centre phone in ``phone_window`` ([l, c, r])."""
        if len(phone_window) != 3:
            raise ValueError(f"window must have 3 phones, got {list(phone_window)}")
        centre = int(phone_window[1])
        if centre not in self.num_pdf_classes:
            raise ValueError(f"centre phone {centre} is not in the tree")
        if not 0 <= pdf_class < self.num_pdf_classes[centre]:
            raise ValueError(f"pdf_class {pdf_class} invalid for phone {centre}")
        n = 0
        while True:
            node = self.nodes[n]
            if isinstance(node, LeafNode):
                return node.pdf
            value = int(pdf_class) if node.key == KEY_PDF_CLASS else int(phone_window[node.key])
            if isinstance(node, SplitNode):
                n = node.yes_child if value in node.yes else node.no_child
            else:
                if value not in node.children:
                    raise ValueError(f"value {value} of {KEY_NAMES[node.key]} not in table of node {n}")
                n = node.children[value]

    def compute_many(self, windows: np.ndarray, pdf_classes: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`compute`: windows int [K, 3], pdf_classes int [K] -> pdf ids int64 [K]."""
        windows = np.asarray(windows, dtype=np.int64)
        pdf_classes = np.asarray(pdf_classes, dtype=np.int64).reshape(-1)
        if windows.ndim != 2 or windows.shape[1] != 3 or windows.shape[0] != pdf_classes.shape[0]:
            raise ValueError(f"windows must be [K, 3] and pdf_classes [K], got {windows.shape}, {pdf_classes.shape}")
        width = self._width
        centre = windows[:, 1]
        bad = (centre <= 0) | (centre >= width - 1)
        bad[~bad] = self._max_class[centre[~bad]] == 0
        if bad.any():
            raise ValueError(f"centre phone {int(centre[np.argmax(bad)])} is not in the tree")
        _check_pdf_classes(centre, pdf_classes, self._max_class)
        # columns 0..2 = window, 3 = pdf_class; out-of-range values go to the last column
        values = np.concatenate([windows, pdf_classes[:, None]], axis=1)
        values = np.where((values < 0) | (values >= width - 1), width - 1, values)
        cur = np.zeros(windows.shape[0], dtype=np.int64)
        active = np.flatnonzero(self._key[cur] >= 0)
        while active.size:
            nodes = cur[active]
            nxt = self._child[nodes, values[active, self._key[nodes]]]
            if (nxt < 0).any():
                j = int(np.argmax(nxt < 0))
                raise ValueError(f"window {windows[active[j]].tolist()} has no entry in table node {int(nodes[j])}")
            cur[active] = nxt
            active = active[self._key[nxt] >= 0]
        return self._pdf[cur]

    def pdfs_for(self, phone: int, pdf_class: int) -> list[int]:
        """Sorted pdf ids that some window ``[l, phone, r]`` (l, r in {0} + tree phones) reaches for ``pdf_class``."""
        cache_key = (int(phone), int(pdf_class))
        cached = self._pdfs_for_cache.get(cache_key)
        if cached is not None:
            return list(cached)
        phone, pdf_class = cache_key
        if phone not in self.num_pdf_classes:
            raise ValueError(f"phone {phone} is not in the tree")
        if not 0 <= pdf_class < self.num_pdf_classes[phone]:
            raise ValueError(f"pdf_class {pdf_class} invalid for phone {phone}")
        universe = frozenset((0, *self.phones))
        found: set[int] = set()
        stack: list[tuple[int, frozenset[int], frozenset[int]]] = [(0, universe, universe)]
        while stack:
            n, lefts, rights = stack.pop()
            node = self.nodes[n]
            if isinstance(node, LeafNode):
                found.add(node.pdf)
                continue
            if node.key in (KEY_CENTRE, KEY_PDF_CLASS):
                value = phone if node.key == KEY_CENTRE else pdf_class
                if isinstance(node, SplitNode):
                    stack.append((node.yes_child if value in node.yes else node.no_child, lefts, rights))
                elif value in node.children:
                    stack.append((node.children[value], lefts, rights))
                continue
            allowed = lefts if node.key == KEY_LEFT else rights
            if isinstance(node, SplitNode):
                branches = [(node.yes_child, allowed & node.yes), (node.no_child, allowed - node.yes)]
            else:
                branches = [(c, allowed & {v}) for v, c in node.children.items()]
            for c, subset in branches:
                if subset:
                    subset = frozenset(subset)
                    stack.append((c, subset, rights) if node.key == KEY_LEFT else (c, lefts, subset))
        result = sorted(found)
        self._pdfs_for_cache[cache_key] = result
        return list(result)

    def leaf_stats(self, stats: TreeStats) -> LeafStats:
        """Pool ``stats`` per pdf (for a single Gaussian per senone to start the triphone GMM from).

        Keys whose centre phone is not in the tree or whose pdf-class is invalid raise ValueError.
        """
        pdf = self.compute_many(stats.keys[:, :3], stats.keys[:, 3])
        count = np.bincount(pdf, weights=stats.count, minlength=self.num_pdfs)
        sums = np.zeros((self.num_pdfs, stats.dim))
        sumsqs = np.zeros((self.num_pdfs, stats.dim))
        np.add.at(sums, pdf, stats.sums)
        np.add.at(sumsqs, pdf, stats.sumsqs)
        return LeafStats(count, sums, sumsqs)

    @property
    def num_leaves(self) -> int:
        """Number of leaf nodes (>= num_pdfs; larger when leaves were merged)."""
        return sum(isinstance(n, LeafNode) for n in self.nodes)

    # -- files

    def to_json_dict(self) -> dict:
        """Return the JSON form (see :meth:`save`)."""
        return {**self._header(), **self._blocks()}

    def _blocks(self) -> dict[str, list]:
        return {
            "roots": [{"phones": list(r.phones), "shared": r.shared, "split": r.split} for r in self.roots],
            "nodes": [self._node_json(i, n) for i, n in enumerate(self.nodes)],
        }

    def _header(self) -> dict:
        header = {
            "format": CD_FORMAT,
            "version": 1,
            "type": "tree",
            "context_width": 3,
            "central_position": 1,
            "num_pdfs": self.num_pdfs,
            "num_leaves": self.num_leaves,
            "num_pdf_classes": {str(p): n for p, n in self.num_pdf_classes.items()},
        }
        if self.pdf_occs is not None:
            header["pdf_occs"] = [round(float(x), 3) for x in self.pdf_occs]
        if self.build_info:
            header["build_info"] = {k: v for k, v in self.build_info.items() if k != "splits"}
        return header

    @staticmethod
    def _node_json(i: int, n: Node) -> dict:
        if isinstance(n, LeafNode):
            return {"id": i, "pdf": n.pdf}
        if isinstance(n, SplitNode):
            return {"id": i, "key": KEY_NAMES[n.key], "yes": sorted(n.yes), "then": n.yes_child, "else": n.no_child}
        return {"id": i, "key": KEY_NAMES[n.key], "table": {str(v): c for v, c in sorted(n.children.items())}}

    def save(self, path: str | os.PathLike) -> None:
        """Write the tree as human-readable JSON, atomically.

        Layout (version 1)::

            {"format": "asr.context_dependency", "version": 1, "type": "tree",
             "context_width": 3, "central_position": 1, "num_pdfs": 412, "num_leaves": 450,
             "num_pdf_classes": {"1": 5, ...}, "pdf_occs": [...], "build_info": {...},
             "roots": [{"phones": [1, 2], "shared": true, "split": true}, ...],       # one per line
             "nodes": [                                                               # one per line, pre-order
               {"id": 0, "key": "centre", "table": {"1": 1, "2": 1, "3": 40, ...}},
               {"id": 1, "key": "pdf_class", "yes": [0], "then": 2, "else": 9},
               {"id": 2, "key": "left", "yes": [0, 1, 2], "then": 3, "else": 4},
               {"id": 3, "pdf": 0}, ...],
             "splits": [{"root": [1, 2], "key": "pdf_class", "yes": [0], "gain": 5120.3, ...}, ...]}

        ``key`` is one of left / centre / right / pdf_class; 0 in a left/right set = utterance boundary.
        """
        blocks = self._blocks()
        if "splits" in self.build_info:
            blocks["splits"] = self.build_info["splits"]
        with atomic_write(path) as f:
            f.write(_json_lines(self._header(), blocks))

    @classmethod
    def from_json_dict(cls, data: dict, path: str | os.PathLike | None = None) -> ContextDependencyTree:
        """Rebuild a tree from :meth:`to_json_dict`'s form; malformed data raises InputError naming ``path``."""
        try:
            if data.get("type") != "tree" or data.get("context_width") != 3 or data.get("central_position") != 1:
                raise ValueError("not a triphone tree (type 'tree', context_width 3, central_position 1)")
            num_pdf_classes = _int_key_dict(data.get("num_pdf_classes"), "num_pdf_classes")
            roots_json = data.get("roots")
            if not isinstance(roots_json, list):
                raise ValueError("'roots' missing or not a list")
            roots = []
            for i, r in enumerate(roots_json):
                if (
                    not isinstance(r, dict)
                    or not isinstance(r.get("phones"), list)
                    or not isinstance(r.get("shared"), bool)
                    or not isinstance(r.get("split"), bool)
                ):
                    raise ValueError(f"roots[{i}] must be an object with 'phones' (list), 'shared' and 'split' (bool)")
                roots.append(RootSpec(tuple(int(p) for p in r["phones"]), r["shared"], r["split"]))
            nodes_json = data.get("nodes")
            if not isinstance(nodes_json, list) or not nodes_json:
                raise ValueError("'nodes' missing or empty")
            key_of = {name: k for k, name in enumerate(KEY_NAMES)}
            nodes: list[Node] = []
            for i, nj in enumerate(nodes_json):
                if not isinstance(nj, dict) or nj.get("id") != i:
                    raise ValueError(f"nodes[{i}] must be an object with 'id': {i}")
                if "pdf" in nj:
                    if not isinstance(nj["pdf"], int):
                        raise ValueError(f"node {i}: pdf is not an integer")
                    nodes.append(LeafNode(nj["pdf"]))
                    continue
                if nj.get("key") not in key_of:
                    raise ValueError(f"node {i}: key must be one of {list(KEY_NAMES)}")
                key = key_of[nj["key"]]
                if "table" in nj:
                    nodes.append(TableNode(key, _int_key_dict(nj["table"], f"node {i} table")))
                elif "yes" in nj:
                    yes = nj["yes"]
                    if not isinstance(yes, list) or not all(isinstance(v, int) for v in yes):
                        raise ValueError(f"node {i}: 'yes' must be a list of integers")
                    then, other = nj.get("then"), nj.get("else")
                    if not isinstance(then, int) or not isinstance(other, int):
                        raise ValueError(f"node {i}: 'then' and 'else' must be node ids")
                    nodes.append(SplitNode(key, frozenset(yes), then, other))
                else:
                    raise ValueError(f"node {i}: neither 'pdf', 'table' nor 'yes'")
            occs = data.get("pdf_occs")
            if not isinstance(data.get("build_info", {}), dict):
                raise ValueError("'build_info' must be an object")
            tree = cls(
                nodes,
                num_pdf_classes,
                roots,
                None if occs is None else np.asarray(occs, np.float64),
                data.get("build_info"),
            )
            if data.get("num_pdfs") != tree.num_pdfs:
                raise ValueError(f"num_pdfs is {data.get('num_pdfs')!r} but the leaves use {tree.num_pdfs} pdfs")
        except (ValueError, TypeError, OverflowError, KeyError, AttributeError, IndexError) as e:
            raise InputError(f"bad context dependency tree: {type(e).__name__}: {e}", path) from e
        return tree

    @classmethod
    def load(cls, path: str | os.PathLike) -> ContextDependencyTree:
        """Read a tree written by :meth:`save`. Raises InputError naming the file when it is malformed."""
        path = Path(path)
        data = _read_json(path)
        tree = cls.from_json_dict(data, path)
        if isinstance(data.get("splits"), list):
            tree.build_info["splits"] = data["splits"]
        return tree


class MonophoneContextDependency:
    """Width-1 context dependency: one pdf per (phone, pdf-class); phones in a shared set share pdfs.

    pdf ids are numbered by phone (sets by their smallest phone), then pdf-class. With a shared set
    (Kaldi ``gmm-init-mono --shared-phones``), pdf-class j of every phone of the set is one pdf.
    """

    context_width = 1
    central_position = 0

    def __init__(self, num_pdf_classes: Mapping[int, int], shared_phone_sets: Sequence[Sequence[int]] = ()):
        self.num_pdf_classes = _num_pdf_classes_dict(num_pdf_classes)
        group_of: dict[int, tuple[int, ...]] = {}
        for s in shared_phone_sets:
            group = tuple(sorted({int(p) for p in s}))
            for p in group:
                if p not in self.num_pdf_classes:
                    raise ValueError(f"shared phone {p} has no pdf-classes")
                if p in group_of:
                    raise ValueError(f"phone {p} is in two shared phone sets")
                group_of[p] = group
        self.shared_phone_sets = sorted({g for g in group_of.values()})
        group_pdfs: dict[tuple[int, ...], list[int]] = {}
        self.pdfs: dict[int, list[int]] = {}
        next_pdf = 0
        for p in self.num_pdf_classes:
            group = group_of.get(p, (p,))
            if group not in group_pdfs:
                n = max(self.num_pdf_classes[q] for q in group)
                group_pdfs[group] = list(range(next_pdf, next_pdf + n))
                next_pdf += n
            self.pdfs[p] = group_pdfs[group][: self.num_pdf_classes[p]]
        self.num_pdfs = next_pdf
        self.phones = tuple(self.num_pdf_classes)
        width = max(self.phones) + 1
        table = np.full((width, max(self.num_pdf_classes.values())), -1, dtype=np.int64)
        for p, ids in self.pdfs.items():
            table[p, : len(ids)] = ids
        self._table = table
        self._max_class = np.array([self.num_pdf_classes.get(p, 0) for p in range(width)], dtype=np.int64)

    def compute(self, phone_window: Sequence[int], pdf_class: int) -> int:
        """Return the pdf id of ``pdf_class`` of the phone in ``phone_window`` ([c])."""
        if len(phone_window) != 1:
            raise ValueError(f"window must have 1 phone, got {list(phone_window)}")
        phone = int(phone_window[0])
        if phone not in self.pdfs:
            raise ValueError(f"phone {phone} is not in the model")
        if not 0 <= pdf_class < len(self.pdfs[phone]):
            raise ValueError(f"pdf_class {pdf_class} invalid for phone {phone}")
        return self.pdfs[phone][pdf_class]

    def compute_many(self, windows: np.ndarray, pdf_classes: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`compute`: windows int [K, 1], pdf_classes int [K] -> pdf ids int64 [K]."""
        windows = np.asarray(windows, dtype=np.int64)
        pdf_classes = np.asarray(pdf_classes, dtype=np.int64).reshape(-1)
        if windows.ndim != 2 or windows.shape[1] != 1 or windows.shape[0] != pdf_classes.shape[0]:
            raise ValueError(f"windows must be [K, 1] and pdf_classes [K], got {windows.shape}, {pdf_classes.shape}")
        phones = windows[:, 0]
        bad = (phones < 0) | (phones >= self._max_class.shape[0])
        bad[~bad] = self._max_class[phones[~bad]] == 0
        if bad.any():
            raise ValueError(f"phone {int(phones[np.argmax(bad)])} is not in the model")
        _check_pdf_classes(phones, pdf_classes, self._max_class)
        return self._table[phones, pdf_classes]

    def pdfs_for(self, phone: int, pdf_class: int) -> list[int]:
        """Return ``[pdf]`` of the phone's pdf-class (a list, as for trees)."""
        return [self.compute([phone], pdf_class)]

    def leaf_stats(self, stats: TreeStats) -> LeafStats:
        """Pool tree statistics per pdf (contexts ignored)."""
        pdf = self.compute_many(stats.keys[:, 1:2], stats.keys[:, 3])
        count = np.bincount(pdf, weights=stats.count, minlength=self.num_pdfs)
        sums = np.zeros((self.num_pdfs, stats.dim))
        sumsqs = np.zeros((self.num_pdfs, stats.dim))
        np.add.at(sums, pdf, stats.sums)
        np.add.at(sumsqs, pdf, stats.sumsqs)
        return LeafStats(count, sums, sumsqs)

    def to_json_dict(self) -> dict:
        """Return the JSON form."""
        return {
            "format": CD_FORMAT,
            "version": 1,
            "type": "monophone",
            "context_width": 1,
            "central_position": 0,
            "num_pdfs": self.num_pdfs,
            "num_pdf_classes": {str(p): n for p, n in self.num_pdf_classes.items()},
            "shared_phone_sets": [list(s) for s in self.shared_phone_sets],
            "pdfs": {str(p): ids for p, ids in self.pdfs.items()},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON, atomically."""
        data = self.to_json_dict()
        pdfs = data.pop("pdfs")
        with atomic_write(path) as f:
            f.write(_json_lines(data, {"pdfs": [[int(p), ids] for p, ids in pdfs.items()]}))

    @classmethod
    def from_json_dict(cls, data: dict, path: str | os.PathLike | None = None) -> MonophoneContextDependency:
        """Rebuild from the JSON form; malformed data (or a ``pdfs`` table that disagrees) raises InputError."""
        try:
            if data.get("type") != "monophone" or data.get("context_width") != 1 or data.get("central_position") != 0:
                raise ValueError("not a monophone model (type 'monophone', context_width 1, central_position 0)")
            sets = data.get("shared_phone_sets", [])
            if not isinstance(sets, list) or not all(isinstance(s, list) for s in sets):
                raise ValueError("shared_phone_sets must be a list of lists")
            cd = cls(_int_key_dict(data.get("num_pdf_classes"), "num_pdf_classes"), sets)
            if data.get("num_pdfs") != cd.num_pdfs:
                raise ValueError(f"num_pdfs is {data.get('num_pdfs')!r}, the phones give {cd.num_pdfs}")
            pdfs = data.get("pdfs")
            if pdfs is not None:
                table = {int(p): list(ids) for p, ids in (pdfs if isinstance(pdfs, list) else pdfs.items())}
                if table != cd.pdfs:
                    raise ValueError("the 'pdfs' table disagrees with num_pdf_classes and shared_phone_sets")
        except (ValueError, TypeError, OverflowError, KeyError, AttributeError, IndexError) as e:
            raise InputError(f"bad monophone context dependency: {type(e).__name__}: {e}", path) from e
        return cd

    @classmethod
    def load(cls, path: str | os.PathLike) -> MonophoneContextDependency:
        """Read a file written by :meth:`save` (InputError naming the file when malformed)."""
        path = Path(path)
        return cls.from_json_dict(_read_json(path), path)


def load_context_dependency(path: str | os.PathLike) -> ContextDependencyTree | MonophoneContextDependency:
    """Read a tree or monophone context dependency file (by its ``type``)."""
    path = Path(path)
    data = _read_json(path)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "tree":
        return ContextDependencyTree.load(path)
    if kind == "monophone":
        return MonophoneContextDependency.from_json_dict(data, path)
    raise InputError(f"unknown context dependency type {kind!r} (expected 'tree' or 'monophone')", path)


# ----------------------------------------------------------------------------------------------------
# Building


@dataclass
class _GrowLeaf:
    rows: np.ndarray  # indices into the stats keys
    root: int
    stub: int  # the initial leaf this one was grown from (merging scope "root")
    total: np.ndarray  # packed stats [1 + 2D]
    objf: float
    best: tuple[float, int, int] | None = None  # (gain, key, question index)


@dataclass
class _Grow:
    """Mutable tree during growth: node dicts, leaves by node index."""

    nodes: list[dict] = field(default_factory=list)
    leaves: dict[int, _GrowLeaf] = field(default_factory=dict)

    def add(self, node: dict) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1


class _Splitter:
    """Finds the best question for a leaf, vectorised over all questions of each key."""

    def __init__(
        self,
        keys: np.ndarray,
        packed: np.ndarray,
        questions: QuestionSet,
        roots: Sequence[RootSpec],
        num_pdf_classes: Mapping[int, int],
        options: TreeBuildOptions,
    ):
        self.keys = keys
        self.packed = packed
        self.options = options
        self.roots = roots
        universe = {0, *num_pdf_classes}
        max_classes = max(num_pdf_classes.values())
        self.width = max(max(universe), max_classes) + 1

        def matrix(sets: Sequence[frozenset[int]]) -> np.ndarray:
            m = np.zeros((len(sets), self.width), dtype=np.float64)
            for i, s in enumerate(sets):
                m[i, sorted(s)] = 1.0
            return m

        def restrict(questions_in: Iterable[Sequence[int]], allowed: set[int]) -> list[frozenset[int]]:
            """Questions cut down to ``allowed``; trivial ones and complements of earlier ones dropped."""
            out: list[frozenset[int]] = []
            seen: set[frozenset[int]] = set()
            for q in questions_in:
                s = frozenset(int(v) for v in q) & allowed
                if s and s != allowed and s not in seen:
                    out.append(s)
                    seen.update((s, frozenset(allowed - s)))
            return out

        self.phone_sets = restrict(questions.phone_questions, universe)
        self.phone_matrix = matrix(self.phone_sets)
        self.root_class_sets: list[list[frozenset[int]]] = []
        self.root_class_matrix: list[np.ndarray] = []
        self.root_centre_sets: list[list[frozenset[int]]] = []
        self.root_centre_matrix: list[np.ndarray] = []
        for r in roots:
            n_classes = max(num_pdf_classes[p] for p in r.phones)
            sets = restrict(questions.pdf_class_questions, set(range(n_classes))) if r.shared else []
            self.root_class_sets.append(sets)
            self.root_class_matrix.append(matrix(sets))
            phones = set(r.phones)
            centre_qs = restrict([*questions.phone_questions, *([p] for p in r.phones)], phones)
            self.root_centre_sets.append(centre_qs)
            self.root_centre_matrix.append(matrix(centre_qs))

    def question(self, root: int, key: int, index: int) -> frozenset[int]:
        if key in (KEY_LEFT, KEY_RIGHT):
            return self.phone_sets[index]
        if key == KEY_CENTRE:
            return self.root_centre_sets[root][index]
        return self.root_class_sets[root][index]

    def best_split(self, leaf: _GrowLeaf) -> tuple[float, int, int] | None:
        """Return (gain, key, question index) of the best allowed split of ``leaf``, or None."""
        if not self.roots[leaf.root].split or leaf.rows.size < 2:
            return None
        opts = self.options
        min_count = max(opts.min_count, 1e-10)
        x = self.packed[leaf.rows]
        best: tuple[float, int, int] | None = None
        for key in (KEY_LEFT, KEY_RIGHT, KEY_PDF_CLASS, KEY_CENTRE):
            if key in (KEY_LEFT, KEY_RIGHT):
                qm = self.phone_matrix
            elif key == KEY_CENTRE:
                qm = self.root_centre_matrix[leaf.root]
            else:
                qm = self.root_class_matrix[leaf.root]
            if qm.shape[0] == 0:
                continue
            values = self.keys[leaf.rows, key]
            if values.min() == values.max():
                continue
            by_value = np.zeros((self.width, x.shape[1]))
            np.add.at(by_value, values, x)
            yes = qm @ by_value
            no = (1.0 - qm) @ by_value
            valid = (yes[:, 0] >= min_count) & (no[:, 0] >= min_count)
            if not valid.any():
                continue
            gain = _objf_packed(yes, opts.var_floor) + _objf_packed(no, opts.var_floor) - leaf.objf
            gain = np.where(valid, gain, -np.inf)
            i = int(np.argmax(gain))
            if best is None or gain[i] > best[0]:
                best = (float(gain[i]), key, i)
        return best


def _cluster_leaves(stats: np.ndarray, groups: np.ndarray, thresh: float, var_floor: float) -> tuple[np.ndarray, int]:
    """Bottom-up merging of leaves within each group while the cheapest merge costs < ``thresh``.

    Args:
        stats: [m, 1 + 2D] packed leaf statistics; groups: int [m] group of each leaf (-1: never merged).

    Returns:
        (cluster id per leaf (the smallest leaf index in the cluster), number of merges).
    """
    m = stats.shape[0]
    assign = np.arange(m)
    merges = 0
    for g in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == g)
        if members.size < 2:
            continue
        s = stats[members].copy()
        objf = _objf_packed(s, var_floor)
        k = members.size
        cost = np.full((k, k), np.inf)
        for i in range(k - 1):
            cost[i, i + 1 :] = objf[i] + objf[i + 1 :] - _objf_packed(s[i] + s[i + 1 :], var_floor)
        cost = np.minimum(cost, cost.T)
        alive = np.ones(k, dtype=bool)
        row_arg = np.argmin(cost, axis=1)
        row_min = cost[np.arange(k), row_arg]
        while True:
            i = int(np.argmin(np.where(alive, row_min, np.inf)))
            if not alive[i] or not row_min[i] < thresh:
                break
            j = int(row_arg[i])
            a, b = min(i, j), max(i, j)  # keep the smaller index
            s[a] += s[b]
            objf[a] = _objf_packed(s[a], var_floor)
            alive[b] = False
            cost[b, :] = np.inf
            cost[:, b] = np.inf
            row_min[b] = np.inf
            others = np.flatnonzero(alive)
            others = others[others != a]
            new = np.full(k, np.inf)
            if others.size:
                new[others] = objf[a] + objf[others] - _objf_packed(s[a] + s[others], var_floor)
            cost[a, :] = new
            cost[:, a] = new
            row_arg[a] = int(np.argmin(new))
            row_min[a] = new[row_arg[a]]
            # rows whose minimum was at a or b are recomputed; the others can only gain column a
            stale = others[(row_arg[others] == a) | (row_arg[others] == b)]
            fresh = others[(row_arg[others] != a) & (row_arg[others] != b)]
            better = fresh[new[fresh] < row_min[fresh]]
            row_min[better] = new[better]
            row_arg[better] = a
            if stale.size:
                row_arg[stale] = np.argmin(cost[stale], axis=1)
                row_min[stale] = cost[stale, row_arg[stale]]
            assign[members[b]] = members[a]
            assign[assign == members[b]] = members[a]
            merges += 1
    return assign, merges


def build_tree(
    stats: TreeStats,
    questions: QuestionSet,
    num_pdf_classes: Mapping[int, int],
    roots: Sequence[RootSpec] | None = None,
    options: TreeBuildOptions | None = None,
) -> ContextDependencyTree:
    """Grow a phonetic decision tree (Kaldi's ``build-tree``).

    Args:
        stats: tree statistics (see :func:`accumulate_tree_stats`).
        questions: from :func:`asr.hmm.questions.build_question_set`.
        num_pdf_classes: ``{phone: number of pdf-classes}`` for every phone the tree must cover (from
            the HMM topology); phones without statistics get leaves too.
        roots: tree roots; default one ``shared split`` root per phone (:func:`make_roots`).
        options: :class:`TreeBuildOptions` (defaults: Kaldi's, no leaf limit).

    Returns:
        The :class:`ContextDependencyTree`, with ``pdf_occs`` and ``build_info`` (objective before and
        after splitting and merging, the options, and every split in order: key, question, gain, counts).

    Raises:
        InputError: statistics with a centre phone missing from ``num_pdf_classes`` or a pdf-class out
            of range; roots that do not cover the phones exactly once.
    """
    options = options or TreeBuildOptions()
    num_pdf_classes = _num_pdf_classes_dict(num_pdf_classes)
    roots = list(roots) if roots is not None else make_roots(num_pdf_classes)
    root_of: dict[int, int] = {}
    for ri, r in enumerate(roots):
        for p in r.phones:
            if p not in num_pdf_classes:
                raise InputError(f"root phone {p} has no entry in num_pdf_classes")
            if p in root_of:
                raise InputError(f"phone {p} is in two roots")
            root_of[p] = ri
    missing = sorted(set(num_pdf_classes) - set(root_of))
    if missing:
        raise InputError(f"phones {missing} are in no root")
    keys = stats.keys.astype(np.int64)
    if keys.size:
        unknown = ~np.isin(keys[:, 1], list(num_pdf_classes))
        if unknown.any():
            raise InputError(f"statistics have centre phone {int(keys[np.argmax(unknown), 1])} not in num_pdf_classes")
        max_class = np.zeros(keys[:, 1].max() + 1, dtype=np.int64)
        for p, n in num_pdf_classes.items():
            if p < max_class.shape[0]:
                max_class[p] = n
        bad = keys[:, 3] >= max_class[keys[:, 1]]
        if bad.any():
            k = keys[np.argmax(bad)]
            raise InputError(
                f"statistics have pdf_class {int(k[3])} for phone {int(k[1])}, which has {max_class[k[1]]}"
            )
    packed = stats.packed()
    splitter = _Splitter(keys, packed, questions, roots, num_pdf_classes, options)
    var_floor = options.var_floor

    grow = _Grow()
    root_lookup = np.full(max(num_pdf_classes) + 1, -1, dtype=np.int64)
    for p, ri in root_of.items():
        root_lookup[p] = ri
    root_of_key = root_lookup[keys[:, 1]]

    def new_leaf(rows: np.ndarray, root: int, stub: int | None = None) -> int:
        total = packed[rows].sum(0) if rows.size else np.zeros(packed.shape[1])
        index = grow.add({"leaf": True})
        leaf = _GrowLeaf(rows, root, index if stub is None else stub, total, float(_objf_packed(total, var_floor)))
        leaf.best = splitter.best_split(leaf)
        grow.leaves[index] = leaf
        return index

    table = grow.add({"table": KEY_CENTRE, "children": {}})
    for ri, r in enumerate(roots):
        rows_root = np.flatnonzero(root_of_key == ri)
        if r.shared:
            child = new_leaf(rows_root, ri)
        else:
            n_classes = max(num_pdf_classes[p] for p in r.phones)
            child = grow.add({"table": KEY_PDF_CLASS, "children": {}})
            for c in range(n_classes):
                grow.nodes[child]["children"][c] = new_leaf(rows_root[keys[rows_root, 3] == c], ri)
        for p in r.phones:
            grow.nodes[table]["children"][p] = child

    objf_initial = float(sum(leaf.objf for leaf in grow.leaves.values()))
    heap = [(-leaf.best[0], i) for i, leaf in grow.leaves.items() if leaf.best is not None]
    heapq.heapify(heap)
    num_leaves = len(grow.leaves)
    splits: list[dict] = []
    objf = objf_initial
    smallest_split = math.inf
    while heap and (options.max_leaves == 0 or num_leaves < options.max_leaves):
        neg_gain, index = heapq.heappop(heap)
        gain = -neg_gain
        if gain < options.min_gain:
            break
        leaf = grow.leaves.pop(index)
        _, key, qi = leaf.best
        question = splitter.question(leaf.root, key, qi)
        member = np.zeros(splitter.width, dtype=bool)
        member[sorted(question)] = True
        in_yes = member[keys[leaf.rows, key]]
        yes = new_leaf(leaf.rows[in_yes], leaf.root, leaf.stub)
        no = new_leaf(leaf.rows[~in_yes], leaf.root, leaf.stub)
        grow.nodes[index] = {"split": key, "yes": question, "then": yes, "else": no}
        num_leaves += 1
        objf += gain
        smallest_split = min(smallest_split, gain)
        splits.append(
            {
                "root": list(roots[leaf.root].phones),
                "key": KEY_NAMES[key],
                "yes": sorted(question),
                "gain": round(gain, 3),
                "count": round(float(leaf.total[0]), 3),
                "yes_count": round(float(grow.leaves[yes].total[0]), 3),
                "no_count": round(float(grow.leaves[no].total[0]), 3),
                "num_leaves": num_leaves,
            }
        )
        for child in (yes, no):
            if grow.leaves[child].best is not None:
                heapq.heappush(heap, (-grow.leaves[child].best[0], child))
    objf_split = objf
    smallest_split = smallest_split if splits else 0.0

    # Post-merge: leaves whose merge costs less than cluster_thresh share a pdf.
    leaf_ids = sorted(grow.leaves)
    cluster_thresh = options.cluster_thresh
    if cluster_thresh is not None and cluster_thresh < 0:
        cluster_thresh = smallest_split
    merges = 0
    cluster_of = {i: i for i in leaf_ids}
    if cluster_thresh and leaf_ids:
        leaf_stats = np.stack([grow.leaves[i].total for i in leaf_ids])
        groups = np.array(
            [grow.leaves[i].stub if options.cluster_scope == "root" else 0 for i in leaf_ids], dtype=np.int64
        )
        groups[leaf_stats[:, 0] <= 0] = -1  # leaves without frames stay alone
        assign, merges = _cluster_leaves(leaf_stats, groups, cluster_thresh, var_floor)
        cluster_of = {leaf_ids[i]: leaf_ids[int(assign[i])] for i in range(len(leaf_ids))}
    cluster_total: dict[int, np.ndarray] = {}
    for i in leaf_ids:
        c = cluster_of[i]
        cluster_total[c] = cluster_total.get(c, 0) + grow.leaves[i].total
    objf_final = float(sum(_objf_packed(t, var_floor) for t in cluster_total.values()))

    # Renumber nodes in pre-order and pdfs by first appearance.
    order: list[int] = []
    stack = [table]
    while stack:
        n = stack.pop()
        order.append(n)
        node = grow.nodes[n]
        if "split" in node:
            stack.extend([node["else"], node["then"]])
        elif "table" in node:
            stack.extend(sorted(set(node["children"].values()), key=lambda c: -c))
    new_index = {old: new for new, old in enumerate(order)}
    pdf_of_cluster: dict[int, int] = {}
    final_nodes: list[Node] = []
    for old in order:
        node = grow.nodes[old]
        if "leaf" in node:
            c = cluster_of[old]
            pdf_of_cluster.setdefault(c, len(pdf_of_cluster))
            final_nodes.append(LeafNode(pdf_of_cluster[c]))
        elif "split" in node:
            final_nodes.append(
                SplitNode(node["split"], frozenset(node["yes"]), new_index[node["then"]], new_index[node["else"]])
            )
        else:
            final_nodes.append(TableNode(node["table"], {v: new_index[c] for v, c in node["children"].items()}))
    occs = np.zeros(len(pdf_of_cluster))
    for c, t in cluster_total.items():
        occs[pdf_of_cluster[c]] = t[0]
    total_frames = float(stats.count.sum())
    per_frame = (lambda v: v / total_frames) if total_frames > 0 else (lambda v: 0.0)
    build_info = {
        "num_keys": int(stats.num_keys),
        "num_frames": round(total_frames, 3),
        "num_initial_leaves": len(leaf_ids) - len(splits),
        "num_leaves_after_split": len(leaf_ids),
        "num_pdfs": len(pdf_of_cluster),
        "objf_initial": round(objf_initial, 3),
        "objf_after_split": round(objf_split, 3),
        "objf_final": round(objf_final, 3),
        "objf_per_frame_initial": round(per_frame(objf_initial), 6),
        "objf_per_frame_final": round(per_frame(objf_final), 6),
        "smallest_split_gain": round(smallest_split, 6),
        "cluster_thresh_used": round(cluster_thresh or 0.0, 6),
        "num_merges": merges,
        "options": asdict(options),
        "splits": splits,
    }
    logger.info(
        "tree: %d splits from %d root leaves, objf/frame %.4f -> %.4f (split) -> %.4f (merged, %d merges); %d pdfs",
        len(splits),
        len(leaf_ids) - len(splits),
        per_frame(objf_initial),
        per_frame(objf_split),
        per_frame(objf_final),
        merges,
        len(pdf_of_cluster),
    )
    return ContextDependencyTree(final_nodes, num_pdf_classes, roots, occs, build_info)


# ----------------------------------------------------------------------------------------------------
# Text dump (tree-info / draw-tree)


def _phone_name(symbols: Mapping[int, str] | None, key: int, value: int) -> str:
    if key == KEY_PDF_CLASS:
        return str(value)
    if value == 0:
        return "<bnd>"
    if symbols is not None:
        return symbols.get(value, str(value))
    return str(value)


def _set_text(symbols: Mapping[int, str] | None, key: int, values: Iterable[int], limit: int = 12) -> str:
    names = [_phone_name(symbols, key, v) for v in sorted(values)]
    if len(names) > limit:
        names = names[:limit] + [f"... ({len(names)} in all)"]
    return "{" + " ".join(names) + "}"


def _question_text(symbols: Mapping[int, str] | None, key: int, yes: frozenset[int], universe: frozenset[int]) -> str:
    """``left in {...}``, or ``left not in {...}`` when the complement (within ``universe``) is smaller."""
    if key in (KEY_LEFT, KEY_RIGHT) and len(yes & universe) > len(universe) / 2:
        return f"{KEY_NAMES[key]} not in {_set_text(symbols, key, universe - yes)}"
    return f"{KEY_NAMES[key]} in {_set_text(symbols, key, yes)}"


def describe_tree(
    cd: ContextDependencyTree | MonophoneContextDependency,
    symbols: Mapping[int, str] | None = None,
    draw: bool = False,
) -> str:
    """Return a readable description: sizes, questions used per key, pdfs per phone, optionally the tree."""
    lines: list[str] = []
    sym = (lambda p: symbols.get(p, str(p))) if symbols else str
    if isinstance(cd, MonophoneContextDependency):
        lines.append(f"monophone: context_width 1, central_position 0, num_pdfs {cd.num_pdfs}, phones {len(cd.phones)}")
        for s in cd.shared_phone_sets:
            lines.append(f"shared: {' '.join(sym(p) for p in s)}")
        for p, ids in cd.pdfs.items():
            lines.append(f"{sym(p):>8}  pdfs {ids}")
        return "\n".join(lines)
    lines.append(
        f"tree: context_width {cd.context_width}, central_position {cd.central_position}, num_pdfs {cd.num_pdfs}, "
        f"leaves {cd.num_leaves}, phones {len(cd.phones)}, roots {len(cd.roots)}"
    )
    info = cd.build_info
    if info:
        lines.append(
            f"built from {info.get('num_frames')} frames, {info.get('num_keys')} keys: objf/frame "
            f"{info.get('objf_per_frame_initial')} -> {info.get('objf_per_frame_final')}, "
            f"{info.get('num_leaves_after_split', 0) - info.get('num_initial_leaves', 0)} splits, "
            f"{info.get('num_merges')} merges (cluster_thresh {info.get('cluster_thresh_used')})"
        )
    for r in cd.roots:
        if len(r.phones) > 1 or not r.shared or not r.split:
            flags = f"{'shared' if r.shared else 'not-shared'} {'split' if r.split else 'not-split'}"
            lines.append(f"root: {flags} {' '.join(sym(p) for p in r.phones)}")
    universe = frozenset((0, *cd.phones))
    used: dict[int, dict[frozenset[int], int]] = {}
    for n in cd.nodes:
        if isinstance(n, SplitNode):
            used.setdefault(n.key, {})
            used[n.key][n.yes] = used[n.key].get(n.yes, 0) + 1
    lines.append("questions used:")
    for key in (KEY_LEFT, KEY_RIGHT, KEY_CENTRE, KEY_PDF_CLASS):
        counts = used.get(key, {})
        lines.append(f"  {KEY_NAMES[key]}: {sum(counts.values())} splits, {len(counts)} distinct questions")
        for q, c in sorted(counts.items(), key=lambda kv: (-kv[1], sorted(kv[0])))[:10]:
            lines.append(f"    {c:5d} x {_question_text(symbols, key, q, universe)}")
    lines.append("pdfs per phone (per pdf-class; total distinct):")
    for p in cd.phones:
        per_class = [cd.pdfs_for(p, j) for j in range(cd.num_pdf_classes[p])]
        distinct = len(set().union(*map(set, per_class)))
        lines.append(f"  {sym(p):>8}  {' '.join(f'{len(x):3d}' for x in per_class)}   total {distinct}")
    if draw:
        lines.append("tree:")
        stack: list[tuple[int, int, str]] = [(0, 1, "")]
        while stack:
            n, depth, label = stack.pop()
            node = cd.nodes[n]
            pad = "  " * depth
            if isinstance(node, LeafNode):
                occ = f" ({cd.pdf_occs[node.pdf]:.0f} frames)" if cd.pdf_occs is not None else ""
                lines.append(f"{pad}{label}pdf {node.pdf}{occ}")
            elif isinstance(node, SplitNode):
                lines.append(f"{pad}{label}{_question_text(symbols, node.key, node.yes, universe)} ?")
                stack.append((node.no_child, depth + 1, "no:  "))
                stack.append((node.yes_child, depth + 1, "yes: "))
            else:
                lines.append(f"{pad}{label}table on {KEY_NAMES[node.key]}:")
                by_child: dict[int, list[int]] = {}
                for v, c in node.children.items():
                    by_child.setdefault(c, []).append(v)
                for c, vs in sorted(by_child.items(), key=lambda kv: -kv[0]):
                    names = ",".join(_phone_name(symbols, node.key, v) for v in sorted(vs))
                    stack.append((c, depth + 1, f"{names}: "))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.hmm.tree show TREE.json [--phones phones.txt] [--draw]``."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.hmm.tree", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print a tree or monophone context dependency file (like tree-info/draw-tree)")
    show.add_argument("tree", help="context dependency JSON file")
    show.add_argument("--phones", help="phones.txt to print phone names instead of ids")
    show.add_argument("--draw", action="store_true", help="also print the whole tree, indented")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        cd = load_context_dependency(args.tree)
        symbols = None
        if args.phones:
            from asr.hmm.questions import read_phone_symbols

            symbols = {i: s for s, i in read_phone_symbols(args.phones).items()}
        print(describe_tree(cd, symbols, draw=args.draw))
    except InputError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
