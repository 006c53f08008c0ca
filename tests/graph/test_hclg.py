"""HCLG on tiny hand-built lexicons and grammars: accepted word strings, label ranges, costs, structure."""

from __future__ import annotations

import math

import kaldifst
import numpy as np
import pytest

from asr.decode.decoder import decode_utterance
from asr.graph.hclg import GraphBuildError, GraphOptions, make_hclg
from asr.graph.stats import check_ilabel_range, graph_stats, min_frames_to_final
from asr.graph.toy import (
    SIL,
    ToyLang,
    ToyTriphoneContextDependency,
    add_disambig_loop,
    favouring_scores,
    make_lexicon_fst,
    make_sentence_grammar,
    make_word_loop_grammar,
)
from asr.hmm.topology import HmmState, PhoneHmm, Topology, left_to_right_hmm, make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency

LANG = ToyLang()
A, B, C = 1, 2, 3
a, b, c = 3, 4, 5
PRON = {A: [a, b], B: [b, c], C: [a, b, c]}
ALLOWED = [[A, B], [B], [C]]


def _ctx(kind: str, topo: Topology):
    classes = {p: topo.num_pdf_classes(p) for p in topo.phones}
    return MonophoneContextDependency(classes) if kind == "mono" else ToyTriphoneContextDependency(classes)


def _phones(words, sil_after=()):
    out = []
    for k, w in enumerate(words):
        out += PRON[w]
        if k in sil_after:
            out.append(SIL)
    return out


@pytest.fixture(scope="module", params=["mono", "tri"])
def setup(request):
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = _ctx(request.param, topo)
    tm = TransitionModel.build(topo, ctx)
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, make_sentence_grammar(ALLOWED), tm, ctx, disambig, [LANG.word_disambig0])
    return topo, ctx, tm, hclg


@pytest.mark.parametrize("words", ALLOWED)
@pytest.mark.parametrize("sil_after", [(), (0,), (0, 1)])
def test_allowed_strings_decode_exactly(setup, words, sil_after):
    topo, ctx, tm, hclg = setup
    phones = _phones(words, sil_after)
    if sil_after and sil_after[0] == 0:
        phones = [SIL] + phones  # optional silence at the start too
    result = decode_utterance(hclg, favouring_scores(phones, topo, ctx), tm)
    assert result.word_ids == words
    assert result.reached_final
    assert result.acoustic_cost == pytest.approx(0.0)  # the favoured pdf sequence is a complete path


@pytest.mark.parametrize("words", [[B, A], [A], [A, B, B], [C, C], [B, C]])
def test_disallowed_strings_decode_to_allowed_ones(setup, words):
    topo, ctx, tm, hclg = setup
    result = decode_utterance(hclg, favouring_scores(_phones(words), topo, ctx), tm)
    assert result.word_ids in ALLOWED
    assert result.acoustic_cost > 5.0  # the favoured sequence itself is not in the graph


def test_labels_in_range_and_self_loops_follow_incoming_label(setup):
    _, _, tm, hclg = setup
    stats = graph_stats(hclg)
    assert 0 < stats.max_ilabel <= tm.num_transition_states
    assert stats.max_olabel <= C  # no word disambiguation symbol on the output side
    check_ilabel_range(hclg, tm.num_transition_states)
    incoming: dict[int, set[int]] = {s: set() for s in range(hclg.num_states)}
    incoming[hclg.start].add(0)
    loops: dict[int, list[int]] = {s: [] for s in range(hclg.num_states)}
    for s in range(hclg.num_states):
        for arc in kaldifst.ArcIterator(hclg, s):
            assert arc.ilabel >= 0
            if arc.nextstate == s:
                loops[s].append(arc.ilabel)
                assert arc.olabel == 0
            else:
                incoming[arc.nextstate].add(arc.ilabel)
    for s in range(hclg.num_states):
        assert len(incoming[s]) == 1, f"state {s} entered by labels {incoming[s]}"
        (label,) = incoming[s]
        assert loops[s] == ([label] if label > 0 else [])  # every left-to-right state has a self-loop
    assert stats.num_self_loops == sum(len(v) for v in loops.values())


