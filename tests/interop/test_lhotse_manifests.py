"""lhotse RecordingSet + SupervisionSet manifests -> data dir: whole recordings and segments, both readers (lhotse's
loaders and the built-in JSONL reader) give the same dir, it validates, and its audio is the manifests' samples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data.corpora.lhotse_manifests import import_lhotse, read_manifests
from asr.data.datadir import read_data_dir
from asr.data.prepare import main as prepare_main
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError, InputError

FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "utt2dur", "spk2gender")


@pytest.fixture(scope="module")
def yesno_files(yesno_root):
    """Six yes/no recordings: (recording id, path, transcript words)."""
    waves = sorted((yesno_root / "waves_yesno").glob("*.wav"))[:6]
    return [(p.stem, p, ["YES" if b == "1" else "NO" for b in p.stem.split("_")]) for p in waves]


def _recording(rec_id: str, path: Path) -> dict:
    """A recording as lhotse's ``Recording.to_dict()`` writes it."""
    info = soundfile.info(str(path))
    return {
        "id": rec_id,
        "sources": [{"type": "file", "channels": [0], "source": str(path)}],
        "sampling_rate": info.samplerate,
        "num_samples": info.frames,
        "duration": info.frames / info.samplerate,
        "channel_ids": [0],
    }


def _write_jsonl(path: Path, objects: list[dict]) -> Path:
    text = "".join(json.dumps(o) + "\n" for o in objects)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def _manifests(tmp_path: Path, files, split: bool) -> tuple[Path, Path, dict]:
    """Manifests of the files: one supervision per recording (``split=False``), or two: the first half of the
    words (speaker A, start 0) and the rest (speaker B, from a millisecond boundary to the end). Returns the
    paths and ``{supervision id: (path, start s, end s or None, text)}``."""
    recs, sups, expected = [], [], {}
    for rec_id, path, words in files:
        rec = _recording(rec_id, path)
        recs.append(rec)
        if not split:
            sups.append({"id": f"{rec_id}-all", "recording_id": rec_id, "start": 0.0, "duration": rec["duration"],
                         "channel": 0, "text": " ".join(words), "speaker": "yesno", "gender": "male"})  # fmt: skip
            expected[f"yesno-{rec_id}-all"] = (path, 0.0, None, " ".join(words))
            continue
        half = round(rec["duration"] / 2, 3)
        first, second = " ".join(words[:4]), "  ".join(words[4:])  # double space: collapsed on import
        sups.append({"id": f"{rec_id}-a", "recording_id": rec_id, "start": 0.0, "duration": half, "channel": 0,
                     "text": first, "speaker": "spkA", "gender": "f"})  # fmt: skip
        sups.append({"id": f"spkB-{rec_id}-b", "recording_id": rec_id, "start": half,
                     "duration": rec["duration"] - half, "channel": 0, "text": second, "speaker": "spkB"})  # fmt: skip
        expected[f"spkA-{rec_id}-a"] = (path, 0.0, half, first)
        expected[f"spkB-{rec_id}-b"] = (path, half, None, " ".join(words[4:]))
    r = _write_jsonl(tmp_path / "recordings.jsonl.gz", recs)
    s = _write_jsonl(tmp_path / "supervisions.jsonl.gz", sups)
    return r, s, expected


def _check_audio(out: Path, expected: dict):
    data = read_data_dir(out)
    assert sorted(data.utt_ids) == sorted(expected)
    for utt, (path, start, end, text) in expected.items():
        samples, rate = soundfile.read(str(path), dtype="float32")
        first = int(round(start * rate))
        last = len(samples) if end is None else int(round(end * rate))
        np.testing.assert_array_equal(data.load_audio(utt), samples[first:last])
        assert data.text[utt] == text


def _readers() -> list[str]:
    try:
        import lhotse  # noqa: F401
    except ImportError:
        return ["builtin"]
    return ["builtin", "lhotse"]


