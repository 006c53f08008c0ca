"""Alignment of a data dir with a trained model (python -m asr.gmm.align), the parallel jobs, and the fast
scoring/statistics the passes use, checked against the reference implementations."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from gmm_helpers import UNEVEN_SIZES, random_model

from asr.data.corpora.yesno import prepare_yesno
from asr.decode.align import phone_segments
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.compute import compute_features
from asr.features.kaldi_ark import import_kaldi_io
from asr.gmm.accumulate import accumulate_stats
from asr.gmm.align import (
    AlignmentJobs,
    AlignOptions,
    SubsetScorer,
    accumulate_stats_by_pdf,
    align_data_dir,
    load_transcripts,
    main,
    split_into_jobs,
)
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.model import GmmAcousticModel
from asr.gmm.train_mono import MonoOptions, default_mono_options, train_mono
from asr.lang.lang_dir import Lang
from asr.lang.prepare_lang import load_dictionary, prepare_lang

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, yesno_root):
    root = tmp_path_factory.mktemp("align")
    data = prepare_yesno(yesno_root, root / "data")
    lang = root / "lang"
    prepare_lang(load_dictionary("cmudict", [data["train"] / "text", data["test"] / "text"]), lang)
    for d in (data["train"], data["test"]):
        compute_features(d, options="mfcc", cmvn="speaker", jobs=1, progress=False)
    model = root / "exp" / "mono"
    train_mono(data["train"], lang, model, default_mono_options(num_iters=8, total_gauss=80), MonoOptions(num_jobs=1))
    return data, lang, model


def test_alignment_of_the_shortest_utterance_is_consistent(setup, tmp_path):
    data, lang, model = setup
    out = tmp_path / "ali_test"
    assert main(["--data", str(data["test"]), "--lang", str(lang), "--model", str(model), "--out", str(out)]) == 0
    ali = AlignmentArchive(out / "ali.h5")
    archive = FeatureArchive(data["test"] / "mfcc.h5")
    ali.check_matches(archive.utt_ids, archive.offsets)
    assert len(ali) == 29 and not ali.failed
    lens = np.diff(archive.offsets)
    i = int(np.argmin(lens))
    utt = archive.utt_ids[i]
    tm = GmmAcousticModel.load(model).transition_model
    tstates = ali.tstates(utt)
    assert len(tstates) == lens[i]
    assert np.array_equal(ali.pdfs(utt), tm.tstate_to_pdf[tstates])
    assert np.array_equal(ali.phone_ids[archive.offsets[i] : archive.offsets[i + 1]], tm.tstate_to_phone[tstates])
    # phones in transcript order, SIL (optional) only at the edges and between words
    lang_obj = Lang.load(lang)
    words = (data["test"] / "text").read_text().splitlines()[i].split()[1:]
    segments = phone_segments(tstates, tm)
    names = [lang_obj.phones.symbol(p) for p, _, _ in segments]
    expected = [p for w in words for p in lang_obj.lexicon.pronunciations(w)[0]]
    assert [n for n in names if n != "SIL"] == expected
    assert sum(n for _, _, n in segments) == lens[i]
    boundaries = set(np.cumsum([len(lang_obj.lexicon.pronunciations(w)[0]) for w in words]).tolist()) | {0}
    k = 0
    for name in names:
        if name == "SIL":
            assert k in boundaries, names
        else:
            k += 1
    # HMM states run 0, 1, 2 (each at least one frame) inside every non-silence instance
    states = tm.tstate_to_hmm_state[tstates]
    for p, start, n in segments:
        if lang_obj.phones.symbol(p) != "SIL":
            assert np.unique(states[start : start + n]).tolist() == [0, 1, 2]
    # Kaldi ark of transition-state ids, phone CTM, summary
    kaldi_io = import_kaldi_io()
    ark = dict(kaldi_io.read_vec_int_ark(str(out / "ali.ark")))
    assert list(ark) == archive.utt_ids and np.array_equal(ark[utt], tstates)
    ctm = [line.split() for line in (out / "phones.ctm").read_text().splitlines() if line.startswith(utt + " ")]
    assert [c[4] for c in ctm] == names
    assert float(ctm[0][2]) == pytest.approx(0.0075) and float(ctm[1][2]) == pytest.approx(
        segments[1][1] * 0.01 + 0.0075
    )
    summary = json.loads((out / "align.json").read_text())
    assert summary["num_failed"] == 0 and summary["num_utts"] == 29
    loaded = GmmAcousticModel.load(out)  # the alignment dir carries the model, as Kaldi's align_si.sh
    assert loaded.num_pdfs == ali.num_pdfs


def test_align_is_skipped_when_complete_and_checks_the_phone_set(setup, tmp_path, caplog):
    data, lang, model = setup
    out = tmp_path / "ali"
    align_data_dir(data["test"], lang, model, out, num_jobs=1)
    before = (out / "ali.h5").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        align_data_dir(data["test"], lang, model, out, num_jobs=1)
    assert "nothing to do" in caplog.text and (out / "ali.h5").stat().st_mtime_ns == before
    align_data_dir(data["test"], lang, model, out, num_jobs=1, force=True)
    assert (out / "ali.h5").stat().st_mtime_ns != before
    other = tmp_path / "lang_other"
    prepare_lang(load_dictionary(str(REPO / "recipes" / "yesno" / "local" / "lexicon.txt")), other)
    with pytest.raises(InputError, match="phone table differs"):
        align_data_dir(data["test"], other, model, tmp_path / "ali2", num_jobs=1)
    with pytest.raises(InputError, match="model directory not found"):
        align_data_dir(data["test"], lang, tmp_path / "nomodel", tmp_path / "ali3", num_jobs=1)


def test_two_jobs_give_the_same_alignments_and_statistics_as_one(setup):
    data, lang, model_dir = setup
    model = GmmAcousticModel.load(model_dir)
    lang_obj = Lang.load(lang)
    archive_path = data["train"] / "mfcc.h5"
    utt_ids = FeatureArchive(archive_path).utt_ids
    transcripts = load_transcripts(data["train"] / "text", lang_obj, utt_ids)
    results = []
    for jobs in (1, 2):
        with AlignmentJobs(archive_path, transcripts, lang / "L.fst", jobs) as j:
            assert j.num_jobs == jobs
            j.set_model(model.transition_model, model.ctx_dep, AlignOptions())
            res = j.run_pass(model.gmm, realign=True, accumulate=True, options=AlignOptions())
            alis, failures = j.get_alignments()
        results.append((res, alis, failures))
    (r1, a1, f1), (r2, a2, f2) = results
    assert f1 == f2 == {}
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2))
    assert torch.allclose(r1.stats.occupancy, r2.stats.occupancy, rtol=1e-5)  # float32 posteriors, other order
    for name in ("first_order", "second_order"):
        a, b = getattr(r1.stats, name), getattr(r2.stats, name)
        assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max()), name
    assert np.array_equal(r1.transition_counts, r2.transition_counts)
    assert r1.num_frames == r2.num_frames == r1.aligned_frames == sum(len(a) for a in a1)


def test_split_into_jobs_balances_frames():
    groups = split_into_jobs([100, 10, 10, 90, 50, 40], 2)
    loads = [sum([100, 10, 10, 90, 50, 40][i] for i in g) for g in groups]
    assert sorted(i for g in groups for i in g) == list(range(6)) and max(loads) - min(loads) <= 10
    assert all(g == sorted(g) for g in groups)
    assert split_into_jobs([5], 4) == [[0]]


def test_accumulation_by_pdf_equals_the_reference():
    model = random_model(UNEVEN_SIZES, dim=6, seed=3)
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(500, 6, generator=gen) * 2
    pdf_ids = torch.randint(0, len(UNEVEN_SIZES), (500,), generator=gen)
    pdf_ids[pdf_ids == 4] = 5  # a pdf without frames
    ref = accumulate_stats(model, feats, pdf_ids)
    new = accumulate_stats_by_pdf(model, feats, pdf_ids)
    for name in ("occupancy", "first_order", "second_order"):
        assert torch.allclose(getattr(new, name), getattr(ref, name), rtol=1e-5, atol=1e-4), name
    assert float(new.loglike_sum) == pytest.approx(float(ref.loglike_sum), rel=1e-6)
    assert float(new.frame_count) == 500 and float(new.occupancy[model.gauss_range(4).start]) == 0.0


def test_subset_scores_equal_the_full_scores():
    model = random_model(UNEVEN_SIZES, dim=5, seed=4)
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(2)) * 3
    full = model.log_likelihoods(x)
    pdfs = np.array([0, 2, 3, 7, 9])
    sub = SubsetScorer(model)(x, pdfs)
    assert torch.allclose(sub, full[:, pdfs], atol=1e-4)
