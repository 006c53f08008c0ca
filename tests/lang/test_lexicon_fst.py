"""L and L_disambig: optional silence, pronunciation alternatives, disambiguation symbols, #0 self-loops."""

from __future__ import annotations

import math

import kaldifst
import pytest

from asr.lang.lang_dir import Lang
from asr.lang.lexicon import Lexicon
from asr.lang.lexicon_fst import add_lex_disambig
from asr.lang.prepare_lang import prepare_lang


def all_paths(fst: kaldifst.StdVectorFst, max_depth: int = 64) -> list[tuple[tuple[int, ...], tuple[int, ...], float]]:
    """Every successful path of an acyclic FST: (non-epsilon ilabels, non-epsilon olabels, cost)."""
    out = []

    def walk(state, ilabels, olabels, cost, depth):
        assert depth < max_depth, "FST is cyclic or too deep"
        final = fst.final(state)
        if final != kaldifst.TropicalWeight.zero:
            out.append((tuple(ilabels), tuple(olabels), cost + final.value))
        for arc in kaldifst.ArcIterator(fst, state):
            walk(
                arc.nextstate,
                ilabels + [arc.ilabel] * (arc.ilabel != 0),
                olabels + [arc.olabel] * (arc.olabel != 0),
                cost + arc.weight.value,
                depth + 1,
            )

    if fst.num_states:
        walk(fst.start, [], [], 0.0, 0)
    return out


def phone_strings(lang: Lang, L: kaldifst.StdVectorFst, words: list[str]) -> dict[str, float]:
    """Phone strings (with disambiguation symbols) that L maps to ``words``, with their costs."""
    acceptor = kaldifst.make_linear_acceptor(lang.words.ids(words))
    inverted = kaldifst.StdVectorFst(L)  # deep copy: invert works in place
    kaldifst.invert(inverted)
    kaldifst.arcsort(inverted, sort_type="ilabel")
    kaldifst.arcsort(acceptor, sort_type="olabel")
    result = {}
    for ilabels, olabels, cost in all_paths(kaldifst.compose(acceptor, inverted)):
        assert lang.words.symbols_of(ilabels) == words
        key = " ".join(lang.phones.symbols_of(olabels))
        assert key not in result, f"phone string {key!r} found twice"
        result[key] = cost
    return result


@pytest.mark.parametrize("sil_prob", [0.5, 0.2])
def test_word_with_two_pronunciations_and_optional_silence(an4_lexicon, tmp_path, sil_prob):
    lang = Lang.load(prepare_lang(an4_lexicon, tmp_path / "lang", sil_prob=sil_prob))
    assert an4_lexicon.pronunciations("A") == [("AH",), ("EY",)]
    got = phone_strings(lang, lang.L, ["A"])
    sil, no_sil = -math.log(sil_prob), -math.log(1 - sil_prob)
    expected = {}
    for pron in ("AH", "EY"):
        expected[pron] = 2 * no_sil
        expected[f"SIL {pron}"] = sil + no_sil
        expected[f"{pron} SIL"] = no_sil + sil
        expected[f"SIL {pron} SIL"] = 2 * sil
    assert got.keys() == expected.keys()
    for key, cost in expected.items():
        assert got[key] == pytest.approx(cost, abs=1e-5), key
    two = phone_strings(lang, lang.L, ["A", "A"])
    assert len(two) == 2 * 2 * 2 * 2 * 2  # start sil?, pron, sil between?, pron, end sil?
    assert "AH EY" in two and "SIL EY SIL AH SIL" in two and "AH SIL SIL EY" not in two


def test_no_silence(an4_lexicon, tmp_path):
    lang = Lang.load(prepare_lang(an4_lexicon, tmp_path / "lang", sil_prob=0.0))
    assert phone_strings(lang, lang.L, ["A"]) == {"AH": 0.0, "EY": 0.0}
    assert phone_strings(lang, lang.L, ["B", "A"]) == {"B IY AH": 0.0, "B IY EY": 0.0}


