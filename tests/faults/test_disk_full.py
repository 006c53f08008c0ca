"""A full disk: a write that fails with ENOSPC raises our WriteError naming the file, removes its temporary file
and leaves the previous output as it was.

Two ways to fill the disk, both real kernel ENOSPC errors (no mocks): the writer's temporary file is made a
symlink to ``/dev/full`` (every write to it fails with ENOSPC), and, where unprivileged user namespaces are
allowed, a 1 MiB tmpfs mounted with ``unshare`` on which a CLI runs out of space.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from harness import stage_env, temp_files

from asr.atomic import temp_path_for
from asr.errors import WriteError
from asr.features.archive import FeatureArchive
from asr.features.compute import compute_features
from asr.features.compute import main as compute_main
from asr.nnet.checkpoint import checkpoint_path, list_checkpoints, load_latest_checkpoint, save_checkpoint
from asr.score import Score, write_results_json

DEV_FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")


def _fill_disk_for(target: Path) -> Path:
    """Make the next atomic write of ``target`` by this process hit a full disk: its temporary name is a symlink
    to /dev/full. Returns the symlink."""
    tmp = temp_path_for(target)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.symlink_to(DEV_FULL)
    return tmp


def _assert_write_error(info, target: Path) -> None:
    err = info.value
    assert isinstance(err, WriteError)
    assert err.path == os.fspath(target) and str(target) in str(err)
    assert err.errno == errno.ENOSPC and "No space left on device" in str(err)
    assert "previous version" in str(err)


def test_feature_archive_writer(yesno_recipe, tmp_path, caplog):
    data = tmp_path / "test"
    shutil.copytree(yesno_recipe.data / "test", data)
    target = data / "fbank.h5"
    before = target.read_bytes()
    link = _fill_disk_for(target)
    with pytest.raises(WriteError) as info:
        compute_features(data, options="fbank", jobs=1, force=True)
    _assert_write_error(info, target)
    assert not link.exists() and not link.is_symlink()
    assert target.read_bytes() == before  # the previous archive is intact and still opens
    with FeatureArchive(target) as archive:
        assert len(archive) == 29

    # the CLI: exit status 1 and one line naming the file, no traceback
    _fill_disk_for(target)
    caplog.clear()
    assert compute_main(["--data", str(data), "--type", "fbank", "--jobs", "1", "--force"]) == 1
    assert f"{target}: cannot write: No space left on device" in caplog.text
    assert "Traceback" not in caplog.text
    assert target.read_bytes() == before and temp_files(data) == []


def test_dnn_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    state = {"model": {"w": torch.arange(6.0)}, "optimizer": {}, "step": 10, "epoch": 0, "batch_in_epoch": 10}
    save_checkpoint(ckpt_dir, state)
    before = checkpoint_path(ckpt_dir, 10).read_bytes()
    target = checkpoint_path(ckpt_dir, 20)
    link = _fill_disk_for(target)
    with pytest.raises(WriteError) as info:
        save_checkpoint(ckpt_dir, {**state, "step": 20})
    _assert_write_error(info, target)
    assert not link.is_symlink() and not target.exists()
    assert list_checkpoints(ckpt_dir) == [checkpoint_path(ckpt_dir, 10)]
    assert checkpoint_path(ckpt_dir, 10).read_bytes() == before
    loaded, path = load_latest_checkpoint(ckpt_dir)
    assert path == checkpoint_path(ckpt_dir, 10) and torch.equal(loaded["model"]["w"], torch.arange(6.0))


def test_results_json(tmp_path):
    target = tmp_path / "decode_test" / "results.json"
    score = Score(words=10, ins=1, dels=0, sub=1, utts=2, utts_with_errors=1)
    write_results_json(target, score, corpus="yesno", set="test")
    before = target.read_bytes()
    link = _fill_disk_for(target)
    with pytest.raises(WriteError) as info:
        write_results_json(target, Score(words=10, ins=0, dels=0, sub=0, utts=2, utts_with_errors=0))
    _assert_write_error(info, target)
    assert not link.is_symlink()
    assert target.read_bytes() == before and json.loads(before)["ins"] == 1


_TMPFS_SCRIPT = textwrap.dedent(
    """
    set -e
    # several sizes, so that the disk fills at different points: while /feats is written, while HDF5 flushes
    # its metadata at the end
    for size in 700k 1m 2m; do
      out="$WORK/$size"; mkdir -p "$out"
      mount -t tmpfs -o size=$size tmpfs "$DISK"
      # a previous, small archive (2 utterances) fits ...
      "$PY" -m asr.features.compute --data "$SMALL" --type fbank --jobs 1 --out "$DISK/fbank.h5"
      sha256sum "$DISK/fbank.h5" > "$out/before.sha"
      # ... the whole test set (about 2.8 MB of features) does not
      set +e
      "$PY" -m asr.features.compute --data "$FULL" --type fbank --jobs 1 --out "$DISK/fbank.h5" 2> "$out/stderr.txt"
      echo $? > "$out/rc.txt"
      set -e
      sha256sum "$DISK/fbank.h5" > "$out/after.sha"
      ls -A "$DISK" > "$out/listing.txt"
      umount "$DISK"
    done
    """
)


@pytest.mark.slow
def test_full_tmpfs_with_the_cli(yesno_recipe, tmp_path):
    """A real full file system (3 sizes): the CLI stops with one line naming the archive; the previous one is
    intact; no temporary file is left."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged mount namespaces are not available: {probe.stderr.decode()[:200]}")
    full = tmp_path / "full"
    shutil.copytree(yesno_recipe.data / "test", full, ignore=shutil.ignore_patterns("*.h5"))
    small = tmp_path / "small"
    small.mkdir()
    for name in ("wav.scp", "text", "utt2spk"):
        lines = (full / name).read_text().splitlines()[:2]
        (small / name).write_text("\n".join(lines) + "\n")
    disk = tmp_path / "disk"
    disk.mkdir()
    env = stage_env(DISK=str(disk), SMALL=str(small), FULL=str(full), WORK=str(tmp_path), PY=sys.executable)
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _TMPFS_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0 and "mount" in proc.stderr and not (tmp_path / "700k" / "before.sha").exists():
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for size in ("700k", "1m", "2m"):
        out = tmp_path / size
        stderr = (out / "stderr.txt").read_text()
        assert (out / "rc.txt").read_text().strip() == "1", stderr
        assert f"{disk / 'fbank.h5'}: cannot write: No space left on device" in stderr
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
        before = (out / "before.sha").read_text().split()[0]
        assert (out / "after.sha").read_text().split()[0] == before
        assert (out / "listing.txt").read_text().split() == ["fbank.h5"]  # no temporary file left
