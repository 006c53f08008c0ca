"""Streaming recognition: audio in chunks as it arrives, words at the end identical to offline decoding.

A :class:`StreamingSession` (made by :meth:`asr.transcribe.Recognizer.stream`) runs every stage
incrementally on each chunk of audio:

1. resampling to the model's rate (:class:`asr.features.online.StreamingResampler`; torchaudio's kernel,
   block by block);
2. fbank / MFCC frames as soon as their window is complete (kaldi-native-fbank's online extractors);
3. CMVN with a causal policy (``online``: Kaldi's running-window CMVN seeded with global statistics;
   ``global``; ``none``): each frame is normalized when it arrives;
4. acoustic scores for every frame whose right context is complete: a DNN needs ``right_context`` (12)
   future frames, a GMM ``delta_order * delta_window`` (4) for its deltas. The model is run on the new frames
   plus ``left + right`` frames of context (so each frame's window is exactly the offline one; at the
   recording's start and end the window is clamped to the edge frame as offline);
5. kaldi-decoder's ``FasterDecoder.advance_decoding`` on those scores (``DecodableCtc`` with the frame
   offset), so the search is always up to date; :meth:`StreamingSession.partial_words` reads the current best
   path.

:meth:`StreamingSession.finish` flushes the resampler and the extractor, scores the last ``right`` frames
(with the edge clamped) and reads the best path. The words equal those of offline decoding with the same
CMVN policy: each stage gives the same numbers whatever the chunking (the resampler's convolution and the
network's batched matmul up to float rounding, which is ~1e-7 and changes no word in the tests).

Delay: the algorithmic delay after a sample arrives is the model's right context (120 ms for the DNN's 12
frames, 40 ms for a GMM's deltas) plus the part of a 25 ms window past its 10 ms hop (15 ms) plus the
resampler's filter (< 1 ms), plus the chunk length itself; ``python -m asr.bench.transcribe`` measures the
processing time per chunk and from the last chunk to the final result.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import kaldi_decoder
import numpy as np

from asr.decode.decoder import emission_scores
from asr.decode.transcript import Transcript, best_path_of
from asr.errors import ConfigError, InputError
from asr.features.online import OnlineCmvn, OnlineFeatures, StreamingResampler

if TYPE_CHECKING:
    from asr.transcribe import Recognizer

logger = logging.getLogger(__name__)


def model_context(model) -> tuple[int, int]:
    """Frames of left and right context an acoustic model reads around each frame.

    DNN: its context window (``left_context``, ``right_context``); GMM: ``delta_order * delta_window`` on each
    side (the deltas' regression windows).

    Raises:
        ConfigError: a model that says neither.
    """
    if hasattr(model, "left_context") and hasattr(model, "right_context"):
        return int(model.left_context), int(model.right_context)
    if hasattr(model, "delta_order"):
        width = int(model.delta_order) * int(getattr(model, "delta_window", 2))
        return width, width
    raise ConfigError(f"cannot tell the context window of {type(model).__name__} (no left/right context or deltas)")


class IncrementalScorer:
    """Acoustic scores for frames as they arrive, each computed with exactly its offline context window.

    Args:
        model: an acoustic model (``log_likelihoods(feats)`` on one utterance's rows).
        left, right: its context (:func:`model_context`).
    """

    def __init__(self, model, left: int, right: int):
        self.model = model
        self.left, self.right = int(left), int(right)
        self._buffer: np.ndarray | None = None  # normalized frames [buffer_start, num_frames)
        self._buffer_start = 0
        self.num_frames = 0  # frames received
        self.num_scored = 0  # frames whose scores were returned

    def accept(self, feats: np.ndarray, final: bool = False) -> np.ndarray:
        """Add normalized frames; return the scores ``[n, num_pdfs]`` of the frames that are now complete
        (with ``final``, all remaining frames, the right edge clamped as offline)."""
        feats = np.asarray(feats, dtype=np.float32)
        if feats.shape[0]:
            self._buffer = feats if self._buffer is None else np.concatenate([self._buffer, feats])
            self.num_frames += feats.shape[0]
        end = self.num_frames if final else max(self.num_scored, self.num_frames - self.right)
        if end <= self.num_scored or self._buffer is None:
            return np.zeros((0, int(self.model.num_pdfs)), dtype=np.float32)
        first = max(0, self.num_scored - self.left)  # global index of the first frame given to the model
        last = min(self.num_frames, end + self.right)
        window = self._buffer[first - self._buffer_start : last - self._buffer_start]
        scores = np.asarray(self.model.log_likelihoods(window), dtype=np.float32)
        out = scores[self.num_scored - first : end - first]
        self.num_scored = end
        keep = max(0, end - self.left)  # frames before keep are no one's left context any more
        if keep > self._buffer_start:
            self._buffer = self._buffer[keep - self._buffer_start :]
            self._buffer_start = keep
        return out


class StreamingSession:
    """Recognize one recording fed chunk by chunk (see the module docstring).

    Args:
        recognizer: a loaded :class:`asr.transcribe.Recognizer`.
        name: the recording's name in the transcript.
        sample_rate: the rate of the samples given to :meth:`accept_audio` (resampled to the model's).
        keep_scores: keep every frame's scores for word confidences (default: when the recognizer gives
            word times).
    """

    def __init__(self, recognizer: Recognizer, name: str, sample_rate: int, keep_scores: bool | None = None):
        policy = recognizer.policy
        if not policy.streaming:
            raise ConfigError(
                f"CMVN policy {policy.kind!r} needs the whole recording; streaming works with online, global, none"
            )
        self.recognizer = recognizer
        self.name = name
        self.sample_rate = int(sample_rate)
        options = recognizer.feature_options
        if self.sample_rate != options.sample_rate:
            logger.info("%s: resampling %d Hz -> %d Hz (streaming)", name, self.sample_rate, options.sample_rate)
        self._resampler = StreamingResampler(self.sample_rate, options.sample_rate)
        self._features = OnlineFeatures(options)
        self._cmvn = OnlineCmvn(policy, recognizer.global_cmvn_stats)
        self._scorer = IncrementalScorer(recognizer.model, *recognizer.context)
        self._decoder = kaldi_decoder.FasterDecoder(recognizer.hclg, recognizer.decoder_options.to_kaldi())
        self._decoder.init_decoding()
        self._keep_scores = recognizer.word_times if keep_scores is None else keep_scores
        self._scores: list[np.ndarray] = []
        self.num_samples = 0
        self.finished = False
        self.processing_seconds = 0.0

    @property
    def num_frames_decoded(self) -> int:
        """Frames the search has consumed."""
        return int(self._decoder.num_frames_decoded())

    def _advance(self, feats: np.ndarray, final: bool) -> None:
        scores = self._scorer.accept(self._cmvn.accept(feats), final=final)
        if scores.shape[0] == 0:
            return
        if self._keep_scores:
            self._scores.append(scores)
        offset = self._scorer.num_scored - scores.shape[0]
        emissions = emission_scores(scores * self.recognizer.acoustic_scale, self.recognizer.transition_model)
        self._decoder.advance_decoding(kaldi_decoder.DecodableCtc(emissions, offset=offset))

    def accept_audio(self, samples: np.ndarray) -> None:
        """Take the next chunk of mono float samples in [-1, 1] at ``sample_rate`` and decode what it completes."""
        if self.finished:
            raise RuntimeError("accept_audio() after finish()")
        start = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.num_samples += samples.size
        feats = self._features.accept(self._resampler.accept(samples))
        if feats.shape[0]:
            self._advance(feats, final=False)
        self.processing_seconds += time.perf_counter() - start

    def partial_words(self) -> list[str]:
        """The words of the current best partial path (may change as more audio arrives)."""
        if self.num_frames_decoded == 0:
            return []
        ok, lattice = self._decoder.get_best_path(use_final_probs=False)
        if not ok:
            return []
        import kaldifst

        ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(lattice)
        return [self.recognizer.words.symbol(w) for w in olabels if w] if ok else []

    def finish(self) -> Transcript:
        """No more audio: decode the last frames and return the :class:`Transcript`."""
        if self.finished:
            raise RuntimeError("finish() called twice")
        start = time.perf_counter()
        self.finished = True
        tail = self._resampler.finish()
        feats = self._features.accept(tail)
        rest = self._features.finish()
        feats = np.concatenate([feats, rest]) if rest.shape[0] else feats
        self._advance(feats, final=True)
        if self._scorer.num_frames == 0:
            window = self.recognizer.feature_options.frame_length_ms
            seconds = self.num_samples / self.sample_rate
            raise InputError(f"the audio ({seconds:.3f} s) is shorter than one {window:g} ms window", self.name)
        path = best_path_of(self._decoder) if self.num_frames_decoded else None
        loglikes = np.concatenate(self._scores) if self._scores else None
        transcript = self.recognizer.make_transcript(
            self.name, path, loglikes, self.num_frames_decoded, self.num_samples / self.sample_rate
        )
        self.processing_seconds += time.perf_counter() - start
        return transcript
