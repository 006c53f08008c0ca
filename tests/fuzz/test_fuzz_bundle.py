"""Fuzzed model bundles: a tampered file is refused by its checksum, naming it (a tampered manifest either still
verifies every file or is refused); a bundle whose JSON files were
changed in structure (a value replaced by another type, a key deleted) and re-signed loads, with its model, or
raises our error naming a file of the bundle; never another exception."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import pytest
from fuzz_helpers import COUNTS, assert_ours, fuzz_settings, outcome_of
from hypothesis import given
from hypothesis import strategies as st

from asr.bundle import MANIFEST_NAME, export_bundle, load_bundle

JSON_FILES = ("bundle.json", "model/model.json", "model/tree.json", "model/topo.json", "model/transition_model.json",
              "graph/graph.json", MANIFEST_NAME)  # fmt: skip
VALUES = [None, True, False, 0, -1, 1, 7, 2**40, -(2**40), 0.5, -2.5, 1e308, math.nan, math.inf, "", "x", "dnn",
          "gmm", [], [0], [1, 2, 3], [[0, 1]], {}, {"a": 1}]  # fmt: skip


def _paths(doc, prefix=()):
    """Every (key path) of a JSON document, parents before children; at most 400."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:20]):
            out += _paths(v, prefix + (i,))
    return out[:400]


def _replace(doc, path, value, delete):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete and isinstance(parent, list):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


def _resign(bundle, rel: str) -> None:
    manifest_path = bundle / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    data = (bundle / rel).read_bytes()
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest_path.write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def bundle(yesno_recipe, tmp_path_factory):
    mono = yesno_recipe.exp / "mono"
    out = tmp_path_factory.mktemp("bundle") / "b"
    return export_bundle(mono, mono / "graph", out, lang_dir=yesno_recipe.data / "lang_test",
                         features=yesno_recipe.data / "train" / "mfcc.h5")  # fmt: skip


def _load_all(path):
    b = load_bundle(path)
    b.load_model()
    return b.kind


def test_tampered_files_are_refused(bundle, tmp_path):
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    work = tmp_path / "b"

    @fuzz_settings(100)
    @given(index=st.integers(0, 10**6), offset=st.integers(0, 10**9), xor=st.integers(1, 255))
    def check(index, offset, xor):
        COUNTS["bundle tamper"] += 1
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(bundle, work)
        rel = files[index % len(files)]
        data = bytearray((work / rel).read_bytes())
        if data:
            data[offset % len(data)] ^= xor
        (work / rel).write_bytes(bytes(data))
        outcome = outcome_of(_load_all, work)
        if rel == MANIFEST_NAME:  # its own bytes carry no checksum: a change that still verifies every file is
            assert_ours(outcome, [work], "tampered manifest")  # harmless; else the error names a bundle file
            return
        assert outcome[0] == "ours", f"tampered {rel} was accepted: {outcome}"
        assert_ours(outcome, [work / rel, work / MANIFEST_NAME], f"tampered {rel}")

    check()
    print(f"[fuzz] bundle, tampered bytes: {COUNTS['bundle tamper']} inputs")


def test_fuzz_bundle_json(bundle, tmp_path):
    docs = {rel: json.loads((bundle / rel).read_text()) for rel in JSON_FILES if (bundle / rel).is_file()}
    work = tmp_path / "b"
    refused = 0

    @fuzz_settings(200)
    @given(
        file=st.sampled_from(sorted(docs)),
        index=st.integers(0, 10**6),
        value=st.sampled_from(VALUES),
        delete=st.booleans(),
    )
    def check(file, index, value, delete):
        nonlocal refused
        COUNTS["bundle json"] += 1
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(bundle, work)
        doc = json.loads(json.dumps(docs[file]))
        paths = _paths(doc)
        doc = _replace(doc, paths[index % len(paths)], value, delete)
        (work / file).write_text(json.dumps(doc))
        if file != MANIFEST_NAME:
            _resign(work, file)
        outcome = outcome_of(_load_all, work)
        assert_ours(outcome, [work], f"{file} at {paths[index % len(paths)]} -> {value!r} (delete {delete})")
        refused += outcome[0] == "ours"

    check()
    print(f"[fuzz] bundle, JSON structure: {COUNTS['bundle json']} inputs ({refused} refused with our error)")


def test_model_json_not_utf8_is_refused(bundle, tmp_path):
    """Regression case of the atheris run (scripts/fuzz_parsers.py): a re-signed model/model.json holding a byte
    that is not UTF-8 made loading the model raise UnicodeDecodeError; it is our error naming the file."""
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    rel = "model/model.json"
    (work / rel).write_bytes(b'{"kind": "gmm", "x": "\xff"}')
    _resign(work, rel)
    outcome = outcome_of(_load_all, work)
    assert outcome[0] == "ours", outcome
    assert_ours(outcome, [work / rel], "model.json not UTF-8")
