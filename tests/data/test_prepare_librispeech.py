"""asr.data.corpora.librispeech on a tiny corpus laid out like LibriSpeech (espeak-ng voices), the LM helpers,
and recipes/librispeech/run.sh stages 0-4 on it with an LM estimated from the fixture's text."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from corpus_fixtures import LIBRI_READERS, LibriFixture, make_librispeech_fixture

from asr.data.corpora import librispeech
from asr.data.corpora.librispeech import (
    LM_ARPA,
    LM_FILES,
    arpa_words,
    data_dir_name,
    download_librispeech,
    filter_arpa,
    make_lexicon,
    prepare_librispeech,
    read_chapter,
    subset_url,
)
from asr.data.datadir import read_data_dir
from asr.data.prepare import main as prepare_main
from asr.data.validate import validate_data_dir
from asr.errors import InputError
from asr.lang.ngram import NgramLM, train_ngram_lm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def libri(tmp_path_factory: pytest.TempPathFactory) -> LibriFixture:
    return make_librispeech_fixture(tmp_path_factory.mktemp("librispeech_corpus"))


@pytest.fixture(scope="module")
def libri_sets(libri: LibriFixture, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return prepare_librispeech(libri.root, tmp_path_factory.mktemp("librispeech_data"))


def test_sets_ids_texts_speakers(libri: LibriFixture, libri_sets: dict[str, Path]):
    assert set(libri_sets) == {"train_clean_5", "dev_clean_2"}
    for subset, readers in LIBRI_READERS.items():
        data = read_data_dir(libri_sets[data_dir_name(subset)])
        assert data.text == libri.texts[subset]  # ids are the file names, texts as in trans.txt
        speakers = {f"{reader}-{chapter}" for reader, (_, _, chapters) in readers.items() for chapter in chapters}
        assert set(data.utt2spk.values()) == speakers  # speaker = reader-chapter, as in Kaldi
        assert all(utt.startswith(spk + "-") for utt, spk in data.utt2spk.items())
        assert data.spk2gender == {spk: libri.genders[spk.split("-")[0]] for spk in speakers}
        utt = "19-198-0000" if subset == "train-clean-5" else "84-121123-0000"
        expected = libri.root / "LibriSpeech" / subset / utt.split("-")[0] / utt.split("-")[1] / f"{utt}.flac"
        assert data.wav_scp[utt] == str(expected)
        summary = validate_data_dir(libri_sets[data_dir_name(subset)])
        assert summary.sample_rates == {16000: len(data.utt_ids)}
        assert sum(data.utt2dur.values()) == pytest.approx(summary.total_seconds, abs=0.01)
    assert read_data_dir(libri_sets["train_clean_5"]).text["19-198-0000"] == "THE OLD MAN SAT BY THE FIRE"


def test_root_may_be_the_librispeech_folder_and_speakers_txt_is_optional(libri: LibriFixture, tmp_path: Path):
    sets = prepare_librispeech(libri.root / "LibriSpeech", tmp_path / "a", subsets=["dev-clean-2"])
    assert set(sets) == {"dev_clean_2"}
    root = tmp_path / "copy"
    (root / "dev-clean-2").mkdir(parents=True)
    for reader in (libri.root / "LibriSpeech" / "dev-clean-2").iterdir():
        (root / "dev-clean-2" / reader.name).symlink_to(reader)
    sets = prepare_librispeech(root, tmp_path / "b", subsets=["dev-clean-2"])
    assert read_data_dir(sets["dev_clean_2"]).spk2gender is None


def test_missing_subset_says_what_to_download(tmp_path: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(InputError, match="train-clean-5, dev-clean-2 not found") as err:
        prepare_librispeech(tmp_path, tmp_path / "out")
    assert subset_url("train-clean-5") in str(err.value) and "--download" in str(err.value)
    assert subset_url("dev-clean-2") == "https://www.openslr.org/resources/31/dev-clean-2.tar.gz"
    assert subset_url("test-clean") == "https://www.openslr.org/resources/12/test-clean.tar.gz"
    assert prepare_main(["librispeech", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 1
    assert "openslr.org/resources/31" in capsys.readouterr().err


def test_download_from_file_urls(libri: LibriFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """download_librispeech fed local archives through file:// URLs (no network in tests): both subsets unpack
    into one LibriSpeech/ folder, the LM files land in lm/, and a second call fetches nothing."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for subset in LIBRI_READERS:
        with tarfile.open(mirror / f"{subset}.tar.gz", "w:gz") as tar:
            for name in ("SPEAKERS.TXT", subset):
                tar.add(libri.root / "LibriSpeech" / name, arcname=f"LibriSpeech/{name}")
    for name in LM_FILES:
        (mirror / name).write_bytes(b"lm file " + name.encode())
    monkeypatch.setattr(librispeech, "MINI_URL", mirror.as_uri() + "/{subset}.tar.gz")
    monkeypatch.setattr(librispeech, "LM_URL", mirror.as_uri() + "/{name}")
    root = tmp_path / "corpora" / "librispeech"
    assert prepare_main(["librispeech", "--root", str(root), "--out", str(tmp_path / "data"), "--download"]) == 0
    assert (root / "LibriSpeech" / "SPEAKERS.TXT").is_file()
    assert read_data_dir(tmp_path / "data" / "dev_clean_2").text == libri.texts["dev-clean-2"]
    assert (root / "lm" / LM_ARPA).read_bytes() == b"lm file " + LM_ARPA.encode()
    assert sorted(p.name for p in root.iterdir()) == ["LibriSpeech", "lm"]  # no temporary folders left
    for p in mirror.iterdir():
        p.unlink()
    download_librispeech(root)  # everything is there: nothing fetched


