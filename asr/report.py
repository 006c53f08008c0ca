"""Results tables: WER by number of hidden layers against the GMM baseline (the table of Zeiler et al. 2013).

CLI::

    python -m asr.report exp/an4 [more dirs...] [--set dev | --sets dev,test] [--baseline tri1] \\
        [--out exp/an4/report] [--title TEXT] [--paper]

Each DIR may be a decode dir (``results.json``), a model dir (``decode_<set>/results.json``), or any parent of
them, searched recursively (``exp/an4`` holds ``mono``, ``tri1`` and ``dnn/*``). A model dir is a directory with
``model.json`` (GMM or DNN) or with decodes. Partial sweeps work: a model dir without a decode of a set gets
"—" for it (and a log line); a DNN run dir still training (no ``model.json``, no decode) is skipped with a log
line. A ``results.json`` or ``model.json`` that cannot be read or lacks the score fields is an
:class:`~asr.errors.InputError` naming the file.

Rows: GMMs first (by context width, then name: mono, tri1, tri2...), then DNNs by depth, width and name.
Columns: system, kind, hidden layers, units per layer, parameters, senones, per set the WER in Kaldi's form
``8.63 [60/695, 10 ins, 7 del, 43 sub]`` and the relative change against the baseline
``(WER - WER_baseline) / WER_baseline * 100`` (negative = fewer errors), then the LM weight and RTF of each
set, the training time and the DNN's training frames/s. The baseline is ``--baseline NAME`` (a system or model
dir name) or the GMM with the lowest WER on the first set. Sets: ``--sets`` in that order, or every set found
(dev, test, then the others).

What a model is comes from ``results.json``'s ``model`` field, completed by ``<model dir>/model.json`` (the
model dir is the decode dir's parent, or ``results.json``'s ``model_dir``). A GMM's parameter count is
``Gaussians * (2 * dim + 1)`` (means, diagonal variances, weights).

Outputs (each written atomically): ``<PREFIX>.md`` (the table and footnotes: sets, baseline and sign
convention, how the LM weight was chosen), ``<PREFIX>.csv`` (one row per system, one group of columns per set,
raw numbers), ``<PREFIX>.png`` (WER against hidden layers on a log2 axis, one line per set, the baseline as a
dashed line per set; ``--paper`` adds the paper's numbers, faint, on a secondary axis). ``PREFIX`` defaults to
``<the DIRs' common parent>/report``. The Markdown is printed too.

From Python: :func:`collect_rows`, :func:`markdown_table`, :func:`write_report`, and :func:`comparison_table`
(the short GMM-vs-DNN table ``python -m asr.train`` prints).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.atomic import atomic_path, atomic_write
from asr.decode.lm_weight import format_lm_weight
from asr.errors import AsrError, ConfigError, InputError
from asr.files import read_json

logger = logging.getLogger("asr.report")  # the same name under python -m

RESULTS_JSON = "results.json"
MODEL_JSON = "model.json"
DECODE_PREFIX = "decode_"
# Sub-directories of a run dir that never hold model or decode dirs: not searched.
SKIP_DIRS = frozenset({"checkpoints", "tensorboard", "log", "logs", "__pycache__"})
# Files that mark a DNN (or GMM) run dir whose training has started.
BUNDLE_MARKER = "bundle.json"
RUN_MARKERS = ("train_log.json", "checkpoints", "config.resolved.yaml")
# Zeiler et al. (ICASSP 2013), WER (%) by number of hidden layers, and their GMM baseline.
PAPER_WER = {1: 16.0, 2: 12.8, 4: 11.4, 8: 10.9, 12: 11.1}
PAPER_GMM_WER = 15.4
DEPTH_TICKS = (1, 2, 4, 8, 12)
FIGSIZE = (7.0, 4.5)  # inches
DPI = 120  # the PNG is FIGSIZE * DPI pixels: 840 x 540
MISSING = "—"


# ------------------------------------------------------------------------------------------------ rows
@dataclass
class SetResult:
    """The score of one system on one set, from one ``results.json``.

    ``wer``, ``ser`` in percent; ``lm_weight`` the weight the hypotheses were taken at and
    ``lm_weight_selection`` how it was chosen (``"best on this set"``, ``"from <dev results.json>"``,
    ``"fixed"``); ``lm_weights_swept`` the weights of a sweep; ``notes`` what makes the WER special (utterances
    without features or hypotheses, scored as deletions).
    """

    set_name: str
    wer: float
    words: int
    ins: int
    dels: int
    sub: int
    path: Path
    ser: float | None = None
    utts: int | None = None
    lm_weight: float | None = None
    lm_weight_selection: str | None = None
    lm_weights_swept: list[float] = field(default_factory=list)
    rtf: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.sub

    def kaldi(self) -> str:
        """``8.63 [60/695, 10 ins, 7 del, 43 sub]``."""
        return f"{self.wer:.2f} [{self.errors}/{self.words}, {self.ins} ins, {self.dels} del, {self.sub} sub]"


@dataclass
class ReportRow:
    """One system (a model dir) and its results by set name.

    ``kind`` is ``"gmm"``, ``"dnn"`` or ``"unknown"``; ``depth``/``width`` (hidden layers, units per layer),
    ``num_params`` (for a GMM: Gaussians * (2 * dim + 1)), ``train_seconds`` and ``frames_per_second`` come from
    ``results.json``'s ``model`` field or ``model.json``, None when unknown.
    """

    system: str
    kind: str
    model_dir: Path | None
    results: dict[str, SetResult] = field(default_factory=dict)
    corpus: str | None = None
    depth: int | None = None
    width: int | None = None
    num_params: int | None = None
    num_pdfs: int | None = None
    num_gauss: int | None = None
    context_width: int | None = None
    train_seconds: float | None = None
    frames_per_second: float | None = None
    epochs: int | None = None

    def wer(self, set_name: str) -> float | None:
        """The WER on ``set_name``, None when not decoded."""
        result = self.results.get(set_name)
        return None if result is None else result.wer

    @property
    def kind_label(self) -> str:
        return {"gmm": "GMM", "dnn": "DNN"}.get(self.kind, self.kind)


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def row_sort_key(row: ReportRow) -> tuple:
    """GMMs (by context width, then name), then DNNs (by depth, width, name), then anything else (by name)."""
    rank = {"gmm": 0, "dnn": 1}.get(row.kind, 2)
    if rank == 0:
        return (rank, row.context_width or 0, _natural_key(row.system))
    if rank == 1:
        return (rank, row.depth if row.depth is not None else math.inf, row.width or 0, _natural_key(row.system))
    return (rank, _natural_key(row.system))


def _number(doc: dict, key: str, path: Path, kind: type = float, required: bool = True) -> Any:
    value = doc.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        if value is None:
            raise InputError(f"no {key!r}: not a results.json written by asr.score", path)
        raise InputError(f"{key!r} must be a number, not {value!r}", path)
    if kind is int:
        if float(value) != int(value):
            raise InputError(f"{key!r} must be an integer, not {value!r}", path)
        return int(value)
    return float(value)


def _read_object(path: Path) -> dict:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InputError("must hold a JSON object", path)
    return doc


def set_name_of(decode_dir: Path, results: dict) -> str:
    """``dev`` for ``.../decode_dev``; otherwise ``results.json``'s ``set`` (or the directory name)."""
    name = decode_dir.name
    if name.startswith(DECODE_PREFIX) and len(name) > len(DECODE_PREFIX):
        return name[len(DECODE_PREFIX) :]
    return str(results.get("set") or name)


