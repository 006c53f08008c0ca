"""Tiny hand-made lexicons, grammars and context dependencies, for tests, examples and benchmarks.

These build FSTs by hand with kaldifst, independently of ``asr.lang`` (which builds the real ones from a
lang directory), following the same conventions: phone ids ``<eps>=0, SIL=1, SPN=2``, non-silence phones
from 3, disambiguation phones last; word ids from 1; Kaldi's lexicon FST layout with optional silence.

``python -m asr.graph.toy`` builds HCLGs for the toy grammars (monophone and toy triphone context) and
prints their sizes and build times (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import kaldifst
import numpy as np

SIL = 1
SPN = 2


def add_lexicon_disambig(
    lexicon: Sequence[tuple[int, Sequence[int]]], first_disambig_phone: int
) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Append ``#1, #2...`` to pronunciations that are prefixes of others or shared (Kaldi's add_lex_disambig).

    Args:
        lexicon: ``(word_id, phones)`` entries.
        first_disambig_phone: phone id of ``#0`` (``#k`` is ``first_disambig_phone + k``).

    Returns:
        ``(entries with disambiguation phones, phone ids of #0..#K)``.
    """
    prons = [tuple(p) for _, p in lexicon]
    count: dict[tuple[int, ...], int] = {}
    for p in prons:
        count[p] = count.get(p, 0) + 1
    prefixes = {p[:k] for p in prons for k in range(1, len(p))}
    used: dict[tuple[int, ...], int] = {}
    max_k = 0
    out = []
    for (word, _), p in zip(lexicon, prons):
        phones = list(p)
        if count[p] > 1 or p in prefixes:
            k = used.get(p, 0) + 1
            used[p] = k
            max_k = max(max_k, k)
            phones.append(first_disambig_phone + k)
        out.append((word, phones))
    return out, [first_disambig_phone + k for k in range(max_k + 1)]


def make_lexicon_fst(
    lexicon: Sequence[tuple[int, Sequence[int]]],
    silence_phone: int | None = SIL,
    silence_prob: float = 0.5,
) -> kaldifst.StdVectorFst:
    """Kaldi's ``make_lexicon_fst.py`` layout: phones -> words with optional silence between words.

    State 0 is the start, state 1 the loop state (final), state 2 the silence state (``SIL:<eps>`` to
    the loop state). Each word leaves the loop state and returns to the loop state (cost
    ``-log(1 - silence_prob)``) or to the silence state (cost ``-log(silence_prob)``). The start state
    reaches the loop state directly or through silence with the same costs. ``silence_phone=None`` or
    ``silence_prob=0`` gives no optional silence.

    Args:
        lexicon: ``(word_id, phone ids)`` entries (disambiguation phones included if wanted).
        silence_phone: phone id of the optional silence.
        silence_prob: probability of silence after each word and at the start.
    """
    fst = kaldifst.StdVectorFst()
    start = fst.add_state()
    loop = fst.add_state()
    fst.start = start
    fst.set_final(loop, 0.0)
    use_sil = silence_phone is not None and silence_prob > 0.0
    if use_sil:
        sil = fst.add_state()
        nosil_cost = -math.log(1.0 - silence_prob)
        sil_cost = -math.log(silence_prob)
        fst.add_arc(start, kaldifst.StdArc(0, 0, nosil_cost, loop))
        fst.add_arc(start, kaldifst.StdArc(0, 0, sil_cost, sil))
        fst.add_arc(sil, kaldifst.StdArc(silence_phone, 0, 0.0, loop))
    else:
        fst.add_arc(start, kaldifst.StdArc(0, 0, 0.0, loop))
    for word, phones in lexicon:
        if not phones:
            raise ValueError(f"word {word} has an empty pronunciation")
        cur = loop
        for i, phone in enumerate(phones[:-1]):
            nxt = fst.add_state()
            fst.add_arc(cur, kaldifst.StdArc(phone, word if i == 0 else 0, 0.0, nxt))
            cur = nxt
        last_word = word if len(phones) == 1 else 0
        if use_sil:
            fst.add_arc(cur, kaldifst.StdArc(phones[-1], last_word, nosil_cost, loop))
            fst.add_arc(cur, kaldifst.StdArc(phones[-1], last_word, sil_cost, sil))
        else:
            fst.add_arc(cur, kaldifst.StdArc(phones[-1], last_word, 0.0, loop))
    return fst


