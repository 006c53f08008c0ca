"""Smoke test of the atheris fuzzing driver (scripts/fuzz_parsers.py): a 3-second lexicon run prints its counts
and exits 0. Skipped where atheris is not installed (it is the optional extra ``fuzz``, not a CI dependency)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_parsers.py"


@pytest.mark.slow
def test_fuzz_script_lexicon_smoke(tmp_path):
    pytest.importorskip("atheris")
    cmd = [sys.executable, str(SCRIPT), "--target", "lexicon", "--seconds", "3", "--out-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    m = re.search(r"\[fuzz\] lexicon: (\d+) inputs executed .* cov (\d+) ft (\d+) .* findings 0 ", out)
    assert m, out[-3000:]
    assert int(m.group(1)) > 0 and int(m.group(2)) > 0, m.group(0)
    assert "[fuzz] total: " in out, out[-3000:]
    assert (tmp_path / "corpus" / "lexicon").is_dir()
