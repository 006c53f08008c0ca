"""HCLG = H o C o L o G, in the order of Kaldi's ``mkgraph.sh``, with kaldifst.

Steps (each one's FST size is logged at DEBUG level, the total time at INFO):

1. ``LG = L_disambig o G`` (L sorted by output label, G by input label, on copies), word disambiguation
   output labels (if any survive) mapped to epsilon, ``determinize_star(use_log=True)``,
   ``minimize_encoded``;
2. ``CLG, ilabels = compose_context(disambig_phone_ids, width, central, LG)``, sorted by input label;
3. ``H`` from ``ilabels`` (:func:`asr.graph.h_transducer.make_h`), ``H o CLG``,
   ``determinize_star(use_log=True)``, input labels above the emission range (H's disambiguation labels)
   mapped to epsilon by composing with a one-state mapping FST, ``rmepsilon``, ``minimize_encoded``;
4. HMM self-loops (:func:`asr.graph.hmm_self_loops.add_hmm_self_loops`, which also checks that every
   input label is in ``0..num_transition_states``), ``connect``, sort by input label.

Scales (:class:`GraphOptions`) follow Kaldi: ``transition_scale`` (default 1.0) multiplies the
log-probabilities of non-self-loop transitions (normalised by ``1 - p_loop``), ``self_loop_scale``
(default 0.1) multiplies the self-loop log-probability and ``log(1 - p_loop)``; with both 1.0 a path's
graph cost is exactly ``-log`` of its HMM transition probabilities plus the L and G costs. The
acoustic scale is not in the graph: scale the score matrix.

Every ``determinize_star`` gets ``max_states`` (a non-determinizable input would otherwise run forever);
exceeding it raises :class:`GraphBuildError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import kaldifst

from asr.graph.h_transducer import make_h
from asr.graph.hmm_self_loops import add_hmm_self_loops
from asr.hmm.transition_model import ContextDependency, TransitionModel

logger = logging.getLogger(__name__)


class GraphBuildError(RuntimeError):
    """A graph could not be built (determinization blew past ``max_states``, an empty result...)."""


@dataclass(frozen=True)
class GraphOptions:
    """Options of graph building.

    Attributes:
        transition_scale: Kaldi ``--transition-scale`` (1.0).
        self_loop_scale: Kaldi ``--self-loop-scale`` (0.1).
        max_states: bound for each ``determinize_star`` (GraphBuildError when exceeded).
        delta: weight quantisation/comparison delta of determinization and minimization (1/1024).
    """

    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    max_states: int = 20_000_000
    delta: float = 1.0 / 1024


def _size(fst: kaldifst.StdVectorFst) -> str:
    return f"{fst.num_states} states, {sum(fst.num_arcs(s) for s in range(fst.num_states))} arcs"


def _log_size(what: str, fst: kaldifst.StdVectorFst) -> None:
    if logger.isEnabledFor(logging.DEBUG):  # counting arcs costs a pass over the graph
        logger.debug("%s: %s", what, _size(fst))


def determinize_star_bounded(
    fst: kaldifst.StdVectorFst, max_states: int, use_log: bool, delta: float, what: str
) -> None:
    """``kaldifst.determinize_star`` in place with a state bound; GraphBuildError naming ``what`` past it."""
    try:
        stopped = kaldifst.determinize_star(fst, delta=delta, max_states=max_states, use_log=use_log)
    except RuntimeError as err:
        raise GraphBuildError(
            f"determinizing {what} exceeded max_states={max_states} ({err}); the input may not be "
            "determinizable (missing disambiguation symbols?) or the bound is too small"
        ) from None
    if stopped:
        raise GraphBuildError(f"determinizing {what} stopped at max_states={max_states}")


def map_output_labels_to_epsilon(fst: kaldifst.StdVectorFst, labels: Iterable[int]) -> kaldifst.StdVectorFst:
    """Copy of ``fst`` with the given output labels replaced by 0 (``fst`` itself when none occurs)."""
    drop = set(int(x) for x in labels)
    if not drop:
        return fst
    found = any(arc.olabel in drop for s in range(fst.num_states) for arc in kaldifst.ArcIterator(fst, s))
    if not found:
        return fst
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    zero = kaldifst.TropicalWeight.zero
    for s in range(fst.num_states):
        final = fst.final(s)
        if final != zero:
            out.set_final(s, final.value)
        for arc in kaldifst.ArcIterator(fst, s):
            olabel = 0 if arc.olabel in drop else arc.olabel
            out.add_arc(s, kaldifst.StdArc(arc.ilabel, olabel, arc.weight.value, arc.nextstate))
    return out


def remove_input_labels_above(fst: kaldifst.StdVectorFst, max_label: int, max_present: int) -> kaldifst.StdVectorFst:
    """Map input labels ``max_label+1 .. max_present`` to epsilon, keep ``1..max_label`` (C++ compose).

    Composes a one-state mapping FST (``x:x`` for ``x <= max_label``, ``0:d`` for ``d > max_label``) on the
    left of ``fst`` (which is arcsorted by input label here, in place).
    """
    if max_present <= max_label:
        return fst
    mapping = kaldifst.StdVectorFst()
    s = mapping.add_state()
    mapping.start = s
    mapping.set_final(s, 0.0)
    for x in range(1, max_label + 1):
        mapping.add_arc(s, kaldifst.StdArc(x, x, 0.0, s))
    for d in range(max_label + 1, max_present + 1):
        mapping.add_arc(s, kaldifst.StdArc(0, d, 0.0, s))
    kaldifst.arcsort(mapping, sort_type="olabel")
    kaldifst.arcsort(fst, sort_type="ilabel")
    return kaldifst.compose(mapping, fst, connect=True)


def _max_ilabel(fst: kaldifst.StdVectorFst) -> int:
    return max(
        (arc.ilabel for s in range(fst.num_states) for arc in kaldifst.ArcIterator(fst, s)),
        default=0,
    )


def make_lg(
    lexicon_disambig: kaldifst.StdVectorFst,
    grammar: kaldifst.StdVectorFst,
    word_disambig_ids: Sequence[int] = (),
    options: GraphOptions = GraphOptions(),
) -> kaldifst.StdVectorFst:
    """``LG = min(det(L_disambig o G))`` (inputs are copied, not modified).

    Args:
        lexicon_disambig: L with disambiguation phones (``#0`` loop included), phones -> words.
        grammar: G over word ids (backoff arcs ``#0:<eps>`` as kaldilm writes them).
        word_disambig_ids: word ids of ``#0``... mapped to epsilon on LG's output side if present.
        options: graph options (``max_states``, ``delta``).
    """
    lex = kaldifst.StdVectorFst(lexicon_disambig)
    gram = kaldifst.StdVectorFst(grammar)
    kaldifst.arcsort(lex, sort_type="olabel")
    kaldifst.arcsort(gram, sort_type="ilabel")
    lg = kaldifst.compose(lex, gram, connect=True)
    _log_size("L o G", lg)
    if lg.num_states == 0:
        raise GraphBuildError("L o G is empty: the grammar uses no word that the lexicon has")
    lg = map_output_labels_to_epsilon(lg, word_disambig_ids)
    determinize_star_bounded(lg, options.max_states, True, options.delta, "L o G")
    kaldifst.minimize_encoded(lg, options.delta)
    _log_size("LG", lg)
    return lg


def make_clg(
    lg: kaldifst.StdVectorFst, ctx_dep: ContextDependency, disambig_phone_ids: Sequence[int]
) -> tuple[kaldifst.StdVectorFst, list[list[int]]]:
    """``compose_context`` on ``lg``; returns ``(CLG sorted by input label, ilabels)``."""
    clg, ilabels = kaldifst.compose_context(
        [int(x) for x in disambig_phone_ids], int(ctx_dep.context_width), int(ctx_dep.central_position), lg
    )
    kaldifst.arcsort(clg, sort_type="ilabel")
    _log_size(f"CLG ({len(ilabels)} ilabels)", clg)
    return clg, [list(x) for x in ilabels]


def make_hclg_from_clg(
    clg: kaldifst.StdVectorFst,
    ilabels: Sequence[Sequence[int]],
    transition_model: TransitionModel,
    ctx_dep: ContextDependency,
    options: GraphOptions = GraphOptions(),
) -> kaldifst.StdVectorFst:
    """Steps 3-4 of the module docstring: H o CLG, determinize, remove disambiguation, self-loops.

    Args:
        clg: CLG (or C o L o words for alignment); sorted by input label here (in place).
        ilabels: the ``compose_context`` ilabels that belong to ``clg``.
        transition_model, ctx_dep: the acoustic model's transition model and context dependency.
        options: scales and bounds.

    Returns:
        The graph with HMM self-loops; input labels ``0..num_transition_states``, output labels words.
    """
    num_t = transition_model.num_transition_states
    h = make_h(ilabels, transition_model, ctx_dep, options.transition_scale, options.self_loop_scale)
    kaldifst.arcsort(h, sort_type="olabel")
    kaldifst.arcsort(clg, sort_type="ilabel")  # unsorted operands silently lose paths in compose
    _log_size("H", h)
    hclg = kaldifst.compose(h, clg, connect=True)
    _log_size("H o CLG", hclg)
    if hclg.num_states == 0:
        raise GraphBuildError("H o CLG is empty")
    determinize_star_bounded(hclg, options.max_states, True, options.delta, "H o CLG")
    hclg = remove_input_labels_above(hclg, num_t, num_t + len(ilabels))
    kaldifst.rmepsilon(hclg)
    kaldifst.minimize_encoded(hclg, options.delta)
    _log_size("HCLG without self-loops", hclg)
    # add_hmm_self_loops raises ValueError for any input label outside 0..num_t: this is the range
    # check DecodableCtc needs (it has no bounds check); see also asr.graph.stats.check_ilabel_range.
    hclg = add_hmm_self_loops(hclg, transition_model, options.self_loop_scale)
    kaldifst.connect(hclg)
    kaldifst.arcsort(hclg, sort_type="ilabel")
    if hclg.num_states == 0:
        raise GraphBuildError("the graph is empty after removing disambiguation symbols")
    return hclg


def make_hclg(
    lexicon_disambig: kaldifst.StdVectorFst,
    grammar: kaldifst.StdVectorFst,
    transition_model: TransitionModel,
    ctx_dep: ContextDependency,
    disambig_phone_ids: Sequence[int],
    word_disambig_ids: Sequence[int] = (),
    options: GraphOptions = GraphOptions(),
) -> kaldifst.StdVectorFst:
    """Build the decoding graph HCLG (Kaldi's ``mkgraph.sh``), for any context width (1 or 3).

    Args:
        lexicon_disambig: ``L_disambig.fst`` (phones with ``#k`` -> words, ``#0:#0`` loop).
        grammar: ``G.fst`` over word ids.
        transition_model: transition states and probabilities (graph labels = transition state + 1).
        ctx_dep: context dependency (``context_width``, ``central_position``, ``compute``).
        disambig_phone_ids: phone ids of ``#0, #1, ...`` (all disambiguation phones in L).
        word_disambig_ids: word ids of ``#0``... (removed from the output side if G left any there).
        options: :class:`GraphOptions`.

    Returns:
        HCLG: input labels transition-state id + 1 (checked ``<= num_transition_states``), output labels
        word ids, HMM self-loops included; decode with ``DecodableCtc(scores[:, tstate_to_pdf])``.
    """
    t0 = time.perf_counter()
    lg = make_lg(lexicon_disambig, grammar, word_disambig_ids, options)
    clg, ilabels = make_clg(lg, ctx_dep, disambig_phone_ids)
    hclg = make_hclg_from_clg(clg, ilabels, transition_model, ctx_dep, options)
    logger.info("HCLG: %d states, built in %.2f s", hclg.num_states, time.perf_counter() - t0)
    return hclg