def read_set_result(decode_dir: str | os.PathLike) -> tuple[SetResult, dict]:
    """Read ``<decode_dir>/results.json``; returns the :class:`SetResult` and the whole document.

    Raises:
        InputError: naming the file: unreadable, not JSON, not an object, or a missing or non-numeric score field
            (wer, words, ins, del, sub).
    """
    decode_dir = Path(decode_dir)
    path = decode_dir / RESULTS_JSON
    doc = _read_object(path)
    wer = _number(doc, "wer", path)
    words, ins, dels, sub = (_number(doc, k, path, int) for k in ("words", "ins", "del", "sub"))
    swept = doc.get("wer_by_lm_weight")
    weights: list[float] = []
    if isinstance(swept, dict):
        for key in swept:
            try:
                weights.append(float(key))
            except ValueError:
                raise InputError(f"'wer_by_lm_weight' key {key!r} is not an LM weight", path) from None
    notes = []
    skipped = doc.get("num_skipped_missing_features") or 0
    if skipped:
        notes.append(f"{skipped} utterances had no features (scored as deletions)")
    missing_hyps = doc.get("missing_hyps") or []
    if missing_hyps and len(missing_hyps) != skipped:
        notes.append(f"{len(missing_hyps)} utterances had no hypothesis (scored as deletions)")
    result = SetResult(
        set_name=set_name_of(decode_dir, doc),
        wer=wer,
        words=words,
        ins=ins,
        dels=dels,
        sub=sub,
        path=path,
        ser=_number(doc, "ser", path, required=False),
        utts=_number(doc, "utts", path, int, required=False),
        lm_weight=_number(doc, "lm_weight", path, required=False),
        lm_weight_selection=doc.get("lm_weight_selection"),
        lm_weights_swept=sorted(weights),
        rtf=_number(doc, "rtf", path, required=False),
        notes=notes,
    )
    return result, doc


