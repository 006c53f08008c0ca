"""Forced alignment against a brute-force Viterbi over the same HMMs, failures, and conversions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from asr.decode.align import (
    AlignmentFailures,
    align_utterance,
    phone_segments,
    tstates_to_pdfs,
    tstates_to_phones,
)
from asr.graph.alignment_graph import AlignmentGraphCompiler, make_alignment_graph
from asr.graph.hclg import GraphBuildError, GraphOptions
from asr.graph.stats import min_frames_to_final
from asr.graph.toy import SIL, ToyLang, ToyTriphoneContextDependency, favouring_scores, phone_windows
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency

LANG = ToyLang()
A, B, C = 1, 2, 3
a, b, c = 3, 4, 5
PRON = {A: [a, b], B: [b, c], C: [a, b, c]}


def _model(ctx_kind: str, silence_topology: str = "left_to_right"):
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones, silence_topology=silence_topology)
    classes = {p: topo.num_pdf_classes(p) for p in topo.phones}
    ctx = MonophoneContextDependency(classes) if ctx_kind == "mono" else ToyTriphoneContextDependency(classes)
    return topo, ctx, TransitionModel.build(topo, ctx)


def _viterbi_one_sequence(loglikes, phones, tm, ctx, transition_scale, self_loop_scale):
    """Plain Viterbi over the concatenated phone HMMs; returns (cost, tstate per frame)."""
    topo = tm.topology
    windows = phone_windows(phones, ctx.context_width, ctx.central_position)
    nodes = []  # (phone index, hmm state, tstate)
    first = {}
    for k, (phone, window) in enumerate(zip(phones, windows)):
        first[k] = len(nodes)
        for j, st in enumerate(topo.hmm(phone).states):
            nodes.append((k, j, tm.transition_state(phone, j, ctx.compute(window, st.pdf_class))))
    index = {(k, j): n for n, (k, j, _) in enumerate(nodes)}

    def move_cost(tstate, dest):
        log_fwd = tm.forward_log_prob(tstate)
        return -transition_scale * (tm.transition_log_prob(tstate, dest) - log_fwd) - self_loop_scale * log_fwd

    # predecessors[n] = [(m, cost)] for m -> n
    preds = [[] for _ in nodes]
    final_cost = {}
    for m, (k, i, t) in enumerate(nodes):
        n_states = topo.hmm(phones[k]).num_states
        for dest, log_p in tm.transitions(t):
            if log_p == -math.inf:
                continue
            if dest == i:
                preds[m].append((m, -self_loop_scale * log_p))
            elif dest < n_states:
                preds[index[(k, dest)]].append((m, move_cost(t, dest)))
            elif k + 1 < len(phones):
                preds[first[k + 1]].append((m, move_cost(t, dest)))
            else:
                final_cost[m] = move_cost(t, dest)
    pdf = [tm.tstate_to_pdf[t] for _, _, t in nodes]
    num_frames = loglikes.shape[0]
    delta = np.full((num_frames, len(nodes)), math.inf)
    back = np.full((num_frames, len(nodes)), -1, dtype=int)
    delta[0, 0] = -loglikes[0, pdf[0]]
    for frame in range(1, num_frames):
        for n in range(len(nodes)):
            for m, cost in preds[n]:
                cand = delta[frame - 1, m] + cost
                if cand < delta[frame, n]:
                    delta[frame, n] = cand
                    back[frame, n] = m
            delta[frame, n] -= loglikes[frame, pdf[n]]
    ends = [(delta[-1, m] + cost, m) for m, cost in final_cost.items()]
    best, m = min(ends)
    if best == math.inf:
        return math.inf, None
    path = [m]
    for frame in range(num_frames - 1, 0, -1):
        m = back[frame, m]
        path.append(m)
    return best, [nodes[n][2] for n in reversed(path)]


def _reference_alignment(loglikes, words, tm, ctx, sil_prob, transition_scale, self_loop_scale):
    """Best path over every optional-silence variant of the transcript (L's costs included)."""
    best = (math.inf, None)
    for flags in itertools.product([False, True], repeat=len(words) + 1):
        phones = [SIL] if flags[0] else []
        lex = -math.log(sil_prob if flags[0] else 1 - sil_prob)
        for k, w in enumerate(words):
            phones += PRON[w]
            if flags[k + 1]:
                phones.append(SIL)
            lex -= math.log(sil_prob if flags[k + 1] else 1 - sil_prob)
        cost, path = _viterbi_one_sequence(loglikes, phones, tm, ctx, transition_scale, self_loop_scale)
        if cost + lex < best[0]:
            best = (cost + lex, path)
    return best


@pytest.mark.parametrize("ctx_kind", ["mono", "tri"])
@pytest.mark.parametrize("silence_topology", ["left_to_right", "kaldi"])
@pytest.mark.parametrize("self_loop_scale", [1.0, 0.1])
@pytest.mark.parametrize("words, num_frames, seed", [([A, B], 24, 0), ([C], 17, 1), ([B, A, C], 30, 2)])
def test_alignment_equals_brute_force_viterbi(ctx_kind, silence_topology, self_loop_scale, words, num_frames, seed):
    topo, ctx, tm = _model(ctx_kind, silence_topology)
    rng = np.random.default_rng(seed)
    # make transition probabilities differ per state, so a wrong transition cost would show
    counts = tm.zero_counts()
    counts += rng.uniform(1.0, 10.0, size=counts.shape)
    tm.mle_update(counts, floor=0.01, min_count=0.0)
    sil_prob = 0.3
    options = GraphOptions(transition_scale=1.0, self_loop_scale=self_loop_scale)
    graph = make_alignment_graph(LANG.lexicon_fst(sil_prob), words, tm, ctx, options)
    loglikes = rng.normal(0.0, 2.0, size=(num_frames, ctx.num_pdfs)).astype(np.float32)
    result = align_utterance(graph, loglikes, tm, beam=1000.0)
    ref_cost, ref_path = _reference_alignment(loglikes, words, tm, ctx, sil_prob, 1.0, self_loop_scale)
    assert result.ok, result.failure
    assert result.tstate_ids.tolist() == ref_path
    # weights in the graph are quantised to 1/1024 per arc by minimisation
    assert result.graph_cost + result.acoustic_cost == pytest.approx(ref_cost, abs=0.02)
    assert result.acoustic_cost == pytest.approx(
        -loglikes[np.arange(num_frames), tm.tstate_to_pdf[ref_path]].sum(), abs=1e-3
    )


def test_segments_pdfs_and_phones_of_a_known_alignment():
    topo, ctx, tm = _model("tri")
    words = [A, B]
    phones = [SIL, a, b, SIL, b, c]
    frames = [1, 2, 1, 1, 3] + [2, 1, 1] + [1, 1, 1] + [1, 1, 1, 1, 1] + [3, 1, 1] + [1, 1, 2]
    scores = favouring_scores(phones, topo, ctx, frames_per_state=frames)
    graph = make_alignment_graph(LANG.lexicon_fst(0.5), words, tm, ctx)
    result = align_utterance(graph, scores, tm)
    assert result.ok and result.acoustic_cost == pytest.approx(0.0)
    segs = phone_segments(result.tstate_ids, tm)
    lengths = [sum(frames[0:5]), 4, 3, 5, 5, 4]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    assert segs == list(zip(phones, starts, lengths))
    per_frame_phones = tstates_to_phones(result.tstate_ids, tm)
    assert per_frame_phones.tolist() == [p for p, n in zip(phones, lengths) for _ in range(n)]
    assert tstates_to_pdfs(result.tstate_ids, tm).tolist() == np.argmax(scores, axis=1).tolist()
    assert tstates_to_pdfs(result.tstate_ids, tm).dtype == np.int32


def test_repeated_phone_instances_are_separate_segments():
    topo, ctx, tm = _model("mono")
    ids = [tm.transition_state(b, j, ctx.compute([b], j)) for j in (0, 0, 1, 2, 0, 1, 2, 2)]
    assert phone_segments(np.array(ids), tm) == [(b, 0, 4), (b, 4, 4)]
    assert phone_segments(np.array([], dtype=int), tm) == []


def test_too_short_utterance_fails_with_reason():
    topo, ctx, tm = _model("mono")
    graph = make_alignment_graph(LANG.lexicon_fst(0.5), [A, B], tm, ctx)
    assert min_frames_to_final(graph) == 12
    result = align_utterance(graph, np.zeros((7, ctx.num_pdfs), dtype=np.float32), tm)
    assert not result.ok and result.tstate_ids is None
    assert "7 frames" in result.failure and "at least 12" in result.failure
    failures = AlignmentFailures()
    failures.add("utt1", result.failure)
    assert len(failures) == 1 and failures.summary(10).startswith("1 of 10 utterances failed to align (utt1)")
    empty = align_utterance(graph, np.zeros((0, ctx.num_pdfs), dtype=np.float32), tm)
    assert not empty.ok and "no frames" in empty.failure


def test_retry_beam_rescues_a_pruned_alignment():
    """Scores pull the best token into a dead end (staying in a's first state); only a wide beam keeps
    the path that moves on every frame."""
    topo, ctx, tm = _model("mono")
    words = [C, A, B, C]
    graph = AlignmentGraphCompiler(LANG.lexicon_fst(0.5), tm, ctx).compile(words)
    num_frames = min_frames_to_final(graph)
    scores = np.full((num_frames, ctx.num_pdfs), -10.0, dtype=np.float32)
    scores[:, ctx.compute([a], 0)] = 0.0
    narrow = align_utterance(graph, scores, tm, beam=1.0, retry_beam=0.0, min_active=1)
    assert not narrow.ok and "beam 1" in narrow.failure
    retried = align_utterance(graph, scores, tm, beam=1.0, retry_beam=1000.0, min_active=1)
    assert retried.ok and retried.beam == 1000.0
    assert len(phone_segments(retried.tstate_ids, tm)) == 2 * 3 + 2 * 2 + 0  # no silence fits


def test_word_without_pronunciation_is_an_error():
    topo, ctx, tm = _model("mono")
    with pytest.raises(GraphBuildError, match="no pronunciation path"):
        make_alignment_graph(LANG.lexicon_fst(0.5), [A, 99], tm, ctx)
