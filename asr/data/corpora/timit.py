"""TIMIT (LDC93S1): 16 kHz read speech of 630 speakers with hand-labelled phone segmentations.

Expected layout under ``root`` (as on the LDC disc; the lower-case variant ``train/dr1/fcjf0/si1027.wav``
works too, and so does a ``TIMIT/`` folder one level down)::

    TRAIN/DR1/FCJF0/SI1027.WAV   NIST SPHERE header (1024 bytes, NIST_1A) + 16-bit PCM
    TRAIN/DR1/FCJF0/SI1027.PHN   <start sample> <end sample> <label>, one of the 61 TIMIT labels a line
    TRAIN/DR1/FCJF0/SI1027.WRD   word segmentation   } not used by the phone recipe
    TRAIN/DR1/FCJF0/SI1027.TXT   the prompt          }
    TEST/DR1/MDAB0/...

Data directories written under ``out`` (the standard split, SA sentences excluded everywhere: every speaker
reads the same two, which would bias the phone statistics):

- ``train``: every speaker under ``TRAIN`` (462 speakers, 3696 si/sx sentences);
- ``dev``: the 50 speakers of :data:`DEV_SPEAKERS_FILE` from ``TEST`` (400 sentences);
- ``test``: the 24-speaker core test set of :data:`TEST_SPEAKERS_FILE` from ``TEST`` (192 sentences).

Utterance ids are ``<speaker>-<sentence>`` in lower case (``fcjf0-si1027``), the speaker id is the folder
name in lower case (it starts with the gender, ``f`` or ``m``, which gives ``spk2gender``). ``text`` holds the
phone sequence of the ``.PHN`` file folded with the Lee & Hon table (:data:`PHONE_MAP_FILE`): the 39 scoring
classes by default (``phone_set="39"``), or the 48 training phones or the 61 labels as they are; ``q`` is
deleted in the 48 and 39 sets.

Audio: ``wav.scp`` names the ``.WAV`` files themselves; libsndfile reads NIST SPHERE with PCM samples. A
SPHERE file whose ``sample_coding`` is shorten-compressed (``pcm,embedded-shorten-v2.00``, as on some copies)
is refused with an InputError saying to decompress it (``sph2pipe -f wav``); a RIFF ``.WAV`` is read as it is.

The speaker lists and the phone map are the files in ``recipes/timit/local/``; TIMIT is licensed by the LDC,
so there is no download.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile

from asr.data.corpora import read_text_lines
from asr.data.datadir import DataDir, write_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError, InputError

log = logging.getLogger(__name__)

HOMEPAGE = "https://catalog.ldc.upenn.edu/LDC93S1"
LOCAL_DIR = Path(__file__).resolve().parents[3] / "recipes" / "timit" / "local"
PHONE_MAP_FILE = LOCAL_DIR / "phones.61-48-39.map"
DEV_SPEAKERS_FILE = LOCAL_DIR / "dev_speakers.txt"
TEST_SPEAKERS_FILE = LOCAL_DIR / "core_test_speakers.txt"
PHONE_SETS = ("61", "48", "39")
SPHERE_MAGIC = b"NIST_1A"
_SPEAKER = re.compile(r"^[fm][a-z]{3}[0-9]$")


@dataclass(frozen=True)
class PhoneMap:
    """The Lee & Hon folding: each of the 61 TIMIT labels -> a 48-set phone and a 39-set class (None: deleted)."""

    to48: dict[str, str | None]
    to39: dict[str, str | None]

    @property
    def labels(self) -> list[str]:
        """The 61 TIMIT labels, in file order."""
        return list(self.to48)

    def phone_set(self, name: str) -> list[str]:
        """The sorted symbols of a phone set (``"61"``, ``"48"`` or ``"39"``)."""
        if name == "61":
            return sorted(self.to48)
        table = self.to48 if name == "48" else self.to39
        return sorted({p for p in table.values() if p is not None})

    def fold(self, labels: Iterable[str], phone_set: str = "39") -> list[str]:
        """Map TIMIT labels to ``phone_set``, dropping deleted ones (``q``). KeyError for an unknown label."""
        if phone_set == "61":
            labels = list(labels)
            unknown = [label for label in labels if label not in self.to48]
            if unknown:
                raise KeyError(unknown[0])
            return labels
        table = self.to48 if phone_set == "48" else self.to39
        return [p for p in (table[label] for label in labels) if p is not None]


def read_phone_map(path: str | os.PathLike = PHONE_MAP_FILE) -> PhoneMap:
    """Read a ``<61-label> <48-phone> <39-class>`` table (a lone label is deleted); ``#`` starts a comment line.

    Raises:
        InputError: unreadable file, a line with 2 or more than 3 fields, a label repeated (file and line).
    """
    path = Path(path)
    to48: dict[str, str | None] = {}
    to39: dict[str, str | None] = {}
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) not in (1, 3):
            raise InputError("expected '<61-label> <48-phone> <39-class>' or a lone label (deleted)", path, number)
        label = fields[0]
        if label in to48:
            raise InputError(f"label {label!r} repeated", path, number)
        to48[label] = fields[1] if len(fields) == 3 else None
        to39[label] = fields[2] if len(fields) == 3 else None
    if not to48:
        raise InputError("phone map has no entries", path)
    return PhoneMap(to48, to39)


def read_speaker_list(path: str | os.PathLike) -> list[str]:
    """Speaker ids one a line (lower-cased; blank lines and ``#`` comments skipped). InputError on a bad line."""
    path = Path(path)
    speakers = []
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 1:
            raise InputError("expected one speaker id a line", path, number)
        speakers.append(fields[0].lower())
    return speakers


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of the non-blank, non-comment lines of a UTF-8 text file."""
    return [
        (number, text)
        for number, text in enumerate(read_text_lines(path), start=1)
        if text.strip() and not text.lstrip().startswith("#")
    ]


def read_sphere_header(path: str | os.PathLike) -> dict[str, int | float | str] | None:
    """The fields of a NIST SPHERE header (``NIST_1A``), or None when the file is not SPHERE.

    Fields are ``name -i <int>``, ``name -r <real>`` or ``name -sN <string of N bytes>``, one a line, up to
    ``end_head``; the second line gives the header size (1024 in TIMIT).

    Raises:
        InputError: unreadable file, a truncated or malformed header.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            start = f.read(16)
            if not start.startswith(SPHERE_MAGIC):
                return None
            lines = start.split(b"\n")
            try:
                size = int(lines[1])
            except (IndexError, ValueError):
                raise InputError("NIST SPHERE header: no header size on line 2", path) from None
            if size < 16 or size > 1 << 20:
                raise InputError(f"NIST SPHERE header: implausible header size {size}", path)
            f.seek(0)
            head = f.read(size)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    if len(head) < size:
        raise InputError(f"NIST SPHERE header truncated ({len(head)} of {size} bytes)", path)
    fields: dict[str, int | float | str] = {}
    for line in head.split(b"\n")[2:]:
        text = line.decode("latin-1").strip()
        if text == "end_head":
            return fields
        if not text or text.startswith(";"):
            continue
        parts = text.split(None, 2)
        if len(parts) != 3 or not parts[1].startswith("-"):
            raise InputError(f"NIST SPHERE header: malformed field {text!r}", path)
        name, kind, value = parts
        try:
            if kind == "-i":
                fields[name] = int(value)
            elif kind == "-r":
                fields[name] = float(value)
            elif kind.startswith("-s"):
                fields[name] = value[: int(kind[2:])] if kind[2:].isdigit() else value
            else:
                raise ValueError(kind)
        except ValueError:
            raise InputError(f"NIST SPHERE header: malformed field {text!r}", path) from None
    raise InputError("NIST SPHERE header has no end_head", path)


def check_audio(path: str | os.PathLike) -> float:
    """Check that TIMIT audio is readable here and return its duration in seconds.

    NIST SPHERE files must hold plain PCM (``sample_coding`` absent or ``pcm``); shorten-compressed ones
    (``...shorten...``) and other codings are refused. Other files (RIFF wav, flac) only need a readable header.

    Raises:
        InputError: naming the file: a coding other than PCM, an unreadable or empty file.
    """
    path = Path(path)
    header = read_sphere_header(path)
    if header is not None:
        coding = str(header.get("sample_coding", "pcm")).lower()
        if "shorten" in coding:
            raise InputError(
                f"NIST SPHERE audio is shorten-compressed (sample_coding {coding!r}); decompress the corpus first, "
                "e.g. 'sph2pipe -f wav IN OUT' per file, or the LDC's w_decode",
                path,
            )
        if coding != "pcm":
            raise InputError(f"NIST SPHERE sample_coding {coding!r} is not supported (only pcm)", path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise InputError(f"cannot read audio header: {e}", path) from e
    if info.frames <= 0:
        raise InputError("audio file holds no samples", path)
    return info.frames / info.samplerate


def read_phn(path: str | os.PathLike, labels: Iterable[str]) -> list[tuple[int, int, str]]:
    """Read a ``.PHN`` file: ``(start sample, end sample, label)`` a line, labels lower-cased.

    Raises:
        InputError (file and line): a line without three fields, a non-integer or negative sample, an end
        before its start, a start before the previous segment's, a label not among ``labels``, no segment.
    """
    path = Path(path)
    known = set(labels)
    segments: list[tuple[int, int, str]] = []
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 3:
            raise InputError("expected '<start sample> <end sample> <phone>'", path, number)
        try:
            start, end = int(fields[0]), int(fields[1])
        except ValueError:
            raise InputError(
                f"sample numbers must be integers, got {fields[0]!r} {fields[1]!r}", path, number
            ) from None
        label = fields[2].lower()
        if start < 0 or end < start:
            raise InputError(f"bad segment {start}..{end}", path, number)
        if segments and start < segments[-1][0]:
            raise InputError(f"segment starts at {start}, before the previous one ({segments[-1][0]})", path, number)
        if label not in known:
            raise InputError(f"unknown TIMIT phone {label!r}", path, number)
        segments.append((start, end, label))
    if not segments:
        raise InputError("no phone segments", path)
    return segments


@dataclass(frozen=True)
class TimitUtterance:
    """One sentence: ``utt_id`` (``fcjf0-si1027``), ``speaker``, ``audio`` and ``phn`` paths, ``region`` (DR)."""

    utt_id: str
    speaker: str
    audio: Path
    phn: Path
    region: str


def find_parts(root: str | os.PathLike) -> tuple[Path, Path]:
    """The corpus's ``TRAIN`` and ``TEST`` folders (either case; under ``root`` or ``root/TIMIT``).

    Raises:
        InputError: not found, with what to get and where.
    """
    root = Path(root)
    for base in (root, root / "TIMIT", root / "timit"):
        for train, test in (("TRAIN", "TEST"), ("train", "test")):
            if (base / train).is_dir() and (base / test).is_dir():
                return base / train, base / test
    raise InputError(
        f"TIMIT corpus not found (expected {root / 'TRAIN'} and {root / 'TEST'}, or lower-case train/ and test/). "
        f"TIMIT is licensed by the LDC ({HOMEPAGE}); copy the disc's TIMIT folder there and pass --root",
        root,
    )


def scan_part(part_dir: str | os.PathLike, speakers: Iterable[str] | None = None) -> dict[str, list[TimitUtterance]]:
    """The si/sx sentences of each speaker under ``part_dir/DR*/<SPEAKER>/`` (SA excluded), ``{speaker: utts}``.

    Args:
        part_dir: a ``TRAIN`` or ``TEST`` folder.
        speakers: only these (lower-case ids); all when None.

    Raises:
        InputError: a speaker folder in two regions, a sentence whose ``.PHN`` is missing.
    """
    part_dir = Path(part_dir)
    wanted = None if speakers is None else set(speakers)
    found: dict[str, list[TimitUtterance]] = {}
    where: dict[str, Path] = {}
    for region_dir in sorted(p for p in part_dir.iterdir() if p.is_dir() and p.name.lower().startswith("dr")):
        for spk_dir in sorted(p for p in region_dir.iterdir() if p.is_dir()):
            speaker = spk_dir.name.lower()
            if wanted is not None and speaker not in wanted:
                continue
            if speaker in where:
                raise InputError(f"speaker {speaker} also in {where[speaker]}", spk_dir)
            if not _SPEAKER.match(speaker):
                log.warning("%s: speaker folder name is not like fcjf0 (gender, initials, digit)", spk_dir)
            where[speaker] = spk_dir
            utts = []
            for audio in sorted(p for p in spk_dir.iterdir() if p.suffix.lower() == ".wav" and p.is_file()):
                sentence = audio.stem.lower()
                if sentence.startswith("sa") or "." in sentence:  # SA sentences; converted copies (SI1.WAV.wav)
                    continue
                phn = next((audio.with_suffix(s) for s in (".PHN", ".phn") if audio.with_suffix(s).is_file()), None)
                if phn is None:
                    raise InputError(f"no .PHN file beside {audio.name}", audio)
                utts.append(TimitUtterance(f"{speaker}-{sentence}", speaker, audio, phn, region_dir.name.lower()))
            if not utts:
                log.warning("%s: no si/sx sentences", spk_dir)
                continue
            found[speaker] = utts
    return found


def _check_listed(name: str, listed: Sequence[str], found: dict[str, list[TimitUtterance]], where: Path) -> None:
    if not listed:
        raise ConfigError(f"the {name} speaker list is empty")
    missing = [s for s in listed if s not in found]
    if len(missing) == len(listed):
        raise InputError(f"none of the {len(listed)} {name} speakers is under {where} (e.g. {listed[0]})", where)
    if missing:
        shown = " ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        log.warning("%s: %d of the %d %s speakers are missing: %s", where, len(missing), len(listed), name, shown)


def prepare_timit(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    phone_set: str = "39",
    phone_map: str | os.PathLike = PHONE_MAP_FILE,
    dev_speakers: Sequence[str] | str | os.PathLike = DEV_SPEAKERS_FILE,
    test_speakers: Sequence[str] | str | os.PathLike = TEST_SPEAKERS_FILE,
    skip_bad: bool = False,
) -> dict[str, Path]:
    """Write TIMIT as data directories ``train``, ``dev`` and ``test`` under ``out`` (see the module docstring).

    Args:
        root: the corpus folder (holds ``TRAIN/`` and ``TEST/``).
        out: where to write (e.g. ``data/timit``).
        phone_set: the phones of ``text``: ``"39"`` (scoring classes), ``"48"`` or ``"61"`` (labels as they are).
        phone_map: the Lee & Hon table.
        dev_speakers, test_speakers: speaker ids taken from ``TEST``, or files listing them. A listed speaker
            that is absent is logged; a list none of whose speakers is present is an error.
        skip_bad: keep utterances whose audio is unreadable (a warning names each; that set gets no ``utt2dur``)
            instead of stopping; feature extraction with ``--skip-bad`` then leaves them out and lists them.

    Returns:
        ``{"train": out/"train", "dev": out/"dev", "test": out/"test"}``, each validated (audio headers read).

    Raises:
        InputError: the corpus is missing or malformed (file and line), shorten-compressed audio.
        ConfigError: an unknown phone set, an empty speaker list, a speaker in both lists.
    """
    if phone_set not in PHONE_SETS:
        raise ConfigError(f"phone_set must be one of {', '.join(PHONE_SETS)}, got {phone_set!r}")
    mapping = read_phone_map(phone_map)
    dev_list = read_speaker_list(dev_speakers) if isinstance(dev_speakers, (str, os.PathLike)) else list(dev_speakers)
    test_list = (
        read_speaker_list(test_speakers) if isinstance(test_speakers, (str, os.PathLike)) else list(test_speakers)
    )
    dev_list, test_list = [s.lower() for s in dev_list], [s.lower() for s in test_list]
    both = sorted(set(dev_list) & set(test_list))
    if both:
        raise ConfigError(f"speakers in both the dev and the test list: {' '.join(both)}")
    train_dir, test_dir = find_parts(root)
    sets = {"train": scan_part(train_dir)}
    if not sets["train"]:
        raise InputError("no speakers with si/sx sentences", train_dir)
    for name, listed in (("dev", dev_list), ("test", test_list)):
        sets[name] = scan_part(test_dir, listed)
        _check_listed(name, listed, sets[name], test_dir)
    out = Path(out)
    result = {}
    for name, by_speaker in sets.items():
        utts = [u for speaker_utts in by_speaker.values() for u in speaker_utts]
        text, durations = {}, {}
        for u in utts:
            segments = read_phn(u.phn, mapping.labels)
            phones = mapping.fold((label for _, _, label in segments), phone_set)
            if not phones:
                raise InputError("no phones left once folded (only q?)", u.phn)
            text[u.utt_id] = " ".join(phones)
            try:
                durations[u.utt_id] = check_audio(u.audio)
            except InputError as error:
                if not skip_bad:
                    raise
                log.warning("%s (kept: --skip-bad leaves it out at feature extraction)", error)
        spk2gender = None
        if all(s[:1] in ("f", "m") for s in by_speaker):
            spk2gender = {s: s[0] for s in by_speaker}
        else:
            log.warning("%s: no spk2gender (a speaker id does not start with f or m)", name)
            (out / name / "spk2gender").unlink(missing_ok=True)  # stale from an earlier run
        data = DataDir(
            wav_scp={u.utt_id: os.path.abspath(u.audio) for u in utts},
            text=text,
            utt2spk={u.utt_id: u.speaker for u in utts},
            spk2gender=spk2gender,
            utt2dur=durations if len(durations) == len(utts) else None,  # must cover every utterance
        )
        result[name] = write_data_dir(data, out / name)
        # audio headers are read unless some were unreadable and kept (skip_bad): then feature extraction checks
        log.info("%s", validate_data_dir(out / name, check_audio=data.utt2dur is not None))
    return result
