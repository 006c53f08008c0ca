"""Phones, lexicons, n-gram language models and the lang directory (phones.txt, words.txt, L, G).

Modules: :mod:`~asr.lang.symbol_table` (OpenFst text symbol tables), :mod:`~asr.lang.phones` (CMU 39 +
SIL + SPN), :mod:`~asr.lang.lexicon` (corpus dictionaries, CMUdict, OOVs), :mod:`~asr.lang.lexicon_fst`
(L and L_disambig), :mod:`~asr.lang.prepare_lang` / :mod:`~asr.lang.lang_dir` (write / load a lang
directory), :mod:`~asr.lang.ngram` / :mod:`~asr.lang.prepare_lm` (our Kneser-Ney and Witten-Bell
estimator, ARPA files, perplexity), :mod:`~asr.lang.grammar` (G.fst).
"""

from asr.lang.lang_dir import Lang
from asr.lang.lexicon import Lexicon, Pronunciation, load_cmudict, read_lexicon
from asr.lang.ngram import NgramLM, train_ngram_lm
from asr.lang.symbol_table import SymbolTable

__all__ = [
    "Lang",
    "Lexicon",
    "NgramLM",
    "Pronunciation",
    "SymbolTable",
    "load_cmudict",
    "read_lexicon",
    "train_ngram_lm",
]
