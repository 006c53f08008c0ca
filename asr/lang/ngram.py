"""Back-off n-gram language models of our own: estimation, ARPA files, perplexity.

Estimation (:func:`train_ngram_lm`), orders 1 and up (tested 1..3), sentences padded with ``<s>`` and
``</s>``, over a FIXED vocabulary (the lexicon's words): every vocabulary word gets a probability, seen
in the training text or not, because the lowest order is interpolated with the uniform distribution
over the vocabulary plus ``</s>``.

- ``method="kn"``: interpolated modified Kneser-Ney (Chen & Goodman 1998): three discounts D1, D2, D3+
  per order from that order's count-of-counts (``Y = n1/(n1+2 n2)``, ``Dk = k - (k+1) Y n_{k+1}/n_k``);
  the highest order uses raw counts, lower orders continuation counts ``N1+(. w)``, except n-grams
  starting with ``<s>`` which keep their raw counts (nothing can precede ``<s>``), as in KenLM.
  ``p(w|h) = (c(hw) - D(c(hw)))/c(h) + gamma(h) p(w|h')``, ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.))/c(h)``.
- ``method="wb"``: interpolated Witten-Bell, ``p(w|h) = (c(hw) + T(h) p(w|h'))/(c(h) + T(h))`` with
  ``T(h)`` the number of distinct words seen after ``h``.

Both are interpolated models written as back-off models: the ARPA probability of a seen n-gram is the
interpolated one and the back-off weight of a history is its interpolation weight ``gamma(h)``, so the
ARPA back-off formula gives exactly the interpolated distribution (which sums to one). Every n-gram's
prefix and suffix are listed at the lower order (ARPA readers such as kaldilm require it).

ARPA files (log10 probabilities and back-off weights, ``\\data\\`` counts, ``\\end\\``):
:meth:`NgramLM.write_arpa`, :meth:`NgramLM.read_arpa` (strict: a malformed line is an InputError naming
the file and line). Perplexity follows SRILM: ``</s>`` is counted, OOV words (without ``<UNK>`` in the
model) are skipped and counted.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import ConfigError, InputError
from asr.lang.transcripts import iter_transcripts

logger = logging.getLogger(__name__)

BOS = "<s>"
EOS = "</s>"
#: log10 probability ARPA files give ``<s>`` (never predicted).
BOS_LOG10_PROB = -99.0
METHODS = ("kn", "wb")
_ARPA_SPACE = " \t\r\n"
_ARPA_FIELDS = re.compile(r"[ \t]+")
_ARPA_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DISAMBIG = re.compile(r"#[0-9]+")
_ARPA_COUNT = re.compile(r"ngram[ \t]+([0-9]+)[ \t]*=[ \t]*([0-9]+)")
# what C's strtod reads whole (kaldilm parses numbers with it): float() also takes '1_0', '١.٥', ' 1'
_ARPA_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.I)


def _arpa_float(text: str) -> float:
    """A number of an ARPA file (ValueError unless all of ``text`` is one, in ASCII)."""
    if _ARPA_NUMBER.fullmatch(text) is None:
        raise ValueError(text)
    return float(text)


Ngram = tuple[str, ...]


@dataclass(frozen=True)
class Perplexity:
    """Result of :meth:`NgramLM.perplexity` (SRILM's definitions).

    ``sentences``, ``words`` (tokens read, OOVs included), ``oovs`` (skipped), ``log10_prob`` (sum over
    scored tokens incl. ``</s>``), ``perplexity`` = 10^(-log10_prob / (words - oovs + sentences)),
    ``perplexity_no_eos`` (``ppl1``: without the ``</s>`` tokens in the count).
    """

    sentences: int
    words: int
    oovs: int
    log10_prob: float
    perplexity: float
    perplexity_no_eos: float


class NgramLM:
    """A back-off n-gram model in ARPA terms.

    ``log10_probs[k-1]`` maps each k-gram (a tuple of words) to its log10 probability;
    ``log10_backoffs[k-1]`` maps k-grams that are histories to their log10 back-off weight (absent = 0).
    """

    def __init__(self, log10_probs: list[dict[Ngram, float]], log10_backoffs: list[dict[Ngram, float]]):
        if not log10_probs or len(log10_probs) != len(log10_backoffs):
            raise ValueError("need one probability and one back-off table per order")
        self.log10_probs = log10_probs
        self.log10_backoffs = log10_backoffs

    @property
    def order(self) -> int:
        return len(self.log10_probs)

    @property
    def vocab(self) -> list[str]:
        """Words the model predicts (its unigrams except ``<s>``), in the unigram table's order."""
        return [g[0] for g in self.log10_probs[0] if g[0] != BOS]

    def counts(self) -> list[int]:
        """Number of n-grams per order (the ``\\data\\`` section)."""
        return [len(t) for t in self.log10_probs]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NgramLM)
            and self.log10_probs == other.log10_probs
            and self.log10_backoffs == other.log10_backoffs
        )

    def __repr__(self) -> str:
        return f"NgramLM(order {self.order}, counts {self.counts()})"

    # ------------------------------------------------------------------ queries
    def log10_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """log10 p(word | history) by the ARPA back-off formula; -inf for a word not in the model."""
        h = tuple(history[len(history) - self.order + 1 :]) if self.order > 1 else ()
        backoff = 0.0
        while True:
            lp = self.log10_probs[len(h)].get((*h, word))
            if lp is not None:
                return backoff + lp
            if not h:
                return -math.inf
            backoff += self.log10_backoffs[len(h) - 1].get(h, 0.0)
            h = h[1:]

    def histories(self) -> list[Ngram]:
        """Every history with a back-off weight, plus the empty history ``()``."""
        return [(), *(h for table in self.log10_backoffs for h in table)]

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 p(words + ``</s>`` | ``<s>``); -inf if a word is not in the model."""
        history: list[str] = [BOS]
        total = 0.0
        for w in (*words, EOS):
            total += self.log10_prob(w, history)
            history.append(w)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]], *, oov_word: str | None = None) -> Perplexity:
        """Perplexity of ``sentences`` (word sequences without ``<s>``/``</s>``).

        Words not in the model are mapped to ``oov_word`` when it is given and in the model, else skipped
        (counted in ``oovs``; the following words back off past them, as in SRILM).
        """
        vocab = set(self.log10_probs[0])
        use_unk = oov_word is not None and (oov_word,) in vocab
        n_sent = n_words = n_oov = 0
        total = 0.0
        for sentence in sentences:
            n_sent += 1
            history: list[str] = [BOS]
            for w in (*sentence, EOS):
                if w != EOS:
                    n_words += 1
                if (w,) not in vocab and use_unk:
                    w = oov_word
                if (w,) not in vocab:
                    n_oov += 1
                else:
                    total += self.log10_prob(w, history)
                history.append(w)
        scored = n_words - n_oov + n_sent
        ppl = 10.0 ** (-total / scored) if scored else math.nan
        ppl1 = 10.0 ** (-total / (n_words - n_oov)) if n_words - n_oov else math.nan
        return Perplexity(n_sent, n_words, n_oov, total, ppl, ppl1)

    def missing_lower_order_ngrams(self) -> list[Ngram]:
        """N-grams whose prefix or suffix is missing from the lower order (an ARPA file must have none)."""
        missing = []
        for k in range(1, self.order):
            lower = self.log10_probs[k - 1]
            for g in self.log10_probs[k]:
                if g[:-1] not in lower or g[1:] not in lower:
                    missing.append(g)
        return missing

    # ------------------------------------------------------------------ ARPA I/O
    def write_arpa(self, path: str | os.PathLike) -> None:
        """Write the model as an ARPA file (atomically); n-grams sorted within each order."""
        with atomic_write(path) as f:
            f.write("\\data\\\n")
            for k, n in enumerate(self.counts(), start=1):
                f.write(f"ngram {k}={n}\n")
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                probs = self.log10_probs[k - 1]
                backoffs = self.log10_backoffs[k - 1]
                for g in sorted(probs):
                    line = f"{_fmt(probs[g])}\t{' '.join(g)}"
                    if g in backoffs:
                        line += f"\t{_fmt(backoffs[g])}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | os.PathLike) -> NgramLM:
        """Read an ARPA file.

        Raises:
            InputError: unreadable file; a malformed ``\\data\\`` or n-gram line (wrong number of fields,
                a probability or back-off weight that is not a number, a repeated n-gram); sections out
                of order; counts different from ``\\data\\``; no ``\\end\\``. Names file and line.
        """
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")  # not read_text(): no newline translation of a lone \r
        except OSError as e:
            raise InputError(f"cannot read ARPA file: {e.strerror}", path) from e
        except UnicodeDecodeError as e:
            raise InputError(f"ARPA file is not valid UTF-8 ({e.reason})", path) from e
        declared: dict[int, int] = {}
        probs: list[dict[Ngram, float]] = []
        backoffs: list[dict[Ngram, float]] = []
        state = "header"  # header -> data -> ngrams -> end
        order = 0
        section_line = 0
        lines = text.split("\n")  # not splitlines(): U+2028, \x85, \x1c... are no line ends for editors
        if lines and lines[-1] == "":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            # ASCII white space only, as Kaldi's (and kaldilm's) ARPA reader: a word may hold any other byte,
            # and a line of U+00A0 is not blank to kaldilm, which aborts the process on it
            line = raw.strip(_ARPA_SPACE)
            bad = _ARPA_CONTROL.search(line)
            if bad is not None:  # kaldilm reads words as C strings: a NUL splits them, and it aborts the process
                raise InputError(f"control character {bad.group()!r} in an ARPA line: {line!r}", path, number)
            if state == "header":
                if line == "\\data\\":
                    state = "data"
                continue
            if state == "end":
                if line:
                    raise InputError(f"text after \\end\\: {line!r}", path, number)
                continue
            if not line:
                continue
            if line == "\\end\\":
                _check_section_count(path, section_line, order, declared, probs)
                if order != len(declared):
                    raise InputError(f"\\end\\ after {order} of {len(declared)} declared orders", path, number)
                state = "end"
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                try:
                    k = int(line[1:-7])
                except ValueError:
                    raise InputError(f"bad section header {line!r}", path, number) from None
                if state == "data" and not declared:
                    raise InputError("\\data\\ section declares no n-gram counts", path, number)
                if state == "ngrams":
                    _check_section_count(path, section_line, order, declared, probs)
                if k != order + 1 or k not in declared:
                    raise InputError(f"section {line!r} out of order or not declared in \\data\\", path, number)
                order = k
                section_line = number
                probs.append({})
                backoffs.append({})
                state = "ngrams"
                continue
            if state == "data":
                m = _ARPA_COUNT.fullmatch(line)  # ASCII digits only (int() also reads '١' and '1_0')
                if m is None:
                    if line.startswith("ngram") and line.count("=") == 1:
                        raise InputError(f"bad count line {line!r}", path, number)
                    raise InputError(f"expected 'ngram N=COUNT' in \\data\\, got {line!r}", path, number)
                k, n = int(m.group(1)), int(m.group(2))
                if k != len(declared) + 1 or n < 0:
                    raise InputError(f"count line {line!r} out of order or negative", path, number)
                declared[k] = n
                continue
            # an n-gram line of order `order`
            fields = _ARPA_FIELDS.split(line)
            if len(fields) not in (order + 1, order + 2):
                raise InputError(
                    f"a {order}-gram line needs {order + 1} or {order + 2} fields, got {len(fields)}: {line!r}",
                    path,
                    number,
                )
            if len(fields) == order + 2 and order == len(declared):  # kaldilm aborts the process on it (fuzzing)
                raise InputError(f"a back-off weight on a highest-order ({order}-gram) line: {line!r}", path, number)
            try:
                lp = _arpa_float(fields[0])
                bow = _arpa_float(fields[order + 1]) if len(fields) == order + 2 else None
            except ValueError:
                raise InputError(f"probability or back-off weight is not a number: {line!r}", path, number) from None
            # finite only: kaldilm aborts the process on -inf (ARPA writers use -99 for probability zero)
            if not math.isfinite(lp) or lp > 0.0 or (bow is not None and not math.isfinite(bow)):
                raise InputError(f"bad log10 probability or back-off weight: {line!r}", path, number)
            g = tuple(fields[1 : order + 1])
            reserved = next((w for w in g if w == "<eps>" or _DISAMBIG.fullmatch(w)), None)
            if reserved is not None:  # symbols of the lang dir, not words: kaldilm aborts the process on them
                raise InputError(f"{reserved!r} is a reserved symbol, not a word: {line!r}", path, number)
            if g in probs[-1]:
                raise InputError(f"{order}-gram {' '.join(g)!r} repeated", path, number)
            probs[-1][g] = lp
            if bow is not None:
                backoffs[-1][g] = bow
        if state != "end":
            raise InputError(
                "no \\data\\ section" if state == "header" else "no \\end\\ (truncated file?)", path, len(lines) or None
            )
        if not probs:
            raise InputError("no n-grams", path)
        return cls(probs, backoffs)


def _check_section_count(path, section_line, order, declared, probs) -> None:
    if order and len(probs[order - 1]) != declared[order]:
        raise InputError(
            f"\\data\\ declares {declared[order]} {order}-grams, the section has {len(probs[order - 1])}",
            path,
            section_line,
        )


def _fmt(x: float) -> str:
    s = f"{x:.7g}"
    return "0" if s == "-0" else s


# ---------------------------------------------------------------------- estimation
def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw n-gram counts of padded sentences: ``counts[k-1][(w1..wk)]`` for k = 1..order.

    Only n-grams whose last word is not ``<s>`` are counted (``<s>`` is never predicted).
    """
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        tokens = (BOS, *sentence, EOS)
        for i in range(1, len(tokens)):
            for k in range(1, min(order, i + 1) + 1):
                counts[k - 1][tokens[i - k + 1 : i + 1]] += 1
    return counts