def add_disambig_loop(lexicon_fst: kaldifst.StdVectorFst, phone_disambig0: int, word_disambig0: int) -> None:
    """Add the ``#0:#0`` loop that lets G's backoff symbol through L (in place; Kaldi fstaddselfloops)."""
    kaldifst.add_self_loops(lexicon_fst, [phone_disambig0], [word_disambig0])


def make_sentence_grammar(
    sentences: Sequence[Sequence[int]], costs: Sequence[float] | None = None
) -> kaldifst.StdVectorFst:
    """G accepting exactly the given word sequences (a prefix tree, ilabel == olabel).

    Args:
        sentences: word-id sequences (non-empty).
        costs: optional cost per sentence, put on its final state (default 0).
    """
    fst = kaldifst.StdVectorFst()
    root = fst.add_state()
    fst.start = root
    children: dict[tuple[int, int], int] = {}
    for k, words in enumerate(sentences):
        cur = root
        for w in words:
            key = (cur, int(w))
            if key not in children:
                nxt = fst.add_state()
                fst.add_arc(cur, kaldifst.StdArc(int(w), int(w), 0.0, nxt))
                children[key] = nxt
            cur = children[key]
        fst.set_final(cur, 0.0 if costs is None else float(costs[k]))
    return fst


def make_word_loop_grammar(word_ids: Sequence[int], word_cost: float = 0.0) -> kaldifst.StdVectorFst:
    """G accepting any sequence (the empty one included) of ``word_ids``: one final state, a loop per word."""
    fst = kaldifst.StdVectorFst()
    s = fst.add_state()
    fst.start = s
    fst.set_final(s, 0.0)
    for w in word_ids:
        fst.add_arc(s, kaldifst.StdArc(int(w), int(w), word_cost, s))
    return fst


class ToyTriphoneContextDependency:
    """A width-3 context dependency for tests: the pdf depends on the central phone, the pdf class and
    whether the left neighbour is a real phone other than silence (so windows matter, unlike a monophone).

    ``pdf = base[(phone, pdf_class)] + num_base * (left is a non-silence phone)``; ``num_pdfs = 2 *
    num_base``. No ``pdfs_for``: the transition model enumerates windows.
    """

    context_width = 3
    central_position = 1

    def __init__(self, num_pdf_classes: Mapping[int, int], silence_phones: Sequence[int] = (SIL, SPN)):
        self.silence_phones = set(silence_phones)
        self._base: dict[tuple[int, int], int] = {}
        for phone in sorted(num_pdf_classes):
            for c in range(num_pdf_classes[phone]):
                self._base[(phone, c)] = len(self._base)
        self.num_base = len(self._base)
        self.num_pdfs = 2 * self.num_base

    def compute(self, phone_window: Sequence[int], pdf_class: int) -> int:
        """pdf id of ``pdf_class`` of the central phone of ``[left, centre, right]``."""
        left, centre, _ = (int(x) for x in phone_window)
        base = self._base[(centre, int(pdf_class))]
        return base + (self.num_base if left != 0 and left not in self.silence_phones else 0)


