"""Data dir -> feature archive: numbers, CMVN, deltas, parallel workers, bad audio, idempotence, CLI."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data.datadir import read_data_dir
from asr.errors import AsrError, InputError
from asr.features.archive import FeatureArchive
from asr.features.cmvn import apply_cmvn, cmvn_stats
from asr.features.compute import compute_features, data_fingerprint, main
from asr.features.deltas import add_deltas
from asr.features.extract import KnfExtractor
from asr.features.options import FeatureOptions

REPO = Path(__file__).resolve().parents[2]


def raw_features(data_path: Path, options: FeatureOptions) -> dict[str, np.ndarray]:
    """Reference: each utterance's features straight from the extractor, no CMVN."""
    data = read_data_dir(data_path)
    extractor = KnfExtractor(options)
    return {u: extractor.compute(data.load_audio(u, options.sample_rate)) for u in data.utt_ids}


def test_fbank_per_speaker_cmvn(an4_dir):
    out = compute_features(an4_dir, jobs=1)
    assert out == an4_dir / "fbank.h5"
    raw = raw_features(an4_dir, FeatureOptions())
    utt2spk = read_data_dir(an4_dir).utt2spk
    with FeatureArchive(out) as archive:
        assert archive.utt_ids == sorted(raw) and archive.dim == 40 and archive.cmvn == "speaker"
        stats = archive.cmvn_stats()
        assert list(stats) == ["fash", "mblb"]
        assert archive.cmvn_utt_group().tolist() == [0, 0, 0, 1, 1, 1]
        for spk in stats:
            spk_raw = np.concatenate([raw[u] for u in archive.utt_ids if utt2spk[u] == spk])
            np.testing.assert_allclose(stats[spk], cmvn_stats(spk_raw))
            spk_out = np.concatenate([archive.read(u) for u in archive.utt_ids if utt2spk[u] == spk])
            np.testing.assert_allclose(spk_out.mean(axis=0), 0, atol=1e-4)
        for utt in archive.utt_ids:
            expected = apply_cmvn(raw[utt], stats[utt2spk[utt]])
            np.testing.assert_allclose(archive.read(utt), expected, atol=1e-5)


def test_utterance_cmvn_none_and_variance(an4_dir, tmp_path):
    raw = raw_features(an4_dir, FeatureOptions())
    none = compute_features(an4_dir, tmp_path / "none.h5", cmvn="none", jobs=1)
    per_utt = compute_features(an4_dir, tmp_path / "utt.h5", cmvn="utterance", norm_vars=True, jobs=1)
    with FeatureArchive(none) as archive:
        assert archive.cmvn_stats() is None
        for utt in archive.utt_ids:
            np.testing.assert_array_equal(archive.read(utt), raw[utt])
    with FeatureArchive(per_utt) as archive:
        assert list(archive.cmvn_stats()) == archive.utt_ids and archive.attrs["cmvn_norm_vars"] is True
        for utt in archive.utt_ids:
            feats = archive.read(utt)
            np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-4)
            np.testing.assert_allclose(feats.std(axis=0), 1, atol=1e-3)


def test_mfcc_with_deltas_on_8khz_yesno(yesno_dir):
    out = compute_features(yesno_dir, options="mfcc", delta_order=2, jobs=1)
    assert out.name == "mfcc.h5"
    options = FeatureOptions(type="mfcc", sample_rate=8000)  # the rate comes from the audio
    raw = raw_features(yesno_dir, options)
    with FeatureArchive(out) as archive:
        assert archive.options == options and archive.dim == 39 and archive.attrs["delta_order"] == 2
        stats = archive.cmvn_stats()["yesno"]
        normalized = [apply_cmvn(raw[u], stats) for u in archive.utt_ids]
        expected = add_deltas(np.concatenate(normalized), archive.offsets)
        np.testing.assert_allclose(archive.read_all(), expected, atol=1e-4)


def test_parallel_workers_give_identical_archives(an4_dir, tmp_path):
    one = compute_features(an4_dir, tmp_path / "one.h5", jobs=1)
    two = compute_features(an4_dir, tmp_path / "two.h5", jobs=2)
    with FeatureArchive(one) as a, FeatureArchive(two) as b:
        assert a.utt_ids == b.utt_ids and np.array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.read_all(), b.read_all())


def test_torchaudio_backend_matches_knf(an4_dir, tmp_path):
    knf_out = compute_features(an4_dir, tmp_path / "knf.h5", jobs=1)
    ta_out = compute_features(an4_dir, tmp_path / "ta.h5", jobs=1, backend="torchaudio", batch_size=4)
    with FeatureArchive(knf_out) as a, FeatureArchive(ta_out) as b:
        assert b.attrs["backend"] == "torchaudio" and np.array_equal(a.offsets, b.offsets)
        assert np.abs(a.read_all() - b.read_all()).max() < 1e-3


