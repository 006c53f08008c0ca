"""Monophone training on the real yes/no corpus: the objective rises, every utterance aligns, the model dir
loads, re-runs are skipped, and bad transcripts are reported (unknown word: file and line; an utterance
that cannot align: counted, listed, left out)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from asr.data.corpora.yesno import prepare_yesno
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.compute import compute_features
from asr.gmm.align import load_transcripts
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.model import GmmAcousticModel, read_model_info
from asr.gmm.train_mono import MonoOptions, default_mono_options, main, train_mono
from asr.lang.lang_dir import Lang
from asr.lang.prepare_lang import load_dictionary, prepare_lang

# Small and fast: 10 iterations (realign at 1..9), up to ~100 Gaussians, in-process job.
OPTIONS = default_mono_options(num_iters=10, total_gauss=100)
MONO = MonoOptions(num_jobs=1)


def prepare_yesno_train(yesno_root: Path, out: Path, oov_word: str | None = None) -> tuple[Path, Path]:
    """yes/no train data dir with MFCC, and a CMUdict lang dir: ``(train_dir, lang_dir)``."""
    data = prepare_yesno(yesno_root, out / "data")
    lang = out / "lang"
    prepare_lang(load_dictionary("cmudict", [data["train"] / "text"]), lang, oov_word=oov_word)
    compute_features(data["train"], options="mfcc", cmvn="speaker", jobs=1, progress=False)
    return data["train"], lang


@pytest.fixture(scope="module")
def mono(tmp_path_factory, yesno_root):
    root = tmp_path_factory.mktemp("mono")
    train, lang = prepare_yesno_train(yesno_root, root)
    out = root / "exp" / "mono"
    info = train_mono(train, lang, out, OPTIONS, MONO)
    return train, lang, out, info


def test_objective_rises_and_all_utterances_align(mono):
    train, lang, out, info = mono
    log = json.loads((out / "train_log.json").read_text())
    objf = [it["loglike_per_frame"] for it in log["iterations"]]
    assert len(objf) == 10 and [it["iter"] for it in log["iterations"]] == list(range(10))
    assert objf[-1] > objf[1] > objf[0] + 2.0  # nats per frame
    assert all(b > a for a, b in zip(objf[1:], objf[2:])), objf  # EM with realignment, still rising here
    assert all(it["num_failed"] == 0 for it in log["iterations"])
    assert [it["realigned"] for it in log["iterations"]] == [False] + [True] * 9
    gauss = [it["num_gauss"] for it in log["iterations"]]
    assert gauss[0] < gauss[5] < gauss[-1] and 80 <= gauss[-1] <= 130
    assert log["final_alignment"]["num_failed"] == 0
    ali = AlignmentArchive(out / "ali.h5")
    archive = FeatureArchive(train / "mfcc.h5")
    assert len(ali) == 31 and not ali.failed and ali.frame_mask().all()
    ali.check_matches(archive.utt_ids, archive.offsets)
    assert ali.model_dir == str(out) and ali.num_pdfs == info["num_pdfs"]


def test_model_dir_follows_the_interface(mono):
    train, lang, out, info = mono
    for name in ("model.json", "topo.json", "tree.json", "transition_model.json", "final.gmm.pt", "phones.txt"):
        assert (out / name).is_file(), name
    assert (out / "log" / "train.log").read_text().count("iter ") >= 10
    assert info["kind"] == "gmm" and info["feature_type"] == "mfcc" and info["delta_order"] == 2
    assert info["context_width"] == 1 and info["train_seconds"] > 0
    lang_obj = Lang.load(lang)
    # silence phones share their pdfs (5 states), 3 per non-silence phone
    assert info["num_pdfs"] == 5 + 3 * len(lang_obj.nonsilence_phones)
    model = GmmAcousticModel.load(out)
    assert model.num_pdfs == info["num_pdfs"] and model.gmm.num_gauss == info["num_gauss"]
    assert model.ctx_dep.compute([1], 0) == model.ctx_dep.compute([2], 0)  # SIL and SPN share
    archive = FeatureArchive(train / "mfcc.h5")
    utt = archive.utt_ids[0]
    ll = model.log_likelihoods(archive.read(utt))
    assert ll.shape == (archive.num_frames_of(utt), model.num_pdfs) and ll.dtype == np.float32
    assert np.isfinite(ll).all()
    with pytest.raises(ValueError, match="features must be"):
        model.log_likelihoods(np.zeros((5, 39), dtype=np.float32))


def test_rerun_is_skipped_and_force_retrains(mono, caplog):
    train, lang, out, info = mono
    before = (out / "model.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = train_mono(train, lang, out, OPTIONS, MONO)
    assert "nothing to do" in caplog.text and again == info
    assert (out / "model.json").stat().st_mtime_ns == before
    # other options are other inputs: a different fingerprint means the dir is not complete for them
    changed = default_mono_options(num_iters=2, total_gauss=30)
    other = out.parent / "mono_short"
    shutil.copytree(out, other)
    info2 = train_mono(train, lang, other, changed, MONO)
    assert info2["num_iters"] == 2 and info2["fingerprint"]["sha256"] != info["fingerprint"]["sha256"]
    assert main(["--data", str(train), "--lang", str(lang), "--out", str(other), "--num-iters", "2"]) == 0
    assert read_model_info(other)["fingerprint"] != info2["fingerprint"]  # CLI defaults differ (total-gauss)
    (other / "ali.h5").unlink()  # a missing part makes the dir incomplete: retrained
    assert main(["--data", str(train), "--lang", str(lang), "--out", str(other), "--num-iters", "2"]) == 0
    assert (other / "ali.h5").is_file()


def test_unknown_word_is_an_error_with_file_and_line(mono, tmp_path):
    train, lang, out, info = mono
    bad = tmp_path / "train"
    shutil.copytree(train, bad)
    lines = (bad / "text").read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " MAYBE"
    (bad / "text").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        train_mono(bad, lang, tmp_path / "mono", OPTIONS, MONO)
    assert err.value.path == str(bad / "text") and err.value.line == 3 and "MAYBE" in str(err.value)
    assert not (tmp_path / "mono" / "model.json").exists()
    assert main(["--data", str(bad), "--lang", str(lang), "--out", str(tmp_path / "m2")]) == 1


def test_unknown_word_maps_to_the_oov_word_when_configured(mono, tmp_path, yesno_root):
    train, lang, out, info = mono
    lang_oov = tmp_path / "lang_oov"
    prepare_lang(load_dictionary("cmudict", [train / "text"]), lang_oov, oov_word="<UNK>")
    text = tmp_path / "text"
    text.write_text("u1 YES MAYBE NO\nu2\n")
    lang_obj = Lang.load(lang_oov)
    t = load_transcripts(text, lang_obj, ["u1", "u2", "u3"])
    w = lang_obj.words
    assert t.word_ids[0] == [w.id("YES"), w.id("<UNK>"), w.id("NO")] and t.num_oov_mapped == 1
    assert t.word_ids[1] is None and t.missing["u2"] == "empty transcript"
    assert t.word_ids[2] is None and "no transcript" in t.missing["u3"]


def test_an_utterance_that_cannot_align_is_listed_and_left_out(mono, tmp_path):
    train, lang, out, info = mono
    bad = tmp_path / "train"
    shutil.copytree(train, bad)
    lines = (bad / "text").read_text().splitlines()
    victim = lines[4].split()[0]
    lines[4] = victim + " " + " ".join(["YES"] * 300)  # far more HMM states than frames
    (bad / "text").write_text("\n".join(lines) + "\n")
    out2 = tmp_path / "mono"
    train_mono(bad, lang, out2, default_mono_options(num_iters=3, total_gauss=40), MONO)
    log = json.loads((out2 / "train_log.json").read_text())
    for it in log["iterations"]:
        assert it["num_failed"] == 1 and it["failed"][0][0] == victim
    first = log["iterations"][0]["failed"][0][1]
    assert "equal alignment" in first and "HMM states" in first
    assert "at least" in log["iterations"][1]["failed"][0][1]  # the graph needs more frames than there are
    ali = AlignmentArchive(out2 / "ali.h5")
    assert list(ali.failed) == [victim] and len(ali) == 31
    n = FeatureArchive(bad / "mfcc.h5").num_frames_of(victim)
    assert log["iterations"][1]["num_frames"] == ali.num_frames - n  # left out of the statistics
