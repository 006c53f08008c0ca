"""End to end on AN4 train (64 speakers, 823 utterances): mono and tri1 with the default (Kaldi) schedules.

Slow (about 2.5-3 minutes on 2 cores with 2 jobs, including data preparation and MFCC): marked ``slow``.
Timings are in ``python -m asr.bench.gmm_train``, not here.
"""

from __future__ import annotations

import json

import pytest

from asr.data.corpora.an4 import prepare_an4
from asr.features.compute import compute_features
from asr.gmm.alignment_archive import AlignmentArchive
from asr.gmm.model import GmmAcousticModel
from asr.gmm.train_mono import MonoOptions, train_mono
from asr.gmm.train_tri import TreeOptions, train_tri
from asr.lang.prepare_lang import load_dictionary, prepare_lang


@pytest.mark.slow
def test_mono_and_tri1_on_an4_train(tmp_path, an4_root):
    sets = prepare_an4(an4_root, tmp_path / "data")
    train = sets["train"]
    lang = tmp_path / "lang"
    prepare_lang(load_dictionary(str(tmp_path / "data" / "local" / "an4.dic")), lang)
    compute_features(train, options="mfcc", cmvn="speaker", jobs=2, progress=False)
    mono, tri = tmp_path / "exp" / "mono", tmp_path / "exp" / "tri1"

    mono_info = train_mono(train, lang, mono, mono_options=MonoOptions(num_jobs=2))
    mono_log = json.loads((mono / "train_log.json").read_text())
    objf = [it["loglike_per_frame"] for it in mono_log["iterations"]]
    assert len(objf) == 40 and objf[-1] > objf[1] > objf[0]
    assert 950 <= mono_info["num_gauss"] <= 1100 and mono_info["num_pdfs"] == 5 + 3 * 33
    assert mono_log["final_alignment"]["num_failed"] <= 5  # Kaldi fails none or a few on AN4
    assert len(AlignmentArchive(mono / "ali.h5")) == 823

    tri_info = train_tri(train, lang, mono, tri, tree_options=TreeOptions(num_jobs=2))
    tri_log = json.loads((tri / "train_log.json").read_text())
    assert 300 <= tri_info["num_pdfs"] <= 500 and 3800 <= tri_info["num_gauss"] <= 4200
    tri_objf = [it["loglike_per_frame"] for it in tri_log["iterations"]]
    assert tri_objf[-1] > objf[-1] + 1.0  # triphones model the training data better
    assert tri_log["final_alignment"]["num_failed"] <= 5
    model = GmmAcousticModel.load(tri)
    assert model.ctx_dep.context_width == 3 and model.num_pdfs == tri_info["num_pdfs"]
