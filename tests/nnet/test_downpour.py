"""Asynchronous Downpour SGD (asr.nnet.downpour, asr.nnet.param_server, trainer=async).

Unit tests of the parameter server (partitioning, the shards' SGD and Adagrad updates against the formulas
and torch's optimizers, staleness, state round trip), then real training on Ray (one Ray session for the
module): one replica reproduces the local trainer; 2 replicas x 2 shards on the yes/no recipe decode within
2 WER points of the local trainer with the same budget; a replica killed with SIGKILL mid-run is restarted
and the run completes; a run stopped by max_steps resumes from the shard checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from nnet_helpers import write_tiny_corpus

from asr.errors import ConfigError
from asr.nnet.checkpoint import load_latest_checkpoint
from asr.nnet.config import parse_train_config
from asr.nnet.param_server import (
    STALENESS_BINS,
    ParameterShard,
    ServerOptimizer,
    count_staleness,
    partition_parameters,
    scheduled_lr,
    staleness_summary,
)
from asr.nnet.schedule import InverseTimeSchedule
from asr.train import CONF_DIR, run_training

ray = pytest.importorskip("ray")
from asr.nnet.downpour import (  # noqa: E402  (after the ray check)
    DownpourTrainer,
    ReplicaData,
    assign_utterances,
    downpour_options,
    start_ray,
)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# ----------------------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("sizes, n", [([7], 1), ([7], 7), ([1040 * 64, 64, 64 * 11, 11], 2), ([3, 5, 2, 9], 4)])
def test_partition_covers_every_parameter_exactly_once(sizes, n):
    decayed = [i % 2 == 0 for i in range(len(sizes))]
    specs = partition_parameters(sizes, n, decayed)
    total = sum(sizes)
    assert [s.index for s in specs] == list(range(n))
    cover = np.zeros(total, dtype=int)
    for spec in specs:
        cover[spec.start : spec.end] += 1
    assert (cover == 1).all() and specs[0].start == 0 and specs[-1].end == total
    assert max(s.size for s in specs) - min(s.size for s in specs) <= 1
    # the decayed ranges are exactly the elements of the flagged parameters
    want = np.repeat(decayed, sizes)
    got = np.zeros(total, dtype=bool)
    for spec in specs:
        for lo, hi in spec.decayed:
            assert 0 <= lo < hi <= spec.size
            got[spec.start + lo : spec.start + hi] = True
    assert (got == want).all()


def test_partition_refuses_impossible_shard_counts():
    with pytest.raises(ValueError, match="n_shards"):
        partition_parameters([3, 4], 0)
    with pytest.raises(ValueError, match="n_shards"):
        partition_parameters([3, 4], 8)


def test_schedule_is_the_local_trainers():
    for eta, decay in ((0.02, 1000), (0.1, 0), (0.5, 3)):
        schedule = InverseTimeSchedule(eta, decay)
        for t in (0, 1, 2, 3, 7, 999, 1000, 5000):
            assert scheduled_lr(eta, decay, t) == pytest.approx(schedule.lr(t), rel=1e-12)


def _torch_reference(kind: str, params: np.ndarray, decayed_mask: np.ndarray, grads, batches, opt: ServerOptimizer):
    """The same updates with torch's optimizer: one step per push, lr from the schedule at the shard's step and
    weight decay on the masked elements (scaled by the minibatches of the push, as the shard does)."""
    p = torch.nn.Parameter(torch.from_numpy(params.copy()))
    if kind == "sgd":
        torch_opt = torch.optim.SGD([p], lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
    else:
        torch_opt = torch.optim.Adagrad([p], lr=opt.lr, eps=opt.eps)
    step = 0
    for g, k in zip(grads, batches):
        g = torch.from_numpy(g.copy()) + k * opt.weight_decay * p.detach() * torch.from_numpy(decayed_mask)
        for group in torch_opt.param_groups:
            group["lr"] = scheduled_lr(opt.lr, opt.decay_steps, step)
        p.grad = g
        torch_opt.step()
        step += k
    return p.detach().numpy(), torch_opt


@pytest.mark.parametrize("nesterov", [False, True])
def test_shard_sgd_update_equals_the_formula_and_torch_sgd(nesterov):
    rng = np.random.default_rng(0)
    sizes = [6, 3, 4]
    spec = partition_parameters(sizes, 2, [True, False, True])[1]  # elements 7..12: part of p1, all of p2
    params = rng.normal(size=spec.size).astype(np.float32)
    opt = ServerOptimizer("sgd", lr=0.1, decay_steps=2, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    shard = ParameterShard(spec, params, opt)
    mask = np.zeros(spec.size, dtype=np.float32)
    for lo, hi in spec.decayed:
        mask[lo:hi] = 1
    grads = [rng.normal(size=spec.size).astype(np.float32) for _ in range(4)]
    batches = [1, 2, 1, 3]
    # by hand: eta_t = eta / max(1, t / T), b = mu b + g (b = g first), d = g + mu b (Nesterov) or b, p -= eta_t d
    p, b, t = params.astype(np.float64), None, 0
    for i, (g, k) in enumerate(zip(grads, batches)):
        g = g + k * 0.01 * p * mask
        b = g if b is None else 0.9 * b + g
        d = g + 0.9 * b if nesterov else b
        p = p - 0.1 / max(1.0, t / 2) * d
        t += k
        assert shard.lr() == pytest.approx(0.1 / max(1.0, shard.step / 2))
        shard.push(grads[i], k)
        assert (shard.version, shard.step) == (i + 1, t)
    np.testing.assert_allclose(shard.params, p, rtol=1e-5, atol=1e-6)
    reference, _ = _torch_reference("sgd", params, mask, grads, batches, opt)
    np.testing.assert_allclose(shard.params, reference, rtol=1e-5, atol=1e-6)


def test_shard_adagrad_accumulates_squared_gradients_like_torch_adagrad():
    rng = np.random.default_rng(1)
    spec = partition_parameters([10], 1)[0]
    params = rng.normal(size=10).astype(np.float32)
    opt = ServerOptimizer("adagrad", lr=0.05, decay_steps=0)
    shard = ParameterShard(spec, params, opt)
    grads = [rng.normal(size=10).astype(np.float32) for _ in range(5)]
    for g in grads:
        shard.push(g)
    np.testing.assert_allclose(shard.buffer, np.sum(np.square(grads), axis=0), rtol=1e-5)
    p, accum = params.astype(np.float64), np.zeros(10)
    for g in grads:
        accum += np.square(g)
        p -= 0.05 * g / (np.sqrt(accum) + 1e-10)
    np.testing.assert_allclose(shard.params, p, rtol=1e-5, atol=1e-6)
    reference, torch_opt = _torch_reference("adagrad", params, np.zeros(10, np.float32), grads, [1] * 5, opt)
    np.testing.assert_allclose(shard.params, reference, rtol=1e-5, atol=1e-6)
    state = next(iter(torch_opt.state.values()))["sum"].numpy()
    np.testing.assert_allclose(shard.buffer, state, rtol=1e-5)


def test_shard_staleness_and_state_round_trip():
    spec = partition_parameters([8], 1)[0]
    opt = ServerOptimizer("sgd", lr=0.1, decay_steps=0, momentum=0.5)
    shard = ParameterShard(spec, np.zeros(8, np.float32), opt)
    fetched = shard.fetch()
    assert fetched["version"] == 0 and fetched["lr"] == 0.1 and fetched["params"].shape == (8,)
    g = np.ones(8, np.float32)
    assert shard.push(g, 1, fetched["version"]) == 0  # nothing happened since the fetch
    assert shard.push(g, 1, fetched["version"]) == 1  # one update by someone else since
    assert shard.push(g, 1, fetched["version"]) == 2
    state = shard.state_dict()
    clone = ParameterShard(spec, shard.params, opt, state)
    for s in (shard, clone):
        s.push(np.full(8, 0.5, np.float32))
    np.testing.assert_array_equal(clone.params, shard.params)
    assert (clone.version, clone.step) == (shard.version, shard.step) == (4, 4)
    with pytest.raises(ValueError, match="slice"):
        ParameterShard(partition_parameters([8], 2)[0], np.zeros(4, np.float32), opt, state)
    hist = np.zeros(STALENESS_BINS, dtype=np.int64)
    count_staleness(hist, [0, 1, 1, 2, 500])
    summary = staleness_summary(hist)
    assert summary["counts"] == {"0": 1, "1": 2, "2": 1, f"{STALENESS_BINS - 1}+": 1}
    assert summary["max"] == STALENESS_BINS - 1


def test_utterances_are_dealt_disjointly_and_balanced():
    rng = np.random.default_rng(3)
    utts = np.sort(rng.choice(500, size=200, replace=False))
    frames = rng.integers(100, 900, size=200)
    parts = assign_utterances(utts, frames, 3, seed=0)
    joined = np.concatenate(parts)
    assert len(joined) == 200 and set(joined.tolist()) == set(utts.tolist())
    load = [frames[np.searchsorted(utts, p)].sum() for p in parts]
    assert max(load) - min(load) <= 900
    assert [p.tolist() for p in assign_utterances(utts, frames, 1, seed=5)] == [utts.tolist()]
    with pytest.raises(ConfigError, match="n_replicas"):
        assign_utterances(utts[:2], frames[:2], 3, seed=0)
    data = ReplicaData("a.h5", "ali.h5", 11, ReplicaData.pack(parts[1], 500), 500, 256, 13, 12)
    assert data.utt_indices.tolist() == parts[1].tolist() and len(data.utt_mask) == 63


def test_async_config_and_its_errors():
    tc = parse_train_config(_compose("trainer=async"))
    assert tc.trainer.kind == "async" and (tc.trainer.n_replicas, tc.trainer.n_shards) == (2, 2)
    assert (tc.trainer.n_fetch, tc.trainer.n_push, tc.trainer.ray_address) == (1, 1, None)
    options = downpour_options(tc)
    assert options.server.kind == "adagrad" and options.server.lr == tc.optim.lr and options.threads == 1
    assert options.server.momentum == 0.0  # Adagrad has none
    tc = parse_train_config(_compose("trainer=async", "trainer.server_optimizer=sgd", "trainer.ray_address=auto"))
    options = downpour_options(tc)
    assert options.server.momentum == tc.optim.momentum and options.ray_address == "auto"
    for override, message in [
        ("trainer.server_optimizer=adam", "trainer.server_optimizer must be one of"),
        ("trainer.n_replicas=0", "trainer.n_replicas must be >= 1"),
        ("trainer.n_push=x", "trainer.n_push must be an integer"),
        ("trainer.replica_max_restarts=-2", "trainer.replica_max_restarts must be >= -1"),
        ("trainer.lr_halving=true", "not supported with trainer.kind=async"),
        ("trainer.kind=downpour", "trainer.kind must be one of"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_train_config(_compose("trainer=async", override))


# ----------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (2 CPUs: two replicas, shards need none); trainers reuse it."""
    owned = start_ray(num_cpus=2)
    yield
    if owned:
        ray.shutdown()


