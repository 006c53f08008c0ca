"""Decoding graphs with kaldifst: H, HCLG, forced-alignment graphs, HMM self-loops, graph I/O.

- ``asr.graph.h_transducer``: H built from ``kaldifst.compose_context``'s ilabels and a transition model.
- ``asr.graph.hmm_self_loops``: make every state's incoming input label unique, add HMM self-loops.
- ``asr.graph.hclg``: ``make_hclg`` (Kaldi's mkgraph.sh order: LG, CLG, H o CLG, self-loops).
- ``asr.graph.alignment_graph``: per-utterance forced-alignment graphs (L o words, then the same steps).
- ``asr.graph.fst_io``: write/read ``HCLG.fst`` atomically; ``asr.graph.stats``: graph statistics
  (``python -m asr.graph.stats HCLG.fst``).
- ``asr.graph.mkgraph``: HCLG for a lang dir and a model dir (``python -m asr.graph.mkgraph``).
- ``asr.graph.toy``: tiny hand-made lexicons, grammars and context dependencies for tests and benchmarks.

Graph input labels are transition-state ids + 1 (see ``asr.hmm.transition_model``); output labels are
word ids. The order of operations follows the team's verified kaldifst notes (WFST_NOTES.md): read
them before changing it (e.g. HMM self-loops inside H before determinization do not terminate in general).
"""
