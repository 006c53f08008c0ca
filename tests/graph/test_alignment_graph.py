"""Forced-alignment graphs: the transcript's phone sequences with optional silence, nothing else."""

from __future__ import annotations

import pytest

from asr.decode.align import align_utterance
from asr.graph.alignment_graph import AlignmentGraphCompiler
from asr.graph.stats import check_ilabel_range, graph_stats, min_frames_to_final
from asr.graph.toy import SIL, ToyLang, ToyTriphoneContextDependency, favouring_scores
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel

LANG = ToyLang()
a, b, c = 3, 4, 5


@pytest.fixture(scope="module")
def compiler():
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = ToyTriphoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    tm = TransitionModel.build(topo, ctx)
    return topo, ctx, tm, AlignmentGraphCompiler(LANG.lexicon_fst(0.5), tm, ctx)


def test_graph_is_reproducible_and_in_range(compiler):
    _, _, tm, comp = compiler
    g1 = comp.compile([1, 2])
    g2 = comp.compile([1, 2])
    assert g1.to_str() == g2.to_str()
    check_ilabel_range(g1, tm.num_transition_states)
    stats = graph_stats(g1)
    assert stats.max_olabel == 2 and stats.num_output_labels >= 2
    assert min_frames_to_final(g1) == 12
    assert min_frames_to_final(comp.compile([])) == 0  # empty transcript: silence or nothing


@pytest.mark.parametrize(
    "phones, accepted",
    [
        ([a, b, b, c], True),
        ([SIL, a, b, b, c], True),
        ([a, b, SIL, b, c, SIL], True),
        ([SIL, a, b, SIL, b, c, SIL], True),
        ([a, b, c], False),  # word C, not A B
        ([b, c, a, b], False),  # wrong order
        ([a, b, SIL, SIL, b, c], False),  # at most one optional silence between words
    ],
)
def test_accepts_exactly_the_transcript(compiler, phones, accepted):
    topo, ctx, tm, comp = compiler
    graph = comp.compile([1, 2])
    result = align_utterance(graph, favouring_scores(phones, topo, ctx), tm, beam=1000.0)
    assert result.ok  # there is always some path of the right length here
    assert (result.acoustic_cost == pytest.approx(0.0)) is accepted
