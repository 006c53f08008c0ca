"""lhotse manifests -> a Kaldi-style data dir, so that the corpora lhotse prepares (``lhotse prepare <corpus>``)
can be used here::

    python -m asr.data.prepare lhotse --recordings R.jsonl.gz --supervisions S.jsonl.gz --out data/x \\
        [--manifest-reader auto|lhotse|builtin]

Input: a RecordingSet and a SupervisionSet as lhotse writes them (``.jsonl``, ``.jsonl.gz``, or ``.json``
holding a list): one JSON object per recording (``id``, ``sources`` [{``type``, ``channels``, ``source``}],
``sampling_rate``, ``num_samples``, ``duration``) and per supervision (``id``, ``recording_id``, ``start``,
``duration``, ``channel``, ``text``, ``speaker``, ``gender``). Readers: ``lhotse`` (lhotse's
``RecordingSet.from_file`` / ``SupervisionSet.from_file``, which also validate the objects; ``pip install
'asr[lhotse]'``) or ``builtin`` (a small JSONL reader here, no dependency, errors naming the file and line);
``auto`` (default) takes lhotse when it is installed. Both give the same data dir: the conversion works on
the objects' ``to_dict()`` form, which is the manifest format itself. The built-in reader exists because
lhotse pulls a dozen packages for what is one ``json.loads`` per line, and because a user with manifests made
elsewhere should not need it.

Output (:func:`asr.data.datadir.write_data_dir`, then :func:`asr.data.validate.validate_data_dir`):

- utterance ids: the supervision id, prefixed by ``<speaker>-`` when it does not start with the speaker id
  (our convention: utterance ids start with their speaker's);
- ``utt2spk``: the supervision's ``speaker``; without one, the recording (its channel) stands for the speaker
  (so per-speaker CMVN becomes per-recording CMVN, as in many Kaldi recipes);
- ``text``: the supervision's text with whitespace collapsed, not otherwise normalized (case, punctuation:
  that is the corpus recipe's business). Supervisions without text are skipped and counted;
- ``wav.scp`` and ``segments``: when every supervision covers its whole recording (start 0, duration within
  1 ms of the recording's), ``wav.scp`` is keyed by utterance and there is no ``segments``; otherwise
  ``wav.scp`` is keyed by recording (``<rec>-<channel>`` when several channels of one recording are used) and
  ``segments`` gives each utterance's start and end (millisecond precision, as Kaldi recipes write them; a
  supervision running past the end of its recording is cut there);
- audio sources: ``file`` -> the path as written in the manifest (relative paths stay relative: run from where
  lhotse ran, as with Kaldi's ``wav.scp``); ``command`` -> ``<command> |``; a channel that is not the file's
  first becomes a ``sox <file> -t wav - remix <n> |`` pipe (needs sox, as Kaldi's telephone recipes need
  sph2pipe). ``url``, ``memory`` and ``shar`` sources and recordings with ``transforms`` (speed perturbation,
  resampling) cannot be written to a wav.scp and are refused (InputError): materialize them first;
- ``utt2dur`` from the supervision durations; ``spk2gender`` when every speaker has one known gender
  (``m``/``male``, ``f``/``female``).

Cuts (CutSet manifests) are not read: pass the recordings and supervisions they were made from.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.data.datadir import DataDir, Segment, write_data_dir
from asr.errors import ConfigError, InputError

log = logging.getLogger(__name__)

READERS = ("auto", "lhotse", "builtin")
WHOLE_RECORDING_TOLERANCE_S = 0.001
_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f"}


@dataclass(frozen=True)
class ManifestRecording:
    """A lhotse Recording as far as a data dir needs it.

    Attributes:
        id: recording id; sources: ``[{"type", "channels", "source"}]``; sampling_rate; num_samples;
        duration: seconds; path, line: where it was read (line None with the lhotse reader).
    """

    id: str
    sources: list[dict[str, Any]]
    sampling_rate: int
    num_samples: int
    duration: float
    path: Path
    line: int | None

    def where(self) -> str:
        """``file:line`` (or the file), for messages."""
        return _where(self.path, self.line)

    def error(self, message: str) -> InputError:
        """An InputError naming this object's file and line."""
        return InputError(message, self.path, self.line)


