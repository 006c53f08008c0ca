"""Benchmark: triphone tree statistics, question generation and tree building at AN4 scale.

A synthetic problem shaped like AN4's triphone stage: 42 phones (SIL and SPN with 5 pdf-classes, 40
phones with 3), utterances of random phone sequences, 39-dim features whose mean depends on the phone,
the HMM state and the phonetic class of the left and right neighbours (6 planted classes), about
250k frames. Prints the wall time of each step::

    python -m asr.bench.tree [--frames 250000] [--max-leaves 0 (= suggested)] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from asr.hmm.questions import build_question_set
from asr.hmm.tree import (
    TreeStats,
    build_tree,
    make_roots,
    phone_contexts,
    suggest_tree_options,
)
from asr.logging_setup import setup_logging

SIL, SPN = 1, 2


def synthetic_alignment(
    num_frames: int, num_phones: int = 42, dim: int = 39, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, int]]:
    """Make (phone_ids [T], pdf_classes [T], feats [T, D] float32, offsets [U+1], num_pdf_classes)."""
    rng = np.random.default_rng(seed)
    num_pdf_classes = {p: (5 if p in (SIL, SPN) else 3) for p in range(1, num_phones + 1)}
    speech = np.arange(3, num_phones + 1)
    phone_class = np.zeros(num_phones + 1, dtype=np.int64)
    phone_class[speech] = rng.integers(1, 6, size=speech.size)  # class 0: boundary and silence
    popularity = rng.dirichlet(np.full(speech.size, 0.7))
    phones, classes, offsets = [], [], [0]
    total = 0
    while total < num_frames:
        words = rng.choice(speech, size=rng.integers(8, 30), p=popularity)
        seq = [SIL, *words.tolist(), SIL]
        if rng.random() < 0.1:
            seq.insert(len(seq) // 2, SPN)
        for p in seq:
            for s in range(num_pdf_classes[p]):
                d = int(rng.integers(1, 6 if p != SIL else 12))
                phones.append(np.full(d, p))
                classes.append(np.full(d, s))
                total += d
        offsets.append(total)
    phone_ids = np.concatenate(phones).astype(np.int32)
    pdf_classes = np.concatenate(classes).astype(np.int32)
    left, right = phone_contexts(phone_ids, np.array(offsets))
    base = rng.normal(size=(num_phones + 1, 5, dim)) * 2.0
    left_effect = rng.normal(size=(6, 5, dim)) * 0.8
    right_effect = rng.normal(size=(6, 5, dim)) * 0.8
    feats = (
        base[phone_ids, pdf_classes]
        + left_effect[phone_class[left], pdf_classes] * (pdf_classes == 0)[:, None]
        + right_effect[phone_class[right], pdf_classes] * (pdf_classes >= 2)[:, None]
        + rng.normal(size=(phone_ids.size, dim))
    ).astype(np.float32)
    return phone_ids, pdf_classes, feats, np.array(offsets), num_pdf_classes


def main() -> None:
    """Run the benchmark and print timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=250_000)
    parser.add_argument("--max-leaves", type=int, default=0, help="0 = suggest_max_leaves(frames)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup_logging()

    phone_ids, pdf_classes, feats, offsets, num_pdf_classes = synthetic_alignment(args.frames, seed=args.seed)
    t0 = time.perf_counter()
    left, right = phone_contexts(phone_ids, offsets)
    stats = TreeStats.from_frames(left, phone_ids, right, pdf_classes, feats)
    t1 = time.perf_counter()
    questions = build_question_set(stats, max_num_pdf_classes=5, silence_phones=[SIL, SPN])
    t2 = time.perf_counter()
    overrides = {"max_leaves": args.max_leaves} if args.max_leaves else {}
    options = suggest_tree_options(stats.total_count, **overrides)
    roots = make_roots(num_pdf_classes, shared_phone_sets=[[SIL, SPN]])
    tree = build_tree(stats, questions, num_pdf_classes, roots, options)
    t3 = time.perf_counter()
    pdfs = tree.compute_many(stats.keys[:, :3], stats.keys[:, 3])
    t4 = time.perf_counter()
    reachable = sum(len(tree.pdfs_for(p, j)) for p, n in num_pdf_classes.items() for j in range(n))
    t5 = time.perf_counter()
    info = tree.build_info
    print(f"frames {phone_ids.size}, utterances {offsets.size - 1}, distinct keys {stats.num_keys}, dim {stats.dim}")
    print(f"accumulate stats (contexts + from_frames): {t1 - t0:.3f} s")
    print(f"questions ({len(questions.phone_questions)} phone sets):     {t2 - t1:.3f} s")
    print(
        f"build tree (max_leaves {options.max_leaves}, min_count {options.min_count}): {t3 - t2:.3f} s -> "
        f"{info['num_leaves_after_split']} leaves, {tree.num_pdfs} pdfs after {info['num_merges']} merges; "
        f"objf/frame {info['objf_per_frame_initial']:.3f} -> {info['objf_per_frame_final']:.3f}"
    )
    print(f"compute_many over {pdfs.size} keys: {(t4 - t3) * 1e3:.1f} ms")
    print(f"pdfs_for over all (phone, pdf_class): {(t5 - t4) * 1e3:.1f} ms ({reachable} entries)")


if __name__ == "__main__":
    main()
