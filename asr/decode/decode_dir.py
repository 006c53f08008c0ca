"""Decode a data directory with a graph and an acoustic model; score; write hyp.txt, per_utt.txt, results.json.

CLI (Kaldi's ``steps/decode.sh`` + ``local/score.sh``)::

    python -m asr.decode.decode_dir --graph exp/an4/tri1/graph_tg --model exp/an4/tri1 --data data/an4/dev \\
        --out exp/an4/tri1/decode_dev [--lm-weights 7:17 | --lm-weight 10 | --acoustic-scale 0.1 |
        --lm-weight-from exp/an4/tri1/decode_dev/results.json] [--beam 13 --max-active 7000] [--jobs 2]
        [--threads 1] [--skip-missing]

Steps:

1. Features: ``<data>/<feature_type>.h5`` (the model's ``feature_type``). Every utterance of the data dir
   must be in the archive: a missing one is an :class:`~asr.errors.InputError` naming it, unless
   ``--skip-missing``, which decodes the others, scores the missing ones as all deletions (they are in
   the reference) and lists them in ``results.json`` (``skipped_missing_features``; those the feature
   extractor left out for bad audio, ``compute --skip-bad``, also in ``skipped_bad_audio``). Archive utterances
   that the data dir does not have are ignored with a warning.
2. Acoustic log-likelihoods per utterance (``model.log_likelihoods``), in this process.
3. Search with kaldi-decoder's FasterDecoder (:class:`asr.decode.decoder.Decoder`) on the likelihoods times
   the acoustic scale ``1 / lmwt``, once per LM weight. With ``--jobs N > 1`` (default: 2, or 1 on a
   one-core machine) the search runs in N forked worker processes (each reads the graph once) while this
   process computes the next likelihoods (torch with ``--threads``, default 1). Measured on AN4 dev with
   2 CPUs: on an idle machine 2 jobs take ~0.65x the wall time of ``--jobs 1``; with the cores shared
   (load 3) the LM weight sweep 7..17 still takes ~0.9x; the single-weight decode is then a wash
   (``python -m asr.bench.decode``).
4. An utterance whose search reached no final state keeps its best partial path (Kaldi's
   ``--allow-partial=true``) and is counted and listed (``num_not_final``, ``not_final_utts``); one with
   no path at all gets an empty hypothesis (``num_no_path``, ``no_path_utts``).
5. Scoring (:mod:`asr.score`) against ``<data>/text``.

LM weight (:mod:`asr.decode.lm_weight`): default 10 (acoustic scale 0.1). ``--lm-weights a:b`` decodes at
every weight, writes ``hyp_<lmwt>.txt`` and ``results_<lmwt>.json`` for each, and selects the weight with
the lowest WER on this set (``best_lmwt``; use it on a dev set). ``--lm-weight-from DEV/results.json``
decodes at the weight a dev decode selected (use it on a test set: never tune on test).

Resuming: each decoded utterance is appended to ``--out/.decode_journal.jsonl`` (:mod:`asr.decode.journal`), so a
decode that was killed, started again with the same inputs and options, searches only the utterances it had not
finished and writes the same outputs; the journal is removed when ``results.json`` is written.

Outputs in ``--out``: ``hyp.txt`` (Kaldi text, the selected weight), ``per_utt.txt``, ``results.json``
(DESIGN.md fields plus ``wer_by_lm_weight`` when swept) and ``log/decode.log``; the ``%WER`` line is printed.

Timing: ``likelihood_seconds`` (acoustic model) and ``search_seconds`` (search at the selected weight) are
sums of per-utterance times, i.e. single-core seconds whatever ``--jobs`` is (processes competing for cores
inflate them); ``decode_seconds`` is their sum and ``rtf = decode_seconds / audio_seconds``; ``wall_seconds``
is the whole run (all weights, graph loading, scoring).

Kaldi scores its lattices at each LM weight; re-running the search at acoustic scale ``1 / lmwt`` gives the
same best path up to pruning (the beam is in scaled cost units, as with Kaldi's ``--acwt``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.atomic import atomic_write
from asr.data.datadir import DataDir, read_data_dir
from asr.decode.acoustic_model import AcousticModel, load_acoustic_model
from asr.decode.decoder import Decoder, DecodeResult, DecoderOptions
from asr.decode.journal import DecodeJournal, journal_key
from asr.decode.lm_weight import (
    DEFAULT_LM_WEIGHT,
    format_lm_weight,
    lm_weight_from_results,
    parse_lm_weights,
    select_best_lm_weight,
)
from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.graph.fst_io import read_graph
from asr.graph.mkgraph import HCLG_NAME, read_graph_info, read_model_json, transition_states_sha256
from asr.graph.stats import graph_stats
from asr.hmm.transition_model import TransitionModel
from asr.lang.symbol_table import SymbolTable
from asr.score import Score, score_texts, write_per_utt, write_results_json

logger = logging.getLogger(__name__)

# Measured on AN4 dev with 2 CPUs (see the module docstring): 2 search processes are the faster path.
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
# One utterance's likelihoods are a small matmul (~300 frames): a second torch thread gains little on an idle
# machine and, when the cores are busy (search processes, other jobs), OpenMP's waiting threads made the
# likelihoods 4-12x slower on AN4 dev (python -m asr.bench.decode --threads 2 vs 1).
DEFAULT_LIKELIHOOD_THREADS = 1


# ---------------------------------------------------------------------------------------------- search
@dataclass
class UttResult:
    """Search results of one utterance at every LM weight (same order as the weights)."""

    utt: str
    results: list[DecodeResult]
    search_seconds: list[float]


def decode_at_scales(decoder: Decoder, loglikes: np.ndarray, scales: Sequence[float]) -> tuple[list, list]:
    """Decode ``loglikes * scale`` for each scale with one reusable decoder; ``(results, seconds)``."""
    results, seconds = [], []
    for scale in scales:
        t0 = time.perf_counter()
        results.append(decoder.decode(loglikes * np.float32(scale)))
        seconds.append(time.perf_counter() - t0)
    return results, seconds


_worker_decoder: Decoder | None = None


def _init_worker(hclg_path: str, transition_model: TransitionModel, options: DecoderOptions) -> None:
    global _worker_decoder
    _worker_decoder = Decoder(read_graph(hclg_path), transition_model, options)


def _search_in_worker(utt: str, loglikes: np.ndarray, scales: Sequence[float]) -> UttResult:
    assert _worker_decoder is not None
    return UttResult(utt, *decode_at_scales(_worker_decoder, loglikes, scales))


def search_all(
    hclg_path: str | os.PathLike,
    transition_model: TransitionModel,
    loglikes: Iterator[tuple[str, np.ndarray]],
    scales: Sequence[float],
    options: DecoderOptions | None = None,
    jobs: int = DEFAULT_JOBS,
) -> Iterator[UttResult]:
    """Search every ``(utt, loglikes)`` at every acoustic scale; yields :class:`UttResult` in input order.

    With ``jobs > 1`` the searches run in forked worker processes (graph read once per worker) and at
    most ``2 * jobs`` utterances are in flight, so ``loglikes`` (a generator) is consumed in step with
    the search and its computation overlaps it.
    """
    hclg_path = os.fspath(hclg_path)
    options = options or DecoderOptions()
    if jobs <= 1:
        decoder = Decoder(read_graph(hclg_path), transition_model, options)
        for utt, ll in loglikes:
            yield UttResult(utt, *decode_at_scales(decoder, ll, scales))
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(hclg_path, transition_model, options)) as pool:
        pending: collections.deque = collections.deque()
        for utt, ll in loglikes:
            pending.append(pool.apply_async(_search_in_worker, (utt, ll, list(scales))))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class GraphDir:
    """A graph directory: ``HCLG.fst``, its ``words.txt`` and (when mkgraph wrote it) ``graph.json``."""

    path: Path
    hclg_path: Path
    words: SymbolTable
    info: dict | None


def open_graph_dir(graph_dir: str | os.PathLike) -> GraphDir:
    """Check a graph directory's files (InputError naming the missing one)."""
    graph_dir = Path(graph_dir)
    hclg_path = graph_dir / HCLG_NAME
    if not hclg_path.is_file():
        raise InputError(f"no {HCLG_NAME} (build it with python -m asr.graph.mkgraph)", graph_dir)
    words = SymbolTable.read(graph_dir / "words.txt")
    info = read_graph_info(graph_dir) if (graph_dir / "graph.json").is_file() else None
    return GraphDir(graph_dir, hclg_path, words, info)


