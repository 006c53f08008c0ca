#!/usr/bin/env python
"""Coverage-guided fuzzing of our parsers with atheris (libFuzzer for Python), time-boxed, one target at a time.

    pip install -e '.[fuzz]'
    python scripts/fuzz_parsers.py --target all --seconds 120 [--out-dir DIR] [--hang-seconds 20]

Targets (each parses a temporary file through our public API; the ``asr`` modules are instrumented, so the
search follows the branches of our code):

    wav       asr.data.audio.read_audio (as read, then resampled to 8 kHz and turned into fbank features)
    arpa      asr.lang.ngram.NgramLM.read_arpa; a sample of the accepted files goes through
              asr.lang.grammar.arpa_to_g (kaldilm, C++, can abort) in a separate worker process
    lexicon   asr.lang.lexicon.read_lexicon (plain and with probabilities)
    datadir   asr.data.datadir.read_data_dir + asr.data.validate.validate_data_dir (the input is a container of
              '== <name>' sections: wav.scp, text, utt2spk, segments, utt2dur)
    archive   asr.features.archive.FeatureArchive: open and read everything
    bundle    asr.bundle.load_bundle + load_model (the input is one JSON file of the bundle, its name on the first
              line; it is re-signed in the manifest so that the parsers behind the checksums are reached)

Seeds are real inputs: yes/no and AN4 wavs from the corpora (env ``ASR_CORPORA``, default ``../shared/corpora``),
ARPA models trained by :func:`asr.lang.ngram.train_ngram_lm` on yes/no and AN4 transcripts, the AN4 dictionary,
an archive of real fbank features written with :class:`~asr.features.archive.ArchiveWriter`, and a bundle of the
yes/no recipe's monophone model (``--bundle DIR`` to use an existing one; otherwise ``recipes/yesno/run.sh`` runs
once into the output folder, about 20 s).

An input passes when it parses (with sane values: finite, in range, what the seeds hold) or raises an
:class:`~asr.errors.AsrError` whose ``path`` names the input. Anything else is a finding: another exception type,
an error naming no file or another file, a silently wrong result, a hang (``--hang-seconds``), a crash or an
out-of-memory. Findings are saved under ``<out-dir>/findings/<target>/`` (our checks: ``<kind>-<sha1>`` with a
``.txt`` saying why, at most 3 inputs per distinct cause; libFuzzer's: ``crash-``, ``timeout-``, ``oom-``),
and each target runs in its own process (restarted after a crash or a hang while its time lasts). Printed per
target: inputs executed, libFuzzer's coverage (``cov``: edges, ``ft``: features) and corpus size, inputs
accepted / refused with our error, findings, seconds. Exit status 1 when anything was found.
``command |`` entries are refused (``ASR_ALLOW_PIPES=0``) so that a fuzzed wav.scp never runs a command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("wav", "arpa", "lexicon", "datadir", "archive", "bundle")
MAX_LEN = {"wav": 4096, "arpa": 4096, "lexicon": 4096, "datadir": 2048, "archive": 0, "bundle": 0}  # 0: seeds'
DATADIR_FILES = ("wav.scp", "text", "utt2spk", "segments", "utt2dur")
SAVED_PER_CAUSE = 3


def corpora_root() -> Path:
    """The shared corpora (env ``ASR_CORPORA``, default ``../shared/corpora`` next to the repository)."""
    return Path(os.environ.get("ASR_CORPORA", REPO.parent / "shared" / "corpora")).resolve()


# ------------------------------------------------------------------------------------------------ seeds (parent)


def _truncated_wav(data: bytes, size: int, fix_sizes: bool) -> bytes:
    """The first ``size`` bytes of a canonical 44-byte-header wav, with the RIFF and data sizes made to match."""
    out = bytearray(data[:size])
    if fix_sizes and out[:4] == b"RIFF" and out[36:40] == b"data":
        out[4:8] = (len(out) - 8).to_bytes(4, "little")
        out[40:44] = (len(out) - 44).to_bytes(4, "little")
    return bytes(out)


def seed_wav(seeds: Path, work: Path) -> dict:
    """Seeds: yes/no (8 kHz) and AN4 (16 kHz) wavs cut to a few KiB, and the same audio in other encodings."""
    import numpy as np
    import soundfile

    root = corpora_root()
    wavs = sorted((root / "yesno" / "waves_yesno").glob("*.wav"))[:2] + sorted((root / "an4").rglob("*.wav"))[:2]
    if not wavs:
        raise SystemExit(f"no wavs under {root}: set ASR_CORPORA to the folder holding yesno/ and an4/")
    for i, wav in enumerate(wavs):
        data = wav.read_bytes()
        (seeds / f"real{i}_cut.wav").write_bytes(_truncated_wav(data, 3000, fix_sizes=True))
        (seeds / f"real{i}_truncated.wav").write_bytes(_truncated_wav(data, 1500, fix_sizes=False))
    samples, rate = soundfile.read(str(wavs[0]), dtype="float32", frames=600)
    stereo = np.stack([samples, samples[::-1]], axis=1)
    for name, data, fmt, subtype in (
        ("float.wav", samples, "WAV", "FLOAT"),
        ("pcm24.wav", samples, "WAV", "PCM_24"),
        ("stereo.wav", stereo, "WAV", "PCM_16"),
        ("ulaw.wav", samples, "WAV", "ULAW"),
        ("audio.flac", samples, "FLAC", "PCM_16"),
    ):
        soundfile.write(str(seeds / name), data, rate, format=fmt, subtype=subtype)
    return {}


def seed_arpa(seeds: Path, work: Path) -> dict:
    """Seeds: trigram models trained on yes/no sentences and on AN4 transcripts."""
    from asr.lang.ngram import train_ngram_lm

    yesno = [s.split() for s in ("YES NO YES", "NO NO", "YES YES YES NO", "NO YES")]
    train_ngram_lm(yesno, ["YES", "NO"], order=3).write_arpa(seeds / "yesno.arpa")
    transcripts = corpora_root() / "an4" / "etc" / "an4_train.transcription"
    sentences = []
    for line in transcripts.read_text().splitlines()[:12]:
        words = [w for w in line.split() if w not in ("<s>", "</s>") and not w.startswith("(")]
        if words:
            sentences.append(words)
    vocab = sorted({w for s in sentences for w in s})
    train_ngram_lm(sentences, vocab, order=3).write_arpa(seeds / "an4.arpa")
    train_ngram_lm(sentences, vocab, order=2, method="wb").write_arpa(seeds / "an4_wb.arpa")
    return {}


def seed_lexicon(seeds: Path, work: Path) -> dict:
    """Seeds: the AN4 dictionary (alternates ``WORD(2)``), a lexicon with probabilities, CMUdict-style lines."""
    dic = corpora_root() / "an4" / "etc" / "an4.dic"
    (seeds / "an4.dic").write_bytes(dic.read_bytes()[:4096])
    (seeds / "small.txt").write_bytes(
        b";;; a comment\nYES Y EH S\nNO N OW\nNO(2) N AH0 W\nA AH0\nSIL SIL\n<UNK> SPN\nTHE DH AH0\nTHE(2) DH IY1\n"
    )
    (seeds / "lexiconp.txt").write_bytes(b"YES 1.0 Y EH S\nNO 0.7 N OW\nNO 0.3 N AH W\n<UNK> 1.0 SPN\n")
    return {}


def datadir_container(files: dict[str, bytes]) -> bytes:
    """A data dir as one fuzz input: ``== <name>`` lines, each followed by that file's content."""
    return b"".join(b"== " + name.encode() + b"\n" + content for name, content in files.items())


