"""The ReLU MLP on spliced context windows: shapes, normalization, one SGD step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from asr.features.context_window import splice_at
from asr.nnet.mlp import Mlp
from asr.nnet.optimizer import build_optimizer


def test_spliced_windows_feed_a_1040_input_network():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(250, 40)).astype(np.float32)
    offsets = np.array([0, 100, 180, 250])
    frames = torch.tensor([0, 99, 100, 179, 249, 42])
    x = splice_at(feats, offsets, frames, 13, 12)
    assert x.shape == (6, 1040)
    # the centre frame (position 13 of 26) is the frame itself; edges repeat within the utterance
    assert torch.equal(x[:, 13 * 40 : 14 * 40], torch.from_numpy(feats[frames.numpy()]))
    assert torch.equal(x[0, :40], torch.from_numpy(feats[0]))
    assert torch.equal(x[1, -40:], torch.from_numpy(feats[99]))
    model = Mlp(1040, 300, depth=3, width=64)
    logits = model(x)
    assert logits.shape == (6, 300)
    assert len(model.hidden) == 3 and model.hidden[0].in_features == 1040
    assert model.num_params() == 1040 * 64 + 64 + 2 * (64 * 64 + 64) + 64 * 300 + 300


def test_depth_range_and_hparams_round_trip():
    for depth in (1, 12):
        m = Mlp(26, 4, depth=depth, width=5, dropout=0.1)
        assert Mlp.from_hparams(m.hparams()).hparams() == m.hparams()
    for depth in (0, 13):
        with pytest.raises(ValueError):
            Mlp(26, 4, depth=depth, width=5)


def test_input_normalization_is_stored_in_the_state_dict():
    model = Mlp(6, 2, depth=1, width=3)
    mean, std = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 0.5])
    model.set_input_normalization(mean, std)  # per-frame stats tiled over a 2-frame window
    state = model.state_dict()
    assert torch.allclose(state["input_shift"], torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(state["input_scale"], torch.tensor([0.5, 0.25, 2.0, 0.5, 0.25, 2.0]))
    x = torch.tensor([[3.0, 6.0, 3.5, 1.0, 2.0, 3.0]])
    other = Mlp(6, 2, depth=1, width=3)
    other.load_state_dict(state)
    normalized = (x - other.input_shift) * other.input_scale
    assert torch.allclose(normalized, torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        model.set_input_normalization(np.zeros(4), np.ones(4))


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    x = torch.randn(64, 1040)
    y = torch.randint(0, 50, (64,))
    model = Mlp(1040, 50, depth=4, width=128)
    opt = build_optimizer(model, "sgd", lr=0.05, momentum=0.0)
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y)
    assert after < before - 1e-3, (before.item(), after.item())


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = Mlp(10, 3, depth=2, width=32, dropout=0.5)
    x = torch.randn(8, 10)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