def check_graph_matches_model(graph: GraphDir, transition_model: TransitionModel) -> None:
    """Refuse a graph whose input labels mean other transition states than the model's.

    With ``graph.json`` the transition-state sets are compared by hash; otherwise the graph's largest
    input label is checked against the model (kaldi-decoder does no bounds check).
    """
    if graph.info is not None:
        if graph.info.get("transition_states_sha256") != transition_states_sha256(transition_model):
            raise InputError(
                f"the graph was built for another model ({graph.info.get('model')}): its transition states differ "
                "from this model's; rebuild it with python -m asr.graph.mkgraph",
                graph.path / "graph.json",
            )
        return
    max_ilabel = graph_stats(read_graph(graph.hclg_path)).max_ilabel
    if max_ilabel > transition_model.num_transition_states:
        raise InputError(
            f"graph input label {max_ilabel} exceeds the model's {transition_model.num_transition_states} "
            "transition states: the graph was built for another model",
            graph.hclg_path,
        )


@dataclass
class DecodeInputs:
    """The utterances to decode and what was left out."""

    data: DataDir
    archive: FeatureArchive
    refs: dict[str, list[str]]
    utts: list[str]
    missing: list[str] = field(default_factory=list)
    extra: int = 0


def open_decode_inputs(data_dir: str | os.PathLike, feature_type: str, skip_missing: bool = False) -> DecodeInputs:
    """Read the data dir's references and open ``<data>/<feature_type>.h5``, matching their utterances.

    Raises:
        InputError: an utterance without a transcript, an archive of another feature type, an utterance
            missing from the archive (unless ``skip_missing``), no utterance left to decode.
    """
    data = read_data_dir(data_dir)
    data_path = Path(data_dir)
    no_text = [u for u in data.utt_ids if u not in data.text]
    if no_text:
        raise InputError(f"{len(no_text)} utterances have no transcript, e.g. {no_text[0]!r}", data_path / "text")
    archive_path = data_path / f"{feature_type}.h5"
    archive = FeatureArchive(archive_path)
    if archive.feature_type != feature_type:
        raise InputError(
            f"archive holds {archive.feature_type!r} features, the model needs {feature_type!r}", archive_path
        )
    missing = [u for u in data.utt_ids if u not in archive]
    if missing and not skip_missing:
        raise InputError(
            f"utterance {missing[0]!r} of the data dir has no features in the archive ({len(missing)} missing"
            f"{', e.g. ' + ', '.join(missing[1:4]) if len(missing) > 1 else ''}); recompute the features or pass "
            "--skip-missing",
            archive_path,
        )
    if missing:
        logger.warning(
            "%d utterances have no features and are skipped (scored as deletions): %s", len(missing), missing[:5]
        )
    in_data = set(data.utt_ids)
    extra = sum(1 for u in archive.utt_ids if u not in in_data)
    if extra:
        logger.warning("%s: %d archive utterances are not in the data dir (ignored)", archive_path, extra)
    utts = [u for u in data.utt_ids if u in archive]
    if not utts:
        raise InputError("no utterance to decode", data_path)
    refs = {u: data.text[u].split() for u in data.utt_ids}
    return DecodeInputs(data, archive, refs, utts, missing, extra)


