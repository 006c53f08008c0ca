"""Kaldi ark/scp export and import: bit-exact round trips, ranges, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.kaldi_ark import export_kaldi, import_kaldi, import_kaldi_io, main, read_kaldi_matrices


def test_round_trip_through_ark_and_scp_is_bit_exact(tmp_path, an4_fbank_archive):
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    assert export_kaldi(an4_fbank_archive, ark, scp) == 6
    from_ark = import_kaldi(f"ark:{ark}", tmp_path / "from_ark.h5", feature_type="fbank", cmvn="speaker")
    from_scp = import_kaldi(str(scp), tmp_path / "from_scp.h5")
    with FeatureArchive(an4_fbank_archive) as original:
        for path in (from_ark, from_scp):
            with FeatureArchive(path) as copy:
                assert copy.utt_ids == original.utt_ids
                np.testing.assert_array_equal(copy.offsets, original.offsets)
                all_copy, all_original = copy.read_all(), original.read_all()
                assert all_copy.dtype == np.float32 and all_copy.tobytes() == all_original.tobytes()
                assert copy.options is None
        with FeatureArchive(from_ark) as copy:
            assert copy.feature_type == "fbank" and copy.cmvn == "speaker"


def test_ark_is_readable_byimport_kaldi_io_and_scp_offsets_point_at_matrices(tmp_path, an4_fbank_archive):
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    export_kaldi(an4_fbank_archive, ark, scp)
    kaldi_io = import_kaldi_io()
    with FeatureArchive(an4_fbank_archive) as archive:
        for key, matrix in kaldi_io.read_mat_ark(str(ark)):
            np.testing.assert_array_equal(matrix, archive.read(key))
        for line in scp.read_text().splitlines():
            key, rxfile = line.split()
            assert rxfile.startswith(str(ark) + ":")
            np.testing.assert_array_equal(kaldi_io.read_mat(rxfile), archive.read(key))


def test_cmvn_ark_export(tmp_path, an4_fbank_archive):
    export_kaldi(an4_fbank_archive, tmp_path / "f.ark", cmvn_ark_path=tmp_path / "cmvn.ark")
    stats = dict(import_kaldi_io().read_mat_ark(str(tmp_path / "cmvn.ark")))
    with FeatureArchive(an4_fbank_archive) as archive:
        expected = archive.cmvn_stats()
    assert list(stats) == list(expected)
    for key in stats:
        assert stats[key].dtype == np.float64 and stats[key].shape == (2, 41)
        np.testing.assert_array_equal(stats[key], expected[key])


def test_scp_ranges_are_inclusive_like_kaldi(tmp_path, an4_fbank_archive):
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    export_kaldi(an4_fbank_archive, ark, scp)
    key, rxfile = scp.read_text().splitlines()[0].split()
    ranged = tmp_path / "ranged.scp"
    ranged.write_text(f"{key} {rxfile}[2:11]\n{key}-cols {rxfile}[0:4,3:5]\n")
    matrices = dict(read_kaldi_matrices(str(ranged)))
    with FeatureArchive(an4_fbank_archive) as archive:
        full = archive.read(key)
    np.testing.assert_array_equal(matrices[key], full[2:12])
    np.testing.assert_array_equal(matrices[f"{key}-cols"], full[0:5, 3:6])


def test_truncated_ark_is_an_input_error(tmp_path, an4_fbank_archive):
    ark = tmp_path / "f.ark"
    export_kaldi(an4_fbank_archive, ark)
    data = ark.read_bytes()
    ark.write_bytes(data[: len(data) - 1000])
    with pytest.raises(InputError, match="cannot read the matrix") as info:
        import_kaldi(f"ark:{ark}", tmp_path / "out.h5")
    assert info.value.path == str(ark)
    assert not (tmp_path / "out.h5").exists()
    ark.write_bytes(data[:10])  # ends inside the first key
    with pytest.raises(InputError):
        import_kaldi(f"ark:{ark}", tmp_path / "out.h5")


def test_scp_errors_name_the_line(tmp_path, an4_fbank_archive):
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    export_kaldi(an4_fbank_archive, ark, scp)
    lines = scp.read_text().splitlines()
    lines[2] = lines[2].split()[0] + f" {tmp_path / 'missing.ark'}:17"
    bad = tmp_path / "bad.scp"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="cannot read matrix") as info:
        import_kaldi(f"scp:{bad}", tmp_path / "out.h5")
    assert (info.value.path, info.value.line) == (str(bad), 3)
    piped = tmp_path / "piped.scp"
    piped.write_text(f"{lines[0].split()[0]} cat {ark} |\n")
    with pytest.raises(InputError, match="refusing") as info:
        import_kaldi(str(piped), tmp_path / "out.h5", allow_pipes=False)
    assert info.value.line == 1
    with pytest.raises(InputError, match="ark:PATH"):
        import_kaldi(str(tmp_path / "feats.txt"), tmp_path / "out.h5")


def test_cli(tmp_path, an4_fbank_archive):
    ark, scp, out = tmp_path / "f.ark", tmp_path / "f.scp", tmp_path / "back.h5"
    assert main(["export", str(an4_fbank_archive), str(ark), "--scp", str(scp)]) == 0
    assert main(["import", f"scp:{scp}", str(out), "--type", "fbank"]) == 0
    with FeatureArchive(out) as back, FeatureArchive(an4_fbank_archive) as original:
        assert back.read_all().tobytes() == original.read_all().tobytes()
    assert main(["import", f"ark:{tmp_path / 'none.ark'}", str(tmp_path / "x.h5")]) == 1
