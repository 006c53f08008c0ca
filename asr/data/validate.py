"""Checking and fixing Kaldi-style data directories (``utils/validate_data_dir.sh`` and ``fix_data_dir.sh``).

:func:`validate_data_dir` stops at the FIRST problem with an :class:`~asr.errors.InputError` naming the
file and 1-based line, and otherwise returns a :class:`DataDirSummary`. It checks, in this order:

1. ``wav.scp``, ``text`` and ``utt2spk`` exist;
2. each file on its own (``utt2spk``, ``text``, ``wav.scp``, ``segments``, ``spk2utt``, ``spk2gender``,
   ``utt2dur``, those present): UTF-8, no blank line, no repeated key, keys sorted in C (byte) order,
   well-formed values (one speaker id per utterance and the utterance id starting with it, no empty
   transcript, ``segments`` times, ``m``/``f`` genders, positive durations, no ``cmd |`` entry when pipes
   are not allowed);
3. the files against each other: the same utterances in ``utt2spk``, ``text`` and ``wav.scp`` (or
   ``segments``, whose recordings must be in ``wav.scp`` and use every one of them), each speaker's
   utterances contiguous in sorted order, ``spk2utt`` equal to what ``utt2spk`` implies, ``spk2gender`` and
   ``utt2dur`` covering exactly the speakers / utterances;
4. with ``check_audio``: each plain audio file exists and its header is readable and announces samples
   (header only, fast); ``cmd |`` entries are run only with ``run_pipes=True``; segments lie inside their
   recordings and ``utt2dur`` agrees with the audio.

Relative paths in ``wav.scp`` are resolved against the current directory, as Kaldi does.

:func:`fix_data_dir` keeps the utterances present in all files, drops empty transcripts (and, when asked,
unreadable or too short audio), re-sorts everything, rewrites ``spk2utt`` and reports every utterance it
dropped and why (logged, returned, and listed in ``<dir>/.backup/dropped.txt`` beside backups of the files
it rewrote). Syntax errors (bad UTF-8, repeated keys, malformed lines) are not guessed at: they raise.

CLI::

    python -m asr.data.validate data/an4/train [data/an4/dev ...] [--no-audio] [--no-pipes] [--run-pipes]
    python -m asr.data.validate --fix data/an4/train [--min-duration 0.3] [--drop-unreadable-audio]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from asr.atomic import atomic_write
from asr.data.audio import is_pipe, pipes_allowed, read_audio, refused_pipe_message
from asr.data.datadir import DataDir, c_sorted, read_table_lines
from asr.errors import InputError

log = logging.getLogger(__name__)

REQUIRED_FILES = ("wav.scp", "text", "utt2spk")
#: Files a data directory may hold, in the order they are checked.
KNOWN_FILES = ("utt2spk", "text", "wav.scp", "segments", "spk2utt", "spk2gender", "utt2dur")
#: How far a segment may run past the end of its recording (Kaldi's extract-segments --max-overshoot).
SEGMENT_OVERSHOOT_S = 0.5
#: How far ``utt2dur`` may differ from the duration the audio header gives.
UTT2DUR_TOLERANCE_S = 0.02


@dataclass
class DataDirSummary:
    """What :func:`validate_data_dir` found in a valid data directory.

    Attributes:
        path: the directory.
        num_utts, num_speakers, num_recordings: counts.
        total_seconds: summed utterance durations, or None when some are unknown (pipe entries not run
            and no ``utt2dur``, or audio not checked and no ``utt2dur``).
        sample_rates: sample rate -> number of recordings at that rate (recordings whose audio was read).
        num_unchecked_pipes: ``cmd |`` recordings whose command was not run.
    """

    path: Path
    num_utts: int
    num_speakers: int
    num_recordings: int
    total_seconds: float | None = None
    sample_rates: dict[int, int] = field(default_factory=dict)
    num_unchecked_pipes: int = 0

    @property
    def sample_rate(self) -> int | None:
        """The sample rate when every checked recording has the same one, else None."""
        return next(iter(self.sample_rates)) if len(self.sample_rates) == 1 else None

    def __str__(self) -> str:
        parts = [f"{self.num_utts} utterances", f"{self.num_speakers} speakers", f"{self.num_recordings} recordings"]
        if self.total_seconds is not None:
            parts.append(f"{self.total_seconds / 60:.1f} min")
        if self.sample_rates:
            parts.append(", ".join(f"{rate} Hz ({n})" for rate, n in sorted(self.sample_rates.items())))
        if self.num_unchecked_pipes:
            parts.append(f"{self.num_unchecked_pipes} pipe entries not run")
        return f"{self.path}: " + ", ".join(parts)


@dataclass
class _Table:
    """One file of a data directory: path and ``key -> (line, value)`` in file order."""

    path: Path
    rows: dict[str, tuple[int, str]]

    def line(self, key: str) -> int:
        return self.rows[key][0]

    def value(self, key: str) -> str:
        return self.rows[key][1]

    def __contains__(self, key: str) -> bool:
        return key in self.rows


def _read_checked(path: Path, *, allow_empty_value: bool = False) -> _Table:
    """Read a table, checking syntax (via read_table_lines) and C-sorted keys."""
    rows = read_table_lines(path, allow_empty_value=allow_empty_value)
    previous: bytes | None = None
    previous_key = ""
    for number, key, _ in rows:
        encoded = key.encode("utf-8")
        if previous is not None and encoded <= previous:
            raise InputError(
                f"not sorted: key {key!r} comes after {previous_key!r} (line {number - 1}); sort with LC_ALL=C sort "
                "or run python -m asr.data.validate --fix",
                path,
                number,
            )
        previous, previous_key = encoded, key
    return _Table(path, {key: (number, value) for number, key, value in rows})


def _parse_segment(value: str, path: Path, number: int) -> tuple[str, float, float]:
    fields = value.split()
    if len(fields) != 3:
        raise InputError("expected '<utt> <recording> <start> <end>'", path, number)
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError as e:
        raise InputError(f"bad time: {e}", path, number) from e
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or (end >= 0 and end <= start):
        raise InputError(f"bad segment times {fields[1]} {fields[2]} (need 0 <= start < end, or end -1)", path, number)
    return fields[0], start, end


def _parse_duration(value: str, path: Path, number: int) -> float:
    try:
        seconds = float(value)
    except ValueError as e:
        raise InputError(f"bad duration {value!r}", path, number) from e
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"duration must be positive, got {value!r}", path, number)
    return seconds


def _audio_header(entry: str, path: Path, number: int) -> tuple[int, float]:
    """(sample rate, duration s) of a plain audio file from its header; InputError if unusable."""
    file = Path(entry.strip())
    if not file.is_file():
        raise InputError(f"audio file not found: {file}", path, number)
    try:
        info = soundfile.info(str(file))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as e:
        raise InputError(f"cannot read audio header of {file}: {e}", path, number) from e
    if info.frames <= 0:
        raise InputError(f"audio file {file} holds no samples", path, number)
    return int(info.samplerate), info.frames / info.samplerate


def validate_data_dir(
    path: str | os.PathLike,
    *,
    check_audio: bool = True,
    allow_pipes: bool = True,
    run_pipes: bool = False,
) -> DataDirSummary:
    """Check a data directory and summarise it (see the module docstring for the checks, in order).

    Args:
        path: the data directory.
        check_audio: read each plain audio file's header (existence, format, sample count, rate).
        allow_pipes: accept ``cmd |`` entries in ``wav.scp``; False refuses them (untrusted data).
        run_pipes: with ``check_audio``, also run the pipe commands and read their audio.

    Returns:
        A :class:`DataDirSummary`.

    Raises:
        InputError: at the first problem, naming the file and 1-based line.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError("data directory does not exist", path)
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise InputError(f"missing {name}", path)

    # --- 2. each file on its own
    utt2spk = _read_checked(path / "utt2spk")
    for utt, (number, spk) in utt2spk.rows.items():
        if len(spk.split()) != 1:
            raise InputError(
                f"expected '<utt> <speaker>', got {len(spk.split())} fields after the key", utt2spk.path, number
            )
        if not utt.startswith(spk):
            raise InputError(
                f"utterance id {utt!r} does not start with its speaker id {spk!r} (Kaldi needs speaker-prefixed "
                "utterance ids so that sorting by utterance also groups speakers)",
                utt2spk.path,
                number,
            )
    text = _read_checked(path / "text", allow_empty_value=True)
    for utt, (number, words) in text.rows.items():
        if not words.strip():
            raise InputError(f"empty transcript for utterance {utt!r}", text.path, number)
    wav_scp = _read_checked(path / "wav.scp")
    for rec, (number, entry) in wav_scp.rows.items():
        if is_pipe(entry) and not pipes_allowed(allow_pipes):
            raise InputError(f"recording {rec!r}: {refused_pipe_message(entry)}", wav_scp.path, number)
    segments: _Table | None = None
    seg_times: dict[str, tuple[str, float, float]] = {}
    if (path / "segments").is_file():
        segments = _read_checked(path / "segments")
        for utt, (number, value) in segments.rows.items():
            seg_times[utt] = _parse_segment(value, segments.path, number)
    spk2utt = _read_checked(path / "spk2utt") if (path / "spk2utt").is_file() else None
    spk2gender = _read_checked(path / "spk2gender") if (path / "spk2gender").is_file() else None
    if spk2gender is not None:
        for spk, (number, gender) in spk2gender.rows.items():
            if gender not in ("m", "f"):
                raise InputError(
                    f"gender of speaker {spk!r} must be 'm' or 'f', got {gender!r}", spk2gender.path, number
                )
    utt2dur = _read_checked(path / "utt2dur") if (path / "utt2dur").is_file() else None
    durations: dict[str, float] = {}
    if utt2dur is not None:
        for utt, (number, value) in utt2dur.rows.items():
            durations[utt] = _parse_duration(value, utt2dur.path, number)

    # --- 3. the files against each other
    finished_speakers: set[str] = set()
    current_spk = None
    for utt, (number, spk) in utt2spk.rows.items():
        if spk != current_spk:
            if spk in finished_speakers:
                raise InputError(
                    f"utterances of speaker {spk!r} are not contiguous in sorted order (utterance {utt!r}); "
                    "make every utterance id start with its speaker id and a separator such as '-'",
                    utt2spk.path,
                    number,
                )
            if current_spk is not None:
                finished_speakers.add(current_spk)
            current_spk = spk
        if utt not in text:
            raise InputError(f"utterance {utt!r} is not in {text.path}", utt2spk.path, number)
        if segments is not None:
            if utt not in segments:
                raise InputError(f"utterance {utt!r} is not in {segments.path}", utt2spk.path, number)
        elif utt not in wav_scp:
            raise InputError(f"utterance {utt!r} is not in {wav_scp.path}", utt2spk.path, number)
    for utt, (number, _) in text.rows.items():
        if utt not in utt2spk:
            raise InputError(f"utterance {utt!r} is not in {utt2spk.path}", text.path, number)
    used_recordings: set[str]
    if segments is not None:
        for utt, (number, _) in segments.rows.items():
            if utt not in utt2spk:
                raise InputError(f"utterance {utt!r} is not in {utt2spk.path}", segments.path, number)
            rec = seg_times[utt][0]
            if rec not in wav_scp:
                raise InputError(
                    f"utterance {utt!r}: recording {rec!r} is not in {wav_scp.path}", segments.path, number
                )
        used_recordings = {rec for rec, _, _ in seg_times.values()}
        unused_msg = "no utterance in segments uses recording {!r}"
    else:
        used_recordings = set(utt2spk.rows)
        unused_msg = "recording {!r} is not an utterance in utt2spk (and there is no segments file)"
    for rec, (number, _) in wav_scp.rows.items():
        if rec not in used_recordings:
            raise InputError(unused_msg.format(rec), wav_scp.path, number)

    expected_spk2utt: dict[str, list[str]] = {}
    for utt, (_, spk) in utt2spk.rows.items():
        expected_spk2utt.setdefault(spk, []).append(utt)  # rows are C-sorted already
    if spk2utt is not None:
        for spk, (number, value) in spk2utt.rows.items():
            if spk not in expected_spk2utt:
                raise InputError(f"speaker {spk!r} has no utterance in {utt2spk.path}", spk2utt.path, number)
            if value.split() != expected_spk2utt[spk]:
                raise InputError(
                    f"utterances of speaker {spk!r} differ from {utt2spk.path}; rewrite spk2utt from utt2spk "
                    "(python -m asr.data.validate --fix)",
                    spk2utt.path,
                    number,
                )
        for spk, utts in expected_spk2utt.items():
            if spk not in spk2utt:
                number = utt2spk.line(utts[0])
                raise InputError(f"speaker {spk!r} is missing from {spk2utt.path}", utt2spk.path, number)
    if spk2gender is not None:
        for spk, (number, _) in spk2gender.rows.items():
            if spk not in expected_spk2utt:
                raise InputError(f"speaker {spk!r} has no utterance in {utt2spk.path}", spk2gender.path, number)
        for spk, utts in expected_spk2utt.items():
            if spk not in spk2gender:
                raise InputError(
                    f"speaker {spk!r} is missing from {spk2gender.path}", utt2spk.path, utt2spk.line(utts[0])
                )
    if utt2dur is not None:
        for utt, (number, _) in utt2dur.rows.items():
            if utt not in utt2spk:
                raise InputError(f"utterance {utt!r} is not in {utt2spk.path}", utt2dur.path, number)
        for utt, (number, _) in utt2spk.rows.items():
            if utt not in utt2dur:
                raise InputError(f"utterance {utt!r} is missing from {utt2dur.path}", utt2spk.path, number)

    # --- 4. audio
    rec_seconds: dict[str, float] = {}
    sample_rates: Counter[int] = Counter()
    unchecked_pipes = 0
    if check_audio:
        for rec, (number, entry) in wav_scp.rows.items():
            if is_pipe(entry):
                if not run_pipes:
                    unchecked_pipes += 1
                    continue
                samples, rate = read_audio(entry, where=f"{wav_scp.path}:{number}")
                seconds = len(samples) / rate
            else:
                rate, seconds = _audio_header(entry, wav_scp.path, number)
            sample_rates[rate] += 1
            rec_seconds[rec] = seconds
        if segments is not None:
            for utt, (number, _) in segments.rows.items():
                rec, start, end = seg_times[utt]
                if rec not in rec_seconds:
                    continue
                total = rec_seconds[rec]
                if start >= total or end > total + SEGMENT_OVERSHOOT_S:
                    raise InputError(
                        f"segment {start}-{end} s lies outside recording {rec!r} ({total:.3f} s)", segments.path, number
                    )
    else:
        unchecked_pipes = sum(1 for _, entry in wav_scp.rows.values() if is_pipe(entry))

    measured: dict[str, float] = {}
    for utt in utt2spk.rows:
        if segments is not None:
            rec, start, end = seg_times[utt]
            if end >= 0:
                measured[utt] = end - start
            elif rec in rec_seconds:
                measured[utt] = rec_seconds[rec] - start
        elif utt in rec_seconds:
            measured[utt] = rec_seconds[utt]
    if utt2dur is not None:
        for utt, seconds in durations.items():
            audio_seconds = measured.get(utt)
            if audio_seconds is not None and abs(audio_seconds - seconds) > UTT2DUR_TOLERANCE_S:
                raise InputError(
                    f"duration {seconds} s of utterance {utt!r} differs from its audio ({audio_seconds:.3f} s)",
                    utt2dur.path,
                    utt2dur.line(utt),
                )
    if utt2dur is not None:
        total_seconds: float | None = sum(durations.values())
    elif len(measured) == len(utt2spk.rows):
        total_seconds = sum(measured.values())
    else:
        total_seconds = None
    if len(sample_rates) > 1:
        log.warning("%s: recordings at several sample rates: %s", wav_scp.path, dict(sorted(sample_rates.items())))
    return DataDirSummary(
        path=path,
        num_utts=len(utt2spk.rows),
        num_speakers=len(expected_spk2utt),
        num_recordings=len(wav_scp.rows),
        total_seconds=total_seconds,
        sample_rates=dict(sorted(sample_rates.items())),
        num_unchecked_pipes=unchecked_pipes,
    )


