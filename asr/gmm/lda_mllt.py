"""LDA and MLLT feature transforms for GMM-HMM training (Kaldi's ``splice-feats``, ``acc-lda``/``est-lda``,
``gmm-acc-mllt``/``est-mllt``), and the spliced linear transform a model applies on the fly.

- :class:`SplicedTransform`: each frame of an utterance spliced with ``left`` / ``right`` neighbours (edges
  repeat the first / last frame, as ``splice-feats``), times a matrix ``[out, (left + 1 + right) * in]``
  (``transform-feats``). On 13 CMVN'd MFCC with +-3 frames: 91 -> 40 dims. Stored with the model
  (``final.mat.pt``) and applied to the archive rows when the model scores them.
- LDA (:class:`LdaStats`, :func:`estimate_lda`): per-class counts and sums and the total scatter of the
  spliced frames (classes: the pdfs of the alignment's model; silence frames left out, as Kaldi's
  ``weight-silence-post 0.0``); the transform maps the within-class covariance to the identity and
  diagonalises the between-class covariance, keeping the ``dim`` most discriminant directions (``est-lda``:
  Cholesky of the within-class covariance ``W = C C^T``, eigenvectors ``U`` of ``C^-1 B C^-T``, matrix
  ``U[:, :dim]^T C^-1``).
- MLLT (a global semi-tied covariance, Gales 1999): statistics :class:`MlltStats` ``beta`` (frames) and per
  dimension ``G_i = sum_t sum_m gamma_tm / var_mi (x_t - mu_m)(x_t - mu_m)^T`` under the current diagonal
  model; :func:`estimate_mllt` maximises ``beta log|det A| - 1/2 sum_i a_i G_i a_i^T`` over the square
  matrix ``A`` by the row-by-row update (each row in closed form given the others), starting from the
  identity. The trainer then multiplies the model's means by ``A`` and the transform by ``A`` (the new
  features are ``A x``); variances are re-estimated by the next EM update.

The row update (:func:`row_by_row_update`) is shared with fMLLR (:mod:`asr.gmm.fmllr`), which adds a linear
term and a bias column: maximise ``beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)`` with
``W = [A b]``, row ``w_i = alpha G_i^-1 p + G_i^-1 k_i`` where ``p`` is column i of ``A^-1`` (the cofactors
over the determinant, 0 for the bias) and ``alpha`` the root of ``a alpha^2 + b alpha - beta = 0``
(``a = p G_i^-1 p``, ``b = k_i G_i^-1 p``) that gives the higher objective (Gales 1998; Kaldi's
``ComputeFmllrMatrixDiagGmmFull`` and ``MlltAccs::Update``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.atomic import atomic_path
from asr.errors import InputError

logger = logging.getLogger(__name__)

SPLICE_CONTEXT = 3
LDA_DIM = 40
TRANSFORM_FORMAT = "asr.spliced_transform"
TRANSFORM_VERSION = 1
_F64 = torch.float64


# ----------------------------------------------------------------------------------------------------
# Splicing and the spliced linear transform


def context_indices(offsets: np.ndarray, left: int, right: int, frames: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the context windows of frames of concatenated utterances.

    Args:
        offsets: int [U + 1] utterance boundaries (``offsets[-1]`` = total frames).
        left, right: context frames before and after.
        frames: which frames (default: all, in order).

    Returns:
        int64 ``[N, left + 1 + right]``: row ``t + r`` clamped to the frame's own utterance (edges repeated).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    total = int(offsets[-1])
    frames = np.arange(total, dtype=np.int64) if frames is None else np.asarray(frames, dtype=np.int64)
    utt = np.searchsorted(offsets, frames, side="right") - 1
    start, end = offsets[utt], offsets[utt + 1] - 1
    rel = np.arange(-left, right + 1, dtype=np.int64)
    return np.clip(frames[:, None] + rel[None, :], start[:, None], end[:, None])


def splice_frames(feats: np.ndarray, offsets: np.ndarray, left: int, right: int, frames: np.ndarray | None = None):
    """Spliced frames ``[N, (left + 1 + right) * D]`` (Kaldi's ``splice-feats``) of concatenated utterances."""
    idx = context_indices(offsets, left, right, frames)
    return np.asarray(feats)[idx].reshape(idx.shape[0], -1)


@dataclass(frozen=True, eq=False)
class SplicedTransform:
    """Splice +-``left``/``right`` frames, then multiply by ``matrix`` (``splice-feats | transform-feats``).

    Callable as the feature transform of :class:`asr.gmm.align.AlignmentJobs` and of
    :class:`asr.gmm.model.GmmAcousticModel`: ``transform(raw [T, in], offsets [U + 1]) -> float32 [T, out]``.

    Attributes:
        matrix: float64 ``[out, (left + 1 + right) * in]``.
        left, right: context frames.
    """

    matrix: np.ndarray
    left: int = SPLICE_CONTEXT
    right: int = SPLICE_CONTEXT

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] % (self.left + 1 + self.right):
            raise ValueError(f"matrix of shape {m.shape} does not fit a context of {self.left}+1+{self.right} frames")
        if not np.all(np.isfinite(m)):
            raise ValueError("non-finite transform matrix")
        object.__setattr__(self, "matrix", m)

    @property
    def context(self) -> int:
        """Frames per window."""
        return self.left + 1 + self.right

    @property
    def input_dim(self) -> int:
        """Dimension of the rows it reads (13 MFCC)."""
        return self.matrix.shape[1] // self.context

    @property
    def output_dim(self) -> int:
        """Dimension of the features it makes (40)."""
        return self.matrix.shape[0]

    def __call__(self, raw: np.ndarray, offsets: np.ndarray | None = None, utt_ids: Sequence[str] | None = None):
        """Transform concatenated utterances' rows ``[T, input_dim]`` (``offsets`` [U + 1], default one
        utterance) -> float32 ``[T, output_dim]``. ``utt_ids`` is accepted for the feature-transform protocol."""
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim != 2 or raw.shape[1] != self.input_dim:
            raise ValueError(f"features must be [T, {self.input_dim}], got shape {raw.shape}")
        if offsets is None:
            offsets = np.array([0, raw.shape[0]], dtype=np.int64)
        out = np.zeros((raw.shape[0], self.output_dim), dtype=np.float32)
        if raw.shape[0] == 0:
            return out
        idx = context_indices(offsets, self.left, self.right)
        m = self.matrix.astype(np.float32)
        d = self.input_dim
        for r in range(self.context):  # sum over window positions: no [T, 91] temporary
            out += raw[idx[:, r]] @ m[:, r * d : (r + 1) * d].T
        return out

    def compose(self, a: np.ndarray) -> SplicedTransform:
        """The transform followed by the square matrix ``a`` (features ``a @ x``)."""
        return SplicedTransform(np.asarray(a, np.float64) @ self.matrix, self.left, self.right)

    def state_dict(self) -> dict:
        """Plain tensors and ints (``torch.save``-able, loadable with ``weights_only=True``)."""
        return {
            "format": TRANSFORM_FORMAT,
            "version": TRANSFORM_VERSION,
            "matrix": torch.from_numpy(self.matrix.copy()),
            "left": self.left,
            "right": self.right,
        }

    @classmethod
    def from_state_dict(cls, state: dict, path: str | os.PathLike | None = None) -> SplicedTransform:
        """Inverse of :meth:`state_dict` (InputError naming ``path`` on a malformed one)."""
        if not isinstance(state, dict) or state.get("format") != TRANSFORM_FORMAT:
            raise InputError(f"not a {TRANSFORM_FORMAT} file", path)
        try:
            return cls(np.asarray(state["matrix"].numpy(), np.float64), int(state["left"]), int(state["right"]))
        except (KeyError, AttributeError, ValueError) as e:
            raise InputError(f"malformed transform: {e}", path) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically with ``torch.save``."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SplicedTransform:
        """Read a file written by :meth:`save` (InputError naming it when missing or malformed)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError("transform file not found", path) from None
        except Exception as e:  # torch raises several kinds on a corrupt file
            raise InputError(f"cannot read transform: {e}", path) from None
        return cls.from_state_dict(state, path)


# ----------------------------------------------------------------------------------------------------
# LDA


@dataclass
class LdaStats:
    """Class statistics for LDA (Kaldi's ``LdaEstimate``): per class count and sum, and the total scatter.

    Attributes:
        count: float64 [C]; sums: float64 [C, D]; scatter: float64 [D, D] (sum of ``x x^T`` over all frames).
    """

    count: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int, dim: int) -> LdaStats:
        """Empty statistics."""
        return cls(np.zeros(num_classes), np.zeros((num_classes, dim)), np.zeros((dim, dim)))

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.scatter.shape[0]

    def accumulate(self, feats: np.ndarray, classes: np.ndarray, chunk: int = 32768) -> LdaStats:
        """Add frames ``[N, D]`` of classes ``[N]`` (in place; returns self)."""
        classes = np.asarray(classes, dtype=np.int64)
        for s in range(0, len(classes), chunk):
            x = torch.from_numpy(np.asarray(feats[s : s + chunk], dtype=np.float64))
            c = classes[s : s + chunk]
            self.count += np.bincount(c, minlength=len(self.count))
            torch.from_numpy(self.sums).index_add_(0, torch.from_numpy(c), x)  # in place on self.sums
            self.scatter += (x.T @ x).numpy()  # torch's BLAS: NumPy's threaded one is slow on a busy machine
        return self

    def add_(self, other: LdaStats) -> LdaStats:
        """Sum in place."""
        self.count += other.count
        self.sums += other.sums
        self.scatter += other.scatter
        return self


@dataclass(frozen=True)
class LdaResult:
    """What :func:`estimate_lda` returns.

    Attributes:
        matrix: float64 [dim, D], rows ordered by decreasing discriminance.
        eigenvalues: float64 [D] of ``C^-1 B C^-T`` (between over within class variance), decreasing.
        num_frames, num_classes: frames and classes with data.
    """

    matrix: np.ndarray
    eigenvalues: np.ndarray
    num_frames: float
    num_classes: int


def estimate_lda(stats: LdaStats, dim: int = LDA_DIM) -> LdaResult:
    """Kaldi's ``est-lda``: the ``dim`` x D LDA matrix from class statistics (no offset).

    Total covariance ``T = scatter / n - mu mu^T``, between-class ``B = sum_c n_c mu_c mu_c^T / n - mu mu^T``,
    within-class ``W = T - B``; with ``W = C C^T`` (Cholesky) and ``C^-1 B C^-T = U diag(s) U^T`` (``s``
    decreasing), the matrix is ``U[:, :dim]^T C^-1``: the transformed features have identity within-class
    covariance and diagonal between-class covariance ``diag(s[:dim])``.

    Raises:
        ValueError: no data, ``dim`` larger than D, or a singular within-class covariance.
    """
    n = float(stats.count.sum())
    if n <= 0:
        raise ValueError("LDA: no frames")
    if not 1 <= dim <= stats.dim:
        raise ValueError(f"LDA dimension {dim} must be in 1..{stats.dim}")
    mean = stats.sums.sum(0) / n
    total = stats.scatter / n - np.outer(mean, mean)
    used = stats.count > 0
    class_means = stats.sums[used] / stats.count[used, None]
    between = (class_means.T * stats.count[used]) @ class_means / n - np.outer(mean, mean)
    within = total - between
    within = 0.5 * (within + within.T)
    try:
        chol = np.linalg.cholesky(within)
    except np.linalg.LinAlgError:
        raise ValueError("LDA: the within-class covariance is not positive definite") from None
    cinv = np.linalg.inv(chol)
    b = cinv @ between @ cinv.T
    s, u = np.linalg.eigh(0.5 * (b + b.T))
    order = np.argsort(s)[::-1]
    s, u = s[order], u[:, order]
    return LdaResult(u[:, :dim].T @ cinv, s, n, int(used.sum()))


# ----------------------------------------------------------------------------------------------------
# Row-by-row update (MLLT and fMLLR)


def row_by_row_update(
    g: np.ndarray,
    k: np.ndarray | None,
    beta: np.ndarray,
    w: np.ndarray,
    *,
    max_iters: int = 40,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)`` over ``W = [A (b)]`` row by row,
    for a batch of independent problems (speakers), in float64 NumPy.

    Each row update is the exact maximiser given the other rows (module docstring); ``A^-1`` is kept up to
    date by Sherman-Morrison after each row and recomputed once per pass.

    Args:
        g: [S, d, n, n] ``G_i`` per problem (n = d: square, MLLT; n = d + 1: affine, fMLLR), positive definite.
        k: [S, d, n] linear terms ``k_i`` (None: zero, as MLLT).
        beta: [S] frame counts (problems with ``beta <= 0`` are left as they are).
        w: [S, d, n] starting point (e.g. the identity), with nonzero ``det A``.
        max_iters: passes over the rows; stops earlier when no problem gains more than ``tol * beta`` in a pass.
        tol: convergence threshold per frame.

    Returns:
        ``(W [S, d, n], objf_gain [S])``: the updated matrices and the gain of the objective (>= 0).
    """
    g = np.asarray(g, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    w = np.array(w, dtype=np.float64)
    s_, d, n = w.shape
    active = beta > 0
    ginv = np.linalg.inv(np.where(active[:, None, None, None], g, np.eye(n)))
    ginv_k = None if k is None else (ginv @ np.asarray(k, dtype=np.float64)[..., None])[..., 0]
    start = objective(g, k, beta, w)
    previous = start
    safe_beta = np.maximum(beta, 1e-300)
    for _ in range(max_iters):
        ainv = np.linalg.inv(w[:, :, :d])
        for i in range(d):
            p = np.zeros((s_, n))
            p[:, :d] = ainv[:, :, i]  # column i of A^-1: the cofactors of row i over det(A)
            gi_p = (ginv[:, i] @ p[:, :, None])[:, :, 0]
            a = np.einsum("sn,sn->s", p, gi_p)
            if ginv_k is None:
                new = np.sqrt(safe_beta / a)[:, None] * gi_p
            else:
                ki = k[:, i]
                b = np.einsum("sn,sn->s", ki, gi_p)
                root = np.sqrt(b * b + 4.0 * a * beta)
                cands = [((-b + sign * root) / (2 * a))[:, None] * gi_p + ginv_k[:, i] for sign in (1.0, -1.0)]
                vals = []
                for c in cands:
                    dot = np.abs(np.einsum("sn,sn->s", c, p))
                    quad = np.einsum("sn,sn->s", (g[:, i] @ c[:, :, None])[:, :, 0], c)
                    vals.append(beta * np.log(np.maximum(dot, 1e-300)) + np.einsum("sn,sn->s", c, ki) - 0.5 * quad)
                new = np.where((vals[0] >= vals[1])[:, None], cands[0], cands[1])
            new = np.where(active[:, None], new, w[:, i])
            delta = new[:, :d] - w[:, i, :d]
            u = ainv[:, :, i].copy()
            v = (delta[:, None, :] @ ainv)[:, 0, :]
            denom = 1.0 + np.einsum("sd,sd->s", delta, u)
            ainv -= u[:, :, None] * (v / denom[:, None])[:, None, :]
            w[:, i] = new
        now = objective(g, k, beta, w)
        done = bool(np.all(now - previous <= tol * np.maximum(beta, 1.0)))
        previous = now
        if done:
            break
    return w, previous - start


def objective(g: np.ndarray, k: np.ndarray | None, beta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i^T)`` per problem ([S]; see :func:`row_by_row_update`)."""
    w = np.asarray(w, dtype=np.float64)
    d = w.shape[1]
    logdet = np.linalg.slogdet(w[:, :, :d])[1]
    quad = np.einsum("sin,sin->s", (np.asarray(g, dtype=np.float64) @ w[..., None])[..., 0], w)
    lin = 0.0 if k is None else np.einsum("sin,sin->s", w, np.asarray(k, dtype=np.float64))
    return np.asarray(beta, dtype=np.float64) * logdet + lin - 0.5 * quad


# ----------------------------------------------------------------------------------------------------
# MLLT


@dataclass
class MlltStats:
    """MLLT statistics: ``beta`` (weighted frames) and ``g`` float64 [d, d, d] (``G_i`` per dimension i)."""

    beta: float
    g: torch.Tensor

    @classmethod
    def zeros(cls, dim: int) -> MlltStats:
        """Empty statistics."""
        return cls(0.0, torch.zeros(dim, dim, dim, dtype=_F64))

    def add_(self, other: MlltStats) -> MlltStats:
        """Sum in place."""
        self.beta += other.beta
        self.g += other.g
        return self


def accumulate_mllt_stats(
    gmm,
    feats: torch.Tensor,
    pdf_ids: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    min_post: float = 1e-4,
) -> MlltStats:
    """MLLT statistics of aligned frames under a diagonal GMM set (Kaldi's ``gmm-acc-mllt``).

    Per frame the posteriors of its pdf's Gaussians (those below ``min_post`` are dropped; Kaldi drops
    small ones at random with ``--rand-prune``), then ``G_i += gamma / var_i (x - mu)(x - mu)^T``.

    Args:
        gmm: :class:`asr.gmm.diag_gmm.DiagGmmSet` of dimension d.
        feats: [N, d] frames; pdf_ids: int [N] their aligned pdfs; weights: [N] frame weights (None: 1;
            e.g. 0 for silence).

    Returns:
        :class:`MlltStats`.
    """
    dim = gmm.dim
    stats = MlltStats.zeros(dim)
    if feats.shape[0] == 0:
        return stats
    _, gauss, post = gmm.gauss_posteriors(feats, pdf_ids)
    post = post.to(_F64)
    if weights is not None:
        post = post * weights.to(_F64)[:, None]
    post = torch.where((gauss >= 0) & (post >= min_post), post, torch.zeros((), dtype=_F64))
    # Per Gaussian g: occupancy, first moment m1 and full second moment M2 (one matmul per pdf over its
    # frames), then G_i = sum_g inv_var_gi (M2_g - mu_g m1_g^T - m1_g mu_g^T + occ_g mu_g mu_g^T): d^2 work per
    # (frame, Gaussian) pair in BLAS instead of d^3 for the per-pair outer products.
    num_gauss = gmm.num_gauss
    occ = torch.zeros(num_gauss, dtype=_F64)
    m1 = torch.zeros(num_gauss, dim, dtype=_F64)
    m2 = torch.zeros(num_gauss, dim, dim, dtype=_F64)
    pdf_ids = pdf_ids.to(torch.int64)
    order = torch.argsort(pdf_ids, stable=True)
    counts = torch.bincount(pdf_ids, minlength=gmm.num_pdfs).tolist()
    x_sorted, post_sorted = feats.to(_F64)[order], post[order]
    offsets = gmm.pdf_offsets.tolist()
    start = 0
    for pdf, n in enumerate(counts):
        if n == 0:
            continue
        g0, g1 = offsets[pdf], offsets[pdf + 1]
        xs, ps = x_sorted[start : start + n], post_sorted[start : start + n, : g1 - g0]  # [n, d], [n, m]
        occ[g0:g1] = ps.sum(0)
        m1[g0:g1] = ps.T @ xs
        weighted = (ps[:, :, None] * xs[:, None, :]).reshape(n, -1)  # [n, m * d]
        m2[g0:g1] = (weighted.T @ xs).reshape(g1 - g0, dim, dim)
        start += n
    stats.beta = float(occ.sum())
    used = occ > 0
    mu = gmm.means.to(_F64)[used]
    m1, m2, occ = m1[used], m2[used], occ[used]
    cross = mu[:, :, None] * m1[:, None, :]
    scatter = m2 - cross - cross.transpose(1, 2) + occ[:, None, None] * (mu[:, :, None] * mu[:, None, :])
    inv_var = 1.0 / gmm.variances.to(_F64)[used]
    stats.g = (inv_var.T @ scatter.reshape(-1, dim * dim)).reshape(dim, dim, dim)
    return stats


@dataclass(frozen=True)
class MlltResult:
    """What :func:`estimate_mllt` returns: ``matrix`` [d, d] (new features ``A x``), ``objf_gain`` (total),
    ``count`` (beta) and the gain per frame."""

    matrix: np.ndarray
    objf_gain: float
    count: float

    @property
    def gain_per_frame(self) -> float:
        """Objective gain per frame."""
        return self.objf_gain / self.count if self.count > 0 else 0.0


def estimate_mllt(stats: MlltStats, max_iters: int = 200) -> MlltResult:
    """Kaldi's ``est-mllt``: the semi-tied transform ``A`` from the identity by row-by-row updates (up to 200
    passes, as Kaldi, stopping when a pass gains less than 1e-8 per frame).

    Maximises ``beta log|det A| - 1/2 sum_i a_i G_i a_i^T``, the auxiliary function of the data
    log-likelihood (Jacobian included) with the model's current diagonal variances.

    Raises:
        ValueError: no frames.
    """
    if stats.beta <= 0:
        raise ValueError("MLLT: no frames")
    dim = stats.g.shape[0]
    w0 = np.eye(dim)[None]
    g = stats.g.numpy()[None]
    w, gain = row_by_row_update(g, None, np.array([stats.beta]), w0, max_iters=max_iters)
    return MlltResult(w[0], float(gain[0]), stats.beta)


def transform_gmm_means(gmm, a: np.ndarray):
    """The GMM set with every mean multiplied by ``a`` (Kaldi's ``gmm-transform-means``); variances unchanged."""
    from asr.gmm.diag_gmm import DiagGmmSet

    at = torch.from_numpy(np.asarray(a, dtype=np.float64)).T
    means = (gmm.means.to(_F64) @ at).to(gmm.dtype)
    return DiagGmmSet(means, gmm.variances, gmm.weights, gmm.pdf_offsets)


def log_det(a: np.ndarray) -> float:
    """``log|det a|``."""
    return float(np.linalg.slogdet(np.asarray(a, dtype=np.float64))[1])


__all__ = [
    "LDA_DIM",
    "SPLICE_CONTEXT",
    "LdaResult",
    "LdaStats",
    "MlltResult",
    "MlltStats",
    "SplicedTransform",
    "accumulate_mllt_stats",
    "context_indices",
    "estimate_lda",
    "estimate_mllt",
    "log_det",
    "objective",
    "row_by_row_update",
    "splice_frames",
    "transform_gmm_means",
]