def test_graph_cost_is_kaldi_scaled_hmm_cost(setup):
    """Word B without silence, 2 frames per state: L (no-silence twice) + 6 forward + 6 loop costs."""
    topo, ctx, tm, hclg = setup
    result = decode_utterance(hclg, favouring_scores([b, c], topo, ctx), tm)
    expected = 2 * -math.log(0.5) + 6 * (-0.1 * math.log(0.25)) + 6 * (-0.1 * math.log(0.75))
    assert result.word_ids == [B]
    assert result.graph_cost == pytest.approx(expected, abs=0.01)
    lexicon, disambig = LANG.lexicon_disambig_fst()
    unscaled = GraphOptions(self_loop_scale=1.0)
    hclg1 = make_hclg(lexicon, make_sentence_grammar(ALLOWED), tm, ctx, disambig, [LANG.word_disambig0], unscaled)
    result = decode_utterance(hclg1, favouring_scores([b, c], topo, ctx, frames_per_state=3), tm)
    expected = 2 * -math.log(0.5) + 6 * -math.log(0.25) + 12 * -math.log(0.75)
    assert result.graph_cost == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("kind", ["mono", "tri"])
def test_word_loop_grammar_decodes_any_sequence(kind):
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = _ctx(kind, topo)
    tm = TransitionModel.build(topo, ctx)
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, make_word_loop_grammar([A, B, C]), tm, ctx, disambig, [LANG.word_disambig0])
    for words in ([C, A, B, B, A], [A, A], [B], [A, C]):
        result = decode_utterance(hclg, favouring_scores(_phones(words), topo, ctx), tm)
        assert result.word_ids == words and result.acoustic_cost == pytest.approx(0.0)


def test_skip_topology_uses_epsilon_exits():
    """A state with both a forward and an exit transition makes H use an epsilon exit arc."""
    skip = PhoneHmm(
        states=(
            HmmState(0, ((0, 0.5), (1, 0.5))),
            HmmState(1, ((1, 0.5), (2, 0.3), (3, 0.2))),  # may skip state 2
            HmmState(2, ((2, 0.5), (3, 0.5))),
        )
    )
    topo = Topology({SIL: left_to_right_hmm(5), 2: left_to_right_hmm(5), a: skip, b: skip, c: skip})
    ctx = _ctx("tri", topo)
    tm = TransitionModel.build(topo, ctx)
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, make_sentence_grammar(ALLOWED), tm, ctx, disambig, [LANG.word_disambig0])
    full = favouring_scores([b, c], topo, ctx)
    assert decode_utterance(hclg, full, tm).acoustic_cost == pytest.approx(0.0)
    # b visits states 0, 1 (skips 2); c visits all three
    skipped = favouring_scores([b, c], topo, ctx, frames_per_state=[2, 2, 0, 2, 2, 2])
    result = decode_utterance(hclg, skipped, tm)
    assert result.word_ids == [B] and result.acoustic_cost == pytest.approx(0.0)
    # cost of b's path: loop(0) fwd(0->1 : -0.1 log .5) loop(1) exit(1: -log(.2/.5) - 0.1 log .5), then c
    c_cost = 2 * -0.1 * math.log(0.5) + -0.1 * math.log(0.5) + (-math.log(0.3 / 0.5) - 0.1 * math.log(0.5))
    c_cost += -0.1 * math.log(0.5) * 2
    b_cost = 2 * -0.1 * math.log(0.5) + -0.1 * math.log(0.5) + (-math.log(0.2 / 0.5) - 0.1 * math.log(0.5))
    assert result.graph_cost == pytest.approx(2 * -math.log(0.5) + b_cost + c_cost, abs=0.01)


def test_minimum_frames_of_graph(setup):
    topo, ctx, tm, hclg = setup
    assert min_frames_to_final(hclg) == 6  # "B": two 3-state phones


def test_non_determinizable_input_raises_instead_of_running_forever():
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = _ctx("mono", topo)
    tm = TransitionModel.build(topo, ctx)
    homophones = make_lexicon_fst([(A, [a, b]), (B, [a, b])], SIL, 0.5)  # no #1/#2: not determinizable
    add_disambig_loop(homophones, 6, LANG.word_disambig0)
    with pytest.raises(GraphBuildError, match="max_states=2000"):
        make_hclg(homophones, make_word_loop_grammar([A, B]), tm, ctx, [6], [], GraphOptions(max_states=2000))


