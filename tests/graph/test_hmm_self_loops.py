"""Splitting states by incoming input label and adding HMM self-loops, on a hand-made graph."""

from __future__ import annotations

import math

import kaldifst
import pytest

from asr.graph.hmm_self_loops import add_hmm_self_loops
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency


@pytest.fixture(scope="module")
def tm():
    topo = make_topology([3], [1])  # 3 + 5 = 8 transition states, self-loop probability 0.75
    return TransitionModel.build(topo, MonophoneContextDependency({1: 5, 3: 3}))


def _arcs(fst):
    return {
        s: sorted((a.ilabel, a.olabel, round(a.weight.value, 5), a.nextstate) for a in kaldifst.ArcIterator(fst, s))
        for s in range(fst.num_states)
    }


def test_split_and_loops(tm):
    # 0 -1:7-> 1 ; 0 -2:0-> 2 ; 2 -3:0-> 1 ; 1 -4:0-> 0 (back to the start) ; 1 final
    g = kaldifst.StdVectorFst()
    for _ in range(3):
        g.add_state()
    g.start = 0
    g.set_final(1, 0.5)
    g.add_arc(0, kaldifst.StdArc(1, 7, 0.1, 1))
    g.add_arc(0, kaldifst.StdArc(2, 0, 0.2, 2))
    g.add_arc(2, kaldifst.StdArc(3, 0, 0.3, 1))
    g.add_arc(1, kaldifst.StdArc(4, 0, 0.4, 0))
    out = add_hmm_self_loops(g, tm, self_loop_scale=0.5)
    loop = round(-0.5 * math.log(0.75), 5)
    # state 1 (entered by 1 and 3) -> keeps label 1, copy 3 for label 3; start (entered by eps and 4) ->
    # keeps eps, copy 4 for label 4. Copies are numbered in (state, label) order.
    assert out.num_states == 5 and out.start == 0
    assert _arcs(out) == {
        0: [(1, 7, 0.1, 1), (2, 0, 0.2, 2)],  # the start state: no self-loop
        1: [(1, 0, loop, 1), (4, 0, 0.4, 3)],
        2: [(2, 0, loop, 2), (3, 0, 0.3, 4)],
        3: [(1, 7, 0.1, 1), (2, 0, 0.2, 2), (4, 0, loop, 3)],  # copy of the start for label 4
        4: [(3, 0, loop, 4), (4, 0, 0.4, 3)],  # copy of state 1 for label 3
    }
    assert out.final(1).value == pytest.approx(0.5) and out.final(4).value == pytest.approx(0.5)
    assert out.final(0) == kaldifst.TropicalWeight.zero


def test_state_without_self_loop_probability(tm):
    tm2 = TransitionModel(tm.topology, tm.transition_states.tolist(), tm.num_pdfs)
    counts = tm2.zero_counts()
    ids = [i for i, (phone, _, _) in enumerate(tm2.transition_states.tolist()) if phone == 3]  # states 0, 1, 2
    tm2.accumulate(counts, ids)
    tm2.mle_update(counts, floor=0.0, min_count=0.0)  # no self-loops seen: p_loop = 0
    g = kaldifst.StdVectorFst()
    g.add_state(), g.add_state()
    g.start = 0
    g.set_final(1, 0.0)
    g.add_arc(0, kaldifst.StdArc(ids[0] + 1, 0, 0.0, 1))
    out = add_hmm_self_loops(g, tm2)
    assert _arcs(out)[1] == []


def test_refuses_labels_above_emission_range(tm):
    g = kaldifst.StdVectorFst()
    g.add_state(), g.add_state()
    g.start = 0
    g.add_arc(0, kaldifst.StdArc(tm.num_transition_states + 1, 0, 0.0, 1))
    with pytest.raises(ValueError, match="state 0: input label 9 is outside 0..8"):
        add_hmm_self_loops(g, tm)