def _tiny_overrides(root: Path, *extra: str) -> list[str]:
    return [
        "corpus=synth",
        f"corpus.data_dir={root / 'data'}",
        "corpus.name=tiny",
        f"gmm_dir={root / 'exp' / 'tiny' / 'mono'}",
        f"exp_root={root / 'exp'}",
        "prepare=false",
        "depth=1",
        "width=16",
        "optim.batch_size=32",
        "optim.lr=0.05",
        "optim.decay_steps=10",
        "data.left_context=2",
        "data.right_context=2",
        "trainer.epochs=2",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "trainer.tensorboard=false",
        *extra,
    ]


def _yesno_overrides(recipe, *extra: str) -> list[str]:
    return [
        "corpus=yesno",
        f"corpus.data_dir={recipe.data}",
        f"gmm_dir={recipe.exp / 'mono'}",
        "prepare=false",
        "depth=2",
        "width=64",
        "optim.batch_size=256",
        "trainer.epochs=2",
        "trainer.progress=log",
        "trainer.num_threads=1",
        "trainer.log_every=20",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["in_ram", "chunked_from_disk"])
def test_one_replica_reproduces_the_local_trainer(tmp_path, ray_session, chunked):
    write_tiny_corpus(tmp_path)
    sgd = ["optim.momentum=0.9", "optim.weight_decay=0.001"]
    if chunked:  # the driver's and the replica's loaders read 100-frame chunks from disk
        sgd += ["data.ram_budget_gb=1e-5", "data.chunk_frames=100"]
    run_training(_compose(*_tiny_overrides(tmp_path, *sgd)), tmp_path / "local")
    async_args = ["trainer=async", "trainer.n_replicas=1", "trainer.n_shards=3", "trainer.server_optimizer=sgd"]
    run_training(_compose(*_tiny_overrides(tmp_path, *sgd, *async_args)), tmp_path / "async")
    local = torch.load(tmp_path / "local" / "final.pt", weights_only=True)
    remote = torch.load(tmp_path / "async" / "final.pt", weights_only=True)
    for name in local:
        torch.testing.assert_close(remote[name], local[name], rtol=1e-4, atol=1e-5, msg=name)
    info = json.loads((tmp_path / "async" / "model.json").read_text())
    steps = json.loads((tmp_path / "local" / "model.json").read_text())["steps"]
    assert info["steps"] == steps and info["async"]["updates"] == steps
    assert info["async"]["staleness"]["counts"] == {"0": 3 * steps}  # one replica: never stale, 3 shards