def model_dir_of(decode_dir: Path, results: dict) -> Path:
    """The model dir a decode belongs to: its parent when that has ``model.json`` (the usual layout), else
    ``results.json``'s ``model_dir`` when that has one, else the parent."""
    parent = decode_dir.parent
    if (parent / MODEL_JSON).is_file():
        return parent
    recorded = results.get("model_dir")
    if isinstance(recorded, str) and (Path(recorded) / MODEL_JSON).is_file():
        return Path(recorded)
    return parent


def _kind_of(info: dict) -> str:
    kind = info.get("kind")
    if isinstance(kind, str) and kind:
        return kind.lower()
    if "depth" in info or "mlp" in info:
        return "dnn"
    if "num_gauss" in info:
        return "gmm"
    return "unknown"


def _opt(info: dict, key: str, kind: type = float) -> Any:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if kind is int else float(value)


def _gmm_params(info: dict) -> int | None:
    num_gauss, feature_dim = _opt(info, "num_gauss", int), _opt(info, "feature_dim", int)
    if num_gauss is None or feature_dim is None:
        return None
    dim = _opt(info, "model_dim", int)  # after a feature transform (LDA+MLLT: 40), else features with deltas
    if dim is None:
        dim = feature_dim * ((_opt(info, "delta_order", int) or 0) + 1)
    return num_gauss * (2 * dim + 1)


def build_row(model_dir: Path, decodes: Sequence[tuple[SetResult, dict]]) -> ReportRow:
    """A :class:`ReportRow` from a model dir and its decodes (``read_set_result`` pairs, any order).

    Model facts come from the first decode's ``model`` field, completed by ``<model_dir>/model.json`` when
    there is one (InputError naming it when it cannot be read).
    """
    model_json = model_dir / MODEL_JSON
    info: dict = _read_object(model_json) if model_json.is_file() else {}
    decodes = sorted(decodes, key=lambda d: _natural_key(d[0].set_name))
    summaries = [d[1].get("model") for d in decodes if isinstance(d[1].get("model"), dict)]
    if summaries:
        info = {**info, **summaries[0]}
        changed = sorted({k for s in summaries[1:] for k in s if s.get(k) != summaries[0].get(k)})
        if changed:
            logger.warning(
                "%s: the decodes were made by models that differ in %s (retrained since?)", model_dir, changed
            )
    system = next((str(d[1]["system"]) for d in decodes if d[1].get("system")), None)
    system = str(info.get("name") or system or model_dir.name)
    kind = _kind_of(info)
    num_params = _opt(info, "num_params", int)
    if num_params is None and kind == "gmm":
        num_params = _gmm_params(info)
    row = ReportRow(
        system=system,
        kind=kind,
        model_dir=model_dir,
        corpus=next((str(d[1]["corpus"]) for d in decodes if d[1].get("corpus")), None) or info.get("corpus"),
        depth=_opt(info, "depth", int),
        width=_opt(info, "width", int),
        num_params=num_params,
        num_pdfs=_opt(info, "num_pdfs", int),
        num_gauss=_opt(info, "num_gauss", int),
        context_width=_opt(info, "context_width", int),
        train_seconds=_opt(info, "train_seconds"),
        frames_per_second=_opt(info, "frames_per_second"),
        epochs=_opt(info, "epochs", int),
    )
    for result, _ in decodes:
        if result.set_name in row.results:
            logger.warning(
                "%s: two decodes of set %s; using %s", model_dir, result.set_name, row.results[result.set_name].path
            )
            continue
        row.results[result.set_name] = result
    return row


def decodes_of_model_dir(model_dir: str | os.PathLike) -> list[Path]:
    """The ``decode_*`` sub-directories of a model dir that hold a ``results.json`` (an unfinished one, with
    no results.json yet, is left out with a log line)."""
    model_dir = Path(model_dir)
    found = []
    for sub in sorted(model_dir.glob(DECODE_PREFIX + "*")):
        if not sub.is_dir():
            continue
        if (sub / RESULTS_JSON).is_file():
            found.append(sub)
        else:
            logger.info("%s: no %s yet (decode not finished?): left out", sub, RESULTS_JSON)
    return found


