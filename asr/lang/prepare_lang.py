"""Write a lang directory from a lexicon (Kaldi's ``utils/prepare_lang.sh``, position-independent phones).

Usage::

    python -m asr.lang.prepare_lang --dict /path/to/an4/etc/an4.dic --words-from data/an4/train/text \\
        --out data/an4/lang
    python -m asr.lang.prepare_lang --dict cmudict --words-from data/x/text --oov-word '<UNK>' --out data/x/lang

With ``--dict cmudict`` and ``--words-from``, the lexicon is restricted to the words of the texts (the
whole of CMUdict makes a 126k-word lang). A corpus dictionary is kept whole. Words of the texts missing
from the lexicon are listed; they are an error unless ``--oov-word`` is given (then ``<UNK>``, pronounced
``SPN``, is added to the lexicon and written to ``oov.txt``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from asr.atomic import atomic_write
from asr.errors import AsrError, ConfigError
from asr.lang.lang_dir import BOS, EOS, WORD_DISAMBIG, write_fst
from asr.lang.lexicon import Lexicon, add_oov_word, check_oovs, load_cmudict, read_lexicon
from asr.lang.lexicon_fst import add_lex_disambig, make_l_fsts
from asr.lang.phones import SIL, SILENCE_PHONES, is_disambig, make_phone_table
from asr.lang.symbol_table import SymbolTable
from asr.lang.transcripts import iter_transcripts

logger = logging.getLogger(__name__)


def make_word_table(lexicon: Lexicon) -> SymbolTable:
    """``words.txt``: ``<eps>`` 0, the lexicon's words sorted, then ``#0``, ``<s>``, ``</s>``."""
    return SymbolTable([*lexicon.words, WORD_DISAMBIG, BOS, EOS])


def _write_list(path: Path, items: Iterable[object]) -> None:
    with atomic_write(path) as f:
        for item in items:
            f.write(f"{item}\n")


def prepare_lang(
    lexicon: Lexicon,
    out_dir: str | os.PathLike,
    *,
    sil_prob: float = 0.5,
    oov_word: str | None = None,
    nonsilence_phones: Iterable[str] | None = None,
) -> Path:
    """Write a lang directory (layout in :mod:`asr.lang.lang_dir`) and return its path.

    Args:
        lexicon: the pronunciations (not modified).
        out_dir: the directory to write (created; files in it are replaced atomically one by one).
        sil_prob: optional-silence probability at the start and between words, in [0, 1).
        oov_word: if given (e.g. ``"<UNK>"``), added with pronunciation ``SPN`` when absent and
            written to ``oov.txt``/``oov.int``.
        nonsilence_phones: the non-silence phone inventory (default: the phones the lexicon uses);
            must cover the lexicon's phones.
    Returns:
        ``out_dir`` as a Path.
    """
    if not (0.0 <= sil_prob < 1.0):
        raise ConfigError(f"sil_prob must be in [0, 1), got {sil_prob}")
    lexicon = Lexicon(lexicon)
    if oov_word is not None:
        add_oov_word(lexicon, oov_word)
    used = lexicon.phones() - set(SILENCE_PHONES)
    if nonsilence_phones is None:
        nonsilence = used
    else:
        nonsilence = set(nonsilence_phones) - set(SILENCE_PHONES)
        if used - nonsilence:
            raise ConfigError(f"the lexicon uses phones outside nonsilence_phones: {sorted(used - nonsilence)}")
    lex_disambig = add_lex_disambig(lexicon)
    phones = make_phone_table(nonsilence, lex_disambig.num_disambig)
    words = make_word_table(lexicon)
    L, L_disambig = make_l_fsts(lexicon, phones, words, sil_prob=sil_prob, lex_disambig=lex_disambig)

    out = Path(out_dir)
    (out / "phones").mkdir(parents=True, exist_ok=True)
    old_words = out / "words.txt"
    if (out / "G.fst").exists() and (not old_words.exists() or SymbolTable.read(old_words) != words):
        logger.warning("%s: removing G.fst, made for a different words.txt", out)
        (out / "G.fst").unlink()
    phones.write(out / "phones.txt")
    words.write(out / "words.txt")
    lexicon.write(out / "lexicon.txt")
    lexicon.write(out / "lexiconp.txt", with_probs=True)
    write_fst(L, out / "L.fst")
    write_fst(L_disambig, out / "L_disambig.fst")

    groups = {
        "silence": list(SILENCE_PHONES),
        "nonsilence": [s for s, i in phones if i > 0 and s not in SILENCE_PHONES and not is_disambig(s)],
        "disambig": [s for s, _ in phones if is_disambig(s)],
        "optional_silence": [SIL],
    }
    for name, symbols in groups.items():
        _write_list(out / "phones" / f"{name}.txt", symbols)
        _write_list(out / "phones" / f"{name}.int", phones.ids(symbols))
    _write_list(out / "phones" / "wdisambig_phones.int", [phones.id("#0")])
    _write_list(out / "phones" / "wdisambig_words.int", [words.id(WORD_DISAMBIG)])
    for name in ("oov.txt", "oov.int"):
        if oov_word is None and (out / name).exists():
            (out / name).unlink()
    if oov_word is not None:
        _write_list(out / "oov.txt", [oov_word])
        _write_list(out / "oov.int", [words.id(oov_word)])
    logger.info(
        "wrote %s: %d words, %d pronunciations, %d non-silence phones, %d disambiguation symbols, sil_prob %g",
        out,
        len(lexicon),
        lexicon.num_pronunciations,
        len(groups["nonsilence"]),
        len(groups["disambig"]),
        sil_prob,
    )
    return out


def load_dictionary(source: str, text_paths: Sequence[str | os.PathLike] = ()) -> Lexicon:
    """The lexicon named on the command line: ``"cmudict"`` or a dictionary file path.

    With ``"cmudict"`` and ``text_paths``, only the words of the texts are kept.
    """
    if source == "cmudict":
        words = {w for t in iter_transcripts(text_paths) for w in t.words} if text_paths else None
        return load_cmudict(words)
    return read_lexicon(source)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.lang.prepare_lang", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dict", required=True, help="corpus dictionary (an4.dic, lexicon.txt) or 'cmudict'")
    parser.add_argument("--words-from", nargs="*", default=[], help="Kaldi text files whose words must be covered")
    parser.add_argument("--oov-word", default=None, help="map OOV words to this word (pronounced SPN), e.g. '<UNK>'")
    parser.add_argument("--sil-prob", type=float, default=0.5, help="optional silence probability (default 0.5)")
    parser.add_argument("--out", required=True, help="lang directory to write")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        lexicon = load_dictionary(args.dict, args.words_from)
        if args.words_from:
            check_oovs(lexicon, args.words_from, oov_word=args.oov_word)
        prepare_lang(lexicon, args.out, sil_prob=args.sil_prob, oov_word=args.oov_word)
    except AsrError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
