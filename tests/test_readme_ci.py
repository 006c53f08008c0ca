"""The README's two set-up commands are what CI runs, and the code is ruff clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _command_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("python3 -m venv")]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    readme_cmds = _command_lines(readme)
    ci_cmds = _command_lines(ci)
    assert len(readme_cmds) == 2, "README must give exactly two set-up commands"
    assert len(ci_cmds) == 1, ".ci/run must run exactly one command"
    assert ci_cmds[0] in readme_cmds, f".ci/run runs {ci_cmds[0]!r}, which is not in the README"
    assert ci_cmds[0].endswith("pytest"), "the CI command must end by running the tests"


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run([ruff, "check", "asr", "tests", "scripts"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
