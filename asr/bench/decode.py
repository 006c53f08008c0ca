"""Benchmark: decoding real-time factor of a model and graph on a data dir (AN4 dev by default).

Runs :func:`asr.decode.decode_dir.decode_data_dir` once per ``--jobs`` value (into a temporary directory)
and prints, per run: acoustic likelihood time, search time (both summed over utterances: single-core
seconds), wall-clock time of the whole decode, their real-time factors, and the WER (which must not
change with the number of jobs)::

    python -m asr.bench.decode --graph exp/an4/tri1/graph_tg --model exp/an4/tri1 --data data/an4/dev \\
        [--jobs 1,2] [--lm-weight 10] [--beam 13] [--max-active 7000] [--repeats 1] [--json OUT.json]

Wall-clock timings depend on whatever else the machine runs; on a shared machine take them as rough and
repeat (``--repeats``, the best wall time is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from asr.decode.acoustic_model import load_acoustic_model
from asr.decode.decode_dir import decode_data_dir
from asr.decode.decoder import DecoderOptions
from asr.logging_setup import setup_logging


def bench_decode(
    graph_dir: str,
    model_dir: str,
    data_dir: str,
    jobs_list: list[int],
    lm_weight: float = 10.0,
    options: DecoderOptions | None = None,
    repeats: int = 1,
    likelihood_threads: int = 1,
) -> list[dict]:
    """Decode ``data_dir`` with each number of jobs (best wall time of ``repeats``); one row per jobs value."""
    model = load_acoustic_model(model_dir)
    rows = []
    for jobs in jobs_list:
        best = None
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                r = decode_data_dir(
                    graph_dir,
                    model_dir,
                    data_dir,
                    tmp,
                    lm_weights=[lm_weight],
                    decoder_options=options,
                    jobs=jobs,
                    model=model,
                )
            if best is None or r["wall_seconds"] < best["wall_seconds"]:
                best = r
        audio = best["audio_seconds"]
        rows.append(
            {
                "jobs": jobs,
                "utts": best["utts"],
                "audio_seconds": audio,
                "likelihood_seconds": best["likelihood_seconds"],
                "search_seconds": best["search_seconds"],
                "wall_seconds": best["wall_seconds"],
                "rtf_likelihood": best["rtf_likelihood"],
                "rtf_search": best["rtf_search"],
                "rtf": best["rtf"],
                "rtf_wall": round(best["wall_seconds"] / audio, 5),
                "wer": best["wer"],
                "num_not_final": best["num_not_final"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m asr.bench.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", default="exp/an4/tri1/graph_tg")
    parser.add_argument("--model", default="exp/an4/tri1")
    parser.add_argument("--data", default="data/an4/dev")
    parser.add_argument("--jobs", default="1,2", help="comma-separated numbers of search processes")
    parser.add_argument("--lm-weight", type=float, default=10.0)
    parser.add_argument("--beam", type=float, default=DecoderOptions.beam)
    parser.add_argument("--max-active", type=int, default=DecoderOptions.max_active)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the likelihoods (default 1)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    setup_logging()
    options = DecoderOptions(beam=args.beam, max_active=args.max_active)
    jobs_list = [int(j) for j in args.jobs.split(",")]
    rows = bench_decode(
        args.graph, args.model, args.data, jobs_list, args.lm_weight, options, args.repeats, args.threads
    )
    print(
        f"{args.model} on {args.data} (graph {args.graph}), LM weight {args.lm_weight:g}, beam {args.beam:g}, "
        f"{os.cpu_count()} CPUs, torch threads for likelihoods {args.threads}"
    )
    print(
        f"{'jobs':>4} {'lik s':>7} {'search s':>8} {'wall s':>7} {'RTF lik':>8} {'RTF srch':>8} {'RTF':>7} "
        f"{'RTF wall':>8} {'WER':>6}"
    )
    for r in rows:
        print(
            f"{r['jobs']:>4} {r['likelihood_seconds']:>7.2f} {r['search_seconds']:>8.2f} {r['wall_seconds']:>7.2f} "
            f"{r['rtf_likelihood']:>8.4f} {r['rtf_search']:>8.4f} {r['rtf']:>7.4f} {r['rtf_wall']:>8.4f} "
            f"{r['wer']:>6.2f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