def seed_datadir(seeds: Path, work: Path) -> dict:
    """Seeds: small data dirs over a real yes/no wav, with and without segments and utt2dur."""
    wav = sorted((corpora_root() / "yesno" / "waves_yesno").glob("*.wav"))[0]
    utts = [f"spk1-u{i}" for i in range(4)]
    files = {
        "wav.scp": "".join(f"rec{i} {wav}\n" for i in range(2)).encode(),
        "text": "".join(f"{u} YES NO\n" for u in utts).encode(),
        "utt2spk": "".join(f"{u} spk1\n" for u in utts).encode(),
        "segments": "".join(f"{u} rec{i % 2} {0.1 * i:.1f} {0.1 * i + 0.5:.1f}\n" for i, u in enumerate(utts)).encode(),
        "utt2dur": "".join(f"{u} 0.5\n" for u in utts).encode(),
    }
    (seeds / "segments").write_bytes(datadir_container(files))
    plain = {
        "wav.scp": "".join(f"{u} {wav}\n" for u in utts).encode(),
        "text": files["text"],
        "utt2spk": files["utt2spk"],
    }
    (seeds / "plain").write_bytes(datadir_container(plain))
    return {}


def seed_archive(seeds: Path, work: Path) -> dict:
    """Seeds: archives of real fbank features of 4 yes/no utterances (20 frames each, chunks of 8 frames), with
    CMVN statistics and a skipped utterance, uncompressed and gzip; the reference digest of their content."""
    import numpy as np

    from asr.data.audio import read_audio
    from asr.features.archive import ArchiveWriter, base_attrs
    from asr.features.extract import KnfExtractor
    from asr.features.options import FeatureOptions

    options = FeatureOptions(type="fbank", sample_rate=8000)
    extractor = KnfExtractor(options)
    wavs = sorted((corpora_root() / "yesno" / "waves_yesno").glob("*.wav"))[:4]
    feats = {w.stem: extractor.compute(read_audio(str(w))[0])[:20] for w in wavs}
    dim = next(iter(feats.values())).shape[1]
    stats = np.zeros((1, 2, dim + 1))
    for f in feats.values():
        stats[0, 0, :dim] += f.sum(0)
        stats[0, 1, :dim] += (f.astype(np.float64) ** 2).sum(0)
        stats[0, 0, dim] += len(f)
    for name, compression in (("plain.h5", None), ("gzip.h5", "gzip")):
        attrs = base_attrs("fbank", options, "data/yesno/train", cmvn="speaker")
        with ArchiveWriter(seeds / name, dim, attrs, compression=compression, chunk_rows=8) as w:
            for utt, f in feats.items():
                w.append(utt, f)
            w.set_cmvn_stats(["spk"], stats, [0] * len(feats))
            w.set_skipped(["0_0_0_0_bad"])
    read_feature_archive = _shared_fuzz_pieces()[1].read_feature_archive
    return {"reference": sorted({read_feature_archive(str(seeds / n)) for n in ("plain.h5", "gzip.h5")})}


