"""decode_dir on the real yes/no test set with a real monophone model: outputs, counts, LM weights, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from gmm_model_helpers import load_model, prepare_yesno_setup, train_test_monophone

from asr.data.datadir import read_data_dir, write_data_dir
from asr.decode.decode_dir import decode_data_dir, resolve_lm_weights
from asr.decode.decode_dir import main as decode_main
from asr.decode.lm_weight import lm_weight_from_results, parse_lm_weights, select_best_lm_weight
from asr.errors import ConfigError, InputError
from asr.features.archive import ArchiveWriter, FeatureArchive
from asr.graph.mkgraph import mkgraph
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency
from asr.lang.lang_dir import Lang
from asr.score import read_text, score_texts


@pytest.fixture(scope="module")
def setup(tmp_path_factory, yesno_root):
    root = tmp_path_factory.mktemp("yesno")
    s = prepare_yesno_setup(yesno_root, root)
    model_dir = train_test_monophone(s.lang, s.train, root / "mono", iterations=3)
    graph = mkgraph(s.lang_test, model_dir, model_dir / "graph")
    return s, model_dir, graph, load_model(model_dir)


def _copy_data_dir(src, dst, archive_utts=None, truncate=None):
    """Copy a data dir; rewrite its mfcc.h5 with only ``archive_utts`` and utterances cut to ``truncate``."""
    shutil.copytree(src, dst)
    arc = FeatureArchive(src / "mfcc.h5")
    keep = arc.utt_ids if archive_utts is None else archive_utts
    with ArchiveWriter(dst / "mfcc.h5", arc.dim, arc.attrs) as w:
        for u in keep:
            feats = arc.read(u)
            w.append(u, feats[: truncate[u]] if truncate and u in truncate else feats)
    return dst


def test_outputs_and_consistent_counts(setup, tmp_path):
    s, model_dir, graph, model = setup
    out = tmp_path / "decode_test"
    results = decode_data_dir(graph, model_dir, s.test, out, model=model)
    hyps = read_text(out / "hyp.txt")
    refs = read_text(s.test / "text")
    assert sorted(hyps) == sorted(refs) and len(hyps) == 29
    assert all(set(h) <= {"YES", "NO"} and h for h in hyps.values())
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results
    rescored = score_texts(refs, hyps)
    assert results["words"] == sum(len(r) for r in refs.values()) == 232
    assert (results["ins"], results["del"], results["sub"]) == (rescored.ins, rescored.dels, rescored.sub)
    assert results["wer"] == pytest.approx(100.0 * (rescored.errors) / 232, abs=1e-3)
    assert results["wer"] < 30.0  # a 3-iteration single-Gaussian model: a real, not a random, decode
    assert results["utts"] == 29 and results["missing_hyps"] == []
    assert results["lm_weight"] == 10 and results["acoustic_scale"] == 0.1
    assert results["lm_weight_selection"] == "fixed" and "wer_by_lm_weight" not in results
    assert results["set"] == "test" and results["system"] == "mono"
    assert results["model"]["num_pdfs"] == model.num_pdfs and results["model"]["num_gauss"] == model.num_pdfs
    utt2dur = read_data_dir(s.test).utt2dur
    assert results["audio_seconds"] == pytest.approx(sum(utt2dur.values()), abs=1e-2)
    assert results["decode_seconds"] == pytest.approx(
        results["likelihood_seconds"] + results["search_seconds"], abs=2e-3
    )
    assert results["rtf"] == pytest.approx(results["decode_seconds"] / results["audio_seconds"], rel=1e-2, abs=1e-5)
    assert results["num_not_final"] == 0 and results["num_no_path"] == 0
    per_utt = (out / "per_utt.txt").read_text().splitlines()
    assert len(per_utt) == 4 * 29
    errors = sum(sum(int(x) for x in line.split()[3:6]) for line in per_utt if " #csid " in line)
    assert errors == results["ins"] + results["del"] + results["sub"]


def test_two_jobs_give_the_same_hypotheses(setup, tmp_path):
    s, model_dir, graph, model = setup
    one = decode_data_dir(graph, model_dir, s.test, tmp_path / "j1", model=model, lm_weights=[8, 12])
    two = decode_data_dir(graph, model_dir, s.test, tmp_path / "j2", model=model, lm_weights=[8, 12], jobs=2)
    for name in ("hyp.txt", "hyp_8.txt", "hyp_12.txt"):
        assert (tmp_path / "j1" / name).read_text() == (tmp_path / "j2" / name).read_text()
    assert one["wer_by_lm_weight"] == two["wer_by_lm_weight"] and two["jobs"] == 2


def test_lm_weight_sweep_picks_argmin_and_test_uses_dev_weight(setup, tmp_path):
    s, model_dir, graph, model = setup
    # "dev" = the training set here (yesno has no dev set); weights far from the default 10.
    dev = decode_data_dir(graph, model_dir, s.train, tmp_path / "dev", model=model, lm_weights=parse_lm_weights("1:3"))
    wers = {float(k): v["wer"] for k, v in dev["wer_by_lm_weight"].items()}
    assert sorted(wers) == [1.0, 2.0, 3.0]
    best = min(sorted(wers), key=wers.get)
    assert dev["best_lmwt"] == best == dev["lm_weight"]
    assert dev["wer"] == wers[best] and dev["lm_weight_selection"] == "best on this set"
    for w in ("1", "2", "3"):
        per = json.loads((tmp_path / "dev" / f"results_{w}.json").read_text())
        hyp = read_text(tmp_path / "dev" / f"hyp_{w}.txt")
        assert per["wer"] == wers[float(w)] == round(score_texts(read_text(s.train / "text"), hyp).wer, 4)
    assert (tmp_path / "dev" / "hyp.txt").read_text() == (tmp_path / "dev" / f"hyp_{int(best)}.txt").read_text()

    # Test set: decoded at the dev-picked weight, not tuned.
    weights, source = resolve_lm_weights(lm_weight_from=tmp_path / "dev" / "results.json")
    decode_data_dir(
        graph, model_dir, s.test, tmp_path / "test", model=model, lm_weights=weights, lm_weight_source=source
    )
    test = json.loads((tmp_path / "test" / "results.json").read_text())
    assert test["lm_weight"] == best and test["acoustic_scale"] == pytest.approx(1.0 / best, abs=1e-6)
    assert test["lm_weight_selection"].startswith("from ")
    assert "best_lmwt" not in test and "wer_by_lm_weight" not in test
    assert not list((tmp_path / "test").glob("hyp_*.txt"))


def test_lm_weight_helpers(tmp_path):
    assert parse_lm_weights("7:17") == [float(w) for w in range(7, 18)]
    assert parse_lm_weights("7:11:2") == [7.0, 9.0, 11.0]
    assert parse_lm_weights("12,8,10,8") == [8.0, 10.0, 12.0]
    assert parse_lm_weights("9.5") == [9.5]
    for bad in ("17:7", "a:b", "0", "-1,2", "1:2:3:4", ""):
        with pytest.raises(ConfigError):
            parse_lm_weights(bad)
    assert select_best_lm_weight({7.0: 5.0, 8.0: 3.0, 9.0: 3.0, 10.0: 4.0}) == 8.0  # ties: smallest
    assert select_best_lm_weight({12.0: 1.0, 7.0: 2.0}) == 12.0
    assert resolve_lm_weights() == ([10.0], "fixed")
    assert resolve_lm_weights(acoustic_scale=0.125) == ([8.0], "fixed")
    assert resolve_lm_weights(lm_weights="7:9") == ([7.0, 8.0, 9.0], "best on this set")
    with pytest.raises(ConfigError, match="only one"):
        resolve_lm_weights(lm_weight=10, lm_weights="7:9")
    (tmp_path / "r.json").write_text(json.dumps({"lm_weight": 10, "best_lmwt": 13}))
    assert lm_weight_from_results(tmp_path / "r.json") == 13.0
    (tmp_path / "r.json").write_text(json.dumps({"wer": 3.0}))
    with pytest.raises(InputError, match="r.json: results.json has no positive"):
        lm_weight_from_results(tmp_path / "r.json")
    with pytest.raises(InputError, match="cannot read results"):
        lm_weight_from_results(tmp_path / "missing.json")


def test_missing_features_error_or_skip(setup, tmp_path):
    s, model_dir, graph, model = setup
    arc = FeatureArchive(s.test / "mfcc.h5")
    dropped = arc.utt_ids[3]
    data = _copy_data_dir(s.test, tmp_path / "test", [u for u in arc.utt_ids if u != dropped])
    with pytest.raises(InputError, match=f"mfcc.h5: utterance '{dropped}' of the data dir has no features"):
        decode_data_dir(graph, model_dir, data, tmp_path / "d1", model=model)
    results = decode_data_dir(graph, model_dir, data, tmp_path / "d2", model=model, skip_missing=True)
    assert results["skipped_missing_features"] == [dropped] and results["num_skipped_missing_features"] == 1
    assert results["missing_hyps"] == [dropped] and results["utts"] == 29
    assert results["del"] >= 8  # its 8 words count as deletions
    assert dropped not in read_text(tmp_path / "d2" / "hyp.txt")


def test_utterance_that_reaches_no_final_state_is_counted(setup, tmp_path):
    s, model_dir, graph, model = setup
    arc = FeatureArchive(s.test / "mfcc.h5")
    short = arc.utt_ids[0]
    data = _copy_data_dir(s.test, tmp_path / "test", truncate={short: 3})  # 3 frames: no word fits (>= 6 states)
    results = decode_data_dir(graph, model_dir, data, tmp_path / "d", model=model)
    assert results["not_final_utts"] == [short] and results["num_not_final"] == 1
    assert results["no_path_utts"] == [] and results["num_no_path"] == 0
    assert short in read_text(tmp_path / "d" / "hyp.txt")  # its best partial path is kept and scored
    assert results["utts"] == 29 and results["missing_hyps"] == []


def test_graph_of_another_model_is_refused(setup, tmp_path):
    s, model_dir, graph, model = setup
    lang = Lang.load(s.lang)
    topo = make_topology(lang.nonsilence_phones, lang.silence_phones, num_nonsilence_states=2)
    ctx = MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(model_dir / "model.json", other / "model.json")
    ctx.save(other / "tree.json")
    TransitionModel.build(topo, ctx).save(other / "transition_model.json")
    other_graph = mkgraph(s.lang_test, other, other / "graph")
    with pytest.raises(InputError, match="graph was built for another model"):
        decode_data_dir(other_graph, model_dir, s.test, tmp_path / "d", model=model)
    # Without graph.json the label range is checked instead.
    (other_graph / "graph.json").unlink()
    bigger = make_topology(lang.nonsilence_phones, lang.silence_phones, num_nonsilence_states=4)
    ctx4 = MonophoneContextDependency({p: bigger.num_pdf_classes(p) for p in bigger.phones})
    ctx4.save(other / "tree.json")
    TransitionModel.build(bigger, ctx4).save(other / "transition_model.json")
    graph4 = mkgraph(s.lang_test, other, other / "graph4")
    (graph4 / "graph.json").unlink()
    with pytest.raises(InputError, match="exceeds the model's"):
        decode_data_dir(graph4, model_dir, s.test, tmp_path / "d", model=model)


def test_data_dir_problems(setup, tmp_path):
    s, model_dir, graph, model = setup
    data = read_data_dir(s.test)
    first = data.utt_ids[0]
    del data.text[first]
    bad = write_data_dir(data, tmp_path / "notext")
    with pytest.raises(InputError, match="notext/text: 1 utterances have no transcript"):
        decode_data_dir(graph, model_dir, bad, tmp_path / "d", model=model)
    nofeats = tmp_path / "nofeats"
    shutil.copytree(s.test, nofeats)
    (nofeats / "mfcc.h5").unlink()
    with pytest.raises(InputError, match="feature archive does not exist"):
        decode_data_dir(graph, model_dir, nofeats, tmp_path / "d", model=model)
    with pytest.raises(InputError, match="no HCLG.fst"):
        decode_data_dir(tmp_path, model_dir, s.test, tmp_path / "d", model=model)


def test_cli_prints_wer_line(setup, tmp_path, capsys):
    s, model_dir, graph, _ = setup
    out = tmp_path / "d"
    args = ["--graph", str(graph), "--model", str(model_dir), "--data", str(s.test), "--out", str(out)]
    decode_main(args + ["--lm-weights", "9:11"])
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert printed.startswith(f"%WER {results['wer']:.2f} [ ")
    assert "at LM weight 10: %WER" in printed
    assert (out / "log" / "decode.log").read_text().count("LM weight") >= 3
    with pytest.raises(SystemExit):
        decode_main(args + ["--lm-weights", "9:11", "--lm-weight", "10"])  # mutually exclusive
    with pytest.raises(SystemExit, match="LM weights"):
        decode_main(args + ["--lm-weights", "11:9"])


def test_loglikes_are_finite_and_shaped(setup):
    s, _, _, model = setup
    arc = FeatureArchive(s.test / "mfcc.h5")
    ll = model.log_likelihoods(arc.read(arc.utt_ids[0]))
    assert ll.shape == (arc.num_frames_of(arc.utt_ids[0]), model.num_pdfs) and np.isfinite(ll).all()
