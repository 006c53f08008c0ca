"""Grammars G (word acceptors, arcsorted by ilabel): from an ARPA LM via kaldilm, or built by hand.

- :func:`arpa_to_g`: Kaldi's ``arpa2fst --disambig-symbol=#0`` through kaldilm: back-off arcs read ``#0``
  (epsilon on the output), ``<s>``/``</s>`` become epsilon, costs are -ln. kaldilm ABORTS THE PROCESS
  when ``#0`` (or ``<s>``/``</s>``) is missing from the symbol table and silently drops ARPA words
  missing from it, so both are checked here first and reported as InputErrors.
- :func:`word_loop_g`: one state looping over words with probabilities (cost -ln p); :func:`yes_no_g`
  (YES, NO) and :func:`digit_loop_g` (ZERO..NINE, OH) are word loops with uniform weights.
- :func:`add_grammar`: write ``G.fst`` into a lang directory, or into a copy of it (Kaldi's
  ``lang_test_tg``).

Usage::

    python -m asr.lang.grammar --lang data/an4/lang --arpa data/an4/lang/lm.arpa [--out data/an4/lang_test_tg]
    python -m asr.lang.grammar --lang data/yesno/lang --kind yesno
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import kaldifst

from asr.errors import AsrError, ConfigError, InputError
from asr.lang.lang_dir import BOS, EOS, WORD_DISAMBIG, write_fst
from asr.lang.ngram import NgramLM
from asr.lang.symbol_table import SymbolTable

logger = logging.getLogger(__name__)

YES_NO_WORDS = ("YES", "NO")
DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "OH")
KINDS = ("arpa", "yesno", "digits", "word_loop")


def _check_arpa_words(arpa_path: Path, words: SymbolTable, words_path: Path) -> None:
    """InputError naming the ARPA line of the first unigram missing from ``words``."""
    in_unigrams = False
    with open(arpa_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip(" \t\r\n")  # as NgramLM.read_arpa and kaldilm: ASCII white space only
            if line.startswith("\\"):
                if in_unigrams:
                    return
                in_unigrams = line == "\\1-grams:"
                continue
            if in_unigrams and line:
                fields = re.split(r"[ \t]+", line)
                if len(fields) >= 2 and fields[1] not in words:
                    raise InputError(
                        f"ARPA word {fields[1]!r} is not in {words_path} (was the LM made for another lang?)",
                        arpa_path,
                        number,
                    )


def arpa_to_g(
    arpa_path: str | os.PathLike, words_path: str | os.PathLike, *, disambig_symbol: str = WORD_DISAMBIG
) -> kaldifst.StdVectorFst:
    """G from an ARPA file with kaldilm, labels from ``words_path`` (a lang's words.txt), arcsorted by ilabel.

    Args:
        arpa_path: the ARPA file (validated with :meth:`NgramLM.read_arpa` first).
        words_path: the symbol table.
        disambig_symbol: the back-off input label (``"#0"``); ``""`` gives epsilon back-off arcs.
    Raises:
        InputError: a malformed ARPA file, ``#0``/``<s>``/``</s>`` missing from words.txt (kaldilm
            would abort the process), an ARPA word missing from words.txt.
    """
    import kaldilm

    arpa_path, words_path = Path(arpa_path), Path(words_path)
    lm = NgramLM.read_arpa(arpa_path)  # a clear file:line error instead of kaldilm's
    missing = lm.missing_lower_order_ngrams()
    if missing:  # kaldilm accepts these silently
        logger.warning(
            "%s: %d n-gram(s) whose prefix or suffix is missing from the lower order, e.g. %r",
            arpa_path,
            len(missing),
            " ".join(missing[0]),
        )
    words = SymbolTable.read(words_path)
    needed = [BOS, EOS] + ([disambig_symbol] if disambig_symbol else [])
    for symbol in needed:
        if symbol not in words:
            raise InputError(f"{symbol} is not in the symbol table (kaldilm would abort)", words_path)
    _check_arpa_words(arpa_path, words, words_path)
    text = kaldilm.arpa2fst(
        os.fspath(arpa_path),
        disambig_symbol=disambig_symbol,
        read_symbol_table=os.fspath(words_path),
        max_arpa_warnings=-1,
    )
    G = kaldifst.compile(text, acceptor=False)
    kaldifst.arcsort(G, sort_type="ilabel")
    return G


def word_loop_g(
    words: Sequence[str] | Mapping[str, float], symbols: SymbolTable, *, allow_empty: bool = True
) -> kaldifst.StdVectorFst:
    """A word loop: any sequence of ``words``; each word costs -ln of its (normalized) probability.

    Args:
        words: the words (uniform weights) or ``{word: weight}`` with positive weights, normalized to sum 1.
        symbols: the lang's words.txt.
        allow_empty: also accept the empty sequence (the start state is final); otherwise at least one word.
    Returns:
        G (acceptor, word ids on both sides), arcsorted by ilabel.
    Raises:
        ConfigError: no words, a repeated word, a weight that is not positive, a word missing from ``symbols``.
    """
    weights = dict(words) if isinstance(words, Mapping) else {}
    if not isinstance(words, Mapping):
        for w in words:
            if w in weights:
                raise ConfigError(f"word {w!r} repeated in the word loop")
            weights[w] = 1.0
    if not weights:
        raise ConfigError("a word loop needs at least one word")
    missing = [w for w in weights if w not in symbols]
    if missing:
        raise ConfigError(f"word loop words missing from words.txt: {missing}")
    bad = [w for w, x in weights.items() if not (x > 0.0 and math.isfinite(x))]
    if bad:
        raise ConfigError(f"word loop weights must be positive and finite: {bad}")
    total = sum(weights.values())
    G = kaldifst.StdVectorFst()
    start = G.add_state()
    G.start = start
    loop = start if allow_empty else G.add_state()
    for w, x in weights.items():
        cost = -math.log(x / total)
        wid = symbols.id(w)
        G.add_arc(start, kaldifst.StdArc(wid, wid, cost, loop))
        if loop != start:
            G.add_arc(loop, kaldifst.StdArc(wid, wid, cost, loop))
    G.set_final(loop, 0.0)
    kaldifst.arcsort(G, sort_type="ilabel")
    return G


def yes_no_g(symbols: SymbolTable) -> kaldifst.StdVectorFst:
    """Loop over YES and NO (at least one word), each with probability 1/2."""
    return word_loop_g(YES_NO_WORDS, symbols, allow_empty=False)


def digit_loop_g(symbols: SymbolTable) -> kaldifst.StdVectorFst:
    """Loop over ZERO..NINE and OH (at least one word), uniform."""
    return word_loop_g(DIGIT_WORDS, symbols, allow_empty=False)


def add_grammar(
    lang_dir: str | os.PathLike,
    kind: str = "arpa",
    *,
    arpa: str | os.PathLike | None = None,
    words: Sequence[str] | Mapping[str, float] | None = None,
    out_dir: str | os.PathLike | None = None,
) -> Path:
    """Write ``G.fst`` for a lang directory; return its path.

    Args:
        lang_dir: the lang directory (its words.txt labels G).
        kind: ``"arpa"`` (needs ``arpa``), ``"yesno"``, ``"digits"`` or ``"word_loop"`` (needs ``words``).
        out_dir: if given, ``lang_dir`` is copied there (replacing an existing copy) and G goes into the
            copy, like Kaldi's ``lang_test_tg``; else G is written into ``lang_dir``.
    """
    lang_dir = Path(lang_dir)
    words_path = lang_dir / "words.txt"
    symbols = SymbolTable.read(words_path)
    if kind == "arpa":
        if arpa is None:
            raise ConfigError("kind='arpa' needs an ARPA file")
        G = arpa_to_g(arpa, words_path)
    elif kind == "yesno":
        G = yes_no_g(symbols)
    elif kind == "digits":
        G = digit_loop_g(symbols)
    elif kind == "word_loop":
        if not words:
            raise ConfigError("kind='word_loop' needs words")
        G = word_loop_g(words, symbols)
    else:
        raise ConfigError(f"unknown grammar kind {kind!r}; one of {KINDS}")
    target = lang_dir
    if out_dir is not None and Path(out_dir).resolve() != lang_dir.resolve():
        target = Path(out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            staged = tmp / "lang"
            shutil.copytree(lang_dir, staged, ignore=shutil.ignore_patterns("G.fst"))
            write_fst(G, staged / "G.fst")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        write_fst(G, target / "G.fst")
    logger.info("wrote %s (%s grammar, %d states)", target / "G.fst", kind, G.num_states)
    return target / "G.fst"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.lang.grammar", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", required=True, help="lang directory")
    parser.add_argument("--kind", choices=KINDS, default=None, help="default: arpa with --arpa, else required")
    parser.add_argument("--arpa", default=None, help="ARPA LM (kind arpa)")
    parser.add_argument("--words", nargs="*", default=None, help="words of a word loop (kind word_loop)")
    parser.add_argument("--out", default=None, help="copy the lang dir here and put G.fst in the copy")
    args = parser.parse_args(argv)
    setup_logging()
    kind = args.kind or ("arpa" if args.arpa else None)
    if kind is None:
        parser.error("give --kind or --arpa")
    try:
        add_grammar(args.lang, kind, arpa=args.arpa, words=args.words, out_dir=args.out)
    except AsrError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