def seed_bundle(seeds: Path, work: Path, bundle: Path | None) -> dict:
    """Seeds: each JSON file of a bundle (``bundle`` or one exported from a yes/no recipe run in ``work``)."""
    if bundle is None:
        bundle = work.parent / "yesno_bundle"
        if not (bundle / "manifest.json").is_file():
            from asr.bundle import export_bundle

            recipe = work.parent / "yesno_recipe"
            shutil.rmtree(recipe, ignore_errors=True)
            data, exp = recipe / "data", recipe / "exp"
            env = dict(os.environ, ASR_CORPORA=str(corpora_root()))
            cmd = ["bash", str(REPO / "recipes" / "yesno" / "run.sh"), "--data", str(data), "--exp", str(exp)]
            print(f"[fuzz] bundle: running {' '.join(cmd)} for a seed bundle", flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"yes/no recipe failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
            mono = exp / "mono"
            export_bundle(mono, mono / "graph", bundle, lang_dir=data / "lang_test", force=True)
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*.json") if p.is_file())
    for i, rel in enumerate(files):
        (seeds / f"json{i}").write_bytes(rel.encode() + b"\n" + (bundle / rel).read_bytes())
    return {"bundle": str(bundle.resolve()), "files": files}


# ------------------------------------------------------------------------------------- helpers shared by both


def _shared_fuzz_pieces():
    """The hypothesis tests' isolated worker and parse targets (tests/fuzz), shared with this script."""
    sys.path.insert(0, str(REPO / "tests" / "fuzz"))
    import fuzz_helpers
    import fuzz_targets

    return fuzz_helpers, fuzz_targets


# ------------------------------------------------------------------------------------------- the fuzzed process


class Finding(Exception):
    """A check failed: ``kind`` (a file-name-safe word), ``cause`` (what identifies the bug), ``detail``."""

    def __init__(self, kind: str, cause: str, detail: str = ""):
        super().__init__(f"{kind}: {cause}")
        self.kind, self.cause, self.detail = kind, cause, detail


def _where(tb) -> str:
    """The innermost frame in our package and the innermost frame overall of a traceback."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if f"{os.sep}asr{os.sep}" in f.filename and "fuzz_parsers" not in f.filename]
    parts = []
    if ours:
        parts.append(f"{Path(ours[-1].filename).name}:{ours[-1].lineno}")
    if frames:
        parts.append(f"{Path(frames[-1].filename).name}:{frames[-1].lineno}")
    return " / ".join(parts)


def _under(path: str, allowed: list[Path]) -> bool:
    path = os.path.abspath(path.split(" (")[0])
    return any(path == os.path.abspath(p) or path.startswith(os.path.abspath(p) + os.sep) for p in allowed)


def checked(fn, allowed: list[Path], what: str):
    """``("ok", fn())`` or ``("ours", err)`` for one of our errors naming a file in ``allowed``; raises
    :class:`Finding` for any other exception or an error naming no file or another file."""
    from asr.errors import AsrError

    try:
        return ("ok", fn())
    except AsrError as err:
        path = getattr(err, "path", None)
        if path is None:
            raise Finding("nopath", f"{what}: {type(err).__name__} naming no file at {_where(err.__traceback__)}",
                          str(err)) from None  # fmt: skip
        if not _under(path, allowed):
            raise Finding("wrongpath", f"{what}: {type(err).__name__} naming {path} at {_where(err.__traceback__)}",
                          str(err)) from None  # fmt: skip
        return ("ours", err)
    except Exception as err:  # noqa: BLE001 (the point: anything else is a finding)
        raise Finding("bug", f"{what}: {type(err).__name__} at {_where(err.__traceback__)}",
                      traceback.format_exc()[-4000:]) from None  # fmt: skip


def expect(condition: bool, cause: str, detail: object = "") -> None:
    """A silently wrong result unless ``condition``."""
    if not condition:
        raise Finding("wrong", cause, repr(detail)[:2000])


def line_in_file(err, data: bytes, what: str) -> None:
    """An error's line number must exist in the file it names (``data``)."""
    line = getattr(err, "line", None)
    expect(line is None or 1 <= line <= data.count(b"\n") + 1, f"{what}: line number outside the file", str(err))


def make_harness(target: str, work: Path, ctx: dict):
    """The function atheris calls with each input, for ``target``; it raises :class:`Finding`."""
    tmp = work / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    stats = {"accepted": 0, "refused": 0}

    if target == "wav":
        import numpy as np

        from asr.data.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, read_audio, resample
        from asr.features.extract import KnfExtractor
        from asr.features.options import FeatureOptions

        extractor = KnfExtractor(FeatureOptions(type="fbank", sample_rate=8000))
        path = tmp / "x.wav"
        resample(np.zeros(1600, dtype=np.float32), 16000, 8000)  # torchaudio's first call takes seconds: not here

        def sane(samples, rate, what):
            expect(samples.ndim == 1 and samples.size > 0 and samples.dtype == np.float32, f"{what}: shape/dtype",
                   (samples.shape, samples.dtype))  # fmt: skip
            expect(bool(np.isfinite(samples).all()), f"{what}: non-finite samples")
            expect(float(np.abs(samples).max()) <= 1.0 + 1e-6, f"{what}: samples beyond [-1, 1]",
                   float(np.abs(samples).max()))  # fmt: skip
            expect(MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE, f"{what}: implausible rate accepted", rate)

        def run(data: bytes):
            path.write_bytes(data)
            out = checked(lambda: read_audio(str(path)), [path], "read_audio")
            if out[0] == "ours":
                stats["refused"] += 1
                return
            sane(*out[1], "read_audio")
            out = checked(lambda: read_audio(str(path), 8000), [path], "read_audio(8000)")
            if out[0] == "ours":
                stats["refused"] += 1
                return
            samples, rate = out[1]
            sane(samples, rate, "read_audio(8000)")
            expect(rate == 8000, "read_audio(8000): rate", rate)
            feats = checked(lambda: extractor.compute(samples), [path], "fbank")
            expect(feats[0] == "ours" or bool(np.isfinite(feats[1]).all()), "fbank: non-finite features")
            stats["accepted" if feats[0] == "ok" else "refused"] += 1

        return run, stats

    if target == "arpa":
        import math

        from asr.lang.ngram import NgramLM

        path, words = tmp / "lm.arpa", tmp / "words.txt"
        helpers, targets = _shared_fuzz_pieces()
        g_worker = helpers.IsolatedWorker(targets.arpa_to_g, timeout=ctx["hang_seconds"])
        seen: set[bytes] = set()
        stats.update(g_tried=0, g_ok=0)
        last_g = [0.0]

        def run(data: bytes):
            path.write_bytes(data)
            out = checked(lambda: NgramLM.read_arpa(path), [path], "read_arpa")
            if out[0] == "ours":
                line_in_file(out[1], data, "read_arpa")
                stats["refused"] += 1
                return
            lm = out[1]
            for table in lm.log10_probs:
                expect(all(math.isfinite(lp) and lp <= 0.0 for lp in table.values()), "read_arpa: bad log10 prob")
            for table in lm.log10_backoffs:
                expect(all(math.isfinite(b) for b in table.values()), "read_arpa: non-finite back-off")
            stats["accepted"] += 1
            key = hashlib.sha1(data).digest()
            if key in seen or time.monotonic() - last_g[0] < 0.25:  # a sample of the accepted files
                return
            seen.add(key)
            last_g[0] = time.monotonic()
            vocab = [w for w in lm.vocab if w and not any(c.isspace() for c in w) and w not in ("<s>", "</s>")]
            symbols = ["<eps>", *dict.fromkeys(vocab), "#0", "<s>", "</s>"]
            words.write_text("".join(f"{w} {i}\n" for i, w in enumerate(symbols)), encoding="utf-8")
            stats["g_tried"] += 1
            g = g_worker.call(str(path), str(words))
            if g[0] in ("hang", "crash"):
                raise Finding(g[0], f"arpa_to_g: {g[0]} ({g[1]})")
            if g[0] == "bug":
                raise Finding("bug", f"arpa_to_g: {g[1]}", g[2])
            if g[0] == "ours" and (g[3] is None or not _under(g[3], [path, words])):
                raise Finding("wrongpath" if g[3] else "nopath", f"arpa_to_g: {g[1]} naming {g[3]}", g[2])
            stats["g_ok"] += g[0] == "ok"

        return run, stats

    if target == "lexicon":
        from asr.lang.lexicon import read_lexicon

        path = tmp / "lexicon.txt"

        def run(data: bytes):
            path.write_bytes(data)
            for with_probs in (False, True):
                what = f"read_lexicon(with_probs={with_probs})"
                out = checked(lambda: read_lexicon(path, with_probs=with_probs), [path], what)  # noqa: B023
                if out[0] == "ours":
                    line_in_file(out[1], data, what)
                    stats["refused"] += 1
                    continue
                for e in out[1]:
                    expect(bool(e.word and e.phones) and 0.0 < e.prob <= 1.0, f"{what}: bad entry", e)
                    expect(not any(c.isspace() for c in e.word), f"{what}: white space in a word", e)
                    expect(all(p and not any(c.isspace() for c in p) for p in e.phones), f"{what}: bad phone", e)
                stats["accepted"] += 1

        return run, stats

    if target == "datadir":
        import math

        from asr.data.datadir import read_data_dir
        from asr.data.validate import validate_data_dir

        d = tmp / "data"
        d.mkdir()
        section = re.compile(rb"(?m)^== ([^\n]*)\n")

        def run(data: bytes):
            for name in DATADIR_FILES:
                (d / name).unlink(missing_ok=True)
            parts = section.split(data)
            files = {}
            for name, content in zip(parts[1::2], parts[2::2]):
                name = name.decode("latin-1").strip()
                if name in DATADIR_FILES:
                    files[name] = content
            for name, content in files.items():
                (d / name).write_bytes(content)
            read = checked(lambda: read_data_dir(d), [d], "read_data_dir")
            if read[0] == "ok":
                dd = read[1]
                for seg in (dd.segments or {}).values():
                    expect(math.isfinite(seg.start) and math.isfinite(seg.end), "segments: non-finite time", seg)
                    expect(seg.start >= 0 and (seg.end < 0 or seg.end > seg.start), "segments: bad times", seg)
                for utt, dur in (dd.utt2dur or {}).items():
                    expect(math.isfinite(dur) and dur > 0, "utt2dur: bad duration", (utt, dur))
                for table in (dd.wav_scp, dd.text, dd.utt2spk):
                    for key, value in table.items():
                        expect(bool(key) and not any(c in key for c in " \t\n\r"), "bad key", key)
                        expect("\n" not in value, "newline in a value", value)
            validated = checked(lambda: validate_data_dir(d, check_audio=False), [d], "validate_data_dir")
            if validated[0] == "ok":
                expect(read[0] == "ok", "validate_data_dir accepts what read_data_dir refuses", str(read[1]))
            for out in (read, validated):
                if out[0] == "ours" and getattr(out[1], "line", None) is not None:
                    named = Path(out[1].path)
                    content = named.read_bytes() if named.is_file() else b""
                    line_in_file(out[1], content, "data dir")
            stats["accepted" if validated[0] == "ok" else "refused"] += 1

        return run, stats

    if target == "archive":
        path = tmp / "fbank.h5"
        reference = set(ctx["reference"])
        read_archive_digest = _shared_fuzz_pieces()[1].read_feature_archive

        def run(data: bytes):
            path.write_bytes(data)
            out = checked(lambda: read_archive_digest(str(path)), [path], "FeatureArchive")
            if out[0] == "ours":
                stats["refused"] += 1
                return
            expect(out[1] in reference, "FeatureArchive: accepted with content other than the seeds'")
            stats["accepted"] += 1

        return run, stats

    if target == "bundle":
        from asr.bundle import MANIFEST_NAME, load_bundle

        template = Path(ctx["bundle"])
        bundle = tmp / "bundle"
        shutil.copytree(template, bundle)
        names = list(ctx["files"])
        originals = {rel: (bundle / rel).read_bytes() for rel in names}
        manifest_bytes = originals.get(MANIFEST_NAME) or (bundle / MANIFEST_NAME).read_bytes()
        manifest = json.loads(manifest_bytes)

        def load():
            b = load_bundle(bundle)
            b.load_model()
            return b.kind

        def run(data: bytes):
            head, _, content = data.partition(b"\n")
            rel = head.decode("latin-1").strip()
            if rel not in originals:
                rel = names[zlib.crc32(head) % len(names)]
            try:
                (bundle / rel).write_bytes(content)
                if rel != MANIFEST_NAME:
                    signed = json.loads(json.dumps(manifest))
                    signed["files"][rel] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
                    (bundle / MANIFEST_NAME).write_text(json.dumps(signed))
                out = checked(load, [bundle], f"load_bundle ({rel} changed)")
                stats["accepted" if out[0] == "ok" else "refused"] += 1
            finally:
                (bundle / rel).write_bytes(originals[rel])
                (bundle / MANIFEST_NAME).write_bytes(manifest_bytes)

        return run, stats

    raise ValueError(f"unknown target {target!r}")


TARGET_MODULES = {
    "wav": ["asr.data.audio", "asr.features.extract", "asr.features.options"],
    "arpa": ["asr.lang.ngram"],
    "lexicon": ["asr.lang.lexicon"],
    "datadir": ["asr.data.datadir", "asr.data.validate", "asr.data.audio"],
    "archive": ["asr.features.archive", "asr.features.options"],
    "bundle": ["asr.bundle", "asr.files", "asr.features.options", "asr.features.online",
               "asr.decode.acoustic_model"],
}  # fmt: skip


def run_child(args) -> None:
    """The fuzzed process of one target: instrument our modules, set up the harness, hand over to libFuzzer
    (which ends the process when the time is up, or at a crash, hang or out-of-memory)."""
    import importlib

    import atheris

    os.environ["ASR_ALLOW_PIPES"] = "0"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.disable(logging.CRITICAL)
    out = Path(args.out_dir)
    target = args.child
    work, seeds, corpus = out / "work" / target, out / "seeds" / target, out / "corpus" / target
    findings_dir = out / "findings" / target
    findings_dir.mkdir(parents=True, exist_ok=True)
    corpus.mkdir(parents=True, exist_ok=True)
    ctx = json.loads((work / "context.json").read_text())
    ctx["hang_seconds"] = args.hang_seconds
    with atheris.instrument_imports(include=["asr"]):
        for name in TARGET_MODULES[target]:
            importlib.import_module(name)
    harness, stats = make_harness(target, work, ctx)
    if "torch" in sys.modules:  # one thread: the inputs are small and the cores shared
        sys.modules["torch"].set_num_threads(1)
    causes: dict[str, int] = {}
    saved = json.loads((work / "causes.json").read_text()) if (work / "causes.json").is_file() else {}
    causes.update(saved)
    counts = {"executed": 0, "findings": 0}
    end = time.monotonic() + args.seconds
    last_flush = [0.0]

    def flush() -> None:
        doc = {**counts, **stats, "causes": causes}
        (work / "stats.tmp").write_text(json.dumps(doc))
        os.replace(work / "stats.tmp", work / "stats.json")
        (work / "causes.json").write_text(json.dumps(causes))

    def test_one_input(data: bytes) -> None:
        counts["executed"] += 1
        try:
            harness(data)
        except Finding as f:
            counts["findings"] += 1
            n = causes.get(f.cause, 0) + 1
            causes[f.cause] = n
            if n <= SAVED_PER_CAUSE:
                name = f"{f.kind}-{hashlib.sha1(data).hexdigest()}"
                (findings_dir / name).write_bytes(data)
                (findings_dir / f"{name}.txt").write_text(f"{f.cause}\n\n{f.detail}\n")
            if n == 1:
                print(f"[fuzz] {target}: FINDING {f.kind}: {f.cause}", flush=True)
            flush()
        now = time.monotonic()
        if now - last_flush[0] > 1.0 or now > end - 3:
            last_flush[0] = now
            flush()

    flags = [
        f"-max_total_time={max(1, int(args.seconds))}",
        f"-timeout={int(args.hang_seconds)}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-artifact_prefix={findings_dir}{os.sep}",
        "-print_final_stats=1",
        f"-report_slow_units={int(args.hang_seconds)}",  # slower than this is a hang: -timeout
    ]
    if MAX_LEN[target]:
        flags.append(f"-max_len={MAX_LEN[target]}")
    flush()
    atheris.Setup([sys.argv[0], *flags, str(corpus), str(seeds)], test_one_input)
    atheris.Fuzz()


# ------------------------------------------------------------------------------------------------- the driver


def _parse_log(text: str) -> dict:
    """Executed inputs, coverage and corpus size from libFuzzer's output."""
    out = {}
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    if m:
        out["executed"] = int(m.group(1))
    m = re.search(r"stat::slowest_unit_time_sec:\s*(\d+)", text)
    if m:
        out["slowest_s"] = int(m.group(1))
    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
    if status:
        out["cov"], out["ft"], out["corpus"] = (int(x) for x in status[-1])
    m = re.search(r"Done \d+ runs in (\d+) second", text)
    if m:
        out["fuzz_s"] = int(m.group(1))
    return out


def fuzz_target(target: str, args) -> dict:
    """Seed ``target``, then run its fuzzed process (restarted after a crash or a hang while time lasts)."""
    out = Path(args.out_dir)
    work, seeds = out / "work" / target, out / "seeds" / target
    shutil.rmtree(seeds, ignore_errors=True)
    for p in (work / "stats.json", work / "causes.json"):
        p.unlink(missing_ok=True)
    seeds.mkdir(parents=True)
    work.mkdir(parents=True, exist_ok=True)
    findings_dir = out / "findings" / target
    before = set(findings_dir.iterdir()) if findings_dir.is_dir() else set()
    t0 = time.monotonic()
    seeders = {"wav": seed_wav, "arpa": seed_arpa, "lexicon": seed_lexicon, "datadir": seed_datadir,
               "archive": seed_archive}  # fmt: skip
    if target == "bundle":
        ctx = seed_bundle(seeds, work, Path(args.bundle) if args.bundle else None)
    else:
        ctx = seeders[target](seeds, work)
    (work / "context.json").write_text(json.dumps(ctx))
    seed_s = time.monotonic() - t0
    total = {"executed": 0, "runs": 0, "accepted": 0, "refused": 0, "g_tried": 0, "g_ok": 0, "fuzz_s": 0}
    slowest = 0
    cov = {}
    start = time.monotonic()
    log_path = work / "libfuzzer.log"
    with open(log_path, "w") as log:
        while True:
            left = args.seconds - (time.monotonic() - start)
            if left < 2 or total["runs"] > args.max_restarts:
                break
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", target, "--seconds", str(int(left)),
                   "--out-dir", str(out), "--hang-seconds", str(args.hang_seconds),
                   "--rss-limit-mb", str(args.rss_limit_mb)]  # fmt: skip
            (work / "stats.json").unlink(missing_ok=True)
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                  timeout=left + 3 * args.hang_seconds + 120, check=False)  # fmt: skip
            log.write(proc.stdout)
            log.flush()
            for line in proc.stdout.splitlines():
                if line.startswith("[fuzz]"):
                    print(line, flush=True)
            total["runs"] += 1
            parsed = _parse_log(proc.stdout)
            stats = json.loads((work / "stats.json").read_text()) if (work / "stats.json").is_file() else {}
            total["executed"] += parsed.get("executed", stats.get("executed", 0))
            total["fuzz_s"] += parsed.get("fuzz_s", 0)
            slowest = max(slowest, parsed.get("slowest_s", 0))
            for key in ("accepted", "refused", "g_tried", "g_ok"):
                total[key] += stats.get(key, 0)
            cov = {k: parsed[k] for k in ("cov", "ft", "corpus") if k in parsed} or cov
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-15:])
                if "ERROR: libFuzzer" not in proc.stdout and "ALARM" not in proc.stdout:
                    raise SystemExit(f"[fuzz] {target}: the fuzzed process failed ({proc.returncode}):\n{tail}")
                reason = re.search(r"ERROR: libFuzzer: ([^\n]*)|(ALARM: [^\n]*)", proc.stdout)
                print(f"[fuzz] {target}: libFuzzer stopped: {reason.group(0) if reason else proc.returncode}; "
                      "restarting for the time left", flush=True)  # fmt: skip
    seconds = time.monotonic() - start
    causes = json.loads((work / "causes.json").read_text()) if (work / "causes.json").is_file() else {}
    new_files = sorted(p for p in set(findings_dir.iterdir()) - before if p.suffix != ".txt")
    artifacts = [p for p in new_files if p.name.split("-")[0] in ("crash", "timeout", "oom", "leak", "slow")]
    found = len(causes) + len(artifacts)
    extra = f", arpa_to_g on {total['g_tried']} accepted ({total['g_ok']} compiled)" if target == "arpa" else ""
    print(
        f"[fuzz] {target}: {total['executed']} inputs executed in {seconds:.1f} s ({total['runs']} process run(s), "
        f"libFuzzer's time {total['fuzz_s']} s, seeding {seed_s:.1f} s), cov {cov.get('cov', '?')} "
        f"ft {cov.get('ft', '?')} corpus {cov.get('corpus', '?')}, slowest input {slowest} s, "
        f"accepted {total['accepted']} refused with our error {total['refused']}{extra}; findings {found} "
        f"({len(causes)} distinct causes, {len(artifacts)} libFuzzer artifacts, {len(new_files)} inputs saved"
        f"{f' in {findings_dir}' if new_files else ''})",
        flush=True,
    )
    for cause, n in sorted(causes.items()):
        print(f"[fuzz] {target}:   {n} x {cause}", flush=True)
    for p in artifacts:
        print(f"[fuzz] {target}:   {p.name}", flush=True)
    return {"target": target, "executed": total["executed"], "findings": found, "seconds": round(seconds, 1), **cov}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line; run the chosen targets one after another; 1 if anything was found."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--seconds", type=float, default=60.0, help="fuzzing time per target")
    parser.add_argument("--out-dir", default=os.environ.get("OUT_DIR") or str(Path(tempfile.gettempdir()) / "asr-fuzz"),
                        help="seeds, corpus, findings (default $OUT_DIR, else <tmp>/asr-fuzz)")  # fmt: skip
    parser.add_argument("--hang-seconds", type=int, default=20, help="an input running longer is a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=4096, help="more memory is a finding (libFuzzer)")
    parser.add_argument("--max-restarts", type=int, default=5, help="restarts after a crash or a hang, per target")
    parser.add_argument("--bundle", default=None, help="a bundle to seed from (default: export the yes/no one)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    logging.basicConfig(level=logging.ERROR)  # the seeds' training chatter
    targets = TARGETS if args.target == "all" else (args.target,)
    results = [fuzz_target(t, args) for t in targets]
    found = sum(r["findings"] for r in results)
    executed = sum(r["executed"] for r in results)
    print(f"[fuzz] total: {executed} inputs executed over {len(results)} target(s), {found} finding(s)", flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
