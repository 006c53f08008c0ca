"""GMM side of the GMM-HMM system: diagonal-covariance Gaussian mixture emission models per pdf (senone).

- ``asr.gmm.diag_gmm``: :class:`DiagGmmSet` (Kaldi's ``AmDiagGmm``): scoring of frames against all pdfs or
  against each frame's own pdf, ML update (``gmm-est``), initialisation (``gmm-init-mono`` /
  ``gmm-init-model``), mixing up (``gmm-mixup``), files; ``python -m asr.gmm.diag_gmm MODEL`` prints a
  summary (``gmm-info``).
- ``asr.gmm.accumulate``: :class:`GmmStats` (``AccumAmDiagGmm``) and their accumulation from frames
  aligned to pdfs (``gmm-acc-stats-ali``).
"""

from asr.gmm.accumulate import GmmStats, accumulate_pdf_stats, accumulate_stats, feature_mean_variance
from asr.gmm.diag_gmm import DiagGmmSet, GmmUpdateOptions, UpdateReport, split_targets

__all__ = [
    "DiagGmmSet",
    "GmmStats",
    "GmmUpdateOptions",
    "UpdateReport",
    "accumulate_pdf_stats",
    "accumulate_stats",
    "feature_mean_variance",
    "split_targets",
]