def audio_seconds_of(inputs: DecodeInputs) -> float:
    """Audio duration of the decoded utterances: ``utt2dur`` when it covers them, else frames x frame shift."""
    utt2dur = inputs.data.utt2dur
    if utt2dur is not None and all(u in utt2dur for u in inputs.utts):
        return float(sum(utt2dur[u] for u in inputs.utts))
    options = inputs.archive.options
    shift = (options.frame_shift_ms if options is not None else 10.0) / 1000.0
    return float(sum(inputs.archive.num_frames_of(u) for u in inputs.utts) * shift)


def model_summary(model_dir: str | os.PathLike | None, model: AcousticModel) -> dict:
    """The ``model`` field of results.json: name, kind, pdfs, Gaussians, context width, feature type, and what
    ``model.json`` says of training (train_seconds; a DNN's depth, width, num_params, frames_per_second...)."""
    info = read_model_json(model_dir) if model_dir is not None else {}
    summary = {k: info[k] for k in ("name", "kind", "num_pdfs", "num_gauss", "context_width") if k in info}
    summary.setdefault("num_pdfs", int(model.num_pdfs))
    gmm = getattr(model, "gmm", None)
    if "num_gauss" not in summary and gmm is not None:
        summary["num_gauss"] = int(gmm.num_gauss)
    summary.setdefault("context_width", int(model.ctx_dep.context_width))
    summary["feature_type"] = model.feature_type
    for key in ("train_seconds", "depth", "width", "num_params", "frames_per_second", "epochs", "train_frames"):
        if key in info:
            summary[key] = info[key]
    return summary


