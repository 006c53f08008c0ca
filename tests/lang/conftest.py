"""Fixtures for the lang tests: AN4's dictionary, its train/dev transcript split, a built AN4 lang dir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asr.lang.lexicon import Lexicon, read_lexicon
from asr.lang.prepare_lang import prepare_lang

#: The dev speakers of corpora/README.md (speaker-disjoint hold-out of AN4's training part).
AN4_DEV_SPEAKERS = frozenset("fash fjmd fnsv mblb mcsc meht mjdr mmaf mnfe msct".split())
_TRANSCRIPTION = re.compile(r"^<s> (.*) </s> \((\S+)\)$")


@pytest.fixture(scope="session")
def an4_dic(an4_root: Path) -> Path:
    return an4_root / "etc" / "an4.dic"


@pytest.fixture(scope="session")
def an4_lexicon(an4_dic: Path) -> Lexicon:
    return read_lexicon(an4_dic)


@pytest.fixture(scope="session")
def an4_split(an4_root: Path) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """``{"train": [(utt_id, words)], "dev": [...]}`` from etc/an4_train.transcription, split by speaker."""
    split: dict[str, list[tuple[str, tuple[str, ...]]]] = {"train": [], "dev": []}
    path = an4_root / "etc" / "an4_train.transcription"
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = _TRANSCRIPTION.match(line.strip())
        assert m, f"{path}:{number}: unexpected transcription line {line!r}"
        utt = m.group(2)
        speaker = utt.split("-")[1]
        split["dev" if speaker in AN4_DEV_SPEAKERS else "train"].append((f"{speaker}-{utt}", tuple(m.group(1).split())))
    assert len(split["dev"]) == 125 and len(split["train"]) == 823
    return split


@pytest.fixture(scope="session")
def an4_texts(an4_split, tmp_path_factory) -> dict[str, Path]:
    """Kaldi ``text`` files of the AN4 train and dev split (sorted by utterance id)."""
    out = tmp_path_factory.mktemp("an4_text")
    paths = {}
    for name, rows in an4_split.items():
        paths[name] = out / f"{name}.text"
        paths[name].write_text("".join(f"{utt} {' '.join(words)}\n" for utt, words in sorted(rows)))
    return paths


@pytest.fixture(scope="session")
def an4_lang(an4_lexicon, tmp_path_factory) -> Path:
    """An AN4 lang directory (sil_prob 0.5, no OOV word). Tests must not modify it."""
    return prepare_lang(an4_lexicon, tmp_path_factory.mktemp("an4") / "lang")
