"""Module-level fuzz targets run in an :class:`~fuzz_helpers.IsolatedWorker` (C libraries underneath: libsndfile,
HDF5, kaldilm/OpenFst). Each returns a small picklable summary of what it read."""

from __future__ import annotations

import hashlib

import numpy as np


def read_wav(path: str, sample_rate: int | None) -> dict:
    """:func:`asr.data.audio.read_audio` of a file, then 40 fbank features of it at 8 kHz; a summary."""
    from asr.data.audio import read_audio
    from asr.features.extract import KnfExtractor
    from asr.features.options import FeatureOptions

    samples, rate = read_audio(path, sample_rate, where=path)
    summary = {
        "rate": int(rate),
        "n": int(samples.size),
        "dtype": str(samples.dtype),
        "ndim": samples.ndim,
        "finite": bool(np.isfinite(samples).all()),
        "max_abs": float(np.abs(samples).max()) if samples.size else 0.0,
    }
    if sample_rate is not None:
        feats = KnfExtractor(FeatureOptions(type="fbank", sample_rate=sample_rate)).compute(samples)
        summary["feats"] = tuple(feats.shape)
        summary["feats_finite"] = bool(np.isfinite(feats).all())
    return summary


def read_feature_archive(path: str) -> str:
    """Open a feature archive and read everything in it; a digest of the content."""
    from asr.features.archive import FeatureArchive

    digest = hashlib.sha256()
    with FeatureArchive(path) as archive:
        digest.update("\n".join(archive.utt_ids).encode())
        digest.update(np.ascontiguousarray(archive.offsets).tobytes())
        digest.update(np.ascontiguousarray(archive.read_all()).tobytes())
        for key in sorted(archive.attrs):
            digest.update(f"{key}={archive.attrs[key]!r}".encode())
        stats = archive.cmvn_stats()
        if stats is not None:
            for key in sorted(stats):
                digest.update(key.encode() + np.ascontiguousarray(stats[key]).tobytes())
            digest.update(np.ascontiguousarray(archive.cmvn_utt_group()).tobytes())
        digest.update("\n".join(archive.skipped_utt_ids).encode())
        for utt in archive.utt_ids[:3]:
            digest.update(archive.read(utt).tobytes())
    return digest.hexdigest()


def arpa_to_g(arpa: str, words: str) -> int:
    """:func:`asr.lang.grammar.arpa_to_g`; the number of states of G."""
    from asr.lang.grammar import arpa_to_g as build

    return int(build(arpa, words).num_states)
