"""End to end through ``python -m asr.train``: GMM alignments of the yes/no recipe -> DNN training ->
hybrid decoding of test with the GMM's graph -> the GMM-vs-DNN table (issue [3/6]'s tiny CI run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "asr.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_train_decodes_and_prints_the_gmm_vs_dnn_table(yesno_recipe, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(yesno_recipe.exp / "mono", exp / "yesno" / "mono")  # decode_test/results.json is reused
    args = [
        "corpus=yesno",
        f"corpus.data_dir={yesno_recipe.data}",
        f"exp_root={exp}",
        "prepare=false",
        "depth=2",
        "width=64",
        "trainer.epochs=3",
        "trainer.tensorboard=false",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "decode.jobs=1",
    ]
    result = _train(args, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    run_dir = exp / "yesno" / "dnn" / "mlp_d2_w64"
    results = json.loads((run_dir / "decode_test" / "results.json").read_text())
    assert results["model"]["kind"] == "dnn" and results["model"]["depth"] == 2
    assert results["model"]["num_params"] > 0 and results["lm_weight"] == 10  # no dev set: the fixed weight
    assert results["words"] == 232 and results["wer"] <= 5.0, results
    gmm = json.loads((exp / "yesno" / "mono" / "decode_test" / "results.json").read_text())
    for system, res in (("mono", gmm), ("mlp_d2_w64", results)):
        line = next(line for line in result.stdout.splitlines() if system in line)
        assert f"{res['ins']} ins" in line.replace("|", " ") or str(res["ins"]) in line, line
    # the run ends with a recognizer bundle: one command transcribes a wav
    wav = (yesno_recipe.data / "test" / "wav.scp").read_text().split("\n")[0].split()[-1]
    tx = subprocess.run(
        [sys.executable, "-m", "asr.transcribe", str(run_dir / "bundle"), wav],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert tx.returncode == 0, tx.stderr[-3000:]
    words = tx.stdout.split()
    assert len(words) == 9 and set(words[1:]) <= {"YES", "NO"}, tx.stdout
    # a second run reuses the trained model and the decodes and prints the same table
    again = _train(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "decode_test" / "results.json").read_text())["wer"] == results["wer"]
    log = again.stdout + again.stderr
    assert f"reusing %WER {results['wer']:.2f}" in log and "training of" in log and "is complete" in log
