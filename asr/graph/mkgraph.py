"""Build a graph directory from a lang directory (with ``G.fst``) and a model directory (Kaldi's ``mkgraph.sh``).

CLI::

    python -m asr.graph.mkgraph --lang data/an4/lang_test_tg --model exp/an4/tri1 --out exp/an4/tri1/graph_tg \\
        [--transition-scale 1.0] [--self-loop-scale 0.1] [--force]

Reads from the model directory (the team's GMM interface): ``model.json`` (its ``"phones"`` entry names
the lang's ``phones.txt`` the model was trained with; a ``phones.txt`` inside the model dir takes
precedence), ``tree.json`` (context dependency) and ``transition_model.json``. The model's phone table
must equal the lang's (same symbols, same ids): a graph built over another phone set would silently map
the wrong HMMs, so a mismatch is refused with a message naming both files.

Writes into ``--out`` (each file atomically; ``graph.json`` last, so a graph dir with ``graph.json`` is
complete):

- ``HCLG.fst``: input labels transition-state id + 1, output labels word ids (:func:`asr.graph.hclg.make_hclg`,
  transition scale 1.0 and self-loop scale 0.1 by default, as Kaldi);
- ``words.txt``, ``phones.txt``: copies of the lang's tables (the decoder maps word ids with ``words.txt``);
- ``graph_stats.json``: :func:`asr.graph.stats.graph_stats` plus ``num_transition_states`` and build time;
- ``graph.json``: provenance (lang and model dirs, options, the sha256 of every input file, the
  model's transition-state set). A run whose inputs and options hash the same as the existing
  ``graph.json`` is skipped (``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.atomic import atomic_path, atomic_write
from asr.errors import AsrError, InputError
from asr.files import file_sha256
from asr.graph.fst_io import write_graph
from asr.graph.hclg import GraphBuildError, GraphOptions, make_hclg
from asr.graph.stats import graph_stats
from asr.hmm.transition_model import ContextDependency, TransitionModel
from asr.hmm.tree import load_context_dependency
from asr.lang.lang_dir import Lang
from asr.lang.phones import is_disambig
from asr.lang.symbol_table import SymbolTable

logger = logging.getLogger(__name__)

GRAPH_FORMAT = "asr-graph-dir"
GRAPH_FORMAT_VERSION = 1
HCLG_NAME = "HCLG.fst"
GRAPH_INFO_NAME = "graph.json"
GRAPH_STATS_NAME = "graph_stats.json"


def transition_states_sha256(transition_model: TransitionModel) -> str:
    """Hex sha256 of the transition-state tuples ``(phone, hmm_state, pdf_id)``: the graph's label set.

    Two transition models with the same hash give the same meaning to every graph input label (their
    probabilities may differ), so a graph built with one can be decoded with the other.
    """
    return hashlib.sha256(transition_model.transition_states.astype("<i4").tobytes()).hexdigest()


def read_model_json(model_dir: str | os.PathLike) -> dict:
    """Read ``<model_dir>/model.json`` (InputError naming the file when missing or malformed)."""
    path = Path(model_dir) / "model.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"cannot read model description: {err.strerror}", path) from None
    except UnicodeDecodeError as err:  # found by fuzzing bundles
        raise InputError(f"model description is not UTF-8 ({err.reason} at byte {err.start})", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
    if not isinstance(data, dict):
        raise InputError("model.json must hold a JSON object", path)
    return data


def model_phones_path(model_dir: str | os.PathLike, model_json: dict | None = None) -> Path:
    """The phone table a model was trained with: ``<model_dir>/phones.txt`` if present, else model.json's
    ``"phones"`` (a path, tried as given and then relative to the model dir). InputError when none exists."""
    model_dir = Path(model_dir)
    own = model_dir / "phones.txt"
    if own.is_file():
        return own
    info = read_model_json(model_dir) if model_json is None else model_json
    named = info.get("phones")
    if not named or not isinstance(named, str):
        raise InputError('model.json has no "phones" entry (the phones.txt the model was trained with)', model_dir)
    for candidate in (Path(named), model_dir / named):
        if candidate.is_file():
            return candidate
    raise InputError(
        f'the phones.txt named by model.json ("phones": {named!r}) does not exist', model_dir / "model.json"
    )


def check_phones_match(model_phones: str | os.PathLike, lang_phones: str | os.PathLike) -> None:
    """Raise InputError unless the two ``phones.txt`` files hold the same symbols with the same ids."""
    a, b = SymbolTable.read(model_phones), SymbolTable.read(lang_phones)
    if a == b:
        return
    only_model = sorted(s for s, _ in a if s not in b)
    only_lang = sorted(s for s, _ in b if s not in a)
    moved = sorted(s for s, i in a if s in b and b.id(s) != i)
    details = []
    if only_model:
        details.append(f"only in the model's: {only_model[:10]}")
    if only_lang:
        details.append(f"only in the lang's: {only_lang[:10]}")
    if moved:
        details.append(f"different ids: {moved[:10]}")
    raise InputError(
        f"the model's phone table {os.fspath(model_phones)} differs from the lang's ({'; '.join(details)}): "
        "the model was trained with another lang directory; build the graph from a lang with the same phones.txt",
        lang_phones,
    )


@dataclass
class GraphModel:
    """What graph building needs from a model directory."""

    model_dir: Path
    info: dict
    ctx_dep: ContextDependency
    transition_model: TransitionModel
    phones_path: Path
    input_files: dict[str, Path]


def load_graph_model(model_dir: str | os.PathLike) -> GraphModel:
    """Read ``model.json``, ``tree.json`` and ``transition_model.json`` of a model directory.

    Falls back to :func:`asr.decode.acoustic_model.load_acoustic_model` (which loads the whole model) for a
    model dir without ``tree.json`` / ``transition_model.json``.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model directory not found", model_dir)
    info = read_model_json(model_dir)
    tree_path, tm_path = model_dir / "tree.json", model_dir / "transition_model.json"
    if tree_path.is_file() and tm_path.is_file():
        ctx_dep = load_context_dependency(tree_path)
        transition_model = TransitionModel.load(tm_path)
        files = {"tree": tree_path, "transition_model": tm_path}
    else:
        from asr.decode.acoustic_model import load_acoustic_model

        model = load_acoustic_model(model_dir)
        ctx_dep, transition_model = model.ctx_dep, model.transition_model
        files = {"model": model_dir / "model.json"}
    if int(transition_model.num_pdfs) != int(ctx_dep.num_pdfs):
        raise InputError(
            f"transition model has {transition_model.num_pdfs} pdfs, the context dependency {ctx_dep.num_pdfs}",
            tm_path,
        )
    return GraphModel(model_dir, info, ctx_dep, transition_model, model_phones_path(model_dir, info), files)


