"""Questions for phonetic decision trees (Kaldi's ``cluster-phones`` + ``compile-questions``).

A question is a set of values; a tree node asks "is the value of key K in this set?". Keys are the left,
centre and right phone of a triphone window and the HMM state's ``pdf_class``.

Phone questions are made automatically, like Kaldi's ``cluster-phones``: every phone set (by default one
phone per set; a set groups phones that must always be asked about together, Kaldi's ``sets.int``) gets
single-Gaussian statistics pooled over all its contexts and pdf-classes; the sets are then clustered top
down with binary k-means under a likelihood objective (each cluster is one diagonal Gaussian; a split
maximises the total log-likelihood), down to single sets. Every node of that binary hierarchy is a
question. To these we add (as Kaldi's ``extra_questions.txt`` from ``prepare_lang.sh`` does) the silence
phones and the non-silence phones as two questions, user-supplied questions (a text file, one set per
line), and, because a window uses phone 0 for "utterance boundary", the boundary questions ``{0}`` and
``{0} + silence phones``. Automatic questions never contain 0, so without the boundary questions the
boundary always answers "no" (what Kaldi does).

pdf-class questions are ``{0}``, ``{0, 1}``, ..., ``{0, ..., M-2}`` for the largest number of pdf-classes M
of any phone (the prefix sets that ``compile-questions`` makes for the "phone state" key): with them a
tree can separate any HMM state of a phone from its neighbours.

Kaldi's ``cluster-phones`` pools only the central state by default (``--pdf-class-list=1``); here the
default pools all pdf-classes (``pdf_classes=None``); pass ``pdf_classes=[1]`` for Kaldi's choice.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.atomic import atomic_write
from asr.errors import InputError
from asr.files import read_json
from asr.hmm.tree import DEFAULT_VAR_FLOOR, TreeStats, gaussian_objf

logger = logging.getLogger(__name__)

QUESTIONS_FORMAT = "asr.questions"


@dataclass(frozen=True)
class QuestionSet:
    """All questions a tree may ask.

    Attributes:
        phone_questions: phone sets asked about the left and right context (and, inside a root holding
            several phones, about the centre phone). May contain 0 (= utterance boundary).
        pdf_class_questions: pdf-class sets asked about the HMM state inside a shared root.
    """

    phone_questions: tuple[tuple[int, ...], ...]
    pdf_class_questions: tuple[tuple[int, ...], ...]

    def to_json_dict(self) -> dict:
        """Return the JSON-serialisable form (lists of int lists)."""
        return {
            "format": QUESTIONS_FORMAT,
            "version": 1,
            "phone_questions": [list(q) for q in self.phone_questions],
            "pdf_class_questions": [list(q) for q in self.pdf_class_questions],
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the questions as JSON (one question per line), atomically."""

        def block(qs: tuple[tuple[int, ...], ...]) -> str:
            if not qs:
                return "[]"
            return "[\n" + ",\n".join("    " + json.dumps(list(q)) for q in qs) + "\n  ]"

        text = (
            "{\n"
            f'  "format": "{QUESTIONS_FORMAT}",\n'
            '  "version": 1,\n'
            f'  "phone_questions": {block(self.phone_questions)},\n'
            f'  "pdf_class_questions": {block(self.pdf_class_questions)}\n'
            "}\n"
        )
        with atomic_write(path) as f:
            f.write(text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> QuestionSet:
        """Read a file written by :meth:`save`.

        Raises:
            InputError: not JSON, wrong format tag, or a question that is not a list of non-negative ints.
        """
        path = Path(path)
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != QUESTIONS_FORMAT:
            raise InputError(f"not a questions file (format tag {QUESTIONS_FORMAT!r} missing)", path)
        out = []
        for name in ("phone_questions", "pdf_class_questions"):
            qs = data.get(name)
            if not isinstance(qs, list):
                raise InputError(f"{name!r} missing or not a list", path)
            parsed = []
            for i, q in enumerate(qs):
                if not isinstance(q, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in q):
                    raise InputError(f"{name}[{i}] is not a list of integers", path)
                if any(v < 0 for v in q):
                    raise InputError(f"{name}[{i}] has a negative value", path)
                parsed.append(tuple(sorted(set(q))))
            out.append(tuple(parsed))
        return cls(phone_questions=out[0], pdf_class_questions=out[1])


def read_phone_symbols(path: str | os.PathLike) -> dict[str, int]:
    """Read an OpenFst symbol table (``phones.txt``: ``symbol id`` per line) into ``{symbol: id}``.

    Raises:
        InputError: a line without exactly two fields, a non-integer or negative id, a repeated symbol.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    except UnicodeDecodeError as e:
        raise InputError("file is not UTF-8", path) from e
    table: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2:
            raise InputError(f"expected 'symbol id', got {line!r}", path, number)
        try:
            value = int(fields[1])
        except ValueError:
            raise InputError(f"id {fields[1]!r} is not an integer", path, number) from None
        if value < 0:
            raise InputError(f"negative id {value}", path, number)
        if fields[0] in table:
            raise InputError(f"symbol {fields[0]!r} repeated", path, number)
        table[fields[0]] = value
    return table


def read_questions(path: str | os.PathLike, symbols: Mapping[str, int] | None = None) -> list[tuple[int, ...]]:
    """Read phone questions from a text file: one set per line, phone ids or (with ``symbols``) names.

    This is the format of Kaldi's ``questions.int`` / ``extra_questions.txt``. Returns the sets as sorted
    tuples, file order.

    Raises:
        InputError: an empty line, an unknown symbol or non-integer id, a negative id, a phone repeated in
            a line (the error names the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    except UnicodeDecodeError as e:
        raise InputError("file is not UTF-8", path) from e
    questions: list[tuple[int, ...]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            raise InputError("empty line (a question needs at least one phone)", path, number)
        ids: list[int] = []
        for tok in tokens:
            if symbols is not None and tok in symbols:
                ids.append(symbols[tok])
                continue
            try:
                value = int(tok)
            except ValueError:
                what = "unknown phone symbol" if symbols is not None else "not an integer phone id"
                raise InputError(f"{what}: {tok!r}", path, number) from None
            if value < 0:
                raise InputError(f"negative phone id {value}", path, number)
            ids.append(value)
        if len(set(ids)) != len(ids):
            raise InputError("a phone is repeated in the question", path, number)
        questions.append(tuple(sorted(ids)))
    return questions


def write_questions(
    path: str | os.PathLike, questions: Iterable[Sequence[int]], symbols: Mapping[int, str] | None = None
) -> None:
    """Write phone sets one per line (ids, or names through ``symbols`` = ``{id: name}``), atomically."""
    with atomic_write(path) as f:
        for q in questions:
            f.write(" ".join(symbols[p] if symbols is not None else str(p) for p in q) + "\n")


def pdf_class_questions(max_num_pdf_classes: int) -> list[tuple[int, ...]]:
    """Return the pdf-class questions ``[(0,), (0, 1), ..., (0, ..., M-2)]`` for ``M`` pdf-classes."""
    return [tuple(range(p)) for p in range(1, max_num_pdf_classes)]


def _two_means(items: np.ndarray, var_floor: float, num_tries: int, rng: np.random.Generator) -> np.ndarray:
    """Split rows of ``items`` ([n, 1+2D] stats, n >= 2) into two clusters maximising the Gaussian objf.

    Returns a bool array (True = second cluster). Several starts (the two items farthest apart in merge
    cost, plus random splits) are refined by hill climbing on the exact objective (move one item at a
    time while that increases it); the best result wins.
    """
    n = items.shape[0]
    dim = (items.shape[1] - 1) // 2

    def objf(s: np.ndarray) -> np.ndarray:
        return gaussian_objf(s[..., 0], s[..., 1 : 1 + dim], s[..., 1 + dim :], var_floor)

    if n == 2:
        return np.array([False, True])
    item_objf = objf(items)
    starts: list[np.ndarray] = []
    # Deterministic start: the pair whose merge loses most likelihood, others go to the closer one.
    pair_cost = item_objf[:, None] + item_objf[None, :] - objf(items[:, None, :] + items[None, :, :])
    np.fill_diagonal(pair_cost, -np.inf)
    a, b = np.unravel_index(np.argmax(pair_cost), pair_cost.shape)
    starts.append(pair_cost[b] < pair_cost[a])  # True where merging with b costs less than with a
    starts[0][a], starts[0][b] = False, True
    for _ in range(num_tries):
        assign = rng.random(n) < 0.5
        if assign.all() or not assign.any():
            assign[rng.integers(n)] ^= True
        starts.append(assign)

    best_assign, best_objf = None, -np.inf
    for assign in starts:
        assign = assign.copy()
        for _ in range(10 * n):
            tot1 = items[assign].sum(0)
            tot0 = items[~assign].sum(0)
            base = objf(tot0) + objf(tot1)
            # Objective after moving each item to the other cluster.
            src = np.where(assign[:, None], tot1, tot0)
            dst = np.where(assign[:, None], tot0, tot1)
            moved = objf(src - items) + objf(dst + items)
            size_src = np.where(assign, assign.sum(), (~assign).sum())
            delta = np.where(size_src > 1, moved - base, -np.inf)
            i = int(np.argmax(delta))
            if delta[i] <= 1e-9 * max(1.0, abs(base)):
                break
            assign[i] = not assign[i]
        total = float(objf(items[assign].sum(0)) + objf(items[~assign].sum(0)))
        if total > best_objf + 1e-9 * max(1.0, abs(total)):
            best_assign, best_objf = assign, total
    return best_assign


def cluster_top_down(
    count: np.ndarray,
    sums: np.ndarray,
    sumsqs: np.ndarray,
    *,
    var_floor: float = DEFAULT_VAR_FLOOR,
    num_tries: int = 8,
    seed: int = 0,
) -> list[tuple[int, ...]]:
    """Cluster items top down with likelihood-based binary k-means, down to single items.

    Args:
        count: [n] frame counts of the items (all > 0).
        sums, sumsqs: [n, D] sums and sums of squares of the items' frames.
        var_floor: variance floor of the Gaussian objective.
        num_tries: random starts per 2-means split (besides one deterministic start).
        seed: RNG seed (the result is deterministic given the seed).

    Returns:
        The item index sets of every node of the binary hierarchy, root (all items) first, pre-order,
        each sorted; leaves are the single items.
    """
    count = np.asarray(count, dtype=np.float64)
    n = count.shape[0]
    if n == 0:
        return []
    items = np.concatenate([count[:, None], np.asarray(sums, np.float64), np.asarray(sumsqs, np.float64)], axis=1)
    rng = np.random.default_rng(seed)
    out: list[tuple[int, ...]] = []
    stack = [np.arange(n)]
    while stack:
        members = stack.pop()
        out.append(tuple(int(i) for i in members))
        if members.size < 2:
            continue
        assign = _two_means(items[members], var_floor, num_tries, rng)
        first, second = members[~assign], members[assign]
        # Push the second so the first is visited next (pre-order, "left" child = the larger cluster).
        if first.size < second.size:
            first, second = second, first
        stack.append(second)
        stack.append(first)
    return out


def generate_phone_questions(
    stats: TreeStats,
    phone_sets: Sequence[Sequence[int]] | None = None,
    *,
    pdf_classes: Sequence[int] | None = None,
    var_floor: float = DEFAULT_VAR_FLOOR,
    num_tries: int = 8,
    seed: int = 0,
) -> list[tuple[int, ...]]:
    """Make phone questions by clustering phone sets on their pooled statistics (Kaldi ``cluster-phones``).

    Args:
        stats: tree statistics; each phone's stats are pooled over every key where it is the centre.
        phone_sets: sets of phones clustered as one unit (Kaldi ``sets.int``); default one set per centre
            phone seen in ``stats``.
        pdf_classes: pool only these pdf-classes (Kaldi default ``[1]``); ``None`` = all.
        var_floor, num_tries, seed: see :func:`cluster_top_down`.

    Returns:
        The union of the phone sets under every node of the cluster hierarchy, sorted tuples, root first.
        Sets without any frames cannot be clustered: each becomes its own question (with a warning).
    """
    keys = stats.keys
    if phone_sets is None:
        phone_sets = [(int(p),) for p in np.unique(keys[:, 1])]
    phone_sets = [tuple(sorted(int(p) for p in s)) for s in phone_sets]
    seen: dict[int, int] = {}
    for i, s in enumerate(phone_sets):
        if not s:
            raise ValueError(f"phone set {i} is empty")
        for p in s:
            if p in seen:
                raise ValueError(f"phone {p} is in phone sets {seen[p]} and {i}")
            seen[p] = i
    mask = np.ones(len(keys), dtype=bool) if pdf_classes is None else np.isin(keys[:, 3], list(pdf_classes))
    lookup = np.full(max([int(keys[:, 1].max()) if len(keys) else 0, *seen]) + 1, -1, dtype=np.int64)
    for p, i in seen.items():
        lookup[p] = i
    set_of_key = lookup[keys[:, 1]]
    use = mask & (set_of_key >= 0)
    num_sets = len(phone_sets)
    dim = stats.dim
    count = np.bincount(set_of_key[use], weights=stats.count[use], minlength=num_sets)
    sums = np.zeros((num_sets, dim))
    sumsqs = np.zeros((num_sets, dim))
    np.add.at(sums, set_of_key[use], stats.sums[use])
    np.add.at(sumsqs, set_of_key[use], stats.sumsqs[use])
    has_data = count > 0
    empty = [phone_sets[i] for i in np.flatnonzero(~has_data)]
    if empty:
        logger.warning("%d phone set(s) have no statistics and are not clustered: %s", len(empty), empty)
    index = np.flatnonzero(has_data)
    nodes = cluster_top_down(
        count[index], sums[index], sumsqs[index], var_floor=var_floor, num_tries=num_tries, seed=seed
    )
    questions = [tuple(sorted(p for i in node for p in phone_sets[index[i]])) for node in nodes]
    questions.extend(empty)
    return questions


def _dedupe(questions: Iterable[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    out: dict[tuple[int, ...], None] = {}
    for q in questions:
        t = tuple(sorted({int(v) for v in q}))
        if t:
            out.setdefault(t, None)
    return tuple(out)


def build_question_set(
    stats: TreeStats | None,
    *,
    max_num_pdf_classes: int,
    phone_sets: Sequence[Sequence[int]] | None = None,
    silence_phones: Sequence[int] = (),
    extra_questions: Sequence[Sequence[int]] = (),
    cluster_silence: bool = True,
    boundary_questions: bool = True,
    pdf_classes: Sequence[int] | None = None,
    var_floor: float = DEFAULT_VAR_FLOOR,
    num_tries: int = 8,
    seed: int = 0,
) -> QuestionSet:
    """Make every question for tree building: clustered phone sets, silence/non-silence, extra, boundary, pdf-class.

    Args:
        stats: tree statistics for the automatic questions (``None``: no automatic questions, only the
            others).
        max_num_pdf_classes: the largest number of pdf-classes of any phone (from the HMM topology).
        phone_sets: units of clustering (Kaldi ``sets.int``); default one per centre phone in ``stats``.
        silence_phones: e.g. SIL and SPN; adds the questions "silence" and "non-silence" (all phones of
            ``phone_sets`` / ``stats`` that are not silence), as Kaldi's ``extra_questions.txt``.
        extra_questions: user sets (e.g. :func:`read_questions`), added as they are.
        cluster_silence: whether silence phones take part in the clustering (Kaldi: yes). With False they
            appear only in the silence questions.
        boundary_questions: add ``{0}`` and ``{0} + silence`` (0 = utterance boundary in a window).
        pdf_classes, var_floor, num_tries, seed: see :func:`generate_phone_questions`.

    Returns:
        The deduplicated :class:`QuestionSet` (automatic questions first, file order kept otherwise).
    """
    silence = sorted({int(p) for p in silence_phones})
    phone_questions: list[Sequence[int]] = []
    all_phones: set[int] = set()
    if stats is not None:
        sets = phone_sets
        if sets is None:
            sets = [(int(p),) for p in np.unique(stats.keys[:, 1])]
        all_phones = {int(p) for s in sets for p in s}
        if not cluster_silence:
            sets = [s for s in sets if not set(s) & set(silence)]
        phone_questions.extend(
            generate_phone_questions(
                stats, sets, pdf_classes=pdf_classes, var_floor=var_floor, num_tries=num_tries, seed=seed
            )
        )
    elif phone_sets is not None:
        all_phones = {int(p) for s in phone_sets for p in s}
    if silence:
        phone_questions.append(silence)
        nonsilence = sorted(all_phones - set(silence))
        if nonsilence:
            phone_questions.append(nonsilence)
    phone_questions.extend(extra_questions)
    if boundary_questions:
        phone_questions.append([0])
        if silence:
            phone_questions.append([0, *silence])
    return QuestionSet(
        phone_questions=_dedupe(phone_questions),
        pdf_class_questions=_dedupe(pdf_class_questions(max_num_pdf_classes)),
    )