def _chapter_copy(libri: LibriFixture, tmp_path: Path) -> Path:
    src = libri.root / "LibriSpeech" / "dev-clean-2" / "84" / "121123"
    dst = tmp_path / "84" / "121123"
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).symlink_to(p) if p.suffix == ".flac" else (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_chapter_errors_name_file_and_line(libri: LibriFixture, tmp_path: Path):
    chapter = _chapter_copy(libri, tmp_path)
    trans = chapter / "84-121123.trans.txt"
    lines = trans.read_text().splitlines()
    assert [u for u, _, _ in read_chapter(chapter)] == [line.split()[0] for line in lines]
    trans.write_text("\n".join([lines[0], "84-999-0001 WRONG CHAPTER", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match="is not 84-121123-<number>") as err:
        read_chapter(chapter)
    assert (err.value.path, err.value.line) == (str(trans), 2)
    trans.write_text("\n".join(lines[:-1]) + "\n")  # the last utterance's flac has no line now
    with pytest.raises(InputError, match="without a transcript line"):
        read_chapter(chapter)
    trans.write_text("\n".join([*lines, "84-121123-0042 NO AUDIO"]) + "\n")
    with pytest.raises(InputError, match="audio not found") as err:
        read_chapter(chapter)
    assert err.value.line == len(lines) + 1


def _write_lm(libri: LibriFixture, path: Path, extra_words: tuple[str, ...] = ()) -> NgramLM:
    """A trigram of every fixture sentence (plus ``extra_words`` as a sentence), gzipped ARPA at ``path``."""
    sentences = [t.split() for texts in libri.texts.values() for t in texts.values()] + [list(extra_words)]
    vocab = sorted({w for s in sentences for w in s})
    lm = train_ngram_lm([s for s in sentences if s], vocab, order=3, method="kn")
    plain = path.with_suffix("")
    lm.write_arpa(plain)
    with open(plain, "rb") as f, gzip.open(path, "wb") as g:
        g.write(f.read())
    plain.unlink()
    return lm


def test_lexicon_and_arpa_filter(libri: LibriFixture, tmp_path: Path):
    arpa = tmp_path / "lm.arpa.gz"
    lm = _write_lm(libri, arpa, extra_words=("QWXZYV", "THE"))
    words = arpa_words(arpa)
    assert "QWXZYV" in words and "<s>" not in words and "</s>" not in words
    assert sorted(words) == sorted(w for w in lm.vocab if w not in ("<s>", "</s>"))
    lexicon, missing = make_lexicon("cmudict", words, tmp_path / "lexicon.txt")
    assert missing == ["QWXZYV"] and "DON'T" in lexicon
    assert lexicon.pronunciations("FIRE")[0] in {("F", "AY", "ER"), ("F", "AY", "R")}
    counts = filter_arpa(arpa, tmp_path / "filtered.arpa", lexicon.words)
    filtered = NgramLM.read_arpa(tmp_path / "filtered.arpa")
    assert "QWXZYV" not in filtered.vocab and "FIRE" in filtered.vocab
    assert tuple(filtered.counts()) == counts and counts[0] == lm.counts()[0] - 1
    assert counts[1] < lm.counts()[1] and counts[2] < lm.counts()[2]  # the n-grams around QWXZYV are gone
    assert filtered.log10_prob("FIRE", ("BY", "THE")) == pytest.approx(lm.log10_prob("FIRE", ("BY", "THE")))
    assert filtered.missing_lower_order_ngrams() == []
    # the official lexicon's format (stress digits, tab) restricted the same way
    (tmp_path / "official.txt").write_text("FIRE\tF AY1 ER0\nQUIET\tK W AY1 AH0 T\nZEBRA\tZ IY1 B R AH0\n")
    lexicon, missing = make_lexicon(tmp_path / "official.txt", ["FIRE", "QUIET", "ABSENT"], tmp_path / "l2.txt")
    assert lexicon.words == ["FIRE", "QUIET"] and missing == ["ABSENT"]
    assert (tmp_path / "l2.txt").read_text() == "FIRE F AY ER\nQUIET K W AY AH T\n"


def test_arpa_errors(tmp_path: Path):
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0 A\n-1.0 B\n")
    with pytest.raises(InputError, match="no \\\\end\\\\ line"):
        filter_arpa(tmp_path / "bad.arpa", tmp_path / "out.arpa", ["A"])
    (tmp_path / "text.arpa").write_text("hello\n")
    with pytest.raises(InputError, match="no \\\\1-grams: section"):
        arpa_words(tmp_path / "text.arpa")
    assert not (tmp_path / "out.arpa").exists()


@pytest.mark.slow
def test_recipe_stages_0_to_4(libri: LibriFixture, tmp_path: Path):
    """run.sh stages 0-4 on the fixture: data dirs, CMUdict lexicon + the fixture LM (with a word CMUdict lacks,
    dropped by the filter) -> lang_test_tgsmall, features, monophone GMM, graph and dev decode."""
    arpa = tmp_path / "fixture_lm.arpa.gz"
    _write_lm(libri, arpa, extra_words=("QWXZYV",))
    data, exp = tmp_path / "data", tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = ["bash", str(REPO / "recipes/librispeech/run.sh"), "--corpus", str(libri.root), "--data", str(data)]
    cmd += ["--exp", str(exp), "--lm-arpa", str(arpa), "--lexicon", "cmudict", "--stop-stage", "4", "--jobs", "1"]
    cmd += ["--lm-weights", "8:12"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    words = (data / "lang" / "words.txt").read_text().split()[::2]
    assert "DON'T" in words and "<UNK>" in words and "QWXZYV" not in words
    assert (data / "lang_test_tgsmall" / "G.fst").is_file()
    assert (data / "train_clean_5" / "mfcc.h5").is_file() and (data / "dev_clean_2" / "fbank.h5").is_file()
    results = json.loads((exp / "mono" / "decode_dev_clean_2" / "results.json").read_text())
    assert results["utts"] == len(libri.texts["dev-clean-2"]) and results["missing_hyps"] == []
    assert 0.0 <= results["wer"] <= 100.0 and results["lm_weight"] in range(8, 13)
    assert "librispeech recipe: done (stages 0..4)" in proc.stdout


def test_unreadable_flac_stops_or_is_kept_with_skip_bad(libri: LibriFixture, tmp_path: Path, caplog):
    """A truncated .flac: an InputError naming it; with ``skip_bad`` it stays in the data dir (a warning names it,
    no utt2dur), for feature extraction --skip-bad to leave out and list."""
    root = tmp_path / "corpus"
    shutil.copytree(libri.root / "LibriSpeech" / "dev-clean-2", root / "dev-clean-2")
    bad = sorted((root / "dev-clean-2").rglob("*.flac"))[1]
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(InputError, match="cannot read audio header") as err:
        prepare_librispeech(root, tmp_path / "out", subsets=["dev-clean-2"])
    assert err.value.path == str(bad)
    caplog.set_level("WARNING", logger="asr.data.corpora.librispeech")
    sets = prepare_librispeech(root, tmp_path / "out", subsets=["dev-clean-2"], skip_bad=True)
    data = read_data_dir(sets["dev_clean_2"])
    assert bad.stem in data.wav_scp and data.utt2dur is None
    assert bad.name in caplog.text and "--skip-bad" in caplog.text
