"""HMM side of the GMM-HMM system: topologies, transition models, phonetic context dependency.

- ``asr.hmm.questions``: phone questions for tree building (automatic phone clustering, like Kaldi's
  ``cluster-phones``; user-supplied extra questions; pdf-class questions).
- ``asr.hmm.tree``: triphone tree statistics, decision-tree building (Kaldi's ``build-tree``), and the
  context dependency objects (``ContextDependencyTree``, ``MonophoneContextDependency``) that map a
  phone window and a pdf-class to a pdf id (senone).
"""
