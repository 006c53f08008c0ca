"""Sufficient statistics of diagonal-covariance GMM acoustic models (Kaldi's ``gmm-acc-stats-ali``).

:class:`GmmStats` holds, per Gaussian of a :class:`~asr.gmm.diag_gmm.DiagGmmSet`, the occupancy
(sum of posteriors), the first-order sums (posterior * x) and the second-order sums (posterior * x^2),
all float64, plus the total log-likelihood and the (weighted) frame count of the data they came from.
Statistics of the same model layout can be summed (parallel jobs, several devices) and saved as plain
tensors.

Accumulation from Viterbi alignments (frames X [N, D], one pdf id per frame):

- :func:`accumulate_stats`: E-step under a model: each frame's posteriors over the Gaussians of ITS OWN
  pdf (soft within the pdf, as Kaldi's ``gmm-acc-stats-ali``), then ``index_add_`` into the accumulators.
  No Python loop over frames or pdfs: frames are grouped by the mixture size of their pdf (a handful of
  groups) and processed in chunks.
- :func:`accumulate_pdf_stats`: no model; one Gaussian per pdf (every posterior is 1). Feeds
  :meth:`~asr.gmm.diag_gmm.DiagGmmSet.from_stats` and :func:`feature_mean_variance`.

All arithmetic of the statistics is float64 on the device of the accumulators; features may be float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from asr.atomic import atomic_path, torch_save
from asr.errors import InputError

if TYPE_CHECKING:
    from asr.gmm.diag_gmm import DiagGmmSet

STATS_FORMAT = "asr.gmm_stats"
STATS_VERSION = 1
_F64 = torch.float64


class GmmStats:
    """Per-Gaussian sufficient statistics (Kaldi's ``AccumAmDiagGmm``), float64.

    Attributes:
        occupancy: [G] sum over frames of the Gaussian's posterior (times the frame weight).
        first_order: [G, D] sum of posterior * x.
        second_order: [G, D] sum of posterior * x^2 (elementwise).
        pdf_offsets: int64 [P + 1]: Gaussians ``pdf_offsets[p]:pdf_offsets[p+1]`` belong to pdf ``p`` (the
            layout of the model the statistics were accumulated with; update checks it matches).
        loglike_sum: 0-dim: total log-likelihood of the frames under that model (0 for model-free stats).
        frame_count: 0-dim: total (weighted) number of frames.

    Treat the tensors as read-only except through :meth:`add_` and the accumulation functions.
    """

    def __init__(
        self,
        occupancy: torch.Tensor,
        first_order: torch.Tensor,
        second_order: torch.Tensor,
        pdf_offsets: torch.Tensor,
        loglike_sum: torch.Tensor | float = 0.0,
        frame_count: torch.Tensor | float = 0.0,
    ):
        device = occupancy.device
        self.occupancy = occupancy.to(_F64)
        self.first_order = first_order.to(device, _F64)
        self.second_order = second_order.to(device, _F64)
        self.pdf_offsets = pdf_offsets.to(device, torch.int64)
        self.loglike_sum = torch.as_tensor(loglike_sum, dtype=_F64, device=device).reshape(())
        self.frame_count = torch.as_tensor(frame_count, dtype=_F64, device=device).reshape(())
        g = self.occupancy.shape[0] if self.occupancy.dim() == 1 else -1
        if (
            self.occupancy.dim() != 1
            or self.first_order.dim() != 2
            or self.first_order.shape[0] != g
            or self.second_order.shape != self.first_order.shape
        ):
            raise ValueError(
                f"inconsistent statistics shapes: occupancy {tuple(self.occupancy.shape)}, first_order "
                f"{tuple(self.first_order.shape)}, second_order {tuple(self.second_order.shape)}"
            )
        _check_offsets(self.pdf_offsets, g)

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def zeros(cls, pdf_offsets: torch.Tensor, dim: int, device: torch.device | str | None = None) -> GmmStats:
        """Return empty statistics for a model layout (``pdf_offsets`` int [P + 1]) and feature dim D."""
        device = torch.device(device) if device is not None else pdf_offsets.device
        pdf_offsets = pdf_offsets.to(device, torch.int64)
        g = int(pdf_offsets[-1])
        return cls(
            torch.zeros(g, dtype=_F64, device=device),
            torch.zeros(g, dim, dtype=_F64, device=device),
            torch.zeros(g, dim, dtype=_F64, device=device),
            pdf_offsets,
        )

    @classmethod
    def zeros_like_model(cls, model: DiagGmmSet) -> GmmStats:
        """Return empty statistics for ``model``'s layout, on its device."""
        return cls.zeros(model.pdf_offsets, model.dim, model.device)

    @property
    def num_pdfs(self) -> int:
        """Number of pdfs P."""
        return self.pdf_offsets.shape[0] - 1

    @property
    def num_gauss(self) -> int:
        """Number of Gaussians G."""
        return self.occupancy.shape[0]

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return self.first_order.shape[1]

    @property
    def device(self) -> torch.device:
        """Device of the accumulators."""
        return self.occupancy.device

    @property
    def num_frames(self) -> float:
        """Total (weighted) number of frames accumulated."""
        return float(self.frame_count)

    @property
    def loglike_per_frame(self) -> float:
        """Average log-likelihood per frame under the model that produced the statistics (0 if empty)."""
        n = float(self.frame_count)
        return float(self.loglike_sum) / n if n > 0 else 0.0

    @property
    def gauss_to_pdf(self) -> torch.Tensor:
        """int64 [G]: the pdf of each Gaussian."""
        counts = self.pdf_offsets[1:] - self.pdf_offsets[:-1]
        return torch.repeat_interleave(torch.arange(self.num_pdfs, device=self.device), counts)

    def pdf_occupancy(self) -> torch.Tensor:
        """float64 [P]: occupancy per pdf (what mixing-up allocates Gaussians by)."""
        occ = torch.zeros(self.num_pdfs, dtype=_F64, device=self.device)
        return occ.index_add_(0, self.gauss_to_pdf, self.occupancy)

    def pdf_totals(self) -> GmmStats:
        """Return the statistics collapsed to one Gaussian per pdf (sums over each pdf's Gaussians)."""
        g2p, p = self.gauss_to_pdf, self.num_pdfs
        occ = torch.zeros(p, dtype=_F64, device=self.device).index_add_(0, g2p, self.occupancy)
        first = torch.zeros(p, self.dim, dtype=_F64, device=self.device).index_add_(0, g2p, self.first_order)
        second = torch.zeros(p, self.dim, dtype=_F64, device=self.device).index_add_(0, g2p, self.second_order)
        offsets = torch.arange(p + 1, device=self.device)
        return GmmStats(occ, first, second, offsets, self.loglike_sum.clone(), self.frame_count.clone())

    def global_mean_variance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and (biased) variance, float64 [D] each, of all the accumulated frames.

        Raises:
            ValueError: the statistics hold no data.
        """
        tot = self.occupancy.sum()
        if not float(tot) > 0:
            raise ValueError("statistics hold no data: cannot compute the global mean and variance")
        mean = self.first_order.sum(0) / tot
        var = (self.second_order.sum(0) / tot - mean * mean).clamp_min(0.0)
        return mean, var

    # ------------------------------------------------------------------------------------------------
    def same_layout(self, other: GmmStats) -> bool:
        """True when ``other`` has the same pdf layout and dimension (so the two can be summed)."""
        return (
            self.dim == other.dim
            and self.pdf_offsets.shape == other.pdf_offsets.shape
            and torch.equal(self.pdf_offsets.cpu(), other.pdf_offsets.cpu())
        )

    def add_(self, other: GmmStats) -> GmmStats:
        """Add ``other`` (any device) into these statistics in place; return self.

        Raises:
            ValueError: the layouts differ.
        """
        if not self.same_layout(other):
            raise ValueError(
                f"cannot add statistics of different layouts: {self.num_pdfs} pdfs/{self.num_gauss} Gaussians/"
                f"dim {self.dim} vs {other.num_pdfs}/{other.num_gauss}/dim {other.dim}"
            )
        dev = self.device
        self.occupancy += other.occupancy.to(dev)
        self.first_order += other.first_order.to(dev)
        self.second_order += other.second_order.to(dev)
        self.loglike_sum += other.loglike_sum.to(dev)
        self.frame_count += other.frame_count.to(dev)
        return self

    def __add__(self, other: GmmStats) -> GmmStats:
        return self.clone().add_(other)

    def clone(self) -> GmmStats:
        """Return a deep copy."""
        return GmmStats(
            self.occupancy.clone(),
            self.first_order.clone(),
            self.second_order.clone(),
            self.pdf_offsets.clone(),
            self.loglike_sum.clone(),
            self.frame_count.clone(),
        )

    def to(self, device: torch.device | str) -> GmmStats:
        """Return the statistics on ``device`` (self if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        return GmmStats(
            self.occupancy.to(device),
            self.first_order.to(device),
            self.second_order.to(device),
            self.pdf_offsets.to(device),
            self.loglike_sum.to(device),
            self.frame_count.to(device),
        )

    # ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Return a dict of plain CPU tensors (plus format tag and version) for ``torch.save``."""
        return {
            "format": STATS_FORMAT,
            "version": STATS_VERSION,
            "occupancy": self.occupancy.cpu(),
            "first_order": self.first_order.cpu(),
            "second_order": self.second_order.cpu(),
            "pdf_offsets": self.pdf_offsets.cpu(),
            "loglike_sum": self.loglike_sum.cpu(),
            "frame_count": self.frame_count.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, path: str | os.PathLike | None = None) -> GmmStats:
        """Build statistics from :meth:`state_dict` output.

        Raises:
            InputError: wrong format tag, missing or malformed tensors (naming ``path`` when given).
        """
        if not isinstance(state, dict) or state.get("format") != STATS_FORMAT:
            raise InputError(f"not a GMM statistics file (format tag {STATS_FORMAT!r} missing)", path)
        if state.get("version") != STATS_VERSION:
            raise InputError(f"unsupported GMM statistics version {state.get('version')!r}", path)
        names = ("occupancy", "first_order", "second_order", "pdf_offsets", "loglike_sum", "frame_count")
        for name in names:
            if not isinstance(state.get(name), torch.Tensor):
                raise InputError(f"tensor {name!r} missing", path)
        if state["pdf_offsets"].is_floating_point() or state["pdf_offsets"].dim() != 1:
            raise InputError("pdf_offsets must be a 1-d integer tensor", path)
        try:
            stats = cls(*(state[name] for name in names))
        except (ValueError, RuntimeError) as e:
            raise InputError(f"bad GMM statistics: {e}", path) from e
        for name in ("occupancy", "first_order", "second_order"):
            if not bool(torch.isfinite(getattr(stats, name)).all()):
                raise InputError(f"non-finite values in {name}", path)
        if bool((stats.occupancy < 0).any()):
            raise InputError("negative occupancy", path)
        return stats

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics with ``torch.save`` (plain tensors, no pickled objects), atomically."""
        with atomic_path(path) as tmp:
            torch_save(self.state_dict(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> GmmStats:
        """Read statistics written by :meth:`save` (``torch.load(weights_only=True)``) onto ``device``.

        Raises:
            InputError: unreadable or malformed file, naming it.
        """
        state = _load_tensor_dict(path, "GMM statistics")
        return cls.from_state_dict(state, Path(path)).to(device)

    def __repr__(self) -> str:
        return (
            f"GmmStats(num_pdfs={self.num_pdfs}, num_gauss={self.num_gauss}, dim={self.dim}, "
            f"frames={self.num_frames:.1f}, device={self.device})"
        )


# ----------------------------------------------------------------------------------------------------
# Accumulation


def accumulate_stats(
    model: DiagGmmSet,
    feats: torch.Tensor,
    pdf_ids: torch.Tensor,
    stats: GmmStats | None = None,
    *,
    frame_weights: torch.Tensor | None = None,
    chunk_elements: int | None = None,
) -> GmmStats:
    """Accumulate ML statistics of ``model`` from frames aligned to pdfs (one E-step pass).

    Each frame contributes to the Gaussians of its own pdf with their posteriors within that pdf (Kaldi's
    ``gmm-acc-stats-ali``); its log-likelihood under that pdf is added to ``stats.loglike_sum``.

    Args:
        model: the current model.
        feats: [N, D] features (any float dtype; moved to the model's device).
        pdf_ids: int [N] pdf id of each frame (from Viterbi alignments).
        stats: statistics to add into (same layout as ``model``); None = new ones on the model's device.
        frame_weights: optional [N] non-negative weights multiplying each frame's contribution.
        chunk_elements: bound on the elements of the per-chunk temporaries (None = the model's default).

    Returns:
        ``stats`` (or the new statistics) with these frames added.

    Raises:
        ValueError: shapes that do not fit the model, or stats of another layout.
        InputError: pdf ids out of range, non-finite features, negative weights.
    """
    if stats is None:
        stats = GmmStats.zeros_like_model(model)
    elif stats.pdf_offsets.shape != model.pdf_offsets.shape or not torch.equal(
        stats.pdf_offsets.cpu(), model.pdf_offsets.cpu()
    ):
        raise ValueError("statistics and model have different Gaussian layouts")
    dev = stats.device
    feats, pdf_ids, frame_weights = check_aligned_frames(feats, pdf_ids, model.num_pdfs, model.dim, frame_weights)
    if feats.shape[0] == 0:
        return stats
    occ = torch.zeros_like(stats.occupancy, device=model.device)
    moments = torch.zeros(model.num_gauss, 2 * model.dim, dtype=_F64, device=model.device)
    loglike = torch.zeros((), dtype=_F64, device=model.device)
    feats = feats.to(model.device)
    pdf_ids = pdf_ids.to(model.device)
    if frame_weights is not None:
        frame_weights = frame_weights.to(model.device, _F64)
    for frames, gauss_idx, ll in model.iter_own_pdf_loglikes(feats, pdf_ids, chunk_elements=chunk_elements):
        lse = torch.logsumexp(ll, dim=1)
        post = (ll - lse[:, None]).exp_().to(_F64)
        lse = lse.to(_F64)
        if frame_weights is not None:
            w = frame_weights[frames]
            post *= w[:, None]
            loglike += (lse * w).sum()
        else:
            loglike += lse.sum()
        flat_idx = gauss_idx.reshape(-1)
        occ.index_add_(0, flat_idx, post.reshape(-1))
        x = feats[frames].to(_F64)
        xx = torch.cat([x, x * x], dim=1)  # [n, 2D]
        m = gauss_idx.shape[1]
        if m == 1:
            src = xx if frame_weights is None else xx * post
        else:
            src = (post[:, :, None] * xx[:, None, :]).reshape(-1, xx.shape[1])
        moments.index_add_(0, flat_idx, src)
    d = model.dim
    stats.occupancy += occ.to(dev)
    stats.first_order += moments[:, :d].to(dev)
    stats.second_order += moments[:, d:].to(dev)
    stats.loglike_sum += loglike.to(dev)
    if frame_weights is not None:
        stats.frame_count += frame_weights.sum().to(dev)
    else:
        stats.frame_count += float(feats.shape[0])
    return stats


def accumulate_pdf_stats(
    feats: torch.Tensor,
    pdf_ids: torch.Tensor,
    num_pdfs: int,
    stats: GmmStats | None = None,
    *,
    frame_weights: torch.Tensor | None = None,
) -> GmmStats:
    """Accumulate single-Gaussian-per-pdf statistics without a model (every posterior is 1).

    Use for initialising a model from alignments (:meth:`DiagGmmSet.from_stats`) and for global
    statistics (``num_pdfs=1``, all ids 0). ``loglike_sum`` stays 0 (there is no model to score with).

    Args:
        feats: [N, D] features.
        pdf_ids: int [N] pdf id per frame, in ``[0, num_pdfs)``.
        num_pdfs: number of pdfs P.
        stats: statistics to add into (layout: one Gaussian per pdf, ``pdf_offsets = arange(P + 1)``);
            None = new ones on ``feats``' device.
        frame_weights: optional [N] non-negative frame weights.

    Returns:
        The statistics with these frames added.

    Raises:
        ValueError: bad shapes or a stats layout that is not one Gaussian per pdf.
        InputError: pdf ids out of range, non-finite features, negative weights.
    """
    feats, pdf_ids, frame_weights = check_aligned_frames(feats, pdf_ids, num_pdfs, None, frame_weights)
    if stats is None:
        stats = GmmStats.zeros(torch.arange(num_pdfs + 1, device=feats.device), feats.shape[1])
    elif stats.num_pdfs != num_pdfs or stats.num_gauss != num_pdfs or stats.dim != feats.shape[1]:
        raise ValueError(
            f"statistics layout ({stats.num_pdfs} pdfs, {stats.num_gauss} Gaussians, dim {stats.dim}) is not "
            f"one Gaussian per pdf for {num_pdfs} pdfs of dim {feats.shape[1]}"
        )
    dev = stats.device
    x = feats.to(dev, _F64)
    ids = pdf_ids.to(dev)
    if frame_weights is None:
        stats.occupancy.index_add_(0, ids, torch.ones(x.shape[0], dtype=_F64, device=dev))
        stats.first_order.index_add_(0, ids, x)
        stats.second_order.index_add_(0, ids, x * x)
        stats.frame_count += float(x.shape[0])
    else:
        w = frame_weights.to(dev, _F64)
        stats.occupancy.index_add_(0, ids, w)
        stats.first_order.index_add_(0, ids, x * w[:, None])
        stats.second_order.index_add_(0, ids, x * x * w[:, None])
        stats.frame_count += w.sum()
    return stats


def feature_mean_variance(
    feats: torch.Tensor, frame_weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the global mean and variance (float64 [D] each) of ``feats`` [N, D] (for a flat start)."""
    zeros = torch.zeros(feats.shape[0], dtype=torch.int64, device=feats.device)
    return accumulate_pdf_stats(feats, zeros, 1, frame_weights=frame_weights).global_mean_variance()


# ----------------------------------------------------------------------------------------------------
# Helpers shared with diag_gmm


def check_aligned_frames(
    feats: torch.Tensor,
    pdf_ids: torch.Tensor,
    num_pdfs: int,
    dim: int | None,
    frame_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check frames and their pdf ids; return ``(feats, pdf_ids as int64, frame_weights)``.

    Raises:
        ValueError: wrong shapes or dtypes (a caller's bug).
        InputError: pdf ids outside ``[0, num_pdfs)``, non-finite features, negative frame weights (bad data).
    """
    if feats.dim() != 2 or not feats.is_floating_point():
        raise ValueError(f"feats must be a float [N, D] tensor, got {tuple(feats.shape)} {feats.dtype}")
    if dim is not None and feats.shape[1] != dim:
        raise ValueError(f"feats have dimension {feats.shape[1]}, the model {dim}")
    if pdf_ids.dim() != 1 or pdf_ids.shape[0] != feats.shape[0]:
        raise ValueError(f"pdf_ids must be [N] with N = {feats.shape[0]}, got {tuple(pdf_ids.shape)}")
    if pdf_ids.is_floating_point() or pdf_ids.dtype == torch.bool:
        raise ValueError(f"pdf_ids must be an integer tensor, got {pdf_ids.dtype}")
    pdf_ids = pdf_ids.to(torch.int64)
    if pdf_ids.numel():
        lo, hi = int(pdf_ids.min()), int(pdf_ids.max())
        if lo < 0 or hi >= num_pdfs:
            bad = lo if lo < 0 else hi
            raise InputError(f"pdf id {bad} in the alignment is outside [0, {num_pdfs})")
        if not bool(torch.isfinite(feats).all()):
            first = int((~torch.isfinite(feats)).any(1).nonzero()[0, 0])
            raise InputError(f"non-finite feature values (first at frame {first})")
    if frame_weights is not None:
        if frame_weights.shape != (feats.shape[0],):
            raise ValueError(f"frame_weights must be [N] = [{feats.shape[0]}], got {tuple(frame_weights.shape)}")
        if frame_weights.numel() and not bool((frame_weights >= 0).all()):
            raise InputError("negative (or NaN) frame weights")
    return feats, pdf_ids, frame_weights


def _check_offsets(pdf_offsets: torch.Tensor, num_gauss: int) -> None:
    if pdf_offsets.dim() != 1 or pdf_offsets.shape[0] < 2:
        raise ValueError(f"pdf_offsets must be [P + 1] with P >= 1, got shape {tuple(pdf_offsets.shape)}")
    if int(pdf_offsets[0]) != 0 or int(pdf_offsets[-1]) != num_gauss:
        raise ValueError(f"pdf_offsets must start at 0 and end at the number of Gaussians {num_gauss}")
    if not bool((pdf_offsets[1:] > pdf_offsets[:-1]).all()):
        raise ValueError("pdf_offsets must be strictly increasing (every pdf has at least one Gaussian)")


def _load_tensor_dict(path: str | os.PathLike, what: str) -> dict:
    """``torch.load(path, weights_only=True)`` with every failure turned into an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types: UnpicklingError, RuntimeError, EOFError, ...
        detail = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"cannot read {what}: {type(e).__name__}: {detail}", path) from e
    if not isinstance(state, dict):
        raise InputError(f"not a {what} file: expected a dict of tensors, got {type(state).__name__}", path)
    return state
