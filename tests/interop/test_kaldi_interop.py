"""Kaldi interop: pdf alignments (ali-to-pdf's text and binary arks, scp, gzip) -> ali.h5 -> the same arrays, back
to arks; log-likelihood arks read back with kaldi_io; a DNN trained on imported alignments; bad input refused."""

from __future__ import annotations

import gzip
import json
import os
import tempfile

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.gmm.alignment_archive import AlignmentArchive
from asr.interop.kaldi import export_pdf_alignments, import_pdf_alignments, main, read_int_vectors, write_loglikes
from asr.nnet.alignments import read_pdf_alignment
from asr.nnet.model import DnnAcousticModel
from asr.train import CONF_DIR, run_training

os.environ.setdefault("KALDI_ROOT", tempfile.gettempdir())  # kaldi_io warns at import without it
import kaldi_io  # noqa: E402


@pytest.fixture(scope="module")
def mono(yesno_recipe):
    """The recipe's mono alignments (the 'Kaldi' alignments of these tests) and training features."""
    ali = AlignmentArchive(yesno_recipe.exp / "mono" / "ali.h5")
    return ali, yesno_recipe.data / "train" / "fbank.h5", yesno_recipe.exp / "mono"


def _write_text_ark(path, items):
    """As ``ali-to-pdf ... ark,t:`` writes it: ``utt`` then each value followed by a space, then a newline."""
    with open(path, "w", encoding="utf-8") as f:
        for utt, pdfs in items:
            f.write(utt + " " + "".join(f"{p} " for p in pdfs) + "\n")


def _write_binary_ark(path, items, scp=None):
    """As ``ali-to-pdf ... ark:`` (binary int32 vectors) writes it, plus an scp with byte offsets."""
    lines = []
    with open(path, "wb") as f:
        for utt, pdfs in items:
            f.write(utt.encode() + b" ")
            lines.append(f"{utt} {path}:{f.tell()}\n")
            kaldi_io.write_vec_int(f, np.asarray(pdfs, dtype=np.int32))
    if scp is not None:
        scp.write_text("".join(lines))


def _items(ali):
    return [(u, ali.pdfs(u)) for u in ali.utt_ids]


def _assert_same_pdfs(imported: AlignmentArchive, original: AlignmentArchive):
    assert imported.utt_ids == original.utt_ids
    np.testing.assert_array_equal(imported.offsets, original.offsets)
    np.testing.assert_array_equal(imported.pdf_ids, original.pdf_ids)
    assert imported.num_pdfs == original.num_pdfs and not imported.failed
    assert imported.attrs["pdf_only"] and imported.attrs["source"] == "kaldi ali-to-pdf"


@pytest.mark.slow
def test_text_binary_scp_and_gzip_arks_round_trip(mono, tmp_path):
    ali, feats, _ = mono
    items = _items(ali)
    _write_text_ark(tmp_path / "ali.pdf.txt", items)
    _write_binary_ark(tmp_path / "ali.pdf.ark", items, tmp_path / "ali.pdf.scp")
    with open(tmp_path / "ali.pdf.txt", "rb") as src, gzip.open(tmp_path / "ali.pdf.txt.gz", "wb") as dst:
        dst.write(src.read())
    sources = {
        "text": [f"ark,t:{tmp_path / 'ali.pdf.txt'}"],
        "binary": [f"ark:{tmp_path / 'ali.pdf.ark'}"],
        "scp": [f"scp:{tmp_path / 'ali.pdf.scp'}"],
        "gzip": [str(tmp_path / "ali.pdf.txt.gz")],
        "split": [str(tmp_path / "part1.ark"), str(tmp_path / "part2.txt")],  # ali.1, ali.2: mixed forms
    }
    _write_binary_ark(tmp_path / "part1.ark", items[:10])
    _write_text_ark(tmp_path / "part2.txt", items[10:])
    for name, source in sources.items():
        summary = import_pdf_alignments(source, feats, tmp_path / name / "ali.h5", num_pdfs=ali.num_pdfs)
        assert (summary.aligned, summary.frames, summary.unaligned) == (len(ali), ali.num_frames, []), name
        _assert_same_pdfs(AlignmentArchive(tmp_path / name / "ali.h5"), ali)
    # and back: export-ali writes what ali-to-pdf writes; kaldi_io reads it
    for spec in (f"ark:{tmp_path / 'back.ark'}", f"ark,t:{tmp_path / 'back.txt'}"):
        assert export_pdf_alignments(tmp_path / "binary" / "ali.h5", spec) == len(ali)
    for path in (tmp_path / "back.ark", tmp_path / "back.txt"):
        back = dict(kaldi_io.read_vec_int_ark(str(path)))
        assert list(back) == ali.utt_ids
        for utt, pdfs in items:
            np.testing.assert_array_equal(back[utt], pdfs)
    assert (tmp_path / "back.txt").read_text() == (tmp_path / "ali.pdf.txt").read_text()


