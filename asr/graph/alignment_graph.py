"""Per-utterance forced-alignment graphs (Kaldi's ``compile-train-graphs``).

``L o words`` (L without disambiguation symbols, its optional silence giving optional silence between
words and at the ends) -> ``determinize_star(use_log=True)`` (acyclic, so always determinizable) ->
``compose_context(disambig_syms=[])`` -> the same H / determinize / self-loop steps as HCLG
(:func:`asr.graph.hclg.make_hclg_from_clg`). Labels are transition states, so phone and HMM-state
boundaries are recoverable from the 1-best path.

Kaldi's aligner uses ``--transition-scale 1.0 --self-loop-scale 0.1`` (the :class:`GraphOptions`
defaults) with an acoustic scale of 0.1 on the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import kaldifst

from asr.graph.hclg import GraphBuildError, GraphOptions, determinize_star_bounded, make_hclg_from_clg
from asr.hmm.transition_model import ContextDependency, TransitionModel


class AlignmentGraphCompiler:
    """Builds alignment graphs for one lexicon and acoustic model (L is sorted once).

    Args:
        lexicon: L without disambiguation symbols (phones -> words).
        transition_model, ctx_dep: the acoustic model.
        options: :class:`GraphOptions` (scales, determinization bound).
    """

    def __init__(
        self,
        lexicon: kaldifst.StdVectorFst,
        transition_model: TransitionModel,
        ctx_dep: ContextDependency,
        options: GraphOptions | None = None,
    ):
        self._lexicon = kaldifst.StdVectorFst(lexicon)
        kaldifst.arcsort(self._lexicon, sort_type="olabel")
        self.transition_model = transition_model
        self.ctx_dep = ctx_dep
        self.options = options or GraphOptions()

    def compile(self, word_ids: Sequence[int]) -> kaldifst.StdVectorFst:
        """The alignment graph of one transcript (word ids, in order).

        Raises:
            GraphBuildError: the lexicon has no path for the transcript (a word without pronunciation).
        """
        words = [int(w) for w in word_ids]
        if any(w <= 0 for w in words):
            raise ValueError(f"word ids must be > 0, got {words}")
        acceptor = kaldifst.make_linear_acceptor(words)
        lw = kaldifst.compose(self._lexicon, acceptor, connect=True)
        if lw.num_states == 0:
            raise GraphBuildError(f"the lexicon has no pronunciation path for the word ids {words}")
        determinize_star_bounded(lw, self.options.max_states, True, self.options.delta, "L o words")
        clw, ilabels = kaldifst.compose_context(
            [], int(self.ctx_dep.context_width), int(self.ctx_dep.central_position), lw
        )
        kaldifst.arcsort(clw, sort_type="ilabel")
        return make_hclg_from_clg(clw, ilabels, self.transition_model, self.ctx_dep, self.options)


def make_alignment_graph(
    lexicon: kaldifst.StdVectorFst,
    word_ids: Sequence[int],
    transition_model: TransitionModel,
    ctx_dep: ContextDependency,
    options: GraphOptions | None = None,
) -> kaldifst.StdVectorFst:
    """One alignment graph; for many utterances reuse an :class:`AlignmentGraphCompiler`."""
    return AlignmentGraphCompiler(lexicon, transition_model, ctx_dep, options).compile(word_ids)