def check_model_covers_lang(transition_model: TransitionModel, lang: Lang) -> None:
    """Raise InputError unless every real phone of the lang has an HMM in the model's topology."""
    real = sorted(i for s, i in lang.phones if i != 0 and not is_disambig(s))
    missing = [lang.phones.symbol(p) for p in real if p not in transition_model.topology]
    if missing:
        raise InputError(f"the model's topology has no HMM for phones {missing}", lang.dir / "phones.txt")


def _inputs_fingerprint(lang_dir: Path, model: GraphModel, options: GraphOptions) -> dict:
    files = {
        "L_disambig.fst": lang_dir / "L_disambig.fst",
        "G.fst": lang_dir / "G.fst",
        "phones.txt": lang_dir / "phones.txt",
        "words.txt": lang_dir / "words.txt",
        "phones/disambig.int": lang_dir / "phones" / "disambig.int",
        **{f"model:{k}": p for k, p in model.input_files.items()},
    }
    return {
        "format": GRAPH_FORMAT,
        "version": GRAPH_FORMAT_VERSION,
        "options": asdict(options),
        "sha256": {name: file_sha256(path) for name, path in files.items()},
    }


def read_graph_info(graph_dir: str | os.PathLike) -> dict:
    """Read ``graph.json`` of a graph directory (InputError when missing or malformed)."""
    path = Path(graph_dir) / GRAPH_INFO_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"not a graph directory (run python -m asr.graph.mkgraph): {err.strerror}", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
        raise InputError(f"not a {GRAPH_FORMAT} description", path)
    return data


def graph_up_to_date(out_dir: str | os.PathLike, fingerprint: dict) -> bool:
    """True when ``out_dir`` holds a complete graph built from inputs with this fingerprint."""
    out_dir = Path(out_dir)
    if not (out_dir / HCLG_NAME).is_file() or not (out_dir / "words.txt").is_file():
        return False
    try:
        info = read_graph_info(out_dir)
    except InputError:
        return False
    return info.get("inputs") == fingerprint


