"""Two-pass decoding with fMLLR speaker adaptation (Kaldi's ``steps/decode_fmllr.sh``), for SAT models
(``python -m asr.gmm.train_sat``).

CLI::

    python -m asr.decode.decode_fmllr --graph exp/an4/tri3b/graph_tg --model exp/an4/tri3b --data data/an4/dev \\
        --out exp/an4/tri3b/decode_dev [--lm-weights 7:17 | --lm-weight 10 | --lm-weight-from DEV/results.json]
        [--first-pass-lm-weight 12] [--per-utt] [--update-type full|diag] [--min-count 500]
        [--silence-weight 0.01] [--beam 13 --max-active 7000] [--jobs 2]

Passes:

1. Speaker-independent: the model's alignment model (``final.alimdl.gmm.pt``) on the LDA+MLLT features,
   searched at ``--first-pass-lm-weight`` (default 12, Kaldi's first-pass ``--acwt 0.0833``); the best path
   gives each frame's pdf.
2. Per speaker (``utt2spk`` of the data dir; ``--per-utt``: every utterance its own speaker, for
   single-utterance use, best with ``--update-type diag`` and a lower ``--min-count``): fMLLR statistics
   with the Gaussian posteriors of the alignment model and the means and variances of the adapted model,
   silence frames weighted by ``--silence-weight`` (``gmm-post-to-gpost`` + ``gmm-est-fmllr-gpost``).
3. Adapted: the SAT model on the transformed features, searched again at the first-pass weight; fMLLR
   re-estimated from that path on the adapted features and composed with the first transforms (Kaldi
   estimates again from the second pass's lattices).
4. Final: :func:`asr.decode.decode_dir.decode_data_dir` with the final transforms (its LM-weight sweep,
   scoring and outputs), plus ``trans.pt`` (the speakers' transforms, :class:`asr.gmm.fmllr.SpeakerTransforms`)
   and in ``results.json`` an ``"fmllr"`` entry: the first pass's WER, objective gains, speakers updated and
   the seconds of each pass (``decode_seconds`` and ``rtf`` cover the final search only; ``fmllr_seconds``
   the two earlier passes and the estimation).

Resuming (after ``kill -9``): started again with the same inputs and options, a decode continues where it
stopped. The two search passes append each utterance's words and best path to a journal
(``--out/.fmllr_state/first_pass.jsonl`` and ``second_pass.jsonl``, :class:`asr.decode.journal.SearchJournal`,
keyed by the pass, the graph, model, data and options; the second pass's key also by the first transforms'
digest), so only the utterances not yet searched are searched; each estimation step's transforms are saved
atomically (``.fmllr_state/trans_1.pt``, ``trans_2.pt``: tensors, ``weights_only`` loadable) and reused; the final
decode keeps :func:`~asr.decode.decode_dir.decode_data_dir`'s journal, keyed also by the final transforms' digest.
The outputs (``hyp.txt``, ``per_utt.txt``, ``trans.pt``, ``results.json`` but for its timings) equal an
uninterrupted run's; ``trans.pt`` is written before ``results.json``, which is written once, complete, and
``.fmllr_state`` is removed after it. After a resume, a pass's ``seconds`` count the last run's searches only.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kaldi_decoder
import numpy as np
import torch

from asr.atomic import atomic_path, torch_save
from asr.decode.decode_dir import (
    DEFAULT_JOBS,
    check_graph_matches_model,
    decode_data_dir,
    open_decode_inputs,
    open_graph_dir,
    resolve_lm_weights,
    wer_line,
)
from asr.decode.decoder import DecoderOptions, best_path, emission_scores
from asr.decode.journal import SearchJournal, decode_path, journal_key
from asr.decode.lm_weight import DEFAULT_LM_WEIGHT, format_lm_weight
from asr.errors import AsrError, ConfigError, InputError
from asr.gmm.diag_gmm import DiagGmmSet
from asr.gmm.fmllr import (
    FMLLR_MIN_COUNT,
    SpeakerTransforms,
    accumulate_fmllr_stats,
    apply_affine,
    compose_affine,
    estimate_fmllr,
)
from asr.gmm.model import GmmAcousticModel
from asr.graph.fst_io import read_graph
from asr.hmm.transition_model import TransitionModel
from asr.lang.symbol_table import SymbolTable
from asr.score import score_texts

logger = logging.getLogger(__name__)

FIRST_PASS_LM_WEIGHT = 12.0
DECODE_SILENCE_WEIGHT = 0.01
TRANS_FILE = "trans.pt"
STATE_DIR = ".fmllr_state"
STATE_FORMAT = "asr-fmllr-decode-state"


@dataclass(frozen=True)
class FmllrDecodeOptions:
    """Options of the adaptation in :func:`decode_fmllr`.

    Attributes:
        first_pass_lm_weight: LM weight of the first two searches (12).
        per_utt: adapt per utterance instead of per speaker.
        update_type: ``"full"`` or ``"diag"``; min_count: frames a speaker needs for a transform (500).
        silence_weight: weight of silence frames in the statistics (0.01, decode_fmllr.sh's).
    """

    first_pass_lm_weight: float = FIRST_PASS_LM_WEIGHT
    per_utt: bool = False
    update_type: str = "full"
    min_count: float = FMLLR_MIN_COUNT
    silence_weight: float = DECODE_SILENCE_WEIGHT


# ---------------------------------------------------------------------------------------------- search
_worker: tuple[Any, Any] | None = None


def _init_worker(hclg_path: str, options: DecoderOptions) -> None:
    global _worker
    hclg = read_graph(hclg_path)
    _worker = (hclg, kaldi_decoder.FasterDecoder(hclg, options.to_kaldi()))


def _search(decoder, transition_model: TransitionModel, scores: np.ndarray) -> tuple[list[int], np.ndarray | None]:
    emissions = emission_scores(scores, transition_model)
    if emissions.shape[0] == 0:
        return [], None
    decoder.decode(kaldi_decoder.DecodableCtc(emissions))
    path = best_path(decoder)
    if path is None:
        return [], None
    labels, words, _, _, _ = path
    tstates = np.asarray(labels, dtype=np.int64) - 1
    return words, tstates if len(tstates) == scores.shape[0] else None


def _search_in_worker(utt: str, scores: np.ndarray, transition_model: TransitionModel):
    assert _worker is not None
    return utt, *_search(_worker[1], transition_model, scores)


def search_with_alignments(
    hclg_path: str | os.PathLike,
    transition_model: TransitionModel,
    scores: Iterator[tuple[str, np.ndarray]],
    options: DecoderOptions,
    jobs: int = DEFAULT_JOBS,
) -> Iterator[tuple[str, list[int], np.ndarray | None]]:
    """Best paths of scaled score matrices: yields ``(utt, word ids, transition states per frame or None)`` in
    input order (None: no complete path). ``jobs > 1``: forked search processes, as ``decode_dir``."""
    hclg_path = os.fspath(hclg_path)
    if jobs <= 1:
        hclg = read_graph(hclg_path)
        decoder = kaldi_decoder.FasterDecoder(hclg, options.to_kaldi())
        for utt, s in scores:
            yield utt, *_search(decoder, transition_model, s)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(hclg_path, options)) as pool:
        pending: collections.deque = collections.deque()
        for utt, s in scores:
            pending.append(pool.apply_async(_search_in_worker, (utt, s, transition_model)))
            if len(pending) >= 2 * jobs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


# ---------------------------------------------------------------------------------------------- adaptation
class AdaptedModel:
    """A SAT model that scores each utterance on its speaker's fMLLR-transformed features, for
    :func:`asr.decode.decode_dir.decode_data_dir` (which passes only the archive rows: the utterance is found
    by the rows' digest).

    Args:
        model: the SAT model (its LDA+MLLT transform makes the speaker-independent features).
        rows: utterance -> its archive rows (those decode_data_dir will pass).
        adapted: utterance -> its adapted features.
    """

    def __init__(self, model: GmmAcousticModel, rows: Mapping[str, np.ndarray], adapted: Mapping[str, np.ndarray]):
        self.model = model
        self.feature_type = model.feature_type
        self.num_pdfs = model.num_pdfs
        self.transition_model = model.transition_model
        self.ctx_dep = model.ctx_dep
        self.gmm = model.gmm
        self._adapted = adapted
        self._by_digest: dict[bytes, str] = {}
        for utt, r in rows.items():
            key = _digest(r)
            other = self._by_digest.get(key)
            if other is not None and not np.array_equal(adapted[other], adapted[utt]):
                raise ConfigError(f"utterances {other!r} and {utt!r} have identical features but other transforms")
            self._by_digest[key] = utt

    def log_likelihoods(self, feats: np.ndarray) -> np.ndarray:
        """float32 ``[T, num_pdfs]`` of the utterance whose archive rows are ``feats``."""
        utt = self._by_digest.get(_digest(feats))
        if utt is None:
            raise ValueError("features of an utterance that was not adapted")
        with torch.no_grad():
            return self.gmm.log_likelihoods(torch.from_numpy(self._adapted[utt])).numpy().astype(np.float32)


def _digest(rows: np.ndarray) -> bytes:
    a = np.ascontiguousarray(rows, dtype=np.float32)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).digest()


def _estimate(
    gmm: DiagGmmSet,
    feats: Mapping[str, np.ndarray],
    paths: Mapping[str, np.ndarray | None],
    utt2spk: Mapping[str, str],
    speakers: Sequence[str],
    transition_model: TransitionModel,
    silence_phones: Sequence[int],
    options: FmllrDecodeOptions,
    *,
    posterior_gmm: DiagGmmSet | None = None,
) -> tuple[np.ndarray, Any]:
    """fMLLR of every speaker from the utterances' best paths; returns ``(W [S, d, d + 1], FmllrResult)``."""
    index = {s: i for i, s in enumerate(speakers)}
    utts = [u for u in feats if paths.get(u) is not None]
    if not utts:
        raise AsrError("no utterance has a first-pass path to adapt on")
    x = torch.from_numpy(np.concatenate([feats[u] for u in utts]))
    tstates = np.concatenate([paths[u] for u in utts])
    spk = np.concatenate([np.full(len(paths[u]), index[utt2spk[u]]) for u in utts])
    phones = transition_model.tstate_to_phone[tstates]
    weights = np.where(np.isin(phones, np.asarray(list(silence_phones))), options.silence_weight, 1.0)
    pdf_ids = torch.from_numpy(transition_model.tstate_to_pdf[tstates].astype(np.int64))
    stats = accumulate_fmllr_stats(
        gmm, x, pdf_ids, spk, len(speakers), weights, posterior_gmm=posterior_gmm, posterior_feats=x
    )
    result = estimate_fmllr(stats, update_type=options.update_type, min_count=options.min_count)
    return result.w, result


def decode_fmllr(
    graph_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    lm_weights: Sequence[float] = (DEFAULT_LM_WEIGHT,),
    lm_weight_source: str = "fixed",
    fmllr_options: FmllrDecodeOptions | None = None,
    decoder_options: DecoderOptions | None = None,
    jobs: int = DEFAULT_JOBS,
    skip_missing: bool = False,
    corpus: str | None = None,
    set_name: str | None = None,
    system: str | None = None,
) -> dict:
    """Two-pass fMLLR decoding of a data dir (see the module docstring); returns the results.json dict.

    Raises:
        InputError: a model without speaker adaptation, a graph of another model, missing features...
    """
    t_start = time.perf_counter()
    fmllr_options = fmllr_options or FmllrDecodeOptions()
    decoder_options = decoder_options or DecoderOptions()
    model_dir, data_path, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    model = GmmAcousticModel.load(model_dir)
    if model.info.get("adaptation") != "fmllr" or model.feature_transform is None:
        raise InputError("not a speaker-adapted (SAT) model: decode it with asr.decode.decode_dir", model_dir)
    alimdl = DiagGmmSet.load(model_dir / str(model.info["alignment_model"]))
    if alimdl.num_gauss != model.gmm.num_gauss or alimdl.dim != model.gmm.dim:
        raise InputError("the alignment model does not match the model Gaussian for Gaussian", model_dir)
    silence_phones = _silence_phones(model)
    graph = open_graph_dir(graph_dir)
    tm = model.transition_model
    check_graph_matches_model(graph, tm)
    inputs = open_decode_inputs(data_path, model.feature_type, skip_missing)
    rows = {u: inputs.archive.read(u) for u in inputs.utts}
    inputs.archive.close()
    utt2spk = {u: u for u in inputs.utts} if fmllr_options.per_utt else {u: inputs.data.utt2spk[u] for u in inputs.utts}
    speakers = sorted(set(utt2spk.values()))
    si = {u: model.feature_transform(r) for u, r in rows.items()}
    scale = 1.0 / fmllr_options.first_pass_lm_weight
    seconds: dict[str, float] = {}

    # resuming (see the module docstring): the state of the passes, keyed by the inputs and options
    state_dir = out_dir / STATE_DIR
    key_files = [graph.hclg_path, graph.path / "words.txt", inputs.archive.path, data_path / "text"]
    key_files.append(data_path / "utt2spk")
    key_options = {
        "fmllr": dataclasses.asdict(fmllr_options),
        "decoder": dataclasses.asdict(decoder_options),
        "skip_missing": skip_missing,
    }

    def state_key(**parts: Any) -> str:
        return journal_key(key_files, model_dir, {**key_options, **parts})

    def run_pass(gmm: DiagGmmSet, feats: Mapping[str, np.ndarray], name: str, key: str) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        journal = SearchJournal(state_dir / f"{name}.jsonl", key)
        done = _journal_records(journal, feats)
        journal.open({u: r for u, (r, _, _) in done.items()})
        found: dict[str, tuple[list[str], np.ndarray | None]] = {u: (w, p) for u, (_, w, p) in done.items()}

        def scores() -> Iterator[tuple[str, np.ndarray]]:
            for u in inputs.utts:
                if u in found:
                    continue
                with torch.no_grad():
                    ll = gmm.log_likelihoods(torch.from_numpy(feats[u])).numpy()
                yield u, (ll * np.float32(scale)).astype(np.float32)

        try:
            if len(found) < len(inputs.utts):
                for utt, words, tstates in search_with_alignments(graph.hclg_path, tm, scores(), decoder_options, jobs):
                    hyp = [graph.words.symbol(w) for w in words]
                    journal.append_path(utt, hyp, tstates)
                    found[utt] = (hyp, tstates)
        finally:
            journal.close()
        seconds[name] = round(time.perf_counter() - t0, 3)
        return {u: found[u][0] for u in inputs.utts}, {u: found[u][1] for u in inputs.utts}

    def estimate_step(step: int, key: str, estimate) -> _Estimate:
        """The saved estimate of this step (``trans_<step>.pt``), or ``estimate()`` (timed), saved."""
        path = state_dir / f"trans_{step}.pt"
        saved = _load_state(path, key, len(speakers), model.gmm.dim)
        if saved is not None:
            seconds[f"estimate_{step}"] = saved.seconds
            return saved
        t0 = time.perf_counter()
        w, est = estimate()
        result = _Estimate(np.asarray(w, dtype=np.float64), int(est.updated.sum()), float(est.gain_per_frame), 0.0)
        result.seconds = seconds[f"estimate_{step}"] = round(time.perf_counter() - t0, 3)
        _save_state(path, key, result)
        return result

    index = {s: i for i, s in enumerate(speakers)}
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # 1. speaker-independent pass
        hyps1, paths1 = run_pass(alimdl, si, "first_pass", state_key(step="first_pass"))
        score1 = score_texts(inputs.refs, hyps1)
        logger.info(
            "first pass (speaker-independent, LM weight %g): %s", fmllr_options.first_pass_lm_weight, score1.summary()
        )
        # 2. first transforms: alignment model's posteriors, adapted model's Gaussians
        est1 = estimate_step(
            1,
            state_key(step="trans_1"),
            lambda: _estimate(
                model.gmm, si, paths1, utt2spk, speakers, tm, silence_phones, fmllr_options, posterior_gmm=alimdl
            ),
        )
        w1, digest1 = est1.w, _transforms_digest(est1.w)
        adapted = {u: apply_affine(w1[index[utt2spk[u]]], f) for u, f in si.items()}
        # 3. adapted pass, second estimate on the adapted features, composed
        hyps2, paths2 = run_pass(model.gmm, adapted, "second_pass", state_key(step="second_pass", trans_1=digest1))
        score2 = score_texts(inputs.refs, hyps2)
        logger.info("second pass (adapted, LM weight %g): %s", fmllr_options.first_pass_lm_weight, score2.summary())

        def estimate_final() -> tuple[np.ndarray, Any]:
            w2, est = _estimate(model.gmm, adapted, paths2, utt2spk, speakers, tm, silence_phones, fmllr_options)
            return np.stack([compose_affine(w2[s], w1[s]) for s in range(len(speakers))]), est

        est2 = estimate_step(2, state_key(step="trans_2", trans_1=digest1), estimate_final)
        final = SpeakerTransforms(model.gmm.dim, {spk: est2.w[s] for s, spk in enumerate(speakers)})
        adapted = {u: apply_affine(final.matrices[utt2spk[u]], f) for u, f in si.items()}
    finally:
        torch.set_num_threads(torch_threads)
    fmllr_seconds = time.perf_counter() - t_start
    final.save(out_dir / TRANS_FILE)  # complete before results.json, which marks the decode as done
    fmllr_fields = {
        "first_pass_lm_weight": fmllr_options.first_pass_lm_weight,
        "per_utt": fmllr_options.per_utt,
        "update_type": fmllr_options.update_type,
        "min_count": fmllr_options.min_count,
        "silence_weight": fmllr_options.silence_weight,
        "speakers": len(speakers),
        "speakers_updated": [est1.updated, est2.updated],
        "objf_gain_per_frame": [round(est1.gain_per_frame, 6), round(est2.gain_per_frame, 6)],
        "first_pass": _score_fields(score1),
        "second_pass": _score_fields(score2),
        "seconds": seconds,
    }
    # 4. final decode with the LM-weight sweep (resumable: its journal's key has the final transforms' digest)
    results = decode_data_dir(
        graph_dir,
        model_dir,
        data_path,
        out_dir,
        lm_weights=lm_weights,
        lm_weight_source=lm_weight_source,
        decoder_options=decoder_options,
        jobs=jobs,
        skip_missing=skip_missing,
        corpus=corpus,
        set_name=set_name,
        system=system,
        model=AdaptedModel(model, rows, adapted),
        resumable=True,
        journal_extra={"fmllr_state": state_key(), "transforms": _transforms_digest(est2.w)},
        extra_fields={"fmllr": fmllr_fields, "fmllr_seconds": round(fmllr_seconds, 3)},
        started=t_start,
    )
    shutil.rmtree(state_dir, ignore_errors=True)
    return results


@dataclass
class _Estimate:
    """One estimation step's outcome: the transforms ``w`` (float64 [S, d, d + 1]; the final step's are composed
    with the first ones), speakers updated, objective gain per frame, seconds it took."""

    w: np.ndarray
    updated: int
    gain_per_frame: float
    seconds: float


def _transforms_digest(w: np.ndarray) -> str:
    a = np.ascontiguousarray(w, dtype=np.float64)
    return hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()


def _save_state(path: Path, key: str, est: _Estimate) -> None:
    """Write an estimation step's outcome atomically (tensors and plain values: ``weights_only`` loadable)."""
    state = {
        "format": STATE_FORMAT,
        "key": key,
        "w": torch.from_numpy(np.ascontiguousarray(est.w, dtype=np.float64)),
        "updated": int(est.updated),
        "gain_per_frame": float(est.gain_per_frame),
        "seconds": float(est.seconds),
    }
    with atomic_path(path) as tmp:
        torch_save(state, tmp)


def _load_state(path: Path, key: str, num_speakers: int, dim: int) -> _Estimate | None:
    """The outcome :func:`_save_state` wrote at ``path`` for ``key``; None when there is none, it was written for
    other inputs or options, or it cannot be read (then it is redone)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("key") != key:
            logger.info("discarding %s: it was written for other inputs or options", path)
            return None
        w = state["w"].numpy()
        est = _Estimate(w, int(state["updated"]), float(state["gain_per_frame"]), float(state["seconds"]))
    except Exception as err:  # noqa: BLE001 (any unreadable state is redone)
        logger.warning("discarding %s: cannot read it (%s)", path, err)
        return None
    if w.dtype != np.float64 or w.shape != (num_speakers, dim, dim + 1):
        logger.warning(
            "discarding %s: transforms of shape %s, expected %s", path, w.shape, (num_speakers, dim, dim + 1)
        )
        return None
    logger.info("resuming the fMLLR decode: reusing the transforms of %s", path)
    return est


def _journal_records(
    journal: SearchJournal, feats: Mapping[str, np.ndarray]
) -> dict[str, tuple[dict, list[str], np.ndarray | None]]:
    """The usable records of a pass's journal: utt -> (record, words, per-frame transition states or None);
    records of other utterances or with a malformed path (or one of another length) are left out (redone)."""
    done = {}
    for utt, record in journal.load().items():
        if utt not in feats:
            continue
        try:
            words = [str(w) for w in record["words"]]
            path = decode_path(record["path"])
        except (KeyError, TypeError, ValueError):
            continue
        if path is not None and len(path) != feats[utt].shape[0]:
            continue
        done[utt] = (record, words, path)
    return done


def _score_fields(score) -> dict:
    return {
        "wer": round(score.wer, 4),
        "ins": score.ins,
        "del": score.dels,
        "sub": score.sub,
        "words": score.words,
    }


def _silence_phones(model: GmmAcousticModel) -> list[int]:
    """Silence phone ids of the model's lang (``phones/silence.int`` or the silence phones in model.json's
    lang dir); falls back to SIL and SPN of the model's phones.txt."""
    from asr.lang.lang_dir import Lang

    lang_dir = model.info.get("lang")
    if lang_dir and Path(lang_dir).is_dir():
        try:
            return list(Lang.load(lang_dir).silence_phones)
        except AsrError:
            pass
    phones = SymbolTable.read(model.model_dir / "phones.txt")
    return [phones.id(p) for p in ("SIL", "SPN") if p in phones]


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.decode.decode_fmllr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", required=True, help="graph directory (HCLG.fst, words.txt)")
    parser.add_argument("--model", required=True, help="SAT model directory (python -m asr.gmm.train_sat)")
    parser.add_argument("--data", required=True, help="data directory (text, utt2spk, <feature_type>.h5)")
    parser.add_argument("--out", required=True, help="decode directory to write")
    weight = parser.add_mutually_exclusive_group()
    weight.add_argument("--lm-weight", type=float, default=None, help=f"LM weight (default {DEFAULT_LM_WEIGHT:g})")
    weight.add_argument("--lm-weights", default=None, help="sweep, e.g. 7:17; selects the best on this set")
    weight.add_argument("--lm-weight-from", default=None, help="results.json of a dev decode: use its weight")
    parser.add_argument("--first-pass-lm-weight", type=float, default=FIRST_PASS_LM_WEIGHT, help="default 12")
    parser.add_argument("--per-utt", action="store_true", help="adapt per utterance, not per speaker")
    parser.add_argument("--update-type", default="full", choices=["full", "diag"])
    parser.add_argument("--min-count", type=float, default=FMLLR_MIN_COUNT, help="frames for a transform (500)")
    parser.add_argument("--silence-weight", type=float, default=DECODE_SILENCE_WEIGHT, help="default 0.01")
    parser.add_argument("--beam", type=float, default=DecoderOptions.beam, help="search beam (default %(default)g)")
    parser.add_argument("--max-active", type=int, default=DecoderOptions.max_active, help="default %(default)d")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="search processes (default %(default)d)")
    parser.add_argument("--skip-missing", action="store_true", help="skip utterances without features")
    args = parser.parse_args(argv)
    setup_logging()
    out = Path(args.out)
    handler = None
    try:
        weights, source = resolve_lm_weights(args.lm_weight, None, args.lm_weights, args.lm_weight_from)
        (out / "log").mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "log" / "decode.log", mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        logger.info("command: %s", " ".join(sys.argv))
        results = decode_fmllr(
            args.graph,
            args.model,
            args.data,
            out,
            lm_weights=weights,
            lm_weight_source=source,
            fmllr_options=FmllrDecodeOptions(
                first_pass_lm_weight=args.first_pass_lm_weight,
                per_utt=args.per_utt,
                update_type=args.update_type,
                min_count=args.min_count,
                silence_weight=args.silence_weight,
            ),
            decoder_options=DecoderOptions(beam=args.beam, max_active=args.max_active),
            jobs=args.jobs,
            skip_missing=args.skip_missing,
        )
    except AsrError as err:
        sys.exit(f"error: {err}")
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    print(wer_line(results, out))
    first = results["fmllr"]["first_pass"]
    first_weight = format_lm_weight(args.first_pass_lm_weight)
    print(f"  first pass (speaker-independent, LM weight {first_weight}): %WER {first['wer']:.2f}")
    if "wer_by_lm_weight" in results:
        at_default = results["wer_by_lm_weight"].get(format_lm_weight(DEFAULT_LM_WEIGHT))
        if at_default is not None:
            print(f"  at LM weight {DEFAULT_LM_WEIGHT:g}: %WER {at_default['wer']:.2f}")


if __name__ == "__main__":
    main()
