"""Graph statistics and checks: sizes, label ranges, fewest frames to a final state.

CLI: ``python -m asr.graph.stats HCLG.fst [--num-transition-states N] [--json]`` prints the statistics.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import math
from dataclasses import dataclass

import kaldifst

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraphStats:
    """Size and label statistics of a graph.

    Attributes:
        num_states, num_arcs, num_final_states: sizes.
        num_input_epsilon_arcs: arcs with input label 0 (they consume no frame).
        num_output_labels: arcs with a non-zero output label (words).
        num_self_loops: arcs whose next state is their own state.
        max_ilabel, max_olabel: largest labels (0 for an empty graph).
        num_distinct_ilabels: distinct non-zero input labels.
    """

    num_states: int
    num_arcs: int
    num_final_states: int
    num_input_epsilon_arcs: int
    num_output_labels: int
    num_self_loops: int
    max_ilabel: int
    max_olabel: int
    num_distinct_ilabels: int

    def to_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return dataclasses.asdict(self)


def graph_stats(fst: kaldifst.StdVectorFst) -> GraphStats:
    """Compute :class:`GraphStats` of ``fst`` (one pass over the arcs)."""
    num_arcs = num_eps = num_out = num_loops = num_final = 0
    max_i = max_o = 0
    ilabels = set()
    zero = kaldifst.TropicalWeight.zero
    for s in range(fst.num_states):
        if fst.final(s) != zero:
            num_final += 1
        for arc in kaldifst.ArcIterator(fst, s):
            num_arcs += 1
            il, ol = arc.ilabel, arc.olabel
            if il == 0:
                num_eps += 1
            else:
                ilabels.add(il)
            if ol != 0:
                num_out += 1
            if arc.nextstate == s:
                num_loops += 1
            max_i = max(max_i, il)
            max_o = max(max_o, ol)
    return GraphStats(
        num_states=fst.num_states,
        num_arcs=num_arcs,
        num_final_states=num_final,
        num_input_epsilon_arcs=num_eps,
        num_output_labels=num_out,
        num_self_loops=num_loops,
        max_ilabel=max_i,
        max_olabel=max_o,
        num_distinct_ilabels=len(ilabels),
    )


def check_ilabel_range(fst: kaldifst.StdVectorFst, num_transition_states: int) -> None:
    """Raise ValueError unless every input label is in ``0..num_transition_states``.

    ``kaldi_decoder.DecodableCtc`` has no bounds check: a label past the score matrix reads
    neighbouring memory, so every graph builder calls this before returning a graph.
    """
    for s in range(fst.num_states):
        for arc in kaldifst.ArcIterator(fst, s):
            if not 0 <= arc.ilabel <= num_transition_states:
                raise ValueError(
                    f"state {s}: input label {arc.ilabel} is outside 0..{num_transition_states} "
                    "(the decoder would read past the score matrix)"
                )


def min_frames_to_final(fst: kaldifst.StdVectorFst) -> int | None:
    """Fewest frames (non-epsilon input arcs) on any path from the start to a final state.

    Returns None when no final state is reachable. Used to explain alignment failures
    ("the utterance is shorter than the transcript's shortest HMM path").
    """
    if fst.num_states == 0 or fst.start < 0:
        return None
    zero = kaldifst.TropicalWeight.zero
    dist = [math.inf] * fst.num_states
    dist[fst.start] = 0
    queue = collections.deque([fst.start])
    while queue:  # 0-1 BFS
        s = queue.popleft()
        d = dist[s]
        for arc in kaldifst.ArcIterator(fst, s):
            step = 0 if arc.ilabel == 0 else 1
            if d + step < dist[arc.nextstate]:
                dist[arc.nextstate] = d + step
                if step == 0:
                    queue.appendleft(arc.nextstate)
                else:
                    queue.append(arc.nextstate)
    best = min((dist[s] for s in range(fst.num_states) if fst.final(s) != zero), default=math.inf)
    return None if best == math.inf else int(best)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point: print the statistics of one or more graphs."""
    from asr.graph.fst_io import read_graph
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+", help="FST files (e.g. exp/an4/tri1/graph/HCLG.fst)")
    parser.add_argument("--num-transition-states", type=int, default=None, help="also check the input label range")
    parser.add_argument("--json", action="store_true", help="print one JSON object per graph")
    args = parser.parse_args(argv)
    setup_logging()
    for path in args.graphs:
        fst = read_graph(path)
        stats = graph_stats(fst)
        if args.num_transition_states is not None:
            check_ilabel_range(fst, args.num_transition_states)
        if args.json:
            print(json.dumps({"graph": path, **stats.to_dict()}))
        else:
            fields = " ".join(f"{k}={v}" for k, v in stats.to_dict().items())
            print(f"{path}: {fields}")


if __name__ == "__main__":
    main()
