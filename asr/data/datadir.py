"""Kaldi-style data directories: read and write.

A data directory holds (DESIGN.md):

- ``wav.scp``: ``<recording-id> <path>`` or ``<recording-id> <command> |``
- ``text``: ``<utt-id> WORD WORD ...``
- ``utt2spk``: ``<utt-id> <speaker-id>``; ``spk2utt`` is derived from it
- optional ``segments`` (``<utt-id> <recording-id> <start> <end>``; without it recording id = utt id),
  ``spk2gender`` (``<speaker-id> m|f``), ``utt2dur`` (``<utt-id> <seconds>``).

All files are sorted by their first field in C (byte) order and utterance ids start with their
speaker id, so that per-speaker processing (CMVN) and merges are simple streams, as in Kaldi.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.atomic import atomic_write
from asr.data.audio import read_audio
from asr.errors import InputError


@dataclass(frozen=True)
class Segment:
    """Part of a recording: ``recording`` id, ``start`` and ``end`` in seconds (end -1 = to the end)."""

    recording: str
    start: float
    end: float


def read_table_lines(path: str | os.PathLike, *, allow_empty_value: bool = False) -> list[tuple[int, str, str]]:
    """Read a Kaldi table file (``key value...``) into ``(line_number, key, value)`` triples, file order.

    Raises:
        InputError: a line that is not UTF-8, has no key, or (unless ``allow_empty_value``) no value;
            a key repeated. The error names the file and the 1-based line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    rows: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    for number, line_bytes in enumerate(lines, start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"line is not valid UTF-8 ({e.reason} at byte {e.start})", path, number) from e
        line = line.rstrip("\r")
        if not line.strip():
            raise InputError("blank line", path, number)
        parts = line.strip().split(maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise InputError(f"no value after key {key!r}", path, number)
        if key in seen:
            raise InputError(f"key {key!r} repeated (first on line {seen[key]})", path, number)
        seen[key] = number
        rows.append((number, key, value))
    return rows


def read_table(path: str | os.PathLike, *, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a Kaldi table file into ``{key: value}`` (file order). See :func:`read_table_lines`."""
    return {k: v for _, k, v in read_table_lines(path, allow_empty_value=allow_empty_value)}


def write_table(path: str | os.PathLike, table: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
    """Write ``key value`` lines sorted by key (C order), atomically."""
    items = table.items() if isinstance(table, Mapping) else table
    rows = sorted(((str(k), v) for k, v in items), key=lambda kv: kv[0].encode("utf-8"))
    with atomic_write(path) as f:
        for key, value in rows:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")


def c_sorted(keys: Iterable[str]) -> list[str]:
    """Sort strings in C (byte) order, as ``LC_ALL=C sort`` does."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@dataclass
class DataDir:
    """An in-memory Kaldi data directory.

    Attributes:
        wav_scp: recording id -> path or ``command |``.
        text: utterance id -> transcript (words separated by single spaces).
        utt2spk: utterance id -> speaker id.
        segments: utterance id -> :class:`Segment`, or None when every utterance is a whole recording.
        spk2gender, utt2dur: optional extras (None when absent).
        path: the directory it was read from (used in error messages), or None.
    """

    wav_scp: dict[str, str]
    text: dict[str, str]
    utt2spk: dict[str, str]
    segments: dict[str, Segment] | None = None
    spk2gender: dict[str, str] | None = None
    utt2dur: dict[str, float] | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def utt_ids(self) -> list[str]:
        """Utterance ids in C-sorted order."""
        return c_sorted(self.utt2spk)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker id -> its utterance ids (both C-sorted)."""
        out: dict[str, list[str]] = {}
        for utt in self.utt_ids:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return {spk: out[spk] for spk in c_sorted(out)}

    def audio_source(self, utt: str) -> tuple[str, float, float | None, str]:
        """Return ``(wav.scp entry, start s, end s or None, where)`` for an utterance.

        ``where`` names the wav.scp file and key for error messages.
        """
        if self.segments is not None:
            seg = self.segments[utt]
            rec, start, end = seg.recording, seg.start, (None if seg.end < 0 else seg.end)
        else:
            rec, start, end = utt, 0.0, None
        where = f"{self.path / 'wav.scp' if self.path else 'wav.scp'} (recording {rec})"
        if rec not in self.wav_scp:
            raise InputError(f"utterance {utt!r}: recording {rec!r} is not in wav.scp", self.path)
        return self.wav_scp[rec], start, end, where

    def load_audio(self, utt: str, sample_rate: int | None = None, *, allow_pipes: bool = True) -> np.ndarray:
        """Read an utterance's samples (float32 mono) at ``sample_rate`` (resampled and logged if needed)."""
        entry, start, end, where = self.audio_source(utt)
        samples, _ = read_audio(entry, sample_rate, where=where, allow_pipes=allow_pipes, start=start, end=end)
        return samples

    def subset(self, utts: Iterable[str]) -> DataDir:
        """A new DataDir holding only the given utterances (and the recordings/speakers they use)."""
        keep = set(utts)
        utt2spk = {u: s for u, s in self.utt2spk.items() if u in keep}
        text = {u: t for u, t in self.text.items() if u in keep}
        segments = None
        if self.segments is not None:
            segments = {u: s for u, s in self.segments.items() if u in keep}
            recs = {s.recording for s in segments.values()}
        else:
            recs = keep
        wav_scp = {r: w for r, w in self.wav_scp.items() if r in recs}
        spks = set(utt2spk.values())
        spk2gender = None if self.spk2gender is None else {s: g for s, g in self.spk2gender.items() if s in spks}
        utt2dur = None if self.utt2dur is None else {u: d for u, d in self.utt2dur.items() if u in keep}
        return DataDir(wav_scp, text, utt2spk, segments, spk2gender, utt2dur, self.path)


def read_data_dir(path: str | os.PathLike) -> DataDir:
    """Read a data directory (see the module docstring for the files).

    Reading checks each file's syntax (line-numbered :class:`InputError`); it does not cross-check the
    files against each other: :func:`asr.data.validate.validate_data_dir` does that.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError("data directory does not exist", path)
    for name in ("wav.scp", "text", "utt2spk"):
        if not (path / name).is_file():
            raise InputError(f"missing {name}", path)
    wav_scp = read_table(path / "wav.scp")
    text = {k: " ".join(v.split()) for k, v in read_table(path / "text", allow_empty_value=True).items()}
    utt2spk = read_table(path / "utt2spk")
    segments = None
    if (path / "segments").is_file():
        segments = {}
        for number, utt, value in read_table_lines(path / "segments"):
            fields = value.split()
            if len(fields) != 3:
                raise InputError("expected '<utt> <recording> <start> <end>'", path / "segments", number)
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError as e:
                raise InputError(f"bad time: {e}", path / "segments", number) from e
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or (end >= 0 and end <= start):
                raise InputError(
                    f"bad segment times {fields[1]} {fields[2]} (need 0 <= start < end, or end -1)",
                    path / "segments",
                    number,
                )
            segments[utt] = Segment(fields[0], start, end)
    spk2gender = read_table(path / "spk2gender") if (path / "spk2gender").is_file() else None
    utt2dur = None
    if (path / "utt2dur").is_file():
        utt2dur = {}
        for number, utt, value in read_table_lines(path / "utt2dur"):
            try:
                utt2dur[utt] = float(value)
            except ValueError as e:
                raise InputError(f"bad duration {value!r}", path / "utt2dur", number) from e
            if not math.isfinite(utt2dur[utt]) or utt2dur[utt] <= 0:
                raise InputError(f"duration must be positive, got {value!r}", path / "utt2dur", number)
    return DataDir(wav_scp, text, utt2spk, segments, spk2gender, utt2dur, path)


def write_data_dir(data: DataDir, path: str | os.PathLike) -> Path:
    """Write a data directory (all files sorted, spk2utt derived, each file atomic); returns the path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_table(path / "wav.scp", data.wav_scp)
    write_table(path / "text", data.text)
    write_table(path / "utt2spk", data.utt2spk)
    write_table(path / "spk2utt", data.spk2utt)
    if data.segments is not None:
        write_table(
            path / "segments",
            {u: f"{s.recording} {s.start:.3f} {s.end:.3f}" for u, s in data.segments.items()},
        )
    elif (path / "segments").exists():
        (path / "segments").unlink()
    if data.spk2gender is not None:
        write_table(path / "spk2gender", data.spk2gender)
    if data.utt2dur is not None:
        write_table(path / "utt2dur", {u: f"{d:.3f}" for u, d in data.utt2dur.items()})
    elif (path / "utt2dur").exists():
        (path / "utt2dur").unlink()  # stale from an earlier run
    return path
