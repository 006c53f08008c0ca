"""Graph files: atomic write, read back, refusal of bad files; the stats CLI."""

from __future__ import annotations

import json

import pytest

from asr.errors import InputError
from asr.graph.fst_io import read_graph, write_graph
from asr.graph.hclg import make_hclg
from asr.graph.stats import graph_stats, main
from asr.graph.toy import ToyLang, make_sentence_grammar
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency


@pytest.fixture(scope="module")
def hclg_and_tm():
    lang = ToyLang()
    topo = make_topology(lang.nonsilence_phones, lang.silence_phones)
    ctx = MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    tm = TransitionModel.build(topo, ctx)
    lexicon, disambig = lang.lexicon_disambig_fst()
    return make_hclg(lexicon, make_sentence_grammar([[1, 2], [2]]), tm, ctx, disambig, [4]), tm


def test_write_read_round_trip(tmp_path, hclg_and_tm):
    hclg, _ = hclg_and_tm
    path = tmp_path / "graph" / "HCLG.fst"
    write_graph(hclg, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["HCLG.fst"]  # no temporary left behind
    again = read_graph(path)
    assert again.to_str() == hclg.to_str()
    assert graph_stats(again) == graph_stats(hclg)


def test_read_refuses_bad_files(tmp_path, hclg_and_tm):
    hclg, _ = hclg_and_tm
    with pytest.raises(InputError, match="cannot read graph") as err:
        read_graph(tmp_path / "missing.fst")
    assert err.value.path.endswith("missing.fst")
    garbage = tmp_path / "garbage.fst"
    garbage.write_bytes(b"this is not an fst at all")
    with pytest.raises(InputError, match="bad magic"):
        read_graph(garbage)
    good = tmp_path / "good.fst"
    write_graph(hclg, good)
    truncated = tmp_path / "truncated.fst"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(InputError, match="truncated") as err:
        read_graph(truncated)
    assert err.value.path == str(truncated)


def test_stats_cli(tmp_path, capsys, hclg_and_tm):
    hclg, tm = hclg_and_tm
    path = tmp_path / "HCLG.fst"
    write_graph(hclg, path)
    main([str(path), "--json", "--num-transition-states", str(tm.num_transition_states)])
    out = json.loads(capsys.readouterr().out)
    assert out["num_states"] == hclg.num_states and out["max_ilabel"] <= tm.num_transition_states
    with pytest.raises(ValueError, match="outside 0..3"):
        main([str(path), "--num-transition-states", "3"])
