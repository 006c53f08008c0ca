"""mkgraph: graph dir from the real yes/no lang and a real monophone model; checks and idempotence."""

from __future__ import annotations

import json
import shutil

import pytest
from gmm_model_helpers import load_model, prepare_yesno_setup, train_test_monophone

from asr.decode.decoder import Decoder
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.graph.fst_io import read_graph
from asr.graph.hclg import GraphOptions
from asr.graph.mkgraph import main as mkgraph_main
from asr.graph.mkgraph import mkgraph, read_graph_info
from asr.graph.stats import check_ilabel_range, graph_stats
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency
from asr.lang.grammar import add_grammar
from asr.lang.lang_dir import Lang
from asr.lang.lexicon import Lexicon
from asr.lang.prepare_lang import prepare_lang
from asr.lang.symbol_table import SymbolTable


@pytest.fixture(scope="module")
def setup(tmp_path_factory, yesno_root):
    root = tmp_path_factory.mktemp("yesno")
    s = prepare_yesno_setup(yesno_root, root)
    model_dir = train_test_monophone(s.lang, s.train, root / "mono", iterations=3)
    return s, model_dir


def test_graph_dir_is_complete_and_decodes(setup, tmp_path):
    s, model_dir = setup
    out = mkgraph(s.lang_test, model_dir, tmp_path / "graph")
    tm = TransitionModel.load(model_dir / "transition_model.json")
    hclg = read_graph(out / "HCLG.fst")
    stats = graph_stats(hclg)
    assert 0 < stats.max_ilabel <= tm.num_transition_states
    check_ilabel_range(hclg, tm.num_transition_states)
    assert stats.num_self_loops > 0 and stats.num_final_states > 0
    assert SymbolTable.read(out / "words.txt") == SymbolTable.read(s.lang_test / "words.txt")
    assert SymbolTable.read(out / "phones.txt") == SymbolTable.read(s.lang_test / "phones.txt")
    on_disk = json.loads((out / "graph_stats.json").read_text())
    assert on_disk["num_states"] == stats.num_states and on_disk["num_arcs"] == stats.num_arcs
    assert on_disk["num_transition_states"] == tm.num_transition_states
    info = read_graph_info(out)
    assert info["num_transition_states"] == tm.num_transition_states and info["context_width"] == 1
    assert info["inputs"]["options"]["self_loop_scale"] == 0.1
    assert info["inputs"]["options"]["transition_scale"] == 1.0

    # The graph decodes real speech into the yes/no words.
    model = load_model(model_dir)
    archive = FeatureArchive(s.test / "mfcc.h5")
    utt = archive.utt_ids[0]
    result = Decoder(hclg, tm).decode(model.log_likelihoods(archive.read(utt)) * 0.1)
    words = SymbolTable.read(out / "words.txt").symbols_of(result.word_ids)
    assert result.reached_final
    assert len(words) >= 8 and set(words) <= {"YES", "NO"}


def test_up_to_date_graph_is_skipped_and_rebuilt_when_inputs_change(setup, tmp_path):
    s, model_dir = setup
    lang = tmp_path / "lang_test"
    shutil.copytree(s.lang_test, lang)
    out = mkgraph(lang, model_dir, tmp_path / "graph")
    first = (out / "HCLG.fst").stat().st_mtime_ns
    mkgraph(lang, model_dir, out)
    assert (out / "HCLG.fst").stat().st_mtime_ns == first  # skipped
    mkgraph(lang, model_dir, out, force=True)
    forced = (out / "HCLG.fst").stat().st_mtime_ns
    assert forced != first
    # Another grammar (YES only): rebuilt, and the graph differs.
    before = graph_stats(read_graph(out / "HCLG.fst"))
    add_grammar(s.lang, "word_loop", words=["YES"], out_dir=lang)
    mkgraph(lang, model_dir, out)
    assert (out / "HCLG.fst").stat().st_mtime_ns != forced
    assert graph_stats(read_graph(out / "HCLG.fst")) != before
    # Other options: rebuilt.
    stamp = (out / "HCLG.fst").stat().st_mtime_ns
    mkgraph(lang, model_dir, out, GraphOptions(self_loop_scale=1.0))
    assert (out / "HCLG.fst").stat().st_mtime_ns != stamp
    assert read_graph_info(out)["inputs"]["options"]["self_loop_scale"] == 1.0


def test_phone_table_mismatch_is_refused(setup, tmp_path):
    s, model_dir = setup
    # A lang whose phone set has one more phone (AA): ids of the others shift.
    lexicon = Lexicon()
    for e in Lang.load(s.lang).lexicon:
        lexicon.add(e.word, e.phones)
    lexicon.add("AH", ["AA"])
    other = tmp_path / "lang_other"
    prepare_lang(lexicon, other)
    add_grammar(other, "yesno")
    with pytest.raises(InputError, match="differs from the lang's") as err:
        mkgraph(other, model_dir, tmp_path / "graph")
    assert "AA" in str(err.value)
    assert not (tmp_path / "graph" / "HCLG.fst").exists()


def test_model_without_hmm_for_a_lang_phone_is_refused(setup, tmp_path):
    s, model_dir = setup
    lang = Lang.load(s.lang)
    topo = make_topology(lang.nonsilence_phones[:-1], lang.silence_phones)  # last phone (Y) has no HMM
    ctx = MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    bad = tmp_path / "model"
    bad.mkdir()
    shutil.copy(model_dir / "model.json", bad / "model.json")
    ctx.save(bad / "tree.json")
    TransitionModel.build(topo, ctx).save(bad / "transition_model.json")
    with pytest.raises(InputError, match=r"no HMM for phones \['Y'\]"):
        mkgraph(s.lang_test, bad, tmp_path / "graph")


def test_missing_inputs_are_input_errors(setup, tmp_path):
    s, model_dir = setup
    with pytest.raises(InputError, match="no G.fst"):
        mkgraph(s.lang, model_dir, tmp_path / "g1")
    with pytest.raises(InputError, match="model directory not found"):
        mkgraph(s.lang_test, tmp_path / "nope", tmp_path / "g2")
    no_phones = tmp_path / "model"
    shutil.copytree(model_dir, no_phones)
    info = json.loads((no_phones / "model.json").read_text())
    del info["phones"]
    (no_phones / "model.json").write_text(json.dumps(info))
    (no_phones / "phones.txt").unlink()
    with pytest.raises(InputError, match='no "phones" entry'):
        mkgraph(s.lang_test, no_phones, tmp_path / "g3")
    (no_phones / "model.json").write_text("{bad json")
    with pytest.raises(InputError, match="model.json:1: invalid JSON"):
        mkgraph(s.lang_test, no_phones, tmp_path / "g4")


def test_cli(setup, tmp_path, capsys):
    s, model_dir = setup
    out = tmp_path / "graph"
    mkgraph_main(["--lang", str(s.lang_test), "--model", str(model_dir), "--out", str(out)])
    assert (out / "HCLG.fst").is_file() and (out / "graph.json").is_file()
    # A model dir's own phones.txt takes precedence over model.json's "phones": here it differs.
    other = tmp_path / "model_other"
    shutil.copytree(model_dir, other)
    (other / "phones.txt").write_text((s.lang / "phones.txt").read_text().replace("EH 3", "EHH 3"))
    with pytest.raises(
        SystemExit, match=r"differs from the lang's \(only in the model's: \['EHH'\]; only in the lang's"
    ):
        mkgraph_main(["--lang", str(s.lang_test), "--model", str(other), "--out", str(tmp_path / "g2")])
