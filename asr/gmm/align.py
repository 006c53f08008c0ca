"""Forced alignment of data dirs with GMM-HMM models, and the per-job passes the trainers run (Kaldi's ``align_si.sh``).

CLI::

    python -m asr.gmm.align --data data/an4/train --lang data/an4/lang --model exp/an4/tri1 \\
        --out exp/an4/tri1_ali_train [--jobs 2] [--beam 10 --retry-beam 40 --acoustic-scale 0.1] \\
        [--block-frames 1000000] [--force]

writes into ``--out``: ``ali.h5`` (:mod:`asr.gmm.alignment_archive`: pdf, phone and transition-state id per
frame, in the feature archive's order, failed utterances marked), ``ali.ark`` (Kaldi ``ark`` of int vectors:
the 0-based transition-state ids per utterance, ``kaldi_io.write_vec_int``; failed utterances absent),
``phones.ctm`` (phone CTM, centre time convention), a copy of the model files (as Kaldi's ``align_si.sh``
copies ``final.mdl`` and ``tree``: an alignment dir is a model dir too, so ``train_tri --ali-dir`` can read
it) and ``align.json`` last (summary, failures, timings, input fingerprint; a complete run with the same
inputs is skipped, ``--force`` redoes it).

Resuming: the utterances are aligned in blocks of about ``--block-frames`` frames (archive order, 0: one block);
each block's alignments and failures are saved atomically in ``--out/.align_blocks/`` (:class:`AlignmentBlocks`,
tagged with the sha256 of the input fingerprint) as soon as it is done. A run killed midway and started again
with the same inputs and options logs "resuming alignment from N block(s): U utterances done", aligns only the
rest and writes the same outputs as an uninterrupted run (``align.json`` up to its timings); blocks of other
inputs and damaged block files are discarded; the blocks are removed once ``align.json`` is written. The worker
processes live across blocks (:meth:`AlignmentJobs.align_utterances`): a block costs one round trip to the
workers and one small file.

Jobs (Kaldi's ``nj``): utterances are split into ``jobs`` shards balanced by frames. Each shard lives
in its own worker process (forked like torch's DataLoader workers; one torch thread each) holding its
features (with deltas), its utterances' alignment graphs (compiled there, once per transition model:
graphs cannot be pickled) and its current alignments. A pass (:meth:`AlignmentJobs.run_pass`) sends
each worker the GMM (a few MB of tensors) and gets back GMM statistics and transition counts: the
trainer's E-step and the realignment both run in parallel, and only statistics cross process
boundaries. ``jobs=1`` runs the shard in this process (no pickling at all).

Alignment of one utterance: all pdf log-likelihoods in one call (:meth:`DiagGmmSet.log_likelihoods` over
blocks of utterances), times the acoustic scale (0.1, Kaldi's), then Viterbi on the utterance's graph
(:func:`asr.decode.align.align_utterance`, beam 10, retry beam 40). The graphs carry the transition
probabilities of the model they were compiled with (Kaldi adds the current ones at alignment time; here
a trainer recompiles when it asks for it). An utterance that fails is counted, listed with its reason
and left out of that pass's statistics; it is never silently dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kaldifst
import numpy as np
import torch

from asr.atomic import atomic_path, atomic_write
from asr.decode.align import AlignmentFailures, align_utterance, phone_segments
from asr.decode.ctm import DEFAULT_FRAME_LENGTH, DEFAULT_FRAME_SHIFT, write_phone_ctm
from asr.errors import AsrError, InputError
from asr.features.archive import FeatureArchive
from asr.features.deltas import add_deltas
from asr.files import file_sha256
from asr.gmm.accumulate import GmmStats, accumulate_pdf_stats
from asr.gmm.alignment_archive import write_alignment_archive
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.model import (
    ALI_H5,
    GMM_FILE,
    MODEL_JSON,
    PHONES_TXT,
    TOPO_JSON,
    TRANSITION_MODEL_JSON,
    TREE_JSON,
    GmmAcousticModel,
)
from asr.graph.alignment_graph import AlignmentGraphCompiler
from asr.graph.hclg import GraphBuildError, GraphOptions
from asr.hmm.transition_model import ContextDependency, TransitionModel
from asr.lang.lang_dir import Lang, read_fst
from asr.lang.symbol_table import SymbolTable
from asr.lang.transcripts import read_transcripts
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

ALIGN_JSON = "align.json"
# exp() of arguments below about -87 (float32 underflow) takes a slow path in torch on CPU (~10x slower per
# element: measured 4.8 ms vs 0.46 ms for 230k scores); clamping there changes each term by < e^-80.
EXP_FLOOR = -80.0
ALI_ARK = "ali.ark"
ALIGN_BLOCKS = ".align_blocks"
# utterances aligned between two saves of the work done (one block): ~3 h of audio at 10 ms frames, about a minute
# of alignment with 2 jobs here (AN4's train set, 221k frames, aligns in ~12 s)
DEFAULT_BLOCK_FRAMES = 1_000_000
PHONES_CTM = "phones.ctm"
DEFAULT_JOBS = 2


@dataclass(frozen=True)
class AlignOptions:
    """Options of Viterbi alignment (Kaldi's ``gmm-align-compiled`` ``$scale_opts``).

    Attributes:
        acoustic_scale: multiplies the log-likelihoods (0.1).
        beam, retry_beam: decoder beams (10, 40; a failure at ``beam`` is retried at ``retry_beam``).
        transition_scale, self_loop_scale: graph scales (1.0, 0.1).
    """

    acoustic_scale: float = 0.1
    beam: float = 10.0
    retry_beam: float = 40.0
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1

    def graph_options(self) -> GraphOptions:
        """The :class:`GraphOptions` for compiling alignment graphs."""
        return GraphOptions(transition_scale=self.transition_scale, self_loop_scale=self.self_loop_scale)


# ----------------------------------------------------------------------------------------------------
# Transcripts


@dataclass
class Transcripts:
    """Word ids of every utterance of a feature archive, from a data dir's ``text``.

    Attributes:
        word_ids: per archive utterance, the word ids, or None when it has no usable transcript.
        missing: archive utterance id -> why it has none (no line in ``text``, empty transcript).
        not_in_archive: utterances of ``text`` without features (listed, never aligned).
        num_oov_mapped: transcript tokens mapped to the lang's OOV word.
    """

    word_ids: list[list[int] | None]
    missing: dict[str, str]
    not_in_archive: list[str]
    num_oov_mapped: int


def load_transcripts(text_path: str | os.PathLike, lang: Lang, utt_ids: Sequence[str]) -> Transcripts:
    """Map the words of a Kaldi ``text`` file to word ids for the utterances ``utt_ids`` (archive order).

    A word missing from the lexicon becomes the lang's OOV word (``oov.txt``) when there is one (counted
    and logged); otherwise it is an error.

    Raises:
        InputError: naming ``text`` and the line: a word not in the lexicon and no OOV word configured, or
            a reserved word (``<s>``, ``#0``...) in a transcript.
    """
    text_path = Path(text_path)
    lexicon_words = set(lang.lexicon.words)
    oov_id = lang.oov_id
    by_utt: dict[str, list[int]] = {}
    num_oov = 0
    oov_examples: list[str] = []
    for t in read_transcripts(text_path):
        ids = []
        for w in t.words:
            if w not in lexicon_words:
                if w in lang.words:
                    raise InputError(f"word {w!r} has no pronunciation (a reserved symbol?)", text_path, t.line)
                if oov_id is None:
                    raise InputError(
                        f"word {w!r} is not in the lexicon of {lang.dir} and the lang dir has no OOV word "
                        "(oov.txt); add the word to the dictionary or configure an OOV word",
                        text_path,
                        t.line,
                    )
                num_oov += 1
                if len(oov_examples) < 5:
                    oov_examples.append(f"{w} ({text_path}:{t.line})")
                ids.append(oov_id)
            else:
                ids.append(lang.words.id(w))
        by_utt[t.utt_id] = ids
    if num_oov:
        logger.warning(
            "%d transcript words are not in the lexicon and were mapped to %s, e.g. %s",
            num_oov,
            lang.oov_word,
            ", ".join(oov_examples),
        )
    word_ids: list[list[int] | None] = []
    missing: dict[str, str] = {}
    for utt in utt_ids:
        ids = by_utt.get(utt)
        if ids is None:
            missing[utt] = f"no transcript in {text_path}"
        elif not ids:
            missing[utt] = "empty transcript"
        word_ids.append(ids if ids else None)
    archive = set(utt_ids)
    not_in_archive = [u for u in by_utt if u not in archive]
    return Transcripts(word_ids, missing, not_in_archive, num_oov)


def first_pronunciations(lang: Lang) -> dict[int, list[int]]:
    """Word id -> phone ids of its first pronunciation (for equal alignment)."""
    out = {}
    for word in lang.lexicon.words:
        pron = lang.lexicon.pronunciations(word)[0]
        out[lang.words.id(word)] = [lang.phones.id(p) for p in pron]
    return out


# ----------------------------------------------------------------------------------------------------
# Scoring and statistics on the hot paths of training


def graph_pdfs(graph, transition_model: TransitionModel) -> np.ndarray:
    """Sorted pdf ids that the input labels (transition state + 1) of an alignment graph use."""
    labels = set()
    for state in range(graph.num_states):
        for arc in kaldifst.ArcIterator(graph, state):
            labels.add(arc.ilabel)
    labels.discard(0)
    tstates = np.fromiter(labels, dtype=np.int64, count=len(labels)) - 1
    return np.unique(transition_model.tstate_to_pdf[tstates])


class SubsetScorer:
    """Log-likelihoods of frames under a SUBSET of a model's pdfs (the pdfs of one utterance's alignment
    graph): a [T, 2D+1] x [2D+1, G_subset] product and a per-pdf log-sum-exp. An utterance's graph uses
    a fraction of the pdfs (AN4: ~40 of 104 monophone pdfs, fewer of a tree's), so realignment scores that
    fraction instead of every Gaussian (Kaldi's decodable objects also score only the pdfs asked for).

    Args:
        gmm: the model (its cached natural parameters are used).
    """

    def __init__(self, gmm: DiagGmmSet):
        self.gmm = gmm
        self.weight = gmm.natural_params.weight
        offsets = gmm.pdf_offsets.cpu().numpy()
        self.first = offsets[:-1]
        self.sizes = np.diff(offsets)

    def __call__(self, feats: torch.Tensor, pdfs: np.ndarray) -> torch.Tensor:
        """``feats`` [T, D] -> float [T, len(pdfs)]: log-likelihood of each frame under each pdf of ``pdfs``."""
        sizes = self.sizes[pdfs]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = np.repeat(self.first[pdfs] - starts, sizes) + np.arange(int(sizes.sum()))
        # [G_u, T]: each pdf's Gaussians are consecutive rows, reduced with segment_reduce (contiguous segments)
        scores = self.weight[torch.from_numpy(rows)] @ self.gmm.scoring_features(feats).T
        lengths = torch.from_numpy(sizes)
        peak = torch.segment_reduce(scores, "max", lengths=lengths, axis=0)
        shifted = (scores - torch.repeat_interleave(peak, lengths, dim=0)).clamp_(min=EXP_FLOOR).exp_()
        return torch.segment_reduce(shifted, "sum", lengths=lengths, axis=0).log_().add_(peak).T


def accumulate_stats_by_pdf(gmm: DiagGmmSet, feats: torch.Tensor, pdf_ids: torch.Tensor) -> GmmStats:
    """Same statistics as :func:`asr.gmm.accumulate.accumulate_stats` (no frame weights), computed pdf by pdf.

    Frames are sorted by pdf; per pdf one ``[n, 2D+1] x [2D+1, m]`` product gives the Gaussian scores, the
    posteriors come from a log-sum-exp, and ``posteriors^T [x, x^2]`` (float64) the moments. No per-frame
    gather of Gaussian parameters (``[n, m, 2D+1]`` in accumulate_stats), so it runs ~10x faster on CPU at
    hundreds to thousands of Gaussians; the Python loop is over pdfs, not frames. (Belongs in
    asr/gmm/accumulate.py; kept here until that module takes it.)
    """
    num_pdfs, dim = gmm.num_pdfs, gmm.dim
    stats = GmmStats.zeros_like_model(gmm)
    if feats.shape[0] == 0:
        return stats
    pdf_ids = pdf_ids.to(torch.int64)
    order = torch.argsort(pdf_ids, stable=True)
    counts = torch.bincount(pdf_ids, minlength=num_pdfs).tolist()
    x = feats[order]
    xs = gmm.scoring_features(x)
    weight = gmm.natural_params.weight
    offsets = gmm.pdf_offsets.tolist()
    loglike = torch.zeros((), dtype=torch.float64)
    start = 0
    for pdf, n in enumerate(counts):
        if n == 0:
            continue
        g0, g1 = offsets[pdf], offsets[pdf + 1]
        end = start + n
        x64 = x[start:end].to(torch.float64)
        moments_in = torch.cat([x64, x64 * x64], dim=1)  # [n, 2D]
        ll = xs[start:end] @ weight[g0:g1].T  # [n, m]
        if g1 - g0 == 1:
            loglike += ll.sum(dtype=torch.float64)
            stats.occupancy[g0] += n
            summed = moments_in.sum(0)
            stats.first_order[g0] += summed[:dim]
            stats.second_order[g0] += summed[dim:]
        else:
            peak = ll.amax(dim=1, keepdim=True)
            lse = (ll - peak).clamp_(min=EXP_FLOOR).exp_().sum(dim=1).log_().add_(peak.squeeze(1))
            loglike += lse.sum(dtype=torch.float64)
            post = (ll - lse[:, None]).clamp_(min=EXP_FLOOR).exp_().to(torch.float64)  # [n, m]
            stats.occupancy[g0:g1] += post.sum(0)
            summed = post.T @ moments_in  # [m, 2D]
            stats.first_order[g0:g1] += summed[:, :dim]
            stats.second_order[g0:g1] += summed[:, dim:]
        start = end
    stats.loglike_sum += loglike
    stats.frame_count += float(feats.shape[0])
    return stats


# ----------------------------------------------------------------------------------------------------
# Shards (one per job)


@dataclass
class ShardSpec:
    """What a job needs to set itself up (picklable; sent to a worker process once).

    Attributes:
        index: job number.
        feature_archive: path of the archive (13-dim rows; the shard adds deltas).
        utt_positions: positions of the shard's utterances in the archive (increasing).
        utt_ids: their ids; word_ids: their transcripts (None: no transcript, the utterance always fails).
        missing: utterance id -> reason for the utterances without a transcript.
        lexicon_fst: path of the lang's ``L.fst`` (for alignment graphs).
        delta_order, delta_window: deltas to add.
        num_threads: torch threads in the worker (None: leave torch's default).
        feature_transform: None (deltas), or a picklable callable ``(rows [T, dim], offsets [U + 1], utt_ids)
            -> float32 [T, D]`` making the model features of concatenated utterances (e.g. splicing + LDA,
            :class:`asr.gmm.lda_mllt.SplicedTransform`, or speaker-adapted features).
    """

    index: int
    feature_archive: str
    utt_positions: list[int]
    utt_ids: list[str]
    word_ids: list[list[int] | None]
    missing: dict[str, str]
    lexicon_fst: str
    delta_order: int = 2
    delta_window: int = 2
    num_threads: int | None = None
    feature_transform: Any = None


@dataclass
class ShardFrames:
    """One job's utterances as a :meth:`AlignmentJobs.map_frames` function sees them (read-only).

    Attributes:
        utt_ids: the job's utterances; offsets: int64 [U + 1] into the rows below.
        raw: archive rows [T, dim]; feats: model features [T, D] (after the feature transform or deltas).
        alignments: per utterance the transition-state ids, or None (failed / not aligned).
        transition_model: the model of the alignments (None before ``set_model``).
    """

    utt_ids: list[str]
    offsets: np.ndarray
    raw: np.ndarray
    feats: torch.Tensor
    alignments: list[np.ndarray | None]
    transition_model: TransitionModel | None


@dataclass
class PassResult:
    """What one job returns from a pass (statistics are summed over jobs by :meth:`PassResult.merge`).

    Attributes:
        stats: GMM statistics of the aligned frames (None when not accumulated).
        transition_counts: float64 [num_transitions] (None when not accumulated).
        failures: utterance id -> reason (utterances left out of this pass).
        num_utts, num_frames: utterances and frames of the job; aligned_frames: frames with an alignment.
        align_loglike: sum over realigned utterances of the unscaled acoustic log-likelihood of the path.
        realigned_frames: frames in those utterances.
        seconds: wall seconds per stage in the job (``graphs``, ``likelihoods``, ``viterbi``, ``accumulate``).
        cpu_seconds: CPU seconds of the job's pass (summed over jobs by :meth:`merge`).
    """

    stats: GmmStats | None = None
    transition_counts: np.ndarray | None = None
    failures: dict[str, str] = field(default_factory=dict)
    num_utts: int = 0
    num_frames: int = 0
    aligned_frames: int = 0
    align_loglike: float = 0.0
    realigned_frames: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @staticmethod
    def merge(results: Sequence[PassResult]) -> PassResult:
        """Sum the results of all jobs (seconds: the maximum over jobs, i.e. the wall time of the stage)."""
        out = PassResult()
        for r in results:
            if r.stats is not None:
                out.stats = r.stats.clone() if out.stats is None else out.stats.add_(r.stats)
            if r.transition_counts is not None:
                out.transition_counts = (
                    r.transition_counts.copy()
                    if out.transition_counts is None
                    else out.transition_counts + r.transition_counts
                )
            out.failures.update(r.failures)
            out.num_utts += r.num_utts
            out.num_frames += r.num_frames
            out.aligned_frames += r.aligned_frames
            out.align_loglike += r.align_loglike
            out.realigned_frames += r.realigned_frames
            out.cpu_seconds += r.cpu_seconds
            for k, v in r.seconds.items():
                out.seconds[k] = max(out.seconds.get(k, 0.0), v)
        return out


@dataclass
class UtteranceAlignments:
    """Alignments of chosen utterances (:meth:`AlignmentJobs.align_utterances`).

    Attributes:
        positions: archive positions of the utterances, in the order asked for.
        alignments: per utterance its transition-state ids (int32 [frames]), or None when it failed.
        failures: utterance id -> reason, for the None entries.
        loglikes: per utterance the unscaled acoustic log-likelihood of its path (0.0 where it failed).
        seconds: wall seconds per stage (``graphs``, ``likelihoods``, ``viterbi``; merged: the slowest job's).
    """

    positions: list[int] = field(default_factory=list)
    alignments: list[np.ndarray | None] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    loglikes: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Shard:
    """One job's utterances: features, graphs, alignments. Runs in a worker process (or in-process)."""

    def __init__(self, spec: ShardSpec):
        if spec.num_threads is not None:
            torch.set_num_threads(spec.num_threads)
        self.spec = spec
        with FeatureArchive(spec.feature_archive) as archive:
            blocks, lengths = [], []
            for pos in spec.utt_positions:
                start, end = int(archive.offsets[pos]), int(archive.offsets[pos + 1])
                blocks.append(archive.read_frames(start, end))
                lengths.append(end - start)
            dim = archive.dim
        self.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        self.raw = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=np.float32)
        self.feature_transform = spec.feature_transform
        self.feats = self._model_features()
        self.alignments: list[np.ndarray | None] = [None] * len(spec.utt_ids)
        self.failures: dict[str, str] = dict(spec.missing)
        self.transition_model: TransitionModel | None = None
        self.ctx_dep: ContextDependency | None = None
        self.graph_options = GraphOptions()
        self.graphs: list | None = None
        self.graph_failures: dict[str, str] = {}
        self._local_index = {pos: k for k, pos in enumerate(spec.utt_positions)}
        self._compiler: AlignmentGraphCompiler | None = None  # for align_utterances (one graph at a time)
        self._align_gmm: DiagGmmSet | None = None
        self._align_scorer: SubsetScorer | None = None

    def _model_features(self) -> torch.Tensor:
        if self.feature_transform is None:
            return torch.from_numpy(add_deltas(self.raw, self.offsets, self.spec.delta_order, self.spec.delta_window))
        feats = np.ascontiguousarray(self.feature_transform(self.raw, self.offsets, self.spec.utt_ids), np.float32)
        return torch.from_numpy(feats)

    def set_feature_transform(self, transform: Any) -> None:
        """Recompute the model features with another transform (None: deltas), e.g. after an MLLT or fMLLR
        update; alignments and graphs are kept."""
        self.feature_transform = transform
        self.feats = self._model_features()

    def map_frames(self, fn: Any, *args: Any) -> Any:
        """Return ``fn(ShardFrames, *args)`` (``fn`` picklable: a module-level function)."""
        view = ShardFrames(
            list(self.spec.utt_ids), self.offsets, self.raw, self.feats, list(self.alignments), self.transition_model
        )
        return fn(view, *args)

    # -- model structure and graphs

    def set_model(
        self,
        transition_model: TransitionModel,
        ctx_dep: ContextDependency,
        graph_options: GraphOptions,
        compile_graphs: bool,
    ) -> float:
        """Use this transition model and context dependency from now on; with ``compile_graphs`` compile the
        alignment graphs now (they carry this model's transition probabilities), else at the next realignment.
        Returns the seconds spent compiling."""
        self.transition_model = transition_model
        self.ctx_dep = ctx_dep
        self.graph_options = graph_options
        self.graphs = None
        self._compiler = None
        return self.compile_graphs() if compile_graphs else 0.0

    def compile_graphs(self) -> float:
        """Compile every utterance's alignment graph with the current transition model; returns seconds."""
        t0 = time.perf_counter()
        compiler = AlignmentGraphCompiler(
            read_fst(self.spec.lexicon_fst), self.transition_model, self.ctx_dep, self.graph_options
        )
        graphs: list = []
        self.graph_failures = {}
        self.graph_pdfs: dict[int, np.ndarray] = {}
        for utt, words in zip(self.spec.utt_ids, self.spec.word_ids):
            if words is None:
                graphs.append(None)
                continue
            try:
                graph = compiler.compile(words)
                graphs.append(graph)
                self.graph_pdfs[len(graphs) - 1] = graph_pdfs(graph, self.transition_model)
            except GraphBuildError as e:
                self.graph_failures[utt] = f"cannot build the alignment graph: {e}"
                graphs.append(None)
        self.graphs = graphs
        return time.perf_counter() - t0

    def feature_stats(self) -> GmmStats:
        """One-pdf statistics of the shard's frames (for the global mean and variance)."""
        zeros = torch.zeros(self.feats.shape[0], dtype=torch.int64)
        return accumulate_pdf_stats(self.feats, zeros, 1)

    # -- alignments

    def equal_align(self, prons: Mapping[int, Sequence[int]], edge_silence: int | None) -> dict[str, str]:
        """Kaldi's ``align-equal-compiled`` over one path: the first pronunciation of each word (no optional
        silence between words; ``edge_silence`` phone at both ends when given), frames divided evenly over
        the HMM states. Returns the failures (fewer frames than states, no transcript)."""
        tm, ctx = self.transition_model, self.ctx_dep
        topo = tm.topology
        width, central = int(ctx.context_width), int(ctx.central_position)
        self.failures = dict(self.spec.missing)
        for k, (utt, words) in enumerate(zip(self.spec.utt_ids, self.spec.word_ids)):
            self.alignments[k] = None
            if words is None:
                continue
            phones = [p for w in words for p in prons[w]]
            if edge_silence is not None:
                phones = [edge_silence, *phones, edge_silence]
            padded = [0] * central + phones + [0] * (width - 1 - central)
            tstates = []
            for i, phone in enumerate(phones):
                window = padded[i : i + width]
                for j, state in enumerate(topo.hmm(phone).states):
                    tstates.append(tm.transition_state(phone, j, ctx.compute(window, state.pdf_class)))
            num_frames = int(self.offsets[k + 1] - self.offsets[k])
            if num_frames < len(tstates):
                self.failures[utt] = f"equal alignment: {num_frames} frames for {len(tstates)} HMM states"
                continue
            bounds = (np.arange(len(tstates) + 1) * num_frames) // len(tstates)
            self.alignments[k] = np.repeat(np.array(tstates, dtype=np.int32), np.diff(bounds))
        return dict(self.failures)

    def set_alignments(self, alignments: Sequence[np.ndarray | None], failures: Mapping[str, str]) -> None:
        """Replace the alignments (e.g. converted from another model); ``failures`` for the None entries."""
        if len(alignments) != len(self.spec.utt_ids):
            raise ValueError(f"{len(alignments)} alignments for {len(self.spec.utt_ids)} utterances")
        for k, ali in enumerate(alignments):
            n = int(self.offsets[k + 1] - self.offsets[k])
            if ali is not None and len(ali) != n:
                raise ValueError(f"utterance {self.spec.utt_ids[k]}: alignment of {len(ali)} frames for {n}")
        self.alignments = [None if a is None else np.asarray(a, dtype=np.int32) for a in alignments]
        self.failures = {u: failures[u] for u, a in zip(self.spec.utt_ids, alignments) if a is None}

    def get_alignments(self) -> tuple[list[np.ndarray | None], dict[str, str]]:
        """The current alignments (transition-state ids per frame or None) and the failures."""
        return self.alignments, dict(self.failures)

    def _realign(self, gmm: DiagGmmSet, options: AlignOptions, result: PassResult) -> None:
        if self.graphs is None:
            result.seconds["graphs"] = self.compile_graphs()
        tm = self.transition_model
        self.failures = dict(self.spec.missing)
        self.failures.update(self.graph_failures)
        scorer = SubsetScorer(gmm)
        t_like = t_vit = 0.0
        for u, (utt, graph) in enumerate(zip(self.spec.utt_ids, self.graphs)):
            self.alignments[u] = None
            if graph is None:
                continue
            res, seconds_like, seconds_vit = self._viterbi(u, graph, self.graph_pdfs[u], scorer, tm, options)
            t_like += seconds_like
            t_vit += seconds_vit
            if res.ok:
                self.alignments[u] = res.tstate_ids
                result.align_loglike += -res.acoustic_cost / options.acoustic_scale
                result.realigned_frames += len(res.tstate_ids)
            else:
                self.failures[utt] = res.failure
        result.seconds["likelihoods"] = t_like
        result.seconds["viterbi"] = t_vit

    def _viterbi(
        self, u: int, graph, pdfs: np.ndarray, scorer: SubsetScorer, tm: TransitionModel, options: AlignOptions
    ) -> tuple[Any, float, float]:
        """Align the shard's utterance ``u`` on ``graph`` (whose pdfs are ``pdfs``); returns the
        :func:`align_utterance` result and the seconds of likelihoods and of Viterbi."""
        t0 = time.perf_counter()
        lo, hi = int(self.offsets[u]), int(self.offsets[u + 1])
        scores = np.zeros((hi - lo, scorer.gmm.num_pdfs), dtype=np.float32)  # columns outside the graph: unused
        with torch.no_grad():
            scores[:, pdfs] = scorer(self.feats[lo:hi], pdfs).numpy() * np.float32(options.acoustic_scale)
        t1 = time.perf_counter()
        res = align_utterance(graph, scores, tm, beam=options.beam, retry_beam=options.retry_beam)
        return res, t1 - t0, time.perf_counter() - t1

    def align_utterances(
        self, positions: Sequence[int], gmm_state: dict | None, options: AlignOptions
    ) -> UtteranceAlignments:
        """Align the shard's utterances at archive ``positions`` with the GMM ``gmm_state`` (None: the one of the
        previous call), compiling each one's graph just before (and dropping it after). The shard's own
        alignments (:meth:`get_alignments`) are left as they are. Returns the alignments in ``positions`` order."""
        if gmm_state is not None:
            self._align_gmm = DiagGmmSet.from_state_dict(gmm_state)
            self._align_scorer = SubsetScorer(self._align_gmm)
        if self._align_scorer is None:
            raise ValueError("align_utterances: no GMM yet (pass one with the first call)")
        tm = self.transition_model
        if tm is None:
            raise ValueError("align_utterances: set_model first")
        if self._compiler is None:
            self._compiler = AlignmentGraphCompiler(
                read_fst(self.spec.lexicon_fst), tm, self.ctx_dep, self.graph_options
            )
        out = UtteranceAlignments(positions=list(positions))
        t_graph = t_like = t_vit = 0.0
        for pos in positions:
            u = self._local_index[pos]
            utt, words = self.spec.utt_ids[u], self.spec.word_ids[u]
            out.alignments.append(None)
            out.loglikes.append(0.0)
            if words is None:
                out.failures[utt] = self.spec.missing.get(utt, "no transcript")
                continue
            t0 = time.perf_counter()
            try:
                graph = self._compiler.compile(words)
                pdfs = graph_pdfs(graph, tm)
            except GraphBuildError as e:
                out.failures[utt] = f"cannot build the alignment graph: {e}"
                continue
            finally:
                t_graph += time.perf_counter() - t0
            res, seconds_like, seconds_vit = self._viterbi(u, graph, pdfs, self._align_scorer, tm, options)
            t_like += seconds_like
            t_vit += seconds_vit
            if res.ok:
                out.alignments[-1] = res.tstate_ids
                out.loglikes[-1] = float(-res.acoustic_cost / options.acoustic_scale)
            else:
                out.failures[utt] = res.failure
        out.seconds = {"graphs": t_graph, "likelihoods": t_like, "viterbi": t_vit}
        return out

    def run_pass(self, gmm_state: dict | None, realign: bool, accumulate: bool, options: AlignOptions) -> PassResult:
        """Optionally realign with the GMM, then optionally accumulate GMM statistics and transition counts."""
        cpu0 = time.process_time()
        result = PassResult(num_utts=len(self.spec.utt_ids), num_frames=int(self.offsets[-1]))
        gmm = DiagGmmSet.from_state_dict(gmm_state) if gmm_state is not None else None
        if realign:
            self._realign(gmm, options, result)
        result.failures = dict(self.failures)
        ok = [k for k, a in enumerate(self.alignments) if a is not None]
        result.aligned_frames = int(sum(len(self.alignments[k]) for k in ok))
        if accumulate:
            t0 = time.perf_counter()
            tm = self.transition_model
            counts = tm.zero_counts()
            if ok:
                frames = np.concatenate([np.arange(self.offsets[k], self.offsets[k + 1]) for k in ok])
                tstates = np.concatenate([self.alignments[k] for k in ok])
                pdf_ids = torch.from_numpy(tm.tstate_to_pdf[tstates])
                feats = self.feats if len(frames) == self.feats.shape[0] else self.feats[torch.from_numpy(frames)]
                with torch.no_grad():
                    result.stats = accumulate_stats_by_pdf(gmm, feats, pdf_ids)
                for k in ok:
                    tm.accumulate(counts, self.alignments[k], utt_id=self.spec.utt_ids[k])
            else:
                result.stats = GmmStats.zeros_like_model(gmm)
            result.transition_counts = counts
            result.seconds["accumulate"] = time.perf_counter() - t0
        result.cpu_seconds = time.process_time() - cpu0
        return result


def _worker_main(conn, spec: ShardSpec) -> None:
    """Worker process: build the shard, then serve ``(method, args)`` calls until ``None``."""
    try:
        shard = _Shard(spec)
        conn.send(("ok", None))
    except BaseException as e:  # report set-up errors (bad archive...) to the parent
        conn.send(("error", e, traceback.format_exc()))
        return
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        name, args = message
        try:
            conn.send(("ok", getattr(shard, name)(*args)))
        except BaseException as e:
            try:
                conn.send(("error", e, traceback.format_exc()))
            except Exception:  # the exception itself would not pickle
                conn.send(("error", RuntimeError(f"{type(e).__name__}: {e}"), traceback.format_exc()))


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(num_threads)``, restoring the previous count after.

    The GMM passes are many small tensor operations: on a loaded machine torch's OpenMP threads wait on
    each other and one thread is ~10x faster (measured on yesno: 15 s -> 1.3 s of training).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class JobError(AsrError):
    """A job failed in its worker process (the worker's traceback is in the message)."""


def split_into_jobs(lengths: Sequence[int], num_jobs: int) -> list[list[int]]:
    """Split utterances (by frame count) into ``num_jobs`` groups of about equal frames (longest first,
    each to the lightest group); each group's positions are returned in increasing order."""
    num_jobs = max(1, min(num_jobs, len(lengths))) if len(lengths) else 1
    loads = [0] * num_jobs
    groups: list[list[int]] = [[] for _ in range(num_jobs)]
    for pos in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        j = min(range(num_jobs), key=lambda g: loads[g])
        groups[j].append(pos)
        loads[j] += lengths[pos]
    return [sorted(g) for g in groups]


def split_blocks_into_jobs(lengths: Sequence[int], blocks: Sequence[Sequence[int]], num_jobs: int) -> list[list[int]]:
    """Split the utterances of ``blocks`` (positions into ``lengths``, the frame counts) into at most ``num_jobs``
    groups: each block on its own as :func:`split_into_jobs` does, its heaviest part to the lightest group so far.
    Returns each group's positions in increasing order."""
    held = [int(p) for b in blocks for p in b]
    if len(set(held)) != len(held) or any(not 0 <= p < len(lengths) for p in held):
        raise ValueError(f"blocks must hold distinct utterance positions below {len(lengths)}")
    groups: list[list[int]] = [[] for _ in range(max(1, min(num_jobs, len(held))))]
    loads = [0] * len(groups)
    for block in blocks:
        parts = split_into_jobs([lengths[p] for p in block], len(groups)) if len(block) else []
        parts.sort(key=lambda g: -sum(lengths[block[i]] for i in g))
        for part in parts:
            j = min(range(len(groups)), key=lambda g: loads[g])
            groups[j].extend(block[i] for i in part)
            loads[j] += sum(lengths[block[i]] for i in part)
    return [sorted(g) for g in groups]


class AlignmentJobs:
    """The jobs of a data set: shards of utterances in worker processes (or in this process for one job).

    Args:
        feature_archive: path of ``<data>/<type>.h5``.
        transcripts: from :func:`load_transcripts` (same utterance order as the archive).
        lexicon_fst: path of the lang's ``L.fst``.
        num_jobs: worker processes (1: in-process).
        delta_order, delta_window: deltas the model uses.
        feature_transform: instead of deltas, a picklable callable making the model features
            (see :class:`ShardSpec`); :meth:`set_feature_transform` replaces it later.
        blocks: archive positions of the utterances the jobs hold, in blocks (None: all utterances, one block);
            each block is divided among the jobs by frames on its own, so that aligning a block at a time
            (:meth:`align_utterances`) keeps every job busy. Utterances outside the blocks are never loaded,
            aligned or accumulated (:meth:`get_alignments` gives None for them, without a failure).

    Use as a context manager (workers are stopped on exit). Methods call every job in parallel.
    """

    def __init__(
        self,
        feature_archive: str | os.PathLike,
        transcripts: Transcripts,
        lexicon_fst: str | os.PathLike,
        num_jobs: int = 1,
        delta_order: int = 2,
        delta_window: int = 2,
        feature_transform: Any = None,
        blocks: Sequence[Sequence[int]] | None = None,
    ):
        with FeatureArchive(feature_archive) as archive:
            self.utt_ids = list(archive.utt_ids)
            self.offsets = archive.offsets.copy()
        if len(transcripts.word_ids) != len(self.utt_ids):
            raise ValueError("transcripts do not match the feature archive's utterances")
        lengths = np.diff(self.offsets).tolist()
        if blocks is None:
            self.groups = split_into_jobs(lengths, num_jobs)
        else:
            self.groups = split_blocks_into_jobs(lengths, blocks, num_jobs)
        self.num_jobs = len(self.groups)
        self._job_of = {p: j for j, g in enumerate(self.groups) for p in g}
        specs = []
        for j, group in enumerate(self.groups):
            ids = [self.utt_ids[p] for p in group]
            specs.append(
                ShardSpec(
                    index=j,
                    feature_archive=os.fspath(feature_archive),
                    utt_positions=group,
                    utt_ids=ids,
                    word_ids=[transcripts.word_ids[p] for p in group],
                    missing={u: transcripts.missing[u] for u in ids if u in transcripts.missing},
                    lexicon_fst=os.fspath(lexicon_fst),
                    delta_order=delta_order,
                    delta_window=delta_window,
                    num_threads=1 if self.num_jobs > 1 else None,  # in-process: see torch_threads
                    feature_transform=feature_transform,
                )
            )
        self._local: _Shard | None = None
        self._workers: list[tuple[Any, Any]] = []
        if self.num_jobs == 1:
            with torch_threads(1):
                self._local = _Shard(specs[0])
            return
        # fork (instant, as torch's DataLoader workers; each worker sets one torch thread before any
        # torch work); spawn where fork does not exist.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        try:
            for spec in specs:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(child, spec), daemon=True)
                proc.start()
                child.close()
                self._workers.append((proc, parent))
            self._receive_all()
        except BaseException:
            self.close()
            raise

    def _receive_all(self) -> list:
        results, error = [], None
        for j, (proc, conn) in enumerate(self._workers):
            try:
                message = conn.recv()
            except EOFError:
                error = error or JobError(f"job {j} died (exit code {proc.exitcode})")
                results.append(None)
                continue
            if message[0] == "ok":
                results.append(message[1])
            else:
                exc, tb = message[1], message[2]
                if isinstance(exc, AsrError) and error is None:
                    error = exc
                elif error is None:
                    error = JobError(f"job {j} failed:\n{tb}")
                results.append(None)
        if error is not None:
            raise error
        return results

    def call(self, name: str, *args: Any, per_job_args: Sequence[tuple] | None = None) -> list:
        """Call ``_Shard.<name>(*args)`` (or ``per_job_args[j]`` for job j) on every job; results in job order."""
        if self._local is not None:
            job_args = per_job_args[0] if per_job_args is not None else args
            with torch_threads(1):
                return [getattr(self._local, name)(*job_args)]
        for j, (_, conn) in enumerate(self._workers):
            conn.send((name, per_job_args[j] if per_job_args is not None else args))
        return self._receive_all()

    # -- conveniences

    def set_model(
        self,
        transition_model: TransitionModel,
        ctx_dep: ContextDependency,
        options: AlignOptions,
        compile_graphs: bool = True,
    ) -> float:
        """Send the model structure to every job; with ``compile_graphs`` the jobs compile their alignment graphs
        now, with this transition model's probabilities (else at the next realignment). Returns the wall seconds
        of compilation (the slowest job)."""
        return max(self.call("set_model", transition_model, ctx_dep, options.graph_options(), compile_graphs))

    def feature_stats(self) -> GmmStats:
        """Statistics (count, sum, sum of squares) of all frames with deltas, one pdf: for a flat start."""
        stats = None
        for s in self.call("feature_stats"):
            stats = s if stats is None else stats.add_(s)
        return stats

    def run_pass(self, gmm: DiagGmmSet | None, realign: bool, accumulate: bool, options: AlignOptions) -> PassResult:
        """Realign and/or accumulate on every job; returns the merged :class:`PassResult`."""
        state = gmm.state_dict() if gmm is not None else None
        return PassResult.merge(self.call("run_pass", state, realign, accumulate, options))

    def set_feature_transform(self, transform: Any) -> None:
        """Every job recomputes its model features with ``transform`` (see :class:`ShardSpec`)."""
        self.call("set_feature_transform", transform)

    def map_frames(self, fn: Any, *args: Any) -> list:
        """``fn(ShardFrames, *args)`` on every job (in parallel); the results in job order. ``fn`` must be a
        module-level function (it is pickled by reference); use it for statistics the passes do not make."""
        return self.call("map_frames", fn, *args)

    def equal_align(self, prons: Mapping[int, Sequence[int]], edge_silence: int | None) -> dict[str, str]:
        """Equal alignment on every job; returns the failures."""
        out: dict[str, str] = {}
        for f in self.call("equal_align", prons, edge_silence):
            out.update(f)
        return out

    def align_utterances(
        self, positions: Sequence[int], gmm: DiagGmmSet | None, options: AlignOptions
    ) -> UtteranceAlignments:
        """Align the utterances at archive ``positions`` (each job its own, in parallel) with ``gmm``; None
        reuses the GMM of the previous call, so that a model is sent to the workers once for many calls.
        Graphs are compiled per utterance with the transition model of :meth:`set_model` (call it with
        ``compile_graphs=False``: these calls do not use the precompiled graphs). The jobs' own alignments
        (those of :meth:`run_pass`) are not changed.

        Returns:
            The alignments, failures and path log-likelihoods in ``positions`` order.
        """
        per_job: list[list[int]] = [[] for _ in self.groups]
        for p in positions:
            if p not in self._job_of:
                raise ValueError(f"utterance position {p} is not held by these jobs")
            per_job[self._job_of[p]].append(int(p))
        state = gmm.state_dict() if gmm is not None else None
        parts = self.call("align_utterances", per_job_args=[(ps, state, options) for ps in per_job])
        found: dict[int, tuple[np.ndarray | None, float]] = {}
        out = UtteranceAlignments(positions=[int(p) for p in positions])
        for part in parts:
            for p, ali, loglike in zip(part.positions, part.alignments, part.loglikes):
                found[p] = (ali, loglike)
            out.failures.update(part.failures)
            for k, v in part.seconds.items():
                out.seconds[k] = max(out.seconds.get(k, 0.0), v)
        for p in out.positions:
            ali, loglike = found[p]
            out.alignments.append(ali)
            out.loglikes.append(loglike)
        return out

    def set_alignments(self, alignments: Sequence[np.ndarray | None], failures: Mapping[str, str]) -> None:
        """Distribute per-utterance alignments (archive order) to the jobs."""
        per_job = [([alignments[p] for p in g], dict(failures)) for g in self.groups]
        self.call("set_alignments", per_job_args=per_job)

    def get_alignments(self) -> tuple[list[np.ndarray | None], dict[str, str]]:
        """All alignments in archive order (None where failed) and the failures."""
        out: list[np.ndarray | None] = [None] * len(self.utt_ids)
        failures: dict[str, str] = {}
        for g, (alis, fails) in zip(self.groups, self.call("get_alignments")):
            for p, a in zip(g, alis):
                out[p] = a
            failures.update(fails)
        return out, failures

    def close(self) -> None:
        """Stop the workers."""
        for _proc, conn in self._workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for proc, conn in self._workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            conn.close()
        self._workers = []
        self._local = None

    def __enter__(self) -> AlignmentJobs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------
# Writing alignments


def transition_states_sha256(transition_model: TransitionModel) -> str:
    """Hex sha256 of the ``(phone, hmm_state, pdf_id)`` table (the meaning of transition-state ids)."""
    return hashlib.sha256(transition_model.transition_states.astype("<i4").tobytes()).hexdigest()


def write_alignments(
    out_dir: str | os.PathLike,
    utt_ids: Sequence[str],
    offsets: np.ndarray,
    alignments: Sequence[np.ndarray | None],
    failures: Mapping[str, str],
    transition_model: TransitionModel,
    phones: SymbolTable,
    attrs: Mapping[str, Any],
    frame_shift: float = DEFAULT_FRAME_SHIFT,
    frame_length: float = DEFAULT_FRAME_LENGTH,
) -> None:
    """Write ``ali.h5``, ``ali.ark`` (transition-state ids, Kaldi int vectors) and ``phones.ctm`` into ``out_dir``.

    Args:
        utt_ids, offsets: the feature archive's utterances and offsets.
        alignments: per utterance the transition-state ids (``None`` where it failed).
        failures: reasons for the ``None`` entries (one is made up if missing).
        transition_model: the model of the alignments; phones: phones.txt (CTM names).
        attrs: extra ``ali.h5`` attributes (``model_dir``, ``feature_archive``...).
    """
    from asr.features.kaldi_ark import import_kaldi_io

    out_dir = Path(out_dir)
    total = int(offsets[-1])
    tstates = np.full(total, -1, dtype=np.int32)
    failed: dict[str, str] = {}
    for i, (utt, ali) in enumerate(zip(utt_ids, alignments)):
        if ali is None:
            failed[utt] = failures.get(utt, "not aligned")
            continue
        tstates[offsets[i] : offsets[i + 1]] = ali
    ok = tstates >= 0
    pdf_ids = np.full(total, -1, dtype=np.int32)
    phone_ids = np.full(total, -1, dtype=np.int32)
    pdf_ids[ok] = transition_model.tstate_to_pdf[tstates[ok]]
    phone_ids[ok] = transition_model.tstate_to_phone[tstates[ok]]
    write_alignment_archive(
        out_dir / ALI_H5,
        utt_ids,
        offsets,
        pdf_ids,
        phone_ids,
        tstates,
        failed,
        {
            "num_pdfs": int(transition_model.num_pdfs),
            "num_transition_states": int(transition_model.num_transition_states),
            "transition_states_sha256": transition_states_sha256(transition_model),
            **attrs,
        },
    )
    kaldi_io = import_kaldi_io()
    with atomic_path(out_dir / ALI_ARK) as tmp:
        with open(tmp, "wb") as f:
            for utt, ali in zip(utt_ids, alignments):
                if ali is not None:
                    kaldi_io.write_vec_int(f, np.asarray(ali, dtype=np.int32), key=utt)
    names = {i: s for s, i in phones}
    write_phone_ctm(
        out_dir / PHONES_CTM,
        ((u, phone_segments(a, transition_model)) for u, a in zip(utt_ids, alignments) if a is not None),
        names,
        frame_shift,
        frame_length,
    )


def frame_timing(archive: FeatureArchive) -> tuple[float, float]:
    """``(frame_shift, frame_length)`` in seconds from an archive's options (Kaldi defaults when unknown)."""
    options = archive.options
    if options is None:
        return DEFAULT_FRAME_SHIFT, DEFAULT_FRAME_LENGTH
    return options.frame_shift_ms / 1000.0, options.frame_length_ms / 1000.0


def fingerprint(files: Mapping[str, str | os.PathLike], options: Mapping[str, Any]) -> dict[str, Any]:
    """Content hashes of the input files and the options, plus one hash over all of them."""
    hashes = {name: file_sha256(path) for name, path in sorted(files.items())}
    blob = json.dumps({"files": hashes, "options": options}, sort_keys=True, default=str)
    return {"sha256": hashlib.sha256(blob.encode()).hexdigest(), "files": hashes}


def split_into_blocks(lengths: Sequence[int], block_frames: int) -> list[list[int]]:
    """Cut a sequence of utterances (their frame counts, in order) into consecutive blocks of at least
    ``block_frames`` frames (the last one may be shorter); ``block_frames <= 0`` gives one block. Returns
    each block's indices into ``lengths``."""
    if not len(lengths):
        return []
    if block_frames <= 0:
        return [list(range(len(lengths)))]
    blocks: list[list[int]] = [[]]
    frames = 0
    for i, n in enumerate(lengths):
        if frames >= block_frames:
            blocks.append([])
            frames = 0
        blocks[-1].append(i)
        frames += int(n)
    return blocks


@dataclass
class DoneUtterance:
    """One utterance of a saved alignment block: its transition-state ids (None: failed, with ``failure``)
    and the unscaled acoustic log-likelihood of its path."""

    alignment: np.ndarray | None
    failure: str | None
    loglike: float


class AlignmentBlocks:
    """The alignment blocks already done of one alignment run, in ``<out>/.align_blocks/``.

    After each block of utterances, :func:`align_data_dir` saves the block's alignments, failures and path
    log-likelihoods in one ``.npz`` file written atomically (:func:`asr.atomic.atomic_write`), tagged with the
    run's key (the sha256 of :func:`fingerprint`: input files and options). A run started again reads the
    blocks of the same key and aligns only the other utterances. Files of another key, damaged files and files
    that do not match the feature archive are deleted (their utterances are aligned again). The directory is
    removed once ``align.json`` is written.

    Args:
        out_dir: the alignment dir; key: the run's key.
    """

    FORMAT = "asr-align-block-1"

    def __init__(self, out_dir: str | os.PathLike, key: str):
        self.dir = Path(out_dir) / ALIGN_BLOCKS
        self.key = key

    def load(
        self, utt_ids: Sequence[str], offsets: np.ndarray, num_transition_states: int
    ) -> tuple[dict[int, DoneUtterance], int]:
        """The utterances already aligned: archive position -> :class:`DoneUtterance`, and the number of block
        files they came from. ``utt_ids``, ``offsets``: the feature archive's; alignments must fit them and hold
        transition-state ids below ``num_transition_states``."""
        done: dict[int, DoneUtterance] = {}
        num_blocks = 0
        if not self.dir.is_dir():
            return done, 0
        position = {u: i for i, u in enumerate(utt_ids)}
        for path in sorted(self.dir.glob("block-*.npz")):
            try:
                block = self._read(path, position, offsets, num_transition_states)
            except _OtherKey:
                logger.info("discarding %s: it was written for other inputs or options", path)
                path.unlink(missing_ok=True)
                continue
            except Exception as err:  # noqa: BLE001 (any damage: the block is aligned again)
                logger.warning("discarding %s: it is damaged (%s: %s); aligning it again", path,
                               type(err).__name__, err)  # fmt: skip
                path.unlink(missing_ok=True)
                continue
            done.update(block)
            num_blocks += 1
        return done, num_blocks

    def _read(
        self, path: Path, position: Mapping[str, int], offsets: np.ndarray, num_transition_states: int
    ) -> dict[int, DoneUtterance]:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != self.FORMAT or str(z["key"]) != self.key:
                raise _OtherKey()
            utts = [str(u) for u in z["utt_ids"]]
            lengths = z["lengths"].astype(np.int64)
            tstates = z["tstates"]
            failures = [str(f) for f in z["failures"]]
            loglikes = z["loglikes"].astype(np.float64)
        if not (len(utts) == len(lengths) == len(failures) == len(loglikes)):
            raise ValueError("arrays of different lengths")
        if tstates.dtype != np.int32 or tstates.ndim != 1 or int(lengths.clip(min=0).sum()) != len(tstates):
            raise ValueError("alignment lengths do not add up")
        if len(tstates) and (int(tstates.min()) < 0 or int(tstates.max()) >= num_transition_states):
            raise ValueError("transition-state ids out of range")
        out: dict[int, DoneUtterance] = {}
        start = 0
        for utt, n, failure, loglike in zip(utts, lengths.tolist(), failures, loglikes.tolist()):
            if utt not in position:
                raise ValueError(f"utterance {utt} is not in the feature archive")
            pos = position[utt]
            if n < 0:
                if not failure:
                    raise ValueError(f"utterance {utt}: no alignment and no failure")
                out[pos] = DoneUtterance(None, failure, 0.0)
                continue
            if n != int(offsets[pos + 1] - offsets[pos]):
                raise ValueError(f"utterance {utt}: alignment of {n} frames for {offsets[pos + 1] - offsets[pos]}")
            out[pos] = DoneUtterance(tstates[start : start + n].copy(), None, float(loglike))
            start += n
        return out

    def save(self, utt_ids: Sequence[str], result: UtteranceAlignments) -> Path:
        """Write one block (the utterances of ``result``, ``utt_ids`` the archive's ids) atomically; returns
        its path (``block-<first position>-<last position>.npz``)."""
        positions = result.positions
        path = self.dir / f"block-{positions[0]:08d}-{positions[-1]:08d}.npz"
        utts = [utt_ids[p] for p in positions]
        lengths = np.array([-1 if a is None else len(a) for a in result.alignments], dtype=np.int64)
        alis = [np.asarray(a, dtype=np.int32) for a in result.alignments if a is not None]
        tstates = np.concatenate(alis) if alis else np.zeros(0, dtype=np.int32)
        failures = [result.failures.get(u, "not aligned") if a is None else "" for u, a in zip(utts, result.alignments)]
        with atomic_write(path, "wb") as f:
            np.savez(
                f,
                format=np.array(self.FORMAT),
                key=np.array(self.key),
                utt_ids=np.array(utts, dtype=str),
                lengths=lengths,
                tstates=tstates,
                failures=np.array(failures, dtype=str),
                loglikes=np.array(result.loglikes, dtype=np.float64),
            )
        return path

    def remove(self) -> None:
        """Delete the blocks (the alignment is complete, or it is redone from scratch)."""
        shutil.rmtree(self.dir, ignore_errors=True)


class _OtherKey(Exception):
    """A block file of other inputs or options."""


def check_phones_match(model_phones: str | os.PathLike, lang_phones: str | os.PathLike) -> None:
    """InputError unless the two ``phones.txt`` hold the same symbols with the same ids."""
    if SymbolTable.read(model_phones) != SymbolTable.read(lang_phones):
        raise InputError(
            f"the model's phone table differs from the lang's ({lang_phones}): the model was trained with "
            "another lang dir",
            model_phones,
        )


# ----------------------------------------------------------------------------------------------------
# Aligning a data dir


def align_data_dir(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    num_jobs: int = DEFAULT_JOBS,
    options: AlignOptions | None = None,
    force: bool = False,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> dict[str, Any]:
    """Align every utterance of a data dir with a trained model (Kaldi's ``steps/align_si.sh``).

    Utterances are aligned in blocks of about ``block_frames`` frames (archive order; 0: one block), each saved
    in ``<out>/.align_blocks/`` once done (:class:`AlignmentBlocks`), so that a run killed midway and started
    again with the same inputs and options aligns only the utterances of the blocks it had not finished. The
    outputs do not depend on ``block_frames``, ``num_jobs`` or interruptions (the worker processes live across
    blocks). ``force`` discards a complete output and saved blocks.

    Returns:
        The ``align.json`` summary (``num_utts``, ``num_failed``, ``failed`` [[utt, reason]], seconds...).

    Raises:
        InputError: a missing or bad input (model dir, lang dir, feature archive, transcripts with an
            unknown word), a model trained on another phone set.
    """
    t_start = time.perf_counter()
    options = options or AlignOptions()
    data_dir, lang_dir, model_dir, out_dir = Path(data_dir), Path(lang_dir), Path(model_dir), Path(out_dir)
    model = GmmAcousticModel.load(model_dir)
    archive_path = data_dir / f"{model.feature_type}.h5"
    if not archive_path.is_file():
        raise InputError(
            f"no {model.feature_type} features: run python -m asr.features.compute --data {data_dir} "
            f"--type {model.feature_type}",
            archive_path,
        )
    check_phones_match(model_dir / PHONES_TXT, lang_dir / "phones.txt")
    model_files = [n for n in (MODEL_JSON, TOPO_JSON, TREE_JSON, TRANSITION_MODEL_JSON, GMM_FILE, PHONES_TXT)]
    if model.info.get("feature_transform"):  # LDA+MLLT: the transform travels with the model
        model_files.append(str(model.info["feature_transform"]))
    inputs = {
        "text": data_dir / "text",
        "features": archive_path,
        "L.fst": lang_dir / "L.fst",
        "words.txt": lang_dir / "words.txt",
        **{f"model/{n}": model_dir / n for n in model_files},
    }
    fp = fingerprint(inputs, dataclasses.asdict(options))
    done = out_dir / ALIGN_JSON
    blocks = AlignmentBlocks(out_dir, fp["sha256"])
    if force:
        blocks.remove()
    if not force and done.is_file():
        try:
            previous = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
        if previous.get("fingerprint", {}).get("sha256") == fp["sha256"] and (out_dir / ALI_H5).is_file():
            logger.info("%s is complete for these inputs: nothing to do (use --force to redo it)", out_dir)
            return previous
    out_dir.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    lang = Lang.load(lang_dir)
    with FeatureArchive(archive_path) as archive:
        utt_ids, offsets = list(archive.utt_ids), archive.offsets.copy()
        frame_shift, frame_length = frame_timing(archive)
        delta_attrs = (int(archive.attrs.get("delta_order", 0)), archive.dim)
    if delta_attrs[1] != model.feature_dim:
        raise InputError(
            f"features have dimension {delta_attrs[1]}, the model expects {model.feature_dim}", archive_path
        )
    transcripts = load_transcripts(data_dir / "text", lang, utt_ids)
    if transcripts.not_in_archive:
        logger.warning(
            "%d utterances of %s have no features in %s and are not aligned: %s",
            len(transcripts.not_in_archive),
            data_dir / "text",
            archive_path,
            " ".join(transcripts.not_in_archive[:10]),
        )
    lengths = np.diff(offsets)
    saved, num_saved = blocks.load(utt_ids, offsets, model.transition_model.num_transition_states)
    if saved:
        logger.info("resuming alignment from %d block(s): %d utterances done", num_saved, len(saved))
    todo = [p for p in range(len(utt_ids)) if p not in saved]
    todo_blocks = [[todo[i] for i in b] for b in split_into_blocks([lengths[p] for p in todo], block_frames)]
    seconds = {"setup": 0.0, "graphs": 0.0, "likelihoods": 0.0, "viterbi": 0.0, "save_blocks": 0.0}
    if todo:
        t0 = time.perf_counter()
        with AlignmentJobs(
            archive_path,
            transcripts,
            lang_dir / "L.fst",
            num_jobs,
            model.delta_order,
            model.delta_window,
            feature_transform=model.feature_transform,
            blocks=todo_blocks,
        ) as jobs:
            jobs.set_model(model.transition_model, model.ctx_dep, options, compile_graphs=False)
            seconds["setup"] = time.perf_counter() - t0
            frames_done, frames_todo = 0, int(sum(lengths[p] for p in todo))
            for b, positions in enumerate(todo_blocks):
                t_block = time.perf_counter()
                result = jobs.align_utterances(positions, model.gmm if b == 0 else None, options)
                for k, v in result.seconds.items():
                    seconds[k] = seconds.get(k, 0.0) + v
                t_save = time.perf_counter()
                blocks.save(utt_ids, result)
                seconds["save_blocks"] += time.perf_counter() - t_save
                for p, ali, loglike in zip(result.positions, result.alignments, result.loglikes):
                    saved[p] = DoneUtterance(ali, None if ali is not None else result.failures[utt_ids[p]], loglike)
                frames_done += int(sum(lengths[p] for p in positions))
                logger.info(
                    "aligned block %d of %d: %d utterances, %d frames in %.1f s (%.0f%% of the frames to align)",
                    b + 1,
                    len(todo_blocks),
                    len(positions),
                    int(sum(lengths[p] for p in positions)),
                    time.perf_counter() - t_block,
                    100.0 * frames_done / max(frames_todo, 1),
                )
    alignments = [saved[p].alignment for p in range(len(utt_ids))]
    failures = {utt_ids[p]: saved[p].failure for p in range(len(utt_ids)) if saved[p].alignment is None}
    aligned = [p for p in range(len(utt_ids)) if saved[p].alignment is not None]
    realigned_frames = int(sum(lengths[p] for p in aligned))
    # fsum: the exact sum, the same whatever the order of blocks and jobs
    total_loglike = math.fsum(saved[p].loglike for p in aligned)
    report = AlignmentFailures()
    for utt in utt_ids:
        if utt in failures:
            report.add(utt, failures[utt])
    logger.info("%s", report.summary(len(utt_ids)))
    write_alignments(
        out_dir,
        utt_ids,
        offsets,
        alignments,
        failures,
        model.transition_model,
        lang.phones,
        {
            "model_dir": os.fspath(model_dir),
            "feature_archive": os.fspath(archive_path),
            "data_dir": os.fspath(data_dir),
        },
        frame_shift,
        frame_length,
    )
    for name in model_files:
        if (out_dir / name).resolve() != (model_dir / name).resolve():
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(model_dir / name, tmp)
    per_frame = total_loglike / realigned_frames if realigned_frames else math.nan
    summary = {
        "data_dir": os.fspath(data_dir),
        "lang_dir": os.fspath(lang_dir),
        "model_dir": os.fspath(model_dir),
        "num_utts": len(utt_ids),
        "num_frames": int(offsets[-1]),
        "num_failed": len(failures),
        "failed": [[u, failures[u]] for u in utt_ids if u in failures],
        "not_in_feature_archive": transcripts.not_in_archive,
        "acoustic_loglike_per_frame": round(per_frame, 6),
        "num_jobs": max(1, min(num_jobs, len(utt_ids))),
        "options": dataclasses.asdict(options),
        "seconds": {
            **{k: round(v, 3) for k, v in seconds.items()},
            "total": round(time.perf_counter() - t_start, 3),
        },
        "fingerprint": fp,
    }
    with atomic_write(done) as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    blocks.remove()
    logger.info(
        "aligned %s with %s: %d utterances, %d failed, acoustic log-likelihood per frame %.4f, %.1f s -> %s",
        data_dir,
        model_dir,
        len(utt_ids),
        len(failures),
        per_frame,
        summary["seconds"]["total"],
        out_dir,
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m asr.gmm.align --data D --lang L --model M --out O [--jobs N] [--block-frames F] [--force]``;
    returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m asr.gmm.align", description="Force-align a data dir with a GMM-HMM model (align_si.sh)."
    )
    parser.add_argument("--data", required=True, help="data dir with text and <feature_type>.h5")
    parser.add_argument("--lang", required=True, help="lang dir (L.fst, phones.txt, words.txt)")
    parser.add_argument("--model", required=True, help="model dir (exp/<corpus>/<name>)")
    parser.add_argument("--out", required=True, help="output dir for ali.h5, ali.ark, phones.ctm")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"parallel jobs (default {DEFAULT_JOBS})")
    parser.add_argument("--beam", type=float, default=AlignOptions.beam)
    parser.add_argument("--retry-beam", type=float, default=AlignOptions.retry_beam)
    parser.add_argument("--acoustic-scale", type=float, default=AlignOptions.acoustic_scale)
    parser.add_argument("--force", action="store_true", help="realign even if --out is complete")
    parser.add_argument(
        "--block-frames",
        type=int,
        default=DEFAULT_BLOCK_FRAMES,
        help="save the work done after every block of about this many frames, so that a killed run resumes "
        f"(default {DEFAULT_BLOCK_FRAMES}; 0: one block)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    options = AlignOptions(acoustic_scale=args.acoustic_scale, beam=args.beam, retry_beam=args.retry_beam)
    try:
        align_data_dir(
            args.data,
            args.lang,
            args.model,
            args.out,
            num_jobs=args.jobs,
            options=options,
            force=args.force,
            block_frames=args.block_frames,
        )
    except AsrError as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
