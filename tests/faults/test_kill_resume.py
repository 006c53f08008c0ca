"""Every stage survives ``kill -9`` at random moments: started again, it ends with the outputs of a run that was
never interrupted, and no half-written file ever appears under a final name (see ``harness.py``).

Stages, on Kaldi's yes/no corpus (``yesno_recipe``): feature extraction, monophone and triphone GMM training
(resumed per EM iteration), forced alignment, DNN training (resumed from checkpoints; equal weights on CPU) and
decoding. Each test prints the number of kill points that really interrupted the stage.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from harness import (
    check_no_partial_outputs,
    compare_outputs,
    file_appears,
    kill_times,
    output_files,
    run_stage,
    run_with_kills,
    temp_files,
)

pytestmark = pytest.mark.slow

PY = sys.executable


def _reference(cmd: list[str], out: Path, ref: Path, timeout: float = 300) -> float:
    """Run ``cmd`` uninterrupted (it writes ``out``), move ``out`` to ``ref``; returns its wall time. The killed
    runs then write ``out`` again, so paths recorded inside the outputs are the same."""
    record = run_stage(cmd, timeout=timeout)
    assert record.returncode == 0, record.output[-3000:]
    shutil.move(out, ref)
    return record.seconds


def _run_and_check(
    stage: str,
    cmd: list[str],
    out: Path,
    reference: dict[str, Path],
    delays: list[float],
    tmp_path: Path,
    *,
    trigger=None,
    ignore=lambda rel: False,
    loadable=lambda rel: False,
):
    problems: list[str] = []

    def after_kill(record):
        if out.exists():
            problems.extend(check_no_partial_outputs(reference, out, ignore=ignore, loadable=loadable))

    report = run_with_kills(cmd, delays, trigger=trigger, after_kill=after_kill, log_dir=tmp_path / f"logs_{stage}")
    assert not problems, problems
    # at the end, loadable files of the reference (train_log.json) must equal it too; checkpoints are not compared
    final = output_files(out, lambda rel: ignore(rel) or (loadable(rel) and rel.as_posix() not in reference))
    assert compare_outputs(reference, final) == []
    assert temp_files(out) == [], "temporary files of killed writers were left behind"
    print(f"[faults] {stage}: {report.kill_points} kill point(s) of {len(delays)} tried")
    return report


def _is_log(rel: Path) -> bool:
    return rel.suffix == ".log" or "log" in rel.parts[:-1]


def test_feature_extraction(yesno_recipe, tmp_path):
    """fbank then MFCC archives of a data dir (as a recipe's feature stage): a killed run keeps the archive that
    was complete (logged as up to date) and resumes the other from the parts it saved (every 1000 frames, about
    two utterances), which a kill never leaves corrupt (no run discards one)."""
    data = tmp_path / "train"
    shutil.copytree(yesno_recipe.data / "train", data, ignore=shutil.ignore_patterns("*.h5"))
    compute = f"{PY} -m asr.features.compute --data {data} --jobs 2 --part-frames 1000"
    cmd = ["bash", "-c", f"{compute} --type fbank && {compute} --type mfcc --use-energy true"]
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    record = run_stage(cmd)
    assert record.returncode == 0, record.output[-3000:]
    seconds = record.seconds
    for name in ("fbank.h5", "mfcc.h5"):
        shutil.move(data / name, ref_dir / name)
    reference = {name: ref_dir / name for name in ("fbank.h5", "mfcc.h5")}
    # the data dir's own files are inputs; the parts (.<archive>.parts/) are not outputs
    only_h5 = lambda rel: rel.suffix != ".h5" or rel.parts[0].endswith(".parts")  # noqa: E731
    total = kept = resumed = discarded = 0
    # random moments over the whole run, moments just after an archive's temporary file appeared, and just after
    # the first part appeared
    for seed, delays, trigger in (
        (0, kill_times(0, 4, 0.1 * seconds, 0.95 * seconds), None),
        (1, kill_times(1, 3, 0.0, 0.15), file_appears(data, ".*.h5.tmp.*")),
        (2, kill_times(2, 2, 0.0, 0.1), file_appears(data, ".*.parts/part-*.h5")),
    ):
        for name in ("fbank.h5", "mfcc.h5"):
            (data / name).unlink(missing_ok=True)
            shutil.rmtree(data / f".{name}.parts", ignore_errors=True)
        report = _run_and_check(f"features-{seed}", cmd, data, reference, delays, tmp_path, trigger=trigger,
                                ignore=only_h5)  # fmt: skip
        total += report.kill_points
        kept += sum("is up to date" in r.output for r in report.runs)
        resumed += sum("resuming" in r.output for r in report.runs)
        discarded += sum("discarding" in r.output for r in report.runs)
        assert not list(data.glob(".*.parts")), "the parts were not removed with the archive in place"
    print(
        f"[faults] feature extraction: {total} kill points; {kept} runs kept a complete archive, {resumed} resumed "
        f"from parts, {discarded} discarded parts"
    )
    assert total >= 3 and resumed >= 1 and discarded == 0


def _mono_cmd(yesno_recipe, out: Path) -> list[str]:
    return [
        PY, "-m", "asr.gmm.train_mono", "--data", str(yesno_recipe.data / "train"), "--lang",
        str(yesno_recipe.data / "lang"), "--out", str(out), "--num-iters", "10", "--total-gauss", "60", "--jobs", "2",
    ]  # fmt: skip


def test_monophone_training_resumes_per_iteration(yesno_recipe, tmp_path):
    out = tmp_path / "mono"
    cmd = _mono_cmd(yesno_recipe, out)
    seconds = _reference(cmd, out, tmp_path / "mono_ref")
    reference = output_files(tmp_path / "mono_ref", _is_log)
    assert "em_state.pt" not in reference  # removed once the model dir is complete
    ckpt = lambda rel: rel.name == "em_state.pt"  # noqa: E731
    total, resumed = 0, 0
    for seed, delays, trigger in (
        (0, kill_times(0, 3, 0.3 * seconds, 0.9 * seconds), None),
        (1, kill_times(1, 2, 0.0, 0.5 * seconds), file_appears(out, "em_state.pt")),
    ):
        shutil.rmtree(out, ignore_errors=True)
        report = _run_and_check(f"mono-{seed}", cmd, out, reference, delays, tmp_path, trigger=trigger,
                                ignore=_is_log, loadable=ckpt)  # fmt: skip
        total += report.kill_points
        resumed += sum("resuming EM training" in r.output for r in report.runs)
    print(f"[faults] monophone training: {total} kill points, {resumed} runs resumed from an EM checkpoint")
    assert total >= 3 and resumed >= 1


def test_triphone_training_resumes_per_iteration(yesno_recipe, tmp_path):
    out = tmp_path / "tri"
    cmd = [
        PY, "-m", "asr.gmm.train_tri", "--data", str(yesno_recipe.data / "train"), "--lang",
        str(yesno_recipe.data / "lang"), "--ali-dir", str(yesno_recipe.exp / "mono"), "--out", str(out),
        "--num-iters", "25", "--realign-iters", "5 10 15 20", "--num-leaves", "20", "--total-gauss", "80",
        "--jobs", "1",
    ]  # fmt: skip
    _reference(cmd, out, tmp_path / "tri_ref")
    reference = output_files(tmp_path / "tri_ref", _is_log)
    ckpt = lambda rel: rel.name == "em_state.pt"  # noqa: E731
    report = _run_and_check("tri", cmd, out, reference, kill_times(2, 3, 0.0, 0.5), tmp_path,
                            trigger=file_appears(out, "em_state.pt"), ignore=_is_log, loadable=ckpt)  # fmt: skip
    resumed = sum("resuming EM training" in r.output for r in report.runs)
    print(f"[faults] triphone training: {report.kill_points} kill points, {resumed} resumed from an EM checkpoint")
    assert report.kill_points >= 1 and resumed >= 1


def test_alignment(yesno_recipe, tmp_path):
    out = tmp_path / "ali"
    cmd = [
        PY, "-m", "asr.gmm.align", "--data", str(yesno_recipe.data / "train"), "--lang",
        str(yesno_recipe.data / "lang"), "--model", str(yesno_recipe.exp / "mono"), "--out", str(out), "--jobs", "2",
        "--block-frames", "1000",
    ]  # fmt: skip
    seconds = _reference(cmd, out, tmp_path / "ali_ref")
    reference = output_files(tmp_path / "ali_ref", _is_log)
    assert not any(name.startswith(".align_blocks") for name in reference)  # removed when complete
    blocks = lambda rel: rel.parts[0] == ".align_blocks"  # noqa: E731 (atomic npz files, checked on loading)
    total = resumed = 0
    # a random moment over the whole run, then (twice, from scratch) a moment just after the first block of
    # utterances was saved: the run after it resumes from the blocks on disk
    first_block = file_appears(out / ".align_blocks", "block-*.npz")
    for seed, delays, trigger in (
        (3, kill_times(3, 1, 0.3 * seconds, 0.95 * seconds), None),
        (4, kill_times(4, 1, 0.0, 0.6), first_block),
        (5, kill_times(5, 1, 0.0, 0.6), first_block),
    ):
        shutil.rmtree(out, ignore_errors=True)
        report = _run_and_check(f"align-{seed}", cmd, out, reference, delays, tmp_path, trigger=trigger,
                                ignore=lambda rel: _is_log(rel) or blocks(rel))  # fmt: skip
        total += report.kill_points
        resumed += sum("resuming alignment" in r.output for r in report.runs)
        assert not any("is damaged" in r.output for r in report.runs)  # no block file was left half-written
        assert not (out / ".align_blocks").exists()  # removed once align.json is written
    print(f"[faults] alignment: {total} kill points, {resumed} runs resumed from saved blocks")
    assert total >= 2 and resumed >= 1


def test_decoding_resumes_per_utterance(yesno_recipe, tmp_path):
    out = tmp_path / "decode_test"
    mono = yesno_recipe.exp / "mono"
    cmd = [
        PY, "-m", "asr.decode.decode_dir", "--graph", str(mono / "graph"), "--model", str(mono), "--data",
        str(yesno_recipe.data / "test"), "--out", str(out), "--lm-weights", "8:12", "--jobs", "1",
    ]  # fmt: skip
    seconds = _reference(cmd, out, tmp_path / "decode_ref")
    reference = output_files(tmp_path / "decode_ref", _is_log)
    assert not any(name.startswith(".decode_journal") for name in reference)  # removed when complete
    journal = lambda rel: rel.name.startswith(".decode_journal")  # noqa: E731
    total = resumed = 0
    for seed, delays, trigger in (
        (0, kill_times(0, 2, 0.3 * seconds, 0.95 * seconds), None),
        (1, kill_times(1, 2, 0.0, 0.5), file_appears(out, ".decode_journal.jsonl")),
    ):
        shutil.rmtree(out, ignore_errors=True)
        report = _run_and_check(f"decode-{seed}", cmd, out, reference, delays, tmp_path, trigger=trigger,
                                ignore=lambda rel: _is_log(rel) or journal(rel))  # fmt: skip
        total += report.kill_points
        resumed += sum("resuming the decode" in r.output for r in report.runs)
        assert not list(out.glob(".decode_journal*"))  # removed once results.json is written
    print(f"[faults] decoding: {total} kill points, {resumed} runs resumed from the journal")
    assert total >= 2 and resumed >= 1


def test_dnn_training_resumes_from_checkpoints_with_equal_weights(yesno_recipe, tmp_path):
    run = tmp_path / "run"
    cmd = [
        PY, "-m", "asr.train", "corpus=yesno", f"corpus.data_dir={yesno_recipe.data}", f"exp_root={tmp_path}",
        f"gmm_dir={yesno_recipe.exp / 'mono'}", "prepare=false", "depth=2", "width=32", "data.left_context=2",
        "data.right_context=2", "optim.batch_size=128", "optim.lr=0.05", "trainer.epochs=3",
        "trainer.checkpoint_every=20", "trainer.keep_checkpoints=2", "trainer.num_threads=1",
        "trainer.tensorboard=false", "trainer.progress=log", "trainer.device=cpu", "decode.enabled=false",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    _reference(cmd, run, tmp_path / "run_ref")

    def ignore(rel: Path) -> bool:  # Hydra's own files and logs; checkpoints hold timings and are checked apart
        return _is_log(rel) or rel.parts[0] in (".hydra", "checkpoints")

    reference = output_files(tmp_path / "run_ref", ignore)
    assert "final.pt" in reference
    # checkpoints, and train_log.json, which each epoch rewrites (atomically) with the epochs so far
    ckpt = lambda rel: rel.parts[0] == "checkpoints" or rel.name == "train_log.json"  # noqa: E731
    problems: list[str] = []
    report = _run_and_check("dnn", cmd, run, reference, kill_times(5, 3, 0.0, 1.5), tmp_path,
                            trigger=file_appears(run / "checkpoints", "ckpt-*.pt"),
                            ignore=lambda rel: ignore(rel) and not ckpt(rel), loadable=ckpt)  # fmt: skip
    assert not problems
    resumed = sum("resumed from" in r.output for r in report.runs)
    print(f"[faults] DNN training: {report.kill_points} kill points, {resumed} runs resumed from a checkpoint")
    assert report.kill_points >= 1 and resumed >= 1


# -- LDA+MLLT and SAT training (resumed per EM iteration, with the feature / speaker transforms) ----------------


def _rewritten_in_this_run(path: Path, log_dir: Path):
    """A trigger: True once ``path`` (the EM checkpoint) was written by the run being watched (the one logging to
    the newest ``run<i>.log`` of ``log_dir``), so that a resumed run too is killed a while after it saved an EM
    iteration of its own, not while it starts up."""
    seen: dict[Path, tuple[int, int] | None] = {}

    def version() -> tuple[int, int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def trigger() -> bool:
        logs = sorted(log_dir.glob("run*.log"), key=lambda p: int(p.stem[3:]))
        if not logs:
            return False
        now = version()
        if logs[-1] not in seen:  # first look of this run: the checkpoint of the runs before
            seen[logs[-1]] = now
            return False
        return now is not None and now != seen[logs[-1]]

    return trigger


def _em_training_kill_resume(stage: str, cmd: list[str], out: Path, tmp_path: Path) -> tuple[int, int]:
    """Kill an EM training stage (a) twice, each a random moment (0-0.3 s) after the run wrote an EM checkpoint
    (the first one appearing, then one of the resumed run's), and (b) once, from scratch, at a random moment of
    the whole run; each time the final outputs must equal an uninterrupted run's. Returns (kill points, runs that
    resumed from a checkpoint)."""
    seconds = _reference(cmd, out, tmp_path / f"{stage}_ref")
    reference = output_files(tmp_path / f"{stage}_ref", _is_log)
    assert "em_state.pt" not in reference  # removed once the model dir is complete
    ckpt = lambda rel: rel.name == "em_state.pt"  # noqa: E731
    total = resumed = 0
    for seed, delays, triggered in (
        (10, kill_times(10, 2, 0.0, 0.3), True),
        (11, kill_times(11, 1, 0.2 * seconds, 0.8 * seconds), False),
    ):
        shutil.rmtree(out, ignore_errors=True)
        name = f"{stage}-{seed}"
        trigger = _rewritten_in_this_run(out / "em_state.pt", tmp_path / f"logs_{name}") if triggered else None
        report = _run_and_check(name, cmd, out, reference, delays, tmp_path, trigger=trigger, ignore=_is_log,
                                loadable=ckpt)  # fmt: skip
        total += report.kill_points
        resumed += sum("resuming EM training" in r.output for r in report.runs)
        assert not (out / "em_state.pt").exists()
    return total, resumed


def _lda_mllt_args(yesno_recipe, ali_dir: Path, out: Path) -> list[str]:
    return [
        "--data", str(yesno_recipe.data / "train"), "--lang", str(yesno_recipe.data / "lang"), "--ali-dir",
        str(ali_dir), "--out", str(out), "--num-iters", "16", "--realign-iters", "5 10", "--num-leaves", "20",
        "--total-gauss", "80", "--jobs", "1",
    ]  # fmt: skip


def test_lda_mllt_training_resumes_per_iteration(yesno_recipe, tmp_path):
    """LDA+MLLT on the monophone alignment (MLLT at iterations 2 4 6 12): killed runs resume with the saved
    LDA+MLLT transform and end with the same final.mat.pt, model, alignment and train_log.json."""
    out = tmp_path / "tri2b"
    cmd = [PY, "-m", "asr.gmm.train_lda_mllt", *_lda_mllt_args(yesno_recipe, yesno_recipe.exp / "mono", out),
           "--mllt-iters", "2 4 6 12"]  # fmt: skip
    total, resumed = _em_training_kill_resume("lda_mllt", cmd, out, tmp_path)
    print(f"[faults] LDA+MLLT training: {total} kill points, {resumed} runs resumed from an EM checkpoint")
    assert total >= 3 and resumed >= 1


def test_sat_training_resumes_per_iteration(yesno_recipe, tmp_path):
    """SAT on an LDA+MLLT model (fMLLR at iterations 2 4 6 12): killed runs resume with the saved initial and
    current speaker transforms and end with the same trans.pt, alignment model, model, alignment and
    train_log.json."""
    from asr.gmm.train_lda_mllt import main as train_lda_mllt_main

    lda = tmp_path / "tri2b"  # a small LDA+MLLT model (the later options override the earlier)
    lda_args = [*_lda_mllt_args(yesno_recipe, yesno_recipe.exp / "mono", lda), "--num-iters", "6", "--realign-iters",
                "5", "--mllt-iters", "2 4"]  # fmt: skip
    assert train_lda_mllt_main(lda_args) == 0
    out = tmp_path / "tri3b"
    cmd = [PY, "-m", "asr.gmm.train_sat", *_lda_mllt_args(yesno_recipe, lda, out), "--fmllr-iters", "2 4 6 12",
           "--fmllr-min-count", "100"]  # fmt: skip
    total, resumed = _em_training_kill_resume("sat", cmd, out, tmp_path)
    print(f"[faults] SAT training: {total} kill points, {resumed} runs resumed from an EM checkpoint")
    assert total >= 3 and resumed >= 1


# -- synchronous multi-process DNN training (trainer=ddp under torchrun, 2 gloo ranks on CPU) ---------------


def _tagged_processes(tag: str) -> list[int]:
    """Pids of live processes whose environment holds ``ASR_FAULT_TAG=<tag>`` (torchrun and the ranks it
    started inherit the test's environment; the ranks run in sessions of their own)."""
    needle = f"ASR_FAULT_TAG={tag}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                status = (proc / "stat").read_text()
                if status.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is dead (waiting to be reaped)
                    found.append(int(proc.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _new_checkpoint_of_this_run(ckpt_dir: Path, log_dir: Path, from_start: int):
    """A trigger: for the first ``from_start`` runs (numbered by their ``run<i>.log`` in ``log_dir``) True at
    once (their kill delay counts from the start); for the later ones True once a checkpoint appears that was
    not there when the run started (one the run wrote itself after resuming)."""
    seen: dict[Path, set[str]] = {}

    def trigger() -> bool:
        logs = sorted(log_dir.glob("run*.log"), key=lambda p: int(p.stem[3:]))
        if not logs:
            return False
        if int(logs[-1].stem[3:]) < from_start:
            return True
        names = {p.name for p in ckpt_dir.glob("ckpt-*.pt")}
        if logs[-1] not in seen:
            seen[logs[-1]] = names
            return False
        return bool(names - seen[logs[-1]])

    return trigger


def test_ddp_training_resumes_after_kill(yesno_recipe, tmp_path, monkeypatch):
    """``torchrun --nproc-per-node 2 -m asr.train trainer=ddp`` (gloo on CPU, the local test's tiny model and
    checkpoint interval) killed three times (SIGKILL to torchrun's process group): once at a random moment of
    the whole run, then twice a random moment (0-1 s) after the run wrote a checkpoint of its own. After each
    kill no rank survives (torchrun starts the ranks in sessions of their own; they die with it) and no output
    under its final name is partial; started again with the same command, the run resumes from rank 0's newest
    checkpoint and ends with the final.pt, model.json, pdf_counts.txt and train_log.json (timings left out) of
    an uninterrupted DDP run."""
    import os
    import signal
    import time

    tag = f"ddp-{os.getpid()}-{tmp_path.name}"
    monkeypatch.setenv("ASR_FAULT_TAG", tag)  # inherited by torchrun and its ranks (stage_env copies os.environ)
    run = tmp_path / "run"
    cmd = [
        PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "asr.train",
        "trainer=ddp", "trainer.backend=gloo", "corpus=yesno", f"corpus.data_dir={yesno_recipe.data}",
        f"exp_root={tmp_path}", f"gmm_dir={yesno_recipe.exp / 'mono'}", "prepare=false", "depth=2", "width=32",
        "data.left_context=2", "data.right_context=2", "optim.batch_size=128", "optim.lr=0.05", "trainer.epochs=3",
        "trainer.checkpoint_every=20", "trainer.keep_checkpoints=2", "trainer.num_threads=1",
        "trainer.tensorboard=false", "trainer.progress=log", "trainer.device=cpu", "decode.enabled=false",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    seconds = _reference(cmd, run, tmp_path / "run_ref")
    assert _tagged_processes(tag) == []

    def ignore(rel: Path) -> bool:  # Hydra's own files and logs (both ranks write them); checkpoints apart
        return _is_log(rel) or rel.parts[0] in (".hydra", "checkpoints")

    reference = output_files(tmp_path / "run_ref", ignore)
    assert {"final.pt", "model.json", "pdf_counts.txt", "train_log.json"} <= reference.keys()
    ckpt = lambda rel: rel.parts[0] == "checkpoints" or rel.name == "train_log.json"  # noqa: E731
    log_dir = tmp_path / "logs_ddp"
    problems: list[str] = []
    orphans: list[int] = []

    def after_kill(record) -> None:
        # the ranks get SIGKILL from the kernel when torchrun dies; a rank still importing when it died (before
        # it asked for that) exits on reaching start_ddp, having written only Hydra's files: allow it a loaded
        # machine's import time
        deadline = time.monotonic() + 60.0
        while (alive := _tagged_processes(tag)) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in alive:  # orphans would keep training next to the next run: end them, then fail
            orphans.append(pid)
            os.kill(pid, signal.SIGKILL)
        if run.exists():
            problems.extend(check_no_partial_outputs(reference, run, ignore=lambda rel: ignore(rel) and not ckpt(rel),
                                                     loadable=ckpt))  # fmt: skip

    delays = kill_times(20, 1, 0.3 * seconds, 0.7 * seconds) + kill_times(21, 2, 0.0, 1.0)
    trigger = _new_checkpoint_of_this_run(run / "checkpoints", log_dir, from_start=1)
    report = run_with_kills(cmd, delays, trigger=trigger, after_kill=after_kill, log_dir=log_dir)
    assert not orphans, f"rank processes {orphans} survived the SIGKILL of torchrun's process group"
    assert not problems, problems
    final = output_files(run, lambda rel: ignore(rel) or (ckpt(rel) and rel.as_posix() not in reference))
    assert compare_outputs(reference, final) == []
    assert temp_files(run) == [], "temporary files of killed writers were left behind"
    assert _tagged_processes(tag) == []
    resumed = [r.output.split("resumed from ", 1)[1].split(" (", 1)[0].split("\n")[0] for r in report.runs
               if "resumed from" in r.output]  # fmt: skip
    for i, r in enumerate(report.runs):
        after = "the start" if i < 1 else "a new checkpoint"
        when = "to the end" if r.kill_after is None else f"kill {r.kill_after:.2f} s after {after}"
        print(f"[faults] ddp run {i}: {when}; killed={r.killed}, rc={r.returncode}, {r.seconds:.1f} s")
    print(f"[faults] DDP training (2 gloo ranks): {report.kill_points} kill points of {len(delays)} tried, "
          f"reference {seconds:.1f} s; {len(resumed)} runs resumed: {resumed}")  # fmt: skip
    assert report.kill_points >= 3 and len(resumed) >= 1


# -- two-pass fMLLR decoding (journals of the two searches, saved transforms, journal of the final decode) ------


def _sat_model_with_graph(yesno_recipe, root: Path) -> Path:
    """A small LDA+MLLT model, a small SAT model on it, and the SAT model's graph (``<sat>/graph``)."""
    from asr.gmm.train_lda_mllt import main as train_lda_mllt_main
    from asr.gmm.train_sat import main as train_sat_main
    from asr.graph.mkgraph import main as mkgraph_main

    lda, sat = root / "tri2b", root / "tri3b"
    small = ["--num-iters", "6", "--realign-iters", "5"]
    assert train_lda_mllt_main([*_lda_mllt_args(yesno_recipe, yesno_recipe.exp / "mono", lda), *small,
                                "--mllt-iters", "2 4"]) == 0  # fmt: skip
    assert train_sat_main([*_lda_mllt_args(yesno_recipe, lda, sat), *small, "--fmllr-iters", "2 4",
                           "--fmllr-min-count", "100"]) == 0  # fmt: skip
    mkgraph_main(["--lang", str(yesno_recipe.data / "lang_test"), "--model", str(sat), "--out", str(sat / "graph")])
    return sat


def _file_of_run(log_dir: Path, out: Path, names: list[str]):
    """A trigger: for run ``i`` (numbered by its ``run<i>.log`` in ``log_dir``) True once ``out / names[i]``
    exists, so that successive runs are killed in successive phases (first search, second search, final decode)."""

    def trigger() -> bool:
        i = len(list(log_dir.glob("run*.log"))) - 1
        return (out / names[min(i, len(names) - 1)]).exists()

    return trigger


def test_fmllr_decoding_resumes(yesno_recipe, tmp_path):
    """Two-pass fMLLR decoding (``python -m asr.decode.decode_fmllr``, LM-weight sweep 8:12) of yes/no test with a
    small SAT model: killed (a) at a random moment of the whole run and (b) three times, from scratch, a random
    moment (0-0.3 s) after the run's phase began: the first search's journal appeared, then the first transforms
    were saved, then the final decode's journal appeared. Each run resumes from the journals and saved
    transforms; hyp*.txt, per_utt.txt, results*.json (timings left out) and trans.pt equal an uninterrupted
    run's, the saved transforms always load, and the state is gone at the end."""
    sat = _sat_model_with_graph(yesno_recipe, tmp_path)
    out = tmp_path / "decode_fmllr"
    cmd = [
        PY, "-m", "asr.decode.decode_fmllr", "--graph", str(sat / "graph"), "--model", str(sat), "--data",
        str(yesno_recipe.data / "test"), "--out", str(out), "--lm-weights", "8:12", "--jobs", "1",
    ]  # fmt: skip
    seconds = _reference(cmd, out, tmp_path / "fmllr_ref")
    reference = output_files(tmp_path / "fmllr_ref", _is_log)
    assert "trans.pt" in reference and not any(name.startswith(".") for name in reference)  # no state left

    def journal(rel: Path) -> bool:  # append-only journals (a cut last line is ignored on loading)
        return rel.name.startswith(".decode_journal") or (rel.parts[0] == ".fmllr_state" and ".jsonl" in rel.name)

    state = lambda rel: rel.parts[0] == ".fmllr_state" and rel.suffix == ".pt"  # noqa: E731 (saved transforms)
    phases = [".fmllr_state/first_pass.jsonl", ".fmllr_state/trans_1.pt", ".decode_journal.jsonl"]
    total = resumed_search = reused_transforms = 0
    for seed, delays, triggered in (
        (20, kill_times(20, 1, 0.2 * seconds, 0.9 * seconds), False),
        (21, [d for i in range(3) for d in kill_times(21 + i, 1, 0.0, 0.3)], True),
    ):
        shutil.rmtree(out, ignore_errors=True)
        name = f"fmllr-{seed}"
        trigger = _file_of_run(tmp_path / f"logs_{name}", out, phases) if triggered else None
        report = _run_and_check(name, cmd, out, reference, delays, tmp_path, trigger=trigger,
                                ignore=lambda rel: _is_log(rel) or journal(rel), loadable=state)  # fmt: skip
        total += report.kill_points
        resumed_search += sum("resuming the decode" in r.output for r in report.runs)
        reused_transforms += sum("reusing the transforms" in r.output for r in report.runs)
        assert not any("is damaged" in r.output or "cannot read it" in r.output for r in report.runs)
        assert not (out / ".fmllr_state").exists() and not list(out.glob(".decode_journal*"))
    print(f"[faults] fMLLR decoding: {total} kill points; {resumed_search} runs resumed a search from its journal, "
          f"{reused_transforms} reused saved transforms (reference {seconds:.1f} s)")  # fmt: skip
    assert total >= 3 and resumed_search + reused_transforms >= 1
