"""TorchScript and ONNX export of the DNN: scores equal to the PyTorch model's, the same decode, standalone use of
the files, chunked scoring, and refusal of bad files."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from asr.decode.acoustic_model import load_acoustic_model
from asr.decode.decode_dir import decode_data_dir
from asr.errors import ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.nnet.export import EXPORTED_FILES, INPUT_NAME, OUTPUT_NAME, main
from asr.nnet.exported import ExportedDnnAcousticModel, OnnxRunner, TorchScriptRunner, load_runner
from asr.nnet.model import DnnAcousticModel

FORMATS = ("torchscript", "onnx")
ATOL = 1e-4  # float32 log-likelihoods of magnitude ~10; the exports measure ~4e-6


def _test_feats(yesno_dnn, n=None):
    with FeatureArchive(yesno_dnn.data / "test" / "fbank.h5") as archive:
        utts = archive.utt_ids[:n] if n else archive.utt_ids
        return {u: archive.read(u) for u in utts}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_scores_equal_pytorch(yesno_dnn, exported, fmt):
    reference = DnnAcousticModel.load(yesno_dnn.dnn)
    model = load_acoustic_model(getattr(exported, fmt))
    assert isinstance(model, ExportedDnnAcousticModel)
    assert (model.num_pdfs, model.left_context, model.right_context) == (reference.num_pdfs, 13, 12)
    np.testing.assert_allclose(model.log_priors, reference.log_priors.numpy(), rtol=0, atol=1e-6)
    worst = 0.0
    for utt, feats in _test_feats(yesno_dnn).items():
        ours, theirs = model.log_likelihoods(feats), reference.log_likelihoods(feats)
        assert ours.shape == theirs.shape == (feats.shape[0], reference.num_pdfs), utt
        worst = max(worst, float(np.abs(ours - theirs).max()))
        np.testing.assert_allclose(model.log_posteriors(feats), reference.log_posteriors(feats), atol=ATOL)
    assert worst < ATOL
    assert exported.metadata[fmt]["max_abs_diff"] < ATOL


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_chunked_scoring_equals_whole_utterance(yesno_dnn, exported, fmt):
    """Chunks of 7 frames, each with its real context frames, give the whole-utterance scores (also for
    utterances shorter than the context and single frames)."""
    model = load_acoustic_model(getattr(exported, fmt))
    feats = next(iter(_test_feats(yesno_dnn, 1).values()))
    whole = model.log_likelihoods(feats)
    model.batch_frames = 7
    np.testing.assert_allclose(model.log_likelihoods(feats), whole, atol=1e-5)
    reference = DnnAcousticModel.load(yesno_dnn.dnn)
    for n in (1, 5, 30):
        np.testing.assert_allclose(model.log_likelihoods(feats[:n]), reference.log_likelihoods(feats[:n]), atol=ATOL)
    assert model.log_likelihoods(feats[:0]).shape == (0, model.num_pdfs)


@pytest.mark.slow
def test_exported_models_decode_to_the_same_words(yesno_dnn, exported, tmp_path):
    graph = yesno_dnn.exp / "mono" / "graph"
    test = yesno_dnn.data / "test"
    results = {}
    for name, model_dir in (("pytorch", yesno_dnn.dnn), ("torchscript", exported.torchscript), ("onnx", exported.onnx)):
        results[name] = decode_data_dir(graph, model_dir, test, tmp_path / name, jobs=1)
        assert results[name]["model"]["kind"] == {"pytorch": "dnn"}.get(name, f"dnn-{name}")
    hyps = {name: (tmp_path / name / "hyp.txt").read_text() for name in results}
    assert hyps["torchscript"] == hyps["pytorch"] == hyps["onnx"]
    for name in ("torchscript", "onnx"):
        for key in ("wer", "ins", "del", "sub", "words"):
            assert results[name][key] == results["pytorch"][key]


@pytest.mark.slow
def test_exported_files_run_without_asr(yesno_dnn, exported):
    """The files alone: onnxruntime and torch.jit.load, frames in, log-likelihoods out, names as documented."""
    import onnxruntime

    feats = next(iter(_test_feats(yesno_dnn, 1).values()))
    reference = DnnAcousticModel.load(yesno_dnn.dnn).log_likelihoods(feats)
    session = onnxruntime.InferenceSession(str(exported.onnx / EXPORTED_FILES["onnx"]))
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    np.testing.assert_allclose(session.run(None, {INPUT_NAME: feats})[0], reference, atol=ATOL)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["asr_export"])
    assert meta["num_pdfs"] == reference.shape[1] and meta["feature_dim"] == 40
    with warnings.catch_warnings():  # recent torch versions warn that TorchScript is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(exported.torchscript / EXPORTED_FILES["torchscript"]))
    with torch.inference_mode():
        np.testing.assert_allclose(module(torch.from_numpy(feats)).numpy(), reference, atol=ATOL)
    assert isinstance(load_runner(exported.onnx / "model.onnx", "onnx"), OnnxRunner)
    assert isinstance(load_runner(exported.torchscript / "model.ts.pt", "torchscript"), TorchScriptRunner)


@pytest.mark.slow
def test_bad_exported_files_are_refused(exported, tmp_path):
    # truncated ONNX and TorchScript files
    for fmt, src in (("onnx", exported.onnx), ("torchscript", exported.torchscript)):
        bad = tmp_path / f"bad_{fmt}"
        shutil.copytree(src, bad)
        path = bad / EXPORTED_FILES[fmt]
        path.write_bytes(path.read_bytes()[:500])
        with pytest.raises(InputError) as err:
            load_acoustic_model(bad)
        assert str(path) in str(err.value)
    # model.json naming no file / a missing file
    bad = tmp_path / "no_file"
    shutil.copytree(exported.onnx, bad)
    info = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**info, "exported_file": "../elsewhere.onnx"}))
    with pytest.raises(InputError, match="exported_file"):
        load_acoustic_model(bad)
    (bad / "model.json").write_text(json.dumps({**info, "exported_file": "gone.onnx"}))
    with pytest.raises(InputError, match="not found"):
        load_acoustic_model(bad)
    # an ONNX file of another origin (no asr metadata), and one from a newer export format
    import onnx

    proto = onnx.load(str(exported.onnx / "model.onnx"))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(InputError, match="not a file written by asr.nnet.export"):
        OnnxRunner(foreign)
    meta = {k: v for k, v in exported.metadata["onnx"].items() if k != "files"}
    proto.metadata_props.add(key="asr_export", value=json.dumps({**meta, "format_version": 99}))
    onnx.save(proto, str(foreign))
    with pytest.raises(InputError, match="version 99"):
        OnnxRunner(foreign)
    # the pdf count of the graph must match the HMM files
    bad = tmp_path / "other_counts"
    shutil.copytree(exported.torchscript, bad)
    (bad / "pdf_counts.txt").write_text("[ 1 2 3 ]\n")
    with pytest.raises(InputError, match="disagree on the number of pdfs"):
        load_acoustic_model(bad)
    with pytest.raises(ConfigError):
        load_runner(foreign, "tflite")


@pytest.mark.slow
def test_cli_writes_a_file_and_a_model_dir(yesno_dnn, tmp_path, capsys):
    out = tmp_path / "d.ts.pt"
    assert main(["--model", str(yesno_dnn.dnn), "--format", "torchscript", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["files"] == [str(out)] and printed["max_abs_diff"] < ATOL
    assert TorchScriptRunner(out).metadata["source_model_dir"] == str(yesno_dnn.dnn)
    assert main(["--model", str(yesno_dnn.dnn), "--format", "torchscript", "--model-dir", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())["kind"] == "dnn-torchscript"
    with pytest.raises(SystemExit):
        main(["--model", str(yesno_dnn.dnn), "--format", "onnx"])  # neither --out nor --model-dir
    assert main(["--model", str(tmp_path / "nowhere"), "--format", "torchscript", "--out", str(out)]) == 1
    assert "model directory not found" in capsys.readouterr().err
