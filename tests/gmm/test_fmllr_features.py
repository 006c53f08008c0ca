"""fMLLR feature archives (asr.gmm.fmllr_features) from a small SAT-shaped model: the yesno recipe's mono
topology, tree and transition model with a random 40-dim GMM and a random splice +-3 LDA+MLLT matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gmm_helpers import random_model

from asr.data.datadir import read_data_dir
from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.gmm.fmllr import SpeakerTransforms, apply_affine
from asr.gmm.fmllr_features import file_sha256, main, write_fmllr_features
from asr.gmm.lda_mllt import SplicedTransform
from asr.gmm.model import GmmAcousticModel, read_model_info, write_model_dir


@pytest.fixture(scope="module")
def sat_model(yesno_recipe, tmp_path_factory) -> Path:
    """A model dir with final.mat.pt (13 x 7 -> 40) and adaptation fmllr, on the yesno mono's HMM parts."""
    mono = GmmAcousticModel.load(yesno_recipe.exp / "mono")
    out = tmp_path_factory.mktemp("fmllr_features") / "sat"
    out.mkdir()
    rng = np.random.default_rng(0)
    SplicedTransform(rng.normal(size=(40, 91)) / 10.0, 3, 3).save(out / "final.mat.pt")
    gmm = random_model([2] * mono.num_pdfs, dim=40, seed=3)
    info = {
        "name": "sat",
        "feature_type": "mfcc",
        "delta_order": 0,
        "feature_transform": "final.mat.pt",
        "adaptation": "fmllr",
    }
    phones = yesno_recipe.exp / "mono" / "phones.txt"
    write_model_dir(out, info, mono.topology, mono.ctx_dep, mono.transition_model, gmm, phones)
    return out


def _speakers(data_dir: Path) -> list[str]:
    return sorted(set(read_data_dir(data_dir).utt2spk.values()))


def test_features_are_the_models_adapted_features(yesno_recipe, sat_model, tmp_path):
    data = yesno_recipe.data / "train"
    model = GmmAcousticModel.load(sat_model)
    rng = np.random.default_rng(1)
    trans = SpeakerTransforms(40)
    for spk in _speakers(data):
        trans.matrices[spk] = np.concatenate(
            [np.eye(40) + 0.05 * rng.normal(size=(40, 40)), rng.normal(size=(40, 1))], 1
        )
    trans.save(tmp_path / "trans.pt")
    out = tmp_path / "fmllr.h5"
    summary = write_fmllr_features(data, sat_model, tmp_path / "trans.pt", out)
    utt2spk = read_data_dir(data).utt2spk
    with FeatureArchive(data / "mfcc.h5") as mfcc, FeatureArchive(out) as fm:
        assert fm.utt_ids == mfcc.utt_ids and fm.dim == 40 and summary["frames"] == fm.num_frames
        assert summary["speakers_without_transform"] == []
        assert fm.feature_type == "fmllr" and fm.cmvn == "none" and fm.attrs["source_cmvn"] == mfcc.cmvn
        assert fm.attrs["source_model"] == str(sat_model)
        assert fm.attrs["transforms_sha256"] == file_sha256(tmp_path / "trans.pt")
        assert fm.attrs["feature_transform_sha256"] == file_sha256(sat_model / "final.mat.pt")
        for utt in fm.utt_ids[:3]:
            expected = apply_affine(trans.matrices[utt2spk[utt]], model.features(mfcc.read(utt)))
            np.testing.assert_array_equal(fm.read(utt), expected)
            # the GMM scores these rows as it scores its adapted features
            with torch.no_grad():
                ll = model.gmm.log_likelihoods(torch.from_numpy(fm.read(utt))).numpy()
                ref = model.gmm.log_likelihoods(torch.from_numpy(expected)).numpy()
            np.testing.assert_array_equal(ll, ref)


def test_missing_speaker_is_an_error_or_identity(yesno_recipe, sat_model, tmp_path, caplog):
    data = yesno_recipe.data / "test"
    SpeakerTransforms(40, {"someone-else": np.eye(40, 41) * 2}).save(tmp_path / "trans.pt")
    out = tmp_path / "fmllr.h5"
    with pytest.raises(InputError, match=_speakers(data)[0]) as err:
        write_fmllr_features(data, sat_model, tmp_path / "trans.pt", out)
    assert str(err.value.path) == str(tmp_path / "trans.pt") and not out.exists()
    summary = write_fmllr_features(data, sat_model, tmp_path / "trans.pt", out, allow_missing=True)
    assert summary["speakers_without_transform"] == _speakers(data)
    assert "keep the LDA+MLLT features" in caplog.text
    model = GmmAcousticModel.load(sat_model)
    with FeatureArchive(data / "mfcc.h5") as mfcc, FeatureArchive(out) as fm:
        for utt in fm.utt_ids[:3]:  # identity: the LDA+MLLT features
            np.testing.assert_array_equal(fm.read(utt), model.features(mfcc.read(utt)))


def test_cli_and_bad_inputs(yesno_recipe, sat_model, tmp_path, capsys):
    data = yesno_recipe.data / "test"
    SpeakerTransforms(41).save(tmp_path / "wrong_dim.pt")
    with pytest.raises(SystemExit):
        main(
            [
                "--data",
                str(data),
                "--model",
                str(sat_model),
                "--transforms",
                str(tmp_path / "wrong_dim.pt"),
                "--out",
                str(tmp_path / "x.h5"),
            ]
        )
    assert "dimension 41" in capsys.readouterr().err and not (tmp_path / "x.h5").exists()
    # a model without LDA+MLLT (the mono) is refused, naming its directory
    with pytest.raises(InputError, match="LDA\\+MLLT"):
        write_fmllr_features(data, yesno_recipe.exp / "mono", tmp_path / "wrong_dim.pt", tmp_path / "x.h5")
    SpeakerTransforms(40).save(tmp_path / "none.pt")
    main(
        [
            "--data",
            str(data),
            "--model",
            str(sat_model),
            "--transforms",
            str(tmp_path / "none.pt"),
            "--out",
            str(tmp_path / "id.h5"),
            "--allow-missing",
            "--feature-type",
            "lda_mllt",
        ]
    )
    with FeatureArchive(tmp_path / "id.h5") as fm:
        assert fm.feature_type == "lda_mllt" and fm.attrs["transforms"] == str(tmp_path / "none.pt")
    assert json.loads(json.dumps(read_model_info(sat_model)))["adaptation"] == "fmllr"