def _break_audio(data_path: Path, how: str) -> str:
    """Make one utterance's audio bad; returns its utterance id."""
    data = read_data_dir(data_path)
    utt = data.utt_ids[1]
    bad = data_path.parent / f"bad-{how}.wav"
    if how == "missing":
        target = bad
    elif how == "corrupt":
        bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
        target = bad
    else:  # too short for one window
        soundfile.write(str(bad), np.zeros(50, dtype=np.int16), 8000, subtype="PCM_16")
        target = bad
    lines = (data_path / "wav.scp").read_text().splitlines()
    lines = [f"{utt} {target}" if line.split()[0] == utt else line for line in lines]
    (data_path / "wav.scp").write_text("\n".join(lines) + "\n")
    return utt


@pytest.mark.parametrize(
    "how,message", [("missing", "cannot read audio"), ("corrupt", "cannot read audio"), ("short", "shorter than one")]
)
def test_bad_audio_fails_naming_the_wav_scp_entry(yesno_dir, how, message):
    utt = _break_audio(yesno_dir, how)
    with pytest.raises(InputError, match=message) as info:
        compute_features(yesno_dir, jobs=1)
    assert "wav.scp" in info.value.path and utt in info.value.path
    assert not list(yesno_dir.glob("*.h5")) and not list(yesno_dir.glob(".*tmp*"))


def test_bad_audio_in_a_worker_process_fails_too(yesno_dir):
    _break_audio(yesno_dir, "corrupt")
    with pytest.raises(InputError, match="cannot read audio"):
        compute_features(yesno_dir, jobs=2)
    assert not list(yesno_dir.glob("*.h5")) and not list(yesno_dir.glob(".*tmp*"))
    assert multiprocessing.active_children() == []  # the workers were stopped with the error


def test_a_dying_worker_is_an_error_not_a_hang(yesno_dir):
    lines = (yesno_dir / "wav.scp").read_text().splitlines()
    lines[1] = lines[1].split()[0] + " kill -9 $PPID |"  # the shell's parent is the worker process
    (yesno_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(AsrError, match="worker process died"):
        compute_features(yesno_dir, jobs=2)
    assert not list(yesno_dir.glob("*.h5"))


def test_skip_bad_skips_counts_and_lists(yesno_dir, caplog):
    utt = _break_audio(yesno_dir, "corrupt")
    with caplog.at_level(logging.WARNING):
        out = compute_features(yesno_dir, jobs=1, skip_bad=True)
    with FeatureArchive(out) as archive:
        assert utt not in archive and len(archive) == 3
        assert archive.skipped_utt_ids == [utt] and archive.attrs["num_skipped"] == 1
    assert f"skipping utterance {utt}" in caplog.text and "skipped 1 utterance" in caplog.text


def test_existing_archive_for_same_data_and_options_is_kept(an4_dir, caplog):
    out = compute_features(an4_dir, jobs=1)
    before = os.stat(out)
    with caplog.at_level(logging.INFO):
        assert compute_features(an4_dir, jobs=1) == out
    after = os.stat(out)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "up to date" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        compute_features(an4_dir, jobs=1, cmvn="utterance")  # other options: recomputed
    assert "recomputing" in caplog.text and "'cmvn' differs" in caplog.text
    with FeatureArchive(out) as archive:
        assert archive.cmvn == "utterance"
    out.write_bytes(out.read_bytes()[:1000])  # a broken archive is recomputed, not kept
    caplog.clear()
    with caplog.at_level(logging.INFO):
        compute_features(an4_dir, jobs=1, cmvn="utterance")
    assert "not a valid archive" in caplog.text
    FeatureArchive(out).close()


def test_fingerprint_follows_the_data_dir(an4_dir):
    data = read_data_dir(an4_dir)
    first = data_fingerprint(data)
    assert data_fingerprint(data.subset(data.utt_ids[:-1])) != first
    assert data_fingerprint(read_data_dir(an4_dir)) == first


def test_non_contiguous_speakers_fail_before_extraction(an4_dir):
    lines = (an4_dir / "utt2spk").read_text().splitlines()
    lines[-1] = lines[-1].split()[0] + " fash"
    (an4_dir / "utt2spk").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="not contiguous"):
        compute_features(an4_dir, jobs=1)
    compute_features(an4_dir, jobs=1, cmvn="utterance")  # fine without per-speaker groups


def test_cli_main_and_subprocess(an4_dir, tmp_path):
    assert main(["--data", str(an4_dir), "--type", "mfcc", "--cmvn", "none", "--jobs", "1"]) == 0
    with FeatureArchive(an4_dir / "mfcc.h5") as archive:
        assert archive.dim == 13 and archive.cmvn == "none"
    assert main(["--data", str(tmp_path / "nowhere"), "--jobs", "1"]) == 1
    out = tmp_path / "cli.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "asr.features.compute", "--data", str(an4_dir), "--jobs", "2", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr
    with FeatureArchive(out) as archive, FeatureArchive(compute_features(an4_dir, jobs=1)) as reference:
        np.testing.assert_array_equal(archive.read_all(), reference.read_all())


def test_explicit_options_resample(an4_dir, tmp_path):
    """16 kHz audio with 8 kHz options is resampled (and the archive says 8 kHz)."""
    options = replace(FeatureOptions(), sample_rate=8000)
    out = compute_features(an4_dir, tmp_path / "8k.h5", options, jobs=1)
    with FeatureArchive(out) as archive:
        assert archive.options.sample_rate == 8000
        assert archive.options.window_size == 200
