"""LibriSpeech (openslr 12) and mini_librispeech (openslr 31): read audiobooks, 16 kHz FLAC.

Expected layout under ``root`` (as unpacked from the openslr archives, which all hold a ``LibriSpeech/``
folder; ``root`` may also be that folder itself)::

    LibriSpeech/SPEAKERS.TXT                               ID | SEX | SUBSET | MINUTES | NAME (optional)
    LibriSpeech/<subset>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac
    LibriSpeech/<subset>/<reader>/<chapter>/<reader>-<chapter>.trans.txt   <reader>-<chapter>-<utt> WORDS ...

mini_librispeech's subsets are ``train-clean-5`` (1519 utterances, 5 h) and ``dev-clean-2`` (1089, 2 h); any
LibriSpeech subset (``train-clean-100``, ``test-clean``...) prepares the same way.

Data directories: one per subset, named with underscores (``train_clean_5``, ``dev_clean_2``). Utterance ids
are the file names (``103-1240-0000``); the speaker of an utterance is its reader and chapter
(``103-1240``), as in Kaldi's recipe, so CMVN is per recording session. ``spk2gender`` comes from
``SPEAKERS.TXT`` when it is there. Transcripts are upper-case already (words with apostrophes, ``DON'T``).

The language model files (openslr 11) are used by the recipe's lang stage: :func:`arpa_words` reads an ARPA
vocabulary, :func:`make_lexicon` restricts CMUdict or the official ``librispeech-lexicon.txt`` to the words
of the LM and the training text, :func:`filter_arpa` drops the LM's n-grams that hold a word the lang lacks
(Kaldi's ``format_lm.sh`` does the same), so that ``asr.lang.grammar`` can turn it into ``G.fst``::

    python -m asr.data.corpora.librispeech lexicon --source cmudict --arpa LM.arpa.gz --words-from TEXT \\
        --out data/librispeech/local/lexicon.txt
    python -m asr.data.corpora.librispeech filter-arpa --arpa LM.arpa.gz --lang data/librispeech/lang \\
        --out data/librispeech/local/lm_tgsmall.arpa

:func:`download_librispeech` fetches missing subsets and the LM files (``python -m asr.data.prepare
librispeech --download``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from asr.atomic import atomic_path, atomic_write
from asr.data.corpora import audio_header_seconds, read_text_lines
from asr.data.datadir import DataDir, write_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import AsrError, InputError

log = logging.getLogger(__name__)

HOMEPAGE = "https://www.openslr.org/31/"
MINI_SUBSETS = ("train-clean-5", "dev-clean-2")
MINI_URL = "https://www.openslr.org/resources/31/{subset}.tar.gz"
FULL_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
LM_URL = "https://www.openslr.org/resources/11/{name}"
#: The official small trigram (Kaldi's tgsmall) and the official lexicon, downloaded to ``<root>/lm/``.
LM_ARPA = "3-gram.pruned.1e-7.arpa.gz"
LM_LEXICON = "librispeech-lexicon.txt"
LM_FILES = (LM_ARPA, LM_LEXICON)
ARPA_SPECIAL = frozenset({"<s>", "</s>"})
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def subset_url(subset: str) -> str:
    """The openslr archive of a subset: resource 31 for mini_librispeech's, 12 for the others."""
    return (MINI_URL if subset in MINI_SUBSETS else FULL_URL).format(subset=subset)


def data_dir_name(subset: str) -> str:
    """``"train-clean-5"`` -> ``"train_clean_5"``."""
    return subset.replace("-", "_")


def corpus_dir(root: str | os.PathLike) -> Path:
    """The folder holding the subsets: ``root/LibriSpeech`` when it exists, else ``root``."""
    root = Path(root)
    return root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root


def read_speakers_txt(path: str | os.PathLike) -> dict[str, str]:
    """``SPEAKERS.TXT`` -> ``{reader id: "m" | "f"}`` (lines starting with ``;`` are comments).

    Raises:
        InputError: a line without the ``|``-separated fields, a sex other than M/F (file and line).
    """
    path = Path(path)
    genders = {}
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3:
            raise InputError("expected 'ID | SEX | SUBSET | MINUTES | NAME'", path, number)
        if fields[1].upper() not in ("M", "F"):
            raise InputError(f"sex must be M or F, got {fields[1]!r}", path, number)
        genders[fields[0]] = fields[1].lower()
    return genders


