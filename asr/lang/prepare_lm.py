"""Estimate an n-gram LM over a lang directory's vocabulary and write it as an ARPA file.

Usage::

    python -m asr.lang.prepare_lm --text data/an4/train/text --lang data/an4/lang --order 3 --method kn \\
        --out data/an4/lang/lm.arpa [--eval-text data/an4/dev/text]

Text files are in Kaldi format (first field the utterance id). The vocabulary is the lang's words.txt
without ``<eps>``, ``#0``, ``<s>``, ``</s>``. Training words outside it are an error naming the text file
and line, unless the lang has an OOV word (``oov.txt``) or ``--oov-word`` is given: then they are
mapped to it. With ``--eval-text`` the perplexity of those texts is logged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from asr.errors import AsrError
from asr.lang.lang_dir import BOS, EOS, WORD_DISAMBIG, Lang
from asr.lang.ngram import METHODS, NgramLM, read_training_sentences, train_ngram_lm
from asr.lang.phones import is_disambig
from asr.lang.symbol_table import EPSILON, SymbolTable
from asr.lang.transcripts import iter_transcripts

logger = logging.getLogger(__name__)


def lm_vocabulary(words: SymbolTable) -> list[str]:
    """The LM vocabulary of a words.txt: every symbol except ``<eps>``, ``#k``, ``<s>``, ``</s>``."""
    return [w for w, _ in words if w not in (EPSILON, WORD_DISAMBIG, BOS, EOS) and not is_disambig(w)]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.lang.prepare_lm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", nargs="+", required=True, help="training text file(s), Kaldi format")
    parser.add_argument("--lang", required=True, help="lang directory (its words.txt is the vocabulary)")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--method", choices=METHODS, default="kn", help="kn: modified Kneser-Ney; wb: Witten-Bell")
    parser.add_argument("--oov-word", default=None, help="map training OOVs to this word (default: the lang's oov.txt)")
    parser.add_argument("--eval-text", nargs="*", default=[], help="text file(s) whose perplexity is logged")
    parser.add_argument("--out", required=True, help="ARPA file to write")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        lang = Lang.load(args.lang)
        vocab = lm_vocabulary(lang.words)
        oov_word = args.oov_word if args.oov_word is not None else lang.oov_word
        sentences = read_training_sentences(args.text, vocab, oov_word=oov_word)
        lm = train_ngram_lm(sentences, vocab, order=args.order, method=args.method)
        lm.write_arpa(args.out)
        logger.info("wrote %s (%d training sentences)", args.out, len(sentences))
        if args.eval_text:
            ppl = NgramLM.perplexity(lm, (t.words for t in iter_transcripts(args.eval_text)), oov_word=oov_word)
            logger.info(
                "perplexity on %s: %.3f (%d sentences, %d words, %d OOVs, ppl1 %.3f)",
                " ".join(args.eval_text),
                ppl.perplexity,
                ppl.sentences,
                ppl.words,
                ppl.oovs,
                ppl.perplexity_no_eos,
            )
    except AsrError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
