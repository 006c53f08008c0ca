"""From a finished search to a transcript: words, word times (CTM) and per-word confidence.

Word times: the best path gives one transition state per frame, hence phone segments
(:func:`asr.decode.align.phone_segments`). The phones are position-independent, so the words are placed on
them with the lexicon (Kaldi's ``lattice-align-words-lexicon``): a small dynamic program reads the phone
segments as ``[optional silence] pron(w1) [optional silence] pron(w2) ...``, each word taking one of its
pronunciations. When that parse fails (a lexicon that does not match the graph, or one-state HMMs that merge
repeated phones) a word starts at the frame where the graph emitted its label and ends where the next one
starts (a rough placement; logged once per transcript).

Confidence (``--confidence``): for each word, the mean over its frames of the acoustic model's posterior of
the senone the best path went through at that frame: ``p(s_t | x_t) = softmax_s(log-likelihood + log prior)``,
where the DNN's log-likelihoods are its scaled likelihoods (so this is the network's own softmax output) and a
GMM gets a flat prior (its likelihoods normalized over the senones). It says how sure the acoustic model is of
the frames the decoder put into the word; it ignores the language model and competing word sequences (there
is no lattice), so it is not a word posterior probability. ``python -m asr.bench.transcribe`` prints how it
separates correct from wrong words on a scored set.

CTM lines follow the team's time convention (:mod:`asr.decode.ctm`): ``<name> 1 <start> <dur> <word>
[<conf>]``, start = first frame x shift + (window - shift) / 2.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_decoder
import numpy as np

from asr.decode.align import phone_segments
from asr.decode.ctm import DEFAULT_FRAME_LENGTH, DEFAULT_FRAME_SHIFT, segment_start_seconds
from asr.errors import InputError
from asr.hmm.transition_model import TransitionModel
from asr.lang.symbol_table import SymbolTable

logger = logging.getLogger(__name__)


@dataclass
class WordSegment:
    """One recognized word with its frames and confidence.

    Attributes:
        word: the word.
        start_frame, num_frames: its frames on the best path.
        confidence: mean senone posterior over its frames (None when not computed).
    """

    word: str
    start_frame: int
    num_frames: int
    confidence: float | None = None


@dataclass
class Transcript:
    """The result of transcribing one recording.

    Attributes:
        name: the file or utterance id.
        words: the recognized words.
        segments: one :class:`WordSegment` per word (empty when word times were not asked for).
        num_frames: feature frames decoded.
        audio_seconds: duration of the input audio.
        reached_final: False when no path reached a final state (the best partial path is used).
        graph_cost, acoustic_cost: costs of the best path (inf when there is none).
        frame_shift, frame_length: in seconds, for the CTM times.
    """

    name: str
    words: list[str]
    segments: list[WordSegment] = field(default_factory=list)
    num_frames: int = 0
    audio_seconds: float = 0.0
    reached_final: bool = True
    graph_cost: float = math.inf
    acoustic_cost: float = math.inf
    frame_shift: float = DEFAULT_FRAME_SHIFT
    frame_length: float = DEFAULT_FRAME_LENGTH

    def text_line(self) -> str:
        """``<name> <words>`` (just the name for an empty result)."""
        return " ".join([self.name, *self.words])

    def ctm_lines(self, confidence: bool = False) -> list[str]:
        """CTM lines ``<name> 1 <start> <dur> <word> [<conf>]`` (no newline)."""
        lines = []
        for seg in self.segments:
            start = segment_start_seconds(seg.start_frame, self.frame_shift, self.frame_length)
            line = f"{self.name} 1 {start:.3f} {seg.num_frames * self.frame_shift:.3f} {seg.word}"
            if confidence:
                line += f" {seg.confidence:.3f}" if seg.confidence is not None else " 1.000"
            lines.append(line)
        return lines


@dataclass
class BestPath:
    """The best path of a finished search.

    Attributes:
        tstate_ids: int64 ``[T]`` transition state per frame.
        word_ids: output word ids in order.
        word_frames: the frame at which the graph emitted each word's label.
        graph_cost, acoustic_cost: the path's costs.
        reached_final: whether it ends in a final state.
    """

    tstate_ids: np.ndarray
    word_ids: list[int]
    word_frames: list[int]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool


def best_path_of(decoder: kaldi_decoder.FasterDecoder) -> BestPath | None:
    """Walk the decoder's best path arc by arc (None when there is no path at all).

    ``kaldifst.get_linear_symbol_sequence`` drops epsilons and so loses where each word's label sits; this
    reads the path's OpenFst text (``src dst ilabel olabel graph,acoustic``) instead.
    """
    reached = bool(decoder.reached_final())
    ok, lattice = decoder.get_best_path(use_final_probs=True)
    if not ok or lattice.num_states == 0:
        return None
    arcs: dict[int, tuple[int, int, int, float, float]] = {}
    final_cost = (0.0, 0.0)
    for line in lattice.to_str().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            weight = fields[4].split(",") if len(fields) > 4 else ("0", "0")
            arcs[int(fields[0])] = (int(fields[1]), int(fields[2]), int(fields[3]), float(weight[0]), float(weight[1]))
        elif len(fields) == 2:
            weight = fields[1].split(",")
            final_cost = (float(weight[0]), float(weight[1]))
    state, frame = lattice.start, 0
    tstates, words, word_frames = [], [], []
    graph_cost, acoustic_cost = final_cost
    while state in arcs:
        state, ilabel, olabel, g, a = arcs[state]
        graph_cost += g
        acoustic_cost += a
        if olabel:
            words.append(olabel)
            word_frames.append(frame)
        if ilabel:
            tstates.append(ilabel - 1)
            frame += 1
    return BestPath(np.asarray(tstates, dtype=np.int64), words, word_frames, graph_cost, acoustic_cost, reached)


def read_pronunciations(path: str | os.PathLike, phones: SymbolTable) -> dict[str, list[tuple[int, ...]]]:
    """Read a Kaldi ``lexicon.txt`` (``WORD PH PH ...``) into word -> pronunciations as phone-id tuples.

    Raises:
        InputError: naming the file and line: a word without phones, a phone not in ``phones``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read lexicon: {err}", path) from None
    prons: dict[str, list[tuple[int, ...]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError(f"word {fields[0]!r} has no phones", path, number)
        try:
            ids = tuple(phones.id(p) for p in fields[1:])
        except KeyError as err:
            raise InputError(f"phone {err} of word {fields[0]!r} is not in phones.txt", path, number) from None
        prons.setdefault(fields[0], [])
        if ids not in prons[fields[0]]:
            prons[fields[0]].append(ids)
    return prons


class WordAligner:
    """Places the words of a best path on its frames (see the module docstring).

    Args:
        transition_model: maps transition states to phones and HMM states.
        words: the graph's word symbol table.
        pronunciations: word -> phone-id tuples (:func:`read_pronunciations`); None: labels' frames only.
        optional_silence: phone ids that may appear between words (``SIL``).
    """

    def __init__(
        self,
        transition_model: TransitionModel,
        words: SymbolTable,
        pronunciations: Mapping[str, Sequence[tuple[int, ...]]] | None,
        optional_silence: Sequence[int] = (),
    ):
        self.transition_model = transition_model
        self.words = words
        self.pronunciations = pronunciations
        self.optional_silence = frozenset(int(p) for p in optional_silence)

    def align(self, path: BestPath) -> list[tuple[int, int]]:
        """``(start_frame, num_frames)`` of each word of ``path``."""
        if not path.word_ids:
            return []
        spans = self._lexicon_spans(path) if self.pronunciations is not None else None
        if spans is None:
            if self.pronunciations is not None:
                logger.info("word times: the phones of the best path do not parse with the lexicon; using labels")
            spans = self._label_spans(path)
        return spans

    def _label_spans(self, path: BestPath) -> list[tuple[int, int]]:
        num_frames = len(path.tstate_ids)
        starts = list(path.word_frames)
        ends = starts[1:] + [num_frames]
        return [(s, max(0, e - s)) for s, e in zip(starts, ends)]

    def _lexicon_spans(self, path: BestPath) -> list[tuple[int, int]] | None:
        segments = phone_segments(path.tstate_ids, self.transition_model)
        phones = [p for p, _, _ in segments]
        words = [self.words.symbol(w) for w in path.word_ids]
        m, n = len(words), len(phones)
        # back[(i, j)] = previous state: words [0, i) cover phone segments [0, j)
        back: dict[tuple[int, int], tuple[int, int] | None] = {(0, 0): None}
        frontier = [(0, 0)]
        while frontier:
            nxt = []
            for i, j in frontier:
                moves = []
                if j < n and phones[j] in self.optional_silence:
                    moves.append((i, j + 1))
                if i < m:
                    for pron in self.pronunciations.get(words[i], ()):
                        if tuple(phones[j : j + len(pron)]) == pron:
                            moves.append((i + 1, j + len(pron)))
                for state in moves:
                    if state not in back:
                        back[state] = (i, j)
                        nxt.append(state)
            frontier = nxt
        if (m, n) not in back:
            return None
        spans: list[tuple[int, int]] = []
        state = (m, n)
        while back[state] is not None:
            prev = back[state]
            if prev[0] != state[0]:  # a word: phone segments [prev j, state j)
                first, last = segments[prev[1]], segments[state[1] - 1]
                spans.append((first[1], last[1] + last[2] - first[1]))
            state = prev
        return spans[::-1]


def senone_posteriors(loglikes: np.ndarray, pdf_ids: np.ndarray, log_prior: np.ndarray | None) -> np.ndarray:
    """Per frame, ``softmax(loglikes[t] + log_prior)[pdf_ids[t]]`` (float64 ``[T]``; flat prior when None)."""
    x = np.asarray(loglikes, dtype=np.float64)
    if log_prior is not None:
        x = x + np.asarray(log_prior, dtype=np.float64)[None, :]
    top = x.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(x - top).sum(axis=1))
    return np.exp(x[np.arange(x.shape[0]), pdf_ids] - log_norm)


def make_transcript(
    name: str,
    path: BestPath | None,
    words: SymbolTable,
    *,
    aligner: WordAligner | None = None,
    loglikes: np.ndarray | None = None,
    log_prior: np.ndarray | None = None,
    transition_model: TransitionModel | None = None,
    num_frames: int = 0,
    audio_seconds: float = 0.0,
    frame_shift: float = DEFAULT_FRAME_SHIFT,
    frame_length: float = DEFAULT_FRAME_LENGTH,
) -> Transcript:
    """Build a :class:`Transcript` from a best path.

    Args:
        name: file or utterance id.
        path: :func:`best_path_of` (None: no path, an empty transcript).
        words: the graph's word table.
        aligner: gives word times (None: no segments).
        loglikes: unscaled log-likelihoods ``[T, num_pdfs]``; with ``transition_model``, gives confidences.
        log_prior: the model's log senone priors (None: flat).
        num_frames, audio_seconds, frame_shift, frame_length: recorded in the transcript.

    Raises:
        InputError: a word id of the graph that ``words`` lacks.
    """
    transcript = Transcript(
        name, [], num_frames=num_frames, audio_seconds=audio_seconds, frame_shift=frame_shift, frame_length=frame_length
    )
    if path is None:
        transcript.reached_final = False
        return transcript
    try:
        transcript.words = [words.symbol(w) for w in path.word_ids]
    except KeyError as err:
        raise InputError(f"word id {err} of the graph is not in words.txt") from None
    transcript.reached_final = path.reached_final
    transcript.graph_cost, transcript.acoustic_cost = path.graph_cost, path.acoustic_cost
    if aligner is None:
        return transcript
    posteriors = None
    if loglikes is not None and transition_model is not None and len(path.tstate_ids) == len(loglikes):
        pdfs = transition_model.tstate_to_pdf[path.tstate_ids]
        posteriors = senone_posteriors(loglikes, pdfs, log_prior)
    for word, (start, count) in zip(transcript.words, aligner.align(path)):
        conf = None
        if posteriors is not None and count > 0:
            conf = float(posteriors[start : start + count].mean())
        transcript.segments.append(WordSegment(word, start, count, conf))
    return transcript