def check_text_words(data: DataDir | str | os.PathLike, words: Iterable[str]) -> None:
    """Check that every word of a data directory's transcripts is in ``words`` (e.g. a lexicon's).

    Args:
        data: a :class:`DataDir` or the path of a data directory. Line numbers come from its ``text`` file
            when it has one on disk; for an in-memory DataDir they are those :func:`write_data_dir` would
            write (C-sorted order).
        words: the known words.

    Raises:
        InputError: naming the ``text`` line of the first unknown (OOV) word, in file order.
    """
    vocabulary = words if isinstance(words, (set, frozenset)) else set(words)
    if not isinstance(data, DataDir):
        text_path = Path(data) / "text"
        rows = [(n, utt, v) for n, utt, v in read_table_lines(text_path, allow_empty_value=True)]
    elif data.path is not None and (data.path / "text").is_file():
        text_path = data.path / "text"
        rows = [
            (n, utt, data.text[utt])
            for n, utt, _ in read_table_lines(text_path, allow_empty_value=True)
            if utt in data.text
        ]
    else:
        text_path = Path("text")
        rows = [(n, utt, data.text[utt]) for n, utt in enumerate(c_sorted(data.text), start=1)]
    for number, utt, transcript in rows:
        for word in transcript.split():
            if word not in vocabulary:
                raise InputError(f"word {word!r} of utterance {utt!r} is not in the word list (OOV)", text_path, number)


