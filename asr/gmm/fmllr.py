"""Feature-space MLLR (constrained MLLR, CMLLR): per-speaker affine feature transforms ``x -> A x + b``
estimated from diagonal-GMM statistics (Gales 1998; Kaldi's ``gmm-est-fmllr``, ``FmllrDiagGmmAccs``).

Statistics (:class:`FmllrStats`, batched over speakers) of frames ``x_t`` with extended vector
``xi_t = [x_t; 1]`` and Gaussian posteriors ``gamma_tm`` (Viterbi: within the aligned pdf):
``beta = sum gamma``, ``K = sum gamma (mu_m / var_m) xi^T`` [d, d + 1] and per dimension
``G_i = sum gamma / var_mi xi xi^T`` [d + 1, d + 1]. The transform ``W = [A b]`` maximises
``beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)`` (the auxiliary function of the adapted data's
log-likelihood, Jacobian included):

- ``"full"``: the row-by-row update (:func:`asr.gmm.lda_mllt.row_by_row_update`, 40 passes as Kaldi's
  ``--fmllr-num-iters``), from the identity or a given start;
- ``"diag"``: diagonal ``A`` plus bias, in closed form per dimension (fewer parameters: per-utterance use);
- speakers with fewer than ``min_count`` frames (Kaldi's ``--fmllr-min-count`` 500) keep the identity.

:class:`SpeakerAdaptedTransform` is the feature transform of a speaker-adaptively trained system: splice +
LDA+MLLT (:class:`asr.gmm.lda_mllt.SplicedTransform`) then each utterance's speaker's ``W``; it is what
:class:`asr.gmm.align.AlignmentJobs` applies in SAT training. :class:`SpeakerTransforms` are saved as
``trans.pt`` (speaker ids and a [S, d, d + 1] tensor).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from asr.atomic import atomic_path
from asr.errors import ConfigError, InputError
from asr.gmm.lda_mllt import SplicedTransform, row_by_row_update

_F64 = torch.float64
TRANS_FORMAT = "asr.fmllr_transforms"
FMLLR_MIN_COUNT = 500.0
FMLLR_NUM_ITERS = 40
UPDATE_TYPES = ("full", "diag")


# ----------------------------------------------------------------------------------------------------
# Affine transforms


def identity_transform(dim: int) -> np.ndarray:
    """``[I 0]``: float64 [dim, dim + 1]."""
    return np.eye(dim, dim + 1)


def apply_affine(w: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """``x A^T + b`` for frames ``feats`` [T, d] and ``w = [A b]`` [d, d + 1]; float32 [T, d]."""
    w = np.asarray(w, dtype=np.float32)
    d = w.shape[0]
    return np.asarray(feats, dtype=np.float32) @ w[:, :d].T + w[:, d]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The affine map ``outer(inner(x))`` as ``[A b]`` (Kaldi's ``compose-transforms --b-is-affine``)."""
    outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    d = outer.shape[0]
    return np.concatenate([outer[:, :d] @ inner[:, :d], (outer[:, :d] @ inner[:, d] + outer[:, d])[:, None]], axis=1)


