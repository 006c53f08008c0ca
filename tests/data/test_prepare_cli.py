"""python -m asr.data.prepare: dispatch, default corpus root, missing corpora, download-and-unpack."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from datadir_helpers import write_wav

from asr.data.datadir import read_data_dir
from asr.data.prepare import corpora_dir, download_and_unpack, main
from asr.errors import AsrError

REPO = Path(__file__).resolve().parents[2]


def test_cli_prepares_yesno(yesno_root: Path, tmp_path: Path):
    out = tmp_path / "data" / "yesno"
    proc = subprocess.run(
        [sys.executable, "-m", "asr.data.prepare", "yesno", "--root", str(yesno_root), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["train", str(out / "train"), "test", str(out / "test")]
    assert len(read_data_dir(out / "test").utt_ids) == 29
    assert "29 utterances" in proc.stderr  # the validation summary is logged


def test_root_defaults_to_asr_corpora_relative_to_the_current_dir(
    corpora_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.delenv("ASR_CORPORA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert corpora_dir() == (tmp_path / ".." / "shared" / "corpora").resolve()
    (tmp_path / "work").mkdir()
    (tmp_path / "corpora").symlink_to(corpora_root)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("ASR_CORPORA", "../corpora")
    assert main(["an4"]) == 0  # --root from $ASR_CORPORA, --out data/an4, both relative to the current dir
    assert len(read_data_dir(tmp_path / "work" / "data" / "an4" / "train").utt_ids) == 823
    assert "train_all data/an4/train_all" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("corpus", "url"),
    [("an4", "http://www.speech.cs.cmu.edu/databases/an4/"), ("yesno", "https://www.openslr.org/1/")],
)
def test_missing_corpus_message(corpus: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main([corpus, "--root", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "corpus not found" in err
    assert url in err and "--download" in err
    assert not (tmp_path / "out").exists()


def test_an4_dev_speakers_option(an4_root: Path, tmp_path: Path):
    assert main(["an4", "--root", str(an4_root), "--out", str(tmp_path), "--dev-speakers", "fash,mblb"]) == 0
    assert len(set(read_data_dir(tmp_path / "dev").utt2spk.values())) == 2
    assert len(set(read_data_dir(tmp_path / "train").utt2spk.values())) == 72


def _tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_download_and_unpack_from_a_file_url(tmp_path: Path):
    # the same code path as --download, fed a local archive through a file:// URL (no network here)
    wav = write_wav(tmp_path / "x.wav").read_bytes()
    yesno_like = _tar_gz(tmp_path / "waves.tar.gz", {"waves_yesno/1_0.wav": wav, "waves_yesno/README": b"hi\n"})
    dest = download_and_unpack(yesno_like.as_uri(), tmp_path / "corpora" / "yesno", strip_top=False)
    assert (dest / "waves_yesno" / "1_0.wav").read_bytes() == wav
    an4_like = _tar_gz(tmp_path / "an4.tar.gz", {"an4/etc/an4.dic": b"A AH\n", "an4/wav/x.wav": wav})
    dest = download_and_unpack(an4_like.as_uri(), tmp_path / "corpora" / "an4", strip_top=True)
    assert (dest / "etc" / "an4.dic").read_text() == "A AH\n"
    assert not list((tmp_path / "corpora").glob(".*download*"))  # the temporary folders are gone
    with pytest.raises(AsrError, match="not empty"):
        download_and_unpack(an4_like.as_uri(), dest, strip_top=True)


def test_unpack_refuses_paths_outside_the_destination(tmp_path: Path):
    evil = _tar_gz(tmp_path / "evil.tar.gz", {"../../escaped.txt": b"x"})
    with pytest.raises(tarfile.TarError):
        download_and_unpack(evil.as_uri(), tmp_path / "c" / "x", strip_top=False)
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.slow
def test_cli_dispatches_synth(tmp_path: Path):
    pytest.importorskip("asr.data.corpora.synth", reason="the synth preparer is written in parallel")
    out = tmp_path / "synth"
    proc = subprocess.run(
        [sys.executable, "-m", "asr.data.prepare", "synth", "--out", str(out), "--minutes", "0.2", "--seed", "3"]
        + ["--snr-min", "15", "--snr-max", "20", "--jobs", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sets = dict(line.split() for line in proc.stdout.splitlines())
    assert "train" in sets
    assert read_data_dir(sets["train"]).utt_ids
