"""Triphone training on yes/no: convert-ali from the monophone alignment, phone contexts by segment, and a
small tri1 that trains, aligns everything and loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asr.data.corpora.yesno import prepare_yesno
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.compute import compute_features
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.model import GmmAcousticModel
from asr.gmm.train_mono import MonoOptions, default_mono_options, train_mono
from asr.gmm.train_tri import (
    TreeOptions,
    convert_alignments,
    default_tri_options,
    frame_contexts,
    main,
    train_tri,
    tstate_lookup,
)
from asr.hmm.tree import ContextDependencyTree
from asr.lang.prepare_lang import load_dictionary, prepare_lang

TRI = default_tri_options(num_iters=8, total_gauss=150, realign_iters=(4,), max_iter_inc=6)
TREE = TreeOptions(num_leaves=30, num_jobs=1)


@pytest.fixture(scope="module")
def systems(tmp_path_factory, yesno_root):
    root = tmp_path_factory.mktemp("tri")
    data = prepare_yesno(yesno_root, root / "data")
    lang = root / "lang"
    prepare_lang(load_dictionary("cmudict", [data["train"] / "text"]), lang)
    compute_features(data["train"], options="mfcc", cmvn="speaker", jobs=1, progress=False)
    mono, tri = root / "exp" / "mono", root / "exp" / "tri1"
    train_mono(data["train"], lang, mono, default_mono_options(num_iters=8, total_gauss=80), MonoOptions(num_jobs=1))
    info = train_tri(data["train"], lang, mono, tri, TRI, TREE)
    return data["train"], lang, mono, tri, info


def test_tri1_trains_aligns_and_loads(systems):
    train, lang, mono, tri, info = systems
    assert info["context_width"] == 3 and info["stage"] == "tri" and info["ali_dir"] == str(mono)
    model = GmmAcousticModel.load(tri)
    assert isinstance(model.ctx_dep, ContextDependencyTree)
    assert model.ctx_dep.num_leaves <= 30 and model.num_pdfs == info["num_pdfs"] > 20  # more than the mono's 20
    log = json.loads((tri / "train_log.json").read_text())
    objf = [it["loglike_per_frame"] for it in log["iterations"]]
    assert [it["iter"] for it in log["iterations"]] == list(range(1, 8))
    assert objf[-1] > objf[0] + 1.0, objf
    assert [it["realigned"] for it in log["iterations"]] == [x == 4 for x in range(1, 8)]
    assert log["iterations"][-1]["num_gauss"] > model.num_pdfs
    mono_log = json.loads((mono / "train_log.json").read_text())
    assert objf[-1] > mono_log["iterations"][-1]["loglike_per_frame"]  # context helps
    ali = AlignmentArchive(tri / "ali.h5")
    assert not ali.failed and ali.num_pdfs == model.num_pdfs
    archive = FeatureArchive(train / "mfcc.h5")
    ali.check_matches(archive.utt_ids, archive.offsets)
    ll = model.log_likelihoods(archive.read(archive.utt_ids[0]))
    assert ll.shape == (archive.num_frames_of(archive.utt_ids[0]), model.num_pdfs)


def test_convert_ali_keeps_the_phone_sequence(systems):
    train, lang, mono, tri, info = systems
    mono_model, tri_model = GmmAcousticModel.load(mono), GmmAcousticModel.load(tri)
    ali = AlignmentArchive(mono / "ali.h5")
    converted = convert_alignments(
        ali.tstate_ids, ali.offsets, mono_model.transition_model, tri_model.transition_model, tri_model.ctx_dep
    )
    old, new = mono_model.transition_model, tri_model.transition_model
    assert np.array_equal(new.tstate_to_phone[converted], old.tstate_to_phone[ali.tstate_ids])
    assert np.array_equal(new.tstate_to_hmm_state[converted], old.tstate_to_hmm_state[ali.tstate_ids])
    # the pdf is the tree's for each frame's window (checked with the scalar compute on one utterance)
    lo, hi = ali.offsets[3], ali.offsets[4]
    ctx = frame_contexts(ali.tstate_ids[lo:hi], np.array([0, hi - lo]), old)
    for t in range(0, hi - lo, 7):
        window = [int(ctx.left[t]), int(ctx.phones[t]), int(ctx.right[t])]
        assert new.tstate_to_pdf[converted[lo + t]] == tri_model.ctx_dep.compute(window, int(ctx.pdf_classes[t]))
    # converting to the same model is the identity
    same = convert_alignments(ali.tstate_ids, ali.offsets, old, old, mono_model.ctx_dep)
    assert np.array_equal(same, ali.tstate_ids)


def test_phone_contexts_are_by_segment_and_stop_at_utterances(systems):
    train, lang, mono, tri, info = systems
    tm = GmmAcousticModel.load(mono).transition_model
    ctx_dep = GmmAcousticModel.load(mono).ctx_dep
    sil, n, ow = 1, 4, 5  # yes/no CMUdict phones: SIL 1, SPN 2, EH 3, N 4, OW 5, S 6, Y 7

    def states(phone, frames_per_state):
        return [
            tm.transition_state(phone, j, ctx_dep.compute([phone], j))
            for j, k in enumerate(frames_per_state)
            for _ in range(k)
        ]

    # utterance 1: SIL N N OW (two instances of N in a row); utterance 2: N
    u1 = states(sil, [1] * 5) + states(n, [1, 2, 1]) + states(n, [1, 1, 1]) + states(ow, [1, 1, 1])
    u2 = states(n, [1, 1, 1])
    tstates = np.array(u1 + u2)
    offsets = np.array([0, len(u1), len(u1) + len(u2)])
    ctx = frame_contexts(tstates, offsets, tm)
    expect_left = [0] * 5 + [sil] * 4 + [n] * 3 + [n] * 3 + [0] * 3
    expect_right = [n] * 5 + [n] * 4 + [ow] * 3 + [0] * 3 + [0] * 3
    assert ctx.left.tolist() == expect_left and ctx.right.tolist() == expect_right
    assert ctx.pdf_classes.tolist() == [0, 1, 2, 3, 4] + [0, 1, 1, 2] + [0, 1, 2] * 3
    assert tstate_lookup(tm, ctx.phones, ctx.hmm_states, tm.tstate_to_pdf[tstates]).tolist() == tstates.tolist()
    with pytest.raises(ValueError, match="no transition state"):
        tstate_lookup(tm, np.array([n]), np.array([0]), np.array([0]))


def test_ali_dir_must_match_the_data(systems, tmp_path):
    train, lang, mono, tri, info = systems
    # the mono alignment of the train set does not fit the features of a subset
    other = tmp_path / "train_sub"
    other.mkdir()
    lines = (train / "text").read_text().splitlines()[:10]
    ids = [line.split()[0] for line in lines]
    (other / "text").write_text("\n".join(lines) + "\n")
    for name in ("wav.scp", "utt2spk"):
        kept = [x for x in (train / name).read_text().splitlines() if x.split()[0] in ids]
        (other / name).write_text("\n".join(kept) + "\n")
    compute_features(other, options="mfcc", cmvn="speaker", jobs=1, progress=False)
    with pytest.raises(InputError, match="utterances differ") as err:
        train_tri(other, lang, mono, tmp_path / "tri", TRI, TREE)
    assert err.value.path == str(mono / "ali.h5")
    assert main(["--data", str(other), "--lang", str(lang), "--ali-dir", str(mono), "--out", str(tmp_path / "t")]) == 1
    assert not (tmp_path / "tri" / "model.json").exists()


def test_cli_rerun_is_skipped(systems, caplog):
    train, lang, mono, tri, info = systems
    before = (tri / "model.json").stat().st_mtime_ns
    info2 = train_tri(train, lang, mono, tri, TRI, TREE)
    assert info2 == info and (tri / "model.json").stat().st_mtime_ns == before
    assert Path(tri / "log" / "train.log").read_text().count("tree:") >= 1
