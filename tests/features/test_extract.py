"""Extractors: kaldi-native-fbank and torchaudio give the same Kaldi features; options behave."""

from __future__ import annotations

import dataclasses

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soundfile

from asr.errors import ConfigError
from asr.features.extract import KnfExtractor, TorchaudioExtractor, make_extractor
from asr.features.options import FeatureOptions


@pytest.fixture(scope="module")
def an4_waves(an4_root):
    files = sorted((an4_root / "wav" / "an4_clstk").glob("*/*.wav"))[::120]  # 8 files, several speakers
    return [soundfile.read(str(f), dtype="float32")[0] for f in files]


@pytest.fixture(scope="module")
def yesno_wave(yesno_root):
    samples, rate = soundfile.read(str(sorted((yesno_root / "waves_yesno").glob("*.wav"))[0]), dtype="float32")
    assert rate == 8000
    return samples


def test_fbank_shape_and_frame_count(an4_waves):
    options = FeatureOptions()
    assert (options.dim, options.window_size, options.window_shift) == (40, 400, 160)
    extractor = KnfExtractor(options)
    for samples in an4_waves:
        feats = extractor.compute(samples)
        assert feats.dtype == np.float32
        assert feats.shape == (1 + (len(samples) - 400) // 160, 40) == (options.num_frames(len(samples)), 40)
        assert np.isfinite(feats).all()


def test_knf_matches_a_direct_kaldi_native_fbank_call(an4_waves):
    """Our options are Kaldi's defaults except 40 bins and dither 0; int16 scale as Kaldi reads wavs."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 40
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(16000, an4_waves[0] * 32768)
    computer.input_finished()
    expected = np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])
    np.testing.assert_array_equal(KnfExtractor(FeatureOptions()).compute(an4_waves[0]), expected)


def test_dither_zero_is_deterministic_and_dither_changes_numbers(an4_waves):
    a = KnfExtractor(FeatureOptions()).compute(an4_waves[1])
    np.testing.assert_array_equal(a, KnfExtractor(FeatureOptions()).compute(an4_waves[1]))
    dithered = KnfExtractor(FeatureOptions(dither=1.0)).compute(an4_waves[1])
    assert not np.array_equal(a, dithered)


@pytest.mark.parametrize("snip_edges", [True, False])
def test_torchaudio_fbank_matches_knf_within_1e3(an4_waves, snip_edges):
    options = FeatureOptions(snip_edges=snip_edges)
    reference = [KnfExtractor(options).compute(w) for w in an4_waves]
    batched = TorchaudioExtractor(options).compute_batch(an4_waves)
    for ref, got in zip(reference, batched):
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-3


def test_torchaudio_batch_equals_one_call_per_utterance(an4_waves):
    """Stacking the frames of many utterances gives exactly torchaudio's own per-utterance result."""
    extractor = TorchaudioExtractor(FeatureOptions())
    batched = extractor.compute_batch(an4_waves[:4])
    for samples, got in zip(an4_waves[:4], batched):
        np.testing.assert_array_equal(got, extractor.compute_tensor(samples).numpy())


@pytest.mark.parametrize("use_energy", [False, True])
def test_torchaudio_mfcc_matches_knf(an4_waves, use_energy):
    """MFCC: 13 cepstra, C0 (default, as Kaldi recipes' mfcc.conf) or log energy. The lifter scales the last
    cepstra up to ~12x, so float32 differences of fbank (< 1e-3) grow to ~1e-3 there; values span about +-80."""
    assert FeatureOptions(type="mfcc").use_energy is False
    options = FeatureOptions(type="mfcc", use_energy=use_energy)
    assert (options.dim, options.num_bins, options.use_energy) == (13, 23, use_energy)
    reference = [KnfExtractor(options).compute(w) for w in an4_waves]
    batched = TorchaudioExtractor(options).compute_batch(an4_waves)
    for ref, got in zip(reference, batched):
        assert got.shape == ref.shape == (ref.shape[0], 13)
        assert np.abs(got - ref).max() < 3e-3


def test_8khz_yesno_both_backends(yesno_wave):
    options = FeatureOptions(sample_rate=8000)
    assert (options.window_size, options.window_shift) == (200, 80)
    a = KnfExtractor(options).compute(yesno_wave)
    b = TorchaudioExtractor(options).compute_batch([yesno_wave])[0]
    assert a.shape == (options.num_frames(len(yesno_wave)), 40)
    assert np.abs(a - b).max() < 1e-3


def test_short_audio_gives_no_frames_in_both_backends(an4_waves):
    options = FeatureOptions()
    short = an4_waves[0][:399]
    assert KnfExtractor(options).compute(short).shape == (0, 40)
    out = TorchaudioExtractor(options).compute_batch([short, an4_waves[0][:400]])
    assert [o.shape for o in out] == [(0, 40), (1, 40)]


def test_options_json_round_trip_and_defaults():
    options = FeatureOptions(type="mfcc", sample_rate=8000, num_ceps=12)
    assert FeatureOptions.from_json(options.to_json()) == options
    fbank_with_energy = FeatureOptions(use_energy=True)
    assert fbank_with_energy.dim == 41
    assert KnfExtractor(fbank_with_energy).compute(np.zeros(1000, np.float32) + 0.01).shape == (4, 41)
    assert dataclasses.asdict(FeatureOptions())["num_bins"] == 40


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "plp"},
        {"window_type": "kaiser"},
        {"sample_rate": 0},
        {"high_freq": 9000},
        {"low_freq": 8000},
        {"type": "mfcc", "num_ceps": 30},
        {"dither": -1.0},
    ],
)
def test_bad_options_raise_config_error(bad):
    with pytest.raises(ConfigError):
        FeatureOptions(**bad)


def test_unknown_option_key_and_backend_are_refused():
    with pytest.raises(ConfigError, match="unknown feature option"):
        FeatureOptions.from_dict({"type": "fbank", "num_filters": 40})
    with pytest.raises(ConfigError):
        make_extractor(FeatureOptions(), backend="librosa")
    with pytest.raises(ConfigError, match="CPU only"):
        make_extractor(FeatureOptions(), backend="knf", device="cuda")
