"""Alignment resumes per block of utterances (python -m asr.gmm.align --block-frames): a run killed with SIGKILL
keeps the blocks it finished and aligns only the rest; blocks of other inputs and damaged block files are
discarded and redone; the outputs always equal an uninterrupted run's."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from asr.features.archive import FeatureArchive
from asr.gmm.align import (
    ALIGN_BLOCKS,
    AlignmentBlocks,
    AlignmentJobs,
    AlignOptions,
    UtteranceAlignments,
    align_data_dir,
    load_transcripts,
    split_blocks_into_jobs,
    split_into_blocks,
)
from asr.gmm.model import GmmAcousticModel
from asr.lang.lang_dir import Lang

REPO = Path(__file__).resolve().parents[2]
RESUMING = re.compile(r"resuming alignment from (\d+) block\(s\): (\d+) utterances done")


def _inputs(yesno_recipe) -> tuple[Path, Path, Path]:
    return yesno_recipe.data / "train", yesno_recipe.data / "lang", yesno_recipe.exp / "mono"


@pytest.fixture(scope="module")
def clean(yesno_recipe, tmp_path_factory) -> Path:
    """An uninterrupted alignment of yes/no train in one block (2 jobs)."""
    data, lang, model = _inputs(yesno_recipe)
    out = tmp_path_factory.mktemp("align_resume") / "clean"
    align_data_dir(data, lang, model, out, num_jobs=2, block_frames=0)
    assert not (out / ALIGN_BLOCKS).exists()
    return out


def _h5(path: Path) -> dict:
    items = {}
    with h5py.File(path, "r") as f:
        items["/"] = {k: np.asarray(v).tolist() for k, v in f.attrs.items()}
        f.visititems(lambda name, obj: items.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return items


def assert_same_outputs(out: Path, ref: Path, *, other_jobs: bool = False) -> None:
    """The files of two alignment dirs are equal: HDF5 datasets and attributes, align.json without its timings
    (and without ``num_jobs`` when ``other_jobs``), every other file byte for byte; no block files are left."""
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in ref.iterdir())
    assert ALIGN_BLOCKS not in names
    for name in names:
        a, b = out / name, ref / name
        if name.endswith(".h5"):
            x, y = _h5(a), _h5(b)
            assert x.keys() == y.keys(), name
            for k in x:
                assert np.array_equal(np.asarray(x[k]), np.asarray(y[k])), f"{name}:{k}"
        elif name == "align.json":
            x, y = json.loads(a.read_text()), json.loads(b.read_text())
            for k in ("seconds", "num_jobs") if other_jobs else ("seconds",):
                x.pop(k), y.pop(k)
            assert x == y
        else:
            assert a.read_bytes() == b.read_bytes(), name


def _align_blocks(yesno_recipe, groups: list[list[int]]) -> tuple[list[str], list[UtteranceAlignments]]:
    """The archive's utterance ids, and the alignments of each group of utterance positions as
    :func:`align_data_dir` aligns a block (:meth:`AlignmentJobs.align_utterances`, one job holding only them)."""
    data, lang, model_dir = _inputs(yesno_recipe)
    model = GmmAcousticModel.load(model_dir)
    archive = data / f"{model.feature_type}.h5"
    utt_ids = FeatureArchive(archive).utt_ids
    transcripts = load_transcripts(data / "text", Lang.load(lang), utt_ids)
    with AlignmentJobs(archive, transcripts, lang / "L.fst", 1, model.delta_order, model.delta_window,
                       blocks=groups) as jobs:  # fmt: skip
        jobs.set_model(model.transition_model, model.ctx_dep, AlignOptions(), compile_graphs=False)
        results = [
            jobs.align_utterances(g, model.gmm if b == 0 else None, AlignOptions()) for b, g in enumerate(groups)
        ]
    return utt_ids, results


def test_split_into_blocks_and_jobs():
    assert split_into_blocks([5, 5, 5, 5, 5], 10) == [[0, 1], [2, 3], [4]]
    assert split_into_blocks([12, 1, 9, 3], 10) == [[0], [1, 2], [3]]
    assert split_into_blocks([5, 5, 5], 0) == [[0, 1, 2]]
    assert split_into_blocks([], 10) == []
    # every block is shared out evenly among the jobs (not only the whole set)
    lengths = [10, 10, 1, 1, 10, 10, 1, 1]
    groups = split_blocks_into_jobs(lengths, [[0, 1, 2, 3], [4, 5, 6, 7], []], 2)
    for block in ([0, 1, 2, 3], [4, 5, 6, 7]):
        assert sorted(sum(lengths[p] for p in g if p in block) for g in groups) == [11, 11]
    assert sorted(p for g in groups for p in g) == list(range(8)) and all(g == sorted(g) for g in groups)
    assert split_blocks_into_jobs([5, 6], [[1]], 4) == [[1]]
    with pytest.raises(ValueError):
        split_blocks_into_jobs([5, 6], [[1], [1]], 2)


@pytest.mark.slow
def test_a_killed_alignment_resumes_from_its_blocks(yesno_recipe, clean, tmp_path, caplog):
    """SIGKILL the CLI (and its workers) once its first block file exists; the run started again reuses the
    blocks on disk (and logs it), aligns the rest, and writes what an uninterrupted run writes."""
    data, lang, model = _inputs(yesno_recipe)
    out = tmp_path / "ali"
    cmd = [sys.executable, "-m", "asr.gmm.align", "--data", str(data), "--lang", str(lang), "--model", str(model),
           "--out", str(out), "--jobs", "2", "--block-frames", "1000"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while not list((out / ALIGN_BLOCKS).glob("block-*.npz")):
            assert proc.poll() is None, f"the alignment ended before any block was saved: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no block file within 120 s"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = sorted((out / ALIGN_BLOCKS).glob("block-*.npz"))
    assert saved and not (out / "align.json").exists() and not (out / "ali.h5").exists()
    with caplog.at_level(logging.INFO, logger="asr.gmm.align"):
        align_data_dir(data, lang, model, out, num_jobs=2, block_frames=1000)
    match = RESUMING.search(caplog.text)
    assert match, caplog.text
    num_blocks, num_done = int(match[1]), int(match[2])
    assert num_blocks == len(saved) and 1 <= num_done < 31
    realigned = sum(int(n) for n in re.findall(r"aligned block \d+ of \d+: (\d+) utterances", caplog.text))
    assert num_done + realigned == 31  # only the utterances of the missing blocks were aligned again
    assert_same_outputs(out, clean)


def test_blocks_of_other_inputs_are_discarded(yesno_recipe, clean, tmp_path, caplog):
    """A block of the same inputs is reused; one written for other inputs or options (another key) is deleted and
    its utterances aligned again."""
    data, lang, model = _inputs(yesno_recipe)
    out = tmp_path / "ali"
    key = json.loads((clean / "align.json").read_text())["fingerprint"]["sha256"]
    utt_ids, (ours, theirs) = _align_blocks(yesno_recipe, [[0, 1, 2, 3, 4], [5, 6, 7]])
    AlignmentBlocks(out, key).save(utt_ids, ours)
    other = AlignmentBlocks(out, "0" * 64).save(utt_ids, theirs)
    with caplog.at_level(logging.INFO, logger="asr.gmm.align"):
        align_data_dir(data, lang, model, out, num_jobs=1, block_frames=3000)
    assert "resuming alignment from 1 block(s): 5 utterances done" in caplog.text
    assert f"discarding {other}: it was written for other inputs or options" in caplog.text
    assert sum(int(n) for n in re.findall(r"aligned block \d+ of \d+: (\d+) utterances", caplog.text)) == 26
    assert_same_outputs(out, clean, other_jobs=True)  # 1 job here, 2 there: the same alignments


def test_damaged_block_files_are_discarded_and_redone(yesno_recipe, clean, tmp_path, caplog):
    """Block files cut short, with flipped bytes, or holding alignments that do not fit the features are deleted
    with a warning and their utterances aligned again; the outputs equal the clean run's."""
    data, lang, model = _inputs(yesno_recipe)
    out = tmp_path / "ali"
    key = json.loads((clean / "align.json").read_text())["fingerprint"]["sha256"]
    utt_ids, results = _align_blocks(yesno_recipe, [[0, 1], [2, 3, 4], [5, 6]])
    results[2].alignments[1] = results[2].alignments[1][:-1]  # one frame short of the utterance
    cut, flipped, misfit = (AlignmentBlocks(out, key).save(utt_ids, r) for r in results)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    raw = bytearray(flipped.read_bytes())
    start = raw.index(b"tstates.npy")
    raw[start + 300] ^= 0xFF  # inside the alignment data: the zip member's CRC no longer matches
    flipped.write_bytes(bytes(raw))
    with caplog.at_level(logging.INFO, logger="asr.gmm.align"):
        align_data_dir(data, lang, model, out, num_jobs=1, block_frames=0)
    assert caplog.text.count("it is damaged") == 3, caplog.text
    assert "resuming alignment" not in caplog.text
    assert_same_outputs(out, clean, other_jobs=True)