@dataclass
class ToyLang:
    """A toy language: phones a=3, b=4, c=5 (+ SIL, SPN), words A=1, B=2, C=3 with
    A -> a b, B -> b c, C -> a b c (A is a prefix of C, so A gets #1), ``#0`` word id 4.
    """

    phones: dict[str, int] = field(default_factory=lambda: {"SIL": SIL, "SPN": SPN, "a": 3, "b": 4, "c": 5})
    words: dict[str, int] = field(default_factory=lambda: {"A": 1, "B": 2, "C": 3})
    word_disambig0: int = 4
    lexicon: list[tuple[int, list[int]]] = field(default_factory=lambda: [(1, [3, 4]), (2, [4, 5]), (3, [3, 4, 5])])

    @property
    def nonsilence_phones(self) -> list[int]:
        """Phone ids of a, b, c."""
        return [3, 4, 5]

    @property
    def silence_phones(self) -> list[int]:
        """SIL, SPN."""
        return [SIL, SPN]

    def lexicon_disambig(self) -> tuple[list[tuple[int, list[int]]], list[int]]:
        """Entries with ``#k`` appended where needed, and the phone ids of ``#0..#K`` (from 6)."""
        return add_lexicon_disambig(self.lexicon, first_disambig_phone=6)

    def lexicon_fst(self, silence_prob: float = 0.5) -> kaldifst.StdVectorFst:
        """L without disambiguation symbols (for alignment graphs)."""
        return make_lexicon_fst(self.lexicon, SIL, silence_prob)

    def lexicon_disambig_fst(self, silence_prob: float = 0.5) -> tuple[kaldifst.StdVectorFst, list[int]]:
        """``(L_disambig with the #0:#0 loop, disambiguation phone ids)``."""
        entries, disambig = self.lexicon_disambig()
        fst = make_lexicon_fst(entries, SIL, silence_prob)
        add_disambig_loop(fst, disambig[0], self.word_disambig0)
        return fst, disambig


def phone_windows(phones: Sequence[int], context_width: int, central_position: int) -> list[list[int]]:
    """The context window of each phone of an utterance's phone sequence (0 beyond the ends)."""
    left = central_position
    right = context_width - 1 - central_position
    padded = [0] * left + [int(p) for p in phones] + [0] * right
    return [padded[k : k + context_width] for k in range(len(phones))]


def favouring_scores(
    phones: Sequence[int],
    topology,
    ctx_dep,
    frames_per_state: int | Sequence[int] = 2,
    margin: float = 10.0,
) -> np.ndarray:
    """A score matrix that favours one left-to-right pass through the HMMs of ``phones``.

    Each HMM state of each phone (in state order) occupies ``frames_per_state`` frames (an int, or one
    int per state over the whole utterance); the frame's pdf gets score 0, every other pdf ``-margin``.

    Returns:
        float32 [T, ctx_dep.num_pdfs].
    """
    pdfs: list[int] = []
    windows = phone_windows(phones, ctx_dep.context_width, ctx_dep.central_position)
    k = 0
    for phone, window in zip(phones, windows):
        for state in topology.hmm(phone).states:
            n = frames_per_state if isinstance(frames_per_state, int) else frames_per_state[k]
            k += 1
            pdfs += [ctx_dep.compute(window, state.pdf_class)] * n
    scores = np.full((len(pdfs), ctx_dep.num_pdfs), -margin, dtype=np.float32)
    scores[np.arange(len(pdfs)), pdfs] = 0.0
    return scores


def random_lexicon(
    num_words: int, num_phones: int, seed: int = 0, min_len: int = 2, max_len: int = 6
) -> list[tuple[int, list[int]]]:
    """Random pronunciations over non-silence phones ``3..num_phones+2`` for words ``1..num_words``."""
    rng = np.random.default_rng(seed)
    return [
        (w, rng.integers(3, 3 + num_phones, size=int(rng.integers(min_len, max_len + 1))).tolist())
        for w in range(1, num_words + 1)
    ]


def make_bigram_grammar(num_words: int, seed: int = 0) -> kaldifst.StdVectorFst:
    """A full bigram G over words ``1..num_words`` with random costs (state per history word)."""
    rng = np.random.default_rng(seed)
    fst = kaldifst.StdVectorFst()
    start = fst.add_state()
    fst.start = start
    hist = [fst.add_state() for _ in range(num_words)]
    for w in range(1, num_words + 1):
        fst.add_arc(start, kaldifst.StdArc(w, w, float(rng.uniform(2, 6)), hist[w - 1]))
    for h in range(num_words):
        fst.set_final(hist[h], float(rng.uniform(1, 3)))
        for w in range(1, num_words + 1):
            fst.add_arc(hist[h], kaldifst.StdArc(w, w, float(rng.uniform(2, 8)), hist[w - 1]))
    return fst


