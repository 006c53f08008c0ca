"""HMM topology: construction, validation, JSON round trip and malformed files."""

from __future__ import annotations

import json

import pytest

from asr.errors import InputError
from asr.hmm.topology import HmmState, PhoneHmm, Topology, kaldi_silence_hmm, left_to_right_hmm, make_topology


def test_left_to_right_structure():
    hmm = left_to_right_hmm(3, self_loop_prob=0.6)
    assert hmm.num_states == 3 and hmm.exit_state == 3
    assert hmm.pdf_classes == [0, 1, 2]
    for i, st in enumerate(hmm.states):
        assert dict(st.transitions) == pytest.approx({i: 0.6, i + 1: 0.4})
    assert hmm.self_loop_prob(1) == pytest.approx(0.6)
    assert hmm.min_frames() == 3


def test_kaldi_silence_hmm_matches_gen_topo():
    hmm = kaldi_silence_hmm(5)
    assert [sorted(d for d, _ in s.transitions) for s in hmm.states] == [
        [0, 1, 2, 3],
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        [1, 2, 3, 4],
        [4, 5],
    ]
    assert all(p == pytest.approx(0.25) for s in hmm.states[:4] for _, p in s.transitions)
    assert dict(hmm.states[4].transitions) == pytest.approx({4: 0.75, 5: 0.25})
    assert hmm.min_frames() == 3  # 0 -> 3 -> 4 -> exit


def test_make_topology_sizes():
    topo = make_topology([3, 4, 5], [1, 2])
    assert topo.phones == [1, 2, 3, 4, 5]
    assert topo.hmm(1).num_states == 5 and topo.hmm(3).num_states == 3
    assert topo.num_pdf_classes(2) == 5
    kaldi = make_topology([3], [1], silence_topology="kaldi")
    assert kaldi.hmm(1) == kaldi_silence_hmm(5)
    with pytest.raises(KeyError, match="phone 9"):
        topo.hmm(9)
    with pytest.raises(ValueError, match="both silence"):
        make_topology([1, 3], [1])


@pytest.mark.parametrize(
    "states, match",
    [
        ((HmmState(0, ((0, 0.5), (1, 0.4))),), "sum to"),
        ((HmmState(0, ((0, 0.5), (2, 0.5))),), "not in 0..1"),
        ((HmmState(0, ((1, 1.0),)), HmmState(1, ((0, 0.5), (2, 0.5)))), "entry state 0"),
        ((HmmState(0, ((0, 0.5), (0, 0.5))),), "two transitions"),
        ((HmmState(0, ((0, 1.0),)),), "never leave"),
        ((HmmState(0, ((2, 1.0),)), HmmState(1, ((2, 1.0),))), "cannot be reached"),
        ((HmmState(-1, ((1, 1.0),)),), "pdf_class"),
        ((HmmState(0, ((0, 0.0), (1, 1.0))),), "must be > 0"),
    ],
)
def test_invalid_hmms_are_refused(states, match):
    with pytest.raises(ValueError, match=match):
        PhoneHmm(states=states)


def test_json_round_trip(tmp_path):
    topo = make_topology([3, 4, 5], [1, 2], silence_topology="kaldi")
    path = tmp_path / "topo.json"
    topo.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "asr-hmm-topology"
    assert sorted(p for h in data["hmms"] for p in h["phones"]) == [1, 2, 3, 4, 5]
    assert len(data["hmms"]) == 2  # grouped: one HMM for silence phones, one for the others
    again = Topology.load(path)
    assert again == topo
    assert again.hmm(1).states == topo.hmm(1).states


def _write(tmp_path, obj) -> str:
    path = tmp_path / "topo.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def _valid() -> dict:
    return make_topology([3], [1]).to_json_dict()


def test_load_reports_json_syntax_error_with_line(tmp_path):
    path = _write(tmp_path, '{\n "format": "asr-hmm-topology",\n "version": 1,\n "hmms": [}\n')
    with pytest.raises(InputError) as err:
        Topology.load(path)
    assert err.value.path == path and err.value.line == 4


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(format="kaldi"), "format"),
        (lambda d: d.update(version=7), "version"),
        (lambda d: d.update(hmms=[]), "non-empty"),
        (lambda d: d["hmms"][0].update(phones=[0]), "phone id 0"),
        (lambda d: d["hmms"][1].update(phones=[1]), "listed twice"),
        (lambda d: d["hmms"][0]["states"][0].update(transitions=[[0, 0.5], [1, 0.1]]), "sum to"),
        (lambda d: d["hmms"][0]["states"][0].update(transitions=[[0, "x"], [1, 0.1]]), "not a number"),
        (lambda d: d["hmms"][0]["states"][0].pop("pdf_class"), "pdf_class"),
        (lambda d: d["hmms"][0]["states"][1].update(transitions=[[0, 0.5], [2, 0.5]]), "entry state"),
    ],
)
def test_load_refuses_malformed_topology(tmp_path, mutate, match):
    data = _valid()
    assert [h["phones"] for h in data["hmms"]] == [[1], [3]]
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(InputError, match=match) as err:
        Topology.load(path)
    assert err.value.path == path


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read topology"):
        Topology.load(tmp_path / "nope.json")


def test_probabilities_are_normalised_on_load(tmp_path):
    data = _valid()
    data["hmms"][0]["states"][0]["transitions"] = [[0, 0.7502], [1, 0.25]]
    topo = Topology.load(_write(tmp_path, data))
    hmm = topo.hmm(data["hmms"][0]["phones"][0])
    assert sum(p for _, p in hmm.states[0].transitions) == pytest.approx(1.0, abs=1e-12)