@pytest.mark.slow
def test_partial_and_extra_alignments(mono, tmp_path):
    ali, feats, _ = mono
    items = _items(ali)
    _write_text_ark(tmp_path / "a.txt", items[2:] + [("yesno-unknown_utt", [0, 1])])
    with pytest.raises(InputError) as err:
        import_pdf_alignments([tmp_path / "a.txt"], feats, tmp_path / "x" / "ali.h5")
    assert "yesno-unknown_utt" in str(err.value) and f"{tmp_path / 'a.txt'}:{len(items) - 1}:" in str(err.value)
    summary = import_pdf_alignments([tmp_path / "a.txt"], feats, tmp_path / "x" / "ali.h5", allow_extra=True)
    assert summary.extra == ["yesno-unknown_utt"] and summary.unaligned == ali.utt_ids[:2]
    assert summary.num_pdfs_source == "largest pdf id + 1"
    imported = AlignmentArchive(tmp_path / "x" / "ali.h5")
    assert sorted(imported.failed) == ali.utt_ids[:2]
    assert imported.pdfs(ali.utt_ids[0]) is None
    np.testing.assert_array_equal(imported.pdfs(ali.utt_ids[5]), ali.pdfs(ali.utt_ids[5]))
    info = json.loads((tmp_path / "x" / "kaldi_import.json").read_text())
    assert info["unaligned_utts"] == ali.utt_ids[:2] and info["extra_utts"] == ["yesno-unknown_utt"]


@pytest.mark.slow
def test_bad_alignments_are_refused_naming_file_line_and_utterance(mono, tmp_path):
    ali, feats, _ = mono
    items = _items(ali)
    utt3 = items[3][0]

    def refused(items_or_text, binary=False, **kwargs):
        path = tmp_path / ("bad.ark" if binary else "bad.txt")
        if isinstance(items_or_text, bytes):
            path.write_bytes(items_or_text)
        elif binary:
            _write_binary_ark(path, items_or_text)
        else:
            _write_text_ark(path, items_or_text)
        with pytest.raises(InputError) as err:
            import_pdf_alignments([path], feats, tmp_path / "out" / "ali.h5", **kwargs)
        assert str(path) in str(err.value)
        return str(err.value)

    short = [*items[:3], (utt3, items[3][1][:-1]), *items[4:]]
    message = refused(short)
    assert f"bad.txt:4: utterance {utt3!r} has {len(items[3][1]) - 1} pdf ids but {len(items[3][1])} frames" in message
    assert "byte" in refused(short, binary=True) and utt3 in refused(short, binary=True)
    assert ":2: utterance" in refused([items[0], (items[1][0], ["0", "x1"])]) and "'x1'" in refused(
        [items[0], (items[1][0], ["0", "x1"])]
    )
    assert "pdf id 11 outside [0, 11)" in refused([(items[0][0], [11] * len(items[0][1]))], num_pdfs=11)
    assert "pdf id -1" in refused([(items[0][0], [-1] * len(items[0][1]))])
    assert "repeated" in refused([items[0], items[1], items[0]])
    assert ":3:" in refused([items[0], items[1], items[0]])
    binary = tmp_path / "whole.ark"
    _write_binary_ark(binary, items[:2])
    assert "truncated" in refused(binary.read_bytes()[:-7], binary=True)
    with pytest.raises(InputError, match="cannot open"):
        import_pdf_alignments([tmp_path / "missing.ark"], feats, tmp_path / "out" / "ali.h5")


