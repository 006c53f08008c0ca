"""Training frames for the DNN: features joined with senone targets, frame-level shuffled minibatches.

Features (``<data>/fbank.h5``, :class:`~asr.features.archive.FeatureArchive`) and targets (``ali.h5``,
:class:`~asr.nnet.alignments.PdfAlignment`) are joined by utterance id and offset into one int64 array
``targets[total_frames]`` parallel to the archive's ``/feats`` (-1 where an utterance has no alignment),
after checking that every aligned utterance exists in the archive with the same number of frames.
Minibatches are sets of global frame indices; their context windows are built on the fly with
:func:`asr.features.context_window.splice_at` (one vectorized gather per batch, edges repeated within
each utterance).

Two loaders give the same kind of batches:

- :class:`InMemoryFrameLoader`: all features in RAM (or on the GPU); each epoch is one permutation of all
  training frames.
- :class:`ChunkedFrameLoader`: features stay on disk; utterances are grouped into chunks of consecutive
  utterances, each epoch visits the chunks in a random order, a shuffle buffer holds as many chunks as
  the RAM budget allows, and the frames inside a buffer are shuffled (the next buffer is read in a
  background thread while the current one trains).

Order is a pure function of a ``torch.Generator``'s state at the start of the epoch: calling
``loader.epoch(generator, start_batch=k)`` from the same state yields exactly the batches ``k, k+1, ...``
of the uninterrupted epoch, which is how a resumed run continues bit-exactly.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.context_window import DEFAULT_LEFT, DEFAULT_RIGHT, splice_at
from asr.nnet.alignments import PdfAlignment

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_FRAMES = 20000


# ------------------------------------------------------------------------------------------ joining
@dataclass
class JoinStats:
    """How the alignment covered the feature archive.

    Attributes:
        num_utts: utterances in the feature archive.
        aligned_utts: utterances with targets.
        failed_utts: utterances the alignment marks as failed (excluded).
        unaligned_utts: archive utterances absent from the alignment file (excluded).
        aligned_frames: frames with targets.
    """

    num_utts: int
    aligned_utts: int
    failed_utts: int
    unaligned_utts: int
    aligned_frames: int


def join_targets(
    archive: FeatureArchive, alignment: PdfAlignment, num_pdfs: int | None = None
) -> tuple[np.ndarray, JoinStats]:
    """Targets parallel to the archive's frames, joined by utterance id and offset.

    Args:
        archive: the feature archive.
        alignment: pdf ids of its utterances (all or some; -1 frames = no target).
        num_pdfs: when given, every pdf id must be below it.

    Returns:
        ``(targets, stats)``: int64 ``[archive.num_frames]`` holding each frame's pdf id, -1 for frames
        without one (failed or absent utterances); and the :class:`JoinStats`.

    Raises:
        InputError: naming the alignment file when one of its utterances is not in the archive, when an
            utterance's frame count differs from the archive's, or when a pdf id is ``>= num_pdfs``.
    """
    ali_lens = np.diff(alignment.offsets)
    if alignment.utt_ids == archive.utt_ids:  # the usual case: the same order, no lookups
        positions = np.arange(len(archive), dtype=np.int64)
    else:
        positions = np.empty(len(alignment.utt_ids), dtype=np.int64)
        for i, utt in enumerate(alignment.utt_ids):  # per utterance, not per frame
            if utt not in archive:
                raise InputError(
                    f"utterance {utt!r} is aligned but not in the feature archive {archive.path}", alignment.path
                )
            positions[i] = archive.utt_index(utt)
    feat_lens = np.diff(archive.offsets)[positions]
    bad = np.nonzero(feat_lens != ali_lens)[0]
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"utterance {alignment.utt_ids[i]!r}: {ali_lens[i]} aligned frames but {feat_lens[i]} in "
            f"{archive.path} ({bad.size} utterance(s) disagree); were the alignments made from other features?",
            alignment.path,
        )
    if num_pdfs is not None and alignment.pdf_ids.size and int(alignment.pdf_ids.max()) >= num_pdfs:
        raise InputError(
            f"pdf id {int(alignment.pdf_ids.max())} is out of range for a model with {num_pdfs} pdfs", alignment.path
        )
    targets = np.full(archive.num_frames, -1, dtype=np.int64)
    dest = concat_ranges(archive.offsets[positions], archive.offsets[positions] + ali_lens)
    targets[dest] = alignment.pdf_ids
    failed = set(alignment.failed_utt_ids)
    num_failed = sum(1 for u in alignment.utt_ids if u in failed)
    stats = JoinStats(
        num_utts=len(archive),
        aligned_utts=len(alignment.utt_ids) - num_failed,
        failed_utts=num_failed,
        unaligned_utts=len(archive) - len(alignment.utt_ids),
        aligned_frames=int(np.count_nonzero(targets >= 0)),
    )
    return targets, stats


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """int64 concatenation of ``arange(starts[i], ends[i])`` over ``i``, vectorized."""
    starts = np.asarray(starts, dtype=np.int64)
    lens = np.asarray(ends, dtype=np.int64) - starts
    if lens.size == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return np.repeat(starts - before, lens) + np.arange(int(lens.sum()), dtype=np.int64)


def heldout_utt_mask(num_utts: int, fraction: float, seed: int) -> np.ndarray:
    """bool ``[num_utts]``: a random ``fraction`` of the utterances (at least one when ``fraction > 0`` and
    there are two or more), chosen from ``seed`` alone."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), not {fraction}")
    mask = np.zeros(num_utts, dtype=bool)
    count = int(round(fraction * num_utts))
    if fraction > 0 and num_utts > 1:
        count = min(max(count, 1), num_utts - 1)
    mask[np.random.default_rng(seed).permutation(num_utts)[:count]] = True
    return mask


