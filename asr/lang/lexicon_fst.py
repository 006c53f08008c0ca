"""The lexicon transducer L (phones -> words), with Kaldi's ``make_lexicon_fst.py`` semantics.

Structure (``sil_prob`` > 0, as Kaldi's ``write_fst_with_silence``): a start state 0 goes to the loop
state 1 with cost -log(1 - sil_prob) or to the silence state 2 with cost -log(sil_prob); every
pronunciation leaves the loop state (the word on its first arc, cost -log(pron_prob)) and ends either
back at the loop state (cost -log(1 - sil_prob)) or at the silence state (cost -log(sil_prob)); the
silence state returns to the loop state through ``SIL`` (followed, in ``L_disambig``, by the silence
disambiguation symbol, Kaldi's ``--sil-disambig``). Only the loop state is final. So silence is optional
at the start and between words, and after the last word. With ``sil_prob`` = 0 there is a single
loop state, start and final (Kaldi's ``write_fst_no_silence``).

Disambiguation (Kaldi's ``add_lex_disambig.pl``): a pronunciation that is a proper prefix of another
one, or shared by several entries (homophones), gets ``#1``, ``#2``, ... appended (numbered per phone
sequence); ``#0`` is kept for G's backoff arcs and passes through ``L_disambig`` as a ``#0:#0``
self-loop (``kaldifst.add_self_loops``); the last symbol ``#N`` is the silence disambiguation symbol.

Both ``L`` and ``L_disambig`` are arcsorted by output label, ready to be composed with G on the right.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import kaldifst

from asr.lang.lexicon import Lexicon, Pronunciation
from asr.lang.phones import SIL
from asr.lang.symbol_table import SymbolTable


@dataclass(frozen=True)
class DisambigLexicon:
    """``entries``: pronunciations with disambiguation symbols appended to ``phones`` where needed;
    ``max_disambig``: the largest ``#k`` used (0 when none was needed)."""

    entries: tuple[Pronunciation, ...]
    max_disambig: int

    @property
    def num_disambig(self) -> int:
        """Number of phone disambiguation symbols the lang needs: ``#0`` (backoff), ``#1..#max``, and the
        silence disambiguation symbol ``#(max+1)``."""
        return self.max_disambig + 2

    @property
    def sil_disambig(self) -> str:
        """The silence disambiguation symbol ``#(max_disambig + 1)``."""
        return f"#{self.max_disambig + 1}"


def add_lex_disambig(lexicon: Lexicon | Iterable[Pronunciation], first_allowed: int = 1) -> DisambigLexicon:
    """Append disambiguation symbols to pronunciations that are prefixes of others or homophones.

    Args:
        lexicon: the entries (in the order the symbols are assigned).
        first_allowed: the first symbol to use (1: ``#0`` is reserved for G's backoff).
    Returns:
        the augmented entries and the largest symbol number used (0 when none).
    """
    entries = list(lexicon)
    count = Counter(e.phones for e in entries)
    is_prefix: set[tuple[str, ...]] = set()
    for phones in count:
        for i in range(1, len(phones)):
            is_prefix.add(phones[:i])
    last_used: dict[tuple[str, ...], int] = {}
    max_disambig = 0
    out: list[Pronunciation] = []
    for e in entries:
        phones = e.phones
        if phones in is_prefix or count[phones] > 1:
            k = last_used.get(phones, first_allowed - 1) + 1
            last_used[phones] = k
            max_disambig = max(max_disambig, k)
            phones = (*phones, f"#{k}")
        out.append(Pronunciation(e.word, phones, e.prob))
    return DisambigLexicon(tuple(out), max_disambig)


def _format_cost(cost: float) -> str:
    return "0" if cost == 0.0 else f"{cost:.8g}"


