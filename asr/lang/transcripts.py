"""Word transcripts in Kaldi ``text`` format (``utt-id WORD WORD ...``), with file and line kept.

The lexicon (OOV listing) and the n-gram estimator read transcripts through here, so that every
problem found in a transcript can be reported as ``file:line``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from asr.data.datadir import read_table_lines


@dataclass(frozen=True)
class Transcript:
    """One utterance's words and where they came from (``path``, 1-based ``line``)."""

    path: str
    line: int
    utt_id: str
    words: tuple[str, ...]


def read_transcripts(path: str | os.PathLike) -> list[Transcript]:
    """Read a Kaldi ``text`` file (first field the utterance id; an utterance may have no words).

    Raises:
        InputError: unreadable file, blank line, invalid UTF-8, repeated utterance id (file:line).
    """
    path = Path(path)
    return [
        Transcript(os.fspath(path), number, utt, tuple(value.split()))
        for number, utt, value in read_table_lines(path, allow_empty_value=True)
    ]


def iter_transcripts(paths: Iterable[str | os.PathLike]) -> Iterator[Transcript]:
    """Transcripts of several ``text`` files, file after file, in file order."""
    for path in paths:
        yield from read_transcripts(path)
