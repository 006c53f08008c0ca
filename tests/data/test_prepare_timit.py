"""asr.data.corpora.timit on a tiny corpus laid out like TIMIT (espeak-ng voices, NIST SPHERE headers, .PHN
segmentations), the Lee & Hon folding, and recipes/timit/run.sh on it (data, phone lang + bigram, features,
monophone GMM, decode scored as PER)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from corpus_fixtures import TimitFixture, lowercase_copy, make_timit_fixture, sphere_header

from asr.data.corpora.timit import (
    DEV_SPEAKERS_FILE,
    PHONE_MAP_FILE,
    TEST_SPEAKERS_FILE,
    check_audio,
    prepare_timit,
    read_phn,
    read_phone_map,
    read_speaker_list,
    read_sphere_header,
)
from asr.data.datadir import read_data_dir
from asr.data.prepare import main as prepare_main
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError, InputError
from asr.lang.lexicon import read_lexicon

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "recipes" / "timit" / "local"


@pytest.fixture(scope="module")
def timit(tmp_path_factory: pytest.TempPathFactory) -> TimitFixture:
    return make_timit_fixture(tmp_path_factory.mktemp("timit_corpus"))


@pytest.fixture(scope="module")
def timit_sets(timit: TimitFixture, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_timit(timit.root, tmp_path_factory.mktemp("timit_data"))


def test_resources():
    mapping = read_phone_map(PHONE_MAP_FILE)
    assert len(mapping.labels) == 61
    assert len(mapping.phone_set("48")) == 48 and len(mapping.phone_set("39")) == 39
    assert mapping.to48["q"] is None and mapping.to39["q"] is None
    assert [mapping.to39[p] for p in ("ao", "ax-h", "axr", "ix", "el", "en", "nx", "zh", "hv", "ux", "epi")] == [
        "aa", "ah", "er", "ih", "l", "n", "n", "sh", "hh", "uw", "sil",
    ]  # fmt: skip
    assert {mapping.to48[p] for p in ("bcl", "dcl", "gcl")} == {"vcl"} and mapping.to48["kcl"] == "cl"
    assert all(mapping.to39[p] == "sil" for p in ("bcl", "pcl", "h#", "pau"))
    assert mapping.fold(["h#", "q", "ax", "bcl", "b"], "48") == ["sil", "ax", "vcl", "b"]
    assert mapping.fold(["h#", "q", "ax"], "61") == ["h#", "q", "ax"]
    dev, test = read_speaker_list(DEV_SPEAKERS_FILE), read_speaker_list(TEST_SPEAKERS_FILE)
    assert len(dev) == len(set(dev)) == 50 and len(test) == len(set(test)) == 24 and not set(dev) & set(test)
    assert sum(s.startswith("f") for s in test) == 8  # one woman per dialect region
    lexicon = read_lexicon(LOCAL / "lexicon_39.txt", strip_stress_digits=False)
    assert lexicon.words == mapping.phone_set("39")  # one word per scoring class, one distinct unit each
    units = [lexicon.pronunciations(w)[0] for w in lexicon.words]
    assert all(len(u) == 1 for u in units) and len(set(units)) == 39
    assert lexicon.pronunciations("sil") == [("SIL",)] and lexicon.pronunciations("dx") == [("ZH",)]


def test_sets_ids_and_folded_text(timit: TimitFixture, timit_sets: dict[str, Path]):
    mapping = read_phone_map()
    train, dev, test = (read_data_dir(timit_sets[s]) for s in ("train", "dev", "test"))
    assert set(train.utt2spk.values()) == {"fcjf0", "mdpk0", "maeb0", "faem0"}
    assert set(dev.utt2spk.values()) == {"faks0"} and set(test.utt2spk.values()) == {"mdab0"}  # mzzz0 in neither
    assert len(train.utt_ids) == 16 and len(dev.utt_ids) == 4 and len(test.utt_ids) == 4
    assert not any("-sa" in u for d in (train, dev, test) for u in d.utt_ids)  # SA sentences left out
    assert test.spk2gender == {"mdab0": "m"} and train.spk2gender["fcjf0"] == "f"
    for data in (train, dev, test):
        for utt, text in data.text.items():
            assert text.split() == mapping.fold(timit.labels[utt], "39")
            assert data.wav_scp[utt] == str(timit.audio[utt])
    utt = test.utt_ids[0]
    labels = timit.labels[utt]
    assert labels[0] == "h#" and test.text[utt].startswith("sil ") and test.text[utt].endswith(" sil")
    assert "q" in {lab for u in train.utt_ids for lab in timit.labels[u]}  # deleted on the way
    assert {"ax", "ix", "tcl"} <= {lab for u in train.utt_ids for lab in timit.labels[u]}
    summary = validate_data_dir(timit_sets["train"])  # soundfile reads the SPHERE files
    assert summary.sample_rates == {16000: 16}
    assert sum(train.utt2dur.values()) == pytest.approx(summary.total_seconds, abs=0.02)


def test_lowercase_layout_and_cli(timit: TimitFixture, tmp_path: Path, capsys: pytest.CaptureFixture):
    fixture = lowercase_copy(timit, tmp_path / "corpus" / "TIMIT")
    assert (fixture.root / "train" / "dr1" / "fcjf0" / "sa1.wav").is_file()
    out = tmp_path / "out"
    assert prepare_main(["timit", "--root", str(tmp_path / "corpus"), "--out", str(out), "--phone-set", "48"]) == 0
    assert "test " + str(out / "test") in capsys.readouterr().out
    test = read_data_dir(out / "test")
    assert len(test.utt_ids) == 4 and all(u.startswith("mdab0-s") for u in test.utt_ids)
    assert test.wav_scp[test.utt_ids[0]] == str(fixture.audio[test.utt_ids[0]])
    mapping = read_phone_map()
    for utt, text in test.text.items():
        assert text.split() == mapping.fold(fixture.labels[utt], "48")


def test_speaker_lists(timit: TimitFixture, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level("WARNING", logger="asr.data.corpora.timit")
    sets = prepare_timit(timit.root, tmp_path / "a", dev_speakers=["mzzz0"], test_speakers=["MDAB0", "mnot0"])
    assert set(read_data_dir(sets["dev"]).utt2spk.values()) == {"mzzz0"}
    assert "1 of the 2 test speakers are missing: mnot0" in caplog.text
    with pytest.raises(InputError, match="none of the 1 dev speakers"):
        prepare_timit(timit.root, tmp_path / "b", dev_speakers=["mnot0"])
    with pytest.raises(ConfigError, match="both the dev and the test list: mdab0"):
        prepare_timit(timit.root, tmp_path / "c", dev_speakers=["mdab0"], test_speakers=["mdab0"])
    with pytest.raises(ConfigError, match="phone_set"):
        prepare_timit(timit.root, tmp_path / "d", phone_set="40")


def test_sphere_headers(timit: TimitFixture, tmp_path: Path):
    wav = timit.audio["mdab0-sa1"]
    header = read_sphere_header(wav)
    assert header["sample_rate"] == 16000 and header["sample_byte_format"] == "01" and "sample_coding" not in header
    samples, rate = soundfile.read(str(wav), dtype="int16")
    assert rate == 16000 and len(samples) == header["sample_count"]
    assert int(samples.min()) == header["sample_min"] and int(samples.max()) == header["sample_max"]
    assert read_sphere_header(timit.root / "TRAIN" / "DR1" / "FCJF0" / "SA1.PHN") is None
    # a shorten-compressed file (as on some copies of the corpus) is refused with what to do
    shorten = tmp_path / "SI1.WAV"
    head = sphere_header(100, "x", 0, 0).replace(
        b"end_head", b"sample_coding -s26 pcm,embedded-shorten-v2.00\nend_head"
    )
    shorten.write_bytes(head[:1024] + b"\0" * 50)
    with pytest.raises(InputError, match="shorten-compressed.*sph2pipe") as err:
        check_audio(shorten)
    assert err.value.path == str(shorten)
    ulaw = tmp_path / "SI2.WAV"
    ulaw.write_bytes(sphere_header(100, "x", 0, 0).replace(b"end_head", b"sample_coding -s4 ulaw\nend_head")[:1024])
    with pytest.raises(InputError, match="'ulaw' is not supported"):
        check_audio(ulaw)
    truncated = tmp_path / "SI3.WAV"
    truncated.write_bytes(b"NIST_1A\n   1024\nsample_rate -i 16000\n")
    with pytest.raises(InputError, match="truncated"):
        check_audio(truncated)
    riff = tmp_path / "SI4.WAV"
    soundfile.write(str(riff), np.zeros(800, dtype=np.int16), 16000, format="WAV")
    assert check_audio(riff) == pytest.approx(0.05)


def test_phn_errors(tmp_path: Path):
    labels = read_phone_map().labels
    phn = tmp_path / "SI1.PHN"
    phn.write_text("0 100 h#\n100 300 AX\n300 400 h#\n")
    assert read_phn(phn, labels) == [(0, 100, "h#"), (100, 300, "ax"), (300, 400, "h#")]
    for content, line, message in [
        ("0 100 h#\n100 300 zz\n", 2, "unknown TIMIT phone 'zz'"),
        ("0 100 h#\n100 h#\n", 2, "expected '<start sample> <end sample> <phone>'"),
        ("0 100 h#\n300 200 s\n", 2, "bad segment 300..200"),
        ("50 100 h#\n10 20 s\n", 2, "before the previous one"),
        ("0 1.5 h#\n", 1, "must be integers"),
    ]:
        phn.write_text(content)
        with pytest.raises(InputError, match=message) as err:
            read_phn(phn, labels)
        assert (err.value.path, err.value.line) == (str(phn), line)


def test_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(InputError, match="TIMIT corpus not found.*LDC93S1"):
        prepare_timit(tmp_path, tmp_path / "out")
    assert prepare_main(["timit", "--root", str(tmp_path), "--out", str(tmp_path / "out"), "--download"]) == 1
    assert "licensed by the LDC" in capsys.readouterr().err


@pytest.mark.slow
def test_recipe_stages_0_to_4(timit: TimitFixture, tmp_path: Path):
    """run.sh stages 0-4 with the checked-in lists (the fixture has one dev and one core test speaker): data,
    phone lang + bigram, features, mono GMM, graph, dev decode over LM weights, test decode, PER lines."""
    data, exp = tmp_path / "data", tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = ["bash", str(REPO / "recipes/timit/run.sh"), "--corpus", str(timit.root), "--data", str(data)]
    cmd += ["--exp", str(exp), "--stop-stage", "4", "--jobs", "1", "--lm-weights", "2:4"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    words = (data / "lang" / "words.txt").read_text().split()[::2]
    assert set(read_phone_map().phone_set("39")) <= set(words)
    assert (data / "lang_test_bg" / "G.fst").is_file()
    for set_name in ("dev", "test"):
        results = json.loads((exp / "mono" / f"decode_{set_name}" / "results.json").read_text())
        ref_phones = sum(len(t.split()) for t in read_data_dir(data / set_name).text.values())
        assert results["utts"] == 4 and results["words"] == ref_phones  # the "words" scored are phones
        assert f"exp/mono {set_name}: %PER {results['wer']:.2f} " in proc.stdout.replace(str(tmp_path) + "/", "")
    assert "timit recipe: done (stages 0..4)" in proc.stdout


def test_unreadable_wav_stops_or_is_kept_with_skip_bad(timit: TimitFixture, timit_sets, tmp_path: Path, caplog):
    """A test-set .WAV cut inside its SPHERE header: an InputError naming it; with ``skip_bad`` the utterance stays
    (a warning names it) and that set has no utt2dur; the other sets keep theirs."""
    import shutil

    root = tmp_path / "TIMIT"
    shutil.copytree(timit.root, root, symlinks=True)
    utt = read_data_dir(timit_sets["test"]).utt_ids[0]
    bad = root / timit.audio[utt].relative_to(timit.root)
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(InputError) as err:
        prepare_timit(root, tmp_path / "out")
    assert err.value.path == str(bad)
    caplog.set_level("WARNING", logger="asr.data.corpora.timit")
    sets = prepare_timit(root, tmp_path / "out", skip_bad=True)
    kept = [name for name, path in sets.items() if utt in read_data_dir(path).wav_scp]
    assert len(kept) == 1 and read_data_dir(sets[kept[0]]).utt2dur is None
    assert read_data_dir(sets["train"]).utt2dur is not None
    assert bad.name in caplog.text and "--skip-bad" in caplog.text
