"""Compute a data directory's features into an HDF5 archive (read wav, extract, CMVN, deltas, write).

Command line::

    python -m asr.features.compute --data data/an4/train --type fbank|mfcc [--cmvn speaker|utterance|none]
        [--norm-vars] [--delta-order 0] [--jobs N] [--backend knf|torchaudio --device cuda]
        [--skip-bad] [--compression gzip|lzf] [--force] [--out data/an4/train/fbank.h5]
        [--part-frames 500000] [--part-seconds 60]

Utterances are read and extracted in parallel worker processes (``--jobs``, all cores by default) and
written in utterance order by the main process, which also applies CMVN: per speaker by default (a
speaker's utterances are contiguous because utterance ids start with the speaker id), per utterance, or
none. The archive is written under a temporary name and renamed when complete, so an interrupted run
leaves no archive behind. An existing complete archive made from the same data dir content with the same
options is kept (a log line says so); ``--force`` recomputes it.

Resuming: while it runs, the main process also saves the utterances done so far as *parts*,
``.<archive name>.parts/part-00000.h5``, ``part-00001.h5``, ... beside the archive: small archives, each written
atomically, holding the extracted features (before CMVN and deltas) of the utterances since the previous part,
those skipped (with their errors) and the audio samples read, with the archive's attributes as a key. A part is
saved every ``--part-frames`` frames (default 500000, about 1.4 h of audio; 0 = no parts) or ``--part-seconds`` of
wall time (default 60), whichever comes first, and when bad audio stops the run. A run started again (without
``--force``, the archive not up to date) replays the parts in order, so CMVN and deltas are computed as if it had
never stopped, and extracts only the remaining utterances ("resuming <archive> from N part(s): U utterances
done"); the archive equals, dataset by dataset and attribute by attribute, that of an uninterrupted run. A part
made from other data or options, a corrupt one, or one after a gap ends the reuse: it and the later ones are
deleted (logged) and redone. The parts directory is deleted once the archive is in place (and by ``--force``).
A part that cannot be written (a full disk) is logged and the run goes on without parts.
With ``--backend torchaudio`` the remaining utterances are batched differently from an uninterrupted run, which
may change the last bits of their features.

Bad audio (missing, unreadable, empty, shorter than one window) stops the run with an
:class:`~asr.errors.InputError` naming the wav.scp entry, or with ``--skip-bad`` the utterance is left
out, logged, counted (attribute ``num_skipped``) and listed (dataset ``/skipped_utt_ids``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.atomic import write_failure_errno
from asr.data.audio import read_audio
from asr.data.datadir import DataDir, read_data_dir
from asr.errors import AsrError, ConfigError, InputError, WriteError
from asr.features.archive import COMPRESSIONS, ArchiveWriter, FeatureArchive, base_attrs
from asr.features.cmvn import CMVN_KINDS, apply_cmvn, check_cmvn_kind, cmvn_groups, cmvn_stats
from asr.features.deltas import add_deltas
from asr.features.extract import BACKENDS, KnfExtractor, make_extractor
from asr.features.options import FEATURE_TYPES, FeatureOptions
from asr.logging_setup import setup_logging

log = logging.getLogger("asr.features.compute")

# attributes that must agree for an existing archive to be kept
_IDENTITY_ATTRS = (
    "format_version",
    "feature_type",
    "options",
    "cmvn",
    "cmvn_norm_vars",
    "delta_order",
    "delta_window",
    "source_fingerprint",
)


def default_jobs() -> int:
    """Number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def data_fingerprint(data: DataDir) -> str:
    """SHA-256 of what decides the features: wav.scp, segments and utt2spk (as sorted key/value pairs).

    It does not cover the audio files' contents: after changing audio in place, recompute with ``force``.
    """
    digest = hashlib.sha256()
    tables = [("wav.scp", data.wav_scp), ("utt2spk", data.utt2spk)]
    if data.segments is not None:
        tables.append(("segments", {u: f"{s.recording} {s.start!r} {s.end!r}" for u, s in data.segments.items()}))
    for name, table in tables:
        digest.update(f"[{name}]\n".encode())
        for key in sorted(table, key=lambda k: k.encode("utf-8")):
            digest.update(f"{key} {table[key]}\n".encode())
    return digest.hexdigest()