def _decode(recipe, model_dir: Path) -> float:
    from asr.decode.decode_dir import decode_data_dir

    results = decode_data_dir(recipe.exp / "mono" / "graph", model_dir, recipe.data / "test", model_dir / "decode_test",
                              jobs=1)  # fmt: skip
    return float(results["wer"])


@pytest.mark.slow
def test_two_replicas_two_shards_decode_within_two_points_of_local(yesno_recipe, tmp_path, ray_session):
    run_training(_compose(*_yesno_overrides(yesno_recipe, "trainer.tensorboard=false")), tmp_path / "local")
    run_training(_compose(*_yesno_overrides(yesno_recipe, "trainer=async")), tmp_path / "async")
    local_wer, async_wer = _decode(yesno_recipe, tmp_path / "local"), _decode(yesno_recipe, tmp_path / "async")
    print(f"yesno test WER: local {local_wer:.2f}%, async (2 replicas x 2 shards) {async_wer:.2f}%")
    assert async_wer <= local_wer + 2.0
    local = json.loads((tmp_path / "local" / "model.json").read_text())
    info = json.loads((tmp_path / "async" / "model.json").read_text())
    assert info["kind"] == "dnn" and info["epochs"] == 2 and abs(info["steps"] - local["steps"]) <= 2
    metrics = info["async"]
    assert (metrics["n_replicas"], metrics["n_shards"], metrics["server_optimizer"]) == (2, 2, "adagrad")
    assert metrics["updates"] == info["steps"] and metrics["updates_per_second"] > 0
    assert metrics["frames_per_second"] > 0 and metrics["replica_restarts"] == 0
    assert sum(metrics["staleness"]["counts"].values()) == 2 * metrics["updates"]  # every push, every shard
    assert metrics["staleness"]["max"] >= 1  # two replicas: some updates were computed on stale parameters
    log = json.loads((tmp_path / "async" / "train_log.json").read_text())
    assert len(log["epochs"]) == 2 and "staleness" in log["epochs"][-1] and log["async"]["updates"] > 0
    assert list((tmp_path / "async" / "tensorboard").glob("events.out.tfevents.*"))


