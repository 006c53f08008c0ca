"""CMU AN4 (census) database: 16 kHz close-talking read speech (letters, digits, dates, short commands).

Expected layout under ``root`` (as unpacked from the CMU archive; audio as ``.wav``, or ``.sph``/``.flac``)::

    etc/an4_train.transcription   <s> WORD ... </s> (an251-fash-b)
    etc/an4_train.fileids         an4_clstk/fash/an251-fash-b
    etc/an4.dic, etc/an4.filler   dictionary, filler words
    wav/an4_clstk/<speaker>/<id>.wav
    etc/an4_test.transcription    WORD ... (an406-fcaw-b)        } the test part: prepared when present,
    etc/an4_test.fileids          an4test_clstk/fcaw/an406-fcaw-b } skipped with a log line when absent
    wav/an4test_clstk/<speaker>/<id>.wav

Data directories written under ``out``:

- ``train``: the training part without the dev speakers (64 speakers, 823 utterances with the defaults);
- ``dev``: the 10 held-out speakers :data:`DEFAULT_DEV_SPEAKERS` (125 utterances), speaker-disjoint from train
  (the split the Kaldi reference numbers use);
- ``train_all``: the whole training part (74 speakers, 948 utterances);
- ``test``: the test part (130 utterances, 10 speakers in the CMU release), when present.

Utterance ids are ``<speaker>-<original id without the speaker>``: ``an251-fash-b`` of speaker ``fash``
becomes ``fash-an251-b`` (an original id that does not contain its speaker gets the speaker prepended
whole). Transcripts lose ``<s>``, ``</s>`` and the filler words of ``etc/an4.filler`` and are upper-cased.
``spk2gender`` comes from the speaker id's first letter (``f``/``m``), ``utt2dur`` from the audio headers.
``etc/an4.dic``, ``etc/an4.filler`` and ``etc/an4.phone`` (and an ARPA LM ``etc/an4*.lm`` if present) are
copied to ``out/local/`` for the lexicon and LM steps.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr.atomic import atomic_path
from asr.data.corpora import audio_header_seconds, corpus_not_found, read_text_lines
from asr.data.datadir import DataDir, write_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError, InputError

log = logging.getLogger(__name__)

HOMEPAGE = "http://www.speech.cs.cmu.edu/databases/an4/"
ARCHIVE_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
DEFAULT_DEV_SPEAKERS: tuple[str, ...] = (
    "fash",
    "fjmd",
    "fnsv",
    "mblb",
    "mcsc",
    "meht",
    "mjdr",
    "mmaf",
    "mnfe",
    "msct",
)
SENTENCE_MARKS = frozenset({"<s>", "</s>"})
AUDIO_EXTENSIONS = (".wav", ".sph", ".flac")
LOCAL_FILES = ("an4.dic", "an4.filler", "an4.phone")
_TRANSCRIPT_LINE = re.compile(r"^(?P<words>.*)\((?P<id>[^()\s]+)\)\s*$")


@dataclass(frozen=True)
class An4Utterance:
    """One AN4 utterance: new ``utt_id``, ``speaker``, ``words`` (cleaned), ``audio`` path, ``seconds``."""

    utt_id: str
    speaker: str
    words: str
    audio: Path
    seconds: float | None  # None: the audio header could not be read (kept with skip_bad)


def make_utt_id(speaker: str, original_id: str) -> str:
    """``("fash", "an251-fash-b")`` -> ``"fash-an251-b"``; an id without the speaker gets it prepended."""
    parts = original_id.split("-")
    if speaker in parts:
        parts.remove(speaker)
    return "-".join([speaker, *parts])


def read_fillers(path: Path) -> set[str]:
    """The filler words (first column) of ``an4.filler``, plus ``<s>`` and ``</s>``."""
    fillers = set(SENTENCE_MARKS)
    for number, line in enumerate(read_text_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise InputError("expected '<filler word> <phone>'", path, number)
        fillers.add(fields[0])
    return fillers


def _find_audio(base: Path) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        candidate = base.with_name(base.name + ext)
        if candidate.is_file():
            return candidate
    return None


def read_an4_part(root: Path, part: str, fillers: set[str], skip_bad: bool = False) -> list[An4Utterance]:
    """Read one part (``"train"`` or ``"test"``) from ``etc/an4_<part>.{fileids,transcription}`` and the audio.

    With ``skip_bad`` an audio file whose header cannot be read is kept (``seconds`` None, a warning names it):
    feature extraction with ``--skip-bad`` leaves it out and lists it, decoding scores it as deletions.

    Returns the utterances in fileids order. Raises InputError (file and line) for a malformed transcription
    line, an id in one file but not the other, a repeated id, a transcript left empty once fillers are
    removed, or missing / unreadable audio.
    """
    fileids_path = root / "etc" / f"an4_{part}.fileids"
    trans_path = root / "etc" / f"an4_{part}.transcription"
    transcripts: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(read_text_lines(trans_path), start=1):
        if not line.strip():
            continue
        match = _TRANSCRIPT_LINE.match(line)
        if match is None:
            raise InputError("expected 'WORD WORD ... (utterance-id)'", trans_path, number)
        original = match.group("id")
        if original in transcripts:
            raise InputError(
                f"utterance {original!r} repeated (first on line {transcripts[original][0]})", trans_path, number
            )
        words = [w.upper() for w in match.group("words").split() if w not in fillers and w.upper() not in fillers]
        if not words:
            raise InputError(
                f"transcript of {original!r} is empty once <s>, </s> and fillers are removed", trans_path, number
            )
        transcripts[original] = (number, " ".join(words))
    utterances: list[An4Utterance] = []
    seen_ids: dict[str, int] = {}
    originals: set[str] = set()
    for number, line in enumerate(read_text_lines(fileids_path), start=1):
        fileid = line.strip()
        if not fileid:
            continue
        parts = fileid.split("/")
        if len(parts) < 2:
            raise InputError(f"expected '<folder>/<speaker>/<utterance-id>', got {fileid!r}", fileids_path, number)
        speaker, original = parts[-2], parts[-1]
        originals.add(original)
        if original not in transcripts:
            raise InputError(f"utterance {original!r} has no line in {trans_path}", fileids_path, number)
        utt_id = make_utt_id(speaker, original)
        if utt_id in seen_ids:
            raise InputError(
                f"utterance id {utt_id!r} repeated (first on line {seen_ids[utt_id]})", fileids_path, number
            )
        seen_ids[utt_id] = number
        audio = _find_audio(root / "wav" / fileid)
        if audio is None:
            raise InputError(
                f"audio not found: {root / 'wav' / fileid}{{{','.join(AUDIO_EXTENSIONS)}}}", fileids_path, number
            )
        seconds = audio_header_seconds(audio, where=fileids_path, line=number, skip_bad=skip_bad)
        words = transcripts[original][1]
        utterances.append(An4Utterance(utt_id, speaker, words, Path(os.path.abspath(audio)), seconds))
    for original, (number, _) in transcripts.items():
        if original not in originals:
            raise InputError(f"utterance {original!r} is not in {fileids_path}", trans_path, number)
    return utterances


def _data_dir(utterances: Iterable[An4Utterance]) -> DataDir:
    utterances = list(utterances)
    speakers = {u.speaker for u in utterances}
    spk2gender = None
    if all(s[:1] in ("f", "m") for s in speakers):
        spk2gender = {s: s[0] for s in speakers}
    else:
        odd = sorted(s for s in speakers if s[:1] not in ("f", "m"))
        log.warning("no spk2gender: speakers %s do not start with f or m", " ".join(odd[:10]))
    return DataDir(
        wav_scp={u.utt_id: str(u.audio) for u in utterances},
        text={u.utt_id: u.words for u in utterances},
        utt2spk={u.utt_id: u.speaker for u in utterances},
        spk2gender=spk2gender,
        # no utt2dur when some header was unreadable (skip_bad): it must cover every utterance
        utt2dur=None if any(u.seconds is None for u in utterances) else {u.utt_id: u.seconds for u in utterances},
    )


def _write_set(data: DataDir, path: Path) -> Path:
    if data.spk2gender is None and (path / "spk2gender").exists():
        (path / "spk2gender").unlink()  # stale from an earlier run
    write_data_dir(data, path)
    # audio headers are read unless some were unreadable and kept (skip_bad): then feature extraction checks
    log.info("%s", validate_data_dir(path, check_audio=data.utt2dur is not None))
    return path


def _copy_local_files(root: Path, local: Path) -> None:
    names = [n for n in LOCAL_FILES if (root / "etc" / n).is_file()]
    names += sorted(p.name for p in (root / "etc").glob("an4*.lm"))
    for name in LOCAL_FILES[:2]:
        if name not in names:
            raise InputError(f"missing {name} (the lexicon step needs it)", root / "etc")
    for name in names:
        with atomic_path(local / name) as tmp:
            shutil.copyfile(root / "etc" / name, tmp)
    log.info("copied %s to %s", ", ".join(names), local)


def prepare_an4(
    root: Path, out: Path, dev_speakers: Iterable[str] = DEFAULT_DEV_SPEAKERS, skip_bad: bool = False
) -> dict[str, Path]:
    """Write AN4 as data directories ``train``, ``dev``, ``train_all`` and (when present) ``test`` under ``out``.

    Args:
        root: the corpus folder (holds ``etc/`` and ``wav/``, see the module docstring).
        out: where to write (e.g. ``data/an4``); ``out/local/`` receives the dictionary and filler files.
        dev_speakers: training-part speakers held out as the dev set.
        skip_bad: keep utterances whose audio header cannot be read (a warning names each; no ``utt2dur``)
            instead of stopping; ``compute --skip-bad`` then leaves them out and lists them.

    Returns:
        ``{set name: data dir}`` for the sets written, each validated (audio headers read).

    Raises:
        InputError: the corpus is missing (the message says what to download) or malformed (file and line);
            a test part only partly present.
        ConfigError: a dev speaker that is not in the training part, or a dev set holding every speaker.
    """
    root, out = Path(root), Path(out)
    if not (root / "etc" / "an4_train.transcription").is_file():
        raise corpus_not_found(
            "an4", root, expected="etc/an4_train.transcription", homepage=HOMEPAGE, archive_url=ARCHIVE_URL
        )
    fillers = read_fillers(root / "etc" / "an4.filler") if (root / "etc" / "an4.filler").is_file() else SENTENCE_MARKS
    train_all = read_an4_part(root, "train", set(fillers), skip_bad)
    speakers = {u.speaker for u in train_all}
    dev = set(dev_speakers)
    unknown = sorted(dev - speakers)
    if unknown:
        raise ConfigError(f"dev speakers not in the AN4 training part: {' '.join(unknown)}")
    if dev == speakers:
        raise ConfigError("the dev speakers are all the training speakers: nothing left to train on")
    sets = {
        "train": [u for u in train_all if u.speaker not in dev],
        "dev": [u for u in train_all if u.speaker in dev],
        "train_all": train_all,
    }
    test_files = [
        root / "etc" / "an4_test.transcription",
        root / "etc" / "an4_test.fileids",
        root / "wav" / "an4test_clstk",
    ]
    present = [p.exists() for p in test_files]
    if all(present):
        sets["test"] = read_an4_part(root, "test", set(fillers), skip_bad)
    elif any(present):
        missing = ", ".join(str(p) for p, here in zip(test_files, present) if not here)
        raise InputError(f"the AN4 test part is only partly present: missing {missing}", root)
    else:
        log.info(
            "%s: no AN4 test part (etc/an4_test.transcription, etc/an4_test.fileids, wav/an4test_clstk): "
            "skipping the test set; use dev for evaluation",
            root,
        )
    result = {name: _write_set(_data_dir(utts), out / name) for name, utts in sets.items()}
    _copy_local_files(root, out / "local")
    return result
