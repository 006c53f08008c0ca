"""Shared pieces of the fuzz tests: time-boxed hypothesis settings, input counters, an isolated worker process
for parsers backed by C libraries (a crash or a hang there must fail the test, not kill pytest), and the check
that an error is one of ours and names the file.

Environment: ``ASR_FUZZ_EXAMPLES=N`` runs N examples per target instead of the defaults (a longer fuzzing
run); ``ASR_FUZZ_RANDOM=1`` draws new random inputs each run (CI is derandomized: the same inputs every run).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections import Counter
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings

from asr.errors import AsrError

#: inputs tried per fuzz target in this session (printed by each test)
COUNTS: Counter = Counter()


def fuzz_settings(default_examples: int, deadline_s: float = 10.0):
    """Hypothesis settings: ``default_examples`` examples (or ``ASR_FUZZ_EXAMPLES``), a per-example deadline,
    no example database, derandomized unless ``ASR_FUZZ_RANDOM=1``."""
    examples = int(os.environ.get("ASR_FUZZ_EXAMPLES", "0") or 0) or default_examples
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=deadline_s),
        database=None,
        derandomize=os.environ.get("ASR_FUZZ_RANDOM") != "1",
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def outcome_of(fn, *args):
    """Call ``fn(*args)``: ``("ok", value)``, ``("ours", type name, str(err), err.path, err.line)`` for an
    :class:`AsrError`, or ``("bug", type name, traceback)`` for anything else."""
    try:
        return ("ok", fn(*args))
    except AsrError as err:
        return ("ours", type(err).__name__, str(err), getattr(err, "path", None), getattr(err, "line", None))
    except Exception as err:  # noqa: BLE001 (the point: report any other exception)
        return ("bug", type(err).__name__, traceback.format_exc()[-3000:])


def _serve(conn, fn) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    devnull = os.open(os.devnull, os.O_WRONLY)  # C libraries' chatter (kaldilm, HDF5) would flood the test log
    os.dup2(devnull, 2)
    while True:
        try:
            args = conn.recv()
        except EOFError:
            return
        if args is None:
            return
        conn.send(outcome_of(fn, *args))


class IsolatedWorker:
    """A spawned process that runs ``fn`` (a module-level function) on the arguments it is sent, one call at a
    time. :meth:`call` returns :func:`outcome_of`'s tuple, or ``("crash", exit code)`` when the process died and
    ``("hang", seconds)`` when it did not answer in time (the process is then replaced)."""

    def __init__(self, fn, timeout: float = 30.0):
        self.fn = fn
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_serve, args=(child, self.fn), daemon=True)
        self.proc.start()
        child.close()

    def call(self, *args):
        """Run ``fn(*args)`` in the worker."""
        self.conn.send(args)
        if not self.conn.poll(self.timeout):
            self.proc.kill()
            self.proc.join()
            self._start()
            return ("hang", self.timeout)
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            code = self.proc.exitcode
            self._start()
            return ("crash", code)

    def close(self) -> None:
        """Stop the worker."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def assert_ours(outcome, allowed_paths: list[Path | str], what: str) -> None:
    """``outcome`` (from :func:`outcome_of` or a worker) is a success or one of our errors naming one of
    ``allowed_paths`` (a file, or a directory the named file lies in)."""
    kind = outcome[0]
    assert kind in ("ok", "ours"), f"{what}: {kind}: {outcome[1:]}"
    if kind == "ours":
        path = outcome[3]
        assert path is not None, f"{what}: error names no file: {outcome[2]}"
        path = os.path.abspath(path.split(" (")[0])
        assert any(path == os.path.abspath(p) or path.startswith(os.path.abspath(p) + os.sep) for p in allowed_paths), (
            f"{what}: error names {path}, not one of {allowed_paths}: {outcome[2]}"
        )