# ---------------------------------------------------------------------------------------------- decode
@dataclass
class WeightOutcome:
    """Hypotheses and counts at one LM weight."""

    lm_weight: float
    hyps: dict[str, list[str]] = field(default_factory=dict)
    not_final: list[str] = field(default_factory=list)
    no_path: list[str] = field(default_factory=list)
    search_seconds: float = 0.0
    score: Score | None = None


def write_hyp_text(hyps: dict[str, list[str]], path: str | os.PathLike) -> None:
    """Write hypotheses as a Kaldi ``text`` file (``utt`` alone for an empty hypothesis), sorted by utt."""
    with atomic_write(path) as f:
        for utt in sorted(hyps):
            f.write(" ".join([utt, *hyps[utt]]) + "\n")


def decode_data_dir(
    graph_dir: str | os.PathLike,
    model_dir: str | os.PathLike | None,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    lm_weights: Sequence[float] = (DEFAULT_LM_WEIGHT,),
    lm_weight_source: str = "fixed",
    decoder_options: DecoderOptions | None = None,
    jobs: int = DEFAULT_JOBS,
    skip_missing: bool = False,
    corpus: str | None = None,
    set_name: str | None = None,
    system: str | None = None,
    model: AcousticModel | None = None,
    likelihood_threads: int = DEFAULT_LIKELIHOOD_THREADS,
    resumable: bool | None = None,
    journal_extra: Any = None,
    extra_fields: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> dict:
    """Decode every utterance of ``data_dir``, score, and write the outputs of the module docstring.

    Args:
        graph_dir: graph directory (``HCLG.fst``, ``words.txt``, ``graph.json``).
        model_dir: model directory (``model.json``...); may be None when ``model`` is given.
        data_dir: data directory with ``text`` and ``<feature_type>.h5``.
        out_dir: output directory (e.g. ``exp/an4/tri1/decode_dev``).
        lm_weights: one weight (decode at it) or several (sweep; the best on this set is selected).
        lm_weight_source: how a single weight was chosen, recorded in results.json (``"fixed"``,
            ``"from <path>"``).
        decoder_options: beam, max_active, min_active... (default: :class:`DecoderOptions`)
        jobs: search processes (1: in this process).
        skip_missing: decode the utterances that have features, list the others.
        corpus, set_name, system: names for results.json (default: the data dir's parent and own name,
            the model's ``name``).
        model: an already loaded acoustic model (default: :func:`load_acoustic_model` of ``model_dir``).
        likelihood_threads: torch threads for the likelihoods (restored afterwards).
        resumable: keep the per-utterance journal (:mod:`asr.decode.journal`) so that a killed decode resumes;
            default: when the model is ``model_dir``'s own (``model`` None). Pass True with a ``model`` that
            is ``model_dir`` loaded as is (not adapted or changed in memory).
        journal_extra: more key material of the journal (JSON-able), e.g. the digest of the transforms that an
            adapted ``model`` applies; pass it with ``resumable=True`` when the model is not ``model_dir``'s own.
        extra_fields: fields added to ``results.json`` (the selected weight's), written with it in one piece.
        started: ``time.perf_counter()`` when the caller's run began (``wall_seconds`` counts from it; default:
            this call's start).

    Returns:
        The results.json dict of the selected weight.
    """
    t_start = time.perf_counter() if started is None else started
    decoder_options = decoder_options or DecoderOptions()
    lm_weights = sorted({float(w) for w in lm_weights})
    if not lm_weights or any(w <= 0 for w in lm_weights):
        raise ConfigError(f"LM weights must be positive, got {lm_weights}")
    out_dir = Path(out_dir)
    data_path = Path(data_dir)
    graph = open_graph_dir(graph_dir)
    # resumable when the model is the model dir's (not an object changed in memory, e.g. fMLLR-adapted)
    use_journal = (model is None) if resumable is None else (resumable and model_dir is not None)
    if model is None:
        if model_dir is None:
            raise ConfigError("give model_dir or model")
        model = load_acoustic_model(model_dir)
    tm = model.transition_model
    check_graph_matches_model(graph, tm)
    inputs = open_decode_inputs(data_path, model.feature_type, skip_missing)
    # utterances the feature extractor left out (bad audio, compute --skip-bad): listed in results.json
    bad_audio_set = set(inputs.archive.skipped_utt_ids)
    bad_audio = [u for u in inputs.missing if u in bad_audio_set]
    if bad_audio:
        logger.warning(
            "%d skipped utterance(s) had bad audio (left out by the feature extractor): %s",
            len(bad_audio),
            " ".join(bad_audio[:10]),
        )
    scales = [1.0 / w for w in lm_weights]
    outcomes = [WeightOutcome(w) for w in lm_weights]
    likelihood_seconds = 0.0
    journal, done = None, {}
    if use_journal:  # utterances a killed run decoded already (asr.decode.journal)
        inputs_files = [graph.hclg_path, graph.path / "words.txt", inputs.archive.path, data_path / "text"]
        key_options = {"lm_weights": lm_weights, "decoder": dataclasses.asdict(decoder_options)}
        if journal_extra is not None:
            key_options["extra"] = journal_extra
        journal = DecodeJournal(out_dir, journal_key(inputs_files, model_dir, key_options))
        wanted = set(inputs.utts)
        done = {u: r for u, r in journal.load().items() if u in wanted}
        journal.open(done)
        for utt, record in done.items():
            likelihood_seconds += record["likelihood_seconds"]
            for i, outcome in enumerate(outcomes):
                outcome.hyps[utt] = list(record["words"][i])
                outcome.search_seconds += record["search_seconds"][i]
                if not record["final"][i]:
                    (outcome.no_path if record["no_path"][i] else outcome.not_final).append(utt)
    utt_likelihood_seconds: dict[str, float] = {}

    def loglikes() -> Iterator[tuple[str, np.ndarray]]:
        nonlocal likelihood_seconds
        for utt in inputs.utts:
            if utt in done:
                continue
            t0 = time.perf_counter()
            ll = np.asarray(model.log_likelihoods(inputs.archive.read(utt)), dtype=np.float32)
            utt_likelihood_seconds[utt] = time.perf_counter() - t0
            likelihood_seconds += utt_likelihood_seconds[utt]
            if ll.ndim != 2 or ll.shape[1] != model.num_pdfs:
                raise ValueError(f"{utt}: log-likelihoods of shape {ll.shape}, expected [T, {model.num_pdfs}]")
            yield utt, ll

    logger.info(
        "decoding %d utterances of %s with %s at LM weight(s) %s, %d job(s)",
        len(inputs.utts),
        data_path,
        graph.hclg_path,
        ",".join(format_lm_weight(w) for w in lm_weights),
        jobs,
    )
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(likelihood_threads)
    try:
        for res in search_all(graph.hclg_path, tm, loglikes(), scales, decoder_options, jobs):
            for outcome, r, secs in zip(outcomes, res.results, res.search_seconds):
                try:
                    outcome.hyps[res.utt] = [graph.words.symbol(w) for w in r.word_ids]
                except KeyError as err:
                    raise InputError(
                        f"word id {err} of the graph is not in words.txt", graph.path / "words.txt"
                    ) from None
                outcome.search_seconds += secs
                if not r.reached_final:
                    (outcome.no_path if math.isinf(r.graph_cost) else outcome.not_final).append(res.utt)
            if journal is not None:
                words = [outcome.hyps[res.utt] for outcome in outcomes]
                journal.append(res.utt, words, res.results, res.search_seconds, utt_likelihood_seconds.pop(res.utt))
    finally:
        torch.set_num_threads(torch_threads)
        inputs.archive.close()
        if journal is not None:
            journal.close()
    position = {u: i for i, u in enumerate(inputs.utts)}
    for outcome in outcomes:  # utterance order, also when some came from the journal
        outcome.not_final.sort(key=position.__getitem__)
        outcome.no_path.sort(key=position.__getitem__)
    wall_seconds = time.perf_counter() - t_start
    audio_seconds = audio_seconds_of(inputs)
    for outcome in outcomes:
        outcome.score = score_texts(inputs.refs, outcome.hyps)
        logger.info("LM weight %s: %s", format_lm_weight(outcome.lm_weight), outcome.score.summary())
    by_weight = {o.lm_weight: o for o in outcomes}
    swept = len(outcomes) > 1
    if swept:
        selected = select_best_lm_weight({o.lm_weight: o.score.wer for o in outcomes})
        source = "best on this set"
        if "test" in (set_name or data_path.resolve().name):
            logger.warning(
                "the LM weight was tuned on %s: report the weight picked on dev (--lm-weight-from)", data_path
            )
    else:
        selected = lm_weights[0]
        source = lm_weight_source
    common = {
        "corpus": corpus or data_path.resolve().parent.name,
        "set": set_name or data_path.resolve().name,
        "system": system or (read_model_json(model_dir).get("name") if model_dir is not None else None),
        "model": model_summary(model_dir, model),
    }
    wer_by_lm_weight = {
        format_lm_weight(o.lm_weight): {
            "wer": round(o.score.wer, 4),
            "ins": o.score.ins,
            "del": o.score.dels,
            "sub": o.score.sub,
            "ser": round(o.score.ser, 4),
        }
        for o in outcomes
    }

    def fields_for(outcome: WeightOutcome) -> dict:
        decode_seconds = likelihood_seconds + outcome.search_seconds
        out = {
            **common,
            "lm_weight": outcome.lm_weight if not outcome.lm_weight.is_integer() else int(outcome.lm_weight),
            "acoustic_scale": round(1.0 / outcome.lm_weight, 6),
            "lm_weight_selection": source if outcome.lm_weight == selected else "sweep",
            "decode_seconds": round(decode_seconds, 3),
            "likelihood_seconds": round(likelihood_seconds, 3),
            "search_seconds": round(outcome.search_seconds, 3),
            "audio_seconds": round(audio_seconds, 3),
            "rtf": round(decode_seconds / audio_seconds, 5) if audio_seconds else None,
            "rtf_likelihood": round(likelihood_seconds / audio_seconds, 5) if audio_seconds else None,
            "rtf_search": round(outcome.search_seconds / audio_seconds, 5) if audio_seconds else None,
            "wall_seconds": round(wall_seconds, 3),
            "jobs": jobs,
            "beam": decoder_options.beam,
            "max_active": decoder_options.max_active,
            "min_active": decoder_options.min_active,
            "num_not_final": len(outcome.not_final),
            "not_final_utts": outcome.not_final,
            "num_no_path": len(outcome.no_path),
            "no_path_utts": outcome.no_path,
            "num_skipped_missing_features": len(inputs.missing),
            "skipped_missing_features": inputs.missing,
            "num_skipped_bad_audio": len(bad_audio),
            "skipped_bad_audio": bad_audio,
            "graph": os.fspath(graph.path),
            "model_dir": None if model_dir is None else os.fspath(model_dir),
            "data": os.fspath(data_path),
        }
        if swept:
            out["best_lmwt"] = int(selected) if selected.is_integer() else selected
            out["wer_by_lm_weight"] = wer_by_lm_weight
        return out

    out_dir.mkdir(parents=True, exist_ok=True)
    if swept:
        for o in outcomes:
            name = format_lm_weight(o.lm_weight)
            write_hyp_text(o.hyps, out_dir / f"hyp_{name}.txt")
            write_results_json(out_dir / f"results_{name}.json", o.score, **fields_for(o))
    best = by_weight[selected]
    write_hyp_text(best.hyps, out_dir / "hyp.txt")
    write_per_utt(best.score, out_dir / "per_utt.txt")
    results = write_results_json(out_dir / "results.json", best.score, **{**fields_for(best), **(extra_fields or {})})
    if journal is not None:
        journal.remove()
    for o in outcomes:
        if o.not_final or o.no_path:
            logger.warning(
                "LM weight %s: %d utterances reached no final state (partial path used), %d had no path",
                format_lm_weight(o.lm_weight),
                len(o.not_final),
                len(o.no_path),
            )
    logger.info(
        "RTF %.4f (likelihoods %.2f s + search %.2f s for %.1f s of audio); wall %.1f s",
        results["rtf"] or 0.0,
        likelihood_seconds,
        best.search_seconds,
        audio_seconds,
        wall_seconds,
    )
    return results


def wer_line(results: dict, out_dir: str | os.PathLike) -> str:
    """Kaldi-style ``%WER`` line of a results dict, with the decode dir and the LM weight."""
    errors = results["ins"] + results["del"] + results["sub"]
    return (
        f"%WER {results['wer']:.2f} [ {errors} / {results['words']}, {results['ins']} ins, {results['del']} del, "
        f"{results['sub']} sub ] {os.fspath(out_dir)} (lmwt {format_lm_weight(float(results['lm_weight']))}, "
        f"{results['lm_weight_selection']})"
    )


def resolve_lm_weights(
    lm_weight: float | None = None,
    acoustic_scale: float | None = None,
    lm_weights: str | None = None,
    lm_weight_from: str | os.PathLike | None = None,
) -> tuple[list[float], str]:
    """The LM weights to decode at and how they were chosen, from at most one of the CLI's options.

    Returns ``([weights], source)``: ``lm_weights`` (a sweep spec, :func:`parse_lm_weights`) -> "best on this
    set"; ``lm_weight_from`` (a dev results.json) -> "from <path>"; ``acoustic_scale`` -> ``1 / scale``;
    ``lm_weight``; none -> the default 10 ("fixed").
    """
    given = [x is not None for x in (lm_weight, acoustic_scale, lm_weights, lm_weight_from)]
    if sum(given) > 1:
        raise ConfigError("give only one of lm_weight, acoustic_scale, lm_weights, lm_weight_from")
    if lm_weights is not None:
        weights = parse_lm_weights(lm_weights)
        return weights, "best on this set" if len(weights) > 1 else "fixed"
    if lm_weight_from is not None:
        return [lm_weight_from_results(lm_weight_from)], f"from {os.fspath(lm_weight_from)}"
    if acoustic_scale is not None:
        if not acoustic_scale > 0:
            raise ConfigError("the acoustic scale must be positive")
        return [1.0 / acoustic_scale], "fixed"
    if lm_weight is not None:
        if not lm_weight > 0:
            raise ConfigError("the LM weight must be positive")
        return [float(lm_weight)], "fixed"
    return [DEFAULT_LM_WEIGHT], "fixed"


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m asr.decode.decode_dir",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--graph", required=True, help="graph directory (HCLG.fst, words.txt)")
    parser.add_argument("--model", required=True, help="model directory (model.json...)")
    parser.add_argument("--data", required=True, help="data directory (text, <feature_type>.h5)")
    parser.add_argument("--out", required=True, help="decode directory to write")
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--lm-weight", type=float, default=None, help=f"LM weight (default {DEFAULT_LM_WEIGHT:g})")
    weight.add_argument("--acoustic-scale", type=float, default=None, help="acoustic scale (= 1 / LM weight)")
    weight.add_argument("--lm-weights", default=None, help="sweep, e.g. 7:17; selects the best on this set")
    weight.add_argument("--lm-weight-from", default=None, help="results.json of a dev decode: use its weight")
    parser.add_argument("--beam", type=float, default=DecoderOptions.beam, help="search beam (default %(default)g)")
    parser.add_argument("--max-active", type=int, default=DecoderOptions.max_active, help="default %(default)d")
    parser.add_argument("--min-active", type=int, default=DecoderOptions.min_active, help="default %(default)d")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="search processes (default %(default)d)")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_LIKELIHOOD_THREADS, help="torch threads for likelihoods (default 1)"
    )
    parser.add_argument("--skip-missing", action="store_true", help="skip utterances without features")
    parser.add_argument("--corpus", default=None, help="corpus name for results.json (default: the data dir's parent)")
    parser.add_argument("--set", dest="set_name", default=None, help="set name (default: data dir name)")
    parser.add_argument("--system", default=None, help="system name (default: model.json name)")
    args = parser.parse_args(argv)
    setup_logging()
    out = Path(args.out)
    log_handler = None
    try:
        weights, source = resolve_lm_weights(args.lm_weight, args.acoustic_scale, args.lm_weights, args.lm_weight_from)
        (out / "log").mkdir(parents=True, exist_ok=True)
        log_handler = logging.FileHandler(out / "log" / "decode.log", mode="w", encoding="utf-8")
        log_handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        log_handler.setLevel(logging.INFO)
        root_logger = logging.getLogger()
        root_logger.addHandler(log_handler)
        if root_logger.getEffectiveLevel() > logging.INFO:  # the log file gets INFO whatever was set up before
            root_logger.setLevel(logging.INFO)
        logger.info("command: %s", " ".join(sys.argv))
        results = decode_data_dir(
            args.graph,
            args.model,
            args.data,
            out,
            lm_weights=weights,
            lm_weight_source=source,
            decoder_options=DecoderOptions(beam=args.beam, max_active=args.max_active, min_active=args.min_active),
            jobs=args.jobs,
            skip_missing=args.skip_missing,
            corpus=args.corpus,
            set_name=args.set_name,
            system=args.system,
            likelihood_threads=args.threads,
        )
    except AsrError as err:
        sys.exit(f"error: {err}")
    finally:
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
    print(wer_line(results, out))
    if "wer_by_lm_weight" in results:
        at_default = results["wer_by_lm_weight"].get(format_lm_weight(DEFAULT_LM_WEIGHT))
        if at_default is not None:
            print(f"  at LM weight {DEFAULT_LM_WEIGHT:g}: %WER {at_default['wer']:.2f}")


if __name__ == "__main__":
    main()
