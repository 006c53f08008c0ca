"""ali.h5: round trip, failed utterances marked, refused when truncated or inconsistent, checked against features."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from asr.errors import InputError
from asr.gmm.alignment_archive import AlignmentArchive, write_alignment_archive

UTTS = ["spk1-a", "spk1-b", "spk2-c"]
OFFSETS = np.array([0, 5, 8, 12])
ATTRS = {"model_dir": "exp/x/mono", "num_pdfs": 10, "num_transition_states": 20}


def _arrays(failed=("spk1-b",)):
    rng = np.random.default_rng(0)
    pdf = rng.integers(0, 10, size=12).astype(np.int32)
    phone = rng.integers(1, 5, size=12).astype(np.int32)
    tstate = rng.integers(0, 20, size=12).astype(np.int32)
    for utt in failed:
        i = UTTS.index(utt)
        for a in (pdf, phone, tstate):
            a[OFFSETS[i] : OFFSETS[i + 1]] = -1
    return pdf, phone, tstate


def _write(path, failed=("spk1-b",)):
    pdf, phone, tstate = _arrays(failed)
    write_alignment_archive(path, UTTS, OFFSETS, pdf, phone, tstate, {u: "too short" for u in failed}, ATTRS)
    return pdf, phone, tstate


def test_round_trip(tmp_path):
    path = tmp_path / "ali.h5"
    pdf, phone, tstate = _write(path)
    ali = AlignmentArchive(path)
    assert ali.utt_ids == UTTS and ali.offsets.tolist() == OFFSETS.tolist()
    assert np.array_equal(ali.pdf_ids, pdf) and np.array_equal(ali.phone_ids, phone)
    assert np.array_equal(ali.tstate_ids, tstate)
    assert ali.failed == {"spk1-b": "too short"} and ali.num_pdfs == 10 and ali.model_dir == "exp/x/mono"
    assert ali.pdfs("spk1-b") is None and ali.tstates("spk1-b") is None
    assert ali.pdfs("spk2-c").tolist() == pdf[8:12].tolist()
    assert ali.frame_mask().tolist() == [True] * 5 + [False] * 3 + [True] * 4
    assert ali.aligned("spk1-a") and not ali.aligned("spk1-b") and not ali.aligned("nope")
    ali.check_matches(UTTS, OFFSETS)
    assert not list(tmp_path.glob(".ali.h5.tmp*"))  # atomic write leaves no temporary


def test_truncated_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "ali.h5"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        AlignmentArchive(path)
    assert err.value.path == str(path) and "truncated" in str(err.value)


def test_missing_file_and_missing_dataset(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        AlignmentArchive(tmp_path / "nope.h5")
    path = tmp_path / "ali.h5"
    _write(path)
    with h5py.File(path, "a") as f:
        del f["tstate_ids"]
    with pytest.raises(InputError, match="/tstate_ids is missing") as err:
        AlignmentArchive(path)
    assert err.value.path == str(path)


def test_inconsistent_contents_are_refused(tmp_path):
    path = tmp_path / "ali.h5"
    _write(path)
    with h5py.File(path, "a") as f:  # a failed utterance's frame gets a value
        f["pdf_ids"][6] = 3
    with pytest.raises(InputError, match="listed as failed"):
        AlignmentArchive(path)
    _write(path)
    with h5py.File(path, "a") as f:  # pdf id out of range
        f["pdf_ids"][0] = 10
    with pytest.raises(InputError, match="outside"):
        AlignmentArchive(path)
    _write(path)
    with h5py.File(path, "a") as f:  # offsets that do not end at the frame count
        del f["offsets"]
        f["offsets"] = np.array([0, 5, 8, 11])
    with pytest.raises(InputError, match="offsets end at 11"):
        AlignmentArchive(path)


def test_writer_refuses_unmarked_or_inconsistent_input(tmp_path):
    pdf, phone, tstate = _arrays(failed=("spk1-b",))
    with pytest.raises(ValueError, match="not listed as failed"):
        write_alignment_archive(tmp_path / "a.h5", UTTS, OFFSETS, pdf, phone, tstate, {}, ATTRS)
    with pytest.raises(ValueError, match="shape"):
        write_alignment_archive(tmp_path / "a.h5", UTTS, OFFSETS, pdf[:-1], phone, tstate, {"spk1-b": "x"}, ATTRS)
    assert not (tmp_path / "a.h5").exists()


def test_check_matches_names_the_first_difference(tmp_path):
    path = tmp_path / "ali.h5"
    _write(path, failed=())
    ali = AlignmentArchive(path)
    with pytest.raises(InputError, match="'spk1-b' here, 'spk1-x'"):
        ali.check_matches(["spk1-a", "spk1-x", "spk2-c"], OFFSETS)
    with pytest.raises(InputError, match="spk1-b' has 3 frames here but 4"):
        ali.check_matches(UTTS, np.array([0, 5, 9, 12]))


def test_all_utterances_failed_and_empty_archive(tmp_path):
    path = tmp_path / "ali.h5"
    _write(path, failed=tuple(UTTS))
    ali = AlignmentArchive(path)
    assert len(ali.failed) == 3 and not ali.frame_mask().any()
    empty = tmp_path / "empty.h5"
    z = np.zeros(0, dtype=np.int32)
    write_alignment_archive(empty, [], np.array([0]), z, z, z, {}, ATTRS)
    assert len(AlignmentArchive(empty)) == 0
