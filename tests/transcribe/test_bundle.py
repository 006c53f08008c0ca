"""Model bundles: what export writes, checksum verification on load, format version refusal, export errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import asr
from asr.bundle import BUNDLE_FORMAT_VERSION, MANIFEST_NAME, export_bundle, load_bundle, verify_bundle
from asr.errors import ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.files import file_sha256
from asr.transcribe import Recognizer

REPO = Path(__file__).resolve().parents[2]


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    return out


def _rewrite_manifest(bundle: Path, change) -> None:
    path = bundle / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_exported_bundles_are_self_contained_and_complete(yesno_bundles, tmp_path):
    for bundle, weights in ((yesno_bundles.gmm, "final.gmm.pt"), (yesno_bundles.dnn, "final.pt")):
        manifest = json.loads((bundle / MANIFEST_NAME).read_text())
        assert manifest["format"] == "asr-model-bundle" and manifest["format_version"] == BUNDLE_FORMAT_VERSION
        assert manifest["asr_version"] == asr.__version__ and manifest["torch_version"] == torch.__version__
        files = manifest["files"]
        for name in ("bundle.json", f"model/{weights}", "model/model.json", "model/tree.json", "model/topo.json",
                     "model/transition_model.json", "model/phones.txt", "graph/HCLG.fst", "graph/words.txt",
                     "lang/lexicon.txt"):  # fmt: skip
            assert name in files, name
            assert files[name]["sha256"] == file_sha256(bundle / name)
            assert files[name]["size"] == (bundle / name).stat().st_size
        on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
        assert on_disk == set(files) | {MANIFEST_NAME}
    assert "model/pdf_counts.txt" in json.loads((yesno_bundles.dnn / MANIFEST_NAME).read_text())["files"]
    assert (yesno_bundles.dnn / "model" / "config.resolved.yaml").is_file()
    # the feature options, CMVN and statistics come from the training archive
    dnn = load_bundle(yesno_bundles.dnn)
    with FeatureArchive(yesno_bundles.data / "train" / "fbank.h5") as archive:
        assert dnn.feature_options == archive.options
        stats = np.sum(np.stack(list(archive.cmvn_stats().values())), axis=0)
    np.testing.assert_allclose(dnn.global_cmvn_stats, stats)
    assert dnn.trained_cmvn["kind"] == "speaker" and dnn.cmvn.kind == "online" and dnn.kind == "dnn"
    gmm = load_bundle(yesno_bundles.gmm)
    assert gmm.feature_options.type == "mfcc" and gmm.feature_options.use_energy  # the recipe's MFCC options
    assert gmm.settings["context_frames"] == {"left": 4, "right": 4}
    assert dnn.settings["context_frames"] == {"left": 13, "right": 12}
    # relocatable: a moved bundle loads and decodes
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(yesno_bundles.gmm, moved)
    utt, wav = yesno_bundles.test_wavs(1)[0]
    assert Recognizer(moved).transcribe_file(wav).words


def test_tampered_file_is_refused_naming_it(yesno_bundles, tmp_path):
    bundle = _copy(yesno_bundles.gmm, tmp_path)
    weights = bundle / "model" / "final.gmm.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit flipped
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum mismatch: sha256") as err:
        load_bundle(bundle)
    assert err.value.path == os.fspath(weights)
    with pytest.raises(InputError, match="checksum mismatch"):
        Recognizer(bundle)
    # a changed size, a missing file, an edited settings file
    bundle = _copy(yesno_bundles.gmm, tmp_path / "b")
    with open(bundle / "graph" / "words.txt", "a") as f:
        f.write("EXTRA 99\n")
    with pytest.raises(InputError, match=r"words.txt: checksum mismatch: \d+ bytes"):
        verify_bundle(bundle)
    bundle = _copy(yesno_bundles.gmm, tmp_path / "c")
    (bundle / "graph" / "HCLG.fst").unlink()
    with pytest.raises(InputError, match="HCLG.fst: file of the bundle is missing"):
        load_bundle(bundle)
    bundle = _copy(yesno_bundles.gmm, tmp_path / "d")
    settings = json.loads((bundle / "bundle.json").read_text())
    settings["lm_weight"] = 3
    (bundle / "bundle.json").write_text(json.dumps(settings, indent=1))
    with pytest.raises(InputError, match="bundle.json: checksum mismatch"):
        load_bundle(bundle)


def test_incompatible_format_version_and_foreign_manifest_are_refused(yesno_bundles, tmp_path):
    bundle = _copy(yesno_bundles.gmm, tmp_path)
    _rewrite_manifest(bundle, lambda m: m.update(format_version=BUNDLE_FORMAT_VERSION + 1, asr_version="9.0.0"))
    message = (
        f"bundle format version {BUNDLE_FORMAT_VERSION + 1} (made by asr 9.0.0) is newer than this asr "
        f"{asr.__version__} reads (format version {BUNDLE_FORMAT_VERSION}): upgrade asr"
    )
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_bundle(bundle)
    assert err.value.path == os.fspath(bundle / MANIFEST_NAME)
    _rewrite_manifest(bundle, lambda m: m.update(format_version=0))
    with pytest.raises(InputError, match="invalid format_version 0"):
        load_bundle(bundle)
    _rewrite_manifest(bundle, lambda m: m.update(format="something-else", format_version=1))
    with pytest.raises(InputError, match="not an asr-model-bundle manifest"):
        load_bundle(bundle)
    escape = {"../escape": {"sha256": "x", "size": 1}}
    _rewrite_manifest(bundle, lambda m: m.update(format="asr-model-bundle", files=escape))
    with pytest.raises(InputError, match="bad file name '../escape'"):
        load_bundle(bundle)
    (bundle / MANIFEST_NAME).unlink()
    with pytest.raises(InputError, match="not a model bundle: no manifest.json"):
        load_bundle(bundle)
    with pytest.raises(InputError, match="model bundle not found"):
        load_bundle(tmp_path / "absent")
    hint = "this is a model dir, not a bundle: export one first with python -m asr.bundle export --model "
    with pytest.raises(InputError, match=hint) as err:
        load_bundle(yesno_bundles.dnn_dir)
    assert f"--graph {yesno_bundles.exp / 'mono' / 'graph'} --out" in err.value.message


def test_weights_are_loaded_without_unpickling_objects(yesno_bundles, tmp_path):
    """A final.pt holding an arbitrary pickled object (checksums updated to match) is refused by
    torch.load(weights_only=True), not executed."""
    bundle = _copy(yesno_bundles.dnn, tmp_path)
    weights = bundle / "model" / "final.pt"
    torch.save({"weights": np.float64(1.0).__class__, "payload": ValueError("not a tensor")}, weights)

    def fix(m):
        m["files"]["model/final.pt"] = {"sha256": file_sha256(weights), "size": weights.stat().st_size}

    _rewrite_manifest(bundle, fix)
    with pytest.raises(InputError, match="final.pt: cannot load the weights"):
        load_bundle(bundle).load_model()


def test_export_errors(yesno_bundles, yesno_recipe, tmp_path):
    mono, graph = yesno_recipe.exp / "mono", yesno_recipe.exp / "mono" / "graph"
    with pytest.raises(ConfigError, match="exists: pass --force"):
        export_bundle(mono, graph, yesno_bundles.gmm)
    with pytest.raises(ConfigError, match=r"training feature archive .*nothing.h5 not found"):
        export_bundle(mono, graph, tmp_path / "b", features=tmp_path / "nothing.h5")
    with pytest.raises(InputError, match="archive holds 'fbank' features, the model reads 'mfcc'"):
        export_bundle(mono, graph, tmp_path / "b", features=yesno_recipe.data / "train" / "fbank.h5")
    other = tmp_path / "graph"
    shutil.copytree(graph, other)
    info = json.loads((other / "graph.json").read_text())
    info["transition_states_sha256"] = "0" * 64
    (other / "graph.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="the graph was built for another model"):
        export_bundle(mono, other, tmp_path / "b")
    with pytest.raises(ConfigError, match="CMVN policy must be one of"):
        export_bundle(mono, graph, tmp_path / "b", cmvn="speaker")
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.tmp*"))  # nothing half-written


def test_verify_cli(yesno_bundles, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "asr.bundle", "verify"]
    ok = subprocess.run([*cmd, str(yesno_bundles.gmm)], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "checksums OK" in ok.stdout and "policy for new audio online" in ok.stdout
    bundle = _copy(yesno_bundles.gmm, tmp_path)
    (bundle / "lang" / "lexicon.txt").write_text("YES Y\n")
    bad = subprocess.run([*cmd, str(bundle)], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "error:" in bad.stderr and "lexicon.txt: checksum mismatch" in bad.stderr
    assert "Traceback" not in bad.stderr