@dataclass
class FixReport:
    """What :func:`fix_data_dir` did.

    Attributes:
        path: the data directory.
        kept_utts: utterances left.
        dropped_utts: utterance id -> why it was dropped (e.g. ``"missing from text"``, ``"empty transcript"``,
            ``"unreadable audio (...)"``, ``"shorter than 0.3 s (0.21 s)"``).
        dropped_recordings: recording id -> why (no utterance left using it).
        dropped_speakers: speakers left without utterances.
        rewritten_files: names of the files whose content changed (old versions are in ``.backup/``).
        notes: anything else done (a file removed because it no longer covered the utterances, ...).
    """

    path: Path
    kept_utts: int = 0
    dropped_utts: dict[str, str] = field(default_factory=dict)
    dropped_recordings: dict[str, str] = field(default_factory=dict)
    dropped_speakers: list[str] = field(default_factory=list)
    rewritten_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def reason_counts(self) -> dict[str, int]:
        """Dropped utterances per reason kind (the reason up to its first ``" ("``)."""
        return dict(Counter(reason.split(" (")[0] for reason in self.dropped_utts.values()))

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reason_counts().items()))
        text = f"{self.path}: kept {self.kept_utts} utterances, dropped {len(self.dropped_utts)}"
        if counts:
            text += f" ({counts})"
        if self.dropped_recordings:
            text += f", dropped {len(self.dropped_recordings)} recordings"
        if self.dropped_speakers:
            text += f", dropped {len(self.dropped_speakers)} speakers"
        return text


