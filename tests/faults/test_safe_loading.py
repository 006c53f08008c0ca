"""Safe loading: no file is unpickled into arbitrary objects, and ``cmd |`` entries of wav.scp can be refused
for untrusted data, everywhere, with ``ASR_ALLOW_PIPES=0`` (a flag where a CLI has one)."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest
from harness import REPO, run_stage, stage_env

from asr.data.audio import read_audio
from asr.errors import InputError

PY = sys.executable


def _calls(tree: ast.AST, dotted: str):
    module, _, name = dotted.rpartition(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
            value = node.func.value
            if isinstance(value, ast.Name) and value.id == module:
                yield node


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_every_loader_refuses_pickled_objects():
    """A static audit of the package: torch.load only with weights_only=True, np.load only with
    allow_pickle=False, no pickle.load(s), no yaml.load / unsafe_load."""
    problems = []
    files = sorted((REPO / "asr").rglob("*.py"))
    assert len(files) > 50
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(REPO)
        where = lambda c, rel=rel: f"{rel}:{c.lineno}"  # noqa: E731
        for call in _calls(tree, "torch.load"):
            if _keyword(call, "weights_only") is not True:
                problems.append(f"{where(call)}: torch.load without weights_only=True")
        for call in _calls(tree, "np.load"):
            if _keyword(call, "allow_pickle") is not False:
                problems.append(f"{where(call)}: np.load without allow_pickle=False")
        for dotted in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "marshal.loads"):
            problems += [f"{where(c)}: {dotted}" for c in _calls(tree, dotted)]
    assert problems == []


def test_pipes_refused_by_the_environment_variable(monkeypatch, tmp_path, yesno_root):
    wav = sorted((yesno_root / "waves_yesno").glob("*.wav"))[0]
    marker = tmp_path / "ran"
    entry = f"touch {marker}; cat {wav} |"
    assert read_audio(entry)[1] == 8000 and marker.exists()  # Kaldi's convention: allowed by default
    marker.unlink()
    for value in ("0", "false", "no", "OFF"):
        monkeypatch.setenv("ASR_ALLOW_PIPES", value)
        with pytest.raises(InputError, match="ASR_ALLOW_PIPES=0") as info:
            read_audio(entry, allow_pipes=True, where="data/wav.scp:3")  # the variable wins over the argument
        assert info.value.path == "data/wav.scp:3"
        assert not marker.exists()
    monkeypatch.setenv("ASR_ALLOW_PIPES", "1")  # it can only forbid
    with pytest.raises(InputError, match="refusing"):
        read_audio(entry, allow_pipes=False)


@pytest.mark.slow
def test_pipes_refused_in_the_clis(yesno_recipe, tmp_path):
    """``ASR_ALLOW_PIPES=0`` reaches the CLIs that read data dirs (their worker processes too): features,
    validation; ``--no-pipes`` does the same per command."""
    data = tmp_path / "test"
    shutil.copytree(yesno_recipe.data / "test", data, ignore=shutil.ignore_patterns("*.h5"))
    marker = tmp_path / "ran"
    lines = (data / "wav.scp").read_text().splitlines()
    rec, path = lines[-1].split(maxsplit=1)
    lines[-1] = f"{rec} touch {marker}; cat {path} |"
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    refused = stage_env(ASR_ALLOW_PIPES="0")
    compute = [PY, "-m", "asr.features.compute", "--data", str(data), "--type", "fbank", "--jobs", "2"]
    for cmd, env in ((compute, refused), (compute + ["--no-pipes"], stage_env())):
        run = run_stage(cmd, env=env)
        assert run.returncode == 1 and "refusing command entry" in run.output and "Traceback" not in run.output
        assert f"{data / 'wav.scp'} (recording {rec})" in run.output
    validate = [PY, "-m", "asr.data.validate", str(data)]
    run = run_stage(validate, env=refused)
    assert run.returncode != 0 and "refusing command entry" in run.output and "Traceback" not in run.output
    assert not marker.exists()
    run = run_stage(compute, env=stage_env())  # allowed: the command runs
    assert run.returncode == 0, run.output[-2000:]
    assert marker.exists() and (data / "fbank.h5").is_file()
    assert Path(data / "fbank.h5").stat().st_size > 0
