"""Kill-and-resume harness: run a pipeline stage as a subprocess, SIGKILL it at chosen moments, run it again,
and compare what it leaves with the outputs of an uninterrupted run.

A stage is a command line (``python -m asr...``) run in its own session; a kill is ``SIGKILL`` to the whole
process group (the stage and its worker processes), as a preempted job dies. Kill moments are a random delay
after the start, or a random delay after a trigger (a file appearing, e.g. the first checkpoint), drawn from a
seeded :class:`random.Random` so that every run of a test tries the same points.

After every kill :func:`check_no_partial_outputs` checks the rule "a file appears under its final name only when
complete": every output present must equal the reference (or be a loadable checkpoint); only writers' temporary
files (``.<name>.tmp.<host>.<pid>``) may be incomplete, and they must be gone once a later run finished.
Comparisons (:func:`same_file`) are exact: bytes for text, every dataset and attribute for HDF5, every tensor for
``torch.save`` files, JSON with the volatile timing fields left out.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
TEMP_NAME = re.compile(r"^\..+\.tmp\.[^.]+\.\d+$")
# JSON keys whose values are wall-clock measurements (they differ between any two runs)
VOLATILE_KEY = re.compile(r"seconds|rtf|per_second|frames_per_s|elapsed|created|timestamp|time$")


def stage_env(**extra: str) -> dict[str, str]:
    """The environment of a stage subprocess: this Python's bin dir first on PATH, one thread per library."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@dataclass
class RunRecord:
    """One start of a stage: when it was killed (None: it ran to the end), its exit code, its output."""

    kill_after: float | None
    killed: bool
    returncode: int
    seconds: float
    output: str


@dataclass
class KillReport:
    """What :func:`run_with_kills` did: every run, and the number of runs that were really killed."""

    runs: list[RunRecord] = field(default_factory=list)

    @property
    def kill_points(self) -> int:
        """Runs ended by SIGKILL (kill moments that came before the stage finished)."""
        return sum(r.killed for r in self.runs)

    @property
    def final(self) -> RunRecord:
        """The last run (the one that completed)."""
        return self.runs[-1]


