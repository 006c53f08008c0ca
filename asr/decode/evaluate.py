"""Evaluate a trained acoustic model the way the recipes do: graph, dev decode with an LM weight sweep, test
decode at the weight dev picked; and the same for the GMM baseline when its decodes are missing.

This is what ``python -m asr.train`` runs once DNN training is complete (``decode`` config group), so that one
command goes from features to a GMM-vs-DNN table. The hybrid DNN reuses the GMM's graph: the network's outputs
are the GMM tree's senones (pdf-ids) under the same transition model, so HCLG is the same
(:func:`asr.decode.decode_dir.check_graph_matches_model` verifies it).

Rules (Kaldi's ``local/score.sh`` discipline):

- the tuning set (``tune_set``, normally the corpus' dev set) is decoded at every weight of ``lm_weights`` and
  the one with the lowest WER on it is selected;
- every other set is decoded at the weight its own model's tuning-set decode selected (never tuned on test);
- with no tuning set (e.g. yes/no, which has no dev set) every set is decoded at ``lm_weight``.

Decodes are cached: ``<model_dir>/decode_<set>/results.json`` newer than the model's ``model.json`` is reused
(delete it, or pass ``force``, to decode again).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asr.decode.acoustic_model import load_acoustic_model
from asr.decode.decode_dir import DEFAULT_JOBS, decode_data_dir, resolve_lm_weights, wer_line
from asr.decode.decoder import DecoderOptions
from asr.errors import ConfigError
from asr.files import read_json
from asr.graph.mkgraph import HCLG_NAME, mkgraph
from asr.nnet.model import resolve_device

logger = logging.getLogger(__name__)


@dataclass
class EvaluationOptions:
    """How to decode the sets of a corpus.

    Attributes:
        sets: set names under the corpus data dir, decoded in this order (a set without a directory is skipped
            with a log line).
        tune_set: the set the LM weight is picked on (None: no tuning, every set at ``lm_weight``).
        lm_weights: the sweep on ``tune_set``, e.g. ``"7:17"``.
        lm_weight: the weight used when there is no tuning set.
        beam, max_active: search pruning.
        jobs: search processes.
        device: torch device for DNN likelihoods (``"auto"``: the GPU when there is one).
        skip_missing: decode a set whose feature archive lacks some utterances (audio the feature extractor
            skipped as bad): they are scored as deletions and listed in results.json. False: an error.
    """

    sets: list[str] = field(default_factory=lambda: ["dev", "test"])
    tune_set: str | None = "dev"
    lm_weights: str = "7:17"
    lm_weight: float = 10.0
    beam: float = DecoderOptions.beam
    max_active: int = DecoderOptions.max_active
    jobs: int = DEFAULT_JOBS
    device: str = "auto"
    skip_missing: bool = False


def ensure_graph(lang_test: str | os.PathLike, model_dir: str | os.PathLike, graph_dir: str | os.PathLike) -> Path:
    """``graph_dir`` with an up-to-date ``HCLG.fst`` for ``model_dir`` and the lang dir ``lang_test`` (built by
    :func:`asr.graph.mkgraph.mkgraph` when missing or stale; mkgraph itself skips an up-to-date graph).

    Raises:
        ConfigError: the graph is missing and no ``lang_test`` is configured.
    """
    graph_dir = Path(graph_dir)
    if not lang_test:
        if (graph_dir / HCLG_NAME).is_file():
            return graph_dir
        raise ConfigError(f"no graph {graph_dir / HCLG_NAME} and no lang dir (corpus.lang_test) to build it from")
    return mkgraph(lang_test, model_dir, graph_dir)


def _cached(out_dir: Path, model_dir: Path) -> dict | None:
    results = out_dir / "results.json"
    model_json = model_dir / "model.json"
    if results.is_file() and model_json.is_file() and results.stat().st_mtime >= model_json.stat().st_mtime:
        return read_json(results)
    return None


def decode_sets(
    graph_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    options: EvaluationOptions,
    corpus: str | None = None,
    force: bool = False,
) -> dict[str, dict]:
    """Decode ``<data_root>/<set>`` for every set of ``options`` into ``<model_dir>/decode_<set>``.

    Args:
        graph_dir: the HCLG graph dir (made for this model's tree and transition model).
        model_dir: an acoustic model dir (GMM or DNN).
        data_root: the corpus data dir holding one data dir per set.
        options: sets, LM weight rule, pruning, jobs, device.
        corpus: the corpus name for results.json.
        force: decode even when a results.json newer than the model exists.

    Returns:
        ``{set: results.json dict}`` for the sets decoded (or reused).
    """
    model_dir, data_root = Path(model_dir), Path(data_root)
    sets = [s for s in options.sets if s]
    if options.tune_set and options.tune_set in sets:  # the tuning set first: the others use its weight
        sets.remove(options.tune_set)
        sets.insert(0, options.tune_set)
    decoder_options = DecoderOptions(beam=options.beam, max_active=options.max_active)
    model = None
    out: dict[str, dict] = {}
    for set_name in sets:
        data_dir = data_root / set_name
        if not (data_dir / "text").is_file():
            logger.info("no data dir %s: set %s not decoded", data_dir, set_name)
            continue
        out_dir = model_dir / f"decode_{set_name}"
        if not force and (results := _cached(out_dir, model_dir)) is not None:
            logger.info("reusing %s", wer_line(results, out_dir))
            out[set_name] = results
            continue
        tune_results = model_dir / f"decode_{options.tune_set}" / "results.json"
        if set_name == options.tune_set:
            weights, source = resolve_lm_weights(lm_weights=options.lm_weights)
        elif options.tune_set and tune_results.is_file():
            weights, source = resolve_lm_weights(lm_weight_from=tune_results)
        else:
            weights, source = resolve_lm_weights(lm_weight=options.lm_weight)
        adaptation = read_json(model_dir / "model.json").get("adaptation")
        if adaptation:
            raise ConfigError(
                f"{model_dir} is a speaker-adapted ({adaptation}) model: decode {data_dir} with two-pass decoding "
                f"(python -m asr.decode.decode_fmllr --graph {graph_dir} --model {model_dir} --data {data_dir} "
                f"--out {out_dir}), then run this again"
            )
        if model is None:
            model = load_acoustic_model(model_dir, device=str(resolve_device(options.device)))
        results = decode_data_dir(
            graph_dir, model_dir, data_dir, out_dir,
            lm_weights=weights, lm_weight_source=source, decoder_options=decoder_options, jobs=options.jobs,
            corpus=corpus, set_name=set_name, model=model, skip_missing=options.skip_missing, resumable=True,
        )  # fmt: skip
        logger.info("%s", wer_line(results, out_dir))
        out[set_name] = results
    return out


def evaluate_against_gmm(
    dnn_dir: str | os.PathLike,
    gmm_dir: str | os.PathLike,
    graph_dir: str | os.PathLike,
    lang_test: str | os.PathLike | None,
    data_root: str | os.PathLike,
    options: EvaluationOptions,
    corpus: str | None = None,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Decode the GMM baseline (where its decodes are missing) and the DNN on the same graph and sets.

    Returns:
        ``(gmm results by set, dnn results by set)``.
    """
    graph_dir = ensure_graph(lang_test, gmm_dir, graph_dir)
    gmm = decode_sets(graph_dir, gmm_dir, data_root, options, corpus)
    dnn = decode_sets(graph_dir, dnn_dir, data_root, options, corpus)
    return gmm, dnn


def parse_evaluation_options(section: dict, corpus_sets: Sequence[str | None] = ()) -> EvaluationOptions:
    """:class:`EvaluationOptions` from the ``decode`` config section (unknown keys: ConfigError).

    Keys used here: sets, tune_set, lm_weights, lm_weight, beam, max_active, jobs, device, skip_missing; ``graph``,
    ``enabled`` and ``bundle`` belong to the caller. ``corpus_sets``: the sets used when ``sets`` is empty.
    """
    known = {"sets", "tune_set", "lm_weights", "lm_weight", "beam", "max_active", "jobs", "device", "skip_missing"}
    extra = set(section) - known - {"graph", "enabled", "bundle"}
    if extra:
        raise ConfigError(f"decode: unknown option(s) {', '.join(sorted(extra))}; known: {', '.join(sorted(known))}")
    values = {k: v for k, v in section.items() if k in known}
    if not values.get("sets"):
        values["sets"] = [s for s in corpus_sets if s]
    values["sets"] = [str(s) for s in values["sets"] if s]
    try:
        options = EvaluationOptions(**values)
        options.lm_weight, options.beam = float(options.lm_weight), float(options.beam)
        options.max_active, options.jobs = int(options.max_active), int(options.jobs)
        if not isinstance(options.skip_missing, bool):
            raise TypeError(f"skip_missing must be true or false, not {options.skip_missing!r}")
    except (TypeError, ValueError) as err:
        raise ConfigError(f"decode: {err}") from None
    return options
