"""Scoring: Levenshtein alignment of hypotheses against references, WER with ins/del/sub, SER.

Inputs are Kaldi ``text`` files (``utt-id WORD WORD ...``). Every reference utterance is scored: one
missing from the hypotheses counts as all deletions and is listed in the report, never dropped. A
hypothesis for an utterance that has no reference is an error (it would otherwise be silently ignored).

CLI: ``python -m asr.score --ref data/an4/dev/text --hyp exp/an4/tri1/decode_dev/hyp.txt [--out-dir DIR]``
prints the WER line and, with ``--out-dir``, writes ``per_utt.txt`` and ``results.json`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import kaldialign

from asr.atomic import atomic_write
from asr.data.datadir import read_table
from asr.errors import InputError

EPS = "*"


@dataclass
class UttScore:
    """One utterance: reference and hypothesis words, the alignment and its error counts."""

    utt: str
    ref: list[str]
    hyp: list[str]
    alignment: list[tuple[str, str]]
    ins: int
    dels: int
    sub: int
    missing: bool = False

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.sub


@dataclass
class Score:
    """Totals over a set: ``wer`` and ``ser`` in percent, counts of words, errors and utterances."""

    words: int
    ins: int
    dels: int
    sub: int
    utts: int
    utts_with_errors: int
    missing: list[str] = field(default_factory=list)
    per_utt: list[UttScore] = field(default_factory=list, repr=False)

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.sub

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / self.words if self.words else 0.0

    @property
    def ser(self) -> float:
        return 100.0 * self.utts_with_errors / self.utts if self.utts else 0.0

    def summary(self, label: str = "WER") -> str:
        """Kaldi-style one-liner: ``%WER 8.35 [ 58 / 695, 10 ins, 20 del, 28 sub ]``; ``label`` replaces ``WER``
        (``"PER"`` when the words are phones, as in TIMIT)."""
        line = (
            f"%{label} {self.wer:.2f} [ {self.errors} / {self.words}, {self.ins} ins, {self.dels} del, {self.sub} sub ]"
            f" %SER {self.ser:.2f} [ {self.utts_with_errors} / {self.utts} ]"
        )
        if self.missing:
            line += f" ({len(self.missing)} utterances without hypothesis, scored as deletions)"
        return line

    def as_dict(self) -> dict:
        """The scoring fields of results.json (DESIGN.md): wer, words, ins, del, sub, ser, utts."""
        return {
            "wer": round(self.wer, 4),
            "words": self.words,
            "ins": self.ins,
            "del": self.dels,
            "sub": self.sub,
            "ser": round(self.ser, 4),
            "utts": self.utts,
            "missing_hyps": list(self.missing),
        }


def score_utterance(utt: str, ref: Sequence[str], hyp: Sequence[str]) -> UttScore:
    """Align one hypothesis with its reference; returns the counts and the word alignment."""
    ref, hyp = list(ref), list(hyp)
    alignment = kaldialign.align(ref, hyp, EPS) if (ref or hyp) else []
    ins = sum(1 for r, _ in alignment if r == EPS)
    dels = sum(1 for _, h in alignment if h == EPS)
    sub = sum(1 for r, h in alignment if r != EPS and h != EPS and r != h)
    return UttScore(utt, ref, hyp, [tuple(p) for p in alignment], ins, dels, sub)


def score_texts(refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]]) -> Score:
    """Score hypotheses against references, both ``{utt: [words]}``.

    Returns a :class:`Score` over all reference utterances (sorted by id). Raises InputError when a
    hypothesis names an utterance that has no reference.
    """
    extra = sorted(set(hyps) - set(refs))
    if extra:
        raise InputError(f"{len(extra)} hypotheses have no reference, e.g. {extra[:3]}")
    per_utt: list[UttScore] = []
    missing: list[str] = []
    for utt in sorted(refs):
        if utt in hyps:
            us = score_utterance(utt, refs[utt], hyps[utt])
        else:
            missing.append(utt)
            us = score_utterance(utt, refs[utt], [])
            us.missing = True
        per_utt.append(us)
    return Score(
        words=sum(len(u.ref) for u in per_utt),
        ins=sum(u.ins for u in per_utt),
        dels=sum(u.dels for u in per_utt),
        sub=sum(u.sub for u in per_utt),
        utts=len(per_utt),
        utts_with_errors=sum(1 for u in per_utt if u.errors),
        missing=missing,
        per_utt=per_utt,
    )


def read_text(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a Kaldi ``text`` file into ``{utt: [words]}`` (empty transcripts allowed, e.g. hypotheses)."""
    return {utt: line.split() for utt, line in read_table(path, allow_empty_value=True).items()}


def write_per_utt(score: Score, path: str | os.PathLike) -> None:
    """Write Kaldi-style per-utterance alignments: ``utt ref``, ``utt hyp``, ``utt op`` (C/S/I/D) and counts."""
    with atomic_write(path) as f:
        for u in score.per_utt:
            ops = []
            for r, h in u.alignment:
                ops.append("I" if r == EPS else "D" if h == EPS else "C" if r == h else "S")
            width = [max(len(r), len(h), 1) for r, h in u.alignment]
            f.write(f"{u.utt} ref  " + " ".join(r.ljust(w) for (r, _), w in zip(u.alignment, width)) + "\n")
            f.write(f"{u.utt} hyp  " + " ".join(h.ljust(w) for (_, h), w in zip(u.alignment, width)) + "\n")
            f.write(f"{u.utt} op   " + " ".join(o.ljust(w) for o, w in zip(ops, width)) + "\n")
            corr = sum(1 for o in ops if o == "C")
            tag = " (no hypothesis)" if u.missing else ""
            f.write(f"{u.utt} #csid {corr} {u.sub} {u.ins} {u.dels}{tag}\n")


def git_commit() -> str | None:
    """The current git commit of the source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_results_json(path: str | os.PathLike, score: Score, **fields) -> dict:
    """Write results.json (DESIGN.md): the score fields plus any given fields (corpus, set, system, model,
    lm_weight, acoustic_scale, decode_seconds, audio_seconds, rtf, config...). Adds git_commit. Returns it."""
    results = {**fields, **score.as_dict()}
    results.setdefault("git_commit", git_commit())
    with atomic_write(path) as f:
        json.dump(results, f, indent=2, sort_keys=False)
        f.write("\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="reference text file (Kaldi format)")
    parser.add_argument("--hyp", required=True, help="hypothesis text file (Kaldi format)")
    parser.add_argument("--out-dir", help="write per_utt.txt and results.json here")
    parser.add_argument("--label", default="WER", help="name of the rate printed (PER for phone sequences)")
    args = parser.parse_args(argv)
    score = score_texts(read_text(args.ref), read_text(args.hyp))
    print(score.summary(args.label))
    if args.out_dir:
        out = Path(args.out_dir)
        write_per_utt(score, out / "per_utt.txt")
        write_results_json(out / "results.json", score, ref=str(args.ref), hyp=str(args.hyp))


if __name__ == "__main__":
    main()
