"""asr.report: the WER-by-hidden-layers table against the GMM baseline, from results.json files written by the
real scorer (asr.score.score_texts + write_results_json) and model.json documents in the trainers' format."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import struct
from pathlib import Path

import pytest

from asr.errors import ConfigError, InputError
from asr.report import (
    DPI,
    FIGSIZE,
    collect_rows,
    comparison_table,
    main,
    markdown_table,
    relative_change,
    select_baseline,
    sets_found,
    write_report,
)
from asr.score import Score, score_texts, write_results_json

WORDS = 2000  # 400 utterances of 5 words: one error per utterance at most, so the counts are exact
# Zeiler et al. 2013's WERs by hidden layers (dev here) and their GMM (tri1 here); mono is worse.
DEV = {"mono": (18.0, 40, 80), "tri1": (15.4, 40, 68), 1: (16.0, 30, 70), 2: (12.8, 20, 56)}
DEV |= {4: (11.4, 20, 48), 8: (10.9, 18, 40), 12: (11.1, 20, 42)}  # (WER, ins, del); sub = the rest
TEST = {"mono": (19.1, 50, 82), "tri1": (16.2, 44, 70), 1: (16.6, 30, 72), 2: (13.5, 22, 58)}
TEST |= {4: (12.0, 20, 50), 8: (11.5, 20, 40), 12: (11.6, 22, 40)}


def make_score(wer: float, ins: int, dels: int) -> Score:
    """A real Score over WORDS reference words with round(wer * WORDS / 100) errors, ``ins`` and ``dels`` of
    them insertions and deletions, the rest substitutions (each on its own utterance)."""
    errors = round(wer * WORDS / 100)
    sub = errors - ins - dels
    refs = {f"spk-u{i:04d}": [f"W{i}_{j}" for j in range(5)] for i in range(WORDS // 5)}
    hyps = {u: list(words) for u, words in refs.items()}
    kinds = ["sub"] * sub + ["del"] * dels + ["ins"] * ins
    for utt, kind in zip(sorted(hyps), kinds):
        if kind == "sub":
            hyps[utt][0] = "OOPS"
        elif kind == "del":
            del hyps[utt][0]
        else:
            hyps[utt].append("OOPS")
    score = score_texts(refs, hyps)
    assert (score.ins, score.dels, score.sub) == (ins, dels, sub)
    return score


def gmm_info(name: str) -> dict:
    """model.json of a GMM dir as asr.gmm.model.write_model_dir writes it (the fields the report reads)."""
    return {
        "kind": "gmm",
        "name": name,
        "stage": name,
        "feature_type": "mfcc",
        "delta_order": 2,
        "delta_window": 2,
        "train_seconds": 120.5 if name == "mono" else 340.25,
        "num_pdfs": 120 if name == "mono" else 412,
        "num_gauss": 1000 if name == "mono" else 2000,
        "context_width": 1 if name == "mono" else 3,
        "feature_dim": 13,
    }


def dnn_info(depth: int, width: int = 512) -> dict:
    """model.json of a DNN run dir as asr.nnet.model.write_dnn_model_dir writes it (26 frames x 40 fbank)."""
    num_params = (1040 * width + width) + (depth - 1) * (width * width + width) + (width * 412 + 412)
    return {
        "kind": "dnn",
        "name": f"mlp_d{depth}_w{width}",
        "corpus": "an4",
        "epochs": 4,
        "train_seconds": 100.0 * depth,
        "frames_per_second": 50000.0 / depth,
        "feature_type": "fbank",
        "feature_dim": 40,
        "left_context": 12,
        "right_context": 13,
        "num_pdfs": 412,
        "context_width": 3,
        "depth": depth,
        "width": width,
        "num_params": num_params,
    }


def write_model_json(model_dir: Path, info: dict) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.json").write_text(json.dumps(info, indent=1) + "\n")


def write_decode(model_dir: Path, set_name: str, score: Score, info: dict, full_summary: bool = True) -> Path:
    """decode_<set>/results.json as asr.decode.decode_dir writes it: dev swept 7..17, test at dev's weight.
    ``full_summary=False`` leaves depth/width/num_params out of the ``model`` field (older decodes)."""
    keys = ["name", "kind", "num_pdfs", "num_gauss", "context_width", "feature_type", "train_seconds"]
    if full_summary:
        keys += ["depth", "width", "num_params", "frames_per_second", "epochs"]
    decode_dir = model_dir / f"decode_{set_name}"
    fields = {
        "corpus": "an4",
        "set": set_name,
        "system": info["name"],
        "model": {k: info[k] for k in keys if k in info},
        "lm_weight": 12,
        "acoustic_scale": round(1 / 12, 6),
        "decode_seconds": 3.5,
        "audio_seconds": 350.0,
        "rtf": 0.01,
        "model_dir": str(model_dir),
        "data": f"data/an4/{set_name}",
    }
    if set_name == "dev":
        fields["lm_weight_selection"] = "best on this set"
        fields["best_lmwt"] = 12
        fields["wer_by_lm_weight"] = {str(w): {"wer": score.wer} for w in range(7, 18)}
    else:
        fields["lm_weight_selection"] = f"from {model_dir / 'decode_dev' / 'results.json'}"
    write_results_json(decode_dir / "results.json", score, **fields)
    return decode_dir


def build_sweep(root: Path, depths=(1, 2, 4, 8, 12)) -> Path:
    """exp/an4 with mono, tri1 and dnn/mlp_d<depth>_w512, each decoded on dev and test; returns exp/an4."""
    exp = root / "exp" / "an4"
    for name in ("mono", "tri1"):
        info = gmm_info(name)
        write_model_json(exp / name, info)
        for set_name, table in (("dev", DEV), ("test", TEST)):
            write_decode(exp / name, set_name, make_score(*table[name]), info)
    for depth in depths:
        info = dnn_info(depth)
        run = exp / "dnn" / info["name"]
        write_model_json(run, info)
        (run / "checkpoints").mkdir()
        for set_name, table in (("dev", DEV), ("test", TEST)):
            write_decode(run, set_name, make_score(*table[depth]), info, full_summary=depth > 2)
    return exp


@pytest.fixture
def sweep(tmp_path) -> Path:
    return build_sweep(tmp_path)


def table_line(markdown: str, system: str) -> list[str]:
    """The cells of the table row of ``system``."""
    line = next(x for x in markdown.splitlines() if x.startswith(f"| {system} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_rows_order_fields_and_model_json_fallback(sweep):
    rows = collect_rows([sweep], ["dev", "test"])
    assert [r.system for r in rows] == ["mono", "tri1", *(f"mlp_d{d}_w512" for d in (1, 2, 4, 8, 12))]
    assert [r.kind for r in rows] == ["gmm"] * 2 + ["dnn"] * 5
    d1, d8 = rows[2], rows[5]
    # d1's results.json has the older model field (no depth/width/num_params): model.json fills them in
    assert (d1.depth, d1.width, d1.num_params) == (1, 512, dnn_info(1)["num_params"])
    assert (d8.depth, d8.width, d8.frames_per_second, d8.train_seconds) == (8, 512, 6250.0, 800.0)
    r = d8.results["dev"]
    assert (r.wer, r.words, r.ins, r.dels, r.sub, r.lm_weight) == (10.9, WORDS, 18, 40, 160, 12)
    assert r.kaldi() == "10.90 [218/2000, 18 ins, 40 del, 160 sub]"
    assert r.lm_weights_swept == [float(w) for w in range(7, 18)]
    assert rows[1].num_params == 2000 * (2 * 39 + 1)  # GMM: Gaussians x (2 x dim + 1)
    assert sets_found(rows) == ["dev", "test"]


def test_relative_change_against_default_baseline_is_the_papers(sweep):
    rows = collect_rows([sweep])
    base = select_baseline(rows, ["dev", "test"])
    assert base.system == "tri1"  # the GMM with the lowest dev WER (15.4 < mono's 18.0)
    assert relative_change(10.9, 15.4) == pytest.approx(-29.2208, abs=1e-4)
    assert relative_change(16.0, 15.4) == pytest.approx(3.8961, abs=1e-4)
    md = markdown_table(rows, ["dev", "test"], None)
    d8 = table_line(md, "mlp_d8_w512")
    assert d8[:6] == ["mlp_d8_w512", "DNN", "8", "512", f"{dnn_info(8)['num_params']:,}", "412"]
    assert d8[6] == "10.90 [218/2000, 18 ins, 40 del, 160 sub]" and d8[7] == "-29.2%"
    assert d8[8].startswith("11.50 [230/2000") and d8[9] == f"{(11.5 - 16.2) / 16.2 * 100:+.1f}%" == "-29.0%"
    assert d8[10:] == ["12 / 12", "800.0", "6,250", "0.01 / 0.01"]
    assert table_line(md, "mlp_d1_w512")[7] == "+3.9%"  # worse than the baseline: positive
    assert table_line(md, "tri1")[7] == "baseline"
    assert table_line(md, "mono")[7] == f"{(18.0 - 15.4) / 15.4 * 100:+.1f}%" == "+16.9%"
    assert "negative = fewer errors" in md and "`tri1` (dev 15.40%, test 16.20%)" in md
    assert "LM weight on dev: the lowest-WER weight of a sweep over 7..17 on dev itself" in md
    assert "LM weight on test: the weight picked on dev (never tuned on test)" in md


def test_baseline_by_name_and_unknown_name(sweep):
    rows = collect_rows([sweep])
    assert select_baseline(rows, ["dev"], "mono").system == "mono"
    md = markdown_table(rows, ["dev"], "mono")
    assert table_line(md, "mlp_d8_w512")[7] == f"{(10.9 - 18.0) / 18.0 * 100:+.1f}%" == "-39.4%"
    assert table_line(md, "mono")[7] == "baseline"
    with pytest.raises(ConfigError, match="no system named 'tri9'.*mono, tri1"):
        select_baseline(rows, ["dev"], "tri9")


def test_decode_dirs_and_model_dirs_as_inputs(sweep):
    rows = collect_rows([sweep / "tri1" / "decode_dev", sweep / "dnn" / "mlp_d4_w512"])
    assert [r.system for r in rows] == ["tri1", "mlp_d4_w512"]
    assert sorted(rows[0].results) == ["dev"] and sorted(rows[1].results) == ["dev", "test"]
    # the same dir reached twice is one row; a recognizer bundle inside a run dir (a copy of the model) is no row
    bundle = sweep / "dnn" / "mlp_d4_w512" / "bundle"
    shutil.copytree(sweep / "dnn" / "mlp_d4_w512", bundle / "model", ignore=shutil.ignore_patterns("decode_*"))
    (bundle / "bundle.json").write_text("{}\n")
    assert len(collect_rows([sweep, sweep / "tri1"])) == 7
    with pytest.raises(InputError, match="no such file"):
        collect_rows([sweep / "tri7"])


def test_partial_sweep_lists_missing_and_skips_unfinished_runs(tmp_path, caplog):
    exp = build_sweep(tmp_path, depths=(1, 4))
    write_model_json(exp / "dnn" / "mlp_d8_w512", dnn_info(8))  # trained, not decoded yet
    training = exp / "dnn" / "mlp_d12_w512"  # still training: checkpoints, no model.json
    (training / "checkpoints").mkdir(parents=True)
    (training / "train_log.json").write_text('{"epochs": []}\n')
    (exp / "dnn" / "mlp_d4_w512" / "decode_test" / "results.json").unlink()  # test decode interrupted
    with caplog.at_level(logging.INFO, logger="asr.report"):
        rows = collect_rows([exp], ["dev", "test"])
    assert [r.system for r in rows] == ["mono", "tri1", "mlp_d1_w512", "mlp_d4_w512", "mlp_d8_w512"]
    assert rows[-1].results == {} and sorted(rows[3].results) == ["dev"]
    assert "training not finished" in caplog.text and "mlp_d12_w512" in caplog.text
    assert "mlp_d8_w512" in caplog.text and "no decodes yet" in caplog.text
    assert "decode not finished" in caplog.text
    md = markdown_table(rows, ["dev", "test"], None)
    assert table_line(md, "mlp_d8_w512")[6:10] == ["—", "—", "—", "—"]
    assert table_line(md, "mlp_d4_w512")[8:10] == ["—", "—"]
    paths = write_report(rows, ["dev", "test"], None, tmp_path / "out" / "report")
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_corrupt_or_incomplete_results_json_names_the_file(sweep):
    bad = sweep / "dnn" / "mlp_d2_w512" / "decode_dev" / "results.json"
    bad.write_text('{"wer": 12.8, "words": 2000,\n')
    with pytest.raises(InputError) as err:
        collect_rows([sweep])
    assert err.value.path == str(bad) and str(bad) in str(err.value)
    bad.write_text(json.dumps({"wer": 12.8, "words": 2000, "ins": 1, "sub": 2}))
    with pytest.raises(InputError, match="no 'del'") as err:
        collect_rows([sweep])
    assert err.value.path == str(bad)
    bad.write_text(json.dumps({"wer": "12.8", "words": 2000, "ins": 1, "del": 0, "sub": 2}))
    with pytest.raises(InputError, match="'wer' must be a number"):
        collect_rows([sweep])
    bad.write_text("[]")
    with pytest.raises(InputError, match="JSON object"):
        collect_rows([sweep])


def test_csv_round_trip(sweep, tmp_path):
    rows = collect_rows([sweep])
    paths = write_report(rows, ["dev", "test"], None, tmp_path / "r")
    with open(paths["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["system"] for t in table] == [r.system for r in rows]
    d8 = table[5]
    assert (int(d8["hidden_layers"]), int(d8["units_per_layer"]), int(d8["parameters"])) == (
        8,
        512,
        dnn_info(8)["num_params"],
    )
    assert float(d8["wer_dev"]) == 10.9 and int(d8["errors_dev"]) == 218 and int(d8["words_dev"]) == WORDS
    assert (int(d8["ins_dev"]), int(d8["del_dev"]), int(d8["sub_dev"])) == (18, 40, 160)
    assert float(d8["rel_change_pct_dev"]) == pytest.approx(-29.2208, abs=1e-4)
    assert float(d8["lm_weight_dev"]) == 12 and d8["lm_weight_selection_dev"] == "best on this set"
    assert float(d8["train_frames_per_second"]) == 6250.0 and float(d8["rtf_test"]) == 0.01
    assert [t["is_baseline"] for t in table] == ["0", "1", "0", "0", "0", "0", "0"]
    assert table[1]["rel_change_pct_dev"] == "0.0" and table[0]["hidden_layers"] == ""
    assert Path(d8["results_dev"]) == sweep / "dnn" / "mlp_d8_w512" / "decode_dev" / "results.json"


def test_png_is_a_png_of_the_figure_size(sweep, tmp_path):
    rows = collect_rows([sweep])
    png = write_report(rows, None, None, tmp_path / "r", paper=True)["png"]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
    assert len(data) > 10_000
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes left no temporary file


def test_cli_writes_three_files_and_prints_the_table(sweep, tmp_path, capsys):
    main([str(sweep), "--sets", "dev,test", "--baseline", "tri1", "--out", str(tmp_path / "o" / "rep"), "--paper"])
    printed = capsys.readouterr().out
    for ext in ("md", "csv", "png"):
        assert (tmp_path / "o" / f"rep.{ext}").stat().st_size > 0
    assert printed == (tmp_path / "o" / "rep.md").read_text()
    assert printed.startswith("# WER by number of hidden layers (an4)\n")
    assert table_line(printed, "mlp_d8_w512")[7] == "-29.2%"
    main([str(sweep / "tri1"), str(sweep / "dnn"), "--set", "test", "--title", "AN4 test"])  # default prefix
    md = (sweep / "report.md").read_text()
    assert md.startswith("# AN4 test\n") and "WER test" in md and "WER dev" not in md
    with pytest.raises(SystemExit, match="error: .*no system named 'nope'"):
        main([str(sweep), "--baseline", "nope", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="error: .*no model or decode"):
        main([str(tmp_path / "o"), "--out", str(tmp_path / "x")])


def test_comparison_table_gmm_vs_dnn(sweep):
    text = comparison_table(sweep / "tri1", sweep / "dnn" / "mlp_d8_w512", ["dev", "test"])
    gmm, dnn = table_line(text, "tri1 (GMM)"), table_line(text, "mlp_d8_w512 (DNN)")
    assert gmm[2] == "15.40 [308/2000, 40 ins, 68 del, 200 sub]" and gmm[3] == "baseline"
    assert dnn[1] == "8 x 512" and dnn[2] == "10.90 [218/2000, 18 ins, 40 del, 160 sub]" and dnn[3] == "-29.2%"
    assert dnn[5] == "-29.0%" and "negative = the DNN makes fewer errors" in text
    # the DNN not decoded yet: its cells are missing, the GMM's are there
    write_model_json(sweep / "dnn" / "mlp_d6_w512", dnn_info(6))
    text = comparison_table(sweep / "tri1", sweep / "dnn" / "mlp_d6_w512")
    assert table_line(text, "mlp_d6_w512 (DNN)")[2:] == ["—"] * 4
    with pytest.raises(InputError, match="not found"):
        comparison_table(sweep / "tri1", sweep / "dnn" / "nothing")


def test_same_names_in_two_corpora_are_told_apart(tmp_path):
    for corpus in ("an4", "synth"):
        info = gmm_info("tri1")
        write_model_json(tmp_path / "exp" / corpus / "tri1", info)
        write_decode(tmp_path / "exp" / corpus / "tri1", "dev", make_score(*DEV["tri1"]), info)
    rows = collect_rows([tmp_path / "exp"])
    assert [r.system for r in rows] == ["an4/tri1", "synth/tri1"]


@pytest.mark.slow  # the session fixture runs the yes/no recipe (~20 s) when no other test has
def test_real_yesno_recipe_decode(yesno_recipe, tmp_path):
    results = json.loads((yesno_recipe.exp / "mono" / "decode_test" / "results.json").read_text())
    rows = collect_rows([yesno_recipe.exp])
    assert [(r.system, r.kind) for r in rows] == [("mono", "gmm")]
    r = rows[0].results["test"]
    assert (r.wer, r.words, r.ins, r.dels, r.sub) == tuple(results[k] for k in ("wer", "words", "ins", "del", "sub"))
    assert rows[0].num_gauss == results["model"]["num_gauss"] and rows[0].depth is None
    paths = write_report(rows, None, None, tmp_path / "yesno")
    assert table_line(paths["md"].read_text(), "mono")[6:8] == [r.kaldi(), "baseline"]


def test_gmm_parameters_use_the_transformed_dimension():
    from asr.report import _gmm_params

    assert _gmm_params({"num_gauss": 10, "feature_dim": 13, "delta_order": 2}) == 10 * 79
    assert _gmm_params({"num_gauss": 10, "feature_dim": 13, "delta_order": 0, "model_dim": 40}) == 10 * 81
