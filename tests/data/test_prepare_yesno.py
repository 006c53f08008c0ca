"""asr.data.corpora.yesno on the real corpus: the Kaldi 31/29 split, transcripts from file names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asr.data.corpora.yesno import prepare_yesno, transcript_from_name
from asr.data.datadir import read_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import InputError


@pytest.fixture(scope="module")
def yesno_sets(yesno_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_yesno(yesno_root, tmp_path_factory.mktemp("yesno"))


def test_split_sizes_and_speaker(yesno_sets: dict[str, Path]):
    assert set(yesno_sets) == {"train", "test"}
    train, test = read_data_dir(yesno_sets["train"]), read_data_dir(yesno_sets["test"])
    assert (len(train.utt_ids), len(test.utt_ids)) == (31, 29)
    assert not set(train.utt_ids) & set(test.utt_ids)
    # Kaldi's split: the first 31 files in sorted order (those starting with 0_) train, the rest test
    assert all(u.startswith("yesno-0_") for u in train.utt_ids)
    assert all(u.startswith("yesno-1_") for u in test.utt_ids)
    assert set(train.utt2spk.values()) == set(test.utt2spk.values()) == {"yesno"}
    assert train.spk2gender == {"yesno": "m"}


@pytest.mark.parametrize(
    ("set_name", "utt", "transcript"),
    [
        ("train", "yesno-0_0_0_0_1_1_1_1", "NO NO NO NO YES YES YES YES"),
        ("train", "yesno-0_1_1_1_1_1_1_1", "NO YES YES YES YES YES YES YES"),
        ("test", "yesno-1_0_1_1_1_0_1_0", "YES NO YES YES YES NO YES NO"),
        ("test", "yesno-1_1_1_1_1_1_1_1", "YES YES YES YES YES YES YES YES"),
    ],
)
def test_known_transcripts(yesno_sets: dict[str, Path], set_name: str, utt: str, transcript: str):
    data = read_data_dir(yesno_sets[set_name])
    assert data.text[utt] == transcript
    assert Path(data.wav_scp[utt]).name == utt.removeprefix("yesno-") + ".wav"
    assert Path(data.wav_scp[utt]).is_absolute()


def test_output_is_valid_8k_audio(yesno_sets: dict[str, Path]):
    summary = validate_data_dir(yesno_sets["train"])
    assert summary.sample_rates == {8000: 31}
    assert 150 < summary.total_seconds < 250  # about 6 s a file


def test_transcript_from_name():
    assert transcript_from_name("1_0_0.wav") == "YES NO NO"
    with pytest.raises(InputError, match="not a yes/no file name"):
        transcript_from_name("yes_no.wav")


def test_missing_corpus_says_what_to_download(tmp_path: Path):
    with pytest.raises(InputError, match=r"https://www\.openslr\.org/resources/1/waves_yesno\.tar\.gz") as err:
        prepare_yesno(tmp_path / "nowhere", tmp_path / "out")
    assert "--download" in str(err.value)


def test_odd_wav_name_is_refused(yesno_root: Path, tmp_path: Path):
    waves = tmp_path / "yesno" / "waves_yesno"
    waves.mkdir(parents=True)
    for wav in sorted((yesno_root / "waves_yesno").glob("*.wav"))[:40]:
        (waves / wav.name).symlink_to(wav)
    shutil.copy(yesno_root / "waves_yesno" / "1_1_1_1_1_1_1_1.wav", waves / "maybe.wav")
    with pytest.raises(InputError, match="not a yes/no file name") as err:
        prepare_yesno(tmp_path / "yesno", tmp_path / "out")
    assert err.value.path == str(waves / "maybe.wav")