def run_stage(cmd: Sequence[str], *, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> RunRecord:
    """Run a stage to the end; returns its record (the caller checks the exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env or stage_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    return RunRecord(None, False, proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr)


def _start(cmd: Sequence[str], cwd: Path, env: dict, log: Path) -> tuple[subprocess.Popen, object]:
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed by the caller)
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, handle


def kill_group(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGKILL the process group of ``proc`` (the stage and every worker it started), reap it, and wait until
    every process of the group is gone (as a restarted job starts after the old one died)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def run_killed_once(
    cmd: Sequence[str],
    kill_after: float,
    *,
    trigger: Callable[[], bool] | None = None,
    cwd: Path = REPO,
    env: dict | None = None,
    log: Path,
    timeout: float = 300,
) -> RunRecord:
    """Start the stage and SIGKILL its process group ``kill_after`` seconds after the start (or, with
    ``trigger``, after ``trigger()`` first returns True); a stage that ends first is not killed."""
    env = env or stage_env()
    t0 = time.perf_counter()
    proc, handle = _start(cmd, cwd, env, log)
    armed_at = None if trigger is not None else t0
    killed = False
    try:
        while proc.poll() is None:
            now = time.perf_counter()
            if now - t0 > timeout:
                kill_group(proc)
                raise TimeoutError(f"{' '.join(cmd)} ran longer than {timeout} s")
            if armed_at is None and trigger():
                armed_at = now
            if armed_at is not None and now - armed_at >= kill_after:
                kill_group(proc)
                killed = True
                break
            time.sleep(0.01)
    finally:
        handle.close()
        if proc.poll() is None:
            kill_group(proc)
    # a stage that finished on its own in the same instant as the kill counts as not killed
    killed = killed and proc.returncode == -signal.SIGKILL
    return RunRecord(kill_after, killed, proc.returncode, time.perf_counter() - t0, log.read_text(errors="replace"))


def run_with_kills(
    cmd: Sequence[str],
    kill_times: Iterable[float],
    *,
    trigger: Callable[[], bool] | None = None,
    after_kill: Callable[[RunRecord], None] | None = None,
    cwd: Path = REPO,
    env: dict | None = None,
    log_dir: Path,
    timeout: float = 300,
) -> KillReport:
    """Run the stage once per kill time (killed then, see :func:`run_killed_once`), calling ``after_kill`` after
    each kill, then once more to the end (exit code 0 required). Each run continues from what the previous
    ones left, as a user re-running a preempted job would."""
    log_dir.mkdir(parents=True, exist_ok=True)
    report = KillReport()
    for i, delay in enumerate(kill_times):
        record = run_killed_once(
            cmd, delay, trigger=trigger, cwd=cwd, env=env, log=log_dir / f"run{i}.log", timeout=timeout
        )
        report.runs.append(record)
        if record.killed:
            if after_kill is not None:
                after_kill(record)
        elif record.returncode != 0:
            raise AssertionError(f"run {i} of {' '.join(cmd)} failed ({record.returncode}):\n{record.output[-3000:]}")
    final = run_stage(cmd, cwd=cwd, env=env, timeout=timeout)
    report.runs.append(final)
    if final.returncode != 0:
        raise AssertionError(f"the final run of {' '.join(cmd)} failed ({final.returncode}):\n{final.output[-3000:]}")
    return report


def kill_times(seed: int, count: int, low: float, high: float) -> list[float]:
    """``count`` sorted delays drawn uniformly from ``[low, high]`` with ``random.Random(seed)``; the environment
    variable ``ASR_FAULT_SEED=K`` (default 0) shifts every seed, so that a longer campaign (several runs of
    ``pytest tests/faults``, K = 1, 2, ...) tries other kill points than CI's."""
    rng = random.Random(seed + 1000 * int(os.environ.get("ASR_FAULT_SEED", "0") or 0))
    return sorted(rng.uniform(low, high) for _ in range(count))


def file_appears(directory: Path, pattern: str) -> Callable[[], bool]:
    """A trigger: True once a file matching the glob ``pattern`` exists under ``directory``."""
    return lambda: any(directory.glob(pattern))


# -- comparing outputs --------------------------------------------------------------------------------------


def _strip_volatile(value):
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if not VOLATILE_KEY.search(k)}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _h5_items(path: Path) -> dict:
    out: dict = {}
    with h5py.File(path, "r") as f:
        out["/attrs"] = {k: _plain(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
                out[name + "/attrs"] = {k: _plain(v) for k, v in obj.attrs.items()}

        f.visititems(visit)
    return out


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def load_torch(path: Path):
    """``torch.load(path, weights_only=True)`` on the CPU."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def same_file(a: Path, b: Path) -> bool:
    """Whether two output files hold the same content (see the module docstring for what "same" means)."""
    suffix = a.suffix
    if suffix == ".h5":
        return _equal(_h5_items(a), _h5_items(b))
    if suffix == ".pt":
        return _equal(load_torch(a), load_torch(b))
    if suffix == ".json":
        return _strip_volatile(json.loads(a.read_text())) == _strip_volatile(json.loads(b.read_text()))
    return a.read_bytes() == b.read_bytes()


def _same_or_error(a: Path, b: Path) -> bool:
    try:
        return same_file(a, b)
    except Exception:  # noqa: BLE001 (an unreadable file is not the same)
        return False


def output_files(directory: Path, ignore: Callable[[Path], bool] = lambda p: False) -> dict[str, Path]:
    """Files under ``directory`` by relative path, without writers' temporary files and ``ignore``d ones."""
    found = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and not TEMP_NAME.match(path.name) and not ignore(rel):
            found[str(rel)] = path
    return found


def temp_files(directory: Path) -> list[Path]:
    """Writers' temporary files (``.<name>.tmp.<host>.<pid>``) under ``directory``."""
    return [p for p in directory.rglob(".*") if TEMP_NAME.match(p.name)]


def compare_outputs(reference: dict[str, Path], actual: dict[str, Path], *, require_all: bool = True) -> list[str]:
    """Differences between two sets of outputs (relative path -> file): files that differ, and (with
    ``require_all``) files present on one side only. Returns human-readable lines (empty: identical)."""
    problems = []
    for rel, path in actual.items():
        if rel not in reference:
            if require_all:
                problems.append(f"{rel}: not in the reference outputs")
        elif not _same_or_error(reference[rel], path):
            problems.append(f"{rel}: differs from the uninterrupted run")
    if require_all:
        problems += [f"{rel}: missing" for rel in reference if rel not in actual]
    return problems


def check_no_partial_outputs(
    reference: dict[str, Path],
    directory: Path,
    *,
    ignore: Callable[[Path], bool] = lambda p: False,
    loadable: Callable[[Path], bool] = lambda p: False,
) -> list[str]:
    """After a kill: every output present under its final name is complete. Files of the reference must equal
    it; files for which ``loadable(relative path)`` is True (checkpoints, progress JSON) must load with
    ``torch.load`` (``json.loads`` for ``.json``);
    anything else is reported. Returns the problems (empty: fine)."""
    problems = []
    for rel, path in output_files(directory, ignore).items():
        if loadable(Path(rel)):
            try:
                if path.suffix == ".json":  # a progress file rewritten during the run (train_log.json)
                    json.loads(path.read_text(encoding="utf-8"))
                else:
                    load_torch(path)
            except Exception as err:  # noqa: BLE001 (any failure means a half-written file)
                problems.append(f"{rel}: cannot be loaded after the kill ({type(err).__name__})")
        elif rel in reference:
            if not _same_or_error(reference[rel], path):
                problems.append(f"{rel}: present after the kill but not equal to the complete output")
        else:
            problems.append(f"{rel}: unexpected file after the kill")
    return problems
