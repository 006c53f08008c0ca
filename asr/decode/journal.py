"""The decoding journal: per-utterance search results appended as they come, so that a killed decode resumes.

:func:`asr.decode.decode_dir.decode_data_dir` appends one JSON line per decoded utterance to
``<out>/.decode_journal.jsonl`` (the words and status at every LM weight, and the seconds spent), flushed at
once and fsynced every few seconds. A decode started again with the same graph, model, data and options
(the journal's key: their paths, sizes and modification times, the LM weights and decoder options) reads the
utterances already decoded from it and searches only the others; the outputs are the same as an uninterrupted
run's. A line cut by the kill (the last one) is ignored; a journal of other inputs is discarded. The journal is
deleted once ``results.json`` is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr.errors import WriteError

logger = logging.getLogger(__name__)

DECODE_JOURNAL = ".decode_journal.jsonl"
JOURNAL_FORMAT = "asr-decode-journal"
FSYNC_SECONDS = 5.0


def _stat(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return [os.fspath(path), None]
    return [os.fspath(path.resolve()), st.st_size, st.st_mtime_ns]


def journal_key(files: Iterable[str | os.PathLike], model_dir: str | os.PathLike | None, options: Any) -> str:
    """The hex key of a decode: path, size and modification time of each input file (and of every file directly
    in ``model_dir``), and the JSON of ``options`` (LM weights, decoder options...)."""
    stats = [_stat(Path(f)) for f in files]
    if model_dir is not None:
        stats += [_stat(p) for p in sorted(Path(model_dir).iterdir()) if p.is_file()]
    blob = json.dumps({"files": stats, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class DecodeJournal:
    """The journal of one decode directory (see the module docstring).

    Args:
        out_dir: the decode directory.
        key: :func:`journal_key` of this decode.
    """

    def __init__(self, out_dir: str | os.PathLike, key: str):
        self.path = Path(out_dir) / DECODE_JOURNAL
        self.key = key
        self._file = None
        self._last_sync = 0.0

    def load(self) -> dict[str, dict]:
        """Records of the utterances already decoded (utt -> record); {} without a usable journal (one of
        other inputs is deleted)."""
        if not self.path.is_file():
            return {}
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError:
            return {}
        records: dict[str, dict] = {}
        try:
            header = json.loads(lines[0])
        except (ValueError, IndexError):
            header = {}
        if header.get("format") != JOURNAL_FORMAT or header.get("key") != self.key:
            logger.info("discarding %s: it was written for other inputs or options", self.path)
            self.path.unlink(missing_ok=True)
            return {}
        for i, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[record["utt"]] = record
            except (ValueError, KeyError, TypeError):
                if i < len(lines) - 1 and any(x.strip() for x in lines[i:]):
                    logger.warning("discarding %s: line %d is damaged", self.path, i)
                    self.path.unlink(missing_ok=True)
                    return {}
                break  # the last line, cut by the kill
        if records:
            logger.info("resuming the decode: %d utterances already decoded (%s)", len(records), self.path)
        return records

    def open(self, records: dict[str, dict]) -> None:
        """Start appending (rewriting the journal with ``records`` first, which drops a cut last line)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".new")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"format": JOURNAL_FORMAT, "key": self.key}) + "\n")
                for record in records.values():
                    f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise self._write_error(err) from err
        self._last_sync = time.monotonic()

    def _write_error(self, err: OSError) -> WriteError:
        reason = os.strerror(err.errno) if err.errno else str(err)
        return WriteError(f"cannot write the decoding journal: {reason}", self.path, err.errno)

    def append(self, utt: str, words: Sequence[Sequence[str]], results: Sequence[Any], search_seconds: Sequence[float],
               likelihood_seconds: float) -> None:  # fmt: skip
        """Record one utterance: per LM weight its words, whether the search reached a final state and whether
        it found a path at all, the search seconds; and the likelihood seconds."""
        record = {
            "utt": utt,
            "words": [list(w) for w in words],
            "final": [bool(r.reached_final) for r in results],
            "no_path": [math.isinf(r.graph_cost) for r in results],
            "search_seconds": [float(s) for s in search_seconds],
            "likelihood_seconds": float(likelihood_seconds),
        }
        self.append_record(record)

    def append_record(self, record: dict) -> None:
        """Append one JSON record (a dict with an ``"utt"`` key), flushed at once, fsynced every few seconds."""
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            now = time.monotonic()
            if now - self._last_sync >= FSYNC_SECONDS:
                os.fsync(self._file.fileno())
                self._last_sync = now
        except OSError as err:
            raise self._write_error(err) from err

    def close(self) -> None:
        """Stop appending (the file stays until :meth:`remove`)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # a full disk: the error was raised by append already
                pass
            self._file = None

    def remove(self) -> None:
        """Delete the journal (the decode is complete)."""
        self.close()
        self.path.unlink(missing_ok=True)


class SearchJournal(DecodeJournal):
    """The journal of one search pass of a multi-pass decode (the first two passes of
    :func:`asr.decode.decode_fmllr.decode_fmllr`): per utterance its hypothesis words and its best path (the
    transition state of every frame, run-length coded; None: no complete path), same format rules as
    :class:`DecodeJournal` (header with the key, a cut last line ignored, a journal of another key discarded).

    Args:
        path: the journal file (e.g. ``<out>/.fmllr_state/first_pass.jsonl``).
        key: the pass's key (:func:`journal_key` of its inputs and options, with the pass name and whatever
            else the pass depends on).
    """

    def __init__(self, path: str | os.PathLike, key: str):
        super().__init__(Path(path).parent, key)
        self.path = Path(path)

    def append_path(self, utt: str, words: Sequence[str], tstates: Any) -> None:
        """Record one utterance: its words and its per-frame transition states (an int array, or None)."""
        self.append_record({"utt": utt, "words": list(words), "path": encode_path(tstates)})


def encode_path(tstates: Any) -> list[list[int]] | None:
    """Run-length code of a per-frame int sequence: ``[[value, count], ...]``; None stays None."""
    if tstates is None:
        return None
    a = np.asarray(tstates, dtype=np.int64).reshape(-1)
    if a.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(a)) + 1])
    counts = np.diff(np.concatenate([starts, [a.size]]))
    return [[int(v), int(c)] for v, c in zip(a[starts], counts)]


def decode_path(runs: Any) -> np.ndarray | None:
    """The int64 sequence of :func:`encode_path`'s code (None for None); ValueError for a malformed code."""
    if runs is None:
        return None
    try:
        values = np.asarray([int(v) for v, _ in runs], dtype=np.int64)
        counts = np.asarray([int(c) for _, c in runs], dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"malformed path code: {err}") from None
    if (counts < 1).any():
        raise ValueError("malformed path code: a run of length < 1")
    return np.repeat(values, counts)
