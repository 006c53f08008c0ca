"""Kaldi's yes/no corpus (openslr resource 1): 60 files of one male speaker saying 8 x "yes"/"no", 8 kHz.

The transcript is the file name: ``1_0_1_1_1_0_1_0.wav`` = ``YES NO YES YES YES NO YES NO``.

Split: Kaldi's ``egs/yesno/s5/local/create_yesno_waves_test_train.pl`` puts the first half of the listing
``ls -1 waves_yesno`` in train and the rest in test. Kaldi's published yes/no result scores 232 words,
i.e. 29 test files of 8 words, so train holds the first 31 files in sorted (C) order, which are exactly
the files starting with ``0_``, and test the last 29 (those starting with ``1_``). (Taken literally on a
listing that also holds the corpus's README, the Perl rule would give 30 wav files to train, 30 plus the
README to test; we follow the published 31/29 split.)

Data directories written: ``<out>/train`` and ``<out>/test``, speaker ``yesno`` (one speaker, gender
``m``), utterance ids ``yesno-<file name without .wav>`` so that the speaker id prefixes them (Kaldi's
recipe uses the bare file name and speaker ``global``), absolute audio paths, ``utt2dur`` from the headers.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from asr.data.corpora import audio_header_seconds, corpus_not_found
from asr.data.datadir import DataDir, c_sorted, write_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import InputError

log = logging.getLogger(__name__)

HOMEPAGE = "https://www.openslr.org/1/"
ARCHIVE_URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
SPEAKER = "yesno"
NUM_TRAIN = 31
NUM_FILES = 60
_NAME = re.compile(r"^[01](_[01])*\.wav$")


def yesno_waves_dir(root: Path) -> Path:
    """The folder holding the wav files: ``root/waves_yesno`` (as unpacked) or ``root`` itself."""
    root = Path(root)
    if (root / "waves_yesno").is_dir():
        return root / "waves_yesno"
    if root.is_dir() and any(_NAME.match(p.name) for p in root.iterdir()):
        return root
    raise corpus_not_found("yesno", root, expected="waves_yesno", homepage=HOMEPAGE, archive_url=ARCHIVE_URL)


def transcript_from_name(name: str, where: str | Path | None = None) -> str:
    """``"1_0_1.wav"`` -> ``"YES NO YES"``; InputError (naming ``where`` or the name) for a name that is not
    a 0/1 sequence."""
    if not _NAME.match(name):
        raise InputError(
            "not a yes/no file name (expected 0s and 1s joined by '_', e.g. 1_0_1_1_1_0_1_0.wav)", where or name
        )
    return " ".join("YES" if bit == "1" else "NO" for bit in name[: -len(".wav")].split("_"))


def prepare_yesno(root: Path, out: Path, skip_bad: bool = False) -> dict[str, Path]:
    """Write the yes/no corpus as data directories ``out/train`` (31 files) and ``out/test`` (29 files).

    Args:
        root: the corpus folder: holds ``waves_yesno/`` (or is that folder itself).
        out: where to write (e.g. ``data/yesno``).
        skip_bad: keep files whose audio header cannot be read (a warning names each; no ``utt2dur``) instead
            of stopping; ``compute --skip-bad`` then leaves them out and lists them.

    Returns:
        ``{"train": out/"train", "test": out/"test"}``, both validated (audio headers read unless some were
        unreadable and kept).

    Raises:
        InputError: the corpus is missing (the message says what to download), a ``.wav`` whose name is not
            a yes/no sequence, unreadable audio, or too few files for the split.
    """
    waves = Path(os.path.abspath(yesno_waves_dir(Path(root))))  # absolute, symlinks kept
    names = c_sorted(p.name for p in waves.iterdir() if p.suffix == ".wav")
    transcripts = {name: transcript_from_name(name, waves / name) for name in names}
    if len(names) <= NUM_TRAIN:
        raise InputError(f"found {len(names)} wav files, need more than {NUM_TRAIN} for the train/test split", waves)
    if len(names) != NUM_FILES:
        log.warning(
            "%s: %d wav files, the corpus has %d; splitting %d/%d",
            waves,
            len(names),
            NUM_FILES,
            NUM_TRAIN,
            len(names) - NUM_TRAIN,
        )
    splits = {"train": names[:NUM_TRAIN], "test": names[NUM_TRAIN:]}
    out = Path(out)
    result: dict[str, Path] = {}
    for set_name, set_names in splits.items():
        wav_scp, text, utt2spk, utt2dur = {}, {}, {}, {}
        bad: list[str] = []
        for name in set_names:
            utt = f"{SPEAKER}-{name[: -len('.wav')]}"
            wav_scp[utt] = str(waves / name)
            text[utt] = transcripts[name]
            utt2spk[utt] = SPEAKER
            seconds = audio_header_seconds(waves / name, skip_bad=skip_bad)
            if seconds is None:
                bad.append(utt)
            else:
                utt2dur[utt] = seconds
        # no utt2dur when some header was unreadable: it must cover every utterance
        data = DataDir(wav_scp, text, utt2spk, spk2gender={SPEAKER: "m"}, utt2dur=None if bad else utt2dur)
        result[set_name] = write_data_dir(data, out / set_name)
        log.info("%s", validate_data_dir(out / set_name, check_audio=not bad))
    return result