@pytest.mark.parametrize("split", [False, True], ids=["whole", "segments"])
def test_manifests_to_data_dir(yesno_files, tmp_path, split):
    rec_path, sup_path, expected = _manifests(tmp_path, yesno_files, split)
    outs = {}
    for reader in _readers():
        out = tmp_path / f"data_{reader}"
        summary = import_lhotse(rec_path, sup_path, out, reader=reader)
        assert (summary.reader, summary.segments, summary.utts) == (reader, split, len(expected))
        validate_data_dir(out, check_audio=True)
        _check_audio(out, expected)
        outs[reader] = {name: (out / name).read_text() if (out / name).exists() else None for name in FILES}
    assert outs["builtin"] == outs.get("lhotse", outs["builtin"])  # both readers write the same files
    files = outs["builtin"]
    assert (files["segments"] is not None) == split
    if split:
        assert files["spk2gender"] is None  # speaker B has no gender
        first = yesno_files[0][0]
        assert f"spkA-{first}-a {first} 0.000 " in files["segments"]
        assert files["wav.scp"].splitlines()[0] == f"{first} {yesno_files[0][1]}"
    else:
        assert files["spk2gender"] == "yesno m\n"
        assert files["wav.scp"].splitlines()[0] == f"yesno-{yesno_files[0][0]}-all {yesno_files[0][1]}"


@pytest.mark.skipif("lhotse" not in _readers(), reason="lhotse is not installed")
def test_manifests_written_by_lhotse(yesno_files, tmp_path):
    """Manifests made by lhotse itself (Recording.from_file, to_file): its audio equals ours."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recs = [Recording.from_file(path, recording_id=rec_id) for rec_id, path, _ in yesno_files]
    sups = [
        SupervisionSegment(id=f"{r.id}-mid", recording_id=r.id, start=1.0, duration=2.5, text="W", speaker="s")
        for r in recs
    ]
    RecordingSet.from_recordings(recs).to_file(tmp_path / "r.jsonl.gz")
    SupervisionSet.from_segments(sups).to_file(tmp_path / "s.jsonl.gz")
    assert prepare_main(["lhotse", "--recordings", str(tmp_path / "r.jsonl.gz"), "--supervisions",
                         str(tmp_path / "s.jsonl.gz"), "--out", str(tmp_path / "x")]) == 0  # fmt: skip
    data = read_data_dir(tmp_path / "x")
    for rec, sup in zip(recs, sups):
        ours = data.load_audio(f"s-{sup.id}")
        theirs = rec.load_audio(offset=sup.start, duration=sup.duration)[0]
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_sources_channels_and_skipped_supervisions(yesno_files, tmp_path):
    """Commands become pipes, a second channel a sox remix pipe (not run here), text-less supervisions are
    skipped, a supervision past the recording's end is cut there, a speakerless one gets its recording."""
    rec_id, path, words = yesno_files[0]
    stereo = _recording("stereo", path)
    stereo["sources"] = [{"type": "file", "channels": [0, 1], "source": str(path)}]
    command = _recording("cmd", path)
    command["sources"] = [{"type": "command", "channels": [0], "source": f"cat {path}"}]
    sups = [
        {"id": "s0", "recording_id": "stereo", "start": 0.0, "duration": 1.0, "channel": 0, "text": "A"},
        {"id": "s1", "recording_id": "stereo", "start": 0.0, "duration": 1.0, "channel": 1, "text": "B"},
        {"id": "c", "recording_id": "cmd", "start": 0.5, "duration": 99.0, "channel": [0], "text": "C"},
        {"id": "silent", "recording_id": "cmd", "start": 0.0, "duration": 0.5, "text": ""},
    ]
    r = _write_jsonl(tmp_path / "r.jsonl", [stereo, command])
    s = _write_jsonl(tmp_path / "s.jsonl", sups)
    summary = import_lhotse(r, s, tmp_path / "out", reader="builtin", check_audio=False)
    assert summary.skipped_no_text == ["silent"] and summary.truncated == ["c"]
    wav = (tmp_path / "out" / "wav.scp").read_text().splitlines()
    assert wav == [f"cmd cat {path} |", f"stereo-0 {path}", f"stereo-1 sox {path} -t wav - remix 2 |"]
    segments = (tmp_path / "out" / "segments").read_text().splitlines()
    assert f"cmd-c cmd 0.500 {stereo['duration']:.3f}" in segments
    data = read_data_dir(tmp_path / "out")
    assert data.utt2spk == {"cmd-c": "cmd", "stereo-0-s0": "stereo-0", "stereo-1-s1": "stereo-1"}
    samples, _ = soundfile.read(str(path), dtype="float32")
    np.testing.assert_array_equal(data.load_audio("cmd-c"), samples[4000:])  # the pipe runs (8 kHz)