@dataclass
class SpeakerTransforms:
    """Per-speaker fMLLR transforms: speaker id -> float64 ``[A b]`` [d, d + 1] (absent: identity)."""

    dim: int
    matrices: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, speaker: str) -> np.ndarray:
        """The speaker's ``[A b]`` (the identity when it has none)."""
        w = self.matrices.get(speaker)
        return identity_transform(self.dim) if w is None else w

    def save(self, path: str | os.PathLike) -> None:
        """Write ``{"format", "dim", "speakers": [ids], "matrices": [S, d, d + 1]}`` atomically (torch.save)."""
        speakers = sorted(self.matrices)
        mats = np.stack([self.matrices[s] for s in speakers]) if speakers else np.zeros((0, self.dim, self.dim + 1))
        state = {"format": TRANS_FORMAT, "dim": self.dim, "speakers": speakers, "matrices": torch.from_numpy(mats)}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpeakerTransforms:
        """Read a file written by :meth:`save` (InputError naming it when missing or malformed)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError("fMLLR transforms not found", path) from None
        except Exception as e:
            raise InputError(f"cannot read fMLLR transforms: {e}", path) from None
        if not isinstance(state, dict) or state.get("format") != TRANS_FORMAT:
            raise InputError(f"not a {TRANS_FORMAT} file", path)
        dim, speakers, mats = int(state["dim"]), list(state["speakers"]), state["matrices"].numpy()
        if mats.shape != (len(speakers), dim, dim + 1):
            raise InputError(f"transforms of shape {mats.shape} for {len(speakers)} speakers of dim {dim}", path)
        return cls(dim, {s: mats[i].astype(np.float64) for i, s in enumerate(speakers)})


@dataclass(frozen=True, eq=False)
class SpeakerAdaptedTransform:
    """Feature transform of a SAT system: ``base`` (splice + LDA+MLLT), then per utterance its speaker's
    fMLLR transform. Callable as ``(rows [T, in], offsets [U + 1], utt_ids) -> float32 [T, d]``.

    Attributes:
        base: the speaker-independent transform.
        utt2spk: utterance -> speaker (an utterance without an entry is its own speaker).
        transforms: the speakers' transforms.
    """

    base: SplicedTransform
    utt2spk: Mapping[str, str]
    transforms: SpeakerTransforms

    def __call__(self, raw: np.ndarray, offsets: np.ndarray | None = None, utt_ids: Sequence[str] | None = None):
        """Adapted features of concatenated utterances (``utt_ids`` required when there are transforms)."""
        feats = self.base(raw, offsets)
        if offsets is None:
            offsets = np.array([0, feats.shape[0]])
        if utt_ids is None:
            raise ValueError("speaker-adapted features need the utterance ids")
        for k, utt in enumerate(utt_ids):
            w = self.transforms.matrices.get(self.utt2spk.get(utt, utt))
            if w is not None:
                lo, hi = int(offsets[k]), int(offsets[k + 1])
                feats[lo:hi] = apply_affine(w, feats[lo:hi])
        return feats


# ----------------------------------------------------------------------------------------------------
# Statistics


@dataclass
class FmllrStats:
    """fMLLR statistics of S speakers (float64): ``beta`` [S], ``k`` [S, d, d + 1], ``g`` [S, d, d + 1, d + 1]."""

    beta: np.ndarray
    k: np.ndarray
    g: np.ndarray

    @classmethod
    def zeros(cls, num_speakers: int, dim: int) -> FmllrStats:
        """Empty statistics."""
        n = dim + 1
        return cls(np.zeros(num_speakers), np.zeros((num_speakers, dim, n)), np.zeros((num_speakers, dim, n, n)))

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return self.k.shape[1]

    def add_(self, other: FmllrStats) -> FmllrStats:
        """Sum in place."""
        self.beta += other.beta
        self.k += other.k
        self.g += other.g
        return self


def accumulate_fmllr_stats(
    gmm,
    feats: torch.Tensor,
    pdf_ids: torch.Tensor,
    speakers: np.ndarray,
    num_speakers: int,
    weights: np.ndarray | None = None,
    *,
    posterior_gmm=None,
    posterior_feats: torch.Tensor | None = None,
    min_post: float = 1e-4,
    chunk: int = 4096,
) -> FmllrStats:
    """fMLLR statistics of aligned frames (Kaldi's ``gmm-est-fmllr`` accumulation; with ``posterior_gmm``,
    ``gmm-post-to-gpost`` + ``gmm-est-fmllr-gpost``).

    Args:
        gmm: :class:`asr.gmm.diag_gmm.DiagGmmSet` whose means and variances enter the statistics.
        feats: [N, d] frames (in the space the transform will act on); pdf_ids: int [N] aligned pdfs.
        speakers: int [N] speaker index of each frame (0..num_speakers-1).
        weights: [N] frame weights (None: 1; e.g. 0 or 0.01 for silence).
        posterior_gmm, posterior_feats: compute the Gaussian posteriors with this model on these frames
            (the speaker-independent model on unadapted features in the first decoding pass); default
            ``gmm`` on ``feats``. The two models must have the same Gaussians per pdf.
        min_post: posteriors below this are dropped.

    Returns:
        :class:`FmllrStats` of ``num_speakers`` speakers.
    """
    dim = gmm.dim
    stats = FmllrStats.zeros(num_speakers, dim)
    if feats.shape[0] == 0:
        return stats
    pg = gmm if posterior_gmm is None else posterior_gmm
    px = feats if posterior_feats is None else posterior_feats
    if pg.num_gauss != gmm.num_gauss or not torch.equal(pg.pdf_offsets.cpu(), gmm.pdf_offsets.cpu()):
        raise ValueError("the posterior model has other Gaussians than the adapted model")
    with torch.no_grad():
        _, gauss, post = pg.gauss_posteriors(px, pdf_ids)
    post = post.to(_F64)
    if weights is not None:
        post = post * torch.as_tensor(weights, dtype=_F64)[:, None]
    keep = (gauss >= 0) & (post >= min_post)
    frame, slot = keep.nonzero(as_tuple=True)
    num_frames = feats.shape[0]
    # sparse [N, G] posteriors: per frame sum_m gamma / var and sum_m gamma mu / var in two sparse products
    post_matrix = torch.sparse_coo_tensor(
        torch.stack([frame, gauss[frame, slot]]), post[frame, slot], (num_frames, gmm.num_gauss), check_invariants=False
    ).coalesce()
    inv_var = 1.0 / gmm.variances.to(_F64)
    w_frame = torch.sparse.mm(post_matrix, inv_var)  # [N, d]
    a_frame = torch.sparse.mm(post_matrix, gmm.means.to(_F64) * inv_var)  # [N, d]
    gamma = torch.zeros(num_frames, dtype=_F64).index_add_(0, frame, post[frame, slot])
    xi = torch.cat([feats.to(_F64), torch.ones(num_frames, 1, dtype=_F64)], dim=1)
    xi32, w32 = xi.float(), w_frame.float()
    speakers = torch.as_tensor(np.asarray(speakers, dtype=np.int64))
    order = torch.argsort(speakers, stable=True)
    counts = torch.bincount(speakers, minlength=num_speakers).tolist()
    n = dim + 1
    k = torch.zeros(num_speakers, dim, n, dtype=_F64)
    g = torch.zeros(num_speakers, dim, n * n, dtype=_F64)
    beta = torch.zeros(num_speakers, dtype=_F64)
    start = 0
    for sp, count in enumerate(counts):
        for s in range(start, start + count, chunk):
            idx = order[s : min(s + chunk, start + count)]
            beta[sp] += gamma[idx].sum()
            k[sp] += a_frame[idx].T @ xi[idx]
            # G_i += w_ti xi xi^T: the [n, (d+1)^2] outer products in float32 (the bulk of the work), sums in
            # float64 per chunk
            x_c = xi32[idx]
            outer = (x_c[:, :, None] * x_c[:, None, :]).reshape(len(idx), n * n)
            g[sp] += (w32[idx].T @ outer).double()
        start += count
    stats.beta, stats.k, stats.g = beta.numpy(), k.numpy(), g.reshape(num_speakers, dim, n, n).numpy()
    return stats


# ----------------------------------------------------------------------------------------------------
# Estimation


@dataclass(frozen=True)
class FmllrResult:
    """What :func:`estimate_fmllr` returns: ``w`` [S, d, d + 1], the objective gain ``gain`` [S] (0 where not
    updated), ``count`` [S] (beta) and ``updated`` [S] (bool: enough frames)."""

    w: np.ndarray
    gain: np.ndarray
    count: np.ndarray
    updated: np.ndarray

    @property
    def gain_per_frame(self) -> float:
        """Total objective gain over the total frames of the updated speakers."""
        frames = float(self.count[self.updated].sum())
        return float(self.gain.sum()) / frames if frames > 0 else 0.0


def fmllr_objective(stats: FmllrStats, w: np.ndarray) -> np.ndarray:
    """The auxiliary function ``beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)`` per speaker."""
    from asr.gmm.lda_mllt import objective

    return objective(stats.g, stats.k, stats.beta, w)


def _diag_update(stats: FmllrStats, active: np.ndarray) -> np.ndarray:
    """Closed-form diagonal ``A`` + bias per dimension (independent 2-variable problems)."""
    s_, d = stats.beta.shape[0], stats.dim
    idx = np.arange(d)
    h11 = stats.g[:, idx, idx, idx]
    h12 = stats.g[:, idx, idx, d]
    h22 = stats.g[:, idx, d, d]
    k1 = stats.k[:, idx, idx]
    k2 = stats.k[:, idx, d]
    beta = stats.beta[:, None]
    c2 = h11 - h12 * h12 / h22
    c1 = k1 - h12 * k2 / h22
    a = (c1 + np.sqrt(c1 * c1 + 4 * c2 * beta)) / (2 * c2)
    b = (k2 - h12 * a) / h22
    w = np.tile(identity_transform(d), (s_, 1, 1))
    w[:, idx, idx] = np.where(active[:, None], a, 1.0)
    w[:, :, d] = np.where(active[:, None], b, 0.0)
    return w


def estimate_fmllr(
    stats: FmllrStats,
    *,
    update_type: str = "full",
    min_count: float = FMLLR_MIN_COUNT,
    num_iters: int = FMLLR_NUM_ITERS,
    init: np.ndarray | None = None,
) -> FmllrResult:
    """fMLLR transforms of every speaker of ``stats`` (Kaldi's ``gmm-est-fmllr``).

    Args:
        stats: statistics of S speakers.
        update_type: ``"full"`` (row-by-row, ``num_iters`` passes) or ``"diag"`` (diagonal A + bias).
        min_count: speakers with fewer frames keep ``init`` (default the identity).
        init: [S, d, d + 1] starting transforms (full update; default the identity).

    Returns:
        :class:`FmllrResult`.
    """
    if update_type not in UPDATE_TYPES:
        raise ConfigError(f"fMLLR update type must be one of {UPDATE_TYPES}, got {update_type!r}")
    s_, d = stats.beta.shape[0], stats.dim
    w0 = np.tile(identity_transform(d), (s_, 1, 1)) if init is None else np.array(init, dtype=np.float64)
    active = stats.beta >= max(min_count, 1e-10)
    if not active.any():
        return FmllrResult(w0, np.zeros(s_), stats.beta.copy(), active)
    before = fmllr_objective(stats, w0)
    if update_type == "diag":
        w = _diag_update(stats, active)
        w = np.where(active[:, None, None], w, w0)
        gain = np.where(active, fmllr_objective(stats, w) - before, 0.0)
        return FmllrResult(w, gain, stats.beta.copy(), active)
    beta = np.where(active, stats.beta, 0.0)
    g = np.where(active[:, None, None, None], stats.g, np.eye(d + 1))
    w, gain = row_by_row_update(g, stats.k, beta, w0, max_iters=num_iters)
    return FmllrResult(w, np.where(active, gain, 0.0), stats.beta.copy(), active)


# ----------------------------------------------------------------------------------------------------
# Job functions (run in the alignment jobs by AlignmentJobs.map_frames)


def fmllr_stats_job(
    view,
    gmm_state: dict,
    utt2spk: Mapping[str, str],
    speakers: Sequence[str],
    silence_phones: Sequence[int],
    silence_weight: float,
) -> tuple[np.ndarray, FmllrStats]:
    """A job's fMLLR statistics on its current features and alignments: ``(speaker indices present, stats of
    those speakers)`` (indices into ``speakers``)."""
    from asr.gmm.diag_gmm import DiagGmmSet
    from asr.gmm.train_lda_mllt import aligned_frames, silence_weights

    gmm = DiagGmmSet.from_state_dict(gmm_state)
    rows, tstates = aligned_frames(view)
    index = {s: i for i, s in enumerate(speakers)}
    frame_utt = np.repeat(np.arange(len(view.utt_ids)), np.diff(view.offsets))
    spk_of_utt = np.array([index[utt2spk.get(u, u)] for u in view.utt_ids], dtype=np.int64)
    present = np.unique(spk_of_utt[frame_utt[rows]]) if len(rows) else np.zeros(0, np.int64)
    local = np.searchsorted(present, spk_of_utt[frame_utt[rows]]) if len(rows) else np.zeros(0, np.int64)
    tm = view.transition_model
    weights = silence_weights(tm.tstate_to_phone[tstates], silence_phones, silence_weight)
    keep = weights > 0
    stats = accumulate_fmllr_stats(
        gmm,
        view.feats[torch.from_numpy(rows[keep])],
        torch.from_numpy(tm.tstate_to_pdf[tstates[keep]].astype(np.int64)),
        local[keep],
        len(present),
        weights[keep],
    )
    return present, stats


def gather_fmllr_stats(results: Sequence[tuple[np.ndarray, FmllrStats]], num_speakers: int, dim: int) -> FmllrStats:
    """Sum the per-job results of :func:`fmllr_stats_job` into statistics of all speakers."""
    total = FmllrStats.zeros(num_speakers, dim)
    for present, stats in results:
        total.beta[present] += stats.beta
        total.k[present] += stats.k
        total.g[present] += stats.g
    return total


def two_feats_stats_job(view, gmm_state: dict, base: SplicedTransform):
    """GMM statistics of the speaker-independent features ``base(raw)`` with the Gaussian posteriors of the
    model on the job's (adapted) features (Kaldi's ``gmm-acc-stats-twofeats``, for the alignment model)."""
    from asr.gmm.accumulate import GmmStats
    from asr.gmm.diag_gmm import DiagGmmSet
    from asr.gmm.train_lda_mllt import aligned_frames

    gmm = DiagGmmSet.from_state_dict(gmm_state)
    rows, tstates = aligned_frames(view)
    stats = GmmStats.zeros_like_model(gmm)
    if len(rows) == 0:
        return stats
    tm = view.transition_model
    pdf_ids = torch.from_numpy(tm.tstate_to_pdf[tstates].astype(np.int64))
    with torch.no_grad():
        _, gauss, post = gmm.gauss_posteriors(view.feats[torch.from_numpy(rows)], pdf_ids)
    si = torch.from_numpy(base(view.raw, view.offsets)[rows]).to(_F64)
    post = post.to(_F64)
    frame, slot = (gauss >= 0).nonzero(as_tuple=True)
    # sparse [G, N] posteriors times [x, x^2]: all Gaussians' moments in one product
    post_t = torch.sparse_coo_tensor(
        torch.stack([gauss[frame, slot], frame]), post[frame, slot], (gmm.num_gauss, len(rows)), check_invariants=False
    ).coalesce()
    moments = torch.sparse.mm(post_t, torch.cat([si, si * si, torch.ones(len(rows), 1, dtype=_F64)], dim=1))
    dim = si.shape[1]
    stats.first_order += moments[:, :dim]
    stats.second_order += moments[:, dim : 2 * dim]
    stats.occupancy += moments[:, 2 * dim]
    stats.frame_count += float(len(rows))
    return stats


__all__ = [
    "FMLLR_MIN_COUNT",
    "FmllrResult",
    "FmllrStats",
    "SpeakerAdaptedTransform",
    "SpeakerTransforms",
    "accumulate_fmllr_stats",
    "apply_affine",
    "compose_affine",
    "estimate_fmllr",
    "fmllr_objective",
    "fmllr_stats_job",
    "gather_fmllr_stats",
    "identity_transform",
    "two_feats_stats_job",
]