def test_word_disambiguation_on_grammar_output_is_removed():
    """A G with #0 on both sides (an acceptor-style backoff) must not leave #0 on HCLG's output."""
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = _ctx("mono", topo)
    tm = TransitionModel.build(topo, ctx)
    g = kaldifst.StdVectorFst()
    s0, s1 = g.add_state(), g.add_state()
    g.start = s0
    g.set_final(s1, 0.0)
    g.add_arc(s0, kaldifst.StdArc(A, A, 0.0, s1))
    g.add_arc(s1, kaldifst.StdArc(LANG.word_disambig0, LANG.word_disambig0, 0.5, s0))  # backoff-like
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, g, tm, ctx, disambig, [LANG.word_disambig0])
    assert graph_stats(hclg).max_olabel == A
    result = decode_utterance(hclg, favouring_scores(_phones([A, A]), topo, ctx), tm)
    assert result.word_ids == [A, A] and result.acoustic_cost == pytest.approx(0.0)


def test_inputs_are_not_modified(setup):
    topo, ctx, tm, _ = setup
    lexicon, disambig = LANG.lexicon_disambig_fst()
    grammar = make_sentence_grammar(ALLOWED)
    before = (lexicon.to_str(), grammar.to_str())
    make_hclg(lexicon, grammar, tm, ctx, disambig, [LANG.word_disambig0])
    assert (lexicon.to_str(), grammar.to_str()) == before


def test_lexicon_without_optional_silence(setup):
    topo, ctx, tm, _ = setup
    entries, disambig = LANG.lexicon_disambig()
    lexicon = make_lexicon_fst(entries, None)
    add_disambig_loop(lexicon, disambig[0], LANG.word_disambig0)
    hclg = make_hclg(lexicon, make_sentence_grammar(ALLOWED), tm, ctx, disambig, [LANG.word_disambig0])
    ok = decode_utterance(hclg, favouring_scores(_phones([A, B]), topo, ctx), tm)
    assert ok.word_ids == [A, B] and ok.acoustic_cost == pytest.approx(0.0)
    with_sil = decode_utterance(hclg, favouring_scores(_phones([A, B], sil_after=(0,)), topo, ctx), tm)
    assert with_sil.acoustic_cost > 5.0


def test_scores_shape_is_checked(setup):
    _, ctx, tm, hclg = setup
    with pytest.raises(ValueError, match="columns"):
        decode_utterance(hclg, np.zeros((5, ctx.num_pdfs + 1), dtype=np.float32), tm)
    with pytest.raises(ValueError, match="NaN"):
        decode_utterance(hclg, np.full((5, ctx.num_pdfs), np.nan, dtype=np.float32), tm)


def test_backoff_grammar_from_kaldilm(tmp_path):
    """A real ARPA bigram through kaldilm: #0 backoff arcs, any word sequence reachable via backoff."""
    import kaldilm

    (tmp_path / "words.txt").write_text("<eps> 0\nA 1\nB 2\nC 3\n#0 4\n<s> 5\n</s> 6\n")
    (tmp_path / "lm.arpa").write_text(
        "\\data\\\nngram 1=5\nngram 2=3\n\n\\1-grams:\n"
        "-0.6\t</s>\n-99\t<s>\t-0.3\n-0.5\tA\t-0.2\n-0.6\tB\t-0.2\n-0.7\tC\t-0.2\n\n"
        "\\2-grams:\n-0.1\t<s> A\n-0.1\tA B\n-0.1\tB </s>\n\n\\end\\\n"
    )
    text = kaldilm.arpa2fst(
        str(tmp_path / "lm.arpa"), disambig_symbol="#0", read_symbol_table=str(tmp_path / "words.txt")
    )
    grammar = kaldifst.compile(text, acceptor=False)
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    for kind in ("mono", "tri"):
        ctx = _ctx(kind, topo)
        tm = TransitionModel.build(topo, ctx)
        lexicon, disambig = LANG.lexicon_disambig_fst()
        hclg = make_hclg(lexicon, grammar, tm, ctx, disambig, [LANG.word_disambig0])
        assert graph_stats(hclg).max_olabel <= C
        for words in ([A, B], [C, C, A], [B, A, C, B]):  # the last two only through backoff
            result = decode_utterance(hclg, favouring_scores(_phones(words), topo, ctx), tm)
            assert result.word_ids == words and result.acoustic_cost == pytest.approx(0.0)