def test_bad_manifests_name_file_and_line(yesno_files, tmp_path):
    rec_id, path, _ = yesno_files[0]
    good_rec = _recording(rec_id, path)
    good_sup = {"id": "u1", "recording_id": rec_id, "start": 0.0, "duration": 1.0, "text": "X", "speaker": "s"}
    recs = _write_jsonl(tmp_path / "r.jsonl", [good_rec])

    def refused(rec_lines: list[str] | None, sup_lines: list[str] | None, reader="builtin") -> InputError:
        r = recs
        if rec_lines is not None:
            r = tmp_path / "bad_r.jsonl"
            r.write_text("".join(line + "\n" for line in rec_lines))
        s = tmp_path / "bad_s.jsonl"
        s.write_text("".join(line + "\n" for line in (sup_lines or [json.dumps(good_sup)])))
        with pytest.raises(InputError) as err:
            import_lhotse(r, s, tmp_path / "out", reader=reader)
        return err.value

    sup = json.dumps(good_sup)
    err = refused(None, [sup, "{not json"])
    assert err.path == str(tmp_path / "bad_s.jsonl") and err.line == 2
    err = refused(None, [sup, json.dumps({**good_sup, "id": "u2", "recording_id": "nope"})])
    assert err.line == 2 and "'nope' is not in the recordings" in err.message
    assert refused(None, [sup, sup]).line == 2  # repeated id
    assert "start" in refused(None, [json.dumps({**good_sup, "start": "zero"})]).message
    assert refused(None, [json.dumps({**good_sup, "start": 7.0})]).line == 1  # after the recording's end
    assert "whitespace" in refused(None, [json.dumps({**good_sup, "speaker": "a b"})]).message
    err = refused([json.dumps(good_sup)], None)
    assert "is this a supervision manifest?" in err.message and err.path == str(tmp_path / "bad_r.jsonl")
    url = {**good_rec, "sources": [{"type": "url", "channels": [0], "source": "https://example.org/a.wav"}]}
    assert "'url'" in refused([json.dumps(url)], None).message
    speed = {**good_rec, "transforms": [{"name": "Speed", "kwargs": {"factor": 1.1}}]}
    assert "transforms" in refused([json.dumps(speed)], None).message
    missing = {**good_rec, "sources": [{"type": "file", "channels": [0], "source": str(tmp_path / "gone.wav")}]}
    assert "gone.wav" in str(refused([json.dumps(missing)], None))  # the validator reads the audio headers
    assert "no supervision with text" in refused(None, [json.dumps({**good_sup, "text": None})]).message
    if "lhotse" in _readers():
        err = refused(None, [sup, "{not json"], reader="lhotse")
        assert err.path == str(tmp_path / "bad_s.jsonl")
    with pytest.raises(InputError, match="manifest not found"):
        read_manifests(tmp_path / "none.jsonl.gz", tmp_path / "bad_s.jsonl", reader="builtin")
    with pytest.raises(ConfigError):
        read_manifests(recs, recs, reader="kaldi")
    assert prepare_main(["lhotse", "--out", str(tmp_path / "y")]) == 1  # no manifests given
