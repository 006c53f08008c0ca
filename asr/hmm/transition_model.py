"""Kaldi-like transition model: transition states, their transition probabilities, and re-estimation.

A *transition state* is a unique tuple ``(phone, hmm_state, pdf_id)`` that can occur in some phonetic
context: it is enumerated from the :class:`~asr.hmm.topology.Topology` and a context-dependency object
(``context_width``, ``central_position``, ``compute(window, pdf_class)``, ``num_pdfs`` and optionally
``pdfs_for(phone, pdf_class)``; see the team conventions). Transition-state ids are 0-based and sorted
by the tuple; decoding graphs use ``label = id + 1`` as input label (0 is epsilon), so the arrays
``label_to_pdf``, ``label_to_phone`` and ``label_to_hmm_state`` have an unused entry ``-1`` at index 0
and ``tstate_to_pdf == label_to_pdf[1:]`` is the column map for
``kaldi_decoder.DecodableCtc(scores[:, tstate_to_pdf])``.

Each transition state owns the transitions of its HMM state in the topology (self-loop, forward
transitions, exit), each with its own probability, initialised from the topology and re-estimated from
alignments (:meth:`TransitionModel.accumulate` / :meth:`TransitionModel.mle_update`, Kaldi's
``MleUpdate`` with ``--transition-floor`` and ``--transition-min-count``).

Unlike Kaldi there are no separate transition-ids: a graph label names the HMM state being occupied,
self-loop or not (the decoder's 1-best path therefore gives one transition state per frame; a repeat is
a self-loop because the entry state of a phone is never re-entered inside the phone).

File format: JSON (``final.tm.json``), no pickle::

    {"format": "asr-transition-model", "version": 1, "num_pdfs": N, "topology": {...topo.json...},
     "transition_states": [[phone, hmm_state, pdf_id], ...],
     "probs": [[p_0, p_1, ...], ...]}   # per transition state, in the order of its topology transitions
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from asr.atomic import atomic_write
from asr.errors import InputError
from asr.hmm.topology import Topology

TRANSITION_MODEL_FORMAT = "asr-transition-model"
TRANSITION_MODEL_VERSION = 1

# Kaldi's defaults for MleUpdate (gmm-est --transition-floor, --transition-min-count).
DEFAULT_TRANSITION_FLOOR = 0.01
DEFAULT_TRANSITION_MIN_COUNT = 5.0


class ContextDependency(Protocol):
    """The context-dependency interface a transition model and the graph builder need."""

    context_width: int
    central_position: int
    num_pdfs: int

    def compute(self, phone_window: Sequence[int], pdf_class: int) -> int: ...


def enumerate_pdfs(ctx_dep: ContextDependency, phone: int, pdf_class: int, phones: Sequence[int]) -> list[int]:
    """All pdf ids ``ctx_dep`` can give to ``(phone, pdf_class)`` in any context.

    Uses ``ctx_dep.pdfs_for(phone, pdf_class)`` when the object has it; otherwise computes every window
    with ``phone`` in the central position and each other position one of ``phones`` or 0 (boundary).
    """
    pdfs_for = getattr(ctx_dep, "pdfs_for", None)
    if pdfs_for is not None:
        return sorted({int(p) for p in pdfs_for(phone, pdf_class)})
    width = int(ctx_dep.context_width)
    central = int(ctx_dep.central_position)
    others = [0, *phones]
    out = set()
    for ctx in itertools.product(others, repeat=width - 1):
        window = [*ctx[:central], phone, *ctx[central:]]
        out.add(int(ctx_dep.compute(window, pdf_class)))
    return sorted(out)


class TransitionModel:
    """Transition states and their transition log-probabilities.

    Args:
        topology: the HMM topology.
        transition_states: ``(phone, hmm_state, pdf_id)`` tuples; sorted and deduplicated here.
        num_pdfs: number of pdfs (senones) of the acoustic model.
        probs: per transition state (in sorted order), one probability per transition of its HMM state in
            topology order; default: the topology's probabilities.

    Use :meth:`build` to enumerate the transition states from a context dependency.
    """

    def __init__(
        self,
        topology: Topology,
        transition_states: Iterable[Sequence[int]],
        num_pdfs: int,
        probs: Sequence[Sequence[float]] | None = None,
    ):
        self.topology = topology
        self.num_pdfs = int(num_pdfs)
        tuples = sorted({(int(p), int(s), int(d)) for p, s, d in transition_states})
        if probs is not None and len(probs) != len(tuples):
            raise ValueError(f"{len(probs)} probability rows for {len(tuples)} transition states")
        for phone, state, pdf in tuples:
            if phone not in topology:
                raise ValueError(f"transition state ({phone}, {state}, {pdf}): phone has no HMM in the topology")
            if not 0 <= state < topology.hmm(phone).num_states:
                raise ValueError(f"transition state ({phone}, {state}, {pdf}): no HMM state {state}")
            if not 0 <= pdf < self.num_pdfs:
                raise ValueError(f"transition state ({phone}, {state}, {pdf}): pdf id not in 0..{self.num_pdfs - 1}")
        self._tuples = np.array(tuples, dtype=np.int32).reshape(-1, 3)
        self._index = {t: i for i, t in enumerate(tuples)}
        n = len(tuples)
        # Flat transition table (Kaldi's transition-ids, 0-based): offsets[i]..offsets[i+1] for tstate i.
        dests: list[int] = []
        offsets = [0]
        init_probs: list[float] = []
        for phone, state, _ in tuples:
            for dest, prob in topology.hmm(phone).states[state].transitions:
                dests.append(dest)
                init_probs.append(prob)
            offsets.append(len(dests))
        self._offsets = np.array(offsets, dtype=np.int64)
        self._dests = np.array(dests, dtype=np.int32)
        if probs is None:
            flat = np.array(init_probs, dtype=np.float64)
        else:
            rows = []
            for i, row in enumerate(probs):
                want = offsets[i + 1] - offsets[i]
                if len(row) != want:
                    raise ValueError(f"transition state {i}: {len(row)} probabilities for {want} transitions")
                rows.extend(float(p) for p in row)
            flat = np.array(rows, dtype=np.float64)
            if not np.all(np.isfinite(flat)) or np.any(flat < 0):
                raise ValueError("transition probabilities must be finite and >= 0")
            sums = np.add.reduceat(flat, self._offsets[:-1]) if n else np.zeros(0)
            if np.any(np.abs(sums - 1.0) > 1e-3):
                bad = int(np.argmax(np.abs(sums - 1.0)))
                raise ValueError(f"transition state {bad}: probabilities sum to {sums[bad]:.6f}, not 1")
        self._probs = flat
        # Per-tstate lookups.
        self._num_hmm_states = np.array([topology.hmm(p).num_states for p, _, _ in tuples], dtype=np.int32)
        max_dest = int(self._num_hmm_states.max()) + 1 if n else 1
        # trans_index[tstate, dest] = flat transition index or -1.
        self._trans_index = np.full((n, max_dest), -1, dtype=np.int64)
        for i in range(n):
            for k in range(offsets[i], offsets[i + 1]):
                self._trans_index[i, dests[k]] = k
        self._refresh_log_probs()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, topology: Topology, ctx_dep: ContextDependency) -> TransitionModel:
        """Enumerate the transition states of every phone in ``topology`` under ``ctx_dep``.

        For each phone and HMM state, the pdfs come from :func:`enumerate_pdfs` (``pdfs_for`` if the
        context dependency has it, else every window over the topology's phones and 0).
        """
        phones = topology.phones
        tuples = []
        for phone in phones:
            for state_index, state in enumerate(topology.hmm(phone).states):
                for pdf in enumerate_pdfs(ctx_dep, phone, state.pdf_class, phones):
                    tuples.append((phone, state_index, pdf))
        return cls(topology, tuples, int(ctx_dep.num_pdfs))

    def _refresh_log_probs(self) -> None:
        with np.errstate(divide="ignore"):
            self._log_probs = np.log(self._probs)
        n = self.num_transition_states
        loop = np.zeros(n, dtype=np.float64)
        for i in range(n):
            k = self._trans_index[i, self._tuples[i, 1]]
            if k >= 0:
                loop[i] = self._probs[k]
        self._self_loop_probs = loop
        with np.errstate(divide="ignore"):
            self._self_loop_log_probs = np.log(loop)
            self._forward_log_probs = np.log1p(-np.minimum(loop, 1.0))

    # ------------------------------------------------------------------ queries
    @property
    def num_transition_states(self) -> int:
        """Number of transition states (graph labels are 1..this)."""
        return int(self._tuples.shape[0])

    @property
    def num_transitions(self) -> int:
        """Total number of transitions over all transition states (Kaldi's number of transition-ids)."""
        return int(self._dests.shape[0])

    @property
    def transition_states(self) -> np.ndarray:
        """int32 [num_transition_states, 3]: ``(phone, hmm_state, pdf_id)`` per transition state (a copy)."""
        return self._tuples.copy()

    @property
    def phones(self) -> list[int]:
        """Phones of the topology."""
        return self.topology.phones

    def transition_state(self, phone: int, hmm_state: int, pdf_id: int) -> int:
        """Id of the transition state ``(phone, hmm_state, pdf_id)``; KeyError naming it if absent."""
        try:
            return self._index[(int(phone), int(hmm_state), int(pdf_id))]
        except KeyError:
            raise KeyError(f"no transition state (phone={phone}, hmm_state={hmm_state}, pdf_id={pdf_id})") from None

    def _label_array(self, column: int) -> np.ndarray:
        out = np.empty(self.num_transition_states + 1, dtype=np.int32)
        out[0] = -1
        out[1:] = self._tuples[:, column]
        return out

    @property
    def label_to_phone(self) -> np.ndarray:
        """int32 [num_transition_states + 1]: phone id per graph label (index 0 = epsilon, holds -1)."""
        return self._label_array(0)

    @property
    def label_to_hmm_state(self) -> np.ndarray:
        """int32 [num_transition_states + 1]: HMM state per graph label (index 0 holds -1)."""
        return self._label_array(1)

    @property
    def label_to_pdf(self) -> np.ndarray:
        """int32 [num_transition_states + 1]: pdf id per graph label (index 0 holds -1)."""
        return self._label_array(2)

    @property
    def tstate_to_pdf(self) -> np.ndarray:
        """int64 [num_transition_states]: pdf id per transition state: ``DecodableCtc(scores[:, this])``."""
        return self._tuples[:, 2].astype(np.int64)

    @property
    def tstate_to_phone(self) -> np.ndarray:
        """int32 [num_transition_states]: phone id per transition state."""
        return self._tuples[:, 0].copy()

    @property
    def tstate_to_hmm_state(self) -> np.ndarray:
        """int32 [num_transition_states]: HMM state index per transition state."""
        return self._tuples[:, 1].copy()

    def transitions(self, tstate: int) -> list[tuple[int, float]]:
        """``(destination_state, log_prob)`` of each transition of ``tstate`` (destination == num_states = exit)."""
        lo, hi = self._offsets[tstate], self._offsets[tstate + 1]
        return [(int(self._dests[k]), float(self._log_probs[k])) for k in range(lo, hi)]

    def transition_log_prob(self, tstate: int, destination: int) -> float:
        """Log-probability of going from ``tstate``'s HMM state to ``destination`` (-inf if impossible)."""
        if not 0 <= destination < self._trans_index.shape[1]:
            return -math.inf
        k = self._trans_index[tstate, destination]
        return float(self._log_probs[k]) if k >= 0 else -math.inf

    @property
    def self_loop_log_probs(self) -> np.ndarray:
        """float64 [num_transition_states]: log p(self-loop); -inf where the HMM state has no self-loop."""
        return self._self_loop_log_probs.copy()

    @property
    def forward_log_probs(self) -> np.ndarray:
        """float64 [num_transition_states]: log(1 - p(self-loop)), the log-probability of leaving the state."""
        return self._forward_log_probs.copy()

    def self_loop_log_prob(self, tstate: int) -> float:
        """log p(self-loop) of ``tstate`` (-inf if none)."""
        return float(self._self_loop_log_probs[tstate])

    def forward_log_prob(self, tstate: int) -> float:
        """log(1 - p(self-loop)) of ``tstate``."""
        return float(self._forward_log_probs[tstate])

    def probs(self) -> list[list[float]]:
        """Transition probabilities per transition state, in topology order (what :meth:`save` writes)."""
        return [
            self._probs[self._offsets[i] : self._offsets[i + 1]].tolist() for i in range(self.num_transition_states)
        ]

    # ------------------------------------------------------------------ estimation
    def zero_counts(self) -> np.ndarray:
        """A float64 count vector with one entry per transition (for :meth:`accumulate`)."""
        return np.zeros(self.num_transitions, dtype=np.float64)

    def transition_indices(self, tstate_ids: Sequence[int] | np.ndarray, utt_id: str | None = None) -> np.ndarray:
        """Flat transition index taken after each frame of one utterance's alignment.

        A repeat of the same transition state is its self-loop; a change is the forward transition to
        the next state's HMM state when it is a non-entry state of the same phone, otherwise the exit
        transition (a new phone starts); the last frame takes the exit transition.

        Args:
            tstate_ids: transition-state id per frame (0-based).
            utt_id: named in error messages.

        Returns:
            int64 [T] flat transition indices.

        Raises:
            InputError: an id out of range or a step the topology does not allow (names utterance and frame).
        """
        ids = np.asarray(tstate_ids, dtype=np.int64)
        where = f"utterance {utt_id}: " if utt_id is not None else ""
        if ids.ndim != 1:
            raise InputError(f"{where}alignment must be one-dimensional, got shape {ids.shape}")
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        bad = np.nonzero((ids < 0) | (ids >= self.num_transition_states))[0]
        if bad.size:
            raise InputError(f"{where}frame {int(bad[0])}: transition state {int(ids[bad[0]])} out of range")
        phone = self._tuples[ids, 0]
        state = self._tuples[ids, 1]
        exit_dest = self._num_hmm_states[ids]
        if state[0] != 0:
            raise InputError(f"{where}frame 0: alignment starts in HMM state {int(state[0])}, not the entry state 0")
        nxt_state = np.append(state[1:], 0)
        nxt_phone = np.append(phone[1:], -1)
        same = np.append(ids[1:] == ids[:-1], False)
        within = (nxt_phone == phone) & (nxt_state != 0)
        dest = np.where(same, state, np.where(within, nxt_state, exit_dest))
        k = self._trans_index[ids, dest]
        bad = np.nonzero(k < 0)[0]
        if bad.size:
            t = int(bad[0])
            p, s, _ = (int(x) for x in self._tuples[ids[t]])
            kind = "self-loop" if same[t] else ("exit" if dest[t] == exit_dest[t] else f"transition to state {dest[t]}")
            raise InputError(f"{where}frame {t}: phone {p} HMM state {s} has no {kind} (topology does not allow it)")
        return k

    def accumulate(
        self, counts: np.ndarray, tstate_ids: Sequence[int] | np.ndarray, utt_id: str | None = None, weight: float = 1.0
    ) -> None:
        """Add one utterance's transition counts to ``counts`` (from :meth:`zero_counts`), in place."""
        k = self.transition_indices(tstate_ids, utt_id)
        np.add.at(counts, k, weight)

    def mle_update(
        self,
        counts: np.ndarray,
        floor: float = DEFAULT_TRANSITION_FLOOR,
        min_count: float = DEFAULT_TRANSITION_MIN_COUNT,
    ) -> dict:
        """Re-estimate transition probabilities from counts, in place (Kaldi's ``TransitionModel::MleUpdate``).

        For each transition state with at least ``min_count`` counts: ``p = count / total``, each
        probability floored at ``floor`` and renormalised; states with fewer counts keep their
        probabilities (the prior).

        Args:
            counts: float64 [num_transitions] from :meth:`accumulate`.
            floor: probability floor (Kaldi ``--transition-floor``, default 0.01).
            min_count: minimum total count of a transition state to update it (``--transition-min-count``).

        Returns:
            ``{"updated": n, "skipped": m, "count": total, "objf_gain_per_frame": g}``.
        """
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.num_transitions,):
            raise ValueError(f"counts must have shape ({self.num_transitions},), got {counts.shape}")
        new = self._probs.copy()
        updated = skipped = 0
        gain = 0.0
        for i in range(self.num_transition_states):
            lo, hi = self._offsets[i], self._offsets[i + 1]
            c = counts[lo:hi]
            total = float(c.sum())
            if total < min_count or total <= 0.0:
                skipped += 1
                continue
            p = c / total
            p = np.maximum(p, floor)
            p = p / p.sum()
            nz = c > 0
            with np.errstate(divide="ignore"):
                gain += float(np.sum(c[nz] * (np.log(p[nz]) - np.log(self._probs[lo:hi][nz]))))
            new[lo:hi] = p
            updated += 1
        self._probs = new
        self._refresh_log_probs()
        total_count = float(counts.sum())
        return {
            "updated": updated,
            "skipped": skipped,
            "count": total_count,
            "objf_gain_per_frame": gain / total_count if total_count > 0 else 0.0,
        }

    def estimate_from_alignments(
        self,
        alignments: Iterable[Sequence[int] | np.ndarray],
        floor: float = DEFAULT_TRANSITION_FLOOR,
        min_count: float = DEFAULT_TRANSITION_MIN_COUNT,
    ) -> dict:
        """Accumulate counts over ``alignments`` (transition-state ids per frame) and :meth:`mle_update`."""
        counts = self.zero_counts()
        for utt_index, ali in enumerate(alignments):
            self.accumulate(counts, ali, utt_id=f"#{utt_index}")
        return self.mle_update(counts, floor=floor, min_count=min_count)

    # ------------------------------------------------------------------ I/O
    def to_json_dict(self) -> dict:
        """JSON-ready dict (the file format in the module docstring)."""
        return {
            "format": TRANSITION_MODEL_FORMAT,
            "version": TRANSITION_MODEL_VERSION,
            "num_pdfs": self.num_pdfs,
            "topology": self.topology.to_json_dict(),
            "transition_states": self._tuples.tolist(),
            "probs": self.probs(),
        }

    @classmethod
    def from_json_dict(cls, data: object, path: str | os.PathLike | None = None) -> TransitionModel:
        """Inverse of :meth:`to_json_dict`; InputError naming ``path`` on malformed data."""
        if not isinstance(data, dict):
            raise InputError("malformed transition model: top level must be an object", path)
        if data.get("format") != TRANSITION_MODEL_FORMAT:
            raise InputError(
                f"malformed transition model: 'format' must be {TRANSITION_MODEL_FORMAT!r}, got {data.get('format')!r}",
                path,
            )
        if data.get("version") != TRANSITION_MODEL_VERSION:
            raise InputError(f"unsupported transition model version {data.get('version')!r}", path)
        for key in ("num_pdfs", "topology", "transition_states", "probs"):
            if key not in data:
                raise InputError(f"malformed transition model: missing {key!r}", path)
        topology = Topology.from_json_dict(data["topology"], path)
        tuples = data["transition_states"]
        if not isinstance(tuples, list) or not all(
            isinstance(t, list) and len(t) == 3 and all(isinstance(x, int) for x in t) for t in tuples
        ):
            raise InputError("malformed transition model: transition_states must be [[phone, state, pdf], ...]", path)
        if sorted(map(tuple, tuples)) != [tuple(t) for t in tuples] or len({tuple(t) for t in tuples}) != len(tuples):
            raise InputError("malformed transition model: transition_states must be sorted and unique", path)
        probs = data["probs"]
        if not isinstance(probs, list) or not all(
            isinstance(r, list) and all(isinstance(x, (int, float)) for x in r) for r in probs
        ):
            raise InputError("malformed transition model: probs must be a list of lists of numbers", path)
        num_pdfs = data["num_pdfs"]
        if not isinstance(num_pdfs, int) or num_pdfs < 1:
            raise InputError(f"malformed transition model: num_pdfs must be an integer >= 1, got {num_pdfs!r}", path)
        try:
            return cls(topology, tuples, num_pdfs, probs)
        except ValueError as err:
            raise InputError(f"malformed transition model: {err}", path) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as JSON, atomically."""
        with atomic_write(path) as f:
            json.dump(self.to_json_dict(), f, separators=(",", ":"))
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransitionModel:
        """Read a model written by :meth:`save`; InputError naming the file on malformed input."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise InputError(f"cannot read transition model: {err.strerror}", path) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
        return cls.from_json_dict(data, path)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TransitionModel)
            and self.topology == other.topology
            and self.num_pdfs == other.num_pdfs
            and np.array_equal(self._tuples, other._tuples)
            and np.array_equal(self._probs, other._probs)
        )

    def __repr__(self) -> str:
        return (
            f"TransitionModel({self.num_transition_states} transition states, {self.num_transitions} transitions, "
            f"{self.num_pdfs} pdfs, {len(self.phones)} phones)"
        )
