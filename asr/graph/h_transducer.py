"""H: the HMM transducer from transition-state labels to context windows (Kaldi's ``GetHTransducer``).

H is built from the ``ilabels`` list that ``kaldifst.compose_context`` returned for the CLG it will be
composed with (its input labels are indices into that list):

* one start state, also final;
* per phone window ``ilabels[i]`` (``[l, c, r]`` for triphones, ``[c]`` for monophones), the HMM of the
  central phone, entered from the start state by an arc ``(tstate_0 + 1):i`` (the window index is output
  on the first arc only) and left back to the start state; every arc entering HMM state ``j`` has input
  ``tstate_j + 1``, where ``tstate_j`` is the transition state ``(c, j, ctx_dep.compute(window,
  pdf_class_j))``;
* per disambiguation entry (``[-p]``, a phone disambiguation symbol, and ``[0]``, the ``#-1`` start
  symbol of the context FST) a loop on the start state with input ``num_transition_states + i`` (above
  the emission range; mapped to epsilon after determinization) and output ``i``.

H has no self-loops: they are added to the final graph (:mod:`asr.graph.hmm_self_loops`), where their
probability depends on the label alone. Costs follow Kaldi's ``--transition-scale`` /
``--self-loop-scale`` convention: the transition ``i -> j`` (non-self-loop, ``j`` may be the exit) of a
state with self-loop probability ``q`` costs ``-transition_scale * log(p(i->j) / (1 - q))
- self_loop_scale * log(1 - q)``; the self-loop later costs ``-self_loop_scale * log q``. For a
left-to-right HMM the first term is 0.

A state whose only non-self-loop transition is the exit is merged into the start state (its exit cost
moves onto the arcs entering it), so left-to-right HMMs become plain chains; other exits become
epsilon arcs back to the start state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import kaldifst

from asr.hmm.transition_model import ContextDependency, TransitionModel


def _transition_cost(
    tm: TransitionModel, tstate: int, destination: int, transition_scale: float, self_loop_scale: float
) -> float:
    log_p = tm.transition_log_prob(tstate, destination)
    log_fwd = tm.forward_log_prob(tstate)  # log(1 - q)
    return -transition_scale * (log_p - log_fwd) - self_loop_scale * log_fwd


def window_transition_states(
    window: Sequence[int], transition_model: TransitionModel, ctx_dep: ContextDependency
) -> tuple[int, ...]:
    """Transition state of each HMM state of the central phone of ``window`` (0-based ids).

    Raises:
        KeyError: the central phone has no HMM, or the context dependency gives a pdf for which the
            transition model has no transition state (model and tree do not match).
    """
    phone = int(window[ctx_dep.central_position])
    hmm = transition_model.topology.hmm(phone)
    return tuple(
        transition_model.transition_state(phone, j, ctx_dep.compute(list(window), state.pdf_class))
        for j, state in enumerate(hmm.states)
    )


def make_h(
    ilabels: Sequence[Sequence[int]],
    transition_model: TransitionModel,
    ctx_dep: ContextDependency,
    transition_scale: float = 1.0,
    self_loop_scale: float = 0.1,
) -> kaldifst.StdVectorFst:
    """Build H for the CLG whose ``compose_context`` call returned ``ilabels``.

    Args:
        ilabels: ``ilabels`` from ``kaldifst.compose_context`` (entry 0 is epsilon).
        transition_model: gives the transition states and their transition probabilities.
        ctx_dep: the context dependency (``context_width``, ``central_position``, ``compute``).
        transition_scale: scale on non-self-loop transition log-probabilities (Kaldi default 1.0).
        self_loop_scale: scale on the self-loop part (Kaldi default 0.1), see the module docstring.

    Returns:
        H, input labels ``1..num_transition_states`` (emissions) and above (disambiguation), output
        labels = indices into ``ilabels``; not sorted.
    """
    width = int(ctx_dep.context_width)
    num_t = transition_model.num_transition_states
    h = kaldifst.StdVectorFst()
    start = h.add_state()
    h.start = start
    h.set_final(start, 0.0)
    # (phone, tstates) -> (node of each HMM state (start if merged), extra cost of entering each state)
    chains: dict[tuple[int, tuple[int, ...]], tuple[list[int], list[float]]] = {}

    def build_chain(phone: int, tstates: tuple[int, ...]) -> tuple[list[int], list[float]]:
        hmm = transition_model.topology.hmm(phone)
        n = hmm.num_states
        nodes: list[int] = []
        enter_cost: list[float] = []
        outgoing: list[list[tuple[int, float]]] = []
        for j in range(n):
            out = []
            for dest, log_p in transition_model.transitions(tstates[j]):
                if dest == j or log_p == -math.inf:
                    continue
                out.append(
                    (dest, _transition_cost(transition_model, tstates[j], dest, transition_scale, self_loop_scale))
                )
            outgoing.append(out)
            if len(out) == 1 and out[0][0] == n:
                nodes.append(start)  # merged: only way out is the exit
                enter_cost.append(out[0][1])
            else:
                nodes.append(h.add_state())
                enter_cost.append(0.0)
        for j in range(n):
            if nodes[j] == start:
                continue
            for dest, cost in outgoing[j]:
                if dest == n:
                    h.add_arc(nodes[j], kaldifst.StdArc(0, 0, cost, start))
                else:
                    h.add_arc(nodes[j], kaldifst.StdArc(tstates[dest] + 1, 0, cost + enter_cost[dest], nodes[dest]))
        return nodes, enter_cost

    for i, entry in enumerate(ilabels):
        if i == 0:
            if len(entry) != 0:
                raise ValueError(f"ilabels[0] must be the empty (epsilon) entry, got {list(entry)}")
            continue
        if len(entry) == 1 and entry[0] <= 0:  # [-p] disambiguation phone or [0] = #-1
            h.add_arc(start, kaldifst.StdArc(num_t + i, i, 0.0, start))
            continue
        if len(entry) != width:
            raise ValueError(f"ilabels[{i}] = {list(entry)} is not a window of width {width}")
        phone = int(entry[ctx_dep.central_position])
        tstates = window_transition_states(entry, transition_model, ctx_dep)
        key = (phone, tstates)
        if key not in chains:
            chains[key] = build_chain(phone, tstates)
        nodes, enter_cost = chains[key]
        h.add_arc(start, kaldifst.StdArc(tstates[0] + 1, i, enter_cost[0], nodes[0]))
    return h
