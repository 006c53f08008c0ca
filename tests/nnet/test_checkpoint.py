"""Checkpoints: atomic, weights_only loadable, pruned, and a damaged newest one falls back to the previous."""

from __future__ import annotations

import logging

import pytest
import torch

from asr.nnet.checkpoint import list_checkpoints, load_checkpoint, load_latest_checkpoint, save_checkpoint


def _state(step: int) -> dict:
    return {
        "model": {"w": torch.full((3,), float(step))},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "step": step,
        "epoch": 0,
        "batch_in_epoch": step,
        "epoch_rng_state": torch.Generator().manual_seed(step).get_state(),
        "history": "[]",
    }


def test_save_prune_and_load_latest(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, _state(step), keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"ckpt-{s:09d}.pt" for s in (20, 30, 40)]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind
    state, path = load_latest_checkpoint(tmp_path)
    assert state["step"] == 40 and path.name == "ckpt-000000040.pt"
    assert torch.equal(state["model"]["w"], torch.full((3,), 40.0))
    assert torch.equal(state["epoch_rng_state"], torch.Generator().manual_seed(40).get_state())
    assert load_latest_checkpoint(tmp_path / "absent") is None


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    for step in (10, 20):
        save_checkpoint(tmp_path, _state(step))
    newest = list_checkpoints(tmp_path)[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="asr.nnet.checkpoint"):
        state, path = load_latest_checkpoint(tmp_path)
    assert state["step"] == 10 and path.name == "ckpt-000000010.pt"
    assert "ckpt-000000020.pt is unusable" in caplog.text and "falling back" in caplog.text
    # all damaged: nothing to resume from
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="asr.nnet.checkpoint"):
        assert load_latest_checkpoint(tmp_path) is None


class Thing:
    """Not a tensor: weights_only loading must refuse it."""


def test_pickled_objects_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "ckpt-000000001.pt"
    torch.save({**_state(1), "format": "asr-dnn-checkpoint", "version": 1, "thing": Thing()}, path)
    with pytest.raises(ValueError, match="cannot load"):
        load_checkpoint(path)  # weights_only=True refuses arbitrary objects
    torch.save({"step": 1}, path)
    with pytest.raises(ValueError, match="not an asr DNN checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, {"step": 2})
