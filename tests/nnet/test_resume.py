"""An interrupted and resumed training run ends with bit-identical weights to an uninterrupted one (CPU)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from nnet_helpers import write_tiny_set

from asr.errors import ConfigError
from asr.nnet.checkpoint import list_checkpoints
from asr.nnet.frame_data import ChunkedFrameLoader, InMemoryFrameLoader, make_heldout_set
from asr.nnet.mlp import Mlp
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions

EPOCHS = 3


def _make_trainer(tiny, out_dir, chunked=False, max_steps=None, fingerprint=None, optimizer="sgd"):
    torch.manual_seed(0)  # model init; a resumed run overwrites it from the checkpoint
    targets = tiny.pdf_ids.astype(np.int64)
    utt_mask = np.zeros(len(tiny.utt_ids), dtype=bool)
    utt_mask[[0, 5]] = True  # two utterances held out
    heldout = make_heldout_set(tiny.feats, tiny.offsets, targets, np.nonzero(utt_mask)[0])
    frame_utt = np.repeat(np.arange(len(tiny.utt_ids)), np.diff(tiny.offsets))
    frames = np.nonzero(~utt_mask[frame_utt])[0]
    if chunked:
        loader = ChunkedFrameLoader(
            tiny.archive, targets, frames, 16, buffer_frames=150, chunk_frames=60, left=3, right=2
        )
    else:
        loader = InMemoryFrameLoader(tiny.feats, tiny.offsets, targets, frames, 16, 3, 2)
    model = Mlp(6 * 40, 16, depth=2, width=24, dropout=0.2)
    model.set_input_normalization(tiny.feats.mean(0), tiny.feats.std(0))
    opt = build_optimizer(model, optimizer, lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0, weight_decay=1e-4)
    options = TrainerOptions(
        epochs=EPOCHS, max_steps=max_steps, checkpoint_every=7, keep_checkpoints=3, log_every=5,
        progress="log", tensorboard=False, lr_halving=True, halving_threshold=0.5,
    )  # fmt: skip
    trainer = Trainer(
        model, opt, InverseTimeSchedule(0.05, 10), loader, heldout, options, out_dir, seed=3,
        fingerprint=fingerprint or {"k": 1},
    )  # fmt: skip
    return trainer


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("chunked", [False, True])
def test_resume_after_interruption_gives_identical_weights(tmp_path, chunked):
    tiny = write_tiny_set(tmp_path / "data", num_utts=14)
    full = _make_trainer(tiny, tmp_path / "full", chunked)
    full.fit()
    assert full.done and len(full.history) == EPOCHS
    reference = _weights(full)
    steps = full.step

    # run 1 stops mid-epoch (max_steps); run 2 (a new process: fresh objects) continues to the end
    first = _make_trainer(tiny, tmp_path / "cut", chunked, max_steps=steps // 2 + 1)
    first.fit()
    assert not first.done and first.step == steps // 2 + 1
    second = _make_trainer(tiny, tmp_path / "cut", chunked)
    assert second.resume() and second.step == steps // 2 + 1
    second.fit()
    assert second.done and second.step == steps
    _assert_same(_weights(second), reference)
    assert [h["heldout_loss"] for h in second.history] == [h["heldout_loss"] for h in full.history]


def test_crash_between_checkpoints_and_damaged_checkpoint(tmp_path, caplog):
    tiny = write_tiny_set(tmp_path / "data", num_utts=10)
    full = _make_trainer(tiny, tmp_path / "full")
    full.fit()
    reference = _weights(full)

    cut = _make_trainer(tiny, tmp_path / "cut", max_steps=23)
    cut.fit()
    ckpts = list_checkpoints(tmp_path / "cut" / "checkpoints")
    # a crash: the stop checkpoint never got written, and the one before it is truncated
    ckpts[-1].unlink()
    data = ckpts[-2].read_bytes()
    ckpts[-2].write_bytes(data[:100])
    resumed = _make_trainer(tiny, tmp_path / "cut")
    with caplog.at_level(logging.WARNING):
        assert resumed.resume()
    assert "unusable" in caplog.text
    assert resumed.step < 21
    resumed.fit()
    _assert_same(_weights(resumed), reference)


def test_adagrad_resume_and_changed_config_is_refused(tmp_path):
    tiny = write_tiny_set(tmp_path / "data", num_utts=8)
    full = _make_trainer(tiny, tmp_path / "full", optimizer="adagrad")
    full.fit()
    first = _make_trainer(tiny, tmp_path / "cut", max_steps=9, optimizer="adagrad")
    first.fit()
    second = _make_trainer(tiny, tmp_path / "cut", optimizer="adagrad")
    second.resume()
    second.fit()
    _assert_same(_weights(second), _weights(full))
    other = _make_trainer(tiny, tmp_path / "cut", fingerprint={"k": 2})
    with pytest.raises(ConfigError, match="k: 1 -> 2"):
        other.resume()


def test_training_learns_the_tiny_task(tmp_path):
    tiny = write_tiny_set(tmp_path / "data", num_utts=14)
    trainer = _make_trainer(tiny, None)
    trainer.fit()
    first, last = trainer.history[0], trainer.history[-1]
    assert last["heldout_frame_accuracy"] > 0.8, trainer.history
    assert last["train_loss"] < first["train_loss"]


def test_a_path_written_another_way_is_the_same_config(tmp_path, monkeypatch):
    from asr.nnet.trainer import config_differences

    (tmp_path / "exp" / "tri1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    old = {"gmm_dir": "exp/tri1", "optim": {"lr": 0.02}}
    assert config_differences(old, {"gmm_dir": str(tmp_path / "exp" / "tri1"), "optim": {"lr": 0.02}}) == []
    assert config_differences(old, {"gmm_dir": "exp/tri2", "optim": {"lr": 0.01}}) == [
        "gmm_dir: 'exp/tri1' -> 'exp/tri2'",
        "optim.lr: 0.02 -> 0.01",
    ]
