"""Diagonal-covariance GMM acoustic model: one Gaussian mixture per pdf (senone), in torch tensors.

:class:`DiagGmmSet` is Kaldi's ``AmDiagGmm``: P pdfs, pdf ``p`` a mixture of ``M_p`` diagonal Gaussians
over D-dim features. It scores frames (E-step, decoding, alignment), is re-estimated from
:class:`~asr.gmm.accumulate.GmmStats` (ML update with Kaldi's safeguards), initialised from statistics or
flat, mixed up (Kaldi's ``gmm-mixup``), and saved as plain tensors.

Layout (the choice, and why):
    Canonical storage is FLAT: ``means`` / ``variances`` [G, D], ``weights`` [G], with each pdf's Gaussians
    contiguous and in pdf order, ``pdf_offsets`` int64 [P + 1] (pdf ``p`` owns rows
    ``pdf_offsets[p]:pdf_offsets[p+1]``) and the derived ``gauss_to_pdf`` [G]. After mixing up, mixture
    sizes differ per pdf (Kaldi gives pdfs ``occupancy^0.2``-proportional shares: 1 to ~3x the mean), so a
    padded [P, Mmax, D] layout would waste a third to a half of every matmul column, every statistic and
    every file on padding, and removal/splitting would have to keep masks in step. Flat rows make the
    statistics a plain ``index_add_`` over Gaussian ids, removal a boolean mask, and files compact.

    For scoring, two cached views are derived from the flat rows (built once per model; models are
    immutable: ``update`` and ``split`` return new ones):

    - all pdfs (``log_likelihoods``): per Gaussian the natural parameters ``W`` [G, 2D + 1] =
      ``[-0.5 / var, mean / var, gconst]`` (gconst: log weight, log det, mean term; :class:`NaturalParams`),
      so that ``loglik[N, G] = [x^2, x, 1] @ W^T`` is ONE matrix product per frame batch. The columns are
      permuted so that pdfs with the same mixture size ``m`` are adjacent and component-major
      (column = component * n_m + pdf rank): the per-pdf log-sum-exp is then, per distinct size (a handful),
      elementwise work over the [B, m, n_m] view reduced over its strided middle axis, which vectorises
      along pdfs (reducing over a tiny innermost axis of size 2..30, as a padded [P, Mmax] layout does, is
      slower on CPU: ``python -m asr.bench.gmm`` prints both), with no padding columns.
    - own pdf only (training, alignment scoring: ``log_likelihoods_of``, ``gauss_posteriors``,
      ``iter_own_pdf_loglikes``): frames are grouped by their pdf's mixture size; per group the rows of
      ``W`` of each frame's pdf are gathered ([n, m, 2D + 1]) and scored with one batched matmul. This
      costs ``m`` dot products per frame instead of G (tens of times cheaper than scoring all pdfs).

    Features are centred on the mean of the Gaussian means before scoring (``W`` is computed in float64
    for the shifted coordinates, then cast), so the float32 matmul does not lose digits to the
    cancellation of ``x^2 / var`` against ``2 x mean / var`` on un-normalised features (MFCC c0).

Precision: parameters and scores in the model dtype (float32 default); statistics, the update and the
natural parameters are computed in float64. Everything runs on the device the tensors are on.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from asr.atomic import atomic_path, torch_save
from asr.errors import InputError
from asr.gmm.accumulate import GmmStats, _check_offsets, _load_tensor_dict, check_aligned_frames
from asr.logging_setup import setup_logging

logger = logging.getLogger(__name__)

MODEL_FORMAT = "asr.diag_gmm_set"
MODEL_VERSION = 1
LOG_2PI = math.log(2.0 * math.pi)
_F64 = torch.float64

# Bound on the elements of the largest per-batch temporary (B * G scores for all pdfs, n * m * 2D gathered
# parameters for own-pdf scoring): 2^21 floats = 8 MiB, small enough to stay near the CPU caches.
DEFAULT_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class GmmUpdateOptions:
    """Options of the ML update (Kaldi's ``MleDiagGmmOptions``; defaults as ``gmm-est`` where it has them).

    Attributes:
        var_floor_fraction: variance floor = this fraction of the global variance of the data in the
            statistics, per dimension (HTK's ``-v``-style relative floor; Kaldi's ``gmm-est`` has only an
            absolute ``--min-variance``).
        min_variance: absolute variance floor applied on top (guards constant feature dimensions).
        min_gaussian_occupancy: a Gaussian needs occupancy above this to be re-estimated (``--min-gaussian-occupancy``).
        min_gaussian_weight: ... and a weight above this (``--min-gaussian-weight``).
        remove_low_count_gaussians: remove Gaussians failing the two tests above, but never the last one of a
            pdf (``--remove-low-count-gaussians``). When False, or for the one kept, mean and variance keep
            their old values and the weight becomes ``max(weight, min_gaussian_weight)``.
    """

    var_floor_fraction: float = 0.01
    min_variance: float = 1e-6
    min_gaussian_occupancy: float = 10.0
    min_gaussian_weight: float = 1e-5
    remove_low_count_gaussians: bool = True

    def __post_init__(self) -> None:
        if not self.var_floor_fraction >= 0 or not self.min_variance > 0:
            raise ValueError("var_floor_fraction must be >= 0 and min_variance > 0")
        if not self.min_gaussian_occupancy >= 0 or not 0 <= self.min_gaussian_weight < 1:
            raise ValueError("min_gaussian_occupancy must be >= 0 and min_gaussian_weight in [0, 1)")


@dataclass
class UpdateReport:
    """What an ML update did (logged by :meth:`DiagGmmSet.update`, also handy in tests).

    Attributes:
        num_frames: weighted frames in the statistics.
        loglike_per_frame: average log-likelihood of those frames under the model BEFORE the update (the
            model that accumulated them; the EM objective, which never decreases over iterations).
        aux_objf_change_per_frame: increase of the EM auxiliary function per frame, over the Gaussians the
            new model keeps (Kaldi's "objective function improvement").
        num_pdfs_without_data: pdfs with zero occupancy; they keep all their parameters.
        num_gauss_before, num_gauss_after: Gaussian counts.
        num_gauss_removed: low-count Gaussians removed.
        num_gauss_not_updated: low-count Gaussians kept (last of their pdf, or removal off) with old mean/var.
        num_variances_floored: variance elements raised to the floor; num_gauss_floored: Gaussians with any.
    """

    num_frames: float
    loglike_per_frame: float
    aux_objf_change_per_frame: float
    num_pdfs_without_data: int
    num_gauss_before: int
    num_gauss_after: int
    num_gauss_removed: int
    num_gauss_not_updated: int
    num_variances_floored: int
    num_gauss_floored: int


@dataclass(frozen=True)
class NaturalParams:
    """Scoring parameters of every Gaussian: ``log(w_g N(x; g)) = [(x - center)^2, x - center, 1] . weight[g]``.

    Attributes:
        center: [D] the shift applied to features before scoring (mean of the Gaussian means).
        weight: [G, 2D + 1]: ``[-0.5 / var, (mean - center) / var, gconst]`` with ``gconst = log w - 0.5 (D log
            2 pi + sum log var + sum (mean - center)^2 / var)``; computed in float64, stored in the model dtype.
    """

    center: torch.Tensor
    weight: torch.Tensor


@dataclass(frozen=True)
class _AllPdfLayout:
    weight_t: torch.Tensor  # [2D + 1, G] columns permuted into groups, contiguous (for mm)
    groups: tuple[tuple[int, int, int], ...]  # (first column, num pdfs n, mixture size m)
    inverse_pdf_order: torch.Tensor  # [P]: column of pdf p in the grouped result


class DiagGmmSet:
    """P pdfs, each a mixture of diagonal Gaussians, stored flat (see the module docstring).

    Args:
        means: [G, D] float.
        variances: [G, D] positive.
        weights: [G] positive, summing to 1 within each pdf (tolerance 1e-3).
        pdf_offsets: int [P + 1], strictly increasing from 0 to G.

    Tensors are kept in the dtype and on the device of ``means``; treat them as read-only (methods return
    new models).

    Raises:
        ValueError: inconsistent shapes or invalid values.
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor, weights: torch.Tensor, pdf_offsets: torch.Tensor):
        if means.dim() != 2 or not means.is_floating_point():
            raise ValueError(f"means must be a float [G, D] tensor, got {tuple(means.shape)} {means.dtype}")
        dev, dt = means.device, means.dtype
        self.means = means
        self.variances = variances.to(dev, dt)
        self.weights = weights.to(dev, dt)
        if pdf_offsets.is_floating_point():
            raise ValueError("pdf_offsets must be an integer tensor")
        self.pdf_offsets = pdf_offsets.to(dev, torch.int64)
        g = means.shape[0]
        if self.variances.shape != means.shape or self.weights.shape != (g,):
            raise ValueError(
                f"inconsistent shapes: means {tuple(means.shape)}, variances {tuple(self.variances.shape)}, "
                f"weights {tuple(self.weights.shape)}"
            )
        _check_offsets(self.pdf_offsets, g)
        if not bool(torch.isfinite(self.means).all()):
            raise ValueError("non-finite means")
        if not bool((self.variances > 0).all()) or not bool(torch.isfinite(self.variances).all()):
            raise ValueError("variances must be positive and finite")
        if not bool((self.weights > 0).all()) or not bool((self.weights <= 1).all()):
            raise ValueError("weights must be in (0, 1]")
        sums = torch.zeros(self.num_pdfs, dtype=_F64, device=dev).index_add_(
            0, self.gauss_to_pdf, self.weights.to(_F64)
        )
        worst = float((sums - 1).abs().max())
        if worst > 1e-3:
            raise ValueError(f"mixture weights of a pdf do not sum to 1 (off by {worst:.3g})")

    # ------------------------------------------------------------------------------------------------
    # Shape and layout

    @property
    def num_pdfs(self) -> int:
        """Number of pdfs (senones) P."""
        return self.pdf_offsets.shape[0] - 1

    @property
    def num_gauss(self) -> int:
        """Total number of Gaussians G."""
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.means.shape[1]

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters and of the scores."""
        return self.means.dtype

    @cached_property
    def num_gauss_per_pdf(self) -> torch.Tensor:
        """int64 [P]: mixture size of each pdf."""
        return self.pdf_offsets[1:] - self.pdf_offsets[:-1]

    @cached_property
    def gauss_to_pdf(self) -> torch.Tensor:
        """int64 [G]: pdf of each Gaussian."""
        return torch.repeat_interleave(torch.arange(self.num_pdfs, device=self.device), self.num_gauss_per_pdf)

    @cached_property
    def max_gauss_per_pdf(self) -> int:
        """The largest mixture size."""
        return int(self.num_gauss_per_pdf.max())

    @property
    def log_weights(self) -> torch.Tensor:
        """[G] log mixture weights."""
        return self.weights.log()

    def gauss_range(self, pdf_id: int) -> range:
        """Return the Gaussian ids (rows) of ``pdf_id``."""
        return range(int(self.pdf_offsets[pdf_id]), int(self.pdf_offsets[pdf_id + 1]))

    def __repr__(self) -> str:
        return (
            f"DiagGmmSet(num_pdfs={self.num_pdfs}, num_gauss={self.num_gauss}, dim={self.dim}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    # ------------------------------------------------------------------------------------------------
    # Construction

    @classmethod
    def flat_start(
        cls,
        num_pdfs: int,
        mean: torch.Tensor,
        variance: torch.Tensor,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> DiagGmmSet:
        """Return P single-Gaussian pdfs all equal to the global Gaussian (Kaldi's ``gmm-init-mono``).

        Args:
            num_pdfs: P.
            mean, variance: [D] global mean and variance (e.g. from
                :func:`~asr.gmm.accumulate.feature_mean_variance`); the model lives on their device.
            dtype: parameter dtype.
        """
        if num_pdfs < 1:
            raise ValueError(f"num_pdfs must be >= 1, got {num_pdfs}")
        if mean.dim() != 1 or variance.shape != mean.shape:
            raise ValueError(f"mean and variance must both be [D], got {tuple(mean.shape)} and {tuple(variance.shape)}")
        dev = mean.device
        return cls(
            mean.to(dtype).expand(num_pdfs, -1).clone(),
            variance.to(dev, dtype).expand(num_pdfs, -1).clone(),
            torch.ones(num_pdfs, dtype=dtype, device=dev),
            torch.arange(num_pdfs + 1, device=dev),
        )

    @classmethod
    def from_stats(
        cls,
        stats: GmmStats,
        *,
        variance_floor: torch.Tensor | None = None,
        var_floor_fraction: float = 0.01,
        min_variance: float = 1e-6,
        dtype: torch.dtype = torch.float32,
    ) -> DiagGmmSet:
        """Return a single-Gaussian-per-pdf model estimated from statistics (Kaldi's ``gmm-init-model``).

        Statistics of any layout are first summed per pdf (e.g. those of
        :func:`~asr.gmm.accumulate.accumulate_pdf_stats`). Variances are floored at
        ``max(var_floor_fraction * global variance, min_variance)`` or at ``variance_floor`` [D] when given.
        Pdfs with no data get the global mean and variance (counted and logged).

        Raises:
            ValueError: the statistics hold no data at all.
        """
        tot = stats.pdf_totals()
        gmean, gvar = stats.global_mean_variance()
        floor = _variance_floor(gvar, variance_floor, var_floor_fraction, min_variance)
        occ = tot.occupancy
        has_data = occ > 0
        safe = occ.clamp_min(1e-300)[:, None]
        mean = tot.first_order / safe
        var = tot.second_order / safe - mean * mean
        mean = torch.where(has_data[:, None], mean, gmean)
        var = torch.where(has_data[:, None], var, gvar)
        var = torch.maximum(var, floor)
        num_empty = int((~has_data).sum())
        if num_empty:
            logger.warning("%d of %d pdfs have no data: set to the global mean and variance", num_empty, len(occ))
        dev = stats.device
        return cls(
            mean.to(dtype),
            var.to(dtype),
            torch.ones(tot.num_pdfs, dtype=dtype, device=dev),
            torch.arange(tot.num_pdfs + 1, device=dev),
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> DiagGmmSet:
        """Return the model on ``device`` and/or in ``dtype`` (self when nothing changes)."""
        device = self.device if device is None else torch.device(device)
        dtype = self.dtype if dtype is None else dtype
        if device == self.device and dtype == self.dtype:
            return self
        return DiagGmmSet(
            self.means.to(device, dtype),
            self.variances.to(device, dtype),
            self.weights.to(device, dtype),
            self.pdf_offsets.to(device),
        )

    # ------------------------------------------------------------------------------------------------
    # Scoring

    @cached_property
    def natural_params(self) -> NaturalParams:
        """The per-Gaussian scoring parameters (computed once per model, see :class:`NaturalParams`)."""
        means = self.means.to(_F64)
        variances = self.variances.to(_F64)
        inv_var = 1.0 / variances
        center = means.mean(0)
        shifted = means - center
        gconst = (
            self.weights.to(_F64).log()
            - 0.5 * (self.dim * LOG_2PI + variances.log().sum(1))
            - 0.5 * (shifted * shifted * inv_var).sum(1)
        )
        weight = torch.cat([-0.5 * inv_var, shifted * inv_var, gconst[:, None]], dim=1)
        return NaturalParams(center.to(self.dtype), weight.to(self.dtype))

    @cached_property
    def _all_pdf_layout(self) -> _AllPdfLayout:
        sizes = self.num_gauss_per_pdf.cpu()
        offsets = self.pdf_offsets.cpu()
        rows, groups, pdf_order = [], [], []
        column = 0
        for m in torch.unique(sizes).tolist():
            pdfs = (sizes == m).nonzero().squeeze(1)
            n = pdfs.numel()
            rows.append((offsets[pdfs][None, :] + torch.arange(m)[:, None]).reshape(-1))  # component-major
            groups.append((column, n, m))
            pdf_order.append(pdfs)
            column += n * m
        perm = torch.cat(rows).to(self.device)
        order = torch.cat(pdf_order)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel())
        return _AllPdfLayout(
            weight_t=self.natural_params.weight[perm].T.contiguous(),
            groups=tuple(groups),
            inverse_pdf_order=inverse.to(self.device),
        )

    def scoring_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return [N, 2D + 1] ``[(x - c)^2, x - c, 1]`` (``c = natural_params.center``), model dtype and device."""
        xs = x.to(self.device, self.dtype) - self.natural_params.center
        return torch.cat([xs * xs, xs, torch.ones_like(xs[:, :1])], dim=1)

    def _check_feats(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim or not x.is_floating_point():
            raise ValueError(f"features must be a float [N, {self.dim}] tensor, got {tuple(x.shape)} {x.dtype}")

    def gauss_log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """Return [N, G] ``log(w_g N(x; mean_g, var_g))`` for every Gaussian, in canonical order.

        One matmul; meant for small N (diagnostics, tests): memory is N * G.
        """
        self._check_feats(x)
        return self.scoring_features(x) @ self.natural_params.weight.T

    def log_likelihoods(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Return [N, P] log-likelihoods of every frame under every pdf (for decoding and alignment).

        Per frame batch: one matmul ``[x^2, x, 1] @ W^T`` gives all Gaussian scores, then a per-pdf
        log-sum-exp over each pdf's Gaussians (shifted by their max), vectorised over pdfs (see the module
        docstring).

        Args:
            x: [N, D] features (moved to the model's device and dtype).
            batch_size: frames per batch (None: about ``DEFAULT_CHUNK_ELEMENTS / G``).

        Returns:
            [N, P] in the model dtype, on the model's device.
        """
        self._check_feats(x)
        n = x.shape[0]
        layout = self._all_pdf_layout
        if batch_size is None:
            batch_size = max(64, DEFAULT_CHUNK_ELEMENTS // self.num_gauss)
        batch_size = max(1, min(batch_size, n))
        out = torch.empty(n, self.num_pdfs, dtype=self.dtype, device=self.device)
        scores_buf = torch.empty(batch_size, self.num_gauss, dtype=self.dtype, device=self.device)
        per_pdf_buf = torch.empty(batch_size, self.num_pdfs, dtype=self.dtype, device=self.device)
        for start in range(0, n, batch_size):
            feats = self.scoring_features(x[start : start + batch_size])
            b = feats.shape[0]
            scores = torch.mm(feats, layout.weight_t, out=scores_buf[:b])  # [b, G], grouped column order
            per_pdf = per_pdf_buf[:b]
            pdf_col = 0
            for column, num, m in layout.groups:
                block = scores[:, column : column + num * m].view(b, m, num)
                target = per_pdf[:, pdf_col : pdf_col + num]
                if m == 1:
                    target.copy_(block[:, 0])
                else:
                    peak = block.amax(dim=1, keepdim=True)
                    summed = torch.sub(block, peak).exp_().sum(dim=1)
                    target.copy_(summed.log_().add_(peak.squeeze(1)))
                pdf_col += num
            torch.index_select(per_pdf, 1, layout.inverse_pdf_order, out=out[start : start + b])
        return out

    def iter_own_pdf_loglikes(
        self, x: torch.Tensor, pdf_ids: torch.Tensor, *, chunk_elements: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Score each frame against the Gaussians of its own pdf only, in chunks.

        Frames are grouped by the mixture size ``m`` of their pdf; per chunk the parameters of each frame's
        Gaussians are gathered and scored with one batched matmul.

        Args:
            x: [N, D] features on the model's device (any float dtype).
            pdf_ids: int64 [N] pdf ids on the model's device, already range-checked.
            chunk_elements: bound on ``n * m * (2D + 1)`` per chunk (None: ``DEFAULT_CHUNK_ELEMENTS``).

        Yields:
            ``(frames [n] int64, gauss_ids [n, m] int64, loglikes [n, m])``: frame indices into ``x``, the
            Gaussian ids (rows) of their pdf, and ``log(w_g N(x; g))`` in the model dtype. Every frame appears
            in exactly one chunk.
        """
        if chunk_elements is None:
            chunk_elements = DEFAULT_CHUNK_ELEMENTS
        weight = self.natural_params.weight
        sizes = self.num_gauss_per_pdf[pdf_ids]
        sorted_sizes, order = torch.sort(sizes, stable=True)
        distinct, counts = torch.unique_consecutive(sorted_sizes, return_counts=True)
        start = 0
        for m, count in zip(distinct.tolist(), counts.tolist()):
            step = max(1, chunk_elements // (m * (2 * self.dim + 1)))
            arange_m = torch.arange(m, device=self.device)
            for s in range(start, start + count, step):
                frames = order[s : min(s + step, start + count)]
                gauss_ids = self.pdf_offsets[pdf_ids[frames]][:, None] + arange_m
                feats = self.scoring_features(x[frames])
                ll = torch.bmm(weight[gauss_ids], feats.unsqueeze(2)).squeeze(2)
                yield frames, gauss_ids, ll
            start += count

    def log_likelihoods_of(
        self, x: torch.Tensor, pdf_ids: torch.Tensor, *, chunk_elements: int | None = None
    ) -> torch.Tensor:
        """Return [N] the log-likelihood of each frame under its own pdf (``pdf_ids`` [N]).

        Raises:
            InputError: pdf ids out of range or non-finite features.
        """
        self._check_feats(x)
        x, pdf_ids, _ = check_aligned_frames(x, pdf_ids, self.num_pdfs, self.dim)
        x, pdf_ids = x.to(self.device), pdf_ids.to(self.device)
        out = torch.empty(x.shape[0], dtype=self.dtype, device=self.device)
        for frames, _, ll in self.iter_own_pdf_loglikes(x, pdf_ids, chunk_elements=chunk_elements):
            out[frames] = torch.logsumexp(ll, dim=1)
        return out

    def gauss_posteriors(
        self, x: torch.Tensor, pdf_ids: torch.Tensor, *, chunk_elements: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return per-frame posteriors of the Gaussians of the frame's own pdf.

        Args:
            x: [N, D] features; pdf_ids: int [N].

        Returns:
            ``(loglikes [N], gauss_ids [N, Mmax] int64, posteriors [N, Mmax])``: the frame's log-likelihood
            under its pdf; the Gaussian ids of that pdf (-1 in padding slots beyond its mixture size); their
            posteriors (0 in padding; each row sums to 1). Mmax = :attr:`max_gauss_per_pdf`.

        Raises:
            InputError: pdf ids out of range or non-finite features.
        """
        self._check_feats(x)
        x, pdf_ids, _ = check_aligned_frames(x, pdf_ids, self.num_pdfs, self.dim)
        x, pdf_ids = x.to(self.device), pdf_ids.to(self.device)
        n, mmax = x.shape[0], self.max_gauss_per_pdf
        loglikes = torch.empty(n, dtype=self.dtype, device=self.device)
        gauss = torch.full((n, mmax), -1, dtype=torch.int64, device=self.device)
        post = torch.zeros(n, mmax, dtype=self.dtype, device=self.device)
        for frames, gauss_ids, ll in self.iter_own_pdf_loglikes(x, pdf_ids, chunk_elements=chunk_elements):
            m = gauss_ids.shape[1]
            lse = torch.logsumexp(ll, dim=1)
            loglikes[frames] = lse
            gauss[frames, :m] = gauss_ids
            post[frames, :m] = (ll - lse[:, None]).exp()
        return loglikes, gauss, post

    # ------------------------------------------------------------------------------------------------
    # ML update

    def _check_stats(self, stats: GmmStats) -> None:
        if (
            stats.dim != self.dim
            or stats.num_gauss != self.num_gauss
            or not torch.equal(stats.pdf_offsets.cpu(), self.pdf_offsets.cpu())
        ):
            raise ValueError(
                f"statistics layout ({stats.num_pdfs} pdfs, {stats.num_gauss} Gaussians, dim {stats.dim}) does "
                f"not match the model ({self.num_pdfs}, {self.num_gauss}, dim {self.dim})"
            )

    def aux_objective(self, stats: GmmStats, gauss_mask: torch.Tensor | None = None) -> float:
        """Return the EM auxiliary function of this model on ``stats`` (Kaldi's ``MlObjective``), float64.

        ``sum_g occ_g (log w_g + log N-const_g) + first_g . mean_g / var_g - 0.5 second_g . 1 / var_g``,
        restricted to the Gaussians in ``gauss_mask`` [G] bool when given.
        """
        self._check_stats(stats)
        stats = stats.to(self.device)
        means = self.means.to(_F64)
        inv_var = 1.0 / self.variances.to(_F64)
        gconst = (
            self.weights.to(_F64).log()
            - 0.5 * (self.dim * LOG_2PI + self.variances.to(_F64).log().sum(1))
            - 0.5 * (means * means * inv_var).sum(1)
        )
        per_gauss = (
            stats.occupancy * gconst
            + (stats.first_order * means * inv_var).sum(1)
            - 0.5 * (stats.second_order * inv_var).sum(1)
        )
        if gauss_mask is not None:
            per_gauss = per_gauss[gauss_mask]
        return float(per_gauss.sum())

    def update(
        self,
        stats: GmmStats,
        options: GmmUpdateOptions | None = None,
        *,
        variance_floor: torch.Tensor | None = None,
    ) -> tuple[DiagGmmSet, UpdateReport]:
        """ML re-estimation from statistics (M-step; Kaldi's ``gmm-est`` / ``MleDiagGmmUpdate``).

        Per Gaussian with enough data (occupancy > ``min_gaussian_occupancy`` and weight >
        ``min_gaussian_weight``): weight = occ / pdf occ, mean = first / occ, variance = second / occ - mean^2
        floored at ``max(var_floor_fraction * global data variance, min_variance)`` (or ``variance_floor``
        [D] when given, e.g. computed once over all training data). Gaussians without enough data are
        removed (default; the most occupied one of a pdf whose Gaussians all fail is kept) or, when kept,
        keep their mean and variance with weight ``max(weight, min_gaussian_weight)``; weights are then
        renormalised per pdf. Pdfs with no data keep all their parameters (counted and logged).

        Returns:
            ``(new model, report)``; the model is in this model's dtype and on its device.

        Raises:
            ValueError: the statistics belong to another layout.
        """
        options = options or GmmUpdateOptions()
        self._check_stats(stats)
        stats = stats.to(self.device)
        dev, p, g = self.device, self.num_pdfs, self.num_gauss
        g2p = self.gauss_to_pdf
        occ = stats.occupancy
        pdf_occ = torch.zeros(p, dtype=_F64, device=dev).index_add_(0, g2p, occ)
        has_data = pdf_occ > 0
        gauss_has_data = has_data[g2p]
        weight = occ / pdf_occ.clamp_min(1e-300)[g2p]
        enough = gauss_has_data & (occ > options.min_gaussian_occupancy) & (weight > options.min_gaussian_weight)
        total_occ = float(occ.sum())

        if total_occ > 0:
            _, gvar = stats.global_mean_variance()
            floor = _variance_floor(gvar, variance_floor, options.var_floor_fraction, options.min_variance)
        else:
            floor = torch.full((self.dim,), options.min_variance, dtype=_F64, device=dev)
        safe_occ = occ.clamp_min(1e-300)[:, None]
        new_mean = stats.first_order / safe_occ
        new_var = stats.second_order / safe_occ - new_mean * new_mean
        floored = enough[:, None] & (new_var < floor)
        new_var = torch.maximum(new_var, floor)
        old_w = self.weights.to(_F64)
        means = torch.where(enough[:, None], new_mean, self.means.to(_F64))
        variances = torch.where(enough[:, None], new_var, self.variances.to(_F64))

        low = gauss_has_data & ~enough
        if options.remove_low_count_gaussians:
            num_enough = torch.zeros(p, dtype=torch.int64, device=dev).index_add_(0, g2p, enough.long())
            all_low = has_data & (num_enough == 0)
            best_occ = torch.full((p,), -1.0, dtype=_F64, device=dev).scatter_reduce_(0, g2p, occ, "amax")
            is_best = occ == best_occ[g2p]
            gauss_ids = torch.arange(g, device=dev)
            first_best = torch.full((p,), g, dtype=torch.int64, device=dev).scatter_reduce_(
                0, g2p[is_best], gauss_ids[is_best], "amin"
            )
            keeper = torch.zeros(g, dtype=torch.bool, device=dev)
            keeper[first_best[all_low]] = True
            remove = low & ~keeper
        else:
            remove = torch.zeros(g, dtype=torch.bool, device=dev)
        kept_low = low & ~remove
        weights = torch.where(enough, weight, old_w)
        weights = torch.where(kept_low, weight.clamp_min(max(options.min_gaussian_weight, 1e-20)), weights)
        keep = ~remove
        weight_sums = torch.zeros(p, dtype=_F64, device=dev).index_add_(0, g2p[keep], weights[keep])
        weights = weights / weight_sums[g2p]

        counts = torch.zeros(p, dtype=torch.int64, device=dev).index_add_(0, g2p[keep], torch.ones_like(g2p[keep]))
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64, device=dev), counts.cumsum(0)])
        dt = self.dtype
        new_model = DiagGmmSet(means[keep].to(dt), variances[keep].to(dt), weights[keep].to(dt), offsets)

        # Auxiliary function change over the kept Gaussians (the new model is compared row by row).
        kept_stats = GmmStats(stats.occupancy[keep], stats.first_order[keep], stats.second_order[keep], offsets)
        old_kept = DiagGmmSet(
            self.means[keep], self.variances[keep], _renormalised(self.weights[keep], g2p[keep], p), offsets
        )
        aux_change = new_model.aux_objective(kept_stats) - old_kept.aux_objective(kept_stats)

        report = UpdateReport(
            num_frames=stats.num_frames,
            loglike_per_frame=stats.loglike_per_frame,
            aux_objf_change_per_frame=aux_change / total_occ if total_occ > 0 else 0.0,
            num_pdfs_without_data=int((~has_data).sum()),
            num_gauss_before=g,
            num_gauss_after=new_model.num_gauss,
            num_gauss_removed=int(remove.sum()),
            num_gauss_not_updated=int(kept_low.sum()),
            num_variances_floored=int(floored.sum()),
            num_gauss_floored=int(floored.any(1).sum()),
        )
        _log_update(report, p)
        return new_model, report

    # ------------------------------------------------------------------------------------------------
    # Mixing up

    def split(
        self,
        target_num_gauss: int,
        pdf_occupancy: torch.Tensor,
        *,
        power: float = 0.2,
        perturb_factor: float = 0.2,
        min_count: float = 20.0,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> DiagGmmSet:
        """Mix up towards ``target_num_gauss`` Gaussians (Kaldi's ``gmm-mixup`` / ``AmDiagGmm::SplitByCount``).

        Per-pdf targets come from :func:`split_targets` (shares of ``occupancy^power``, at most one Gaussian
        per ``min_count`` frames); a pdf below its target repeatedly splits its heaviest Gaussian (first one
        on ties): the weight is halved between the two, the copy's mean moves by ``+perturb_factor * stddev
        * r`` and the original's by ``-perturb_factor * stddev * r``, ``r`` a standard normal vector
        (Kaldi's ``DiagGmm::Split``). Pdfs already at or above their target are left alone, so the total can
        end above the target (Kaldi does the same), or below it when ``min_count`` caps pdfs.

        Args:
            target_num_gauss: desired total number of Gaussians.
            pdf_occupancy: [P] occupancy per pdf (``GmmStats.pdf_occupancy()``).
            power: exponent on occupancies (``--power``).
            perturb_factor: mean perturbation in standard deviations (``--perturb-factor``).
            min_count: minimum occupancy per Gaussian (``--min-count``).
            seed: seeds a fresh CPU generator when ``generator`` is None (the result is deterministic).
            generator: CPU ``torch.Generator`` for the perturbations.

        Returns:
            A new model; each pdf's original Gaussians come first, then the new ones, in split order.
        """
        if pdf_occupancy.shape != (self.num_pdfs,):
            raise ValueError(f"pdf_occupancy must be [{self.num_pdfs}], got {tuple(pdf_occupancy.shape)}")
        targets = split_targets(pdf_occupancy, target_num_gauss, power=power, min_count=min_count).to(self.device)
        current = self.num_gauss_per_pdf
        final = torch.maximum(current, targets)
        rounds = int((final - current).max())
        if rounds == 0:
            logger.info("mix-up to %d: no pdf below its target; %d Gaussians kept", target_num_gauss, self.num_gauss)
            return self
        if generator is None:
            generator = torch.Generator().manual_seed(seed)
        p, d, dev = self.num_pdfs, self.dim, self.device
        width = int(final.max())
        valid = torch.arange(width, device=dev) < current[:, None]  # [P, width]
        means = torch.zeros(p, width, d, dtype=_F64, device=dev)
        variances = torch.ones(p, width, d, dtype=_F64, device=dev)
        weights = torch.full((p, width), -1.0, dtype=_F64, device=dev)  # -1: empty slot, never the argmax
        means[valid] = self.means.to(_F64)
        variances[valid] = self.variances.to(_F64)
        weights[valid] = self.weights.to(_F64)
        count = current.clone()
        for _ in range(rounds):
            active = (count < final).nonzero().squeeze(1)  # ascending pdf ids: fixed order of random draws
            heaviest = weights[active].argmax(dim=1)
            new_slot = count[active]
            half = weights[active, heaviest] / 2
            weights[active, heaviest] = half
            weights[active, new_slot] = half
            std = variances[active, heaviest].sqrt()
            noise = torch.randn(active.numel(), d, generator=generator, dtype=_F64).to(dev)
            delta = perturb_factor * noise * std
            center = means[active, heaviest]
            means[active, new_slot] = center + delta
            means[active, heaviest] = center - delta
            variances[active, new_slot] = variances[active, heaviest]
            count[active] += 1
        valid = torch.arange(width, device=dev) < final[:, None]
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64, device=dev), final.cumsum(0)])
        dt = self.dtype
        model = DiagGmmSet(means[valid].to(dt), variances[valid].to(dt), weights[valid].to(dt), offsets)
        logger.info(
            "mix-up: %d pdfs, target %d, power %g, perturb %g, min-count %g: %d -> %d Gaussians",
            p,
            target_num_gauss,
            power,
            perturb_factor,
            min_count,
            self.num_gauss,
            model.num_gauss,
        )
        return model

    # ------------------------------------------------------------------------------------------------
    # Files

    def state_dict(self) -> dict:
        """Return a dict of plain CPU tensors (plus format tag and version) for ``torch.save``."""
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "means": self.means.cpu(),
            "variances": self.variances.cpu(),
            "weights": self.weights.cpu(),
            "pdf_offsets": self.pdf_offsets.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, path: str | os.PathLike | None = None) -> DiagGmmSet:
        """Build a model from :meth:`state_dict` output.

        Raises:
            InputError: wrong format tag or version, missing or malformed tensors (naming ``path``).
        """
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            raise InputError(f"not a GMM model file (format tag {MODEL_FORMAT!r} missing)", path)
        if state.get("version") != MODEL_VERSION:
            raise InputError(f"unsupported GMM model version {state.get('version')!r}", path)
        for name in ("means", "variances", "weights", "pdf_offsets"):
            if not isinstance(state.get(name), torch.Tensor):
                raise InputError(f"tensor {name!r} missing", path)
        try:
            return cls(state["means"], state["variances"], state["weights"], state["pdf_offsets"])
        except (ValueError, RuntimeError) as e:
            raise InputError(f"bad GMM model: {e}", path) from e

    def save(self, path: str | os.PathLike) -> None:
        """Write the model with ``torch.save`` (plain tensors, no pickled objects), atomically."""
        with atomic_path(path) as tmp:
            torch_save(self.state_dict(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> DiagGmmSet:
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``) onto ``device``.

        Raises:
            InputError: unreadable or malformed file, naming it.
        """
        state = _load_tensor_dict(path, "GMM model")
        return cls.from_state_dict(state, Path(path)).to(device)

    def summary(self) -> str:
        """Return a short description (Kaldi's ``gmm-info``): pdfs, Gaussians, dimension, mixture sizes."""
        sizes = self.num_gauss_per_pdf.float()
        return (
            f"number of pdfs {self.num_pdfs}\nnumber of gaussians {self.num_gauss}\nfeature dimension {self.dim}\n"
            f"gaussians per pdf: min {int(sizes.min())}, mean {float(sizes.mean()):.2f}, max {int(sizes.max())}"
        )


# ----------------------------------------------------------------------------------------------------
# Helpers


def split_targets(
    pdf_occupancy: torch.Tensor, target_num_gauss: int, *, power: float = 0.2, min_count: float = 20.0
) -> torch.Tensor:
    """Return int64 [P] Gaussians per pdf for mixing up (Kaldi's ``GetSplitTargets``).

    Every pdf starts with 1; the remaining Gaussians go one at a time to the pdf with the largest
    ``occupancy^power / current count`` (lowest pdf id on ties), never giving a pdf a count ``c`` with
    ``c * min_count >= occupancy``. Stops early (logged) when no pdf may grow. A priority queue over
    at most ``target_num_gauss`` steps: milliseconds for 10^5 Gaussians.
    """
    occ = pdf_occupancy.detach().to("cpu", _F64)
    if occ.dim() != 1 or occ.numel() == 0:
        raise ValueError("pdf_occupancy must be a non-empty [P] tensor")
    if not bool((occ >= 0).all()):
        raise ValueError("pdf_occupancy must be non-negative")
    occ_list = occ.tolist()
    counts = [1] * len(occ_list)
    heap = [(-(o**power), pdf) for pdf, o in enumerate(occ_list) if o > 0]
    heapq.heapify(heap)
    total = len(occ_list)
    while total < target_num_gauss and heap:
        _, pdf = heapq.heappop(heap)
        if (counts[pdf] + 1) * min_count >= occ_list[pdf]:
            continue  # min-count reached: this pdf may not grow any more
        counts[pdf] += 1
        total += 1
        heapq.heappush(heap, (-(occ_list[pdf] ** power) / counts[pdf], pdf))
    if total < target_num_gauss:
        logger.warning(
            "could only allocate %d of %d Gaussians (min-count %g, or pdfs without data)",
            total,
            target_num_gauss,
            min_count,
        )
    return torch.tensor(counts, dtype=torch.int64)


def _variance_floor(
    global_var: torch.Tensor, variance_floor: torch.Tensor | None, fraction: float, min_variance: float
) -> torch.Tensor:
    if variance_floor is not None:
        if variance_floor.shape != global_var.shape:
            raise ValueError(f"variance_floor must be [{global_var.shape[0]}], got {tuple(variance_floor.shape)}")
        floor = variance_floor.to(global_var.device, _F64)
    else:
        floor = fraction * global_var
    return floor.clamp_min(min_variance)


def _renormalised(weights: torch.Tensor, gauss_to_pdf: torch.Tensor, num_pdfs: int) -> torch.Tensor:
    w = weights.to(_F64)
    sums = torch.zeros(num_pdfs, dtype=_F64, device=w.device).index_add_(0, gauss_to_pdf, w)
    return (w / sums[gauss_to_pdf]).to(weights.dtype)


def _log_update(report: UpdateReport, num_pdfs: int) -> None:
    logger.info(
        "GMM update: %.0f frames, log-likelihood per frame %.4f, auxf change per frame %.4f, Gaussians %d -> %d",
        report.num_frames,
        report.loglike_per_frame,
        report.aux_objf_change_per_frame,
        report.num_gauss_before,
        report.num_gauss_after,
    )
    if report.num_pdfs_without_data:
        logger.warning("%d of %d pdfs had no data and keep their parameters", report.num_pdfs_without_data, num_pdfs)
    if report.num_gauss_removed or report.num_gauss_not_updated:
        logger.info(
            "%d low-count Gaussians removed, %d kept without update",
            report.num_gauss_removed,
            report.num_gauss_not_updated,
        )
    if report.num_variances_floored:
        logger.info("%d variances floored in %d Gaussians", report.num_variances_floored, report.num_gauss_floored)


def main(argv: list[str] | None = None) -> None:
    """``python -m asr.gmm.diag_gmm MODEL``: print a model's summary (Kaldi's ``gmm-info``)."""
    parser = argparse.ArgumentParser(description="Print a summary of a GMM acoustic model (like gmm-info).")
    parser.add_argument("model", help="model file written by DiagGmmSet.save")
    args = parser.parse_args(argv)
    setup_logging()
    print(DiagGmmSet.load(args.model).summary())


if __name__ == "__main__":
    main()
