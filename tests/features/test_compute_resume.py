"""Feature extraction resumes from the parts a stopped run saved (issue 7): the rerun extracts only the remaining
utterances and writes the archive an uninterrupted run writes (every dataset and attribute); parts of other
data or options, corrupt parts and parts after a gap are discarded and redone."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from features_helpers import make_yesno_dir

from asr.atomic import temp_path_for
from asr.data.datadir import read_data_dir
from asr.errors import InputError
from asr.features.compute import compute_features, parts_dir
from asr.features.options import FeatureOptions

REPO = Path(__file__).resolve().parents[2]
AUDIO = re.compile(r"wrote .*: (\d+) utterances, (\d+) frames, ([0-9.]+) s of audio")


def h5_contents(path: Path) -> dict:
    """Every attribute and dataset (values, dtypes, shapes, own attributes) of an HDF5 file."""
    out: dict = {}

    def plain(value):
        return value.tolist() if isinstance(value, np.ndarray) else value

    with h5py.File(path, "r") as f:
        out["/"] = {k: plain(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype, obj[()])
                out[name + "@"] = {k: plain(v) for k, v in obj.attrs.items()}

        f.visititems(visit)
    return out


def assert_same_archive(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same datasets (dtype and values) and attributes."""
    ca, cb = h5_contents(a), h5_contents(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        if key.endswith("@") or key == "/":
            assert ca[key] == cb[key], key
        else:
            assert ca[key][0] == cb[key][0] and np.array_equal(ca[key][1], cb[key][1]), key


def own_wavs(data: Path) -> list[Path]:
    """Copy the data dir's audio beside it and point wav.scp at the copies (which a test may break and fix
    without changing wav.scp); returns the copies in utterance order."""
    wavs = data.parent / f"{data.name}_wavs"
    wavs.mkdir()
    table = read_data_dir(data).wav_scp
    copies = []
    lines = []
    for utt in sorted(table, key=lambda u: u.encode()):
        copy = wavs / f"{utt}.wav"
        shutil.copyfile(table[utt], copy)
        copies.append(copy)
        lines.append(f"{utt} {copy}")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    return copies


def part_files(out: Path) -> list[str]:
    return sorted(p.name for p in parts_dir(out).glob("part-*.h5"))


def stop_at(data: Path, out: Path, wav: Path, **options) -> bytes:
    """Run with ``wav`` unreadable: the run stops with an InputError at its utterance. Returns the good bytes."""
    good = wav.read_bytes()
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with pytest.raises(InputError, match="cannot read audio"):
        compute_features(data, out, **options)
    assert not out.exists()
    return good


def test_stopped_run_resumes_from_its_parts_and_equals_a_clean_run(an4_dir, tmp_path, caplog):
    """Bad audio stops a run at utterance 4 of 6 (two speakers, per-speaker CMVN and deltas); once the audio is
    fixed, a rerun in another process resumes from the 4 saved parts and writes the clean run's archive."""
    wavs = own_wavs(an4_dir)
    out = an4_dir / "fbank.h5"
    good = stop_at(an4_dir, out, wavs[4], delta_order=1, jobs=1, part_frames=1)
    assert part_files(out) == [f"part-0000{i}.h5" for i in range(4)]  # one per utterance before the bad one
    wavs[4].write_bytes(good)
    clean = tmp_path / "clean.h5"
    with caplog.at_level(logging.INFO):
        compute_features(an4_dir, clean, delta_order=1, jobs=1, part_frames=0)
    assert not parts_dir(clean).exists()
    proc = subprocess.run(
        [sys.executable, "-m", "asr.features.compute", "--data", str(an4_dir), "--delta-order", "1", "--jobs", "2",
         "--part-frames", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"resuming {out} from 4 part(s): 4 utterances done" in proc.stderr
    assert "for 2 utterances" in proc.stderr  # only the remaining ones were extracted
    assert_same_archive(clean, out)
    assert not parts_dir(out).exists()
    # the log counts the audio of the resumed parts too
    assert AUDIO.search(proc.stderr).groups() == AUDIO.search(caplog.text).groups()


def test_killed_run_with_skipped_audio_resumes_inside_a_speaker(yesno_root, tmp_path):
    """One speaker (one CMVN group cut into parts), a skipped bad utterance, MFCC with deltas: a run killed with
    SIGKILL while it reads utterance 5 resumes from its parts and equals a clean run, skipped list included."""
    data = make_yesno_dir(yesno_root, tmp_path / "yesno", num=8)
    wavs = own_wavs(data)
    wavs[1].write_bytes(b"not audio at all")  # skipped (skip_bad)
    flag = tmp_path / "hold"
    lines = (data / "wav.scp").read_text().splitlines()
    utt5 = lines[5].split()[0]
    lines[5] = f"{utt5} while [ -e {flag} ]; do sleep 0.02; done; cat {wavs[5]} |"  # waits while the flag exists
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    out = data / "mfcc.h5"
    cmd = [sys.executable, "-m", "asr.features.compute", "--data", str(data), "--type", "mfcc", "--delta-order", "2",
           "--skip-bad", "--jobs", "1", "--part-frames", "1"]  # fmt: skip
    flag.touch()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(part_files(out)) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # utterances 0 | 1 (skipped) + 2 | 3 | 4: the skipped one goes with the next part
    assert part_files(out) == [f"part-0000{i}.h5" for i in range(4)] and not out.exists()
    flag.unlink()
    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} from 4 part(s): 5 utterances done" in resumed.stderr
    clean = tmp_path / "clean.h5"
    compute_features(data, clean, "mfcc", delta_order=2, skip_bad=True, jobs=1, part_frames=0)
    assert_same_archive(clean, out)
    with h5py.File(out, "r") as f:
        assert f.attrs["num_skipped"] == 1 and [s.decode() for s in f["skipped_utt_ids"][()]] == [
            read_data_dir(data).utt_ids[1]
        ]
    assert not parts_dir(out).exists()


@pytest.mark.parametrize(
    "change,differs",
    [
        (dict(cmvn="utterance"), "cmvn"),
        (dict(options=FeatureOptions(sample_rate=8000, num_bins=30)), "options"),
        (dict(data="one more utterance"), "source_fingerprint"),
        (dict(force=True), None),
    ],
)
def test_parts_of_other_data_or_options_are_discarded(yesno_root, tmp_path, caplog, change, differs):
    data = make_yesno_dir(yesno_root, tmp_path / "yesno", num=5)
    wavs = own_wavs(data)
    out = data / "fbank.h5"
    good = stop_at(data, out, wavs[2], jobs=1, part_frames=1)
    assert len(part_files(out)) == 2
    wavs[2].write_bytes(good)
    options = dict(change)
    if options.pop("data", None):
        with open(data / "wav.scp", "a") as f:
            f.write(f"yesno-zz {wavs[0]}\n")
        with open(data / "utt2spk", "a") as f:
            f.write("yesno-zz yesno\n")
        with open(data / "text", "a") as f:
            f.write("yesno-zz NO\n")
        (data / "spk2utt").write_text("yesno " + " ".join(read_data_dir(data).utt_ids) + "\n")
    with caplog.at_level(logging.INFO):
        compute_features(data, out, jobs=1, part_frames=1, **options)
    assert "resuming" not in caplog.text
    if differs is None:
        assert "force: discarding the parts" in caplog.text
    else:
        assert (
            f"discarding 2 part(s) of an earlier run in {parts_dir(out)} (part-00000.h5: made from other data or "
            f"options (attribute {differs!r} differs))"
        ) in caplog.text
    assert not parts_dir(out).exists()
    options.pop("force", None)
    clean = tmp_path / "clean.h5"
    compute_features(data, clean, jobs=1, part_frames=0, **options)
    assert_same_archive(clean, out)


def _flip_feature_bytes(path: Path) -> None:
    """Change bytes inside the first chunk of /feats (its Fletcher-32 checksum no longer matches)."""
    with h5py.File(path, "r") as f:
        offset = f["feats"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 16)
        data = f.read(8)
        f.seek(offset + 16)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated", "gap"])
def test_a_corrupt_part_or_a_gap_is_discarded_and_redone(yesno_root, tmp_path, caplog, damage):
    """Parts saved by time (every utterance: part_seconds tiny, part_frames huge); part 2 of 6 is damaged or
    missing: the rerun resumes from parts 0 and 1, deletes the others and equals a clean run."""
    data = make_yesno_dir(yesno_root, tmp_path / "yesno", num=8)
    wavs = own_wavs(data)
    out = data / "fbank.h5"
    good = stop_at(data, out, wavs[6], jobs=1, part_frames=10**9, part_seconds=1e-9)
    assert len(part_files(out)) == 6
    wavs[6].write_bytes(good)
    part = parts_dir(out) / "part-00002.h5"
    if damage == "flipped bytes":
        _flip_feature_bytes(part)
    elif damage == "truncated":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    else:
        part.unlink()
    with caplog.at_level(logging.INFO):
        compute_features(data, out, jobs=2, part_frames=10**9)
    assert f"resuming {out} from 2 part(s): 2 utterances done" in caplog.text
    discarded = re.search(r"discarding (\d) part\(s\) of an earlier run in \S+ \((.*)\); redoing them", caplog.text)
    assert discarded is not None and int(discarded[1]) == (3 if damage == "gap" else 4)
    assert discarded[2].startswith("part-00002.h5")
    if damage == "gap":
        assert discarded[2] == "part-00002.h5 is missing"
    assert not parts_dir(out).exists()
    clean = tmp_path / "clean.h5"
    compute_features(data, clean, jobs=1, part_frames=0)
    assert_same_archive(clean, out)


def test_up_to_date_archive_removes_leftover_parts(yesno_dir, tmp_path):
    """A run killed between the archive's rename and the parts' removal: the next run keeps the archive and
    removes the parts."""
    out = compute_features(yesno_dir, jobs=1)
    leftover = parts_dir(out)
    leftover.mkdir()
    (leftover / "part-00000.h5").write_bytes(b"old")
    assert compute_features(yesno_dir, jobs=1) == out
    assert not leftover.exists()


def test_a_part_that_cannot_be_written_does_not_stop_the_run(yesno_dir, tmp_path, caplog):
    """The first part's temporary file is /dev/full (a full disk): the run logs it, goes on without parts and
    writes the clean run's archive."""
    out = yesno_dir / "fbank.h5"
    parts_dir(out).mkdir()
    temp_path_for(parts_dir(out) / "part-00000.h5").symlink_to("/dev/full")
    with caplog.at_level(logging.INFO):
        compute_features(yesno_dir, out, jobs=1, part_frames=1)
    assert f"cannot save part 0 in {parts_dir(out)}" in caplog.text and "going on without parts" in caplog.text
    assert not parts_dir(out).exists()
    clean = tmp_path / "clean.h5"
    compute_features(yesno_dir, clean, jobs=1, part_frames=0)
    assert_same_archive(clean, out)