def detect_sample_rate(data: DataDir, allow_pipes: bool = True, skip_bad: bool = False) -> int:
    """Sample rate of the data dir's first utterance (read from its audio); with ``skip_bad``, of the first
    whose audio can be read."""
    utts = data.utt_ids
    if not utts:
        raise InputError("data directory has no utterances", data.path)
    for utt in utts:
        entry, start, end, where = data.audio_source(utt)
        try:
            _, rate = read_audio(entry, None, where=where, allow_pipes=allow_pipes, start=start, end=end)
        except InputError:
            if not skip_bad:
                raise
            continue  # logged and counted when the features are computed
        return int(rate)
    raise InputError(f"no utterance could be read ({len(utts)} tried)", data.path)


# -- worker side ------------------------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(data: DataDir, options: FeatureOptions, allow_pipes: bool, extract: bool) -> None:
    _worker.clear()
    _worker.update(
        data=data,
        options=options,
        allow_pipes=allow_pipes,
        extractor=KnfExtractor(options) if extract else None,
    )


def _process_utterance(utt: str) -> tuple[str, np.ndarray | None, InputError | None, int]:
    """Read one utterance and (knf backend) extract its features.

    Returns ``(utt, feats or samples or None, error or None, num_samples)``.
    """
    data: DataDir = _worker["data"]
    options: FeatureOptions = _worker["options"]
    try:
        samples = data.load_audio(utt, options.sample_rate, allow_pipes=_worker["allow_pipes"])
    except InputError as e:
        return utt, None, e, 0
    if options.num_frames(samples.size) == 0:
        where = data.audio_source(utt)[3]
        error = InputError(
            f"utterance {utt!r}: {samples.size} samples ({samples.size / options.sample_rate:.3f} s) are shorter "
            f"than one {options.frame_length_ms:g} ms window",
            where,
        )
        return utt, None, error, samples.size
    extractor = _worker["extractor"]
    payload = extractor.compute(samples) if extractor is not None else samples
    return utt, payload, None, samples.size


def _start_method() -> str:
    """``fork`` (fast start) on Linux unless torch is loaded (its threads do not survive a fork); else ``spawn``."""
    return "fork" if sys.platform == "linux" and "torch" not in sys.modules else "spawn"


