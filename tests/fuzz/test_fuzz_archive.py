"""Fuzzed HDF5 feature archives (bytes flipped, blocks zeroed, files truncated): opening and reading everything
either gives exactly the original content or raises our InputError naming the archive; never another
exception, a crash or a hang (HDF5 runs in an isolated worker), never different numbers, ids or attributes."""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_helpers import COUNTS, IsolatedWorker, assert_ours, fuzz_settings
from fuzz_targets import read_feature_archive
from hypothesis import given
from hypothesis import strategies as st

from asr.features.archive import ArchiveWriter, FeatureArchive


@pytest.fixture(scope="module")
def worker():
    w = IsolatedWorker(read_feature_archive, timeout=60)
    yield w
    w.close()


def _small_archive(source, path) -> None:
    """Four utterances of a real archive (50 frames each), with CMVN statistics and a skipped utterance: a
    small file, so that most mutated bytes land in HDF5 metadata, ids, offsets and attributes."""
    with FeatureArchive(source) as src:
        utts = src.utt_ids[:4]
        with ArchiveWriter(path, src.dim, {k: v for k, v in src.attrs.items() if k != "num_skipped"}) as w:
            for u in utts:
                w.append(u, src.read(u)[:50])
            stats = np.stack([next(iter(src.cmvn_stats().values()))])
            w.set_cmvn_stats(["spk"], stats, [0] * len(utts))
            w.set_skipped(["0_0_0_0_bad"])


def test_fuzz_feature_archive(yesno_recipe, tmp_path, worker):
    base = tmp_path / "base.h5"
    _small_archive(yesno_recipe.data / "test" / "fbank.h5", base)
    original = base.read_bytes()
    reference = worker.call(str(base))
    assert reference[0] == "ok", reference
    size = len(original)
    path = tmp_path / "fbank.h5"
    same = 0

    # anywhere, or in the first and last 8 KiB, where HDF5 keeps its metadata, the ids and the attributes
    offset = st.one_of(st.integers(0, size - 1), st.integers(0, 8191), st.integers(size - 8192, size - 1))

    @fuzz_settings(300, deadline_s=120)
    @given(
        mutations=st.lists(
            st.one_of(
                st.tuples(st.just("flip"), offset, st.integers(1, 255)),
                st.tuples(st.just("zero"), offset, st.integers(1, 64)),
                st.tuples(st.just("truncate"), offset),
            ),
            min_size=1,
            max_size=2,
        )
    )
    def check(mutations):
        nonlocal same
        COUNTS["feature archive"] += 1
        data = bytearray(original)
        for m in mutations:
            if m[0] == "flip" and data:
                data[m[1] % len(data)] ^= m[2]
            elif m[0] == "zero" and data:
                data[m[1] : m[1] + m[2]] = bytes(len(data[m[1] : m[1] + m[2]]))
            elif m[0] == "truncate":
                del data[m[1] :]
        path.write_bytes(bytes(data))
        outcome = worker.call(str(path))
        assert_ours(outcome, [path], f"FeatureArchive after {mutations}")
        if outcome[0] == "ok":  # accepted: then it must be exactly the original content
            assert outcome[1] == reference[1], f"silently different content after {mutations}"
            same += 1

    check()
    print(f"[fuzz] feature archive: {COUNTS['feature archive']} inputs ({same} read back unchanged)")
