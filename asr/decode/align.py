"""Forced alignment (Viterbi on a per-utterance alignment graph) and alignment conversions.

``align_utterance`` decodes a score matrix on the utterance's alignment graph
(:mod:`asr.graph.alignment_graph`) with ``FasterDecoder`` and requires the best path to end in a final
state; when it does not, it retries once with ``retry_beam`` (Kaldi's ``--beam 10 --retry-beam 40``).
A failure is never dropped silently: the result carries ``tstate_ids=None`` and a reason, which the
caller counts and lists (:class:`AlignmentFailures`).

An alignment is one transition-state id per frame; :func:`tstates_to_pdfs`, :func:`tstates_to_phones`
and :func:`phone_segments` turn it into the per-frame pdf ids and phone ids of ``ali.h5`` and into
``(phone, start_frame, num_frames)`` segments.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import kaldi_decoder
import kaldifst
import numpy as np

from asr.decode.decoder import best_path, emission_scores
from asr.graph.stats import min_frames_to_final
from asr.hmm.transition_model import TransitionModel

logger = logging.getLogger(__name__)

DEFAULT_ALIGN_BEAM = 10.0
DEFAULT_RETRY_BEAM = 40.0


class AlignmentResult(NamedTuple):
    """Forced alignment of one utterance.

    Attributes:
        tstate_ids: int32 [T] transition-state id per frame, or None when alignment failed.
        failure: None on success, else the reason in words.
        graph_cost, acoustic_cost: costs of the path (inf on failure).
        beam: the beam that succeeded (or the last one tried).
    """

    tstate_ids: np.ndarray | None
    failure: str | None
    graph_cost: float
    acoustic_cost: float
    beam: float

    @property
    def ok(self) -> bool:
        """True when an alignment was found."""
        return self.tstate_ids is not None


def align_utterance(
    graph: kaldifst.StdVectorFst,
    loglikes: np.ndarray,
    transition_model: TransitionModel,
    beam: float = DEFAULT_ALIGN_BEAM,
    retry_beam: float = DEFAULT_RETRY_BEAM,
    max_active: int = 2**31 - 1,
    min_active: int = 20,
) -> AlignmentResult:
    """Viterbi-align one utterance on its alignment graph.

    Args:
        graph: the utterance's alignment graph (input labels transition state + 1).
        loglikes: float [T, num_pdfs] acoustically scaled log-likelihoods.
        transition_model: the model the graph was built with.
        beam: first beam; retry_beam: second beam when no final state was reached (<= beam: no retry).
        max_active: most active states (default: unlimited, as in Kaldi's aligner).
        min_active: fewest active states kept whatever the beam (FasterDecoder's default 20).

    Returns:
        :class:`AlignmentResult`; ``tstate_ids`` is None with ``failure`` set when no path through the
        whole graph fits the frames even with the retry beam.
    """
    emissions = emission_scores(loglikes, transition_model)
    num_frames = emissions.shape[0]
    if graph.num_states == 0 or graph.start < 0:
        return AlignmentResult(None, "the alignment graph is empty", math.inf, math.inf, beam)
    if num_frames == 0:
        return AlignmentResult(None, "the utterance has no frames", math.inf, math.inf, beam)
    beams = [beam] + ([retry_beam] if retry_beam > beam else [])
    for b in beams:
        options = kaldi_decoder.FasterDecoderOptions(beam=b, max_active=max_active, min_active=min_active)
        decoder = kaldi_decoder.FasterDecoder(graph, options)  # graph is alive for this call
        decoder.decode(kaldi_decoder.DecodableCtc(emissions))
        path = best_path(decoder)
        if path is not None and path[4]:
            labels, _, graph_cost, acoustic_cost, _ = path
            ids = np.asarray(labels, dtype=np.int32) - 1
            if ids.shape[0] != num_frames or np.any(ids < 0):
                return AlignmentResult(
                    None, f"decoder returned {ids.shape[0]} labels for {num_frames} frames", math.inf, math.inf, b
                )
            if b != beam:
                logger.debug("alignment succeeded with retry beam %g", b)
            return AlignmentResult(ids, None, graph_cost, acoustic_cost, b)
    min_frames = min_frames_to_final(graph)
    if min_frames is None:
        reason = "no final state is reachable in the alignment graph"
    elif num_frames < min_frames:
        reason = f"the utterance has {num_frames} frames but the transcript needs at least {min_frames}"
    else:
        reason = f"no path reached a final state with beam {beams[-1]:g} ({num_frames} frames)"
    return AlignmentResult(None, reason, math.inf, math.inf, beams[-1])


@dataclass
class AlignmentFailures:
    """Failed utterances with their reasons (the caller adds to it and reports it)."""

    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, utt_id: str, reason: str) -> None:
        """Record one failure (also logged as a warning)."""
        logger.warning("alignment failed for %s: %s", utt_id, reason)
        self.failures.append((utt_id, reason))

    def __len__(self) -> int:
        return len(self.failures)

    def summary(self, num_total: int) -> str:
        """One line: how many failed out of ``num_total``, and the first few ids."""
        ids = ", ".join(u for u, _ in self.failures[:5])
        more = "..." if len(self.failures) > 5 else ""
        return f"{len(self.failures)} of {num_total} utterances failed to align" + (f" ({ids}{more})" if ids else "")


def tstates_to_pdfs(tstate_ids: np.ndarray, transition_model: TransitionModel) -> np.ndarray:
    """int32 [T] pdf id per frame."""
    return transition_model.tstate_to_pdf[np.asarray(tstate_ids, dtype=np.int64)].astype(np.int32)


def tstates_to_phones(tstate_ids: np.ndarray, transition_model: TransitionModel) -> np.ndarray:
    """int32 [T] phone id per frame."""
    return transition_model.tstate_to_phone[np.asarray(tstate_ids, dtype=np.int64)]


def phone_segments(tstate_ids: np.ndarray, transition_model: TransitionModel) -> list[tuple[int, int, int]]:
    """``(phone, start_frame, num_frames)`` per phone instance of an alignment.

    A new instance starts at frame 0, where the phone changes, and where the entry HMM state (state 0)
    appears after a different transition state (state 0 is never re-entered inside a phone, see
    :mod:`asr.hmm.topology`; with one-state HMMs, repeated instances of one phone merge).
    """
    ids = np.asarray(tstate_ids, dtype=np.int64)
    if ids.size == 0:
        return []
    phones = transition_model.tstate_to_phone[ids]
    states = transition_model.tstate_to_hmm_state[ids]
    starts = np.zeros(ids.shape[0], dtype=bool)
    starts[0] = True
    starts[1:] = (phones[1:] != phones[:-1]) | ((states[1:] == 0) & (ids[1:] != ids[:-1]))
    idx = np.nonzero(starts)[0]
    ends = np.append(idx[1:], ids.shape[0])
    return [(int(phones[s]), int(s), int(e - s)) for s, e in zip(idx, ends)]
