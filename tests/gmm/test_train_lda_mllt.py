"""LDA+MLLT (tri2b) and SAT (tri3b) end to end on yes/no (the yesno_recipe fixture's mono alignment): train,
write a model dir that mkgraph / decode_dir / align take as any other, and decode with two-pass fMLLR.

Slow (about a minute on 2 busy cores): small schedules, one job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from asr.decode.decode_dir import decode_data_dir
from asr.decode.decode_fmllr import FmllrDecodeOptions, decode_fmllr
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.gmm.align import align_data_dir
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.fmllr import SpeakerTransforms
from asr.gmm.model import GmmAcousticModel
from asr.gmm.train_lda_mllt import LdaMlltOptions, default_lda_mllt_options, main, train_lda_mllt
from asr.gmm.train_sat import SatOptions, default_sat_options, train_sat
from asr.gmm.train_tri import TreeOptions
from asr.graph.mkgraph import mkgraph

OPTIONS = dict(num_iters=14, total_gauss=150, realign_iters=(10,), max_iter_inc=10)
TREE = TreeOptions(num_leaves=30, num_jobs=1)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def systems(yesno_recipe, tmp_path_factory):
    root = tmp_path_factory.mktemp("lda_sat")
    data, exp = yesno_recipe.data, yesno_recipe.exp
    tri2b, tri3b = root / "tri2b", root / "tri3b"
    info2 = train_lda_mllt(
        data / "train", data / "lang", exp / "mono", tri2b, default_lda_mllt_options(**OPTIONS), TREE, LdaMlltOptions()
    )
    info3 = train_sat(
        data / "train", data / "lang", tri2b, tri3b, default_sat_options(**OPTIONS), TREE, SatOptions(min_count=100)
    )
    return data, exp, root, info2, info3


def test_tri2b_model_dir_and_training_log(systems):
    data, exp, root, info, _ = systems
    tri2b = root / "tri2b"
    assert info["feature_transform"] == "final.mat.pt" and info["delta_order"] == 0
    assert info["feature_dim"] == 13 and info["model_dim"] == 40 and info["context_width"] == 3
    log = json.loads((tri2b / "train_log.json").read_text())
    assert [r["iter"] for r in log["mllt"]] == [2, 4, 6, 12]
    assert all(r["objf_gain_per_frame"] > 0 for r in log["mllt"])
    assert log["lda"]["input_dim"] == 91 and log["lda"]["dim"] == 40
    objf = [it["loglike_per_frame"] for it in log["iterations"]]
    # in the LDA space (Jacobian of the MLLT steps added) the training likelihood rises
    total = {r["iter"]: r["mllt_log_det_total"] for r in log["mllt"]}
    in_lda = [
        o + max([v for k, v in total.items() if k <= it["iter"]], default=0.0) for o, it in zip(objf, log["iterations"])
    ]
    assert in_lda[-1] > in_lda[0] + 1.0
    model = GmmAcousticModel.load(tri2b)
    archive = FeatureArchive(data / "train" / "mfcc.h5")
    rows = archive.read(archive.utt_ids[0])
    assert model.features(rows).shape == (len(rows), 40) and (model.left_context, model.right_context) == (3, 3)
    assert model.log_likelihoods(rows).shape == (len(rows), model.num_pdfs)
    ali = AlignmentArchive(tri2b / "ali.h5")
    assert not ali.failed and ali.num_pdfs == model.num_pdfs


def test_tri2b_decodes_and_aligns_like_any_model(systems, tmp_path):
    data, exp, root, info, _ = systems
    tri2b = root / "tri2b"
    mkgraph(data / "lang_test", tri2b, tmp_path / "graph")
    results = decode_data_dir(tmp_path / "graph", tri2b, data / "test", tmp_path / "decode", jobs=1)
    assert results["wer"] <= 5.0  # mono gets 0.43% on this test set; 3.45% seen with this small schedule
    out = align_data_dir(data / "train", data / "lang", tri2b, tmp_path / "ali", num_jobs=1)
    assert out["num_failed"] == 0 and (tmp_path / "ali" / "final.mat.pt").is_file()
    ours, theirs = AlignmentArchive(tmp_path / "ali" / "ali.h5"), AlignmentArchive(tri2b / "ali.h5")
    assert np.mean(ours.pdf_ids == theirs.pdf_ids) > 0.95  # the same model realigned (final recompile differs)


def test_tri3b_trains_adapts_and_decodes_in_two_passes(systems, tmp_path):
    data, exp, root, _, info = systems
    tri3b = root / "tri3b"
    assert info["adaptation"] == "fmllr" and info["model_dim"] == 40
    log = json.loads((tri3b / "train_log.json").read_text())
    assert [r["iter"] for r in log["fmllr"]] == [0, 2, 4, 6, 12]
    assert log["fmllr"][0]["objf_gain_per_frame"] > 0 and log["fmllr"][0]["speakers_updated"] == 1
    trans = SpeakerTransforms.load(tri3b / "trans.pt")
    assert list(trans.matrices) == ["yesno"]
    assert not np.allclose(next(iter(trans.matrices.values())), np.eye(40, 41))
    mkgraph(data / "lang_test", tri3b, tmp_path / "graph")
    results = decode_fmllr(tmp_path / "graph", tri3b, data / "test", tmp_path / "decode", jobs=1)
    assert results["wer"] <= 5.0 and results["fmllr"]["speakers_updated"] == [1, 1]
    assert results["fmllr"]["objf_gain_per_frame"][0] > 0
    assert SpeakerTransforms.load(tmp_path / "decode" / "trans.pt").dim == 40
    assert json.loads((tmp_path / "decode" / "results.json").read_text())["fmllr"]["first_pass"]["wer"] <= 10.0
    # per-utterance adaptation (diagonal transforms, few frames)
    options = FmllrDecodeOptions(per_utt=True, update_type="diag", min_count=50)
    per_utt = decode_fmllr(
        tmp_path / "graph", tri3b, data / "test", tmp_path / "per_utt", fmllr_options=options, jobs=1
    )
    assert per_utt["fmllr"]["speakers"] == 29 and per_utt["wer"] <= 10.0


def test_errors_and_rerun(systems, tmp_path, caplog):
    data, exp, root, info, _ = systems
    # SAT needs an LDA+MLLT alignment dir
    with pytest.raises(InputError, match="no LDA\\+MLLT transform"):
        train_sat(data / "train", data / "lang", exp / "mono", tmp_path / "sat", default_sat_options(**OPTIONS), TREE)
    # a SAT model is not decoded without adaptation by decode_fmllr's check
    with pytest.raises(InputError, match="not a speaker-adapted"):
        decode_fmllr(tmp_path, root / "tri2b", data / "test", tmp_path / "d")
    # a complete model dir is not retrained; a missing transform file is a clear error on load
    before = (root / "tri2b" / "model.json").stat().st_mtime_ns
    again = train_lda_mllt(
        data / "train", data / "lang", exp / "mono", root / "tri2b", default_lda_mllt_options(**OPTIONS), TREE
    )
    assert again == info and (root / "tri2b" / "model.json").stat().st_mtime_ns == before
    broken = tmp_path / "broken"
    shutil.copytree(root / "tri2b", broken)
    (broken / "final.mat.pt").unlink()
    with pytest.raises(InputError, match="transform file not found"):
        GmmAcousticModel.load(broken)
    assert (
        main(
            [
                "--data",
                str(data / "train"),
                "--lang",
                str(data / "lang"),
                "--ali-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 1
    )
