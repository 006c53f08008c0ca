"""Helpers for the feature tests: small data dirs made from the real corpora in tmp_path."""

from __future__ import annotations

from pathlib import Path

from asr.data.datadir import DataDir, write_data_dir


def make_yesno_dir(yesno_root: Path, out: Path, num: int = 4, speaker: str = "yesno") -> Path:
    """A data dir of the first ``num`` yesno files (8 kHz, one speaker); ids ``<speaker>-<name>``."""
    files = sorted((yesno_root / "waves_yesno").glob("*.wav"))[:num]
    assert len(files) == num, f"yesno corpus under {yesno_root} has fewer than {num} files"
    wav_scp, text, utt2spk = {}, {}, {}
    for f in files:
        utt = f"{speaker}-{f.stem}"
        wav_scp[utt] = str(f)
        text[utt] = " ".join("YES" if c == "1" else "NO" for c in f.stem.split("_"))
        utt2spk[utt] = speaker
    return write_data_dir(DataDir(wav_scp, text, utt2spk), out)


def make_an4_dir(an4_root: Path, out: Path, speakers: tuple[str, ...] = ("fash", "mblb"), per_speaker: int = 3) -> Path:
    """A data dir of ``per_speaker`` AN4 utterances of each speaker (16 kHz); ids ``<spk>-<original id>``."""
    wav_scp, text, utt2spk = {}, {}, {}
    for spk in speakers:
        files = sorted((an4_root / "wav" / "an4_clstk" / spk).glob("*.wav"))[:per_speaker]
        assert len(files) == per_speaker, f"AN4 speaker {spk} has fewer than {per_speaker} files"
        for f in files:
            utt = f"{spk}-{f.stem}"
            wav_scp[utt] = str(f)
            text[utt] = "X"
            utt2spk[utt] = spk
    return write_data_dir(DataDir(wav_scp, text, utt2spk), out)