def _benchmark_random(args: argparse.Namespace) -> None:
    from asr.graph.hclg import make_hclg
    from asr.graph.stats import graph_stats
    from asr.hmm.topology import make_topology
    from asr.hmm.transition_model import TransitionModel
    from asr.hmm.tree import MonophoneContextDependency

    nonsil = list(range(3, 3 + args.phones))
    lexicon, disambig = add_lexicon_disambig(random_lexicon(args.words, args.phones), 3 + args.phones)
    word_disambig0 = args.words + 1
    lexicon_fst = make_lexicon_fst(lexicon, SIL, 0.5)
    add_disambig_loop(lexicon_fst, disambig[0], word_disambig0)
    grammar = make_bigram_grammar(args.words)
    topo = make_topology(nonsil, [SIL, SPN])
    classes = {p: topo.num_pdf_classes(p) for p in topo.phones}
    for cname, ctx in (
        ("monophone", MonophoneContextDependency(classes)),
        ("toy-triphone", ToyTriphoneContextDependency(classes)),
    ):
        t0 = time.perf_counter()
        tm = TransitionModel.build(topo, ctx)
        t1 = time.perf_counter()
        hclg = make_hclg(lexicon_fst, grammar, tm, ctx, disambig, [word_disambig0])
        t2 = time.perf_counter()
        st = graph_stats(hclg)
        print(
            f"bigram {args.words} words, {args.phones} phones, {cname:13s} tstates={tm.num_transition_states} "
            f"states={st.num_states} arcs={st.num_arcs} tm_build_s={t1 - t0:.2f} hclg_build_s={t2 - t1:.2f}"
        )


def _benchmark(args: argparse.Namespace) -> None:
    from asr.graph.hclg import GraphOptions, make_hclg
    from asr.graph.stats import graph_stats
    from asr.hmm.topology import make_topology
    from asr.hmm.transition_model import TransitionModel
    from asr.hmm.tree import MonophoneContextDependency

    lang = ToyLang()
    topo = make_topology(lang.nonsilence_phones, lang.silence_phones)
    classes = {p: topo.num_pdf_classes(p) for p in topo.phones}
    grammars = {
        "sentences {A B, B, C}": make_sentence_grammar([[1, 2], [2], [3]]),
        "word loop {A, B, C}*": make_word_loop_grammar([1, 2, 3], word_cost=math.log(3)),
    }
    ctxs = {"monophone": MonophoneContextDependency(classes), "toy-triphone": ToyTriphoneContextDependency(classes)}
    l_disambig, disambig = lang.lexicon_disambig_fst()
    for gname, g in grammars.items():
        for cname, ctx in ctxs.items():
            tm = TransitionModel.build(topo, ctx)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                hclg = make_hclg(l_disambig, g, tm, ctx, disambig, [lang.word_disambig0], GraphOptions())
                times.append(time.perf_counter() - t0)
            st = graph_stats(hclg)
            print(
                f"{gname:24s} {cname:13s} tstates={tm.num_transition_states:3d} states={st.num_states:4d} "
                f"arcs={st.num_arcs:5d} self_loops={st.num_self_loops:4d} max_ilabel={st.max_ilabel:3d} "
                f"build_ms(min of {args.repeat})={1000 * min(times):.1f}"
            )


def main(argv: list[str] | None = None) -> None:
    """CLI: print HCLG sizes and build times for the toy grammars."""
    parser = argparse.ArgumentParser(description="Build HCLGs for the toy grammars; print sizes and times.")
    parser.add_argument("--repeat", type=int, default=5, help="builds per configuration (min time reported)")
    parser.add_argument("--words", type=int, default=0, help="also build a random bigram graph with this many words")
    parser.add_argument("--phones", type=int, default=40, help="non-silence phones of the random lexicon")
    args = parser.parse_args(argv)
    _benchmark(args)
    if args.words:
        _benchmark_random(args)


if __name__ == "__main__":
    main()