def _read_rows(path: Path, *, allow_empty_value: bool = False) -> dict[str, str]:
    return {key: value for _, key, value in read_table_lines(path, allow_empty_value=allow_empty_value)}


def _table_text(table: Mapping[str, str]) -> str:
    return "".join(f"{key} {table[key]}\n" for key in c_sorted(table))


def fix_data_dir(
    path: str | os.PathLike,
    *,
    min_duration: float | None = None,
    drop_unreadable_audio: bool = False,
    allow_pipes: bool = True,
    run_pipes: bool = False,
) -> FixReport:
    """Make a data directory consistent, like Kaldi's ``utils/fix_data_dir.sh``, and say what was dropped.

    Keeps the utterances present in ``utt2spk``, ``text`` and ``wav.scp`` (or ``segments`` with a recording
    in ``wav.scp``), drops those with an empty transcript, and, when asked, those whose audio cannot be read
    (``drop_unreadable_audio``) or that are shorter than ``min_duration`` seconds (durations from
    ``utt2dur``, ``segments`` or the audio headers; ``cmd |`` entries are run only with ``run_pipes``).
    Then it drops unused recordings and speakers, sorts every file in C order, rewrites ``spk2utt`` and
    validates the result (without audio). Files are written atomically; each rewritten file's previous
    version is kept in ``<dir>/.backup/``, and ``.backup/dropped.txt`` lists ``<utt> <reason>``.

    ``spk2gender`` / ``utt2dur`` are filtered; one that no longer covers every kept speaker / utterance is
    removed (backed up) and noted. Files other than the known ones are left untouched and noted.

    Returns:
        A :class:`FixReport` (also logged).

    Raises:
        InputError: a file that cannot be parsed (bad UTF-8, repeated key, malformed line), a ``cmd |`` entry
            when ``allow_pipes`` is False, or a problem fixing cannot solve (e.g. an utterance id not
            prefixed by its speaker id).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError("data directory does not exist", path)
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise InputError(f"missing {name}", path)
    report = FixReport(path)
    utt2spk = _read_rows(path / "utt2spk")
    text = _read_rows(path / "text", allow_empty_value=True)
    wav_rows = read_table_lines(path / "wav.scp")
    wav_scp = {rec: entry for _, rec, entry in wav_rows}
    wav_lines = {rec: number for number, rec, _ in wav_rows}
    if not pipes_allowed(allow_pipes):
        for number, rec, entry in wav_rows:
            if is_pipe(entry):
                raise InputError(f"recording {rec!r}: {refused_pipe_message(entry)}", path / "wav.scp", number)
    segments: dict[str, str] | None = None
    seg_times: dict[str, tuple[str, float, float]] = {}
    if (path / "segments").is_file():
        segments = {}
        for number, utt, value in read_table_lines(path / "segments"):
            segments[utt] = value
            seg_times[utt] = _parse_segment(value, path / "segments", number)
    spk2gender = _read_rows(path / "spk2gender") if (path / "spk2gender").is_file() else None
    utt2dur: dict[str, str] | None = None
    durations: dict[str, float] = {}
    if (path / "utt2dur").is_file():
        utt2dur = {}
        for number, utt, value in read_table_lines(path / "utt2dur"):
            utt2dur[utt] = value
            durations[utt] = _parse_duration(value, path / "utt2dur", number)

    # utterances and why each one goes
    all_utts = set(utt2spk) | set(text) | (set(segments) if segments is not None else set(wav_scp))
    dropped: dict[str, str] = {}
    for utt in c_sorted(all_utts):
        missing = [name for name, table in (("utt2spk", utt2spk), ("text", text)) if utt not in table]
        if segments is not None:
            if utt not in segments:
                missing.append("segments")
            elif seg_times[utt][0] not in wav_scp:
                missing.append(f"wav.scp (recording {seg_times[utt][0]})")
        elif utt not in wav_scp:
            missing.append("wav.scp")
        if missing:
            dropped[utt] = "missing from " + ", ".join(missing)
        elif not text[utt].strip():
            dropped[utt] = "empty transcript"
    kept = [u for u in c_sorted(all_utts) if u not in dropped]

    if drop_unreadable_audio or min_duration is not None:
        rec_seconds: dict[str, float] = {}
        bad_recordings: dict[str, str] = {}
        if drop_unreadable_audio:
            needed = {seg_times[u][0] for u in kept} if segments is not None else set(kept)
        else:  # only the recordings whose utterance durations are not known otherwise
            needed = {
                seg_times[u][0] if segments is not None else u
                for u in kept
                if u not in durations and not (segments is not None and seg_times[u][2] >= 0)
            }
        for rec in c_sorted(needed):
            entry = wav_scp[rec]
            if is_pipe(entry) and not run_pipes:
                continue
            try:
                if is_pipe(entry):
                    samples, rate = read_audio(entry, where=f"{path / 'wav.scp'}:{wav_lines[rec]}")
                    rec_seconds[rec] = len(samples) / rate
                else:
                    rec_seconds[rec] = _audio_header(entry, path / "wav.scp", wav_lines[rec])[1]
            except InputError as e:
                if not drop_unreadable_audio:
                    raise
                bad_recordings[rec] = e.message
        still_kept = []
        unknown_duration = 0
        for utt in kept:
            rec = seg_times[utt][0] if segments is not None else utt
            if rec in bad_recordings:
                dropped[utt] = f"unreadable audio ({bad_recordings[rec]})"
                continue
            if min_duration is not None:
                if utt in durations:
                    seconds: float | None = durations[utt]
                elif segments is not None and seg_times[utt][2] >= 0:
                    seconds = seg_times[utt][2] - seg_times[utt][1]
                elif rec in rec_seconds:
                    seconds = rec_seconds[rec] - (seg_times[utt][1] if segments is not None else 0.0)
                else:
                    seconds = None
                if seconds is None:
                    unknown_duration += 1
                elif seconds < min_duration:
                    dropped[utt] = f"shorter than {min_duration:g} s ({seconds:.3f} s)"
                    continue
            still_kept.append(utt)
        kept = still_kept
        if unknown_duration:
            report.notes.append(
                f"{unknown_duration} utterances of unknown duration (pipe entries not run) kept despite min_duration"
            )

    keep = set(kept)
    new_utt2spk = {u: utt2spk[u] for u in kept}
    new_text = {u: text[u] for u in kept}
    speakers = set(new_utt2spk.values())
    report.dropped_speakers = c_sorted(set(utt2spk.values()) - speakers)
    new_segments = None if segments is None else {u: segments[u] for u in kept}
    used_recordings = {seg_times[u][0] for u in kept} if segments is not None else keep
    new_wav_scp = {r: e for r, e in wav_scp.items() if r in used_recordings}
    for rec in c_sorted(set(wav_scp) - used_recordings):
        report.dropped_recordings[rec] = "no utterance left uses it"
    new_spk2utt: dict[str, str] = {}
    for utt in kept:
        new_spk2utt.setdefault(new_utt2spk[utt], "")
        new_spk2utt[new_utt2spk[utt]] += (" " if new_spk2utt[new_utt2spk[utt]] else "") + utt
    new_files: dict[str, str | None] = {
        "utt2spk": _table_text(new_utt2spk),
        "text": _table_text(new_text),
        "wav.scp": _table_text(new_wav_scp),
        "spk2utt": _table_text(new_spk2utt),
    }
    if new_segments is not None:
        new_files["segments"] = _table_text(new_segments)
    if spk2gender is not None:
        missing_spk = speakers - set(spk2gender)
        if missing_spk:
            report.notes.append(
                f"spk2gender removed: {len(missing_spk)} speakers had no gender (e.g. {min(missing_spk)})"
            )
            new_files["spk2gender"] = None
        else:
            new_files["spk2gender"] = _table_text({s: g for s, g in spk2gender.items() if s in speakers})
    if utt2dur is not None:
        missing_dur = keep - set(utt2dur)
        if missing_dur:
            report.notes.append(
                f"utt2dur removed: {len(missing_dur)} utterances had no duration (e.g. {min(missing_dur)})"
            )
            new_files["utt2dur"] = None
        else:
            new_files["utt2dur"] = _table_text({u: d for u, d in utt2dur.items() if u in keep})
    others = sorted(p.name for p in path.iterdir() if p.is_file() and p.name not in KNOWN_FILES)
    if others:
        report.notes.append(f"left untouched (not known to fix_data_dir): {', '.join(others)}")

    report.dropped_utts = {u: dropped[u] for u in c_sorted(dropped)}
    report.kept_utts = len(kept)
    backup = path / ".backup"
    for name, content in new_files.items():
        target = path / name
        old = target.read_bytes() if target.is_file() else None
        new = None if content is None else content.encode("utf-8")
        if old == new:
            continue
        if old is not None:
            backup.mkdir(exist_ok=True)
            with atomic_write(backup / name, "wb") as f:
                f.write(old)
        if new is None:
            target.unlink()
        else:
            with atomic_write(target, "wb") as f:
                f.write(new)
        report.rewritten_files.append(name)
    if dropped:
        backup.mkdir(exist_ok=True)
        with atomic_write(backup / "dropped.txt") as f:
            for utt, reason in report.dropped_utts.items():
                f.write(f"{utt} {reason}\n")
    _log_report(report)
    validate_data_dir(path, check_audio=False, allow_pipes=allow_pipes)
    return report


def _log_report(report: FixReport, max_ids: int = 20) -> None:
    log.info("%s", report)
    by_reason: dict[str, list[str]] = {}
    for utt, reason in report.dropped_utts.items():
        by_reason.setdefault(reason.split(" (")[0], []).append(utt)
    for reason, utts in sorted(by_reason.items()):
        more = f" ... and {len(utts) - max_ids} more (all in .backup/dropped.txt)" if len(utts) > max_ids else ""
        log.warning(
            "%s: dropped %d utterances, %s: %s%s", report.path, len(utts), reason, " ".join(utts[:max_ids]), more
        )
    if report.dropped_recordings:
        log.warning("%s: dropped %d unused recordings", report.path, len(report.dropped_recordings))
    if report.dropped_speakers:
        log.warning(
            "%s: dropped %d speakers left without utterances: %s",
            report.path,
            len(report.dropped_speakers),
            " ".join(report.dropped_speakers),
        )
    for note in report.notes:
        log.warning("%s: %s", report.path, note)
    if report.rewritten_files:
        log.info("%s: rewrote %s (old versions in .backup/)", report.path, " ".join(report.rewritten_files))


def main(argv: list[str] | None = None) -> int:
    """CLI: validate (default) or fix (``--fix``) data directories; exit status 1 on the first problem."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.data.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", nargs="+", type=Path, help="data directories")
    parser.add_argument("--fix", action="store_true", help="fix (like fix_data_dir.sh) instead of only checking")
    parser.add_argument("--no-audio", action="store_true", help="do not read audio headers")
    parser.add_argument("--no-pipes", action="store_true", help="refuse 'cmd |' entries in wav.scp (untrusted data)")
    parser.add_argument("--run-pipes", action="store_true", help="run 'cmd |' entries to check their audio")
    parser.add_argument("--min-duration", type=float, default=None, help="with --fix: drop utterances shorter (s)")
    parser.add_argument("--drop-unreadable-audio", action="store_true", help="with --fix: drop unreadable audio")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        for data_dir in args.data_dirs:
            if args.fix:
                fix_data_dir(
                    data_dir,
                    min_duration=args.min_duration,
                    drop_unreadable_audio=args.drop_unreadable_audio,
                    allow_pipes=not args.no_pipes,
                    run_pipes=args.run_pipes,
                )
            summary = validate_data_dir(
                data_dir, check_audio=not args.no_audio, allow_pipes=not args.no_pipes, run_pipes=args.run_pipes
            )
            print(f"OK {summary}")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