def _yesno_trainer(recipe, run_dir: Path, *extra: str, on_result=None) -> DownpourTrainer:
    """A DownpourTrainer built the way asr.train builds it, with a result hook."""
    from asr.hmm.tree import load_context_dependency
    from asr.nnet.alignments import read_pdf_alignment
    from asr.nnet.frame_data import load_training_data
    from asr.nnet.mlp import Mlp

    tc = parse_train_config(_compose(*_yesno_overrides(recipe, "trainer=async", *extra)))
    gmm = Path(tc.gmm_dir)
    num_pdfs = load_context_dependency(gmm / "tree.json").num_pdfs
    archive = Path(tc.corpus.data_dir) / "train" / "fbank.h5"
    data = load_training_data(archive, read_pdf_alignment(gmm / "ali.h5"), num_pdfs, tc.optim.batch_size, tc.seed)
    torch.manual_seed(tc.seed)
    mlp = Mlp(data.feat_dim * 26, num_pdfs, tc.model.depth, tc.model.width)
    mlp.set_input_normalization(data.feat_mean, data.feat_std)
    return DownpourTrainer(mlp, data, downpour_options(tc), archive, gmm / "ali.h5", num_pdfs, run_dir, tc.seed,
                           tc.fingerprint(), on_result=on_result)  # fmt: skip


