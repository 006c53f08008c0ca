"""Data-parallel training (trainer=ddp, asr.nnet.distributed): sharded batches, equivalence with one process,
torchrun end to end with resume, bad settings.

Run as a script under torchrun, this file is the worker of the two-process equivalence test::

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/nnet/test_ddp.py DATA_DIR OUT_DIR
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from nnet_helpers import write_tiny_corpus, write_tiny_set

from asr.errors import ConfigError
from asr.features.archive import FeatureArchive
from asr.nnet.config import parse_train_config
from asr.nnet.distributed import init_ddp, launch_info, rank_device, start_ddp, threads_per_rank
from asr.nnet.frame_data import ChunkedFrameLoader, InMemoryFrameLoader, make_heldout_set
from asr.nnet.mlp import Mlp
from asr.nnet.optimizer import build_optimizer
from asr.nnet.schedule import InverseTimeSchedule
from asr.nnet.trainer import Trainer, TrainerOptions
from asr.train import CONF_DIR, run_training

REPO = Path(__file__).resolve().parents[2]
BATCH = 16  # global batch
TRAIN_FRAMES = 5 * BATCH + 1  # an epoch ends with a 1-frame batch: one rank has no frame of it
EPOCHS = 2
CUT = 8  # the interrupted run stops after this many updates (in epoch 2) and is resumed


# ------------------------------------------------------------------------------------------ shared set-up
def _setup(data_dir: Path, chunked: bool):
    """Loader, held-out set and model of the equivalence test (the same in the worker and in the reference),
    on ``data_dir/fbank.h5`` (written by :func:`write_tiny_set` when absent)."""
    if not (data_dir / "fbank.h5").exists():
        write_tiny_set(data_dir, num_utts=8)
    archive = FeatureArchive(data_dir / "fbank.h5")
    feats, offsets = archive.read_all(), archive.offsets
    archive.close()
    rng = np.random.default_rng(5)
    targets = rng.integers(0, 16, size=len(feats)).astype(np.int64)
    targets[: len(feats) // 2] = np.arange(len(feats) // 2) % 16  # something learnable
    heldout_utts = np.array([len(offsets) - 2])  # the last utterance
    heldout = make_heldout_set(feats, offsets, targets, heldout_utts)
    frames = np.arange(offsets[-2])[:TRAIN_FRAMES]
    if chunked:
        loader = ChunkedFrameLoader(
            data_dir / "fbank.h5", targets, frames, BATCH, buffer_frames=60, chunk_frames=30, left=2, right=2
        )
    else:
        loader = InMemoryFrameLoader(feats, offsets, targets, frames, BATCH, 2, 2)
    torch.manual_seed(0)
    model = Mlp(5 * 40, 16, depth=2, width=24)
    model.set_input_normalization(feats.mean(0), feats.std(0))
    optimizer = build_optimizer(model, "sgd", lr=0.1, momentum=0.9, weight_decay=1e-3)
    return loader, heldout, model, optimizer


def _options(max_steps=None) -> TrainerOptions:
    return TrainerOptions(
        epochs=EPOCHS, max_steps=max_steps, checkpoint_every=3, keep_checkpoints=2, log_every=2,
        progress="log", tensorboard=False,
    )  # fmt: skip


def _single_process(data_dir: Path, chunked: bool) -> Trainer:
    loader, heldout, model, optimizer = _setup(data_dir, chunked)
    trainer = Trainer(model, optimizer, InverseTimeSchedule(0.1, 4), loader, heldout, _options(), None, seed=7)
    trainer.fit()
    return trainer


def _worker(data_dir: Path, out_dir: Path) -> None:
    """One rank of the torchrun equivalence test: train, stop at CUT, resume, finish; rank 0 saves the results."""
    ctx = start_ddp(BATCH, device="cpu", num_threads=1)
    for chunked in (False, True):
        run = out_dir / f"run_chunked{int(chunked)}"
        for max_steps in (CUT, None):  # interrupted, then resumed by fresh objects (as a new process would)
            loader, heldout, model, optimizer = _setup(data_dir, chunked)
            schedule = InverseTimeSchedule(0.1, 4)
            trainer = ctx.make_trainer(model, optimizer, schedule, loader, heldout, _options(max_steps), run, seed=7)
            resumed = trainer.resume()
            trainer.fit()
            trainer.close()
            if ctx.is_main:
                result = {"resumed": resumed, "step": trainer.step, "history": trainer.history}
                (out_dir / f"result_chunked{int(chunked)}_{max_steps}.json").write_text(json.dumps(result))
        if ctx.is_main:
            torch.save(model.state_dict(), out_dir / f"final_chunked{int(chunked)}.pt")
    ctx.close()


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("chunked", [False, True])
def test_shards_partition_every_global_batch(tmp_path, chunked):
    """Two ranks' shards of each batch are disjoint, equal-sized when the batch divides, and together give
    exactly the single-process batch; every epoch knows its global batch sizes."""
    loader, _, _, _ = _setup(tmp_path, chunked)
    whole = list(loader.epoch(torch.Generator().manual_seed(3)))
    parts = []
    for rank in range(2):
        loader.shard = (rank, 2)
        epoch = loader.epoch(torch.Generator().manual_seed(3))
        parts.append(list(epoch))
        assert [epoch.global_batch_frames(b) for b in range(epoch.num_batches)] == [len(y) for _, y in whole]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
        if len(y) == BATCH:
            assert len(y0) == len(y1) == BATCH // 2
    sizes = [len(y) for _, y in whole]
    assert sum(sizes) == TRAIN_FRAMES and any(n % 2 for n in sizes)  # some batches do not split evenly
    assert chunked or sizes[-1] == 1  # in RAM: the epoch ends with 1 frame, rank 1 gets none


def test_bad_settings_are_config_errors(tmp_path):
    def cfg(*extra):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return parse_train_config(compose("config", overrides=["trainer=ddp", *extra]))

    tc = cfg()
    assert tc.trainer.kind == "ddp" and tc.trainer.backend == "auto" and tc.trainer.epochs == 4  # local's rest
    with pytest.raises(ConfigError, match=r"trainer.kind='sync' is invalid: trainer.kind must be one of"):
        cfg("trainer.kind=sync")
    with pytest.raises(ConfigError, match="trainer.backend must be one of"):
        cfg("trainer.backend=mpi")
    two = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert launch_info(two).rank == 1 and launch_info({}).world_size == 1
    with pytest.raises(ConfigError, match=r"optim.batch_size=255 is invalid for trainer=ddp with 2 processes"):
        init_ddp(cfg("optim.batch_size=255"), environ=two)
    with pytest.raises(ConfigError, match="trainer.device='cuda:1' is invalid for trainer=ddp"):
        rank_device("cuda:1", 0)
    with pytest.raises(ConfigError, match="nccl needs CUDA"):
        init_ddp(cfg("trainer.device=cpu", "trainer.backend=nccl"), environ=two)
    with pytest.raises(ConfigError, match="WORLD_SIZE='two' must be an integer"):
        launch_info({**two, "WORLD_SIZE": "two"})
    assert threads_per_rank(0, 2, cores=16) == 8 and threads_per_rank(0, 4, cores=2) == 1
    assert threads_per_rank(3, 2) == 3


def _app_overrides(root: Path, *extra: str) -> list[str]:
    return [
        "corpus=synth", f"corpus.data_dir={root / 'data'}", "corpus.name=tiny",
        f"gmm_dir={root / 'exp' / 'tiny' / 'mono'}", f"exp_root={root / 'exp'}", "prepare=false",
        "depth=1", "width=16", "optim.batch_size=64", "optim.lr=0.05", "optim.decay_steps=20",
        "data.left_context=2", "data.right_context=2", "trainer.epochs=2", "trainer.checkpoint_every=4",
        "trainer.log_every=3", "trainer.progress=log", "trainer.num_threads=1", "trainer.tensorboard=false",
        "trainer.device=cpu", "decode.enabled=false", *extra,
    ]  # fmt: skip


def test_ddp_without_torchrun_is_single_process_training(tmp_path, caplog):
    """trainer=ddp in one process (a process group of one) trains exactly what trainer=local trains, and a
    ddp run stopped by max_steps is continued by trainer=local to the same weights."""
    write_tiny_corpus(tmp_path)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        local = compose("config", overrides=_app_overrides(tmp_path))
        ddp = compose("config", overrides=_app_overrides(tmp_path, "trainer=ddp"))
        ddp_cut = compose("config", overrides=_app_overrides(tmp_path, "trainer=ddp", "trainer.max_steps=3"))
    run_training(local, tmp_path / "local")
    with caplog.at_level(logging.INFO):
        run_training(ddp, tmp_path / "ddp")
    assert "without torchrun: one process" in caplog.text and "global batch 64 = 1 x 64 frames" in caplog.text
    assert not torch.distributed.is_initialized()  # the run ended its process group
    a = torch.load(tmp_path / "local" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "ddp" / "model.json").read_text())
    assert info["steps"] == json.loads((tmp_path / "local" / "model.json").read_text())["steps"] > 3
    run_training(ddp_cut, tmp_path / "mixed")
    assert not (tmp_path / "mixed" / "model.json").exists()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_training(local, tmp_path / "mixed")
    assert "resumed from" in caplog.text and "step 3," in caplog.text
    c = torch.load(tmp_path / "mixed" / "final.pt", weights_only=True)
    assert all(torch.equal(a[k], c[k]) for k in a)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_two_gloo_processes_match_single_process_training(tmp_path):
    """torchrun, 2 gloo ranks, global batch 16 = 2 x 8 (an uneven last batch, momentum, weight decay, lr
    schedule, held-out evaluation at epoch ends, a stop and a resume mid-epoch): the same parameters and
    held-out losses as one process on batch 16, up to float reduction order; in RAM and chunked."""
    data_dir, out_dir = tmp_path / "data", tmp_path / "out"
    out_dir.mkdir()
    _setup(data_dir, False)  # writes the archive
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__]
    proc = subprocess.run(
        [*cmd, str(data_dir), str(out_dir)], env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for chunked in (False, True):
        reference = _single_process(data_dir, chunked)
        cut = json.loads((out_dir / f"result_chunked{int(chunked)}_{CUT}.json").read_text())
        end = json.loads((out_dir / f"result_chunked{int(chunked)}_None.json").read_text())
        assert not cut["resumed"] and cut["step"] == CUT
        assert end["resumed"] and end["step"] == reference.step > CUT
        ddp = torch.load(out_dir / f"final_chunked{int(chunked)}.pt", weights_only=True)
        ref = reference.model.state_dict()
        for key in ref:
            torch.testing.assert_close(ddp[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
        assert max(abs(v).max().item() for v in ref.values()) > 0.1  # the weights did move
        for got, want in zip(end["history"], reference.history, strict=True):
            assert got["heldout_loss"] == pytest.approx(want["heldout_loss"], rel=1e-5)
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
            assert got["train_frame_accuracy"] == pytest.approx(want["train_frame_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_torchrun_app_on_yesno_writes_the_model_dir_and_resumes(yesno_recipe, tmp_path):
    """``torchrun --nproc_per_node=2 -m asr.train trainer=ddp`` on the yes/no recipe's GMM: a run stopped by
    max_steps leaves checkpoints (rank 0's), the same command without it resumes and writes the model dir."""
    args = [
        "trainer=ddp", "corpus=yesno", f"corpus.data_dir={yesno_recipe.data}",
        f"gmm_dir={yesno_recipe.exp / 'mono'}", f"exp_root={tmp_path / 'exp'}", "prepare=false",
        "depth=1", "width=32", "optim.batch_size=256", "trainer.epochs=2", "trainer.checkpoint_every=5",
        "trainer.log_every=5", "trainer.progress=log", "trainer.tensorboard=false", "decode.enabled=false",
        "trainer.device=cpu",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "asr.train"]
    first = subprocess.run(
        [*cmd, *args, "trainer.max_steps=7"], env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    run_dir = tmp_path / "exp" / "yesno" / "dnn" / "mlp_d1_w32"
    assert (run_dir / "checkpoints" / "ckpt-000000007.pt").is_file() and not (run_dir / "model.json").exists()
    out = first.stdout + first.stderr
    assert "DDP: 2 processes (2 on this machine), backend gloo" in out
    assert out.count("stopping at step 7") == 1  # rank 0 logs, rank 1 is quiet
    second = subprocess.run([*cmd, *args], env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    assert f"resumed from {run_dir / 'checkpoints' / 'ckpt-000000007.pt'}: step 7," in out
    info = json.loads((run_dir / "model.json").read_text())
    assert info["kind"] == "dnn" and info["epochs"] == 2 and info["steps"] > 7 and info["batch_size"] == 256
    assert (run_dir / "final.pt").is_file() and (run_dir / "train_log.json").is_file()
    assert np.isfinite(info["heldout_loss"])
    log = json.loads((run_dir / "train_log.json").read_text())["epochs"]
    assert [e["epoch"] for e in log] == [1, 2] and log[-1]["step"] == info["steps"]


if __name__ == "__main__":  # a torchrun worker (see the module docstring)
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(name)s: %(message)s")
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
