"""Corpus preparers: each turns a corpus as downloaded into Kaldi-style data directories.

- :mod:`asr.data.corpora.synth`: ``prepare_synth(out, ...)``, a synthetic corpus made offline with espeak-ng;
- :mod:`asr.data.corpora.yesno`: ``prepare_yesno(root, out)``, Kaldi's yes/no corpus (openslr resource 1);
- :mod:`asr.data.corpora.an4`: ``prepare_an4(root, out)``, the CMU AN4 census database.

Each returns ``{set name: data dir}`` and validates what it wrote. The command line front end is
``python -m asr.data.prepare <corpus> --root ... --out data/<corpus>`` (:mod:`asr.data.prepare`), which
also downloads a missing corpus when asked. The modules are imported lazily by that front end, so this
package imports nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.errors import InputError


def corpus_not_found(
    name: str, root: str | os.PathLike, *, expected: str, homepage: str, archive_url: str
) -> InputError:
    """The error a preparer raises when its corpus is not at ``root``: what to download, from where.

    Args:
        name: the corpus name as the CLI spells it (``an4``, ``yesno``).
        root: where the corpus was looked for.
        expected: the file or folder that should exist under ``root`` (shown to the user).
        homepage: the corpus's official page.
        archive_url: the archive ``--download`` fetches.
    """
    root = Path(root)
    return InputError(
        f"{name} corpus not found (expected {root / expected}). Download {archive_url} (see {homepage}) and unpack "
        f"it so that {root / expected} exists, or run: python -m asr.data.prepare {name} --root {root} --download",
        root,
    )


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (``bytes.splitlines``, line ends removed).

    Raises:
        InputError: the file cannot be read (naming it), or a line is not UTF-8 (naming the file and line).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InputError(f"line is not valid UTF-8 ({e.reason} at byte {e.start})", path, number) from e
    return lines


def audio_header_seconds(
    audio: str | os.PathLike,
    *,
    where: str | os.PathLike | None = None,
    line: int | None = None,
    skip_bad: bool = False,
) -> float | None:
    """The duration an audio file's header gives, in seconds (the samples are not read).

    Args:
        audio: the audio file.
        where, line: the file (and line) to name in the error, e.g. the corpus listing that names ``audio``;
            default ``audio`` itself.
        skip_bad: a header that cannot be read, or that holds no samples, gives a warning and None instead of
            an error (the preparers keep such recordings: ``compute --skip-bad`` leaves them out and lists them).

    Returns:
        The duration, or None (``skip_bad`` and a bad header).

    Raises:
        InputError: an unreadable header or no samples (without ``skip_bad``).
    """
    import logging

    import soundfile

    named = where is not None and Path(where) != Path(audio)
    of = f" of {audio}" if named else ""
    try:
        info = soundfile.info(str(audio))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        error = InputError(f"cannot read audio header{of}: {e}", where if named else audio, line)
    else:
        if info.frames > 0:
            return info.frames / info.samplerate
        error = InputError(f"audio file{' ' + str(audio) if named else ''} holds no samples", where or audio, line)
    if not skip_bad:
        raise error
    logging.getLogger(__name__).warning("%s (kept: --skip-bad leaves it out at feature extraction)", error)
    return None
