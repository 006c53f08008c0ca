"""Viterbi decoding of score matrices on an HCLG with kaldi-decoder's FasterDecoder.

Scores are per-frame, per-pdf log-likelihoods already multiplied by the acoustic scale (for a hybrid
system: ``acoustic_scale * (log p(pdf | x) - log prior(pdf))``). The graph's input labels are
transition-state ids + 1, so the decoder reads ``DecodableCtc(scores[:, tstate_to_pdf])`` (label ``l``
-> column ``l - 1``). ``FasterDecoder`` keeps a C++ reference to the graph: :class:`Decoder` holds the
graph for as long as it lives.

``decode_many`` decodes in a pool of forked worker processes, each of which reads the graph once.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import kaldi_decoder
import kaldifst
import numpy as np

from asr.graph.fst_io import read_graph
from asr.hmm.transition_model import TransitionModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderOptions:
    """Options of ``kaldi_decoder.FasterDecoder`` (defaults: Kaldi's ``steps/decode.sh``).

    Attributes:
        beam: decoding beam (cost units, after acoustic scaling).
        max_active: most active states per frame.
        min_active: fewest active states per frame.
        beam_delta: beam increment used when max_active prunes.
        hash_ratio: hash table size ratio.
    """

    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 200
    beam_delta: float = 0.5
    hash_ratio: float = 2.0

    def to_kaldi(self) -> kaldi_decoder.FasterDecoderOptions:
        """The ``kaldi_decoder.FasterDecoderOptions`` object."""
        return kaldi_decoder.FasterDecoderOptions(
            beam=self.beam,
            max_active=self.max_active,
            min_active=self.min_active,
            beam_delta=self.beam_delta,
            hash_ratio=self.hash_ratio,
        )


class DecodeResult(NamedTuple):
    """Result of decoding one utterance.

    Attributes:
        word_ids: output word ids of the best path (epsilons removed).
        graph_cost: graph part of the best path's cost (LM, lexicon, transition costs).
        acoustic_cost: minus the sum of the path's (scaled) scores.
        reached_final: whether the best path ends in a final state (False: a partial path, which the
            caller should count as a failure).
    """

    word_ids: list[int]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool


def emission_scores(scores: np.ndarray, transition_model: TransitionModel) -> np.ndarray:
    """Per-transition-state scores ``scores[:, tstate_to_pdf]`` as contiguous float32 (checked).

    Args:
        scores: float [T, num_pdfs] scaled log-likelihoods.
        transition_model: gives ``tstate_to_pdf``.

    Raises:
        ValueError: wrong shape, or non-finite values (NaN/inf would corrupt the search silently).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [T, num_pdfs], got shape {scores.shape}")
    if scores.shape[1] != transition_model.num_pdfs:
        raise ValueError(f"scores have {scores.shape[1]} columns, the model has {transition_model.num_pdfs} pdfs")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    return np.ascontiguousarray(scores[:, transition_model.tstate_to_pdf], dtype=np.float32)


def best_path(decoder: kaldi_decoder.FasterDecoder) -> tuple[list[int], list[int], float, float, bool] | None:
    """``(labels per frame, word ids, graph_cost, acoustic_cost, reached_final)`` of the last decode, or None."""
    reached = bool(decoder.reached_final())
    ok, lattice = decoder.get_best_path(use_final_probs=True)
    if not ok:
        return None
    ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(lattice)
    if not ok:
        return None
    words = [int(w) for w in olabels if w != 0]
    return [int(x) for x in ilabels], words, float(weight.value1), float(weight.value2), reached


class Decoder:
    """A reusable decoder for one graph (keeps the graph alive for the C++ decoder).

    Args:
        hclg: the decoding graph (input labels transition state + 1).
        transition_model: maps transition states to pdf columns.
        options: :class:`DecoderOptions`.
    """

    def __init__(
        self, hclg: kaldifst.StdVectorFst, transition_model: TransitionModel, options: DecoderOptions = DecoderOptions()
    ):
        if hclg.num_states == 0 or hclg.start < 0:
            raise ValueError("the decoding graph is empty")
        self.hclg = hclg  # must outlive self._decoder
        self.transition_model = transition_model
        self.options = options
        self._decoder = kaldi_decoder.FasterDecoder(hclg, options.to_kaldi())

    def decode(self, scores: np.ndarray) -> DecodeResult:
        """Decode one utterance's scaled log-likelihoods [T, num_pdfs]; see :class:`DecodeResult`."""
        emissions = emission_scores(scores, self.transition_model)
        if emissions.shape[0] == 0:
            return DecodeResult([], math.inf, math.inf, False)
        self._decoder.decode(kaldi_decoder.DecodableCtc(emissions))
        path = best_path(self._decoder)
        if path is None:
            return DecodeResult([], math.inf, math.inf, False)
        _, words, graph_cost, acoustic_cost, reached = path
        return DecodeResult(words, graph_cost, acoustic_cost, reached)


def decode_utterance(
    hclg: kaldifst.StdVectorFst,
    scores: np.ndarray,
    transition_model: TransitionModel,
    beam: float = DecoderOptions.beam,
    max_active: int = DecoderOptions.max_active,
    min_active: int = DecoderOptions.min_active,
) -> DecodeResult:
    """Decode one utterance with a fresh decoder; use :class:`Decoder` to decode many.

    Args:
        hclg: decoding graph.
        scores: float [T, num_pdfs], acoustically scaled log-likelihoods.
        transition_model: the model the graph was built with.
        beam, max_active, min_active: search options.

    Returns:
        :class:`DecodeResult` ``(word_ids, graph_cost, acoustic_cost, reached_final)``.
    """
    options = DecoderOptions(beam=beam, max_active=max_active, min_active=min_active)
    return Decoder(hclg, transition_model, options).decode(scores)


# ---------------------------------------------------------------- process pool
_worker_decoder: Decoder | None = None


def _init_worker(hclg_path: str, transition_model: TransitionModel, options: DecoderOptions) -> None:
    global _worker_decoder
    _worker_decoder = Decoder(read_graph(hclg_path), transition_model, options)


def _decode_in_worker(scores: np.ndarray) -> DecodeResult:
    assert _worker_decoder is not None
    return _worker_decoder.decode(scores)


def decode_many(
    hclg_path: str | os.PathLike,
    scores: Iterable[np.ndarray],
    transition_model: TransitionModel,
    num_jobs: int = 1,
    options: DecoderOptions = DecoderOptions(),
) -> list[DecodeResult]:
    """Decode many utterances with ``num_jobs`` forked worker processes, results in input order.

    Each worker reads the graph once (a graph cannot be pickled; a forked child gets its own copy).
    ``scores`` is consumed lazily (streamed to the workers), so it may be a generator over a feature
    archive. With ``num_jobs <= 1`` everything runs in this process.

    Args:
        hclg_path: path of ``HCLG.fst``.
        scores: iterable of float [T, num_pdfs] scaled log-likelihood matrices.
        transition_model: the model the graph was built with.
        num_jobs: number of worker processes.
        options: :class:`DecoderOptions`.

    Returns:
        One :class:`DecodeResult` per input matrix, in order.
    """
    return list(iter_decode(hclg_path, scores, transition_model, num_jobs, options))


def iter_decode(
    hclg_path: str | os.PathLike,
    scores: Iterable[np.ndarray],
    transition_model: TransitionModel,
    num_jobs: int = 1,
    options: DecoderOptions = DecoderOptions(),
) -> Iterator[DecodeResult]:
    """Like :func:`decode_many` but yields results in order as they are ready."""
    hclg_path = os.fspath(hclg_path)
    if num_jobs <= 1:
        decoder = Decoder(read_graph(hclg_path), transition_model, options)
        for s in scores:
            yield decoder.decode(s)
        return
    read_graph(hclg_path)  # fail here, with a clear message, rather than in every worker
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(num_jobs, initializer=_init_worker, initargs=(hclg_path, transition_model, options)) as pool:
        yield from pool.imap(_decode_in_worker, scores, chunksize=1)