def _processed(
    data: DataDir, utts: Sequence[str], options: FeatureOptions, jobs: int, allow_pipes: bool, extract: bool
) -> Iterator[tuple[str, np.ndarray | None, InputError | None, int]]:
    """Results of :func:`_process_utterance` for ``utts``, in order, from ``jobs`` processes.

    A worker that dies (killed, out of memory) raises :class:`AsrError` here instead of hanging; when
    the caller stops early (an error), queued utterances are cancelled.
    """
    if jobs <= 1:
        _init_worker(data, options, allow_pipes, extract)
        try:
            yield from map(_process_utterance, utts)
        finally:
            _worker.clear()
        return
    chunksize = max(1, min(16, len(utts) // (jobs * 8)))
    context = multiprocessing.get_context(_start_method())
    executor = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(data, options, allow_pipes, extract)
    )
    try:
        yield from executor.map(_process_utterance, utts, chunksize=chunksize)
    except BrokenProcessPool as e:
        raise AsrError(f"a feature worker process died (killed, or out of memory?): {e}") from e
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _batched_on_device(results, extractor, batch_size: int):
    """Turn ``(utt, samples, error, n)`` results into ``(utt, feats, error, n)`` with batched extraction."""
    pending: list = []

    def flush():
        good = [r for r in pending if r[2] is None]
        feats = iter(extractor.compute_batch([r[1] for r in good]))
        for utt, _samples, error, n in pending:
            yield utt, (next(feats) if error is None else None), error, n
        pending.clear()

    for result in results:
        pending.append(result)
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


# -- main side --------------------------------------------------------------------------------------------


def _existing_archive_matches(out: Path, attrs: dict) -> tuple[bool, str]:
    """Whether ``out`` is a complete archive with the same identity attributes; and why not."""
    if not out.exists():
        return False, "no archive yet"
    try:
        with FeatureArchive(out) as archive:
            for key in _IDENTITY_ATTRS:
                if archive.attrs.get(key) != attrs.get(key):
                    return False, f"attribute {key!r} differs"
            skipped = int(archive.attrs.get("num_skipped", 0))
            note = f", {skipped} skipped when it was written" if skipped else ""
            return True, f"{len(archive)} utterances, {archive.num_frames} frames{note}"
    except InputError as e:
        return False, f"the existing file is not a valid archive ({e.message})"


# -- parts: what a killed run had done ------------------------------------------------------------------

PART_FRAMES = 500_000  # default frames per part (about 1.4 h of audio at 100 frames/s)
PART_SECONDS = 60.0  # default wall time between parts


def parts_dir(out: str | os.PathLike) -> Path:
    """The directory holding the parts of the archive ``out`` while it is written: ``.<name>.parts`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


def _part_path(directory: Path, index: int) -> Path:
    return directory / f"part-{index:05d}.h5"


class _BadPart(Exception):
    """A part that cannot be reused (the message says why)."""


class _PartDiscarded(Exception):
    """Thrown into an unfinished part's writer to delete its temporary file."""


class _PartWriter:
    """Saves the utterances processed since the previous part (features before CMVN and deltas, skipped ones
    with their errors, audio samples read) as the next part, every ``part_frames`` frames or ``part_seconds``
    of wall time; ``part_frames`` 0 saves nothing. A part that cannot be written (a full disk) is logged and the
    run goes on without parts: they only save time."""

    def __init__(
        self, directory: Path, dim: int, attrs: Mapping, index: int, first: int, part_frames: int, part_seconds: float
    ):
        self.directory = directory
        self.dim = dim
        self.attrs = dict(attrs)
        self.index = index
        self.first = first
        self.part_frames = part_frames
        self.part_seconds = part_seconds
        self._writer: ArchiveWriter | None = None
        self._reset()

    def _reset(self) -> None:
        self._skipped: list[tuple[str, InputError]] = []
        self._covered = 0
        self._samples = 0
        self._since: float | None = None

    def _open(self) -> ArchiveWriter:
        if self._writer is None:
            attrs = dict(self.attrs, part_index=self.index, part_first=self.first)
            writer = ArchiveWriter(_part_path(self.directory, self.index), self.dim, attrs)
            self._writer = writer.__enter__()
        return self._writer

    def add(self, utt: str, feats: np.ndarray | None, error: InputError | None, num_samples: int) -> None:
        """Record one utterance (its features, or the error it was skipped for); saves a part when it is due."""
        if self.part_frames <= 0:
            return
        try:
            self._add(utt, feats, error, num_samples)
        except (WriteError, OSError, RuntimeError) as e:
            if not isinstance(e, WriteError) and not write_failure_errno(e)[0]:
                raise
            log.warning("cannot save part %d in %s (%s); going on without parts", self.index, self.directory, e)
            self.discard()
            self.part_frames = 0

    def _add(self, utt: str, feats: np.ndarray | None, error: InputError | None, num_samples: int) -> None:
        if self._since is None:
            self._since = time.monotonic()
        if error is not None:
            self._skipped.append((utt, error))
        else:
            self._open().append(utt, feats)
        self._covered += 1
        self._samples += int(num_samples)
        frames = self._writer.num_frames if self._writer is not None else 0
        if frames >= self.part_frames or (
            self.part_seconds > 0 and time.monotonic() - self._since >= self.part_seconds
        ):
            self.save()

    def save(self) -> None:
        """Save the utterances recorded since the previous part (if any) as the next part."""
        if self._covered == 0:
            return
        writer = self._open()
        self._writer = None
        writer.attrs.update(
            part_end=self.first + self._covered,
            part_total_samples=self._samples,
            part_skipped=json.dumps([[e.message, e.path, e.line] for _, e in self._skipped]),
        )
        writer.set_skipped([utt for utt, _ in self._skipped])
        writer.__exit__(None, None, None)
        self.index += 1
        self.first += self._covered
        self._reset()

    def discard(self) -> None:
        """Drop the unfinished part (its temporary file is deleted)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            error = _PartDiscarded()
            # after a failed write (full disk) deleting the temporary file may raise again: not an error to report
            with contextlib.suppress(AsrError, OSError, RuntimeError):
                writer.__exit__(_PartDiscarded, error, None)
        self._reset()


def _check_part(
    path: Path, index: int, first: int, attrs: Mapping, utts: Sequence[str], dim: int, skip_bad: bool
) -> tuple[int, int]:
    """Check that a part continues the previous ones: same attributes, the utterances from position ``first``
    on, readable features (checksums). Returns ``(end, samples)``: the position after its last utterance and
    the audio samples it read. Raises :class:`_BadPart` saying why not."""
    try:
        with FeatureArchive(path) as part:
            for key, value in attrs.items():
                if key != "num_skipped" and part.attrs.get(key) != value:
                    raise _BadPart(f"made from other data or options (attribute {key!r} differs)")
            if part.attrs.get("part_index") != index or part.attrs.get("part_first") != first:
                raise _BadPart(f"it does not follow part {index - 1} (position {first})")
            end = part.attrs.get("part_end")
            if not isinstance(end, int) or not first < end <= len(utts) or part.dim != dim:
                raise _BadPart("its extent or dimension is wrong")
            skipped = part.skipped_utt_ids
            errors = json.loads(part.attrs["part_skipped"])
            covered = utts[first:end]
            skipped_set = set(skipped)
            if (
                not isinstance(errors, list)
                or len(errors) != len(skipped)
                or [u for u in covered if u not in skipped_set] != part.utt_ids
                or [u for u in covered if u in skipped_set] != skipped
            ):
                raise _BadPart("it holds other utterances than the data dir's")
            if skipped and not skip_bad:
                raise _BadPart(f"it skipped {len(skipped)} utterance(s) with bad audio (made with skip_bad)")
            part.read_all()  # every chunk's checksum
            return end, int(part.attrs["part_total_samples"])
    except (AsrError, OSError, ValueError, TypeError, KeyError) as e:
        raise _BadPart(str(e)) from e


def _reusable_parts(
    directory: Path, attrs: Mapping, utts: Sequence[str], dim: int, skip_bad: bool
) -> tuple[list[tuple[Path, int, int]], int]:
    """The parts in ``directory`` that continue each other from the first utterance, as ``(path, first, end)``,
    and the audio samples they read. The other parts (after a bad one or a gap) are deleted, with a log line."""
    if not directory.is_dir():
        return [], 0
    reused: list[tuple[Path, int, int]] = []
    samples, first, why = 0, 0, None
    while first < len(utts):
        path = _part_path(directory, len(reused))
        if not path.exists():
            break
        try:
            end, part_samples = _check_part(path, len(reused), first, attrs, utts, dim, skip_bad)
        except _BadPart as e:
            why = f"{path.name}: {e}"
            break
        reused.append((path, first, end))
        samples += part_samples
        first = end
    keep = {path for path, _, _ in reused}
    others = sorted(p for p in directory.glob("part-*.h5") if p not in keep)
    if others:
        if why is None:
            why = f"{_part_path(directory, len(reused)).name} is missing" if first < len(utts) else "past the end"
        log.info("discarding %d part(s) of an earlier run in %s (%s); redoing them", len(others), directory, why)
        for path in others:
            path.unlink(missing_ok=True)
    return reused, samples


def _replay_parts(
    parts: Sequence[tuple[Path, int, int]], utts: Sequence[str]
) -> Iterator[tuple[str, np.ndarray | None, InputError | None, int]]:
    """The results saved in ``parts`` as :func:`_processed` gave them (samples are counted elsewhere)."""
    for path, first, end in parts:
        with FeatureArchive(path) as part:
            errors = dict(zip(part.skipped_utt_ids, json.loads(part.attrs["part_skipped"])))
            feats = part.read_all()
            offsets = part.offsets
            index = 0
            for utt in utts[first:end]:
                if utt in errors:
                    yield utt, None, InputError(*errors[utt]), 0
                else:
                    yield utt, feats[offsets[index] : offsets[index + 1]], None, 0
                    index += 1


def _save_part_before_error(parts: _PartWriter, out: Path) -> None:
    """Save the utterances done since the last part before bad audio stops the run (a rerun, once the audio is
    fixed, starts at the bad utterance); a failure to save is logged, not raised over the audio's error."""
    try:
        parts.save()
    except Exception as e:  # noqa: BLE001 (the audio error is the one to report)
        log.warning("could not save the utterances done for %s: %s", out, e)


def compute_features(
    data_dir: str | os.PathLike | DataDir,
    out: str | os.PathLike | None = None,
    options: FeatureOptions | str = "fbank",
    *,
    cmvn: str = "speaker",
    norm_vars: bool = False,
    delta_order: int = 0,
    delta_window: int = 2,
    jobs: int | None = None,
    backend: str = "knf",
    device: str = "cpu",
    batch_size: int = 64,
    skip_bad: bool = False,
    compression: str | None = None,
    allow_pipes: bool = True,
    force: bool = False,
    progress: bool | None = None,
    part_frames: int = PART_FRAMES,
    part_seconds: float = PART_SECONDS,
) -> Path:
    """Compute features for every utterance of a data dir into an HDF5 archive.

    Args:
        data_dir: a data directory (path or :class:`DataDir` read from one).
        out: the archive; default ``<data_dir>/<type>.h5``.
        options: :class:`FeatureOptions`, or a feature type (``"fbank"``/``"mfcc"``) for its defaults at the
            sample rate of the data's first utterance.
        cmvn: ``"speaker"``, ``"utterance"`` or ``"none"``; norm_vars: also normalize variances.
        delta_order, delta_window: append deltas (Kaldi ``add-deltas``) after CMVN; 0 = none.
        jobs: worker processes (default: all cores; 1 = no pool).
        backend: ``"knf"`` (kaldi-native-fbank in the workers) or ``"torchaudio"`` (workers read audio, the
            main process extracts batches of ``batch_size`` utterances on ``device``).
        skip_bad: leave out utterances whose audio is bad (logged, counted, listed) instead of failing.
        compression: None, ``"gzip"`` or ``"lzf"`` for ``/feats``.
        allow_pipes: allow ``command |`` entries in wav.scp.
        force: recompute even if an archive with the same data and options exists (and ignore the parts of an
            interrupted run).
        progress: show a progress bar (default: when stderr is a terminal).
        part_frames, part_seconds: save the work done as a part every ``part_frames`` frames or ``part_seconds``
            of wall time (0: never), so that a run killed on the way resumes from there (module docstring).

    Returns:
        the archive's path.

    Raises:
        InputError: bad audio (without ``skip_bad``), an inconsistent data dir, no usable utterance.
        ConfigError: bad options.
    """
    data = data_dir if isinstance(data_dir, DataDir) else read_data_dir(data_dir)
    check_cmvn_kind(cmvn)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if compression not in COMPRESSIONS:
        raise ConfigError(f"compression must be one of {COMPRESSIONS[1:]} or None, not {compression!r}")
    if delta_order < 0 or delta_window < 1:
        raise ConfigError("delta_order must be >= 0 and delta_window >= 1")
    if part_frames < 0 or part_seconds < 0:
        raise ConfigError("part_frames and part_seconds must be >= 0")
    if isinstance(options, str):
        options = FeatureOptions(type=options, sample_rate=detect_sample_rate(data, allow_pipes, skip_bad))
    if out is None:
        if data.path is None:
            raise ConfigError("give an output path for a DataDir that was not read from disk")
        out = data.path / f"{options.type}.h5"
    out = Path(out)
    utts = data.utt_ids
    if not utts:
        raise InputError("data directory has no utterances", data.path)
    utt2spk_path = data.path / "utt2spk" if data.path else None
    groups = cmvn_groups(utts, data.utt2spk, cmvn, utt2spk_path)
    group_of = {}
    for key, first, end in groups:
        for i in range(first, end):
            group_of[utts[i]] = key
    attrs = base_attrs(
        options.type,
        options,
        source=str(data.path.resolve()) if data.path else "<in memory>",
        cmvn=cmvn,
        cmvn_norm_vars=norm_vars,
        delta_order=delta_order,
        delta_window=delta_window,
        source_fingerprint=data_fingerprint(data),
        backend=backend,
    )
    part_dir = parts_dir(out)
    reused: list[tuple[Path, int, int]] = []
    done = resumed_samples = 0
    if not force:
        matches, why = _existing_archive_matches(out, attrs)
        if matches:
            log.info("%s is up to date (%s); kept it (force=True / --force recomputes)", out, why)
            shutil.rmtree(part_dir, ignore_errors=True)  # left by a run killed right after the rename
            return out
        if out.exists():
            log.info("recomputing %s: %s", out, why)
        reused, resumed_samples = _reusable_parts(part_dir, attrs, utts, options.dim, skip_bad)
        done = reused[-1][2] if reused else 0
        if reused:
            log.info("resuming %s from %d part(s): %d utterances done", out, len(reused), done)
    elif part_dir.exists():
        log.info("force: discarding the parts of an earlier run in %s", part_dir)
        shutil.rmtree(part_dir, ignore_errors=True)
    remaining = utts[done:]

    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    jobs = max(1, min(jobs, len(remaining)))
    if progress is None:
        progress = sys.stderr.isatty()
    dim = options.dim * (delta_order + 1)
    on_device = backend == "torchaudio"
    log.info(
        "computing %s (dim %d, cmvn %s%s) for %d utterances of %s with %d process(es), backend %s%s -> %s",
        options.type,
        dim,
        cmvn,
        "+vars" if norm_vars and cmvn != "none" else "",
        len(remaining),
        data.path,
        jobs,
        backend,
        f" on {device}" if on_device else "",
        out,
    )
    started = time.perf_counter()
    processed = _processed(data, remaining, options, jobs, allow_pipes, extract=not on_device)
    results = processed
    if on_device:
        results = _batched_on_device(processed, make_extractor(options, backend, device), batch_size)

    skipped: list[str] = []
    stats_keys: list[str] = []
    stats_list: list[np.ndarray] = []
    utt_group: list[int] = []
    pending: list[tuple[str, np.ndarray]] = []
    pending_key: str | None = None
    total_samples = resumed_samples
    parts = _PartWriter(part_dir, options.dim, attrs, len(reused), done, part_frames, part_seconds)

    def flush(writer: ArchiveWriter) -> None:
        if not pending:
            return
        feats = np.concatenate([f for _, f in pending]) if len(pending) > 1 else pending[0][1]
        lengths = [f.shape[0] for _, f in pending]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        if cmvn != "none":
            stats = cmvn_stats(feats)
            feats = apply_cmvn(feats, stats, norm_vars)
            utt_group.extend([len(stats_keys)] * len(pending))
            stats_keys.append(pending_key)
            stats_list.append(stats)
        if delta_order > 0:
            feats = add_deltas(feats, offsets, delta_order, delta_window)
        for (utt, _), first, end in zip(pending, offsets[:-1], offsets[1:]):
            writer.append(utt, feats[first:end])
        pending.clear()

    try:
        with ArchiveWriter(out, dim, attrs, compression=compression) as writer:
            with tqdm(total=len(utts), unit="utt", disable=not progress, desc=out.name) as bar:
                # the parts' results first (as computed then), then the remaining utterances'
                for position, (utt, feats, error, num_samples) in enumerate(
                    itertools.chain(_replay_parts(reused, utts), results)
                ):
                    bar.update(1)
                    fresh = position >= done
                    if error is not None:
                        if not skip_bad:
                            _save_part_before_error(parts, out)
                            raise error
                        log.warning("skipping utterance %s: %s", utt, error)
                        skipped.append(utt)
                        if fresh:
                            parts.add(utt, None, error, num_samples)
                        continue
                    total_samples += num_samples
                    key = group_of.get(utt, utt)
                    if key != pending_key:
                        flush(writer)
                        pending_key = key
                    pending.append((utt, feats))
                    if fresh:
                        parts.add(utt, feats, None, num_samples)
                flush(writer)
                parts.discard()  # the archive is complete: the unsaved rest of a part is not needed
            if not writer.utt_ids:
                raise InputError(f"no utterance could be read ({len(skipped)} skipped)", data.path)
            if cmvn != "none":
                writer.set_cmvn_stats(stats_keys, np.stack(stats_list), utt_group)
            writer.set_skipped(skipped)
            num_utts, num_frames = len(writer.utt_ids), writer.num_frames
        shutil.rmtree(part_dir, ignore_errors=True)  # the archive is in place
    finally:  # stop the workers now, also on an error (not when the traceback is freed)
        parts.discard()
        with contextlib.suppress(OSError):
            part_dir.rmdir()  # when no part was saved
        results.close()
        processed.close()
    seconds = time.perf_counter() - started
    audio_seconds = total_samples / options.sample_rate  # the resumed parts' audio included
    log.info(
        "wrote %s: %d utterances, %d frames, %.1f s of audio in %.1f s (%.0fx real time)",
        out,
        num_utts,
        num_frames,
        audio_seconds,
        seconds,
        audio_seconds / max(seconds, 1e-9),
    )
    if skipped:
        log.warning(
            "skipped %d utterance(s) with bad audio: %s%s",
            len(skipped),
            " ".join(skipped[:20]),
            " ..." if len(skipped) > 20 else "",
        )
    return out


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m asr.features.compute",
        description="Compute fbank or MFCC features of a data directory into an HDF5 archive.",
    )
    parser.add_argument("--data", required=True, help="data directory (wav.scp, utt2spk, ...)")
    parser.add_argument("--type", choices=FEATURE_TYPES, default="fbank", help="feature type (default fbank)")
    parser.add_argument("--cmvn", choices=CMVN_KINDS, default="speaker", help="CMVN kind (default speaker)")
    parser.add_argument("--norm-vars", action="store_true", help="also normalize variances")
    parser.add_argument("--delta-order", type=int, default=0, help="append deltas up to this order (default 0)")
    parser.add_argument("--delta-window", type=int, default=2, help="delta window N (default 2)")
    parser.add_argument("--sample-rate", type=int, help="sample rate (default: the first utterance's)")
    parser.add_argument("--num-bins", type=int, help="mel bins (default 40 fbank, 23 mfcc)")
    parser.add_argument("--num-ceps", type=int, default=13, help="cepstra (mfcc, default 13)")
    parser.add_argument("--dither", type=float, default=0.0, help="dither (default 0: deterministic)")
    parser.add_argument(
        "--use-energy",
        choices=("true", "false"),
        help="log energy instead of C0 (mfcc) / extra energy bin (fbank); default false",
    )
    parser.add_argument("--jobs", type=int, help=f"worker processes (default: all cores, {default_jobs()} here)")
    parser.add_argument("--backend", choices=BACKENDS, default="knf", help="extractor (default knf)")
    parser.add_argument("--device", default="cpu", help="torch device for --backend torchaudio (default cpu)")
    parser.add_argument("--batch-size", type=int, default=64, help="utterances per torchaudio batch")
    parser.add_argument("--skip-bad", action="store_true", help="skip utterances with bad audio (logged)")
    parser.add_argument("--compression", choices=("gzip", "lzf"), help="compress /feats")
    parser.add_argument("--no-pipes", action="store_true", help="refuse 'command |' entries in wav.scp")
    parser.add_argument("--force", action="store_true", help="recompute even if the archive is up to date")
    parser.add_argument("--out", help="output archive (default <data>/<type>.h5)")
    parser.add_argument(
        "--part-frames",
        type=int,
        default=PART_FRAMES,
        help=f"save the work done every N frames, to resume from after a kill (default {PART_FRAMES}; 0 = never)",
    )
    parser.add_argument(
        "--part-seconds",
        type=float,
        default=PART_SECONDS,
        help=f"... or every N seconds of wall time, whichever comes first (default {PART_SECONDS:g}; 0 = never)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 with a one-line message on bad input)."""
    args = _parse_args(argv)
    setup_logging(args.verbose)
    try:
        data = read_data_dir(args.data)
        rate = args.sample_rate or detect_sample_rate(data, not args.no_pipes, args.skip_bad)
        options = FeatureOptions(type=args.type, sample_rate=rate, num_bins=args.num_bins, dither=args.dither)
        if args.type == "mfcc":
            options = replace(options, num_ceps=args.num_ceps)
        if args.use_energy is not None:
            options = replace(options, use_energy=args.use_energy == "true")
        compute_features(
            data,
            args.out,
            options,
            cmvn=args.cmvn,
            norm_vars=args.norm_vars,
            delta_order=args.delta_order,
            delta_window=args.delta_window,
            jobs=args.jobs,
            backend=args.backend,
            device=args.device,
            batch_size=args.batch_size,
            skip_bad=args.skip_bad,
            compression=args.compression,
            allow_pipes=not args.no_pipes,
            force=args.force,
            part_frames=args.part_frames,
            part_seconds=args.part_seconds,
        )
    except AsrError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