def row_for_model_dir(model_dir: str | os.PathLike) -> ReportRow:
    """The row of one model dir: ``model.json`` and every ``decode_<set>/results.json`` in it.

    Raises:
        InputError: the directory does not exist, or has neither ``model.json`` nor decodes, or a file in it is bad.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError("model directory not found", model_dir)
    decodes = [read_set_result(d) for d in decodes_of_model_dir(model_dir)]
    if not decodes and not (model_dir / MODEL_JSON).is_file():
        raise InputError(f"neither {MODEL_JSON} nor decode_<set>/{RESULTS_JSON}: not a model directory", model_dir)
    return build_row(model_dir, decodes)


@dataclass
class _Found:
    decode_dirs: dict[Path, Path] = field(default_factory=dict)  # resolved -> as found
    model_dirs: dict[Path, Path] = field(default_factory=dict)


def _scan(path: Path, found: _Found) -> None:
    if not path.exists():
        raise InputError("no such file or directory", path)
    if path.is_file():
        if path.name != RESULTS_JSON:
            raise InputError(f"not a directory nor a {RESULTS_JSON}", path)
        path = path.parent
    if (path / RESULTS_JSON).is_file():
        found.decode_dirs.setdefault(path.resolve(), path)
        return
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        subdirs = set(dirnames)
        decodes = sorted(n for n in dirnames if n.startswith(DECODE_PREFIX))
        dirnames[:] = sorted(
            n
            for n in dirnames
            if not n.startswith(".")
            and n not in SKIP_DIRS
            and not n.startswith(DECODE_PREFIX)
            and not (here / n / BUNDLE_MARKER).is_file()  # a recognizer bundle (asr.bundle) is a copy of a model
        )
        for name in decodes:
            if (here / name / RESULTS_JSON).is_file():
                found.decode_dirs.setdefault((here / name).resolve(), here / name)
            else:
                logger.info("%s: no %s yet (decode not finished?): left out", here / name, RESULTS_JSON)
        if MODEL_JSON in filenames:
            found.model_dirs.setdefault(here.resolve(), here)
        elif not decodes and any(m in filenames or m in subdirs for m in RUN_MARKERS):
            logger.info("%s: training not finished (no %s, no decodes): skipped", here, MODEL_JSON)


def sets_found(rows: Iterable[ReportRow]) -> list[str]:
    """Every set name the rows have results for: ``dev``, ``test``, then the others in natural order."""
    names = {s for row in rows for s in row.results}
    first = [s for s in ("dev", "test") if s in names]
    return first + sorted(names - set(first), key=_natural_key)


def collect_rows(paths: Iterable[str | os.PathLike], sets: Sequence[str] | None = None) -> list[ReportRow]:
    """Find the systems under ``paths`` and read their results; one :class:`ReportRow` per model dir, sorted
    (:func:`row_sort_key`).

    Args:
        paths: decode dirs, model dirs or any parents of them (searched recursively), or ``results.json`` files.
        sets: the set names the report will show; used only to log the model dirs that lack a decode of one
            (every set found is read).

    Returns:
        The rows; a model dir with ``model.json`` but no decode gets a row with no results.

    Raises:
        InputError: a path that does not exist, or a ``results.json`` / ``model.json`` that cannot be read.
    """
    found = _Found()
    for path in paths:
        _scan(Path(path), found)
    by_model: dict[Path, tuple[Path, list[tuple[SetResult, dict]]]] = {}
    for decode_dir in found.decode_dirs.values():
        result, doc = read_set_result(decode_dir)
        model_dir = model_dir_of(decode_dir, doc)
        by_model.setdefault(model_dir.resolve(), (model_dir, []))[1].append((result, doc))
    for key, model_dir in found.model_dirs.items():
        by_model.setdefault(key, (model_dir, []))
    rows = sorted((build_row(model_dir, decodes) for model_dir, decodes in by_model.values()), key=row_sort_key)
    _disambiguate(rows)
    for row in rows:
        missing = [s for s in (sets or []) if s not in row.results]
        if not row.results:
            logger.info("%s (%s): no decodes yet: listed without results", row.system, row.model_dir)
        elif missing:
            logger.info("%s (%s): no decode of %s yet", row.system, row.model_dir, ", ".join(missing))
    corpora = sorted({row.corpus for row in rows if row.corpus})
    if len(corpora) > 1:
        logger.warning("the report mixes corpora: %s", ", ".join(corpora))
    return rows


def _disambiguate(rows: list[ReportRow]) -> None:
    """Rename systems that share a name (``exp/an4/tri1`` and ``exp/synth/tri1``) after their model dir paths."""
    names: dict[str, list[ReportRow]] = {}
    for row in rows:
        names.setdefault(row.system, []).append(row)
    for same in names.values():
        if len(same) < 2 or any(r.model_dir is None for r in same):
            continue
        dirs = [r.model_dir.resolve() for r in same]
        common = Path(os.path.commonpath(dirs))
        for row, d in zip(same, dirs):
            rel = d.relative_to(common).as_posix() if d != common else d.name
            row.system = rel if d.name == row.system else f"{rel} ({row.system})"


# ------------------------------------------------------------------------------------------------ baseline
def find_row(rows: Sequence[ReportRow], name: str) -> ReportRow:
    """The row whose system name, model dir name or model dir path is ``name``.

    Raises:
        ConfigError: no such row, or several.
    """
    target = Path(name).resolve() if os.sep in name or Path(name).exists() else None
    matches = [r for r in rows if r.system == name]
    if not matches:
        matches = [
            r
            for r in rows
            if r.model_dir is not None and (r.model_dir.name == name or (target and r.model_dir.resolve() == target))
        ]
    if len(matches) != 1:
        what = "no system" if not matches else f"{len(matches)} systems"
        raise ConfigError(f"{what} named {name!r} in the report; systems: {', '.join(r.system for r in rows)}")
    return matches[0]


def select_baseline(rows: Sequence[ReportRow], sets: Sequence[str], name: str | None = None) -> ReportRow | None:
    """The baseline row: the one named ``name`` (:func:`find_row`), else the GMM with the lowest WER on the first
    of ``sets`` that some GMM was decoded on (ties: the first in row order); None when no GMM has results."""
    if name:
        return find_row(rows, name)
    gmms = [r for r in rows if r.kind == "gmm"]
    for set_name in sets:
        scored = [r for r in gmms if set_name in r.results]
        if scored:
            return min(scored, key=lambda r: r.results[set_name].wer)
    return None


def relative_change(wer: float | None, baseline_wer: float | None) -> float | None:
    """``(wer - baseline_wer) / baseline_wer * 100`` in percent (negative = fewer errors than the baseline);
    None when either is missing or the baseline WER is 0."""
    if wer is None or baseline_wer is None or baseline_wer == 0:
        return None
    return (wer - baseline_wer) / baseline_wer * 100.0


def _resolve_baseline(
    rows: Sequence[ReportRow], sets: Sequence[str], baseline: ReportRow | str | None
) -> ReportRow | None:
    if isinstance(baseline, ReportRow):
        return baseline
    return select_baseline(rows, sets, baseline)


# ------------------------------------------------------------------------------------------------ formatting
def _fmt_int(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def _fmt_seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"


def _fmt_rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}"


def _fmt_rtf(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3g}"


def _fmt_rel(value: float | None) -> str:
    return MISSING if value is None else f"{value:+.1f}%"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _render(header: list[str], align: list[str], body: list[list[str]]) -> str:
    """A Markdown pipe table with padded columns (``align``: ``l`` or ``r`` per column)."""
    cells = [[_cell(c) for c in line] for line in [header, *body]]
    widths = [max(3, *(len(line[i]) for line in cells)) for i in range(len(header))]

    def line(parts: list[str]) -> str:
        padded = [p.rjust(w) if a == "r" else p.ljust(w) for p, w, a in zip(parts, widths, align)]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join(("-" * (w - 1) + ":") if a == "r" else "-" * w for w, a in zip(widths, align)) + " |"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def _lm_rule(result: SetResult) -> str:
    rule = result.lm_weight_selection or "not recorded"
    weight = MISSING if result.lm_weight is None else format_lm_weight(result.lm_weight)
    if rule == "best on this set":
        swept = result.lm_weights_swept
        span = f" over {format_lm_weight(swept[0])}..{format_lm_weight(swept[-1])}" if len(swept) > 1 else ""
        text = f"the lowest-WER weight of a sweep{span} on {result.set_name} itself"
        if "test" in result.set_name:
            text += " (tuned on a test set: optimistic)"
        return text
    if rule.startswith("from "):
        source = Path(rule[len("from ") :].strip())
        tuned_on = set_name_of(source.parent, {}) if source.parent.name else str(source)
        return f"the weight picked on {tuned_on} (never tuned on {result.set_name})"
    if rule == "fixed":
        return f"fixed at {weight}"
    return rule


def _footnotes(rows: Sequence[ReportRow], sets: Sequence[str], baseline: ReportRow | None) -> list[str]:
    notes = [
        f"WER in % on {', '.join(sets)}, as Kaldi prints it: WER [errors/words, insertions, deletions, "
        "substitutions]; " + MISSING + ": not decoded (yet)."
    ]
    if baseline is not None:
        base = ", ".join(
            f"{s} {baseline.results[s].wer:.2f}%" if s in baseline.results else f"{s} {MISSING}" for s in sets
        )
        notes.append(
            f"rel.: relative WER change against the baseline {baseline.kind_label} `{baseline.system}` ({base}), "
            "(WER - WER_baseline) / WER_baseline x 100 on the same set; negative = fewer errors than the baseline."
        )
    else:
        notes.append("rel.: no baseline (no GMM was decoded on these sets).")
    for s in sets:
        rules: dict[str, list[str]] = {}
        for row in rows:
            if s in row.results:
                rules.setdefault(_lm_rule(row.results[s]), []).append(row.system)
        if len(rules) == 1:
            notes.append(f"LM weight on {s}: {next(iter(rules))}, per system.")
        elif rules:
            parts = "; ".join(f"{rule} ({', '.join(systems)})" for rule, systems in rules.items())
            notes.append(f"LM weight on {s}: {parts}.")
    if any(r.kind == "gmm" and r.num_params is not None for r in rows):
        notes.append("Parameters of a GMM: Gaussians x (2 x feature dim + 1) (means, diagonal variances, weights).")
    notes.append(
        "Train time: seconds of training as model.json records it; frames/s: DNN training throughput; "
        "RTF: decoding seconds (likelihoods + search, single core) / audio seconds."
    )
    for row in rows:
        for s in sets:
            result = row.results.get(s)
            if result is not None and result.notes:
                notes.append(f"\\* {row.system} on {s}: {'; '.join(result.notes)}.")
    return notes


def markdown_table(
    rows: Sequence[ReportRow], sets: Sequence[str] | None = None, baseline: ReportRow | str | None = None
) -> str:
    """The report table in Markdown, followed by its footnotes.

    Args:
        rows: from :func:`collect_rows` (shown in the given order).
        sets: the set columns, in order (None: :func:`sets_found`).
        baseline: the baseline row, or its name, or None for :func:`select_baseline`'s default.

    Returns:
        The table and the footnotes (sets, baseline and sign convention, LM weight rule), ending with a newline.
    """
    sets = list(sets) if sets is not None else sets_found(rows)
    base = _resolve_baseline(rows, sets, baseline)
    header = ["system", "kind", "hidden layers", "units per layer", "parameters", "senones"]
    align = ["l", "l", "r", "r", "r", "r"]
    for s in sets:
        header += [f"WER {s}", f"rel. {s}"]
        align += ["l", "r"]
    multi = len(sets) > 1
    header += [f"LM weight ({' / '.join(sets)})" if multi else "LM weight", "train time (s)", "train frames/s"]
    header += [f"RTF ({' / '.join(sets)})" if multi else "RTF"]
    align += ["r", "r", "r", "r"]
    body = []
    for row in rows:
        cells = [
            row.system,
            row.kind_label,
            _fmt_int(row.depth),
            _fmt_int(row.width),
            _fmt_int(row.num_params),
            _fmt_int(row.num_pdfs),
        ]
        for s in sets:
            result = row.results.get(s)
            cells.append(MISSING if result is None else result.kaldi() + (" \\*" if result.notes else ""))
            if row is base and result is not None:
                cells.append("baseline")
            else:
                cells.append(_fmt_rel(relative_change(row.wer(s), base.wer(s) if base else None)))
        weights = [row.results[s].lm_weight if s in row.results else None for s in sets]
        cells.append(" / ".join(MISSING if w is None else format_lm_weight(w) for w in weights))
        cells += [_fmt_seconds(row.train_seconds), _fmt_rate(row.frames_per_second)]
        cells.append(" / ".join(_fmt_rtf(row.results[s].rtf if s in row.results else None) for s in sets))
        body.append(cells)
    notes = _footnotes(rows, sets, base)
    return _render(header, align, body) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def comparison_table(gmm_dir: str | os.PathLike, dnn_dir: str | os.PathLike, sets: Sequence[str] | None = None) -> str:
    """The short GMM-vs-DNN table: two rows (the GMM baseline, then the DNN), per set the WER with its
    insertions, deletions and substitutions and the DNN's relative change against the GMM.

    Args:
        gmm_dir, dnn_dir: model dirs (``model.json``, ``decode_<set>/results.json``).
        sets: set columns in order (None: every set either was decoded on).

    Returns:
        A Markdown table and a one-line footnote with the sign convention.

    Raises:
        InputError: a model dir that does not exist or a results.json / model.json that cannot be read.
    """
    gmm, dnn = row_for_model_dir(gmm_dir), row_for_model_dir(dnn_dir)
    sets = list(sets) if sets is not None else sets_found([gmm, dnn])
    header, align = ["system", "hidden layers x units"], ["l", "r"]
    for s in sets:
        header += [f"WER {s}", f"rel. {s}"]
        align += ["l", "r"]
    body = []
    for row in (gmm, dnn):
        shape = f"{row.depth} x {row.width}" if row.depth is not None and row.width is not None else MISSING
        cells = [f"{row.system} ({row.kind_label})", shape]
        for s in sets:
            result = row.results.get(s)
            cells.append(MISSING if result is None else result.kaldi())
            cells.append("baseline" if row is gmm else _fmt_rel(relative_change(dnn.wer(s), gmm.wer(s))))
        body.append(cells)
    note = (
        f"rel.: (WER - WER_{gmm.system}) / WER_{gmm.system} x 100; negative = the DNN makes fewer errors. "
        f"{MISSING}: not decoded."
    )
    return _render(header, align, body) + "\n\n" + note + "\n"


# ------------------------------------------------------------------------------------------------ CSV
PER_SET_COLUMNS = (
    "wer errors words ins del sub ser utts rel_change_pct lm_weight lm_weight_selection rtf results".split()
)


def csv_columns(sets: Sequence[str]) -> list[str]:
    """The CSV header: the system's columns, then one group per set (``wer_dev``, ``ins_dev``...)."""
    columns = (
        "system kind is_baseline model_dir corpus hidden_layers units_per_layer parameters senones num_gauss "
        "context_width epochs train_seconds train_frames_per_second"
    ).split()
    return columns + [f"{name}_{s}" for s in sets for name in PER_SET_COLUMNS]