def test_int_vector_reader_forms(tmp_path):
    """Kaldi's text forms: trailing spaces, bracketed vectors, empty vectors, blank lines between entries."""
    path = tmp_path / "v.txt"
    path.write_bytes(b"a 1 2 3 \nb [ 4 5 ]\n\nc \nd 7\n")
    got = [(v.key, v.values.tolist(), v.line) for v in read_int_vectors(f"ark,t:{path}")]
    assert got == [("a", [1, 2, 3], 1), ("b", [4, 5], 2), ("c", [], 4), ("d", [7], 5)]


@pytest.mark.slow
def test_loglikes_ark_reads_back_with_kaldi_io(yesno_dnn, exported, tmp_path, capsys):
    test = yesno_dnn.data / "test"
    model = DnnAcousticModel.load(yesno_dnn.dnn)
    count = write_loglikes(yesno_dnn.dnn, f"ark,scp:{tmp_path / 'll.ark'},{tmp_path / 'll.scp'}", data_dir=test)
    with FeatureArchive(test / "fbank.h5") as archive:
        expected = {u: model.log_likelihoods(archive.read(u)) for u in archive.utt_ids}
    assert count == len(expected)
    from_ark = dict(kaldi_io.read_mat_ark(str(tmp_path / "ll.ark")))
    from_scp = dict(kaldi_io.read_mat_scp(str(tmp_path / "ll.scp")))
    assert list(from_ark) == list(from_scp) == sorted(expected)
    for utt, loglikes in expected.items():
        assert from_ark[utt].dtype == np.float32 and from_ark[utt].shape == (loglikes.shape[0], model.num_pdfs)
        np.testing.assert_array_equal(from_ark[utt], loglikes)
        np.testing.assert_array_equal(from_scp[utt], loglikes)
    # the CLI, with an exported model and a feature archive instead of a data dir
    out = tmp_path / "onnx.ark"
    args = ["write-loglikes", "--model", str(exported.onnx), "--feats", str(test / "fbank.h5"), "--out", str(out)]
    assert main([*args, "--scp", str(tmp_path / "onnx.scp")]) == 0
    assert capsys.readouterr().out.strip() == str(count)
    for utt, loglikes in kaldi_io.read_mat_scp(str(tmp_path / "onnx.scp")):
        np.testing.assert_allclose(loglikes, expected[utt], atol=1e-4)
    assert main(["write-loglikes", "--model", str(yesno_dnn.dnn), "--data", str(tmp_path), "--out", str(out)]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_dnn_trains_on_imported_kaldi_alignments(mono, yesno_recipe, tmp_path, capsys):
    """import-ali --model makes a gmm_dir that asr.train accepts; the DNN sees the same targets."""
    ali, feats, mono_dir = mono
    _write_text_ark(tmp_path / "ali.pdf.txt", _items(ali))
    kaldi_dir = tmp_path / "kaldi_ali"
    args = ["import-ali", "--ark", f"ark,t:{tmp_path / 'ali.pdf.txt'}", "--feats", str(feats)]
    assert main([*args, "--out", str(kaldi_dir / "ali.h5"), "--model", str(mono_dir)]) == 0
    assert "31 utterances" in capsys.readouterr().out
    overrides = [
        "corpus=yesno",
        f"corpus.data_dir={yesno_recipe.data}",
        f"exp_root={tmp_path / 'exp'}",
        f"gmm_dir={kaldi_dir}",
        "prepare=false",
        "depth=1",
        "width=16",
        "optim.batch_size=256",
        "trainer.epochs=1",
        "trainer.tensorboard=false",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "decode.enabled=false",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    run_dir = run_training(cfg, tmp_path / "dnn")
    info = json.loads((run_dir / "model.json").read_text())
    assert info["alignments"] == str(kaldi_dir / "ali.h5") and info["num_pdfs"] == ali.num_pdfs
    original = read_pdf_alignment(mono_dir / "ali.h5")
    imported = read_pdf_alignment(kaldi_dir / "ali.h5")
    np.testing.assert_array_equal(imported.pdf_ids, original.pdf_ids)
    DnnAcousticModel.load(run_dir)  # a complete, decodable DNN model dir