@pytest.mark.slow
def test_a_replica_killed_mid_run_is_restarted_and_the_run_completes(yesno_recipe, tmp_path, ray_session, caplog):
    killed = []

    def kill_the_other_replica(trainer: DownpourTrainer, index: int) -> None:
        if not killed and trainer.step >= 20:
            other = trainer.replica_handles()[1 - index]  # busy with a task now
            pid = ray.get(other.pid.remote())  # answered by the replica's control thread, mid-task
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    trainer = _yesno_trainer(yesno_recipe, tmp_path / "run", "trainer.epochs=1", on_result=kill_the_other_replica)
    with caplog.at_level(logging.WARNING, logger="asr.nnet.downpour"):
        trainer.fit()
    trainer.close()
    assert killed and trainer.done and trainer.state["replica_restarts"] >= 1
    assert "restarted by Ray" in caplog.text
    # every replica finished its part: as many minibatches as a run without the kill
    frames = trainer.data.loader.num_frames
    assert trainer.state["frames_seen"] == frames
    assert trainer.history[0]["heldout_frame_accuracy"] > 0.6


@pytest.mark.slow
def test_a_stopped_run_resumes_from_the_shard_checkpoints(yesno_recipe, tmp_path, ray_session, caplog):
    run_dir = tmp_path / "run"
    extra = ("trainer.max_steps=30", "trainer.checkpoint_every=25")
    first = _yesno_trainer(yesno_recipe, run_dir, *extra)
    first.fit()
    first.close()
    assert not first.done and 30 <= first.step < 40
    ckpt, _ = load_latest_checkpoint(run_dir / "checkpoints")
    shards = ckpt["optimizer"]["shards"]
    assert sorted(shards) == ["0", "1"] and int(ckpt["step"]) == first.step
    for state in shards.values():  # every minibatch went to both shards, one push each (n_push = 1)
        assert int(state["step"]) == first.step and int(state["version"]) == first.step
        assert float(state["buffer"].sum()) > 0  # Adagrad's accumulated squared gradients
    assert sum(int(p["batch"]) for p in ckpt["replicas"].values()) == first.step

    second = _yesno_trainer(yesno_recipe, run_dir)
    with caplog.at_level(logging.INFO, logger="asr.nnet.downpour"):
        assert second.resume()
    assert "resumed from" in caplog.text and second.step == first.step
    restored = second._shard_states
    for spec in second.specs:
        np.testing.assert_array_equal(restored[spec.index]["buffer"], shards[str(spec.index)]["buffer"].numpy())
    second.fit()
    second.close()
    assert second.done and len(second.history) == 2
    assert second.state["pushes"] == second.step  # the shards' counts went on from the checkpoint's
    ckpt, _ = load_latest_checkpoint(run_dir / "checkpoints")
    assert all(int(s["version"]) == second.step for s in ckpt["optimizer"]["shards"].values())
    assert second.history[-1]["heldout_frame_accuracy"] > 0.6
    # another configuration is refused
    with pytest.raises(ConfigError, match="another configuration"):
        _yesno_trainer(yesno_recipe, run_dir, "trainer.n_replicas=1").resume()