def mkgraph(
    lang_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: GraphOptions | None = None,
    force: bool = False,
) -> Path:
    """Build ``<out_dir>/HCLG.fst`` (and the files of the module docstring); return ``out_dir``.

    Args:
        lang_dir: a lang directory with ``G.fst`` (e.g. ``data/an4/lang_test_tg``).
        model_dir: a model directory (``model.json``, ``tree.json``, ``transition_model.json``).
        out_dir: the graph directory to write.
        options: graph options (transition / self-loop scales, determinization bound); default GraphOptions().
        force: rebuild even if ``out_dir`` is up to date.

    Raises:
        InputError: missing lang/model files, a lang without ``G.fst``, a phone table that differs
            from the model's, phones without an HMM in the model.
        GraphBuildError: determinization blew past ``options.max_states``.
    """
    lang_dir, model_dir, out_dir = Path(lang_dir), Path(model_dir), Path(out_dir)
    options = options or GraphOptions()
    lang = Lang.load(lang_dir)
    if not (lang_dir / "G.fst").is_file():
        raise InputError("the lang directory has no G.fst (make one with python -m asr.lang.grammar)", lang_dir)
    model = load_graph_model(model_dir)
    check_phones_match(model.phones_path, lang_dir / "phones.txt")
    check_model_covers_lang(model.transition_model, lang)
    fingerprint = _inputs_fingerprint(lang_dir, model, options)
    if not force and graph_up_to_date(out_dir, fingerprint):
        logger.info("%s is up to date (use --force to rebuild)", out_dir / HCLG_NAME)
        return out_dir
    t0 = time.perf_counter()
    tm = model.transition_model
    hclg = make_hclg(
        lang.L_disambig,
        lang.G,
        tm,
        model.ctx_dep,
        lang.disambig_phone_ids,
        [lang.word_disambig_id],
        options,
    )
    seconds = time.perf_counter() - t0
    stats = graph_stats(hclg)
    if stats.max_ilabel > tm.num_transition_states:  # make_hclg checks this too; never write a bad graph
        raise AsrError(f"graph input label {stats.max_ilabel} > {tm.num_transition_states} transition states")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GRAPH_INFO_NAME).unlink(missing_ok=True)  # the dir is incomplete until graph.json is back
    write_graph(hclg, out_dir / HCLG_NAME)
    for name in ("words.txt", "phones.txt"):
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(lang_dir / name, tmp)
    stats_json = {
        **stats.to_dict(),
        "num_transition_states": tm.num_transition_states,
        "num_pdfs": tm.num_pdfs,
        "build_seconds": round(seconds, 3),
    }
    with atomic_write(out_dir / GRAPH_STATS_NAME) as f:
        json.dump(stats_json, f, indent=2)
        f.write("\n")
    info = {
        "format": GRAPH_FORMAT,
        "version": GRAPH_FORMAT_VERSION,
        "lang": os.fspath(lang_dir),
        "model": os.fspath(model_dir),
        "model_name": model.info.get("name"),
        "context_width": int(model.ctx_dep.context_width),
        "num_transition_states": tm.num_transition_states,
        "num_pdfs": tm.num_pdfs,
        "transition_states_sha256": transition_states_sha256(tm),
        "inputs": fingerprint,
    }
    with atomic_write(out_dir / GRAPH_INFO_NAME) as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    logger.info(
        "wrote %s: %d states, %d arcs, max ilabel %d of %d transition states, %.1f s",
        out_dir / HCLG_NAME,
        stats.num_states,
        stats.num_arcs,
        stats.max_ilabel,
        tm.num_transition_states,
        seconds,
    )
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m asr.graph.mkgraph",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--lang", required=True, help="lang directory with G.fst (e.g. data/an4/lang_test_tg)")
    parser.add_argument("--model", required=True, help="model directory (e.g. exp/an4/tri1)")
    parser.add_argument("--out", required=True, help="graph directory to write (e.g. exp/an4/tri1/graph_tg)")
    parser.add_argument(
        "--transition-scale", type=float, default=GraphOptions.transition_scale, help="default %(default)g"
    )
    parser.add_argument(
        "--self-loop-scale", type=float, default=GraphOptions.self_loop_scale, help="default %(default)g"
    )
    parser.add_argument(
        "--max-states", type=int, default=GraphOptions.max_states, help="determinization bound (default %(default)d)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the graph is up to date")
    parser.add_argument("--verbose", action="store_true", help="log FST sizes of every step")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    options = GraphOptions(
        transition_scale=args.transition_scale, self_loop_scale=args.self_loop_scale, max_states=args.max_states
    )
    try:
        mkgraph(args.lang, args.model, args.out, options, force=args.force)
    except (AsrError, GraphBuildError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
