"""Transition model: enumeration, label arrays, estimation from alignments, save/load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from asr.errors import InputError
from asr.graph.toy import ToyTriphoneContextDependency
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency

NONSIL = [3, 4, 5]
SIL = [1, 2]


@pytest.fixture
def topo():
    return make_topology(NONSIL, SIL)


@pytest.fixture
def mono(topo):
    return MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})


def test_monophone_enumeration_is_phones_times_states(topo, mono):
    tm = TransitionModel.build(topo, mono)
    assert tm.num_transition_states == 3 * 3 + 2 * 5 == mono.num_pdfs
    tuples = tm.transition_states
    assert sorted(tuples.tolist()) == tuples.tolist()
    got = {(int(p), int(s)) for p, s, _ in tuples}
    assert got == {(p, s) for p in topo.phones for s in range(topo.hmm(p).num_states)}
    for i, (p, s, pdf) in enumerate(tuples):
        assert pdf == mono.compute([p], s)
        assert tm.transition_state(p, s, pdf) == i
    # label arrays: index 0 unused, label = id + 1
    assert tm.label_to_pdf[0] == -1 and tm.label_to_phone[0] == -1
    assert np.array_equal(tm.label_to_pdf[1:], tuples[:, 2])
    assert np.array_equal(tm.label_to_phone[1:], tuples[:, 0])
    assert np.array_equal(tm.label_to_hmm_state[1:], tuples[:, 1])
    assert np.array_equal(tm.tstate_to_pdf, tuples[:, 2])
    with pytest.raises(KeyError, match="phone=3, hmm_state=0, pdf_id=999"):
        tm.transition_state(3, 0, 999)


def test_enumeration_without_pdfs_for_walks_all_windows(topo):
    ctx = ToyTriphoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    assert not hasattr(ctx, "pdfs_for")
    tm = TransitionModel.build(topo, ctx)
    # every (phone, state) has two pdfs: left context non-silence phone, or not
    assert tm.num_transition_states == 2 * (3 * 3 + 2 * 5)
    assert tm.num_pdfs == ctx.num_pdfs


def test_initial_probabilities_come_from_topology(topo, mono):
    tm = TransitionModel.build(topo, mono)
    t = tm.transition_state(3, 1, mono.compute([3], 1))
    assert tm.self_loop_log_prob(t) == pytest.approx(math.log(0.75))
    assert tm.forward_log_prob(t) == pytest.approx(math.log(0.25))
    assert dict(tm.transitions(t)) == pytest.approx({1: math.log(0.75), 2: math.log(0.25)})
    assert tm.transition_log_prob(t, 0) == -math.inf


def _ids(tm, mono, seq):
    return [tm.transition_state(p, s, mono.compute([p], s)) for p, s in seq]


def test_estimated_self_loop_probability_equals_hand_count(topo, mono):
    tm = TransitionModel.build(topo, mono)
    # phone 3: state 0 x3, state 1 x1, state 2 x2; phone 4: state 0 x1, 1 x4, 2 x1; phone 3 again: 0,1,2 once
    seq = [(3, 0)] * 3 + [(3, 1)] + [(3, 2)] * 2 + [(4, 0)] + [(4, 1)] * 4 + [(4, 2)] + [(3, 0), (3, 1), (3, 2)]
    ali = _ids(tm, mono, seq)
    counts = tm.zero_counts()
    tm.accumulate(counts, ali)
    assert counts.sum() == len(ali)
    stats = tm.mle_update(counts, floor=0.0, min_count=0.0)
    t30 = tm.transition_state(3, 0, mono.compute([3], 0))
    t32 = tm.transition_state(3, 2, mono.compute([3], 2))
    t41 = tm.transition_state(4, 1, mono.compute([4], 1))
    t40 = tm.transition_state(4, 0, mono.compute([4], 0))
    # (3,0): 4 frames, 2 self-loops, 2 forward -> 0.5
    assert math.exp(tm.self_loop_log_prob(t30)) == pytest.approx(2 / 4)
    # (3,2): 3 frames, 1 self-loop, 2 exits -> 1/3
    assert math.exp(tm.self_loop_log_prob(t32)) == pytest.approx(1 / 3)
    # (4,1): 4 frames, 3 self-loops -> 3/4
    assert math.exp(tm.self_loop_log_prob(t41)) == pytest.approx(3 / 4)
    # (4,0): one frame, no self-loop -> probability 0 (floor 0)
    assert tm.self_loop_log_prob(t40) == -math.inf
    assert stats["updated"] == 6 and stats["skipped"] == tm.num_transition_states - 6
    # untouched states keep the topology's prior
    t50 = tm.transition_state(5, 0, mono.compute([5], 0))
    assert math.exp(tm.self_loop_log_prob(t50)) == pytest.approx(0.75)


def test_floor_and_min_count(topo, mono):
    tm = TransitionModel.build(topo, mono)
    seq = [(3, 0)] * 10 + [(3, 1), (3, 2)]
    ali = _ids(tm, mono, seq)
    stats = tm.estimate_from_alignments([ali], floor=0.01, min_count=5.0)
    t30 = tm.transition_state(3, 0, mono.compute([3], 0))
    t31 = tm.transition_state(3, 1, mono.compute([3], 1))
    assert math.exp(tm.self_loop_log_prob(t30)) == pytest.approx(0.9)  # 9 loops of 10, above the floor
    assert math.exp(tm.self_loop_log_prob(t31)) == pytest.approx(0.75)  # 1 count < min_count: prior kept
    assert stats["updated"] == 1
    tm2 = TransitionModel.build(topo, mono)
    tm2.estimate_from_alignments([_ids(tm2, mono, [(3, 0)] * 8 + [(3, 1), (3, 2)])], floor=0.2, min_count=1.0)
    t31 = tm2.transition_state(3, 1, mono.compute([3], 1))
    # (3,1): one forward, no loop -> (0, 1) floored to (0.2, 1) and renormalised
    assert math.exp(tm2.self_loop_log_prob(t31)) == pytest.approx(0.2 / 1.2)


def test_accumulate_refuses_impossible_alignments(topo, mono):
    tm = TransitionModel.build(topo, mono)
    with pytest.raises(InputError, match="utterance u1: frame 0: .*not the entry state"):
        tm.accumulate(tm.zero_counts(), _ids(tm, mono, [(3, 1), (3, 2)]), utt_id="u1")
    with pytest.raises(InputError, match="frame 0: phone 3 HMM state 0 has no transition to state 2"):
        tm.accumulate(tm.zero_counts(), _ids(tm, mono, [(3, 0), (3, 2)]))
    with pytest.raises(InputError, match="frame 1: phone 3 HMM state 1 has no exit"):
        tm.accumulate(tm.zero_counts(), _ids(tm, mono, [(3, 0), (3, 1), (4, 0), (4, 1), (4, 2)]))
    with pytest.raises(InputError, match="out of range"):
        tm.accumulate(tm.zero_counts(), [0, 10_000])


def test_kaldi_silence_topology_counts(mono):
    topo = make_topology(NONSIL, SIL, silence_topology="kaldi")
    tm = TransitionModel.build(topo, mono)
    seq = [(1, 0), (1, 3), (1, 1), (1, 2), (1, 2), (1, 4)]  # 0->3 skip, 3->1 back, 1->2, loop, 2->4, exit
    ali = _ids(tm, mono, seq)
    k = tm.transition_indices(ali)
    assert len(k) == 6
    tm.estimate_from_alignments([ali], floor=0.0, min_count=0.0)
    t0 = tm.transition_state(1, 0, mono.compute([1], 0))
    assert dict((d, math.exp(lp)) for d, lp in tm.transitions(t0)) == pytest.approx({0: 0, 1: 0, 2: 0, 3: 1})


def test_save_load_round_trip(tmp_path, topo, mono):
    tm = TransitionModel.build(topo, mono)
    ali = _ids(tm, mono, [(3, 0)] * 3 + [(3, 1)] * 2 + [(3, 2)] * 7)
    tm.estimate_from_alignments([ali], floor=0.01, min_count=1.0)
    path = tmp_path / "final.tm.json"
    tm.save(path)
    again = TransitionModel.load(path)
    assert again == tm
    assert np.array_equal(again.self_loop_log_probs, tm.self_loop_log_probs)
    assert np.array_equal(again.label_to_pdf, tm.label_to_pdf)
    assert again.topology == topo


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(format="x"), "format"),
        (lambda d: d.pop("probs"), "missing 'probs'"),
        (lambda d: d.update(num_pdfs=3), "pdf id not in"),
        (lambda d: d["transition_states"].reverse(), "sorted and unique"),
        (lambda d: d["probs"][0].append(0.5), "probabilities for"),
        (lambda d: d["probs"].__setitem__(0, [0.9, 0.9]), "sum to"),
        (lambda d: d["transition_states"].__setitem__(-1, [5, 7, 0]), "no HMM state 7"),
        (lambda d: d["topology"].update(hmms=7), "malformed topology"),
    ],
)
def test_load_refuses_malformed_model(tmp_path, topo, mono, mutate, match):
    tm = TransitionModel.build(topo, mono)
    data = tm.to_json_dict()
    mutate(data)
    path = tmp_path / "tm.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=match) as err:
        TransitionModel.load(path)
    assert err.value.path == str(path)


def test_load_bad_json_names_line(tmp_path):
    path = tmp_path / "tm.json"
    path.write_text('{"format": "asr-transition-model",\n"version": 1,\n}')
    with pytest.raises(InputError) as err:
        TransitionModel.load(path)
    assert err.value.line == 3
