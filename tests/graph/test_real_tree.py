"""Integration with asr.hmm.tree: a decision tree built from synthetic aligned frames drives the
transition model (through ``pdfs_for``), HCLG and forced alignment."""

from __future__ import annotations

import numpy as np
import pytest

from asr.decode.align import align_utterance, phone_segments
from asr.decode.decoder import decode_utterance
from asr.graph.alignment_graph import make_alignment_graph
from asr.graph.hclg import make_hclg
from asr.graph.stats import graph_stats
from asr.graph.toy import SIL, ToyLang, favouring_scores, make_word_loop_grammar
from asr.hmm.questions import build_question_set
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import accumulate_tree_stats, build_tree

LANG = ToyLang()
PRON = {1: [3, 4], 2: [4, 5], 3: [3, 4, 5]}


@pytest.fixture(scope="module")
def tree_model():
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    classes = {p: topo.num_pdf_classes(p) for p in topo.phones}
    rng = np.random.default_rng(0)
    phones, pdf_classes, feats, offsets = [], [], [], [0]
    for _ in range(40):
        seq = [SIL, *rng.choice([3, 4, 5], size=6).tolist(), SIL]
        for k, p in enumerate(seq):
            left = seq[k - 1] if k > 0 else 0
            for s in range(topo.hmm(p).num_states):
                n = int(rng.integers(2, 5))
                mean = np.array([3.0 * p + s, 5.0 * (left == 3), 0.0])  # depends on the left context
                feats.append(mean + rng.normal(0, 0.3, size=(n, 3)))
                phones += [p] * n
                pdf_classes += [s] * n
        offsets.append(len(phones))
    stats = accumulate_tree_stats(np.array(phones), np.array(pdf_classes), np.concatenate(feats), np.array(offsets))
    tree = build_tree(stats, build_question_set(stats, max_num_pdf_classes=5, silence_phones=[1, 2]), classes)
    return topo, tree, TransitionModel.build(topo, tree)


def test_transition_states_cover_tree_pdfs(tree_model):
    topo, tree, tm = tree_model
    assert tm.num_pdfs == tree.num_pdfs
    assert set(tm.tstate_to_pdf.tolist()) == set(range(tree.num_pdfs))
    for phone in topo.phones:
        for j, st in enumerate(topo.hmm(phone).states):
            for pdf in tree.pdfs_for(phone, st.pdf_class):
                tm.transition_state(phone, j, pdf)


def test_hclg_and_alignment_with_tree(tree_model):
    topo, tree, tm = tree_model
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, make_word_loop_grammar([1, 2, 3]), tm, tree, disambig, [LANG.word_disambig0])
    assert graph_stats(hclg).max_ilabel <= tm.num_transition_states
    for words in ([1, 2], [3, 1], [2, 2, 3]):
        phones = [p for w in words for p in PRON[w]]
        scores = favouring_scores(phones, topo, tree)
        result = decode_utterance(hclg, scores, tm)
        # tied states can make another word string produce the same pdf sequence: require an exact match
        assert result.reached_final and result.acoustic_cost == pytest.approx(0.0)
        ali = align_utterance(make_alignment_graph(LANG.lexicon_fst(), words, tm, tree), scores, tm)
        assert ali.ok and ali.acoustic_cost == pytest.approx(0.0)
        assert [p for p, _, _ in phone_segments(ali.tstate_ids, tm)] == phones
