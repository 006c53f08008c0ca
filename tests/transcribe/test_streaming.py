"""Streaming: every incremental stage equals its offline counterpart, and streamed words equal offline words."""

from __future__ import annotations

import numpy as np
import pytest

from asr.data.audio import read_audio, resample
from asr.decode.streaming import IncrementalScorer, model_context
from asr.features.cmvn import apply_cmvn, cmvn_stats
from asr.features.extract import KnfExtractor
from asr.features.online import CmvnPolicy, OnlineCmvn, OnlineFeatures, StreamingResampler, normalize
from asr.features.options import FeatureOptions
from asr.transcribe import Recognizer


def _chunks(x: np.ndarray, rng: np.random.Generator, low: int, high: int):
    start = 0
    while start < len(x):
        size = int(rng.integers(low, high))
        yield x[start : start + size]
        start += size


@pytest.mark.parametrize("rates", [(16000, 8000), (8000, 16000), (44100, 16000)])
def test_streaming_resampler_matches_the_offline_resampler(rates):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(rates[0] + 321) * 0.1).astype(np.float32)
    resampler = StreamingResampler(*rates)
    out = [resampler.accept(c) for c in _chunks(x, rng, 1, 2000)]
    out.append(resampler.finish())
    streamed = np.concatenate(out)
    offline = resample(x, *rates)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-6)
    same = StreamingResampler(8000, 8000)
    assert np.array_equal(np.concatenate([same.accept(x[:100]), same.accept(x[100:]), same.finish()]), x)


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_online_features_equal_the_archive_extractor(yesno_root, kind):
    samples, rate = read_audio(str(sorted((yesno_root / "waves_yesno").glob("*.wav"))[0]))
    options = FeatureOptions(type=kind, sample_rate=rate)
    online = OnlineFeatures(options)
    rng = np.random.default_rng(2)
    frames = [online.accept(c) for c in _chunks(samples, rng, 1, 1500)]
    frames.append(online.finish())
    assert np.array_equal(np.concatenate(frames), KnfExtractor(options).compute(samples))


def test_online_cmvn_is_causal_kaldi_cmvn_in_any_chunking():
    rng = np.random.default_rng(3)
    feats = (rng.standard_normal((1400, 4)) + [3.0, -2.0, 0.5, 8.0]).astype(np.float32)
    global_stats = cmvn_stats(rng.standard_normal((3000, 4)) * 2 + 1)
    for norm_vars in (False, True):
        policy = CmvnPolicy("online", norm_vars)
        whole = normalize(feats, policy, global_stats)
        cmvn = OnlineCmvn(policy, global_stats)
        chunked = np.concatenate([cmvn.accept(c) for c in _chunks(feats, rng, 1, 90)])
        assert np.array_equal(whole, chunked)
    # Kaldi's rule by hand: window [t - 599, t]; while it holds c < 600 frames, min(600 - c, 200) frames of
    # global statistics are added
    whole = normalize(feats, CmvnPolicy("online"), global_stats)
    g_mean, g_count = global_stats[0, :-1] / global_stats[0, -1], global_stats[0, -1]
    for t in (0, 10, 450, 599, 1000):
        window = feats[max(0, t - 599) : t + 1].astype(np.float64)
        extra = min(600 - len(window), 200)
        mean = (window.sum(0) + extra * g_mean) / (len(window) + extra)
        np.testing.assert_allclose(whole[t], feats[t] - mean, atol=1e-5)
    assert g_count == 3000
    np.testing.assert_array_equal(normalize(feats, CmvnPolicy("global"), global_stats), apply_cmvn(feats, global_stats))
    np.testing.assert_array_equal(normalize(feats, CmvnPolicy("none")), feats)


def test_incremental_scores_equal_whole_utterance_scores(yesno_bundles):
    for bundle in (yesno_bundles.gmm, yesno_bundles.dnn):
        recognizer = Recognizer(bundle, word_times=False)
        model = recognizer.model
        samples, _ = read_audio(yesno_bundles.test_wavs(1)[0][1])
        feats = normalize(recognizer.features(samples), recognizer.policy, recognizer.global_cmvn_stats)
        whole = model.log_likelihoods(feats)
        left, right = model_context(model)
        scorer = IncrementalScorer(model, left, right)
        rng = np.random.default_rng(4)
        parts = [scorer.accept(c) for c in _chunks(feats, rng, 1, 17)]
        parts.append(scorer.accept(feats[:0], final=True))
        streamed = np.concatenate(parts)
        assert streamed.shape == whole.shape
        np.testing.assert_allclose(streamed, whole, atol=1e-4, rtol=1e-5)
        assert scorer._buffer.shape[0] <= left + right + 17  # only the context is kept


@pytest.mark.slow
def test_streamed_words_equal_offline_words(yesno_bundles, tmp_path):
    """Several files, both models, two chunk sizes, and a 16 kHz file resampled while streaming."""
    import soundfile

    wavs = yesno_bundles.test_wavs(6)
    for bundle in (yesno_bundles.gmm, yesno_bundles.dnn):
        for policy in ("online", "global"):
            recognizer = Recognizer(bundle, cmvn=policy)
            for i, (utt, wav) in enumerate(wavs):
                samples, rate = read_audio(wav)
                offline = recognizer.transcribe_samples(samples, rate, utt)
                chunk_ms = 100 if i % 2 else 37
                streamed = recognizer.transcribe_stream(samples, rate, utt, chunk_ms=chunk_ms)
                assert streamed.words == offline.words and streamed.words, (bundle.name, policy, utt)
                assert streamed.num_frames == offline.num_frames
                assert streamed.reached_final and offline.reached_final
                assert streamed.acoustic_cost == pytest.approx(offline.acoustic_cost, rel=1e-4)
                assert [s.start_frame for s in streamed.segments] == [s.start_frame for s in offline.segments]
    recognizer = Recognizer(yesno_bundles.dnn)
    samples, _ = read_audio(wavs[0][1])
    up = tmp_path / "16k.wav"
    soundfile.write(up, resample(samples, 8000, 16000), 16000, subtype="FLOAT")
    samples16, rate16 = read_audio(str(up))
    offline = recognizer.transcribe_file(up)
    assert recognizer.transcribe_stream(samples16, rate16, str(up), chunk_ms=100).words == offline.words


def test_partial_results_grow_as_audio_arrives(yesno_bundles):
    recognizer = Recognizer(yesno_bundles.gmm)
    utt, wav = yesno_bundles.test_wavs(1)[0]
    samples, rate = read_audio(wav)
    seen: list[list[str]] = []
    final = recognizer.transcribe_stream(samples, rate, utt, 100, on_partial=lambda name, words: seen.append(words))
    assert seen and len(seen[0]) <= len(seen[-1]) and seen[-1] == final.words
    session = recognizer.stream(utt, rate)
    session.accept_audio(samples[: rate // 2])
    assert session.num_frames_decoded == (rate // 2 - 200) // 80 + 1 - 4  # frames minus the deltas' 4
    session.finish()
    with pytest.raises(RuntimeError):
        session.accept_audio(samples[:10])
