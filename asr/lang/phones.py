"""The phone set: the 39 CMU (ARPAbet) phones without stress, plus ``SIL`` (silence) and ``SPN``
(spoken noise, the pronunciation of the OOV word ``<UNK>``).

Phone ids follow the team convention (conventions.md): ``<eps>`` 0, ``SIL`` 1, ``SPN`` 2, the
non-silence phones in sorted (C) order from 3, then the disambiguation symbols ``#0``, ``#1``, ...
Phones are position-independent (no ``_B``/``_E`` suffixes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from asr.lang.symbol_table import SymbolTable

#: The 39 CMUdict phones, stress removed.
CMU_PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH",
    "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
SIL = "SIL"
SPN = "SPN"
#: Silence phones, in id order (``SIL`` = 1, ``SPN`` = 2).
SILENCE_PHONES: tuple[str, ...] = (SIL, SPN)
#: Every phone a lexicon may use.
ALL_PHONES: frozenset[str] = frozenset(CMU_PHONES) | frozenset(SILENCE_PHONES)

_STRESS = re.compile(r"^([A-Z]+)[0-2]$")


def strip_stress(phone: str) -> str:
    """``"AH0"`` -> ``"AH"``; a phone without a stress digit is returned unchanged."""
    m = _STRESS.match(phone)
    return m.group(1) if m else phone


def is_disambig(symbol: str) -> bool:
    """True for disambiguation symbols ``#0``, ``#1``, ..."""
    return len(symbol) > 1 and symbol[0] == "#" and symbol[1:].isdigit()


def make_phone_table(nonsilence_phones: Iterable[str], num_disambig: int) -> SymbolTable:
    """Build ``phones.txt``: ``<eps>`` 0, ``SIL`` 1, ``SPN`` 2, sorted non-silence phones, ``#0..#(n-1)``.

    Args:
        nonsilence_phones: the non-silence phones (any order, duplicates ignored; must not include
            SIL/SPN or disambiguation symbols).
        num_disambig: how many disambiguation symbols (``#0`` .. ``#{num_disambig-1}``).
    Returns:
        the phone symbol table.
    """
    table = SymbolTable()
    for p in SILENCE_PHONES:
        table.add(p)
    for p in sorted(set(nonsilence_phones)):
        if p in SILENCE_PHONES or is_disambig(p) or p == "<eps>":
            raise ValueError(f"{p!r} is not a non-silence phone")
        table.add(p)
    for n in range(num_disambig):
        table.add(f"#{n}")
    return table