def modified_kn_discounts(count_values: Iterable[int], *, label: str = "") -> tuple[float, float, float]:
    """Chen & Goodman's discounts (D1, D2, D3+) from the count-of-counts n1..n4 of ``count_values``.

    When a count-of-count is zero or a discount falls outside (0, k], that discount is replaced by the
    single absolute discount ``Y = n1/(n1 + 2 n2)`` (0.5 when undefined) and a warning is logged.
    """
    coc = Counter(c for c in count_values if 1 <= c <= 4)
    n1, n2, n3, n4 = (coc[k] for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    discounts = []
    for k, (nk, nk1) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        d = k - (k + 1) * y * nk1 / nk if nk > 0 and nk1 > 0 else math.nan
        if not (0.0 < d <= k):
            logger.warning(
                "%s: count-of-counts n1..n4 = %s give D%d = %s; using %.3f", label, (n1, n2, n3, n4), k, d, y
            )
            d = y
        discounts.append(d)
    return discounts[0], discounts[1], discounts[2]


def _check_vocab(vocab: Iterable[str]) -> list[str]:
    words = sorted(set(vocab))
    for w in words:
        if w in (BOS, EOS) or w == "<eps>" or w.startswith("#") or not w or any(c.isspace() for c in w):
            raise ConfigError(f"{w!r} cannot be a vocabulary word of an n-gram model")
    if not words:
        raise ConfigError("empty vocabulary")
    return words


def train_ngram_lm(
    sentences: Iterable[Sequence[str]], vocab: Iterable[str], *, order: int = 3, method: str = "kn"
) -> NgramLM:
    """Estimate an interpolated back-off model (see the module docstring).

    Args:
        sentences: word sequences without ``<s>``/``</s>``; every word must be in ``vocab``.
        vocab: the model's words (e.g. the lexicon's); ``</s>`` is added, ``<s>`` is a history only.
        order: n-gram order, >= 1.
        method: ``"kn"`` (modified Kneser-Ney) or ``"wb"`` (Witten-Bell).
    Returns:
        the model (log10 probabilities and back-off weights).
    Raises:
        ConfigError: bad order/method/vocabulary, a training word outside ``vocab``, no training data.
    """
    if order < 1:
        raise ConfigError(f"order must be >= 1, got {order}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    words = _check_vocab(vocab)
    sentences = [tuple(s) for s in sentences]
    if not sentences:
        raise ConfigError("no training sentences")
    known = set(words)
    for s in sentences:
        for w in s:
            if w not in known:
                raise ConfigError(f"training word {w!r} is not in the vocabulary")
    counts = count_ngrams(sentences, order)
    predicted = [*words, EOS]  # the distribution's support
    if method == "kn":
        probs, gammas = _interpolate_kn(counts, order)
    else:
        probs, gammas = _interpolate_wb(counts, order)
    return _to_backoff_model(probs, gammas, predicted, order, method)


def _history_stats(counts: dict[Ngram, int]) -> dict[Ngram, list[int]]:
    """For each history h: [sum of counts, n1, n2, n3+, number of distinct words]."""
    stats: dict[Ngram, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for g, c in counts.items():
        s = stats[g[:-1]]
        s[0] += c
        s[min(c, 3)] += 1
        s[4] += 1
    return stats


def _interpolate_kn(counts: list[Counter], order: int):
    """Per order k: discounted relative frequencies ``(c - D)/c(h)`` for seen k-grams and ``gamma(h)``."""
    adjusted: list[dict[Ngram, int]] = [dict() for _ in range(order)]
    adjusted[order - 1] = dict(counts[order - 1])
    for k in range(order - 1, 0, -1):  # k-grams, 1-based order k, from continuation counts of (k+1)-grams
        continuation: Counter = Counter(g[1:] for g in counts[k])
        adjusted[k - 1] = {g: (c if g[0] == BOS else continuation[g]) for g, c in counts[k - 1].items()}
    probs: list[dict[Ngram, float]] = []
    gammas: list[dict[Ngram, float]] = []
    for k in range(1, order + 1):
        a = adjusted[k - 1]
        d1, d2, d3 = modified_kn_discounts(a.values(), label=f"{k}-grams")
        logger.debug("KN discounts for %d-grams: %.4f %.4f %.4f", k, d1, d2, d3)
        discount = (0.0, d1, d2, d3)
        stats = _history_stats(a)
        probs.append({g: (c - discount[min(c, 3)]) / stats[g[:-1]][0] for g, c in a.items()})
        gammas.append({h: (d1 * s[1] + d2 * s[2] + d3 * s[3]) / s[0] for h, s in stats.items()})
    return probs, gammas


def _interpolate_wb(counts: list[Counter], order: int):
    """Per order k: ``c/(c(h) + T(h))`` for seen k-grams and ``gamma(h) = T(h)/(c(h) + T(h))``."""
    probs: list[dict[Ngram, float]] = []
    gammas: list[dict[Ngram, float]] = []
    for k in range(1, order + 1):
        c = counts[k - 1]
        stats = _history_stats(c)
        probs.append({g: n / (stats[g[:-1]][0] + stats[g[:-1]][4]) for g, n in c.items()})
        gammas.append({h: s[4] / (s[0] + s[4]) for h, s in stats.items()})
    return probs, gammas


def _to_backoff_model(probs, gammas, predicted: list[str], order: int, method: str) -> NgramLM:
    """Turn per-order discounted frequencies and interpolation weights into ARPA tables.

    ``p_k(w|h) = probs[k][hw] + gamma_k(h) p_{k-1}(w|h[1:])`` for seen ``hw``; the lowest order interpolates
    with the uniform distribution over ``predicted``. Back-off weight of h = ``gamma_{|h|+1}(h)``.
    """
    uniform = 1.0 / len(predicted)
    gamma0 = gammas[0][()]
    full: list[dict[Ngram, float]] = [{(w,): gamma0 * uniform + probs[0].get((w,), 0.0) for w in predicted}]
    for k in range(2, order + 1):
        lower = full[k - 2]
        table = {}
        for g, p in probs[k - 1].items():
            table[g] = p + gammas[k - 1][g[:-1]] * lower[g[1:]]
        full.append(table)
    log10_probs = [{g: math.log10(p) for g, p in table.items()} for table in full]
    log10_probs[0][(BOS,)] = BOS_LOG10_PROB
    log10_backoffs: list[dict[Ngram, float]] = [dict() for _ in range(order)]
    for k in range(2, order + 1):
        for h, gamma in gammas[k - 1].items():
            log10_backoffs[k - 2][h] = math.log10(gamma)
    lm = NgramLM(log10_probs, log10_backoffs)
    logger.info("estimated %s order-%d model: n-gram counts %s", method, order, lm.counts())
    return lm


# ---------------------------------------------------------------------- training text
def read_training_sentences(
    text_paths: Iterable[str | os.PathLike], vocab: Iterable[str], *, oov_word: str | None = None
) -> list[tuple[str, ...]]:
    """Sentences of Kaldi ``text`` files (utt-id dropped), words outside ``vocab`` mapped to ``oov_word``.

    Raises:
        InputError: a word outside ``vocab`` while ``oov_word`` is None (or not in ``vocab``), naming
            the text file and line.
    """
    known = set(vocab)
    if oov_word is not None and oov_word not in known:
        raise ConfigError(f"OOV word {oov_word!r} is not in the vocabulary")
    sentences = []
    n_mapped = 0
    for t in iter_transcripts(text_paths):
        words = []
        for w in t.words:
            if w not in known:
                if oov_word is None:
                    raise InputError(
                        f"word {w!r} (utterance {t.utt_id}) is not in the vocabulary and no OOV word is set",
                        t.path,
                        t.line,
                    )
                n_mapped += 1
                w = oov_word
            words.append(w)
        sentences.append(tuple(words))
    if n_mapped:
        logger.warning("mapped %d OOV token(s) to %s", n_mapped, oov_word)
    return sentences
