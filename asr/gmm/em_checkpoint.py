"""Per-iteration checkpoints of Viterbi EM training, so that GMM training resumes after ``kill -9``.

After every EM iteration :func:`asr.gmm.train_mono.train_mono`, :func:`asr.gmm.train_tri.train_tri`,
:func:`asr.gmm.train_lda_mllt.train_lda_mllt` and :func:`asr.gmm.train_sat.train_sat` write
``<out>/em_state.pt`` atomically (:func:`asr.atomic.atomic_path`): the model (GMMs and transition model), the
transition model the jobs' alignment graphs were compiled with (the graphs carry its probabilities), the
Gaussian schedule, the per-iteration records, and the current alignment of every utterance. A run started
again with the same inputs and options (the training fingerprint) loads it, recompiles the graphs with the
recorded transition model, and continues with the next iteration, reaching the same model as a run that was
never interrupted. A checkpoint of other inputs or options, or an unreadable one, is ignored (logged) and
training starts from scratch; ``--force`` ignores it too. The file is removed once the model dir is complete.

The file holds tensors, strings, numbers and bools only (``torch.load(weights_only=True)``); JSON documents
(transition models, records, failures) are stored as strings.

Trainers with more state than the model and the alignments pass it as ``extra`` (a dict of tensors, strings,
numbers, and lists and dicts of them) to :meth:`EmCheckpoint.save` and read it back with
:meth:`EmCheckpoint.extra`: :func:`asr.gmm.train_lda_mllt.train_lda_mllt` the current feature transform (LDA
composed with the MLLT updates so far) and the MLLT records, :func:`asr.gmm.train_sat.train_sat` the speakers'
initial and current fMLLR transforms and the fMLLR records. Files without ``extra`` (monophone, triphone) load as
before: ``extra`` is then empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.atomic import atomic_path, torch_save
from asr.errors import InputError
from asr.gmm.diag_gmm import DiagGmmSet
from asr.hmm.transition_model import TransitionModel

logger = logging.getLogger(__name__)

EM_STATE = "em_state.pt"
EM_STATE_FORMAT = "asr-gmm-em-state"
EM_STATE_VERSION = 1


def _utt_ids_sha256(utt_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(utt_ids).encode("utf-8")).hexdigest()


def _loadable(value: Any) -> bool:
    """Whether ``torch.load(weights_only=True)`` gives ``value`` back (tensors, plain scalars, strings, and lists
    and string-keyed dicts of them)."""
    if value is None or isinstance(value, (torch.Tensor, str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(_loadable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _loadable(v) for k, v in value.items())
    return False


def _check_extra_value(key: Any, value: Any) -> Any:
    if not _loadable(value):
        raise TypeError(f"EM checkpoint extra {key!r}: a {type(value).__name__} cannot be loaded with weights_only")
    return value


class EmCheckpoint:
    """The EM checkpoint of one training run.

    Args:
        out_dir: the model dir being trained (the file is ``<out_dir>/em_state.pt``).
        fingerprint: the training fingerprint (sha256 of inputs and options); a checkpoint with another one
            is not used.
        utt_ids: the feature archive's utterances, in order (the alignments are stored in this order).
    """

    def __init__(self, out_dir: str | os.PathLike, fingerprint: str, utt_ids: Sequence[str]):
        self.path = Path(out_dir) / EM_STATE
        self.fingerprint = fingerprint
        self.utt_ids = list(utt_ids)

    def save(self, iteration: int, state: Any, jobs: Any, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the state after ``iteration`` (a :class:`~asr.gmm.train_mono.TrainState` and the
        :class:`~asr.gmm.align.AlignmentJobs` holding the alignments) atomically; returns the path.

        ``extra``: the trainer's own state (string keys; tensors, strings, ints, floats, bools, None, and lists
        and string-keyed dicts of them), given back by :meth:`extra`.

        Raises:
            TypeError: an ``extra`` value that ``torch.load(weights_only=True)`` could not read back."""
        alignments, failures = jobs.get_alignments()
        offsets = np.asarray(jobs.offsets, dtype=np.int64)
        tstates = np.full(int(offsets[-1]), -1, dtype=np.int32)
        aligned = np.zeros(len(alignments), dtype=bool)
        for i, ali in enumerate(alignments):
            if ali is not None:
                tstates[offsets[i] : offsets[i + 1]] = ali
                aligned[i] = True
        graphs_model = getattr(state, "graphs_model", None)
        blob = {
            "format": EM_STATE_FORMAT,
            "version": EM_STATE_VERSION,
            "fingerprint": self.fingerprint,
            "utt_ids_sha256": _utt_ids_sha256(self.utt_ids),
            "iteration": int(iteration),
            "gmm": state.gmm.state_dict(),
            "transition_model": json.dumps(state.transition_model.to_json_dict()),
            "graphs_model": json.dumps(graphs_model) if graphs_model is not None else "",
            "graphs_compiled": bool(state.graphs_compiled),
            "num_gauss": int(state.num_gauss),
            "inc_gauss": int(state.inc_gauss),
            "iterations": json.dumps(state.iterations),
            "tstate_ids": torch.from_numpy(tstates),
            "aligned": torch.from_numpy(aligned),
            "failures": json.dumps(sorted(failures.items())),
        }
        if extra:
            blob["extra"] = {str(k): _check_extra_value(k, v) for k, v in extra.items()}
        with atomic_path(self.path) as tmp:
            torch_save(blob, tmp)
        return self.path

    def load(self) -> dict[str, Any] | None:
        """The checkpoint if there is a usable one for this run (same fingerprint and utterances), else None
        (an unreadable or foreign file is logged and ignored)."""
        if not self.path.is_file():
            return None
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated, corrupt: start over
            logger.warning("ignoring the EM checkpoint %s: cannot load it (%s)", self.path, type(err).__name__)
            return None
        if not isinstance(blob, dict) or blob.get("format") != EM_STATE_FORMAT:
            logger.warning("ignoring %s: not an EM checkpoint", self.path)
            return None
        if blob.get("version") != EM_STATE_VERSION:
            logger.warning("ignoring %s: EM checkpoint version %r", self.path, blob.get("version"))
            return None
        if blob.get("fingerprint") != self.fingerprint or blob.get("utt_ids_sha256") != _utt_ids_sha256(self.utt_ids):
            logger.info("ignoring %s: it was made from other inputs or options", self.path)
            return None
        return blob

    def restore(self, blob: dict[str, Any], state: Any, jobs: Any, graph_options: Any) -> int:
        """Put a loaded checkpoint into ``state`` and ``jobs`` (model, schedule, graphs, alignments).

        Args:
            blob: from :meth:`load`.
            state: the run's :class:`~asr.gmm.train_mono.TrainState` (its ``ctx_dep`` must already be the
                run's context dependency); updated in place.
            jobs: the run's :class:`~asr.gmm.align.AlignmentJobs`.
            graph_options: the :class:`~asr.gmm.align.AlignOptions` of graph compilation.

        Returns:
            The last completed iteration.

        Raises:
            InputError: a malformed checkpoint (naming the file).
        """
        try:
            state.gmm = DiagGmmSet.from_state_dict(blob["gmm"], self.path)
            state.transition_model = TransitionModel.from_json_dict(json.loads(blob["transition_model"]), self.path)
            graphs_json = json.loads(blob["graphs_model"]) if blob["graphs_model"] else None
            state.graphs_model = graphs_json
            state.graphs_compiled = bool(blob["graphs_compiled"])
            state.num_gauss = int(blob["num_gauss"])
            state.inc_gauss = int(blob["inc_gauss"])
            state.iterations = json.loads(blob["iterations"])
            failures = dict(json.loads(blob["failures"]))
            tstates = blob["tstate_ids"].numpy()
            aligned = blob["aligned"].numpy()
            iteration = int(blob["iteration"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise InputError(f"malformed EM checkpoint ({type(err).__name__}: {err})", self.path) from None
        offsets = np.asarray(jobs.offsets, dtype=np.int64)
        if aligned.shape != (len(self.utt_ids),) or tstates.shape != (int(offsets[-1]),):
            raise InputError("EM checkpoint does not match the feature archive", self.path)
        graphs_tm = state.transition_model
        if graphs_json is not None:
            graphs_tm = TransitionModel.from_json_dict(graphs_json, self.path)
        # the graphs carry the transition probabilities of the model they were compiled with
        jobs.set_model(graphs_tm, state.ctx_dep, graph_options, compile_graphs=state.graphs_compiled)
        alignments = [
            tstates[offsets[i] : offsets[i + 1]].copy() if aligned[i] else None for i in range(len(self.utt_ids))
        ]
        for utt, ok in zip(self.utt_ids, aligned):
            if not ok:
                failures.setdefault(utt, "not aligned")
        jobs.set_alignments(alignments, failures)
        logger.info("resuming EM training from %s: iteration %d was complete", self.path, iteration)
        return iteration

    def extra(self, blob: dict[str, Any]) -> dict[str, Any]:
        """The ``extra`` state saved with a loaded checkpoint (empty when it has none, as monophone and
        triphone checkpoints).

        Raises:
            InputError: ``extra`` is not a dict (naming the file).
        """
        extra = blob.get("extra", {})
        if not isinstance(extra, dict):
            raise InputError(f"malformed EM checkpoint (extra is a {type(extra).__name__})", self.path)
        return extra

    def remove(self) -> None:
        """Delete the checkpoint (the model dir is complete)."""
        self.path.unlink(missing_ok=True)
