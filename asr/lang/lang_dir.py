"""The lang directory (Kaldi's ``data/lang``) and its loader :class:`Lang`.

Layout (written by :func:`asr.lang.prepare_lang.prepare_lang`):

- ``phones.txt``: ``<eps>`` 0, ``SIL`` 1, ``SPN`` 2, non-silence phones sorted from 3, ``#0``, ``#1``, ... last
- ``words.txt``: ``<eps>`` 0, the words sorted, then ``#0``, ``<s>``, ``</s>``
- ``lexicon.txt`` (``WORD PH PH``) and ``lexiconp.txt`` (``WORD prob PH PH``)
- ``L.fst`` (no disambiguation symbols) and ``L_disambig.fst``, both arcsorted by olabel
- ``phones/silence.txt``, ``phones/nonsilence.txt``, ``phones/disambig.txt``, ``phones/optional_silence.txt``
  (phone names, one a line) and the same as ``.int`` (phone ids), as in Kaldi; ``phones/wdisambig_phones.int``
  and ``phones/wdisambig_words.int`` (the ``#0`` ids)
- ``oov.txt`` / ``oov.int`` (the OOV word and its id) when an OOV word is configured
- ``G.fst`` once a grammar was added (:mod:`asr.lang.grammar`), arcsorted by ilabel
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import kaldifst

from asr.errors import InputError
from asr.lang.lexicon import Lexicon, read_lexicon
from asr.lang.phones import SIL, SILENCE_PHONES, SPN, is_disambig
from asr.lang.symbol_table import SymbolTable

WORD_DISAMBIG = "#0"
BOS = "<s>"
EOS = "</s>"


def read_fst(path: str | os.PathLike) -> kaldifst.StdVectorFst:
    """Read a binary OpenFst file; InputError naming it if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError("FST file not found", path)
    try:
        fst = kaldifst.StdVectorFst.read(os.fspath(path))
    except RuntimeError as e:
        raise InputError(f"cannot read FST: {e}", path) from e
    if fst is None:
        raise InputError("cannot read FST", path)
    return fst


def write_fst(fst: kaldifst.StdVectorFst, path: str | os.PathLike) -> None:
    """Write an FST atomically (binary OpenFst)."""
    from asr.atomic import atomic_path

    with atomic_path(path) as tmp:
        if not fst.write(os.fspath(tmp)):
            raise OSError(f"kaldifst could not write {tmp}")