def csv_text(rows: Sequence[ReportRow], sets: Sequence[str], baseline: ReportRow | str | None = None) -> str:
    """The report as CSV: raw numbers (empty when unknown), ``rel_change_pct_<set>`` as in the Markdown table."""
    sets = list(sets)
    base = _resolve_baseline(rows, sets, baseline)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns(sets))
    for row in rows:
        values: list[Any] = [
            row.system,
            row.kind,
            int(row is base),
            "" if row.model_dir is None else os.fspath(row.model_dir),
            row.corpus,
            row.depth,
            row.width,
            row.num_params,
            row.num_pdfs,
            row.num_gauss,
            row.context_width,
            row.epochs,
            row.train_seconds,
            row.frames_per_second,
        ]
        for s in sets:
            r = row.results.get(s)
            if r is None:
                values += [None] * len(PER_SET_COLUMNS)
                continue
            rel = relative_change(r.wer, base.wer(s) if base else None)
            values += [
                r.wer,
                r.errors,
                r.words,
                r.ins,
                r.dels,
                r.sub,
                r.ser,
                r.utts,
                None if rel is None else round(rel, 4),
                r.lm_weight,
                r.lm_weight_selection,
                r.rtf,
                os.fspath(r.path),
            ]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ plot
def plot_wer_by_depth(
    rows: Sequence[ReportRow],
    sets: Sequence[str],
    baseline: ReportRow | None,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    paper: bool = False,
) -> Path:
    """Write a PNG (``FIGSIZE`` x ``DPI`` pixels, atomically) of the DNNs' WER against hidden layers.

    One line per set (per set and width when the DNNs have several widths), x on a log2 axis with ticks at
    1, 2, 4, 8, 12 (and any other depth present), the baseline's WER as a dashed line per set in the set's colour;
    with ``paper``, Zeiler et al.'s numbers and GMM faint on a secondary y axis. Returns ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    path = Path(path)
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    dnns = [r for r in rows if r.kind == "dnn" and r.depth is not None and r.depth > 0 and set(sets) & set(r.results)]
    widths = sorted({r.width for r in dnns}, key=lambda w: (w is None, w or 0))
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    depths = sorted({r.depth for r in dnns})
    for i, s in enumerate(sets):
        color = colors[i % len(colors)]
        for j, width in enumerate(widths):
            points = sorted((r.depth, r.wer(s)) for r in dnns if r.width == width and s in r.results)
            if not points:
                continue
            label = s if len(widths) == 1 else f"{s}, {width if width is not None else '?'} units"
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=markers[j % len(markers)], color=color, linestyle="-", label=label)
            for x, y in points:
                ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        if baseline is not None and s in baseline.results:
            ax.axhline(
                baseline.results[s].wer,
                color=color,
                linestyle="--",
                linewidth=1,
                label=f"{baseline.system} ({baseline.kind_label}, {s}): {baseline.results[s].wer:.2f}",
            )
    ticks = sorted(set(DEPTH_TICKS) | set(depths))
    ax.set_xscale("log", base=2)
    ax.set_xlim(ticks[0] / 1.25, ticks[-1] * 1.25)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("WER (%)")
    ax.grid(True, alpha=0.3)
    if not dnns:
        ax.text(0.5, 0.5, "no DNN results yet", transform=ax.transAxes, ha="center", va="center", color="0.5")
    handles, labels = ax.get_legend_handles_labels()
    if paper:
        ax2 = ax.twinx()
        xs = sorted(PAPER_WER)
        ax2.plot(xs, [PAPER_WER[x] for x in xs], color="0.5", alpha=0.4, marker=".", label="Zeiler et al. 2013")
        ax2.axhline(PAPER_GMM_WER, color="0.5", alpha=0.4, linestyle=":", label="Zeiler et al. 2013 GMM")
        ax2.set_ylabel("Zeiler et al. 2013 WER (%)", color="0.5")
        ax2.tick_params(axis="y", colors="0.5")
        ax.set_zorder(ax2.get_zorder() + 1)  # our lines above the faint reference
        ax.patch.set_visible(False)
        more_handles, more_labels = ax2.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="best")
    ax.set_title(title or "WER by number of hidden layers", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


# ------------------------------------------------------------------------------------------------ report
def default_title(rows: Sequence[ReportRow]) -> str:
    """``WER by number of hidden layers (an4)``; the corpus only when the rows share one."""
    corpora = {r.corpus for r in rows if r.corpus}
    return "WER by number of hidden layers" + (f" ({corpora.pop()})" if len(corpora) == 1 else "")


def write_report(
    rows: Sequence[ReportRow],
    sets: Sequence[str] | None,
    baseline: ReportRow | str | None,
    prefix: str | os.PathLike,
    *,
    title: str | None = None,
    paper: bool = False,
) -> dict[str, Path]:
    """Write ``<prefix>.md`` (``# title``, the table, footnotes), ``<prefix>.csv`` and ``<prefix>.png``, each
    atomically (directories created).

    Args:
        rows: from :func:`collect_rows`.
        sets: the set columns in order (None: :func:`sets_found`).
        baseline: the baseline row, its name, or None (:func:`select_baseline`'s default).
        prefix: output path without suffix.
        title: heading and plot title (default :func:`default_title`).
        paper: draw Zeiler et al.'s numbers on the plot's secondary axis.

    Returns:
        ``{"md": path, "csv": path, "png": path}``.
    """
    sets = list(sets) if sets is not None else sets_found(rows)
    base = _resolve_baseline(rows, sets, baseline)
    title = title or default_title(rows)
    prefix = os.fspath(prefix)
    paths = {ext: Path(f"{prefix}.{ext}") for ext in ("md", "csv", "png")}
    with atomic_write(paths["md"]) as f:
        f.write(report_markdown(rows, sets, base, title))
    with atomic_write(paths["csv"]) as f:
        f.write(csv_text(rows, sets, base))
    plot_wer_by_depth(rows, sets, base, paths["png"], title=title, paper=paper)
    return paths


def report_markdown(rows: Sequence[ReportRow], sets: Sequence[str], baseline: ReportRow | None, title: str) -> str:
    """The ``.md`` file: ``# title``, a blank line, :func:`markdown_table`."""
    return f"# {title}\n\n" + markdown_table(rows, sets, baseline)


def default_prefix(paths: Sequence[str | os.PathLike]) -> Path:
    """``<common parent of paths>/report`` (a decode dir or results.json counts as its model dir's parent)."""
    dirs = []
    for p in paths:
        p = Path(p).resolve()
        if p.is_file():
            p = p.parent
        if (p / RESULTS_JSON).is_file():
            p = p.parent.parent
        dirs.append(p)
    return Path(os.path.commonpath(dirs)) / "report"


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="decode dirs, model dirs, or parents of them (e.g. exp/an4)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--set", dest="set_name", default=None, help="one set (e.g. dev)")
    which.add_argument("--sets", default=None, help="comma-separated sets in column order (default: all found)")
    parser.add_argument("--baseline", default=None, help="baseline system name (default: the best GMM on set 1)")
    parser.add_argument("--out", default=None, help="output prefix for .md/.csv/.png (default: <dirs>/report)")
    parser.add_argument("--title", default=None, help="table heading and plot title")
    parser.add_argument("--paper", action="store_true", help="add Zeiler et al. 2013's WERs to the plot")
    args = parser.parse_args(argv)
    setup_logging()
    if args.set_name:
        sets: list[str] | None = [args.set_name]
    elif args.sets:
        sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    else:
        sets = None
    try:
        rows = collect_rows(args.dirs, sets)
        if not rows:
            raise InputError("no model or decode directories found", ", ".join(args.dirs))
        sets = sets or sets_found(rows)
        if not sets:
            raise InputError("no decode results found (decode_<set>/results.json)", ", ".join(args.dirs))
        base = select_baseline(rows, sets, args.baseline)
        title = args.title or default_title(rows)
        paths = write_report(rows, sets, base, args.out or default_prefix(args.dirs), title=title, paper=args.paper)
    except AsrError as err:
        sys.exit(f"error: {err}")
    print(report_markdown(rows, sets, base, title), end="")
    logger.info("wrote %s", ", ".join(os.fspath(p) for p in paths.values()))


if __name__ == "__main__":
    main()
