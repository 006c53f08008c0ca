"""Model files: round trip, plain tensors only, malformed files, the info CLI."""

from __future__ import annotations

import pickle

import pytest
import torch
from gmm_helpers import UNEVEN_SIZES, random_model

from asr.errors import InputError
from asr.gmm import DiagGmmSet
from asr.gmm.diag_gmm import main


def test_save_load_round_trip(tmp_path):
    model = random_model(UNEVEN_SIZES, dim=4, seed=1)
    path = tmp_path / "exp" / "final.mdl"
    model.save(path)
    state = torch.load(path, weights_only=True)
    assert set(state) == {"format", "version", "means", "variances", "weights", "pdf_offsets"}
    loaded = DiagGmmSet.load(path)
    for name in ("means", "variances", "weights", "pdf_offsets"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))
    x = torch.randn(10, 4)
    assert torch.equal(loaded.log_likelihoods(x), model.log_likelihoods(x))
    assert list(tmp_path.joinpath("exp").iterdir()) == [path]  # no temporary left behind


def _write_state(path, **changes):
    state = random_model([1, 2], dim=2).state_dict()
    state.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    torch.save(state, path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"means": None}, "'means' missing"),
        ({"format": "something.else"}, "format tag"),
        ({"version": 7}, "version 7"),
        ({"pdf_offsets": torch.tensor([0, 2, 2, 3])}, "pdf_offsets"),
        ({"pdf_offsets": torch.tensor([0, 1, 4])}, "pdf_offsets"),
        ({"variances": torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])}, "variances"),
        ({"weights": torch.tensor([1.0, 0.3, 0.3])}, "sum to 1"),
        ({"means": torch.zeros(3, 5)}, "shapes"),
    ],
)
def test_malformed_model_file(tmp_path, changes, message):
    path = tmp_path / "bad.mdl"
    _write_state(path, **changes)
    with pytest.raises(InputError, match=message) as err:
        DiagGmmSet.load(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)


class _NotATensor:
    pass


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unreadable_or_pickled_files(tmp_path):
    garbage = tmp_path / "garbage.mdl"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(InputError, match="cannot read GMM model") as err:
        DiagGmmSet.load(garbage)
    assert err.value.path == str(garbage)
    pickled = tmp_path / "pickled.mdl"
    with open(pickled, "wb") as f:
        pickle.dump({"format": "asr.diag_gmm_set", "obj": _NotATensor()}, f)
    with pytest.raises(InputError, match="cannot read GMM model"):
        DiagGmmSet.load(pickled)
    with pytest.raises(InputError, match="not found"):
        DiagGmmSet.load(tmp_path / "missing.mdl")
    tensor_only = tmp_path / "tensor.mdl"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(InputError, match="dict"):
        DiagGmmSet.load(tensor_only)


def test_info_cli(tmp_path, capsys):
    path = tmp_path / "final.mdl"
    random_model([1, 3, 2], dim=5).save(path)
    main([str(path)])
    out = capsys.readouterr().out
    assert "number of pdfs 3" in out and "number of gaussians 6" in out and "feature dimension 5" in out
    assert "min 1, mean 2.00, max 3" in out
    with pytest.raises(InputError):
        main([str(tmp_path / "missing.mdl")])