def read_int_list(path: str | os.PathLike, table: SymbolTable) -> list[int]:
    """Read a Kaldi ``.int`` list (one id a line) and check every id is in ``table``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from e
    ids: list[int] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != 1 or not fields[0].isdigit():
            raise InputError(f"expected one integer id, got {line!r}", path, number)
        if int(fields[0]) not in table:
            raise InputError(f"id {fields[0]} not in the symbol table", path, number)
        ids.append(int(fields[0]))
    return ids


def check_phone_table(phones: SymbolTable, path: str | os.PathLike) -> None:
    """Check the team layout of ``phones.txt`` (SIL 1, SPN 2, disambiguation symbols last); InputError."""
    if phones.get(SIL) != 1 or phones.get(SPN) != 2:
        raise InputError(f"phones.txt must have {SIL} = 1 and {SPN} = 2", path)
    symbols = phones.symbols  # in id order
    if phones.max_id != len(phones) - 1:
        raise InputError("phone ids must be 0..N-1 without gaps", path)
    first_disambig = next((i for i, s in enumerate(symbols) if is_disambig(s)), len(symbols))
    if any(not is_disambig(s) for s in symbols[first_disambig:]):
        raise InputError("disambiguation symbols (#0, #1, ...) must come after every phone", path)
    if first_disambig == len(symbols) or symbols[first_disambig] != "#0":
        raise InputError("phones.txt has no #0", path)


class Lang:
    """A loaded lang directory.

    Attributes:
        dir: the directory.
        phones, words: symbol tables.
        lexicon: the lexicon (from ``lexiconp.txt`` when present, else ``lexicon.txt``).
        silence_phones, nonsilence_phones, disambig_phone_ids: phone id lists.
        oov_word, oov_id: the OOV word and its id (None when not configured).
        word_disambig_id: id of ``#0`` in words.txt; phone_backoff_id: id of ``#0`` in phones.txt.
        L, L_disambig, G: FSTs, read on first access (G is None when ``G.fst`` is absent).
    """

    def __init__(
        self,
        dir: Path,
        phones: SymbolTable,
        words: SymbolTable,
        lexicon: Lexicon,
        silence_phones: list[int],
        nonsilence_phones: list[int],
        disambig_phone_ids: list[int],
        oov_word: str | None = None,
    ):
        self.dir = dir
        self.phones = phones
        self.words = words
        self.lexicon = lexicon
        self.silence_phones = silence_phones
        self.nonsilence_phones = nonsilence_phones
        self.disambig_phone_ids = disambig_phone_ids
        self.oov_word = oov_word

    def __repr__(self) -> str:
        return (
            f"Lang({os.fspath(self.dir)!r}: {len(self.nonsilence_phones)} non-silence phones, "
            f"{len(self.lexicon)} words, {len(self.disambig_phone_ids)} disambiguation symbols)"
        )

    @property
    def oov_id(self) -> int | None:
        return None if self.oov_word is None else self.words.id(self.oov_word)

    @property
    def word_disambig_id(self) -> int:
        return self.words.id(WORD_DISAMBIG)

    @property
    def phone_backoff_id(self) -> int:
        return self.phones.id("#0")

    @property
    def num_phones(self) -> int:
        """Number of real phones (silence + non-silence), i.e. the largest phone id."""
        return len(self.silence_phones) + len(self.nonsilence_phones)

    @functools.cached_property
    def L(self) -> kaldifst.StdVectorFst:
        return read_fst(self.dir / "L.fst")

    @functools.cached_property
    def L_disambig(self) -> kaldifst.StdVectorFst:
        return read_fst(self.dir / "L_disambig.fst")

    @functools.cached_property
    def G(self) -> kaldifst.StdVectorFst | None:
        path = self.dir / "G.fst"
        return read_fst(path) if path.exists() else None

    @classmethod
    def load(cls, dir: str | os.PathLike) -> Lang:
        """Read and cross-check a lang directory (tables, lexicon, phone lists); FSTs are read lazily.

        Raises:
            InputError: a missing or malformed file, a lexicon word missing from words.txt, a lexicon
                phone missing from phones.txt, inconsistent phone lists; names the file (and line).
        """
        dir = Path(dir)
        if not dir.is_dir():
            raise InputError("lang directory not found", dir)
        phones = SymbolTable.read(dir / "phones.txt")
        check_phone_table(phones, dir / "phones.txt")
        words = SymbolTable.read(dir / "words.txt")
        for special in (WORD_DISAMBIG, BOS, EOS):
            if special not in words:
                raise InputError(f"words.txt has no {special}", dir / "words.txt")
        lexp = dir / "lexiconp.txt"
        lex_path = lexp if lexp.exists() else dir / "lexicon.txt"
        lexicon = read_lexicon(lex_path, with_probs=lex_path == lexp, strip_stress_digits=False)
        for number, line in enumerate(lex_path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if fields[0] not in words:
                raise InputError(f"lexicon word {fields[0]!r} is not in words.txt", lex_path, number)
            missing = [p for p in fields[2 if lex_path == lexp else 1 :] if p not in phones]
            if missing:
                raise InputError(f"word {fields[0]!r} uses phones missing from phones.txt: {missing}", lex_path, number)
        phones_dir = dir / "phones"
        silence = read_int_list(phones_dir / "silence.int", phones)
        nonsilence = read_int_list(phones_dir / "nonsilence.int", phones)
        disambig = read_int_list(phones_dir / "disambig.int", phones)
        expected_sil = [phones.id(p) for p in SILENCE_PHONES]
        if silence != expected_sil:
            raise InputError(
                f"silence phones must be {expected_sil} (SIL, SPN), got {silence}", phones_dir / "silence.int"
            )
        real = {i for s, i in phones if i != 0 and not is_disambig(s)}
        if set(silence) | set(nonsilence) != real or set(silence) & set(nonsilence):
            raise InputError(
                "silence.int and nonsilence.int must partition the phones of phones.txt", phones_dir / "nonsilence.int"
            )
        if sorted(disambig) != sorted(i for s, i in phones if is_disambig(s)):
            raise InputError("disambig.int must list exactly the #k symbols of phones.txt", phones_dir / "disambig.int")
        oov_word = None
        oov_path = dir / "oov.txt"
        if oov_path.exists():
            fields = oov_path.read_text(encoding="utf-8").split()
            if len(fields) != 1:
                raise InputError("oov.txt must hold exactly one word", oov_path, 1)
            oov_word = fields[0]
            if oov_word not in words:
                raise InputError(f"OOV word {oov_word!r} is not in words.txt", oov_path, 1)
        return cls(dir, phones, words, lexicon, silence, nonsilence, disambig, oov_word)
