"""The toolkit's default corpus: connected digits and short commands, synthesized offline with espeak-ng.

``prepare_synth(out)`` writes three Kaldi data directories, ``out/train``, ``out/dev`` and ``out/test``,
and the audio under ``out/wav/<speaker>/<utt>.wav`` (16-bit PCM, ``sample_rate`` Hz). Nothing is
downloaded; the same parameters give byte-identical files on any machine with the same library versions
and for any ``num_jobs``.

Speakers (:func:`plan_voices`): an espeak-ng English accent (``en-us``, ``en-gb``, ``en-gb-scotland``,
``en-gb-x-rp``, ``en-029``, ``en-gb-x-gbclan``, ``en-gb-x-gbcwmd``, ``en-us-nyc``) x a voice variant
(``m1``..``m8``, ``f1``..``f5``, ``linda``, ``steph``, ``belinda``) x a speaking rate, base pitch and pitch
range. 32 voices by default: 24 train, 4 dev, 4 test. Two male and two female variants are held out of
training and used only by dev and test speakers, so that test speakers are unseen voices (and every
speaker is a distinct (accent, variant) pair); each split balances accents and genders.

Utterances: 80 % connected digit strings of 1 to 7 words from ZERO OH ONE .. NINE, 20 % commands of 1
to 3 words from :data:`COMMAND_WORDS`; upper-case transcripts, every word in CMUdict. Each utterance has
its own prosody (speaker rate +-10 %, per-word rate jitter with SSML ``<prosody>``, occasional pauses
between words with ``<break>``), espeak-ng's silence trimmed and replaced by 100-500 ms of leading and
trailing silence, a random first-order spectral tilt (channel), additive noise at an SNR drawn uniformly
from ``snr_db`` (a random mix of white, pink and brown noise) and a random peak level between -20 and -3
dBFS. It is resampled from espeak-ng's 22050 Hz with :func:`asr.data.audio.resample`.

Sizes: utterance ``i`` of a split is a pure function of ``(seed, split, i)``; a split holds the shortest
prefix of that sequence reaching its target duration (train: ``train_minutes``; dev and test:
``train_minutes / 8`` each), so the amounts are exact to within one utterance. Speakers take turns, so
each speaker of a split gets the same number of utterances (+-1).

Idempotent: ``out/.done`` records the parameters; a second call with the same ones returns at once, a
call with different ones regenerates (and says so).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from asr.atomic import atomic_path, atomic_write
from asr.data.datadir import DataDir, write_data_dir
from asr.data.espeak import Voice, synthesize
from asr.errors import ConfigError

log = logging.getLogger(__name__)

#: Bump when the generator changes in a way that changes its output (forces regeneration).
GENERATOR_VERSION = 1

DIGIT_WORDS = ("ZERO", "OH", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
COMMAND_WORDS = (
    "YES", "NO", "STOP", "GO", "START", "REPEAT", "ENTER", "ERASE", "HELP", "CANCEL", "NEXT",
    "PREVIOUS", "UP", "DOWN", "LEFT", "RIGHT", "BACK", "FORWARD", "OPEN", "MENU", "SELECT", "CLEAR",
)  # fmt: skip
#: Every word a transcript may hold (sorted).
VOCABULARY = tuple(sorted(set(DIGIT_WORDS) | set(COMMAND_WORDS)))

#: English accents the speakers are drawn from: label (BCP 47 code) -> espeak-ng voice name. (espeak-ng
#: selects British English as "en": ``espeak_SetVoiceByName("en-gb")`` fails.)
ACCENT_VOICES = {
    "en-us": "en-us",
    "en-gb": "en",
    "en-gb-scotland": "en-gb-scotland",
    "en-gb-x-rp": "en-gb-x-rp",
    "en-029": "en-029",
    "en-gb-x-gbclan": "en-gb-x-gbclan",
    "en-gb-x-gbcwmd": "en-gb-x-gbcwmd",
    "en-us-nyc": "en-us-nyc",
}
ACCENTS = tuple(ACCENT_VOICES)
#: Voice variants (files in espeak-ng-data/voices/!v) by gender: natural-sounding ones only.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "linda", "steph", "belinda")
#: Variants per gender kept out of training (used by dev and test speakers only).
HELD_OUT_PER_GENDER = 2

SPLITS = ("train", "dev", "test")
DIGIT_FRACTION = 0.8
MAX_DIGITS = 7
COMMAND_LENGTH_PROBS = (0.5, 0.3, 0.2)  # 1, 2, 3 words
EDGE_SILENCE_S = (0.1, 0.5)
PEAK_DBFS = (-20.0, -3.0)
_SPLIT_CODE = {"train": 0, "dev": 1, "test": 2}
_EVAL_FRACTION = 1 / 8  # dev and test duration (each) relative to train; also their share of speakers


@dataclass(frozen=True)
class SpeakerVoice:
    """A planned speaker: ``speaker`` id (``sp07-en-gb-scotland-f2``), ``split``, ``gender`` (m|f), ``voice``."""

    speaker: str
    split: str
    gender: str
    voice: Voice


@dataclass(frozen=True)
class UtterancePlan:
    """What one utterance will be: id, speaker, transcript, espeak-ng SSML input, voice, seeds and levels."""

    utt_id: str
    speaker: str
    text: str
    ssml: str
    voice: Voice
    seed: int
    snr_db: float
    lead_s: float
    trail_s: float
    peak_dbfs: float
    tilt: float
    noise_mix: tuple[float, float, float]  # white, pink, brown weights


def _eval_speaker_count(num_voices: int) -> int:
    return max(1, round(num_voices * _EVAL_FRACTION))


def _pick_pairs(
    rng: np.random.Generator,
    count: int,
    variants_by_gender: dict[str, list[str]],
    taken: set[tuple[str, str]],
    accent_use: dict[str, int],
    variant_use: dict[str, int],
) -> list[tuple[str, str, str]]:
    """Choose ``count`` (gender, accent, variant) triples, genders alternating (random start), each time the
    pair whose accent and variant have been used least (ties: random), never a pair already in ``taken``.
    ``taken``, ``accent_use`` and ``variant_use`` are updated in place (share them to balance across splits).
    """
    genders = ["m", "f"] if rng.random() < 0.5 else ["f", "m"]
    out = []
    for k in range(count):
        gender = genders[k % 2]
        candidates = [(a, v) for v in variants_by_gender[gender] for a in accent_use if (a, v) not in taken]
        if not candidates:
            raise ConfigError(f"not enough distinct (accent, variant) pairs for {count} speakers")
        order = rng.permutation(len(candidates))
        shuffled = [candidates[i] for i in order]
        accent, variant = min(shuffled, key=lambda pair: accent_use[pair[0]] + variant_use[pair[1]])
        taken.add((accent, variant))
        accent_use[accent] += 1
        variant_use[variant] += 1
        out.append((gender, accent, variant))
    return out


def plan_voices(seed: int = 0, num_voices: int = 32) -> list[SpeakerVoice]:
    """The speakers of the corpus, deterministic from ``seed``: train first, then dev, then test.

    ``num_voices // 8`` (at least 1) go to dev and as many to test, the rest to train. Every speaker is a
    distinct (accent, variant) pair; dev and test speakers use variants held out of training. Each gets
    a rate of 140-200 words/min, a base pitch of 30-70 and a pitch range of 30-80 (espeak-ng units).

    Raises:
        ConfigError: fewer than 3 voices, or more than the accents and variants can make distinct.
    """
    if num_voices < 3:
        raise ConfigError(f"need at least 3 voices (train, dev, test), got {num_voices}")
    rng = np.random.default_rng([seed, 7919])
    male = [MALE_VARIANTS[i] for i in rng.permutation(len(MALE_VARIANTS))]
    female = [FEMALE_VARIANTS[i] for i in rng.permutation(len(FEMALE_VARIANTS))]
    accents = [ACCENTS[i] for i in rng.permutation(len(ACCENTS))]
    held = {"m": male[:HELD_OUT_PER_GENDER], "f": female[:HELD_OUT_PER_GENDER]}
    kept = {"m": male[HELD_OUT_PER_GENDER:], "f": female[HELD_OUT_PER_GENDER:]}
    num_eval = _eval_speaker_count(num_voices)
    num_train = num_voices - 2 * num_eval
    taken: set[tuple[str, str]] = set()
    train_use = ({a: 0 for a in accents}, {v: 0 for vs in kept.values() for v in vs})
    eval_use = ({a: 0 for a in accents}, {v: 0 for vs in held.values() for v in vs})  # shared: dev and test differ
    triples = {
        "train": _pick_pairs(rng, num_train, kept, taken, *train_use),
        "dev": _pick_pairs(rng, num_eval, held, taken, *eval_use),
        "test": _pick_pairs(rng, num_eval, held, taken, *eval_use),
    }
    speakers = []
    for split in SPLITS:
        for gender, accent, variant in triples[split]:
            voice = Voice(
                language=ACCENT_VOICES[accent],
                variant=variant,
                rate=int(rng.integers(140, 201)),
                pitch=int(rng.integers(30, 71)),
                pitch_range=int(rng.integers(30, 81)),
            )
            speaker = f"sp{len(speakers):02d}-{accent}-{variant}"
            speakers.append(SpeakerVoice(speaker, split, gender, voice))
    return speakers


def _random_words(rng: np.random.Generator) -> list[str]:
    if rng.random() < DIGIT_FRACTION:
        count = int(rng.integers(1, MAX_DIGITS + 1))
        return [DIGIT_WORDS[i] for i in rng.integers(0, len(DIGIT_WORDS), size=count)]
    count = 1 + int(rng.choice(len(COMMAND_LENGTH_PROBS), p=COMMAND_LENGTH_PROBS))
    return [COMMAND_WORDS[i] for i in rng.choice(len(COMMAND_WORDS), size=count, replace=False)]


def _ssml(words: Sequence[str], rng: np.random.Generator) -> str:
    """espeak-ng input for ``words``: per-word rate jitter (half the words, 85-115 %) and, between words, a
    pause of 40-250 ms one time in eight."""
    parts = []
    for k, word in enumerate(words):
        if k > 0 and rng.random() < 0.125:
            parts.append(f'<break time="{int(rng.integers(40, 251))}ms"/>')
        if rng.random() < 0.5:
            parts.append(f'<prosody rate="{int(rng.integers(85, 116))}%">{word.lower()}</prosody>')
        else:
            parts.append(word.lower())
    return "<speak>" + " ".join(parts) + "</speak>"


def plan_utterance(
    speakers: Sequence[SpeakerVoice], split: str, index: int, *, seed: int, snr_db: tuple[float, float]
) -> UtterancePlan:
    """Utterance ``index`` of ``split``: a pure function of its arguments (``speakers`` are that split's,
    in turn: utterance ``i`` belongs to speaker ``i % len(speakers)``)."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index])
    spk = speakers[index % len(speakers)]
    words = _random_words(rng)
    ssml = _ssml(words, rng)
    rate = int(round(spk.voice.rate * rng.uniform(0.9, 1.1)))
    voice = dataclasses.replace(spk.voice, rate=min(max(rate, 80), 450))
    white, pink, brown = rng.dirichlet([1.0, 1.0, 1.0])
    return UtterancePlan(
        utt_id=f"{spk.speaker}-{index:05d}",
        speaker=spk.speaker,
        text=" ".join(words),
        ssml=ssml,
        voice=voice,
        seed=int(rng.integers(0, 2**31 - 1)),
        snr_db=float(rng.uniform(*snr_db)),
        lead_s=float(rng.uniform(*EDGE_SILENCE_S)),
        trail_s=float(rng.uniform(*EDGE_SILENCE_S)),
        peak_dbfs=float(rng.uniform(*PEAK_DBFS)),
        tilt=float(rng.uniform(-0.4, 0.4)),
        noise_mix=(float(white), float(pink), float(brown)),
    )


