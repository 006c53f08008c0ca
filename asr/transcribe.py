"""Transcribe audio with a model bundle: ``python -m asr.transcribe <bundle> a.wav [b.flac ...]``.

Examples::

    python -m asr.bundle export --model exp/an4/dnn/mlp_d8_w512 --graph exp/an4/tri1/graph_tg --out models/an4
    python -m asr.transcribe models/an4 a.wav b.flac            # <file> <words>, one line per file
    python -m asr.transcribe models/an4 --list files.txt --ctm  # word times: <file> 1 <start> <dur> <word>
    python -m asr.transcribe models/an4 a.wav --confidence      # CTM with a 6th field: per-word confidence
    python -m asr.transcribe models/an4 --data data/an4/test    # <utt-id> <words> for a data dir
    python -m asr.transcribe models/an4 a.wav --stream --chunk-ms 100 [--partial]

Inputs: audio files (anything libsndfile reads; any sample rate, resampled to the model's with a log line;
the first channel of multi-channel audio), ``--list FILE`` (one path per line, ``#`` comments), or
``--data DIR`` (a Kaldi data dir; utterance ids name the lines; ``segments`` honoured). A missing or
unreadable file stops the run with ``error: <file>: ...`` and exit status 1.

Output on stdout, one recording after another as they finish: ``<name> <words>``; with ``--ctm``, CTM lines
``<name> 1 <start> <dur> <word>`` (times in seconds, :mod:`asr.decode.transcript`); ``--confidence`` adds the
confidence as a 6th CTM field (and implies ``--ctm``): the mean over the word's frames of the acoustic model's
posterior of the senone the best path chose (not a lattice word posterior; see :mod:`asr.decode.transcript`).

CMVN (``--cmvn``): the bundle's policy by default (``online``, causal); ``global``, ``utterance``, ``none``, and
with ``--data`` also ``speaker`` (the per-speaker normalization the model was trained with). See
:mod:`asr.features.online`.

Streaming (``--stream``): each recording is fed in ``--chunk-ms`` pieces as if arriving from a microphone
and decoded incrementally (:mod:`asr.decode.streaming`); the words equal offline decoding with the same CMVN
policy. ``--partial`` prints the current best words to stderr whenever they change.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import kaldi_decoder
import numpy as np

from asr.bundle import Bundle, load_bundle
from asr.data.audio import read_audio, resample
from asr.decode.decoder import DecoderOptions, emission_scores
from asr.decode.streaming import StreamingSession, model_context
from asr.decode.transcript import (
    BestPath,
    Transcript,
    WordAligner,
    best_path_of,
    make_transcript,
    read_pronunciations,
)
from asr.errors import AsrError, ConfigError, InputError
from asr.features.cmvn import cmvn_stats
from asr.features.extract import KnfExtractor
from asr.features.online import CMVN_POLICIES, normalize
from asr.lang.symbol_table import SymbolTable

logger = logging.getLogger("asr.transcribe")

DEFAULT_CHUNK_MS = 100.0


def too_short(name: str, seconds: float, window_ms: float) -> InputError:
    """The error for a recording that gives no feature frame."""
    return InputError(f"the audio ({seconds:.3f} s) is shorter than one {window_ms:g} ms window", name)


class Recognizer:
    """A loaded bundle, ready to transcribe: acoustic model, graph, decoder, features, CMVN, word aligner.

    Args:
        bundle: a :class:`asr.bundle.Bundle` or the path of one (verified on load).
        cmvn: CMVN policy (default: the bundle's); see :mod:`asr.features.online`.
        lm_weight: LM weight (default: the bundle's).
        beam, max_active: decoder options (default: the bundle's).
        device: torch device of the acoustic model.
        word_times: compute word times and confidences (costs a little per recording).
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        *,
        cmvn: str | None = None,
        lm_weight: float | None = None,
        beam: float | None = None,
        max_active: int | None = None,
        device: str = "cpu",
        word_times: bool = True,
    ):
        from asr.decode.decode_dir import check_graph_matches_model, open_graph_dir
        from asr.graph.fst_io import read_graph

        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        b = self.bundle
        self.model = b.load_model(device)
        self.transition_model = self.model.transition_model
        graph = open_graph_dir(b.graph_dir)
        check_graph_matches_model(graph, self.transition_model)
        self.hclg = read_graph(graph.hclg_path)  # the C++ decoders keep a reference: keep it alive here
        self.words: SymbolTable = graph.words
        saved = {**dataclasses.asdict(DecoderOptions()), **b.decoder}
        self.decoder_options = DecoderOptions(
            beam=float(beam if beam is not None else saved["beam"]),
            max_active=int(max_active if max_active is not None else saved["max_active"]),
            min_active=int(saved["min_active"]),
        )
        self.lm_weight = float(lm_weight if lm_weight is not None else b.lm_weight)
        if not self.lm_weight > 0:
            raise ConfigError(f"the LM weight must be positive, not {self.lm_weight}")
        self.acoustic_scale = np.float32(1.0 / self.lm_weight)
        self.policy = b.cmvn_policy(cmvn)
        self.global_cmvn_stats = b.global_cmvn_stats
        self.feature_options = b.feature_options
        self.context = model_context(self.model)
        priors = getattr(self.model, "log_priors", None)  # a DNN's senone priors (a GMM has none: flat)
        if priors is not None and hasattr(priors, "detach"):
            priors = priors.detach().cpu().numpy()
        self.log_prior = None if priors is None else np.asarray(priors, dtype=np.float32)
        self.word_times = word_times
        self.aligner = self._make_aligner() if word_times else None
        self._extractor = KnfExtractor(self.feature_options)
        self._decoder = kaldi_decoder.FasterDecoder(self.hclg, self.decoder_options.to_kaldi())

    def _make_aligner(self) -> WordAligner:
        lang = self.bundle.lang_dir
        if lang is None:
            return WordAligner(self.transition_model, self.words, None)
        phones = SymbolTable.read(lang / "phones.txt")
        prons = read_pronunciations(lang / "lexicon.txt", phones)
        silence: list[int] = []
        sil_file = lang / "optional_silence.txt"
        names = sil_file.read_text(encoding="utf-8").split() if sil_file.is_file() else ["SIL"]
        silence = [phones.id(p) for p in names if p in phones]
        return WordAligner(self.transition_model, self.words, prons, silence)

    @property
    def frame_shift(self) -> float:
        """Seconds per frame."""
        return self.feature_options.frame_shift_ms / 1000.0

    # ------------------------------------------------------------------ offline
    def features(self, samples: np.ndarray) -> np.ndarray:
        """Raw (not normalized) features of mono samples at the model's rate: float32 ``[T, dim]``."""
        return self._extractor.compute(samples)

    def make_transcript(
        self, name: str, path: BestPath | None, loglikes: np.ndarray | None, num_frames: int, audio_seconds: float
    ) -> Transcript:
        """The :class:`Transcript` of a finished search (word times and confidences when asked for)."""
        transcript = make_transcript(
            name,
            path,
            self.words,
            aligner=self.aligner,
            loglikes=loglikes,
            log_prior=self.log_prior,
            transition_model=self.transition_model,
            num_frames=num_frames,
            audio_seconds=audio_seconds,
            frame_shift=self.frame_shift,
            frame_length=self.feature_options.frame_length_ms / 1000.0,
        )
        if not transcript.reached_final:
            logger.warning("%s: no path reached a final state; the best partial path is used", name)
        return transcript

    def decode_features(self, name: str, feats: np.ndarray, audio_seconds: float = 0.0) -> Transcript:
        """Decode one recording's normalized features ``[T, dim]``; returns its :class:`Transcript`."""
        loglikes = np.asarray(self.model.log_likelihoods(feats), dtype=np.float32)
        if loglikes.shape[0] == 0:
            return self.make_transcript(name, None, None, 0, audio_seconds)
        emissions = emission_scores(loglikes * self.acoustic_scale, self.transition_model)
        self._decoder.decode(kaldi_decoder.DecodableCtc(emissions))
        path = best_path_of(self._decoder)
        return self.make_transcript(name, path, loglikes, loglikes.shape[0], audio_seconds)

    def transcribe_samples(
        self, samples: np.ndarray, sample_rate: int, name: str, speaker_stats: np.ndarray | None = None
    ) -> Transcript:
        """Transcribe mono float samples in [-1, 1] at ``sample_rate`` (resampled to the model's rate).

        Args:
            samples: the recording.
            sample_rate: its rate.
            name: its name in the transcript.
            speaker_stats: CMVN statistics of its speaker (policy ``speaker`` only).
        """
        rate = self.feature_options.sample_rate
        audio_seconds = len(samples) / sample_rate
        if sample_rate != rate:
            logger.info("%s: resampling %d Hz -> %d Hz", name, sample_rate, rate)
            samples = resample(np.asarray(samples, dtype=np.float32), sample_rate, rate)
        raw = self.features(samples)
        if raw.shape[0] == 0:
            raise too_short(name, audio_seconds, self.feature_options.frame_length_ms)
        feats = normalize(raw, self.policy, self.global_cmvn_stats, speaker_stats)
        return self.decode_features(name, feats, audio_seconds)

    def transcribe_file(self, path: str | os.PathLike, name: str | None = None) -> Transcript:
        """Transcribe an audio file (InputError naming it when missing or unreadable)."""
        samples, rate = read_audio(os.fspath(path), None, where=os.fspath(path))
        return self.transcribe_samples(samples, rate, os.fspath(path) if name is None else name)

    def stream(self, name: str, sample_rate: int) -> StreamingSession:
        """A :class:`~asr.decode.streaming.StreamingSession` for one recording arriving at ``sample_rate``."""
        return StreamingSession(self, name, sample_rate)

    def transcribe_stream(
        self, samples: np.ndarray, sample_rate: int, name: str, chunk_ms: float = DEFAULT_CHUNK_MS, on_partial=None
    ) -> Transcript:
        """Feed a recording through a streaming session in ``chunk_ms`` pieces; returns the final transcript.

        Args:
            on_partial: called with ``(name, words)`` after each chunk when the partial words changed.
        """
        chunk = max(1, int(round(sample_rate * chunk_ms / 1000.0)))
        session = self.stream(name, sample_rate)
        last: list[str] = []
        for start in range(0, len(samples), chunk):
            session.accept_audio(samples[start : start + chunk])
            if on_partial is not None:
                words = session.partial_words()
                if words != last:
                    on_partial(name, words)
                    last = words
        return session.finish()


# ---------------------------------------------------------------------------------------------- inputs
def read_file_list(path: str | os.PathLike) -> list[str]:
    """Audio paths of a list file (one per line; blank lines and ``#`` comments skipped); relative paths are
    taken relative to the current directory. InputError naming the list when unreadable or empty."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the file list: {err}", path) from None
    files = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not files:
        raise InputError("the file list is empty", path)
    return files


def transcribe_files(
    recognizer: Recognizer,
    files: Iterable[str],
    *,
    stream: bool = False,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    on_partial=None,
) -> Iterator[Transcript]:
    """Transcribe audio files in order (named by their paths as given); streaming when asked."""
    for path in files:
        if not stream:
            yield recognizer.transcribe_file(path)
            continue
        samples, rate = read_audio(path, None, where=path)
        yield recognizer.transcribe_stream(samples, rate, path, chunk_ms, on_partial)


def transcribe_data_dir(
    recognizer: Recognizer,
    data_dir: str | os.PathLike,
    *,
    stream: bool = False,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    on_partial=None,
) -> Iterator[Transcript]:
    """Transcribe every utterance of a data dir, in utterance order (named by utterance id).

    With CMVN policy ``speaker`` the features of all of a speaker's utterances are computed first and
    normalized with their joint statistics (how the training archives were made).
    """
    from asr.data.datadir import read_data_dir

    data = read_data_dir(data_dir)
    if not data.utt_ids:
        raise InputError("data directory has no utterances", data_dir)

    def audio(utt: str) -> tuple[np.ndarray, int]:
        entry, start, end, where = data.audio_source(utt)
        return read_audio(entry, None, where=where, start=start, end=end)

    if recognizer.policy.kind != "speaker":
        for utt in data.utt_ids:
            samples, rate = audio(utt)
            if stream:
                yield recognizer.transcribe_stream(samples, rate, utt, chunk_ms, on_partial)
            else:
                yield recognizer.transcribe_samples(samples, rate, utt)
        return
    if stream:
        raise ConfigError("CMVN policy 'speaker' needs all of a speaker's audio first: it cannot stream")
    rate = recognizer.feature_options.sample_rate
    for utts in data.spk2utt.values():
        feats, seconds = {}, {}
        for utt in utts:
            samples, file_rate = audio(utt)
            seconds[utt] = len(samples) / file_rate
            if file_rate != rate:
                logger.info("%s: resampling %d Hz -> %d Hz", utt, file_rate, rate)
                samples = resample(samples, file_rate, rate)
            feats[utt] = recognizer.features(samples)
            if feats[utt].shape[0] == 0:
                raise too_short(utt, seconds[utt], recognizer.feature_options.frame_length_ms)
        stats = cmvn_stats(np.concatenate(list(feats.values())))
        for utt in utts:
            normalized = normalize(feats[utt], recognizer.policy, speaker_stats=stats)
            yield recognizer.decode_features(utt, normalized, seconds[utt])


# ---------------------------------------------------------------------------------------------- CLI
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m asr.transcribe",
        description="Transcribe audio files with a model bundle (python -m asr.bundle export).",
    )
    parser.add_argument("bundle", help="model bundle directory")
    parser.add_argument("audio", nargs="*", help="audio files (wav, flac, ...; any rate)")
    parser.add_argument("--data", default=None, help="a Kaldi data dir to transcribe (lines named by utt id)")
    parser.add_argument("--list", dest="file_list", default=None, help="a file listing audio paths, one a line")
    parser.add_argument("--ctm", action="store_true", help="print CTM word times instead of text lines")
    parser.add_argument("--confidence", action="store_true", help="add per-word confidence to the CTM (implies --ctm)")
    parser.add_argument("--stream", action="store_true", help="decode chunk by chunk as audio arrives")
    parser.add_argument("--chunk-ms", type=float, default=DEFAULT_CHUNK_MS, help="streaming chunk (default 100 ms)")
    parser.add_argument("--partial", action="store_true", help="streaming: print partial results to stderr")
    parser.add_argument("--cmvn", choices=CMVN_POLICIES, default=None, help="CMVN policy (default: the bundle's)")
    parser.add_argument("--lm-weight", type=float, default=None, help="LM weight (default: the bundle's)")
    parser.add_argument("--beam", type=float, default=None, help="search beam (default: the bundle's)")
    parser.add_argument("--max-active", type=int, default=None, help="most active states (default: the bundle's)")
    parser.add_argument("--device", default="cpu", help="torch device of the acoustic model (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    given = sum([bool(args.audio), args.data is not None, args.file_list is not None])
    if given != 1:
        parser.error("give audio files, or --list FILE, or --data DIR (exactly one of them)")
    if not args.chunk_ms > 0:
        parser.error("--chunk-ms must be positive")
    if args.confidence:
        args.ctm = True
    return args


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status (1 with ``error: ...`` on bad input)."""
    import torch

    from asr.logging_setup import setup_logging

    args = _parse_args(argv)
    setup_logging(args.verbose)
    torch.set_num_threads(max(1, args.threads))

    def show_partial(name: str, words: list[str]) -> None:
        print(f"{name} (partial): {' '.join(words)}", file=sys.stderr, flush=True)

    on_partial = show_partial if args.partial else None
    not_final = 0
    try:
        if args.audio or args.file_list:
            files = list(args.audio) if args.audio else read_file_list(args.file_list)
            missing = [f for f in files if not Path(f).is_file()]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise InputError(f"audio file not found{more}", missing[0])
        if args.cmvn == "speaker" and args.data is None:
            raise ConfigError("--cmvn speaker needs --data (the speakers come from utt2spk)")
        recognizer = Recognizer(
            args.bundle,
            cmvn=args.cmvn,
            lm_weight=args.lm_weight,
            beam=args.beam,
            max_active=args.max_active,
            device=args.device,
            word_times=args.ctm,
        )
        if args.stream and not recognizer.policy.streaming:
            raise ConfigError(
                f"CMVN policy {recognizer.policy.kind!r} needs the whole recording: --stream works with --cmvn "
                "online, global or none"
            )
        if args.data is not None:
            results = transcribe_data_dir(
                recognizer, args.data, stream=args.stream, chunk_ms=args.chunk_ms, on_partial=on_partial
            )
        else:
            results = transcribe_files(
                recognizer, files, stream=args.stream, chunk_ms=args.chunk_ms, on_partial=on_partial
            )
        for transcript in results:
            not_final += not transcript.reached_final
            lines = transcript.ctm_lines(args.confidence) if args.ctm else [transcript.text_line()]
            for line in lines:
                print(line, flush=True)
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not_final:
        logger.warning("%d recording(s) reached no final state (partial paths printed)", not_final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
