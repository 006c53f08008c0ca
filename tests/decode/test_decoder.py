"""Decoder reuse across utterances, the process-pool batch decoder, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr.decode.decoder import Decoder, DecoderOptions, decode_many, decode_utterance, iter_decode
from asr.errors import InputError
from asr.graph.fst_io import write_graph
from asr.graph.hclg import make_hclg
from asr.graph.toy import SIL, ToyLang, ToyTriphoneContextDependency, favouring_scores, make_word_loop_grammar
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel

LANG = ToyLang()
PRON = {1: [3, 4], 2: [4, 5], 3: [3, 4, 5]}


@pytest.fixture(scope="module")
def model():
    topo = make_topology(LANG.nonsilence_phones, LANG.silence_phones)
    ctx = ToyTriphoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    tm = TransitionModel.build(topo, ctx)
    lexicon, disambig = LANG.lexicon_disambig_fst()
    hclg = make_hclg(lexicon, make_word_loop_grammar([1, 2, 3], math.log(3)), tm, ctx, disambig, [4])
    return topo, ctx, tm, hclg


def _utterances(topo, ctx, num: int, seed: int = 0) -> list[np.ndarray]:
    """Noisy score matrices favouring random word sequences (some with silence)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        words = rng.integers(1, 4, size=rng.integers(1, 5)).tolist()
        phones = []
        for w in words:
            phones += PRON[w]
            if rng.random() < 0.3:
                phones.append(SIL)
        frames = rng.integers(1, 4, size=sum(topo.hmm(p).num_states for p in phones)).tolist()
        scores = favouring_scores(phones, topo, ctx, frames_per_state=frames, margin=3.0)
        out.append(scores + rng.normal(0, 1.0, size=scores.shape).astype(np.float32))
    return out


def test_reused_decoder_equals_fresh_decoders(model):
    topo, ctx, tm, hclg = model
    utts = _utterances(topo, ctx, 8)
    decoder = Decoder(hclg, tm, DecoderOptions(beam=10.0))
    reused = [decoder.decode(s) for s in utts] + [decoder.decode(utts[0])]
    fresh = [decode_utterance(hclg, s, tm, beam=10.0) for s in utts] + [decode_utterance(hclg, utts[0], tm, beam=10.0)]
    assert reused == fresh
    assert reused[-1] == reused[0]
    assert all(r.reached_final and r.word_ids for r in reused)
    assert len({tuple(r.word_ids) for r in reused}) > 3  # the utterances really differ


def test_decode_many_two_processes_equals_single_process(tmp_path, model):
    topo, ctx, tm, hclg = model
    path = tmp_path / "HCLG.fst"
    write_graph(hclg, path)
    utts = _utterances(topo, ctx, 12, seed=1)
    single = decode_many(path, iter(utts), tm, num_jobs=1)
    pooled = decode_many(path, (u for u in utts), tm, num_jobs=2)
    assert pooled == single
    assert single == [decode_utterance(hclg, u, tm) for u in utts]
    assert list(iter_decode(path, utts[:3], tm, num_jobs=2)) == single[:3]


def test_decode_many_missing_graph_is_input_error(tmp_path, model):
    _, _, tm, _ = model
    with pytest.raises(InputError, match="cannot read graph"):
        decode_many(tmp_path / "nope.fst", [], tm, num_jobs=2)


def test_graph_outlives_temporaries(model):
    """The decoder holds the graph: dropping the caller's reference must not crash decoding."""
    topo, ctx, tm, _ = model
    lexicon, disambig = LANG.lexicon_disambig_fst()
    decoder = Decoder(make_hclg(lexicon, make_word_loop_grammar([1, 2]), tm, ctx, disambig, [4]), tm)
    import gc

    gc.collect()
    result = decoder.decode(favouring_scores([3, 4, 4, 5], topo, ctx))
    assert result.word_ids == [1, 2]


def test_zero_frames_and_partial_paths(model):
    topo, ctx, tm, hclg = model
    empty = decode_utterance(hclg, np.zeros((0, ctx.num_pdfs), dtype=np.float32), tm)
    assert empty == ([], math.inf, math.inf, False)
    # two frames cannot complete any word (a phone needs 3 frames): partial path, reached_final False
    short = decode_utterance(hclg, np.zeros((2, ctx.num_pdfs), dtype=np.float32), tm)
    assert short.reached_final is False
