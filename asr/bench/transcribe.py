"""Benchmark: transcribing with a model bundle — CMVN policies' WER, streaming latency and RTF, confidence.

::

    python -m asr.bench.transcribe --bundle models/an4 --data data/an4/dev \\
        [--policies speaker,utterance,online,global] [--stream-policy online] [--chunk-ms 100] \\
        [--max-utts N] [--threads 1] [--json OUT.json]

Prints three tables:

1. WER per CMVN policy, offline (``speaker`` is the condition the model was trained in; the others are
   what a single new file can get), with the offline real-time factor (features + CMVN + acoustic model +
   search + word times, single thread, audio already in memory).
2. Streaming with ``--stream-policy``: every utterance fed in ``--chunk-ms`` chunks as fast as it is
   processed (no sleeping), with the processing time of each chunk (mean, median, 95th percentile, max;
   a chunk must be processed faster than its own duration to keep up in real time), the latency from
   handing over the last chunk to having the final result (last chunk's processing + ``finish``), the
   ``finish`` call alone, the streaming RTF, and whether the words equal offline decoding with the same
   policy (they must: the count of differing utterances is printed).
3. Confidence (the mean senone posterior of :mod:`asr.decode.transcript`): mean confidence of hypothesis
   words that match the reference and of those that do not (insertions, substitutions), and the AUC of
   telling them apart (0.5 = no information).

Timings depend on whatever else the machine runs; on a shared machine take them as rough.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import kaldialign
import numpy as np

from asr.data.audio import read_audio
from asr.data.datadir import read_data_dir
from asr.decode.transcript import Transcript
from asr.features.cmvn import cmvn_stats
from asr.features.online import normalize
from asr.logging_setup import setup_logging
from asr.score import score_texts
from asr.transcribe import Recognizer


def _load_audio(data, utts):
    audio = {}
    for utt in utts:
        entry, start, end, where = data.audio_source(utt)
        audio[utt] = read_audio(entry, None, where=where, start=start, end=end)
    return audio


def offline_run(recognizer: Recognizer, audio: dict, speakers: dict) -> tuple[dict[str, Transcript], float]:
    """Transcribe every utterance offline with the recognizer's policy; ``(transcripts, seconds)``."""
    out: dict[str, Transcript] = {}
    start = time.perf_counter()
    if recognizer.policy.kind == "speaker":
        rate = recognizer.feature_options.sample_rate
        for utts in speakers.values():
            feats = {}
            for utt in utts:
                samples, file_rate = audio[utt]
                if file_rate != rate:
                    from asr.data.audio import resample

                    samples = resample(samples, file_rate, rate)
                feats[utt] = recognizer.features(samples)
            stats = cmvn_stats(np.concatenate(list(feats.values())))
            for utt in utts:
                seconds = len(audio[utt][0]) / audio[utt][1]
                out[utt] = recognizer.decode_features(
                    utt, normalize(feats[utt], recognizer.policy, speaker_stats=stats), seconds
                )
    else:
        for utt, (samples, rate) in audio.items():
            out[utt] = recognizer.transcribe_samples(samples, rate, utt)
    return out, time.perf_counter() - start


def streaming_run(recognizer: Recognizer, audio: dict, chunk_ms: float) -> tuple[dict[str, Transcript], dict]:
    """Stream every utterance in ``chunk_ms`` chunks; transcripts and timing figures."""
    out: dict[str, Transcript] = {}
    chunk_times: list[float] = []
    latencies: list[float] = []
    finishes: list[float] = []
    total = 0.0
    warm = next(iter(audio.values()))  # one untimed pass: torch and the decoder allocate on first use
    recognizer.transcribe_stream(warm[0], warm[1], "warm-up", chunk_ms)
    for utt, (samples, rate) in audio.items():
        chunk = max(1, int(round(rate * chunk_ms / 1000.0)))
        t_start = time.perf_counter()
        session = recognizer.stream(utt, rate)
        last_chunk = 0.0
        for start in range(0, len(samples), chunk):
            t0 = time.perf_counter()
            session.accept_audio(samples[start : start + chunk])
            last_chunk = time.perf_counter() - t0
            chunk_times.append(last_chunk)
        t0 = time.perf_counter()
        out[utt] = session.finish()
        finish = time.perf_counter() - t0
        total += time.perf_counter() - t_start
        finishes.append(finish)
        latencies.append(last_chunk + finish)
    ms = 1000.0
    figures = {
        "chunk_ms": chunk_ms,
        "chunks": len(chunk_times),
        "chunk_mean_ms": statistics.fmean(chunk_times) * ms,
        "chunk_median_ms": statistics.median(chunk_times) * ms,
        "chunk_p95_ms": float(np.percentile(chunk_times, 95)) * ms,
        "chunk_max_ms": max(chunk_times) * ms,
        "latency_mean_ms": statistics.fmean(latencies) * ms,
        "latency_p95_ms": float(np.percentile(latencies, 95)) * ms,
        "latency_max_ms": max(latencies) * ms,
        "finish_mean_ms": statistics.fmean(finishes) * ms,
        "seconds": total,
    }
    return out, figures