def frames_of_utts(offsets: np.ndarray, utt_mask: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """int64 indices of the frames of the utterances in ``utt_mask`` that have a target (>= 0)."""
    frame_utt = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return np.nonzero(utt_mask[frame_utt] & (targets >= 0))[0].astype(np.int64)


def feature_mean_std(source: FeatureArchive | np.ndarray, block_frames: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation (float64) of all frames of an archive or array, in blocks."""
    num_frames = source.num_frames if isinstance(source, FeatureArchive) else source.shape[0]
    if num_frames == 0:
        raise ValueError("no frames to estimate normalization statistics from")
    total = total_sq = None
    for start in range(0, num_frames, block_frames):
        end = min(start + block_frames, num_frames)
        block = source.read_frames(start, end) if isinstance(source, FeatureArchive) else source[start:end]
        block = np.asarray(block, dtype=np.float64)
        s, sq = block.sum(axis=0), np.square(block).sum(axis=0)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
    mean = total / num_frames
    var = np.maximum(total_sq / num_frames - np.square(mean), 0.0)
    return mean, np.sqrt(var)


# ------------------------------------------------------------------------------------------ loaders
class Epoch:
    """One epoch's batches (from ``start_batch`` on): iterate for ``(context_windows, targets)`` pairs.

    Attributes:
        num_batches: batches of the whole epoch.
        start_batch: the first batch this iterator yields.
    """

    def __init__(
        self,
        num_batches: int,
        start_batch: int,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
        frames_in_batch: Callable[[int], int] | None = None,
    ):
        self.num_batches = num_batches
        self.start_batch = start_batch
        self._batches = batches
        self._frames_in_batch = frames_in_batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches

    def global_batch_frames(self, b: int) -> int:
        """Frames of batch ``b`` of the whole epoch, all shards together (a sharded loader yields part of it)."""
        if self._frames_in_batch is None:
            raise ValueError("this epoch does not know its batch sizes")
        return self._frames_in_batch(b)


def shard_of_batch(index: torch.Tensor, shard: tuple[int, int]) -> torch.Tensor:
    """Shard ``rank`` of ``count`` (``shard = (rank, count)``) of a global batch's frame indices: the ``rank``-th of
    ``count`` contiguous, near-equal parts (exactly ``len(index) / count`` frames each when that divides)."""
    rank, count = shard
    return index if count == 1 else index.tensor_split(count)[rank]


def _windows(feats: torch.Tensor, offsets: torch.Tensor, index: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """The context windows of frames ``index`` (none: an empty ``[0, (left + 1 + right) * D]``, a rank's share of
    a tiny last batch)."""
    if index.numel() == 0:
        return feats.new_zeros((0, (left + 1 + right) * feats.shape[1]))
    return splice_at(feats, offsets, index, left, right, check=False)


class InMemoryFrameLoader:
    """Frame-level shuffled minibatches from features held in RAM (or on a GPU).

    Args:
        feats: ``[total_frames, D]`` float32 (numpy or torch), all utterances concatenated.
        offsets: ``[num_utts + 1]`` utterance boundaries.
        targets: int64 ``[total_frames]`` pdf id per frame.
        frames: int64 ``[M]`` the frames to train on (each epoch visits each once).
        batch_size: frames per minibatch (the last one of an epoch may be smaller).
        left, right: context window.
        device: where batches are built (features are moved there once).

    Attribute ``shard = (rank, count)`` (default ``(0, 1)``), set by data-parallel training
    (:mod:`asr.nnet.distributed`), makes every batch only this rank's part of the global batch
    (:func:`shard_of_batch`); the epoch's order, and so the global batches, stay the same on every rank.
    """

    def __init__(
        self,
        feats: np.ndarray | torch.Tensor,
        offsets: np.ndarray | torch.Tensor,
        targets: np.ndarray | torch.Tensor,
        frames: np.ndarray | torch.Tensor,
        batch_size: int,
        left: int = DEFAULT_LEFT,
        right: int = DEFAULT_RIGHT,
        device: str | torch.device = "cpu",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.device = torch.device(device)
        self.feats = torch.as_tensor(feats, dtype=torch.float32).to(self.device)
        self.offsets = torch.as_tensor(offsets, dtype=torch.int64).to(self.device)
        self.targets = torch.as_tensor(targets, dtype=torch.int64).to(self.device)
        self.frames = torch.as_tensor(frames, dtype=torch.int64)
        if self.frames.numel() == 0:
            raise ValueError("no training frames")
        self.batch_size = int(batch_size)
        self.left, self.right = int(left), int(right)
        self.shard: tuple[int, int] = (0, 1)

    @property
    def num_frames(self) -> int:
        """Training frames per epoch."""
        return int(self.frames.numel())

    def epoch(self, generator: torch.Generator, start_batch: int = 0) -> Epoch:
        """Draw this epoch's order from ``generator`` and return its batches from ``start_batch`` on."""
        order = self.frames[torch.randperm(self.num_frames, generator=generator)].to(self.device)
        num_batches = math.ceil(self.num_frames / self.batch_size)

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for b in range(start_batch, num_batches):
                index = shard_of_batch(order[b * self.batch_size : (b + 1) * self.batch_size], self.shard)
                x = _windows(self.feats, self.offsets, index, self.left, self.right)
                yield x, self.targets[index]

        def frames_in_batch(b: int) -> int:
            return min(self.batch_size, self.num_frames - b * self.batch_size)

        return Epoch(num_batches, start_batch, batches(), frames_in_batch)


@dataclass
class _Chunk:
    start: int  # first frame (global)
    end: int  # one past the last frame
    utt_begin: int  # first utterance
    utt_end: int  # one past the last utterance
    frames: np.ndarray  # global indices of its training frames


@dataclass
class _Buffer:
    chunks: list[int]
    seed: int
    num_frames: int  # training frames
    num_batches: int = field(init=False)


class ChunkedFrameLoader:
    """Frame-level shuffled minibatches from an archive on disk, through a chunked shuffle buffer.

    Args:
        archive_path: the feature archive.
        targets: int64 ``[total_frames]`` pdf id per frame of the archive.
        frames: int64 ``[M]`` the frames to train on.
        batch_size: frames per minibatch (the last one of each buffer may be smaller).
        buffer_frames: archive frames one shuffle buffer may hold (two are in RAM while the next one is
            read ahead).
        chunk_frames: frames per chunk of consecutive utterances (the unit of disk reads).
        left, right: context window.
        device: where batches are built.
        prefetch: read the next buffer in a background thread.

    Attribute ``shard``: as for :class:`InMemoryFrameLoader` (every rank reads every buffer and trains on its
    part of each global batch).
    """

    def __init__(
        self,
        archive_path: str | os.PathLike,
        targets: np.ndarray,
        frames: np.ndarray,
        batch_size: int,
        buffer_frames: int,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        left: int = DEFAULT_LEFT,
        right: int = DEFAULT_RIGHT,
        device: str | torch.device = "cpu",
        prefetch: bool = True,
    ):
        if batch_size < 1 or buffer_frames < 1 or chunk_frames < 1:
            raise ValueError("batch_size, buffer_frames and chunk_frames must be >= 1")
        self.archive_path = Path(archive_path)
        self.archive = FeatureArchive(self.archive_path)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.frames = np.sort(np.asarray(frames, dtype=np.int64))
        if self.frames.size == 0:
            raise ValueError("no training frames")
        self.batch_size = int(batch_size)
        self.buffer_frames = int(buffer_frames)
        self.left, self.right = int(left), int(right)
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.chunks = self._make_chunks(int(chunk_frames))
        self.shard: tuple[int, int] = (0, 1)

    @property
    def num_frames(self) -> int:
        """Training frames per epoch."""
        return int(self.frames.size)

    def _make_chunks(self, chunk_frames: int) -> list[_Chunk]:
        offsets = self.archive.offsets
        bounds = [0]
        for u in range(1, len(offsets) - 1):  # per utterance: cut where a chunk reached chunk_frames
            if offsets[u] - offsets[bounds[-1]] >= chunk_frames:
                bounds.append(u)
        bounds.append(len(offsets) - 1)
        split = np.searchsorted(self.frames, offsets[bounds])
        chunks = []
        for i in range(len(bounds) - 1):
            frames = self.frames[split[i] : split[i + 1]]
            if frames.size:
                u0, u1 = bounds[i], bounds[i + 1]
                chunks.append(_Chunk(int(offsets[u0]), int(offsets[u1]), u0, u1, frames))
        return chunks

    def _plan(self, generator: torch.Generator) -> list[_Buffer]:
        order = torch.randperm(len(self.chunks), generator=generator).tolist()
        groups: list[list[int]] = [[]]
        size = 0
        for c in order:
            length = self.chunks[c].end - self.chunks[c].start
            if groups[-1] and size + length > self.buffer_frames:
                groups.append([])
                size = 0
            groups[-1].append(c)
            size += length
        seeds = torch.randint(0, 2**62, (len(groups),), generator=generator).tolist()
        buffers = []
        for group, seed in zip(groups, seeds):
            buf = _Buffer(sorted(group), int(seed), sum(self.chunks[c].frames.size for c in group))
            buf.num_batches = math.ceil(buf.num_frames / self.batch_size)
            buffers.append(buf)
        return buffers

    def _load(self, buf: _Buffer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read a buffer: features, local offsets, local targets, local training frames (shuffled)."""
        offsets = self.archive.offsets
        feats, local_offsets, local_frames, base = [], [np.zeros(1, dtype=np.int64)], [], 0
        for c in buf.chunks:  # sorted: sequential reads
            chunk = self.chunks[c]
            feats.append(self.archive.read_frames(chunk.start, chunk.end))
            local_offsets.append(offsets[chunk.utt_begin + 1 : chunk.utt_end + 1] - chunk.start + base)
            local_frames.append(chunk.frames - chunk.start + base)
            base += chunk.end - chunk.start
        starts = np.array([self.chunks[c].start for c in buf.chunks])
        ends = np.array([self.chunks[c].end for c in buf.chunks])
        targets = self.targets[concat_ranges(starts, ends)]
        frames = torch.from_numpy(np.concatenate(local_frames))
        order = frames[torch.randperm(frames.numel(), generator=torch.Generator().manual_seed(buf.seed))]
        return (
            torch.from_numpy(np.concatenate(feats)).to(self.device),
            torch.from_numpy(np.concatenate(local_offsets)).to(self.device),
            torch.from_numpy(targets).to(self.device),
            order.to(self.device),
        )

    def epoch(self, generator: torch.Generator, start_batch: int = 0) -> Epoch:
        """Draw this epoch's chunk order and buffer seeds from ``generator``; batches from ``start_batch`` on."""
        plan = self._plan(generator)
        num_batches = sum(b.num_batches for b in plan)
        first, skip = 0, start_batch
        while first < len(plan) and skip >= plan[first].num_batches:
            skip -= plan[first].num_batches
            first += 1

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            if first >= len(plan):
                return
            pool = concurrent.futures.ThreadPoolExecutor(1) if self.prefetch else None
            try:
                pending = pool.submit(self._load, plan[first]) if pool else None
                for i in range(first, len(plan)):
                    loaded = pending.result() if pool else self._load(plan[i])
                    if pool and i + 1 < len(plan):
                        pending = pool.submit(self._load, plan[i + 1])
                    feats, offsets, targets, order = loaded
                    for b in range(skip if i == first else 0, plan[i].num_batches):
                        index = shard_of_batch(order[b * self.batch_size : (b + 1) * self.batch_size], self.shard)
                        x = _windows(feats, offsets, index, self.left, self.right)
                        yield x, targets[index]
            finally:
                if pool:
                    pool.shutdown(wait=True, cancel_futures=True)

        first_batch = np.cumsum([0] + [buf.num_batches for buf in plan])  # of each buffer

        def frames_in_batch(b: int) -> int:
            i = int(np.searchsorted(first_batch, b, side="right")) - 1
            return min(self.batch_size, plan[i].num_frames - (b - int(first_batch[i])) * self.batch_size)

        return Epoch(num_batches, start_batch, batches(), frames_in_batch)


# ------------------------------------------------------------------------------------------ held-out
@dataclass
class HeldoutSet:
    """Frames to evaluate on, compact in RAM: features, offsets, targets (-1 = none), frames to score."""

    feats: torch.Tensor
    offsets: torch.Tensor
    targets: torch.Tensor
    frames: torch.Tensor
    source: str = ""

    @property
    def num_frames(self) -> int:
        """Frames scored."""
        return int(self.frames.numel())

    def to(self, device: str | torch.device) -> HeldoutSet:
        """The same set on ``device``."""
        return HeldoutSet(
            self.feats.to(device), self.offsets.to(device), self.targets.to(device), self.frames.to(device), self.source
        )


def gather_utterances(
    source: FeatureArchive | np.ndarray, offsets: np.ndarray, utt_indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames of some utterances, compacted.

    Args:
        source: an archive (read utterance by utterance) or the in-RAM ``[total_frames, D]`` array.
        offsets: the source's utterance offsets.
        utt_indices: utterances to keep (in this order).

    Returns:
        ``(feats, new_offsets, source_frames)``: the compact features, their offsets, and for each compact
        frame its index in the source.
    """
    utt_indices = np.asarray(utt_indices, dtype=np.int64)
    starts, ends = offsets[utt_indices], offsets[utt_indices + 1]
    index = concat_ranges(starts, ends)
    new_offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
    if isinstance(source, FeatureArchive):
        dim = source.dim
        parts = [source.read_frames(s, e) for s, e in zip(starts, ends)]
        feats = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
    else:
        feats = np.asarray(source)[index]
    return feats, new_offsets, index


def make_heldout_set(
    source: FeatureArchive | np.ndarray,
    offsets: np.ndarray,
    targets: np.ndarray,
    utt_indices: np.ndarray,
    source_name: str = "",
) -> HeldoutSet:
    """A :class:`HeldoutSet` of some utterances of a source (archive or array) with targets parallel to it."""
    feats, new_offsets, index = gather_utterances(source, offsets, utt_indices)
    local_targets = np.asarray(targets, dtype=np.int64)[index]
    frames = np.nonzero(local_targets >= 0)[0]
    return HeldoutSet(
        torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
        torch.from_numpy(new_offsets),
        torch.from_numpy(local_targets),
        torch.from_numpy(frames.astype(np.int64)),
        source_name,
    )


# ------------------------------------------------------------------------------------------ assembly
@dataclass
class TrainingData:
    """Everything the trainer reads, assembled by :func:`load_training_data`.

    Attributes:
        loader: the training batches (:class:`InMemoryFrameLoader` or :class:`ChunkedFrameLoader`).
        heldout: the held-out frames, or None.
        feature_type: the archive's feature type (``"fbank"``).
        feat_dim: per-frame feature dimension.
        feat_mean, feat_std: float64 ``[feat_dim]`` over the training archive (for input normalization).
        pdf_counts: int64 ``[num_pdfs]`` frames per pdf in the whole training alignment (for the priors).
        join: how the alignment covered the training archive.
        in_memory: whether the training features are in RAM.
        heldout_source: words saying where the held-out set came from.
    """

    loader: InMemoryFrameLoader | ChunkedFrameLoader
    heldout: HeldoutSet | None
    feature_type: str
    feat_dim: int
    feat_mean: np.ndarray
    feat_std: np.ndarray
    pdf_counts: np.ndarray
    join: JoinStats
    in_memory: bool
    heldout_source: str


def load_training_data(
    train_archive: str | os.PathLike,
    alignment: PdfAlignment,
    num_pdfs: int,
    batch_size: int,
    seed: int,
    left: int = DEFAULT_LEFT,
    right: int = DEFAULT_RIGHT,
    heldout_archive: str | os.PathLike | None = None,
    heldout_alignment: PdfAlignment | None = None,
    heldout_fraction: float = 0.05,
    ram_budget_bytes: int = 4 << 30,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    device: str | torch.device = "cpu",
) -> TrainingData:
    """Join features and alignments, pick the held-out set, and make the training loader.

    Args:
        train_archive: the training features (``<data>/train/fbank.h5``).
        alignment: the training data's pdf alignment (``ali.h5`` of the GMM).
        num_pdfs: senones of the model (pdf ids must be below it).
        batch_size: frames per minibatch.
        seed: chooses the held-out utterances (when taken from the training data).
        left, right: context window.
        heldout_archive, heldout_alignment: a dev set's features and alignment; used when both are given.
        heldout_fraction: otherwise, this fraction of the training utterances is held out (0: none).
        ram_budget_bytes: the training features go to RAM when they fit in it; otherwise the chunked
            loader keeps two shuffle buffers of a quarter of it each.
        chunk_frames: frames per disk chunk (chunked loader).
        device: where batches are built and the held-out set lives.

    Returns:
        The :class:`TrainingData`.
    """
    archive = FeatureArchive(train_archive)
    targets, join = join_targets(archive, alignment, num_pdfs)
    logger.info(
        "training data %s: %d utterances, %d aligned, %d failed alignment, %d not in the alignments (excluded); "
        "%d frames with targets",
        archive.path, join.num_utts, join.aligned_utts, join.failed_utts, join.unaligned_utts, join.aligned_frames,
    )  # fmt: skip
    if join.aligned_frames == 0:
        raise InputError("no utterance of the training archive has an alignment", alignment.path)
    counts = np.bincount(alignment.aligned_pdf_ids.astype(np.int64), minlength=num_pdfs).astype(np.int64)
    feat_bytes = archive.num_frames * archive.dim * 4
    in_memory = feat_bytes + archive.num_frames * 8 <= ram_budget_bytes
    feats = archive.read_all() if in_memory else None
    source = feats if in_memory else archive
    feat_mean, feat_std = feature_mean_std(source)

    use_dev = heldout_archive is not None and heldout_alignment is not None
    heldout_mask = np.zeros(len(archive), dtype=bool)
    if use_dev:
        dev = FeatureArchive(heldout_archive)
        dev_targets, dev_join = join_targets(dev, heldout_alignment, num_pdfs)
        dev_utts = np.nonzero(np.diff(dev.offsets) > 0)[0]
        heldout = make_heldout_set(dev.read_all(), dev.offsets, dev_targets, dev_utts, str(dev.path))
        heldout_source = f"{dev.path} ({dev_join.aligned_utts} aligned utterances)"
        dev.close()
    elif heldout_fraction > 0:
        frame_utt = np.repeat(np.arange(len(archive)), np.diff(archive.offsets))
        targets_per_utt = np.bincount(frame_utt, weights=targets >= 0, minlength=len(archive))
        aligned_utts = np.nonzero(targets_per_utt > 0)[0]
        chosen = aligned_utts[heldout_utt_mask(len(aligned_utts), heldout_fraction, seed)]
        heldout_mask[chosen] = True
        heldout = make_heldout_set(source, archive.offsets, targets, np.sort(chosen), str(archive.path))
        heldout_source = f"{len(chosen)} training utterances ({heldout_fraction:.1%}) held out"
    else:
        heldout, heldout_source = None, "none"
    if heldout is not None:
        heldout = heldout.to(device)
    frames = frames_of_utts(archive.offsets, ~heldout_mask, targets)
    logger.info(
        "held-out set: %s, %d frames; training frames: %d; features %s (%.1f MiB)",
        heldout_source, heldout.num_frames if heldout else 0, frames.size,
        "in RAM" if in_memory else "read from disk through a chunked shuffle buffer", feat_bytes / 2**20,
    )  # fmt: skip
    if in_memory:
        loader = InMemoryFrameLoader(feats, archive.offsets, targets, frames, batch_size, left, right, device)
    else:
        buffer_frames = max(chunk_frames, ram_budget_bytes // 4 // (archive.dim * 4))
        loader = ChunkedFrameLoader(
            archive.path, targets, frames, batch_size, buffer_frames, chunk_frames, left, right, device
        )
    result = TrainingData(
        loader=loader,
        heldout=heldout,
        feature_type=archive.feature_type,
        feat_dim=archive.dim,
        feat_mean=feat_mean,
        feat_std=feat_std,
        pdf_counts=counts,
        join=join,
        in_memory=in_memory,
        heldout_source=heldout_source,
    )
    archive.close()
    return result
