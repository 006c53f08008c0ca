"""Helpers for the data tests: tiny wav files and hand-written data directories in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def write_wav(path: Path, seconds: float = 0.25, rate: int = 16000, channels: int = 1, freq: float = 440.0) -> Path:
    """Write a sine tone (channel c at ``freq * (c + 1)``) as 16-bit PCM wav; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * rate))) / rate
    samples = np.stack([0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1)
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write lines exactly as given (each followed by a newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


SPEAKERS = {"spkA": ["spkA-u1", "spkA-u2"], "spkB": ["spkB-u1", "spkB-u2", "spkB-u3"]}
TEXTS = {
    "spkA-u1": "HELLO WORLD",
    "spkA-u2": "YES",
    "spkB-u1": "NO NO",
    "spkB-u2": "ONE TWO THREE",
    "spkB-u3": "GO",
}


def make_data_dir(root: Path, name: str = "data", seconds: float = 0.25, rate: int = 16000) -> Path:
    """A valid data dir with 5 utterances of 2 speakers, audio in ``root/wav``, spk2gender and utt2dur.

    Files, each sorted: wav.scp, text, utt2spk, spk2utt, spk2gender, utt2dur. Utterance ``spkB-u2`` lasts
    ``2 * seconds``, the others ``seconds``.
    """
    data = root / name
    utts = [u for us in SPEAKERS.values() for u in us]
    durations = {u: (2 * seconds if u == "spkB-u2" else seconds) for u in utts}
    wavs = {u: write_wav(root / "wav" / f"{u}.wav", durations[u], rate) for u in utts}
    write_lines(data / "wav.scp", [f"{u} {wavs[u]}" for u in utts])
    write_lines(data / "text", [f"{u} {TEXTS[u]}" for u in utts])
    write_lines(data / "utt2spk", [f"{u} {u.split('-')[0]}" for u in utts])
    write_lines(data / "spk2utt", [f"{s} {' '.join(us)}" for s, us in SPEAKERS.items()])
    write_lines(data / "spk2gender", ["spkA f", "spkB m"])
    write_lines(data / "utt2dur", [f"{u} {durations[u]:.3f}" for u in utts])
    return data


def replace_line(path: Path, old: str, new: str | None) -> None:
    """Replace the line ``old`` of a file by ``new`` (None deletes it); the line must exist."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert old in lines, f"{old!r} not in {path}"
    index = lines.index(old)
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    write_lines(path, lines)