def confidence_figures(refs: dict[str, list[str]], transcripts: dict[str, Transcript]) -> dict:
    """Mean confidence of correct and wrong hypothesis words, and the AUC separating them."""
    correct, wrong = [], []
    for utt, t in transcripts.items():
        confs = [s.confidence for s in t.segments]
        if len(confs) != len(t.words) or any(c is None for c in confs):
            continue
        k = 0
        for ref_word, hyp_word in kaldialign.align(refs[utt], t.words, "*"):
            if hyp_word == "*":
                continue
            (correct if hyp_word == ref_word else wrong).append(confs[k])
            k += 1
    auc = None
    if correct and wrong:
        c, w = np.asarray(correct), np.asarray(wrong)
        auc = float(((c[:, None] > w[None, :]).sum() + 0.5 * (c[:, None] == w[None, :]).sum()) / (c.size * w.size))
    return {
        "correct_words": len(correct),
        "wrong_words": len(wrong),
        "mean_conf_correct": float(np.mean(correct)) if correct else None,
        "mean_conf_wrong": float(np.mean(wrong)) if wrong else None,
        "auc": auc,
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    import torch

    parser = argparse.ArgumentParser(prog="python -m asr.bench.transcribe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--data", required=True, help="a data dir with text (scored)")
    parser.add_argument("--policies", default="speaker,utterance,online,global", help="CMVN policies to score")
    parser.add_argument("--stream-policy", default=None, help="policy for streaming (default: the bundle's)")
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--max-utts", type=int, default=None, help="first N utterances only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    data = read_data_dir(args.data)
    utts = data.utt_ids[: args.max_utts] if args.max_utts else data.utt_ids
    refs = {u: data.text[u].split() for u in utts}
    speakers: dict[str, list[str]] = {}
    for u in utts:
        speakers.setdefault(data.utt2spk[u], []).append(u)
    audio = _load_audio(data, utts)
    audio_seconds = sum(len(s) / r for s, r in audio.values())
    report: dict = {"bundle": args.bundle, "data": args.data, "utts": len(utts), "audio_seconds": audio_seconds}

    print(f"{len(utts)} utterances, {audio_seconds:.1f} s of audio, bundle {args.bundle}")
    print("\nCMVN policy   WER%    ins del sub  offline RTF  (speaker = the trained condition)")
    offline: dict[str, dict[str, Transcript]] = {}
    report["policies"] = {}
    for policy in [p for p in args.policies.split(",") if p]:
        recognizer = Recognizer(args.bundle, cmvn=policy, device=args.device)
        offline_run(recognizer, dict([next(iter(audio.items()))]), {})  # untimed warm-up
        transcripts, seconds = offline_run(recognizer, audio, speakers)
        offline[policy] = transcripts
        score = score_texts(refs, {u: t.words for u, t in transcripts.items()})
        rtf = seconds / audio_seconds
        report["policies"][policy] = {
            "wer": score.wer,
            "ins": score.ins,
            "del": score.dels,
            "sub": score.sub,
            "rtf": rtf,
        }
        print(f"{policy:<12} {score.wer:6.2f}  {score.ins:4d}{score.dels:4d}{score.sub:4d}  {rtf:10.4f}")

    recognizer = Recognizer(args.bundle, cmvn=args.stream_policy, device=args.device)
    policy = recognizer.policy.kind
    if policy not in offline:
        offline[policy], _ = offline_run(recognizer, audio, speakers)
    streamed, figures = streaming_run(recognizer, audio, args.chunk_ms)
    differ = [u for u in utts if streamed[u].words != offline[policy][u].words]
    score = score_texts(refs, {u: t.words for u, t in streamed.items()})
    figures.update(
        policy=policy,
        wer=score.wer,
        rtf=figures["seconds"] / audio_seconds,
        utts_differing_from_offline=len(differ),
        right_context_frames=recognizer.context[1],
        algorithmic_delay_ms=recognizer.context[1] * recognizer.frame_shift * 1000
        + (recognizer.feature_options.frame_length_ms - recognizer.feature_options.frame_shift_ms),
    )
    report["streaming"] = figures
    print(
        f"\nstreaming ({policy} CMVN, {args.chunk_ms:g} ms chunks, {figures['chunks']} chunks): WER {score.wer:.2f}%, "
        f"{len(differ)} utterances differ from offline"
    )
    print(
        f"  per chunk: mean {figures['chunk_mean_ms']:.2f} ms, median {figures['chunk_median_ms']:.2f}, "
        f"p95 {figures['chunk_p95_ms']:.2f}, max {figures['chunk_max_ms']:.2f} (chunk = {args.chunk_ms:g} ms of audio)"
    )
    print(
        f"  last chunk -> final result: mean {figures['latency_mean_ms']:.2f} ms, p95 {figures['latency_p95_ms']:.2f}, "
        f"max {figures['latency_max_ms']:.2f} (finish() alone: mean {figures['finish_mean_ms']:.2f} ms)"
    )
    print(
        f"  RTF {figures['rtf']:.4f}; algorithmic delay {figures['algorithmic_delay_ms']:.0f} ms "
        f"({figures['right_context_frames']} frames of right context + window) plus the chunk"
    )
    conf = confidence_figures(refs, offline[policy])
    report["confidence"] = conf
    if conf["mean_conf_correct"] is not None:
        wrong = "n/a" if conf["mean_conf_wrong"] is None else f"{conf['mean_conf_wrong']:.3f}"
        auc = "n/a" if conf["auc"] is None else f"{conf['auc']:.3f}"
        print(
            f"\nconfidence ({policy}): correct words {conf['correct_words']} mean {conf['mean_conf_correct']:.3f}; "
            f"wrong words {conf['wrong_words']} mean {wrong}; AUC {auc}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
