"""HMM self-loops on a graph without them (Kaldi's ``AddSelfLoops`` with ``reorder=false``).

First every state is made to have one *preceding input label* (Kaldi's
``MakePrecedingInputSymbolsSame``): a state entered by arcs with different input labels is split into
one copy per label, each copy keeping the state's outgoing arcs and final weight. The start state counts
as entered by epsilon (it is "not in any HMM state"), so arcs with a real label that come back to it go to
a copy. Then a state whose incoming label is ``e + 1`` (transition state ``e``) gets a self-loop
``(e + 1):0`` with cost ``-self_loop_scale * log p_loop(e)`` (none when ``e`` has no self-loop). The
``log(1 - p_loop)`` part of Kaldi's self-loop scaling is already on H's arcs
(:mod:`asr.graph.h_transducer`).

The graph is rebuilt in Python (about 4 us per arc, e.g. 10 s for 2.4 million arcs).
"""

from __future__ import annotations

import math

import kaldifst
import numpy as np

from asr.hmm.transition_model import TransitionModel


def add_hmm_self_loops(
    fst: kaldifst.StdVectorFst, transition_model: TransitionModel, self_loop_scale: float = 0.1
) -> kaldifst.StdVectorFst:
    """Split states so that incoming input labels agree, then add the HMM self-loops.

    Args:
        fst: graph without HMM self-loops, input labels ``0..num_transition_states`` (no disambiguation
            labels left; ValueError naming the state otherwise). Not modified.
        transition_model: gives ``self_loop_log_prob`` per transition state.
        self_loop_scale: Kaldi's ``--self-loop-scale`` (default 0.1).

    Returns:
        A new graph with the self-loops (states that were unreachable from the start are left empty).
    """
    num_states = fst.num_states
    if num_states == 0 or fst.start < 0:
        return kaldifst.StdVectorFst()
    start = fst.start
    num_t = transition_model.num_transition_states
    # Pass 1: all arcs into flat lists (state order), final weights.
    ilabels: list[int] = []
    olabels: list[int] = []
    weights: list[float] = []
    nextstates: list[int] = []
    offsets = [0] * (num_states + 1)
    finals: list[float | None] = [None] * num_states
    zero = kaldifst.TropicalWeight.zero
    for s in range(num_states):
        for arc in kaldifst.ArcIterator(fst, s):
            ilabels.append(arc.ilabel)
            olabels.append(arc.olabel)
            weights.append(arc.weight.value)
            nextstates.append(arc.nextstate)
        offsets[s + 1] = len(ilabels)
        final = fst.final(s)
        if final != zero:
            finals[s] = final.value
    il = np.asarray(ilabels, dtype=np.int64)
    bad = np.nonzero((il < 0) | (il > num_t))[0]
    if bad.size:
        state = int(np.searchsorted(np.asarray(offsets), bad[0], side="right") - 1)
        raise ValueError(
            f"state {state}: input label {int(il[bad[0]])} is outside 0..{num_t}; remove disambiguation labels first"
        )
    # Classes: distinct (state, incoming label) pairs; the start state is entered by epsilon.
    base = num_t + 1
    keys = np.asarray(nextstates, dtype=np.int64) * base + il
    uniq, inverse = np.unique(np.append(keys, start * base), return_inverse=True)
    key_state = uniq // base
    key_label = uniq % base
    first = np.ones(uniq.shape[0], dtype=bool)
    first[1:] = key_state[1:] != key_state[:-1]
    # the smallest label of a state keeps the state's id (label 0 for the start), the others are copies
    new_id = np.where(first, key_state, num_states + np.cumsum(~first) - 1)
    targets = new_id[inverse[:-1]].tolist()
    loop_cost = [-self_loop_scale * lp if lp > -math.inf else None for lp in transition_model.self_loop_log_probs]

    out = kaldifst.StdVectorFst()
    for _ in range(num_states + int((~first).sum())):
        out.add_state()
    out.start = start
    add_arc = out.add_arc
    Arc = kaldifst.StdArc
    for src, label, dst in zip(key_state.tolist(), key_label.tolist(), new_id.tolist()):
        if finals[src] is not None:
            out.set_final(dst, finals[src])
        if label > 0 and loop_cost[label - 1] is not None:
            add_arc(dst, Arc(label, 0, loop_cost[label - 1], dst))
        for k in range(offsets[src], offsets[src + 1]):
            add_arc(dst, Arc(ilabels[k], olabels[k], weights[k], targets[k]))
    return out