def _coloured_noise(rng: np.random.Generator, n: int, sample_rate: int, mix: tuple[float, float, float]) -> np.ndarray:
    """Unit-RMS noise: a weighted sum of unit-RMS white, pink (1/f power) and brown (1/f^2 power, above
    20 Hz) noise, shaped in the frequency domain."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    freqs[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    brown_spectrum = spectrum / freqs
    brown_spectrum[freqs < 20.0] = 0.0
    brown = np.fft.irfft(brown_spectrum, n)
    total = np.zeros(n)
    for weight, part in zip(mix, (white, pink, brown)):
        rms = np.sqrt(np.mean(part**2))
        if rms > 0:
            total += weight * part / rms
    rms = np.sqrt(np.mean(total**2))
    return total / rms if rms > 0 else total


def render_utterance(plan: UtterancePlan, sample_rate: int = 16000) -> np.ndarray:
    """Synthesize and degrade one planned utterance; returns float32 samples at ``sample_rate``.

    Steps: espeak-ng (SSML) -> trim its leading/trailing digital silence -> resample -> spectral tilt
    ``y[n] = x[n] + tilt * x[n-1]`` -> pad with silence -> add noise at ``plan.snr_db`` relative to the
    speech's RMS -> scale to ``plan.peak_dbfs``.
    """
    from asr.data.audio import resample

    speech, rate = synthesize(plan.ssml, plan.voice, ssml=True, seed=plan.seed)
    active = np.flatnonzero(np.abs(speech) > 1e-4)
    if active.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {plan.utt_id} ({plan.ssml!r}, {plan.voice})")
    speech = speech[active[0] : active[-1] + 1]
    # Resample a zero-padded copy whose length is a multiple of 1/4 s, then cut: the result is the same,
    # but conv1d sees a few dozen input shapes instead of one per utterance (oneDNN caches a primitive per
    # shape, about 1 MB each: measured +0.5 MB RSS per utterance without this).
    num_out = math.ceil(len(speech) * sample_rate / rate)
    bucket = rate // 4
    padded = np.concatenate([speech, np.zeros(-len(speech) % bucket, dtype=speech.dtype)])
    speech = resample(padded, rate, sample_rate)[:num_out].astype(np.float64)
    speech[1:] += plan.tilt * speech[:-1]
    rng = np.random.default_rng([plan.seed, 1])
    lead = int(round(plan.lead_s * sample_rate))
    trail = int(round(plan.trail_s * sample_rate))
    signal = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    speech_rms = np.sqrt(np.mean(speech**2))
    noise = _coloured_noise(rng, len(signal), sample_rate, plan.noise_mix)
    signal += noise * speech_rms / 10 ** (plan.snr_db / 20)
    signal *= 10 ** (plan.peak_dbfs / 20) / np.max(np.abs(signal))
    return signal.astype(np.float32)


def _render_and_write(task: tuple[UtterancePlan, int, str]) -> float:
    """Worker: render one utterance, write it (16-bit PCM, atomically), return its duration in seconds."""
    plan, sample_rate, path = task
    samples = render_utterance(plan, sample_rate)
    with atomic_path(path) as tmp:
        soundfile.write(tmp, samples, sample_rate, subtype="PCM_16", format="WAV")
    return len(samples) / sample_rate


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _params(train_minutes: float, seed: int, snr_db: tuple[float, float], sample_rate: int) -> dict:
    from asr.data.espeak import version

    return {
        "generator_version": GENERATOR_VERSION,
        "espeak_ng": version(),
        "train_minutes": float(train_minutes),
        "seed": int(seed),
        "snr_db": [float(snr_db[0]), float(snr_db[1])],
        "sample_rate": int(sample_rate),
    }


def _is_done(out: Path, params: dict) -> bool:
    done = out / ".done"
    if not done.is_file():
        return False
    try:
        old = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or old.get("params") != params:
        log.info("%s holds a synth corpus made with other parameters (%s); regenerating", out, old)
        return False
    if not all((out / split / "wav.scp").is_file() for split in SPLITS):
        log.info("%s/.done exists but a data dir is missing; regenerating", out)
        return False
    return True


def prepare_synth(
    out: str | os.PathLike,
    *,
    train_minutes: float = 40.0,
    seed: int = 0,
    snr_db: tuple[float, float] = (10.0, 30.0),
    sample_rate: int = 16000,
    num_jobs: int | None = None,
    num_voices: int = 32,
) -> dict[str, Path]:
    """Make (or find already made) the synthetic corpus under ``out``.

    Args:
        out: output folder; gets ``train/``, ``dev/``, ``test/`` (Kaldi data dirs with ``wav.scp``,
            ``text``, ``utt2spk``, ``spk2utt``, ``spk2gender``, ``utt2dur``), ``wav/`` and ``.done``.
        train_minutes: training audio to make; dev and test get 1/8 of it each.
        seed: everything (voices, texts, prosody, noise) follows from it.
        snr_db: (lowest, highest) noise SNR in dB; each utterance draws one uniformly.
        sample_rate: output rate in Hz.
        num_jobs: synthesis processes (default ``os.cpu_count()``); the output does not depend on it.
        num_voices: speakers in all (>= 3); 32 gives 24 train, 4 dev, 4 test.

    Returns:
        ``{"train": out/train, "dev": out/dev, "test": out/test}``.

    Raises:
        ConfigError: a parameter out of range.
    """
    out = Path(out)
    if not train_minutes > 0:
        raise ConfigError(f"train_minutes must be positive, got {train_minutes}")
    low, high = float(snr_db[0]), float(snr_db[1])
    if not low <= high:
        raise ConfigError(f"snr_db must be (low, high) with low <= high, got {snr_db}")
    if sample_rate < 8000:
        raise ConfigError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    num_jobs = num_jobs or os.cpu_count() or 1
    speakers = plan_voices(seed, num_voices)  # checks num_voices before anything is touched
    params = _params(train_minutes, seed, (low, high), sample_rate)
    params["num_voices"] = int(num_voices)
    result = {split: out / split for split in SPLITS}
    if _is_done(out, params):
        log.info("synth corpus already in %s (same parameters); not regenerating", out)
        return result

    for name in (".done", *SPLITS, "wav"):  # only what this function writes
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    wav_root = (out / "wav").resolve()

    targets = {"train": train_minutes * 60.0}
    targets["dev"] = targets["test"] = targets["train"] * _EVAL_FRACTION

    pool = None
    if num_jobs > 1:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=num_jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        )
    try:
        summary = []
        for split in SPLITS:
            split_speakers = [s for s in speakers if s.split == split]
            plans, durations = _make_split(
                split, split_speakers, targets[split], seed, (low, high), sample_rate, wav_root, pool
            )
            spoken = {p.speaker for p in plans}  # a tiny corpus may not reach every voice
            data = DataDir(
                wav_scp={p.utt_id: str(wav_root / p.speaker / f"{p.utt_id}.wav") for p in plans},
                text={p.utt_id: p.text for p in plans},
                utt2spk={p.utt_id: p.speaker for p in plans},
                spk2gender={s.speaker: s.gender for s in split_speakers if s.speaker in spoken},
                utt2dur={p.utt_id: d for p, d in zip(plans, durations)},
            )
            write_data_dir(data, result[split])
            summary.append((split, [s for s in split_speakers if s.speaker in spoken], len(plans), sum(durations)))
    finally:
        if pool is not None:
            pool.shutdown()

    from asr.data.validate import validate_data_dir

    for split in SPLITS:
        validate_data_dir(result[split])
    with atomic_write(out / ".done") as f:
        json.dump({"params": params, "splits": {s: str(p) for s, p in result.items()}}, f, indent=1)
        f.write("\n")
    for split, split_speakers, count, seconds in summary:
        log.info(
            "synth %s: %d voices, %d utterances, %.1f min: %s",
            split,
            len(split_speakers),
            count,
            seconds / 60,
            " ".join(s.speaker for s in split_speakers),
        )
    return result


def _make_split(
    split: str,
    speakers: list[SpeakerVoice],
    target_s: float,
    seed: int,
    snr_db: tuple[float, float],
    sample_rate: int,
    wav_root: Path,
    pool: concurrent.futures.Executor | None,
) -> tuple[list[UtterancePlan], list[float]]:
    """Render utterances 0, 1, 2... of ``split`` in batches until their total duration reaches ``target_s``;
    keep the shortest prefix that does (removing any wav rendered past it)."""
    from tqdm import tqdm

    plans: list[UtterancePlan] = []
    durations: list[float] = []
    total = 0.0
    mean_s = 2.0  # first guess of an utterance's duration; refined from what was rendered
    progress = tqdm(
        total=round(target_s), unit="s", desc=f"synth {split}", disable=not sys.stderr.isatty(), leave=False
    )
    try:
        while total < target_s:
            remaining = target_s - total
            count = max(1, math.ceil(remaining / mean_s * (0.9 if not plans else 1.03)))
            batch = [plan_utterance(speakers, split, len(plans) + k, seed=seed, snr_db=snr_db) for k in range(count)]
            tasks = [(p, sample_rate, str(wav_root / p.speaker / f"{p.utt_id}.wav")) for p in batch]
            results = pool.map(_render_and_write, tasks, chunksize=8) if pool else map(_render_and_write, tasks)
            for plan, seconds in zip(batch, results):
                plans.append(plan)
                durations.append(seconds)
                total += seconds
                progress.update(round(total) - progress.n)
            mean_s = total / len(plans)
    finally:
        progress.close()
    # the shortest prefix reaching the target (what one-at-a-time rendering would have stopped at)
    cumulative = np.cumsum(durations)
    keep = int(np.searchsorted(cumulative, target_s)) + 1
    for plan in plans[keep:]:
        (wav_root / plan.speaker / f"{plan.utt_id}.wav").unlink()
    return plans[:keep], durations[:keep]