@dataclass(frozen=True)
class ManifestSupervision:
    """A lhotse SupervisionSegment as far as a data dir needs it (``channel``: the first one when a list)."""

    id: str
    recording_id: str
    start: float
    duration: float
    channel: int
    text: str | None
    speaker: str | None
    gender: str | None
    path: Path
    line: int | None

    def where(self) -> str:
        """``file:line`` (or the file), for messages."""
        return _where(self.path, self.line)

    def error(self, message: str) -> InputError:
        """An InputError naming this object's file and line."""
        return InputError(message, self.path, self.line)


@dataclass
class LhotseImport:
    """What :func:`import_lhotse` wrote.

    Attributes:
        out: the data dir; utts, speakers, recordings: counts; segments: whether ``segments`` was written;
        skipped_no_text: supervision ids skipped for lack of text; truncated: supervisions cut at their
        recording's end; reader: ``lhotse`` or ``builtin``.
    """

    out: Path
    utts: int
    speakers: int
    recordings: int
    segments: bool
    reader: str
    skipped_no_text: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- reading
def _iter_json_objects(path: Path) -> Iterator[tuple[int | None, Any]]:
    """``(line, object)`` of a ``.jsonl`` / ``.jsonl.gz`` (one object per line) or ``.json`` list file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    stem = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            if stem.endswith(".json"):
                try:
                    data = json.load(f)
                except json.JSONDecodeError as err:
                    raise InputError(f"not valid JSON: {err.msg}", path, err.lineno) from None
                if not isinstance(data, list):
                    raise InputError("a .json manifest must hold a list of objects", path)
                for item in data:
                    yield None, item
                return
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"not valid JSON: {err.msg} (column {err.colno})", path, number) from None
    except FileNotFoundError:
        raise InputError("manifest not found", path) from None
    except (OSError, EOFError, UnicodeDecodeError) as err:  # gzip errors are OSErrors
        raise InputError(f"cannot read: {err}", path) from None


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def _field(obj: dict, name: str, kind, path: Path, line: int | None, what: str, optional: bool = False):
    value = obj.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"{what} {obj.get('id', '?')!r}: field {name!r} must be {kind}, not {value!r}", path, line)
    return value


def _check_id(value: str, path: Path, line: int | None, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise InputError(f"{what} id {value!r} is empty or holds whitespace (Kaldi ids cannot)", path, line)
    return value


def recording_from_dict(obj: Any, path: Path, line: int | None = None) -> ManifestRecording:
    """A recording object (lhotse ``Recording.to_dict()`` form) -> :class:`ManifestRecording` (InputError
    naming ``path`` and ``line`` when a field is missing or malformed)."""
    if not isinstance(obj, dict) or "sources" not in obj:
        hint = " (is this a supervision manifest?)" if isinstance(obj, dict) and "recording_id" in obj else ""
        raise InputError(f"not a lhotse recording{hint}", path, line)
    rec_id = _check_id(_field(obj, "id", str, path, line, "recording"), path, line, "recording")
    sources = _field(obj, "sources", list, path, line, "recording")
    for source in sources:
        if not isinstance(source, dict) or not isinstance(source.get("type"), str):
            raise InputError(f"recording {rec_id!r}: a source without a type", path, line)
        if not isinstance(source.get("channels"), list) or not source["channels"]:
            raise InputError(f"recording {rec_id!r}: a source without channels", path, line)
    if not sources:
        raise InputError(f"recording {rec_id!r} has no audio source", path, line)
    if obj.get("transforms"):
        raise InputError(
            f"recording {rec_id!r} has transforms ({[t.get('name') for t in obj['transforms']]}): a wav.scp cannot "
            "express them; save the transformed audio first",
            path,
            line,
        )
    return ManifestRecording(
        rec_id,
        sources,
        int(_field(obj, "sampling_rate", int, path, line, "recording")),
        int(_field(obj, "num_samples", int, path, line, "recording")),
        float(_field(obj, "duration", (int, float), path, line, "recording")),
        path,
        line,
    )


def supervision_from_dict(obj: Any, path: Path, line: int | None = None) -> ManifestSupervision:
    """A supervision object (lhotse ``SupervisionSegment.to_dict()`` form) -> :class:`ManifestSupervision`."""
    if not isinstance(obj, dict) or "recording_id" not in obj:
        hint = " (is this a recording manifest?)" if isinstance(obj, dict) and "sources" in obj else ""
        raise InputError(f"not a lhotse supervision{hint}", path, line)
    sup_id = _check_id(_field(obj, "id", str, path, line, "supervision"), path, line, "supervision")
    channel = obj.get("channel", 0)
    if isinstance(channel, list) and channel and all(isinstance(c, int) for c in channel):
        channel = min(channel)
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise InputError(f"supervision {sup_id!r}: bad channel {obj.get('channel')!r}", path, line)
    start = float(_field(obj, "start", (int, float), path, line, "supervision"))
    duration = float(_field(obj, "duration", (int, float), path, line, "supervision"))
    if start < 0 or duration <= 0:
        raise InputError(f"supervision {sup_id!r}: start {start} / duration {duration} out of range", path, line)
    speaker = _field(obj, "speaker", str, path, line, "supervision", optional=True)
    if speaker is not None:
        _check_id(speaker, path, line, "speaker")
    return ManifestSupervision(
        sup_id,
        _field(obj, "recording_id", str, path, line, "supervision"),
        start,
        duration,
        int(channel),
        _field(obj, "text", str, path, line, "supervision", optional=True),
        speaker,
        _field(obj, "gender", str, path, line, "supervision", optional=True),
        path,
        line,
    )


def _lhotse_available() -> bool:
    try:
        import lhotse  # noqa: F401
    except ImportError:
        return False
    return True


def _read_with_lhotse(path: Path, kind: str) -> list[tuple[int | None, dict]]:
    from lhotse import RecordingSet, SupervisionSet

    loader = RecordingSet if kind == "recordings" else SupervisionSet
    if not path.is_file():
        raise InputError("manifest not found", path)
    try:
        manifest = loader.from_file(path)
        return [(None, item.to_dict()) for item in manifest]
    except InputError:
        raise
    except Exception as err:  # lhotse raises assorted errors for a malformed manifest
        raise InputError(f"lhotse cannot read it as a {loader.__name__}: {type(err).__name__}: {err}", path) from None


def read_manifests(
    recordings: str | os.PathLike, supervisions: str | os.PathLike, reader: str = "auto"
) -> tuple[list[ManifestRecording], list[ManifestSupervision], str]:
    """Read a RecordingSet and a SupervisionSet manifest.

    Args:
        recordings, supervisions: manifest files (``.jsonl``, ``.jsonl.gz``, ``.json``).
        reader: ``auto`` (lhotse if installed), ``lhotse`` or ``builtin``.

    Returns:
        ``(recordings, supervisions, reader used)``.

    Raises:
        InputError: naming the file (and line with the built-in reader); ConfigError: ``reader="lhotse"``
        without lhotse, an unknown reader.
    """
    if reader not in READERS:
        raise ConfigError(f"manifest reader must be one of {READERS}, not {reader!r}")
    if reader == "auto":
        reader = "lhotse" if _lhotse_available() else "builtin"
    elif reader == "lhotse" and not _lhotse_available():
        raise ConfigError("the lhotse reader needs lhotse: pip install 'asr[lhotse]' (or use the builtin reader)")
    rec_path, sup_path = Path(recordings), Path(supervisions)
    if reader == "lhotse":
        rec_items, sup_items = _read_with_lhotse(rec_path, "recordings"), _read_with_lhotse(sup_path, "supervisions")
    else:
        rec_items, sup_items = _iter_json_objects(rec_path), _iter_json_objects(sup_path)
    recs = [recording_from_dict(obj, rec_path, line) for line, obj in rec_items]
    sups = [supervision_from_dict(obj, sup_path, line) for line, obj in sup_items]
    return recs, sups, reader


# ---------------------------------------------------------------------------------------------- converting
def _audio_entry(rec: ManifestRecording, channel: int, sup: ManifestSupervision) -> str:
    """The wav.scp value giving ``channel`` of ``rec`` as the first channel."""
    source = next((s for s in rec.sources if channel in s["channels"]), None)
    if source is None:
        raise sup.error(f"recording {rec.id!r} has no source for channel {channel}")
    kind, value = source["type"], str(source.get("source", ""))
    position = source["channels"].index(channel)
    if kind == "file":
        if not value:
            raise rec.error(f"recording {rec.id!r}: a file source without a path")
        if position == 0:
            return value
        return f"sox {value} -t wav - remix {position + 1} |"
    if kind == "command":
        if position == 0:
            return f"{value} |"
        return f"{value} | sox -t wav - -t wav - remix {position + 1} |"
    raise rec.error(
        f"recording {rec.id!r}: audio source type {kind!r} cannot be written to wav.scp (only file and command); "
        "download or save the audio first"
    )


def manifests_to_data_dir(
    recordings: list[ManifestRecording], supervisions: list[ManifestSupervision], reader: str = "builtin"
) -> tuple[DataDir, LhotseImport]:
    """Build the data dir of the module docstring in memory; returns it and a summary (``out`` unset).

    Raises:
        InputError: a repeated recording or supervision id, a supervision of an unknown recording or starting
            after its end, two supervisions mapping to the same utterance id, no supervision with text.
    """
    recs: dict[str, ManifestRecording] = {}
    for rec in recordings:
        if rec.id in recs:
            raise rec.error(f"recording {rec.id!r} repeated (first at {recs[rec.id].where()})")
        recs[rec.id] = rec
    seen_sups: dict[str, str] = {}
    kept: list[ManifestSupervision] = []
    skipped: list[str] = []
    for sup in supervisions:
        if sup.id in seen_sups:
            raise sup.error(f"supervision {sup.id!r} repeated (first at {seen_sups[sup.id]})")
        seen_sups[sup.id] = sup.where()
        if sup.recording_id not in recs:
            raise sup.error(f"supervision {sup.id!r}: recording {sup.recording_id!r} is not in the recordings")
        if sup.start >= recs[sup.recording_id].duration:
            raise sup.error(
                f"supervision {sup.id!r} starts at {sup.start} s, after the end of its recording "
                f"({recs[sup.recording_id].duration} s)"
            )
        if sup.text is None or not sup.text.split():
            skipped.append(sup.id)
            continue
        kept.append(sup)
    if skipped:
        log.warning("%d supervisions have no text and are skipped, e.g. %s", len(skipped), skipped[:3])
    if not kept:
        raise InputError("no supervision with text", supervisions[0].path if supervisions else None)
    channels_of: dict[str, set[int]] = {}
    count_of: dict[tuple[str, int], int] = {}
    for sup in kept:
        channels_of.setdefault(sup.recording_id, set()).add(sup.channel)
        count_of[(sup.recording_id, sup.channel)] = count_of.get((sup.recording_id, sup.channel), 0) + 1

    def rec_key(sup: ManifestSupervision) -> str:
        several = len(channels_of[sup.recording_id]) > 1
        return f"{sup.recording_id}-{sup.channel}" if several else sup.recording_id

    def whole(sup: ManifestSupervision) -> bool:
        rec = recs[sup.recording_id]
        return (
            count_of[(sup.recording_id, sup.channel)] == 1
            and sup.start <= WHOLE_RECORDING_TOLERANCE_S
            and abs(sup.start + sup.duration - rec.duration) <= WHOLE_RECORDING_TOLERANCE_S
        )

    use_segments = not all(whole(sup) for sup in kept)
    wav_scp: dict[str, str] = {}
    text: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    utt2dur: dict[str, float] = {}
    segments: dict[str, Segment] = {}
    genders: dict[str, set[str]] = {}
    truncated: list[str] = []
    origin: dict[str, str] = {}
    for sup in kept:
        rec = recs[sup.recording_id]
        key = rec_key(sup)
        speaker = sup.speaker or key
        utt = sup.id if sup.id.startswith(speaker) else f"{speaker}-{sup.id}"
        if utt in origin:
            raise sup.error(f"supervisions {origin[utt]!r} and {sup.id!r} both become utterance {utt!r}")
        origin[utt] = sup.id
        entry = _audio_entry(rec, sup.channel, sup)
        end = sup.start + sup.duration
        if end > rec.duration + WHOLE_RECORDING_TOLERANCE_S:
            truncated.append(sup.id)
            end = rec.duration
        end = min(end, rec.duration)
        if use_segments:
            wav_scp[key] = entry
            segments[utt] = Segment(key, sup.start, end)
        else:
            wav_scp[utt] = entry
        text[utt] = " ".join(sup.text.split())
        utt2spk[utt] = speaker
        utt2dur[utt] = round(end - sup.start, 3) if use_segments else rec.duration
        genders.setdefault(speaker, set()).add(_GENDERS.get((sup.gender or "").lower(), "?"))
    if truncated:
        log.warning("%d supervisions run past the end of their recording and were cut there", len(truncated))
    spk2gender = None
    if all(len(g) == 1 and "?" not in g for g in genders.values()):
        spk2gender = {spk: next(iter(g)) for spk, g in genders.items()}
    data = DataDir(wav_scp, text, utt2spk, segments if use_segments else None, spk2gender, utt2dur)
    summary = LhotseImport(
        Path(), len(utt2spk), len(genders), len(set(map(rec_key, kept))), use_segments, reader, skipped, truncated
    )
    return data, summary


def import_lhotse(
    recordings: str | os.PathLike,
    supervisions: str | os.PathLike,
    out: str | os.PathLike,
    *,
    reader: str = "auto",
    check_audio: bool = True,
) -> LhotseImport:
    """Write the data dir of a lhotse RecordingSet + SupervisionSet (module docstring) and validate it.

    Args:
        recordings, supervisions: the manifest files.
        out: the data dir to write (files replaced; a stale ``segments`` removed).
        reader: ``auto``, ``lhotse`` or ``builtin`` (:func:`read_manifests`).
        check_audio: let the validator read every plain audio file's header (pipes are not run).

    Returns:
        An :class:`LhotseImport` summary.

    Raises:
        InputError: naming the manifest (and line): see :func:`read_manifests`, :func:`manifests_to_data_dir`;
        the validator's errors.
    """
    from asr.data.validate import validate_data_dir

    recs, sups, used = read_manifests(recordings, supervisions, reader)
    data, summary = manifests_to_data_dir(recs, sups, used)
    out = Path(out)
    write_data_dir(data, out)
    for stale in ("spk2gender",) if data.spk2gender is None else ():
        if (out / stale).exists():
            (out / stale).unlink()
    summary.out = out
    log.info("%s", validate_data_dir(out, check_audio=check_audio))
    log.info(
        "lhotse manifests (%s reader) -> %s: %d utterances, %d speakers, %d recordings%s",
        used, out, summary.utts, summary.speakers, summary.recordings, ", with segments" if summary.segments else "",
    )  # fmt: skip
    return summary
