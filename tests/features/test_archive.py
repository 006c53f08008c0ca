"""The HDF5 feature archive: writer, reader, and refusal of truncated, corrupt or inconsistent files."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from asr.errors import InputError
from asr.features.archive import REQUIRED_ATTRS, ArchiveWriter, FeatureArchive, base_attrs
from asr.features.options import FeatureOptions


def write_synthetic(path: Path, lengths=(3, 1, 5), dim=4, compression=None, **attrs) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    utts = {f"spk{i}-u{i}": rng.normal(size=(n, dim)).astype(np.float32) for i, n in enumerate(lengths)}
    with ArchiveWriter(
        path, dim, base_attrs("fbank", FeatureOptions(), "somewhere", **attrs), compression, buffer_frames=4
    ) as writer:
        for utt, feats in utts.items():
            writer.append(utt, feats)
    return utts


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_round_trip(tmp_path, compression):
    path = tmp_path / "feats.h5"
    utts = write_synthetic(path, compression=compression)
    with FeatureArchive(path) as archive:
        assert archive.utt_ids == list(utts)
        assert archive.offsets.tolist() == [0, 3, 4, 9] and archive.offsets.dtype == np.int64
        assert (archive.dim, archive.num_frames, len(archive)) == (4, 9, 3)
        assert archive.options == FeatureOptions() and archive.feature_type == "fbank" and archive.cmvn == "none"
        for utt, feats in utts.items():
            np.testing.assert_array_equal(archive.read(utt), feats)
            assert archive.num_frames_of(utt) == len(feats)
        np.testing.assert_array_equal(archive.read_all(), np.concatenate(list(utts.values())))
        assert archive.frame_utt_index().tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2]
        assert [u for u, _ in archive] == list(utts)
        assert archive.cmvn_stats() is None and archive.skipped_utt_ids == []
        with pytest.raises(KeyError):
            archive.read("nobody")
        clone = pickle.loads(pickle.dumps(archive))  # reopens by path (DataLoader workers)
        np.testing.assert_array_equal(clone.read("spk1-u1"), utts["spk1-u1"])
        clone.close()
    with h5py.File(path) as f:
        assert f["feats"].dtype == np.float32 and f["feats"].chunks is not None
        assert f["feats"].compression == compression


def test_writer_error_leaves_no_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "feats.h5"
    with pytest.raises(RuntimeError):
        with ArchiveWriter(path, 4, base_attrs("fbank", None, "x")) as writer:
            writer.append("a", np.zeros((2, 4), np.float32))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_synthetic(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="expected"):
        with ArchiveWriter(path, 4, base_attrs("fbank", None, "x")) as writer:
            writer.append("a", np.zeros((2, 5), np.float32))
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_writer_refuses_repeated_and_blank_ids(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        with ArchiveWriter(tmp_path / "a.h5", 2, base_attrs("fbank", None, "x")) as writer:
            writer.append("a", np.zeros((1, 2)))
            writer.append("a", np.zeros((1, 2)))
    with pytest.raises(ValueError, match="white space"):
        with ArchiveWriter(tmp_path / "b.h5", 2, base_attrs("fbank", None, "x")) as writer:
            writer.append("a b", np.zeros((1, 2)))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_real_archive_is_refused(tmp_path, an4_fbank_archive, fraction):
    data = an4_fbank_archive.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError, match="truncated") as info:
        FeatureArchive(cut)
    assert info.value.path == str(cut)
    cut.write_bytes(data[:-1])
    with pytest.raises(InputError, match="truncated"):
        FeatureArchive(cut)


def test_corrupted_feature_bytes_are_refused_on_read(tmp_path, an4_fbank_archive):
    broken = tmp_path / "broken.h5"
    shutil.copy(an4_fbank_archive, broken)
    with h5py.File(broken) as f:
        start = f["feats"].id.get_chunk_info(0).byte_offset
    data = bytearray(broken.read_bytes())
    data[start + 100 : start + 108] = b"\xff" * 8
    broken.write_bytes(bytes(data))
    with FeatureArchive(broken) as archive:  # the layout is fine; the checksum catches the data
        with pytest.raises(InputError, match="cannot read frames") as info:
            archive.read_all()
    assert info.value.path == str(broken)


def _edit_copy(tmp_path: Path, source: Path, edit) -> Path:
    path = tmp_path / "edited.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda f: f["offsets"].__setitem__(-1, f["offsets"][-1] - 1), "offsets end at"),
        (lambda f: f["offsets"].__setitem__(1, 10**6), "decrease"),
        (lambda f: f["offsets"].__setitem__(0, 1), r"offsets\[0\]"),
        (lambda f: _replace(f, "offsets", f["offsets"][:-1]), "offsets"),
        (lambda f: _replace(f, "utt_ids", f["utt_ids"][:-1]), "utterance ids but"),
        (lambda f: _replace(f, "feats", f["feats"][()].astype(np.float64)), "float32"),
        (lambda f: f.__delitem__("offsets"), "/offsets is missing"),
        (lambda f: f.attrs.__delitem__("options"), "attribute"),
        (lambda f: f.attrs.__setitem__("format", "something else"), "format"),
        (lambda f: _replace(f, "cmvn/utt_group", f["cmvn/utt_group"][()] + 5), "utt_group"),
        (lambda f: _replace(f, "cmvn/stats", f["cmvn/stats"][:, :, :-1]), "cmvn/stats"),
    ],
)
def test_inconsistent_archive_is_refused(tmp_path, an4_fbank_archive, edit, message):
    path = _edit_copy(tmp_path, an4_fbank_archive, edit)
    with pytest.raises(InputError, match=message) as info:
        FeatureArchive(path)
    assert info.value.path == str(path)


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        FeatureArchive(tmp_path / "nothing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not an archive\n")
    with pytest.raises(InputError, match="cannot open as HDF5"):
        FeatureArchive(text)


def test_required_attributes_are_written(an4_fbank_archive):
    with FeatureArchive(an4_fbank_archive) as archive:
        assert set(REQUIRED_ATTRS) <= set(archive.attrs)
        assert archive.attrs["asr_version"] and archive.attrs["source"].endswith("data")
        assert FeatureOptions.from_json(archive.attrs["options"]).num_bins == 40
