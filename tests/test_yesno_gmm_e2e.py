"""End to end on Kaldi's yes/no corpus, as recipes/yesno/run.sh does it, through the same CLIs:
data -> lang (Kaldi's yes/no lexicon, recipes/yesno/local/lexicon.txt) -> MFCC -> monophone GMM-HMM
(train_mono defaults) -> HCLG -> decode test. The issue's bar: train 31 / test 29
files, WER <= 1% at LM weight 10."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.data.prepare import main as prepare_main
from asr.decode.decode_dir import main as decode_main
from asr.features.compute import main as features_main
from asr.graph.mkgraph import main as mkgraph_main
from asr.lang.grammar import main as grammar_main
from asr.lang.prepare_lang import main as prepare_lang_main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_yesno_mono_pipeline_reaches_one_percent_wer(tmp_path, yesno_root, capsys):
    from asr.gmm.train_mono import main as train_mono_main

    data, exp = tmp_path / "data", tmp_path / "exp"
    assert prepare_main(["yesno", "--root", str(yesno_root), "--out", str(data)]) in (0, None)
    prepare_lang_main(
        ["--dict", str(REPO / "recipes" / "yesno" / "local" / "lexicon.txt")]
        + ["--words-from", str(data / "train" / "text"), str(data / "test" / "text")]
        + ["--out", str(data / "lang")]
    )
    grammar_main(["--lang", str(data / "lang"), "--kind", "yesno", "--out", str(data / "lang_test")])
    for part in ("train", "test"):
        assert features_main(
            ["--data", str(data / part), "--type", "mfcc", "--use-energy", "true", "--cmvn", "speaker", "--jobs", "1"]
        ) in (
            0,
            None,
        )
    train_mono_main(["--data", str(data / "train"), "--lang", str(data / "lang"), "--out", str(exp / "mono")])
    mkgraph_main(
        ["--lang", str(data / "lang_test"), "--model", str(exp / "mono"), "--out", str(exp / "mono" / "graph")]
    )
    out = exp / "mono" / "decode_test"
    decode_main(
        ["--graph", str(exp / "mono" / "graph"), "--model", str(exp / "mono"), "--data", str(data / "test")]
        + ["--out", str(out), "--lm-weight", "10"]
    )
    results = json.loads((out / "results.json").read_text())
    printed = capsys.readouterr().out
    assert f"%WER {results['wer']:.2f}" in printed
    assert results["utts"] == 29 and results["words"] == 29 * 8
    assert results["missing_hyps"] == [] and results["num_no_path"] == 0
    assert results["lm_weight"] == 10
    assert results["wer"] <= 1.0, (out / "per_utt.txt").read_text()