def test_pronunciation_probabilities_cost(tmp_path):
    lexicon = Lexicon()
    lexicon.add("TOMATO", "T AH M EY T OW".split(), 1.0)
    lexicon.add("TOMATO", "T AH M AA T OW".split(), 0.25)
    lang = Lang.load(prepare_lang(lexicon, tmp_path / "lang", sil_prob=0.0))
    assert lang.lexicon.pronunciations("TOMATO")[1] == tuple("T AH M AA T OW".split())
    got = phone_strings(lang, lang.L, ["TOMATO"])
    assert got["T AH M EY T OW"] == pytest.approx(0.0) and got["T AH M AA T OW"] == pytest.approx(-math.log(0.25))


@pytest.fixture()
def homophone_lang(tmp_path) -> Lang:
    lexicon = Lexicon()
    for word, pron in [("READ", "R EH D"), ("RED", "R EH D"), ("RE", "R EH"), ("REDO", "R IY D UW")]:
        lexicon.add(word, pron.split())
    return Lang.load(prepare_lang(lexicon, tmp_path / "lang"))


def test_disambiguation_symbols_on_homophones_and_prefixes(homophone_lang):
    lang = homophone_lang
    augmented = {e.word: " ".join(e.phones) for e in add_lex_disambig(lang.lexicon).entries}
    # words in sorted order: RE, READ, RED, REDO; R EH is a prefix of R EH D, which two words share
    assert augmented == {"RE": "R EH #1", "READ": "R EH D #1", "RED": "R EH D #2", "REDO": "R IY D UW"}
    # #0 (G backoff), #1, #2 (lexicon), #3 (after optional silence)
    assert [lang.phones.symbol(i) for i in lang.disambig_phone_ids] == ["#0", "#1", "#2", "#3"]
    assert set(phone_strings(lang, lang.L_disambig, ["RED"])) == {
        "R EH D #2",
        "SIL #3 R EH D #2",
        "R EH D #2 SIL #3",
        "SIL #3 R EH D #2 SIL #3",
    }
    assert set(phone_strings(lang, lang.L_disambig, ["READ"])) >= {"R EH D #1"}
    assert set(phone_strings(lang, lang.L, ["RED"])) == {"R EH D", "SIL R EH D", "R EH D SIL", "SIL R EH D SIL"}


def test_l_disambig_has_backoff_self_loops_and_sorted_outputs(homophone_lang):
    lang = homophone_lang
    phone0, word0 = lang.phones.id("#0"), lang.words.id("#0")
    for fst, name in ((lang.L, "L"), (lang.L_disambig, "L_disambig")):
        assert fst.is_olabel_sorted, name
        for s in range(fst.num_states):
            olabels = [arc.olabel for arc in kaldifst.ArcIterator(fst, s)]
            assert olabels == sorted(olabels), (name, s)
    loops = [
        s
        for s in range(lang.L_disambig.num_states)
        for arc in kaldifst.ArcIterator(lang.L_disambig, s)
        if (arc.ilabel, arc.olabel) == (phone0, word0)
    ]
    assert loops and all(
        any(a.nextstate == s for a in kaldifst.ArcIterator(lang.L_disambig, s) if a.ilabel == phone0) for s in loops
    )
    final_states = [
        s for s in range(lang.L_disambig.num_states) if lang.L_disambig.final(s) != kaldifst.TropicalWeight.zero
    ]
    assert set(final_states) <= set(loops)
    disambig = set(lang.disambig_phone_ids)
    for s in range(lang.L.num_states):
        for arc in kaldifst.ArcIterator(lang.L, s):
            assert arc.ilabel not in disambig and arc.olabel not in (word0,)


def test_disambiguation_makes_l_determinizable(an4_lang):
    """AN4 has homophones (O, OH: OW) and prefixes (A: EY, EIGHT: EY T): L is not determinizable, L_disambig is."""
    lang = Lang.load(an4_lang)
    augmented = {(e.word, " ".join(e.phones)) for e in add_lex_disambig(lang.lexicon).entries}
    assert {("O", "OW #1"), ("OH", "OW #2"), ("EIGHT", "EY T #1")} <= augmented
    L_disambig = kaldifst.StdVectorFst(lang.L_disambig)
    assert kaldifst.determinize_star(L_disambig, max_states=100_000) is False
    L = kaldifst.StdVectorFst(lang.L)
    with pytest.raises(RuntimeError, match="not determinizable|functional"):
        kaldifst.determinize_star(L, max_states=100_000)
