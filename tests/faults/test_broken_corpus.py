"""A corpus with broken audio files: without skipping, feature extraction stops naming the bad entry; with
skipping allowed (``compute --skip-bad``, ``decode_dir --skip-missing``) the whole pipeline -- features,
monophone training, graph, decoding -- finishes, and the skipped utterances are listed and counted in the logs,
in the feature archive, in ``train_log.json`` and in ``results.json``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from harness import run_stage

from asr.data.datadir import read_table
from asr.features.archive import FeatureArchive

pytestmark = pytest.mark.slow
PY = sys.executable


def _break(data: Path, broken_dir: Path, how: dict[int, str]) -> list[str]:
    """Replace the audio of some utterances (by position) with broken files; returns their ids."""
    wav_scp = read_table(data / "wav.scp")
    utts = sorted(wav_scp)
    broken = []
    for pos, kind in how.items():
        utt = utts[pos]
        original = Path(wav_scp[utt]).read_bytes()
        bad = broken_dir / f"{utt}.wav"
        if kind == "truncated_header":
            bad.write_bytes(original[:30])
        elif kind == "garbage":
            bad.write_bytes(b"\x00\x01garbage, not RIFF" * 50)
        elif kind == "header_only":
            bad.write_bytes(original[:44])
        elif kind == "missing":
            bad = broken_dir / "does_not_exist.wav"
        wav_scp[utt] = str(bad)
        broken.append(utt)
    (data / "wav.scp").write_text("".join(f"{u} {wav_scp[u]}\n" for u in utts))
    return sorted(broken)


def test_pipeline_finishes_and_reports_skipped_utterances(yesno_recipe, tmp_path):
    broken_dir = tmp_path / "broken_wavs"
    broken_dir.mkdir()
    train, test = tmp_path / "train", tmp_path / "test"
    shutil.copytree(yesno_recipe.data / "train", train, ignore=shutil.ignore_patterns("*.h5"))
    shutil.copytree(yesno_recipe.data / "test", test, ignore=shutil.ignore_patterns("*.h5"))
    bad_train = _break(train, broken_dir, {3: "truncated_header", 17: "garbage"})
    bad_test = _break(test, broken_dir, {0: "header_only", 11: "missing"})

    # without --skip-bad: a one-line error naming wav.scp and the recording, no traceback
    strict = run_stage([PY, "-m", "asr.features.compute", "--data", str(train), "--type", "mfcc", "--jobs", "1"])
    assert strict.returncode == 1
    assert f"{train / 'wav.scp'} (recording {bad_train[0]})" in strict.output and "Traceback" not in strict.output
    assert not (train / "mfcc.h5").exists()

    for data, bad in ((train, bad_train), (test, bad_test)):
        for kind in ("mfcc", "fbank"):
            extra = ["--use-energy", "true"] if kind == "mfcc" else []
            cmd = [PY, "-m", "asr.features.compute", "--data", str(data), "--type", kind, "--jobs", "2", "--skip-bad"]
            run = run_stage(cmd + extra)
            assert run.returncode == 0, run.output[-3000:]
            assert f"skipped {len(bad)} utterance(s) with bad audio: {' '.join(bad)}" in run.output
            with FeatureArchive(data / f"{kind}.h5") as archive:
                assert archive.skipped_utt_ids == bad and archive.attrs["num_skipped"] == len(bad)
                assert not set(bad) & set(archive.utt_ids) and len(archive) == len(read_table(data / "wav.scp")) - 2

    lang, lang_test = yesno_recipe.data / "lang", yesno_recipe.data / "lang_test"
    mono = tmp_path / "mono"
    cmd = [PY, "-m", "asr.gmm.train_mono", "--data", str(train), "--lang", str(lang), "--out", str(mono)]
    run = run_stage(cmd + ["--num-iters", "6", "--total-gauss", "40", "--jobs", "1"])
    assert run.returncode == 0, run.output[-3000:]
    assert f"2 utterances of {train / 'text'} have no features" in run.output
    train_log = json.loads((mono / "train_log.json").read_text())
    assert train_log["not_in_feature_archive"] == bad_train

    run = run_stage([PY, "-m", "asr.graph.mkgraph", "--lang", str(lang_test), "--model", str(mono), "--out",
                     str(mono / "graph")])  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    out = mono / "decode_test"
    cmd = [PY, "-m", "asr.decode.decode_dir", "--graph", str(mono / "graph"), "--model", str(mono), "--data",
           str(test), "--out", str(out), "--jobs", "1"]  # fmt: skip
    refused = run_stage(cmd)  # without --skip-missing: the missing utterances are an error
    assert refused.returncode != 0 and "--skip-missing" in refused.output and "Traceback" not in refused.output
    run = run_stage(cmd + ["--skip-missing"])
    assert run.returncode == 0, run.output[-3000:]
    assert f"2 skipped utterance(s) had bad audio (left out by the feature extractor): {' '.join(bad_test)}" in (
        run.output
    )
    results = json.loads((out / "results.json").read_text())
    assert results["num_skipped_bad_audio"] == 2 and results["skipped_bad_audio"] == bad_test
    assert results["num_skipped_missing_features"] == 2 and results["skipped_missing_features"] == bad_test
    assert results["utts"] == 29  # the skipped ones are scored (as deletions): the WER is not flattered
    assert results["del"] >= 16  # 8 words each
    assert sorted(ln.split()[0] for ln in (out / "hyp.txt").read_text().splitlines()) == sorted(
        set(read_table(test / "text")) - set(bad_test)
    )


def test_recipe_with_skip_bad_finishes_on_a_broken_corpus(yesno_root, tmp_path):
    """``recipes/yesno/run.sh --skip-bad true`` on a copy of the corpus with two broken wavs (one in train, one in
    test) runs every stage; without it the recipe stops at feature extraction naming the bad file."""
    import os
    import subprocess

    corpus = tmp_path / "yesno"
    shutil.copytree(yesno_root, corpus)
    waves = sorted((corpus / "waves_yesno").glob("*.wav"))
    bad_train, bad_test = waves[2], waves[-3]  # Kaldi's split: first half of the listing is train
    bad_train.write_bytes(bad_train.read_bytes()[:30])  # a truncated header
    bad_test.write_bytes(b"\x00\x01garbage, not RIFF" * 50)
    env = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    repo = Path(__file__).resolve().parents[2]

    def recipe(out: Path, *options: str) -> subprocess.CompletedProcess:
        cmd = ["bash", str(repo / "recipes/yesno/run.sh"), "--corpus", str(corpus), "--data", str(out / "data"),
               "--exp", str(out / "exp"), "--jobs", "1", *options]  # fmt: skip
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=repo)

    strict = recipe(tmp_path / "strict")  # stops at stage 0 (data prep reads the headers), naming the file
    assert strict.returncode != 0
    assert f"error: {bad_train}: cannot read audio header" in strict.stderr and "Traceback" not in strict.stderr

    run = recipe(tmp_path / "skip", "--skip-bad", "true")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert f"skipped 1 utterance(s) with bad audio: yesno-{bad_train.stem}" in output
    assert f"skipped 1 utterance(s) with bad audio: yesno-{bad_test.stem}" in output
    results = json.loads((tmp_path / "skip/exp/mono/decode_test/results.json").read_text())
    assert results["skipped_bad_audio"] == [f"yesno-{bad_test.stem}"] and results["num_skipped_bad_audio"] == 1
    assert results["utts"] == 29  # scored, as deletions

    bad_option = recipe(tmp_path / "bad_option", "--skip-bad", "yes", "--stage", "2")
    assert bad_option.returncode != 0 and "--skip-bad takes true or false" in bad_option.stderr
