"""asr.data.corpora.an4 on the real corpus: the speaker split, ids, cleaned transcripts, the test part."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asr.data.corpora.an4 import DEFAULT_DEV_SPEAKERS, make_utt_id, prepare_an4
from asr.data.datadir import read_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def an4_sets(an4_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_an4(an4_root, tmp_path_factory.mktemp("an4"))


def test_sets_sizes_and_speakers(an4_sets: dict[str, Path]):
    assert set(an4_sets) == {"train", "dev", "train_all"}  # no test part in the shared copy
    sizes = {}
    for name, path in an4_sets.items():
        data = read_data_dir(path)
        sizes[name] = (len(data.utt_ids), len(set(data.utt2spk.values())))
    assert sizes == {"train": (823, 64), "dev": (125, 10), "train_all": (948, 74)}
    train, dev = read_data_dir(an4_sets["train"]), read_data_dir(an4_sets["dev"])
    assert set(dev.utt2spk.values()) == set(DEFAULT_DEV_SPEAKERS)
    assert not set(train.utt2spk.values()) & set(dev.utt2spk.values())


def test_known_utterance(an4_sets: dict[str, Path], an4_root: Path):
    dev = read_data_dir(an4_sets["dev"])
    assert dev.text["fash-an251-b"] == "YES"
    assert dev.text["fash-an255-b"] == "U M N Y H SIX"
    assert dev.utt2spk["fash-an251-b"] == "fash"
    assert dev.wav_scp["fash-an251-b"] == str(an4_root.absolute() / "wav/an4_clstk/fash/an251-fash-b.wav")
    assert dev.spk2gender["fash"] == "f" and dev.spk2gender["mblb"] == "m"
    assert dev.utt2dur["fash-an251-b"] == pytest.approx(1.0, abs=1e-3)


def test_transcripts_are_clean(an4_sets: dict[str, Path], an4_root: Path):
    fillers = {line.split()[0] for line in (an4_root / "etc/an4.filler").read_text().splitlines() if line.strip()}
    data = read_data_dir(an4_sets["train_all"])
    words = {w for t in data.text.values() for w in t.split()}
    assert not words & (fillers | {"<s>", "</s>"})
    assert all(w == w.upper() for w in words)
    assert all(not w.startswith("<") for w in words)
    dictionary = {line.split()[0].split("(")[0] for line in (an4_root / "etc/an4.dic").read_text().splitlines()}
    assert words <= dictionary


def test_outputs_validate_and_local_files(an4_sets: dict[str, Path], an4_root: Path):
    summary = validate_data_dir(an4_sets["train_all"])
    assert summary.sample_rates == {16000: 948}
    assert summary.total_seconds / 60 == pytest.approx(42.4, abs=0.1)
    local = an4_sets["train"].parent / "local"
    for name in ("an4.dic", "an4.filler"):
        assert (local / name).read_bytes() == (an4_root / "etc" / name).read_bytes()


def test_make_utt_id():
    assert make_utt_id("fash", "an251-fash-b") == "fash-an251-b"
    assert make_utt_id("fash", "cen1-fash-b") == "fash-cen1-b"
    assert make_utt_id("spk", "rec7") == "spk-rec7"


def _fake_test_part(an4_root: Path, tmp_path: Path, with_test: bool = True) -> Path:
    """A corpus copy whose etc/ is real, wav/an4_clstk links to the real one, plus a fake test part made
    of 6 real training wavs of 2 speakers (test transcription lines carry no <s> </s>)."""
    root = tmp_path / "an4"
    (root / "etc").mkdir(parents=True)
    for name in ("an4_train.transcription", "an4_train.fileids", "an4.dic", "an4.filler", "an4.phone"):
        shutil.copy(an4_root / "etc" / name, root / "etc" / name)
    (root / "wav").mkdir()
    (root / "wav" / "an4_clstk").symlink_to(an4_root / "wav" / "an4_clstk")
    if not with_test:
        return root
    picks = {"fash": ["an251-fash-b", "cen1-fash-b", "an255-fash-b"], "mblb": ["an371-mblb-b", "an372-mblb-b"]}
    fileids, transcription = [], []
    originals = {}  # original id -> words with <s> </s>
    for line in (an4_root / "etc/an4_train.transcription").read_text().splitlines():
        words, original = line.rsplit(" (", 1)
        originals[original.rstrip(")")] = words
    for spk, ids in picks.items():
        (root / "wav" / "an4test_clstk" / spk).mkdir(parents=True)
        for original in ids:
            test_id = original.replace("-b", "-t")
            (root / "wav" / "an4test_clstk" / spk / f"{test_id}.wav").symlink_to(
                an4_root / "wav" / "an4_clstk" / spk / f"{original}.wav"
            )
            fileids.append(f"an4test_clstk/{spk}/{test_id}")
            words = originals[original].removeprefix("<s> ").removesuffix(" </s>")
            transcription.append(f"{words.lower() if spk == 'mblb' else words} ({test_id})")
    (root / "etc" / "an4_test.fileids").write_text("\n".join(fileids) + "\n")
    (root / "etc" / "an4_test.transcription").write_text("\n".join(transcription) + "\n")
    return root


def test_test_part_prepared_when_present(an4_root: Path, tmp_path: Path):
    root = _fake_test_part(an4_root, tmp_path)
    sets = prepare_an4(root, tmp_path / "out")
    assert set(sets) == {"train", "dev", "train_all", "test"}
    test = read_data_dir(sets["test"])
    assert len(test.utt_ids) == 5
    assert set(test.utt2spk.values()) == {"fash", "mblb"}
    assert test.text["fash-an251-t"] == "YES"
    assert test.text["fash-an255-t"] == "U M N Y H SIX"
    assert all(w == w.upper() for t in test.text.values() for w in t.split())  # mblb's lines were lower case
    assert test.wav_scp["fash-an251-t"] == str(root / "wav/an4test_clstk/fash/an251-fash-t.wav")
    assert validate_data_dir(sets["test"]).num_utts == 5


def test_test_part_absent_is_logged_and_skipped(an4_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    root = _fake_test_part(an4_root, tmp_path, with_test=False)
    caplog.set_level("INFO", logger="asr.data.corpora.an4")
    sets = prepare_an4(root, tmp_path / "out")
    assert "test" not in sets and not (tmp_path / "out" / "test").exists()
    assert "no AN4 test part" in caplog.text and "skipping the test set" in caplog.text


def test_test_part_partly_present_is_an_error(an4_root: Path, tmp_path: Path):
    root = _fake_test_part(an4_root, tmp_path)
    (root / "etc" / "an4_test.fileids").unlink()
    with pytest.raises(InputError, match="only partly present: missing .*an4_test.fileids"):
        prepare_an4(root, tmp_path / "out")


def test_test_part_id_without_transcript(an4_root: Path, tmp_path: Path):
    root = _fake_test_part(an4_root, tmp_path)
    trans = root / "etc" / "an4_test.transcription"
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # drop the 2nd transcript
    with pytest.raises(InputError, match="has no line in") as err:
        prepare_an4(root, tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(root / "etc" / "an4_test.fileids"), 2)


def test_malformed_transcription_line(an4_root: Path, tmp_path: Path):
    root = _fake_test_part(an4_root, tmp_path)
    trans = root / "etc" / "an4_test.transcription"
    trans.write_text(trans.read_text() + "NO ID ON THIS LINE\n")
    with pytest.raises(InputError, match=r"expected 'WORD WORD ... \(utterance-id\)'") as err:
        prepare_an4(root, tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(trans), 6)


def test_missing_audio(an4_root: Path, tmp_path: Path):
    root = _fake_test_part(an4_root, tmp_path)
    (root / "wav/an4test_clstk/mblb/an372-mblb-t.wav").unlink()
    with pytest.raises(InputError, match="audio not found") as err:
        prepare_an4(root, tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(root / "etc" / "an4_test.fileids"), 5)


def test_bad_dev_speaker(an4_root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="nobody"):
        prepare_an4(an4_root, tmp_path / "out", dev_speakers=("fash", "nobody"))


def test_missing_corpus_says_what_to_download(tmp_path: Path):
    with pytest.raises(InputError, match=r"http://www\.speech\.cs\.cmu\.edu/databases/an4/"):
        prepare_an4(tmp_path / "an4", tmp_path / "out")


def test_unreadable_audio_header_stops_or_is_kept_with_skip_bad(an4_root: Path, tmp_path: Path, caplog):
    """A truncated test wav: an InputError naming the fileids line; with ``skip_bad`` the utterance stays in the
    data dir (feature extraction --skip-bad leaves it out and lists it), a warning names it, no utt2dur."""
    root = _fake_test_part(an4_root, tmp_path)
    bad = root / "wav/an4test_clstk/fash/an255-fash-t.wav"
    data = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data[:30])
    with pytest.raises(InputError, match="cannot read audio header") as err:
        prepare_an4(root, tmp_path / "out")
    assert (err.value.path, err.value.line) == (str(root / "etc" / "an4_test.fileids"), 3)
    caplog.set_level("WARNING", logger="asr.data.corpora.an4")
    sets = prepare_an4(root, tmp_path / "out", skip_bad=True)
    test = read_data_dir(sets["test"])
    assert "fash-an255-t" in test.wav_scp and test.utt2dur is None and not (sets["test"] / "utt2dur").exists()
    assert "an255-fash-t.wav" in caplog.text and "--skip-bad" in caplog.text
    assert read_data_dir(sets["train"]).utt2dur is not None  # the other sets keep their durations
