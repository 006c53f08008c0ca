"""G.fst: from our ARPA files through kaldilm, and hand-built yes/no, digit and word loops."""

from __future__ import annotations

import math
import shutil

import kaldifst
import pytest

from asr.errors import ConfigError, InputError
from asr.lang.grammar import add_grammar, arpa_to_g, digit_loop_g, word_loop_g, yes_no_g
from asr.lang.lang_dir import Lang
from asr.lang.ngram import NgramLM, train_ngram_lm
from asr.lang.prepare_lm import lm_vocabulary
from asr.lang.symbol_table import SymbolTable


def without_labels(fst: kaldifst.StdVectorFst, labels: set[int]) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` with the given input labels replaced by epsilon (e.g. G's #0), ilabel-sorted."""
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    for s in range(fst.num_states):
        out.set_final(s, fst.final(s))
        for arc in kaldifst.ArcIterator(fst, s):
            ilabel = 0 if arc.ilabel in labels else arc.ilabel
            out.add_arc(s, kaldifst.StdArc(ilabel, arc.olabel, arc.weight, arc.nextstate))
    kaldifst.arcsort(out, sort_type="ilabel")
    return out


def best_cost(G: kaldifst.StdVectorFst, word_ids: list[int]) -> float:
    """Cost of the best path of G accepting exactly ``word_ids`` (inf when G rejects them)."""
    acceptor = kaldifst.make_linear_acceptor(word_ids)
    kaldifst.arcsort(acceptor, sort_type="olabel")
    composed = kaldifst.compose(acceptor, G)
    if composed.num_states == 0:
        return math.inf
    path = kaldifst.shortest_path(composed)
    cost, state, seen = 0.0, path.start, []
    while path.final(state) == kaldifst.TropicalWeight.zero:
        (arc,) = list(kaldifst.ArcIterator(path, state))
        cost += arc.weight.value
        if arc.ilabel:
            seen.append(arc.ilabel)
        state = arc.nextstate
    assert seen == word_ids
    return cost + path.final(state).value


@pytest.fixture(scope="module")
def an4_arpa(an4_lang, an4_split, tmp_path_factory):
    vocab = lm_vocabulary(SymbolTable.read(an4_lang / "words.txt"))
    lm = train_ngram_lm([w for _, w in an4_split["train"]], vocab, order=3, method="kn")
    path = tmp_path_factory.mktemp("g") / "lm.arpa"
    lm.write_arpa(path)
    return path


def test_g_from_arpa_accepts_in_vocabulary_sentences(an4_lang, an4_arpa, an4_split):
    lang = Lang.load(an4_lang)
    G = arpa_to_g(an4_arpa, an4_lang / "words.txt")
    assert G.is_ilabel_sorted and G.num_states > 1000
    backoff = lang.word_disambig_id
    backoff_arcs = sum(
        1 for s in range(G.num_states) for a in kaldifst.ArcIterator(G, s) if (a.ilabel, a.olabel) == (backoff, 0)
    )
    assert backoff_arcs > 100
    labels = {a.ilabel for s in range(G.num_states) for a in kaldifst.ArcIterator(G, s)}
    assert lang.words.id("<s>") not in labels and lang.words.id("</s>") not in labels
    G_eps = without_labels(G, {backoff})
    lm = NgramLM.read_arpa(an4_arpa)
    for _, words in an4_split["dev"][:40]:
        cost = best_cost(G_eps, lang.words.ids(words))
        exact = -math.log(10.0) * lm.sentence_log10_prob(words)
        assert math.isfinite(cost)
        # the best path is the LM's or a cheaper one through a back-off state (G is not exactly the LM)
        assert cost <= exact + 1e-3


def with_backoff_symbols(lm: NgramLM, words: tuple[str, ...], backoff: str = "#0") -> list[str]:
    """``words`` with the ``#0`` that G needs before each word (and at the end) to follow the ARPA back-off
    path: from the current state, one ``#0`` per back-off until the n-gram exists."""
    states = {(): True} | {h: True for table in lm.log10_backoffs for h in table}

    def state_of(history: tuple[str, ...]) -> tuple[str, ...]:
        history = history[len(history) - lm.order + 1 :] if lm.order > 1 else ()
        while history not in states:
            history = history[1:]
        return history

    out, state = [], state_of(("<s>",))
    for w in (*words, "</s>"):
        while (*state, w) not in lm.log10_probs[len(state)]:
            out.append(backoff)
            state = state[1:]
        if w != "</s>":
            out.append(w)
            state = state_of((*state, w))
    return out


def test_g_from_arpa_scores_sentences_exactly_as_the_lm(an4_lang, an4_arpa, an4_split):
    lang = Lang.load(an4_lang)
    G = arpa_to_g(an4_arpa, an4_lang / "words.txt")
    lm = NgramLM.read_arpa(an4_arpa)
    backoffs = 0
    for _, words in an4_split["dev"][:40]:
        labels = with_backoff_symbols(lm, words)
        backoffs += labels.count("#0")
        exact = -math.log(10.0) * lm.sentence_log10_prob(words)
        assert best_cost(G, lang.words.ids(labels)) == pytest.approx(exact, rel=1e-5, abs=1e-3), labels
    assert backoffs > 20


def test_g_refuses_a_words_table_without_backoff_symbol(an4_lang, an4_arpa, tmp_path):
    words = SymbolTable.read(an4_lang / "words.txt")
    stripped = SymbolTable([w for w, _ in words if w not in ("<eps>", "#0")])
    stripped.write(tmp_path / "words.txt")
    with pytest.raises(InputError, match="#0 is not in the symbol table"):
        arpa_to_g(an4_arpa, tmp_path / "words.txt")  # kaldilm would abort the whole process here


def test_g_refuses_an_arpa_word_missing_from_words(an4_lang, an4_arpa, tmp_path):
    lines = an4_arpa.read_text().splitlines()
    words = [w for w, _ in SymbolTable.read(an4_lang / "words.txt") if w != "ZERO"]
    SymbolTable(words[1:]).write(tmp_path / "words.txt")
    line = next(i for i, text in enumerate(lines, start=1) if text.split("\t")[1:2] == ["ZERO"])
    with pytest.raises(InputError, match="'ZERO' is not in") as err:
        arpa_to_g(an4_arpa, tmp_path / "words.txt")
    assert (err.value.path, err.value.line) == (str(an4_arpa), line)


def test_g_refuses_a_malformed_arpa(an4_lang, an4_arpa, tmp_path):
    bad = tmp_path / "bad.arpa"
    lines = an4_arpa.read_text().splitlines()
    lines[9] = "-0.5"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        arpa_to_g(bad, an4_lang / "words.txt")
    assert (err.value.path, err.value.line) == (str(bad), 10)


def test_yes_no_grammar(an4_lang):
    words = SymbolTable.read(an4_lang / "words.txt")
    G = yes_no_g(words)
    assert best_cost(G, words.ids(["YES", "NO", "YES"])) == pytest.approx(3 * math.log(2))
    assert best_cost(G, words.ids(["NO"])) == pytest.approx(math.log(2))
    assert best_cost(G, words.ids(["YES", "GO"])) == math.inf
    assert best_cost(G, words.ids(["TWO"])) == math.inf
    assert best_cost(G, []) == math.inf  # at least one word


def test_digit_loop_and_weighted_word_loop(an4_lang):
    words = SymbolTable.read(an4_lang / "words.txt")
    G = digit_loop_g(words)
    assert best_cost(G, words.ids(["ONE", "OH", "NINE", "ZERO"])) == pytest.approx(4 * math.log(11))
    assert best_cost(G, words.ids(["ONE", "A"])) == math.inf
    weighted = word_loop_g({"START": 3.0, "STOP": 1.0}, words)
    assert best_cost(weighted, []) == 0.0
    assert best_cost(weighted, words.ids(["STOP", "START"])) == pytest.approx(-math.log(0.25) - math.log(0.75))
    with pytest.raises(ConfigError, match="missing from words.txt"):
        word_loop_g(["START", "MAYBE"], words)
    with pytest.raises(ConfigError, match="positive"):
        word_loop_g({"START": 0.0}, words)


def test_add_grammar_in_place_and_in_a_copy(an4_lang, an4_arpa, tmp_path):
    lang_dir = tmp_path / "lang"
    shutil.copytree(an4_lang, lang_dir)
    path = add_grammar(lang_dir, "yesno")
    assert path == lang_dir / "G.fst" and Lang.load(lang_dir).G.num_states == 1 + 1
    copy = add_grammar(lang_dir, "arpa", arpa=an4_arpa, out_dir=tmp_path / "lang_test_tg")
    assert copy == tmp_path / "lang_test_tg" / "G.fst"
    test_lang = Lang.load(tmp_path / "lang_test_tg")
    assert test_lang.G.num_states > 1000 and test_lang.words == Lang.load(lang_dir).words
    assert Lang.load(lang_dir).G.num_states == 2  # the original keeps its own G
    assert not list(tmp_path.glob(".lang_test_tg.*"))  # no staging directory left behind
    with pytest.raises(ConfigError, match="needs an ARPA file"):
        add_grammar(lang_dir, "arpa")
    with pytest.raises(ConfigError, match="unknown grammar kind"):
        add_grammar(lang_dir, "trigram")