def make_lexicon_fst(
    entries: Iterable[Pronunciation],
    phones: SymbolTable,
    words: SymbolTable,
    *,
    sil_prob: float = 0.5,
    sil_phone: str = SIL,
    sil_disambig: str | None = None,
) -> kaldifst.StdVectorFst:
    """Build L from pronunciations (phones may end with disambiguation symbols); not arcsorted.

    Args:
        entries: the pronunciations; every phone/disambiguation symbol must be in ``phones`` and every
            word in ``words``.
        phones, words: the lang's symbol tables (input and output labels).
        sil_prob: probability of silence at the start and after each word, in [0, 1).
        sil_phone: the optional-silence phone.
        sil_disambig: if given, the symbol that follows the optional silence (``L_disambig``).
    Returns:
        L with phone-id input labels, word-id output labels and costs in -ln (tropical semiring).
    """
    if not (0.0 <= sil_prob < 1.0):
        raise ValueError(f"sil_prob must be in [0, 1), got {sil_prob}")
    lines: list[str] = []
    eps = 0

    def arc(src: int, dst: int, ilabel: int, olabel: int, cost: float) -> None:
        lines.append(f"{src}\t{dst}\t{ilabel}\t{olabel}\t{_format_cost(cost)}")

    if sil_prob > 0.0:
        sil_cost = -math.log(sil_prob)
        no_sil_cost = -math.log(1.0 - sil_prob)
        start_state, loop_state, sil_state, next_state = 0, 1, 2, 3
        arc(start_state, loop_state, eps, eps, no_sil_cost)
        arc(start_state, sil_state, eps, eps, sil_cost)
        sil_id = phones.id(sil_phone)
        if sil_disambig is None:
            arc(sil_state, loop_state, sil_id, eps, 0.0)
        else:
            sil_disambig_state = next_state
            next_state += 1
            arc(sil_state, sil_disambig_state, sil_id, eps, 0.0)
            arc(sil_disambig_state, loop_state, phones.id(sil_disambig), eps, 0.0)
        ends = ((loop_state, no_sil_cost), (sil_state, sil_cost))
    else:
        loop_state, next_state = 0, 1
        ends = ((loop_state, 0.0),)

    for e in entries:
        pron_cost = -math.log(e.prob)
        labels = phones.ids(e.phones)
        word_id = words.id(e.word)
        if not labels:
            raise ValueError(f"word {e.word!r} has an empty pronunciation")
        cur = loop_state
        for i, label in enumerate(labels[:-1]):
            arc(cur, next_state, label, word_id if i == 0 else eps, pron_cost if i == 0 else 0.0)
            cur = next_state
            next_state += 1
        first = len(labels) == 1
        for dst, cost in ends:
            arc(cur, dst, labels[-1], word_id if first else eps, cost + (pron_cost if first else 0.0))
    lines.append(f"{loop_state}\t0")
    fst = kaldifst.compile("\n".join(lines) + "\n", acceptor=False, keep_state_numbering=True)
    fst.start = 0
    return fst


def make_l_fsts(
    lexicon: Lexicon,
    phones: SymbolTable,
    words: SymbolTable,
    *,
    sil_prob: float = 0.5,
    lex_disambig: DisambigLexicon | None = None,
) -> tuple[kaldifst.StdVectorFst, kaldifst.StdVectorFst]:
    """Build ``(L, L_disambig)`` for a lang whose tables already hold the disambiguation symbols.

    ``L_disambig`` has the pronunciation disambiguation symbols of :func:`add_lex_disambig` (pass its
    result as ``lex_disambig`` if already computed), the silence disambiguation symbol and a ``#0:#0``
    self-loop for G's backoff arcs. Both are arcsorted by olabel.
    """
    if lex_disambig is None:
        lex_disambig = add_lex_disambig(lexicon)
    if f"#{lex_disambig.num_disambig - 1}" not in phones:
        raise ValueError(f"phones table lacks disambiguation symbols up to {lex_disambig.sil_disambig}")
    L = make_lexicon_fst(lexicon, phones, words, sil_prob=sil_prob)
    L_disambig = make_lexicon_fst(
        lex_disambig.entries, phones, words, sil_prob=sil_prob, sil_disambig=lex_disambig.sil_disambig
    )
    kaldifst.add_self_loops(L_disambig, [phones.id("#0")], [words.id("#0")])
    kaldifst.arcsort(L, sort_type="olabel")
    kaldifst.arcsort(L_disambig, sort_type="olabel")
    return L, L_disambig
