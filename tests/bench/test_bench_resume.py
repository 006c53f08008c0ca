"""Smoke test of ``python -m asr.bench.resume`` on the yes/no recipe's outputs (no timing asserts: the figures are
the benchmark's to print)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

ROWS = [
    ("features", "default parts"),
    ("features", "no parts (part_frames=0)"),
    ("features", "small parts (part_frames=2000)"),
    ("alignment", "default blocks"),
    ("alignment", "one block (block_frames=0)"),
    ("alignment", "small blocks (block_frames=2000)"),
    ("EM checkpoint", "EmCheckpoint.save"),
    ("decoding", "journal (resumable=True)"),
    ("decoding", "no journal (resumable=False)"),
]


def _snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    return {
        os.fspath(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for d in dirs
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_bench_resume_quick_prints_every_row(yesno_recipe) -> None:
    """The quick run on yes/no exits 0, prints one table line per stage variant (with the saves of the small
    parts/blocks and the journal counted), the EM checkpoint and decoding summary lines and the load before and
    after, and writes nothing into the recipe's data or model dirs."""
    data, exp = yesno_recipe.data, yesno_recipe.exp
    before = _snapshot(data, exp)
    cmd = [
        sys.executable, "-m", "asr.bench.resume", "--quick", "--jobs", "1",
        "--data", os.fspath(data / "train"), "--model", os.fspath(exp / "mono"),
        "--graph", os.fspath(exp / "mono" / "graph"), "--decode-data", os.fspath(data / "test"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    assert len(table) == len(ROWS), out
    for (stage, variant), line in zip(ROWS, table):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == stage and cells[1].startswith(variant), line
        assert len(cells) == 7, line
        float(cells[3]), float(cells[4])  # best and median wall seconds are numbers
    saves = {(c[0], c[1]): int(c[2]) for c in ([x.strip() for x in line.strip("|").split("|")] for line in table)}
    assert saves[("features", "no parts (part_frames=0)")] == 0
    assert saves[("features", "small parts (part_frames=2000)")] > 1  # ~19000 frames of yes/no train
    assert saves[("alignment", "small blocks (block_frames=2000)")] > 1
    assert saves[("decoding", "no journal (resumable=False)")] == 0
    assert saves[("decoding", "journal (resumable=True)")] > 0
    assert "EM checkpoint of" in out and "decoding" in out and "WER" in out
    assert "load average before:" in out and "load average after:" in out
    assert _snapshot(data, exp) == before