def read_chapter(chapter_dir: str | os.PathLike) -> list[tuple[str, str, Path]]:
    """One chapter folder -> ``[(utt id, transcript, flac path)]`` in transcript order.

    Raises:
        InputError (file and line): no ``<reader>-<chapter>.trans.txt``, a line whose id is not
        ``<reader>-<chapter>-<n>`` of this folder, an empty transcript, a repeated id, a missing ``.flac``, a
        ``.flac`` without a transcript line.
    """
    chapter_dir = Path(chapter_dir)
    reader, chapter = chapter_dir.parent.name, chapter_dir.name
    trans = chapter_dir / f"{reader}-{chapter}.trans.txt"
    if not trans.is_file():
        raise InputError(f"no transcript file {trans.name}", chapter_dir)
    out: list[tuple[str, str, Path]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text_lines(trans), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        utt = fields[0]
        match = _UTT_ID.match(utt)
        if match is None or match.group(1) != reader or match.group(2) != chapter:
            raise InputError(f"utterance id {utt!r} is not {reader}-{chapter}-<number>", trans, number)
        if len(fields) < 2:
            raise InputError(f"utterance {utt!r} has an empty transcript", trans, number)
        if utt in seen:
            raise InputError(f"utterance {utt!r} repeated (first on line {seen[utt]})", trans, number)
        seen[utt] = number
        audio = chapter_dir / f"{utt}.flac"
        if not audio.is_file():
            raise InputError(f"audio not found: {audio}", trans, number)
        out.append((utt, " ".join(fields[1].split()), audio))
    stray = sorted(p.name for p in chapter_dir.glob("*.flac") if p.stem not in seen)
    if stray:
        raise InputError(f"{len(stray)} .flac file(s) without a transcript line, e.g. {stray[0]}", trans)
    return out


def read_subset(subset_dir: str | os.PathLike, skip_bad: bool = False) -> DataDir:
    """Every chapter of a subset folder (``<reader>/<chapter>/``) as an in-memory data dir (audio headers read).

    With ``skip_bad`` a file whose header cannot be read is kept (a warning names it) and the data dir has no
    ``utt2dur``: feature extraction with ``--skip-bad`` then leaves it out and lists it.

    Raises:
        InputError: a malformed chapter (see :func:`read_chapter`), unreadable audio, no utterances.
    """
    subset_dir = Path(subset_dir)
    wav_scp, text, utt2spk, utt2dur = {}, {}, {}, {}
    bad: list[str] = []
    for reader_dir in sorted(p for p in subset_dir.iterdir() if p.is_dir()):
        for chapter_dir in sorted(p for p in reader_dir.iterdir() if p.is_dir()):
            speaker = f"{reader_dir.name}-{chapter_dir.name}"
            for utt, words, audio in read_chapter(chapter_dir):
                seconds = audio_header_seconds(audio, skip_bad=skip_bad)
                if seconds is None:
                    bad.append(utt)
                else:
                    utt2dur[utt] = seconds
                wav_scp[utt] = os.path.abspath(audio)
                text[utt] = words
                utt2spk[utt] = speaker
    if not wav_scp:
        raise InputError("no utterances (expected <reader>/<chapter>/<reader>-<chapter>-<n>.flac)", subset_dir)
    return DataDir(wav_scp, text, utt2spk, utt2dur=None if bad else utt2dur)


def prepare_librispeech(
    root: str | os.PathLike,
    out: str | os.PathLike,
    subsets: Sequence[str] = MINI_SUBSETS,
    skip_bad: bool = False,
) -> dict[str, Path]:
    """Write each subset as a data directory ``out/<subset with underscores>``.

    Args:
        root: the corpus folder (holds ``LibriSpeech/<subset>/`` or ``<subset>/``).
        out: where to write (e.g. ``data/librispeech``).
        subsets: the subset folder names (default mini_librispeech's two).
        skip_bad: keep files whose audio header cannot be read (see :func:`read_subset`) instead of stopping.

    Returns:
        ``{data dir name: path}``, each validated (audio headers read).

    Raises:
        InputError: a subset missing (the message says what to download), a malformed corpus (file and line).
    """
    base = corpus_dir(root)
    missing = [s for s in subsets if not (base / s).is_dir()]
    if missing:
        urls = " ".join(subset_url(s) for s in missing)
        raise InputError(
            f"LibriSpeech subset(s) {', '.join(missing)} not found under {base}. Download {urls} (see {HOMEPAGE}) "
            f"and unpack them in {Path(root)}, or run: python -m asr.data.prepare librispeech --root {root} --download",
            base,
        )
    genders: dict[str, str] = {}
    if (base / "SPEAKERS.TXT").is_file():
        genders = read_speakers_txt(base / "SPEAKERS.TXT")
    out = Path(out)
    result = {}
    for subset in subsets:
        data = read_subset(base / subset, skip_bad)
        readers = {spk: spk.split("-")[0] for spk in set(data.utt2spk.values())}
        name = data_dir_name(subset)
        if all(r in genders for r in readers.values()):
            data.spk2gender = {spk: genders[r] for spk, r in readers.items()}
        else:
            log.info("%s: no spk2gender (SPEAKERS.TXT absent or incomplete)", subset)
            (out / name / "spk2gender").unlink(missing_ok=True)  # stale from an earlier run
        result[name] = write_data_dir(data, out / name)
        # audio headers are read unless some were unreadable and kept (skip_bad): then feature extraction checks
        log.info("%s", validate_data_dir(out / name, check_audio=data.utt2dur is not None))
    return result


# ---------------------------------------------------------------------------------------------- download
def download_file(url: str, dest: str | os.PathLike) -> Path:
    """Fetch ``url`` to ``dest`` (atomically: an interrupted download leaves nothing); returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
        shutil.copyfileobj(response, f, length=1 << 20)
    return dest


def download_librispeech(root: str | os.PathLike, subsets: Sequence[str] = MINI_SUBSETS, *, lm: bool = True) -> None:
    """Download and unpack the subsets missing under ``root/LibriSpeech`` and, with ``lm``, the files of
    :data:`LM_FILES` missing from ``root/lm`` (openslr 11).

    Each archive is unpacked beside ``root`` and its ``LibriSpeech/<subset>`` moved into place (with the
    archive's ``SPEAKERS.TXT`` and other top files when ``root/LibriSpeech`` lacks them).
    """
    from asr.data.prepare import download_and_unpack

    root = Path(root)
    base = root / "LibriSpeech"
    for subset in subsets:
        if (base / subset).is_dir():
            continue
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{subset}.") as tmp:
            unpacked = download_and_unpack(subset_url(subset), Path(tmp) / "unpacked", strip_top=True)
            if not (unpacked / subset).is_dir():
                raise AsrError(f"{subset_url(subset)}: the archive holds no LibriSpeech/{subset} folder")
            base.mkdir(exist_ok=True)
            for entry in unpacked.iterdir():
                if entry.is_file() and not (base / entry.name).exists():
                    shutil.move(str(entry), str(base / entry.name))
            shutil.move(str(unpacked / subset), str(base / subset))
        log.info("%s unpacked to %s", subset, base / subset)
    if lm:
        for name in LM_FILES:
            if not (root / "lm" / name).is_file():
                download_file(LM_URL.format(name=name), root / "lm" / name)


# ---------------------------------------------------------------------------------------------- LM files
def _open_text(path: Path) -> io.TextIOBase:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e


def _arpa_lines(path: Path) -> Iterator[tuple[int, str]]:
    with _open_text(path) as f:
        try:
            for number, line in enumerate(f, start=1):
                yield number, line.rstrip("\n")
        except (UnicodeDecodeError, OSError, EOFError) as e:
            raise InputError(f"cannot read ARPA file: {e}", path) from e


def arpa_words(path: str | os.PathLike) -> list[str]:
    """The unigrams of an ARPA file (plain or ``.gz``) without ``<s>`` and ``</s>``, in file order.

    Raises:
        InputError: unreadable, or no ``\\1-grams:`` section.
    """
    path = Path(path)
    words: list[str] = []
    in_unigrams = False
    for number, line in _arpa_lines(path):
        stripped = line.strip()
        if stripped.startswith("\\"):
            if in_unigrams:
                return words
            in_unigrams = stripped == "\\1-grams:"
            continue
        if in_unigrams and stripped:
            fields = stripped.split()
            if len(fields) < 2:
                raise InputError("expected '<log10 prob> <word> [<back-off>]'", path, number)
            if fields[1] not in ARPA_SPECIAL:
                words.append(fields[1])
    if not in_unigrams:
        raise InputError("no \\1-grams: section (is this an ARPA file?)", path)
    return words


def filter_arpa(src: str | os.PathLike, dest: str | os.PathLike, vocabulary: Iterable[str]) -> tuple[int, ...]:
    """Copy an ARPA LM keeping only the n-grams whose words are all in ``vocabulary`` (plus ``<s>``, ``</s>``).

    The probabilities and back-off weights of what is kept are unchanged (the dropped mass is not
    renormalized, as in Kaldi's ``format_lm.sh``/SRILM's ``-limit-vocab``), the ``\\data\\`` counts are
    rewritten. Since a kept n-gram's words are all in the vocabulary, so are those of its prefix and
    suffix: filtering makes no n-gram lose a lower-order entry it had.

    Args:
        src: the ARPA file, plain or ``.gz``.
        dest: the ARPA file to write (plain text, atomically).
        vocabulary: the words to keep.

    Returns:
        The n-gram counts written, per order.

    Raises:
        InputError: a malformed file (no ``\\data\\``, an n-gram line with too few fields), file and line.
    """
    src, dest = Path(src), Path(dest)
    keep = set(vocabulary) | ARPA_SPECIAL
    sections: dict[int, list[str]] = {}
    declared: dict[int, int] = {}
    order = 0
    state = "start"
    for number, line in _arpa_lines(src):
        stripped = line.strip()
        if state == "start":
            if stripped == "\\data\\":
                state = "data"
            continue
        if stripped == "\\end\\":
            state = "end"
            break
        m = re.fullmatch(r"\\(\d+)-grams:", stripped)
        if m:
            order = int(m.group(1))
            sections[order] = []
            state = "ngrams"
            continue
        if not stripped:
            continue
        if state == "data":
            m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", stripped)
            if m is None:
                raise InputError("expected 'ngram N=COUNT' in the \\data\\ section", src, number)
            declared[int(m.group(1))] = int(m.group(2))
            continue
        fields = stripped.split()
        if len(fields) < order + 1:
            raise InputError(f"a {order}-gram line needs a probability and {order} words", src, number)
        if all(w in keep for w in fields[1 : order + 1]):
            sections[order].append(stripped)
    if state == "start":
        raise InputError("no \\data\\ section (is this an ARPA file?)", src)
    if state != "end":
        raise InputError("no \\end\\ line (truncated file?)", src)
    if sorted(sections) != sorted(declared):
        raise InputError(f"\\data\\ declares orders {sorted(declared)}, the file has {sorted(sections)}", src)
    counts = tuple(len(sections[n]) for n in sorted(sections))
    with atomic_write(dest) as f:
        f.write("\n\\data\\\n")
        for n in sorted(sections):
            f.write(f"ngram {n}={len(sections[n])}\n")
        for n in sorted(sections):
            f.write(f"\n\\{n}-grams:\n")
            for line in sections[n]:
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    log.info(
        "%s -> %s: kept n-grams %s of %s",
        src,
        dest,
        "/".join(str(c) for c in counts),
        "/".join(str(declared[n]) for n in sorted(declared)),
    )
    return counts


def make_lexicon(source: str | os.PathLike, words: Iterable[str], out: str | os.PathLike):
    """Write the pronunciations of ``words`` found in ``source`` (``"cmudict"`` or a lexicon file) to ``out``.

    Returns:
        ``(lexicon, missing)``: the :class:`asr.lang.lexicon.Lexicon` written and the sorted words that
        ``source`` lacks.
    """
    from asr.lang.lexicon import load_cmudict, read_lexicon

    wanted = set(words)
    if os.fspath(source) == "cmudict":
        lexicon = load_cmudict(wanted)
    else:
        lexicon = read_lexicon(source).restrict(wanted)
    if not len(lexicon):
        raise InputError(f"none of the {len(wanted)} words is in the lexicon", None if source == "cmudict" else source)
    missing = sorted(wanted - set(lexicon.words))
    lexicon.write(out)
    return lexicon, missing


def _text_words(paths: Iterable[str | os.PathLike]) -> set[str]:
    from asr.lang.transcripts import iter_transcripts

    return {w for t in iter_transcripts(paths) for w in t.words}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``lexicon`` and ``filter-arpa`` (see the module docstring); exit 1 with a message on bad input."""
    from asr.lang.prepare_lm import lm_vocabulary
    from asr.lang.symbol_table import SymbolTable
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(prog="python -m asr.data.corpora.librispeech", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lex = sub.add_parser("lexicon", help="a lexicon for the LM's and the texts' words")
    lex.add_argument("--source", required=True, help="'cmudict' or a lexicon file (librispeech-lexicon.txt)")
    lex.add_argument("--arpa", help="ARPA LM (plain or .gz) whose unigrams need pronunciations")
    lex.add_argument("--words-from", nargs="*", default=[], help="Kaldi text files whose words need pronunciations")
    lex.add_argument("--out", required=True, help="lexicon file to write")
    flt = sub.add_parser("filter-arpa", help="drop the n-grams holding words the lang lacks")
    flt.add_argument("--arpa", required=True, help="ARPA LM (plain or .gz)")
    flt.add_argument("--lang", required=True, help="lang dir (its words.txt is the vocabulary)")
    flt.add_argument("--out", required=True, help="ARPA file to write")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.command == "lexicon":
            lm_words = set(arpa_words(args.arpa)) if args.arpa else set()
            text_words = _text_words(args.words_from)
            lexicon, missing = make_lexicon(args.source, lm_words | text_words, args.out)
            log.info(
                "wrote %s: %d words (%d pronunciations) from %s; without a pronunciation: %d of the LM's %d words, "
                "%d of the texts' %d words%s",
                args.out,
                len(lexicon),
                lexicon.num_pronunciations,
                args.source,
                len(lm_words.intersection(missing)),
                len(lm_words),
                len(text_words.intersection(missing)),
                len(text_words),
                f" (e.g. {' '.join(sorted(text_words.intersection(missing))[:10])})"
                if text_words.intersection(missing)
                else "",
            )
        else:
            vocab = lm_vocabulary(SymbolTable.read(Path(args.lang) / "words.txt"))
            filter_arpa(args.arpa, args.out, vocab)
    except (AsrError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
