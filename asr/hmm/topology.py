"""HMM topologies: the state graph of each phone (Kaldi's ``topo`` file, as JSON).

Every phone has a small HMM whose states all emit (there are no non-emitting states apart from the
implicit exit). State ``i`` has a ``pdf_class`` (which pdf of the phone's context-dependent model it
uses; by default its own index) and a list of transitions ``(destination, probability)``, where
``destination == num_states`` means "leave the phone" (Kaldi's final non-emitting state). The entry
state is state 0.

Two families are provided:

* :func:`left_to_right_hmm` -- every state has a self-loop and one forward transition (the last state's
  forward transition leaves the phone). This is the default for every phone, 3 states for
  non-silence phones and 5 for silence phones, self-loop probability 0.75 (Kaldi's initial value).
* :func:`kaldi_silence_hmm` -- Kaldi's ``gen_topo.pl`` silence topology: state 0 goes to states
  ``0..N-2``, states ``1..N-2`` go to each other and to state ``N-1`` (all with probability
  ``1/(N-1)``), and the last state loops with 0.75 and leaves with 0.25. Choose it with
  ``make_topology(..., silence_topology="kaldi")``.

Restrictions (checked on construction and on load): state 0 is entered only from outside the phone
(no transition from another state goes back to it), every state is reachable from state 0 and can
reach the exit, probabilities are positive and sum to 1 per state. Because state 0 is never re-entered,
a phone instance in a frame-level alignment starts exactly where the entry state's transition state
appears after a different one (see :func:`asr.decode.align.phone_segments`); with a one-state topology
two consecutive instances of the same phone cannot be told apart from one long instance.

File format (``topo.json``)::

    {"format": "asr-hmm-topology", "version": 1,
     "hmms": [{"phones": [3, 4, 5],
               "states": [{"pdf_class": 0, "transitions": [[0, 0.75], [1, 0.25]]},
                          {"pdf_class": 1, "transitions": [[1, 0.75], [2, 0.25]]},
                          {"pdf_class": 2, "transitions": [[2, 0.75], [3, 0.25]]}]}]}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from asr.atomic import atomic_write
from asr.errors import InputError

TOPOLOGY_FORMAT = "asr-hmm-topology"
TOPOLOGY_VERSION = 1
DEFAULT_SELF_LOOP_PROB = 0.75
_PROB_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class HmmState:
    """One emitting HMM state.

    Attributes:
        pdf_class: which pdf class of the phone this state uses (the tree maps (context, pdf_class) to
            a pdf id).
        transitions: ``(destination_state, probability)`` pairs; ``destination_state == num_states``
            of the owning HMM means leaving the phone.
    """

    pdf_class: int
    transitions: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class PhoneHmm:
    """The HMM of one phone: a tuple of :class:`HmmState`, entered at state 0.

    Raises ValueError on construction if the restrictions in the module docstring are violated.
    """

    states: tuple[HmmState, ...]

    def __post_init__(self) -> None:
        _validate_hmm(self)

    @property
    def num_states(self) -> int:
        """Number of emitting states (the exit is state index ``num_states``)."""
        return len(self.states)

    @property
    def exit_state(self) -> int:
        """Index used as the destination of transitions that leave the phone."""
        return len(self.states)

    @property
    def pdf_classes(self) -> list[int]:
        """The pdf class of each state, in state order."""
        return [s.pdf_class for s in self.states]

    @property
    def num_pdf_classes(self) -> int:
        """``max(pdf_class) + 1``."""
        return max(s.pdf_class for s in self.states) + 1

    def self_loop_prob(self, state: int) -> float:
        """Probability of the self-loop of ``state`` (0.0 if it has none)."""
        for dest, prob in self.states[state].transitions:
            if dest == state:
                return prob
        return 0.0

    def min_frames(self) -> int:
        """Smallest number of frames a pass through this HMM takes (fewest states entry -> exit)."""
        # BFS over states: distance = number of emitting states visited.
        dist = {0: 1}
        frontier = [0]
        while frontier:
            nxt = []
            for s in frontier:
                for dest, _ in self.states[s].transitions:
                    if dest == self.exit_state:
                        continue
                    if dest not in dist:
                        dist[dest] = dist[s] + 1
                        nxt.append(dest)
            frontier = nxt
        return min(dist[s] for s in dist if any(d == self.exit_state for d, _ in self.states[s].transitions))

    def to_json_dict(self) -> dict:
        """The ``states`` list of the JSON format."""
        return {
            "states": [
                {"pdf_class": s.pdf_class, "transitions": [[d, p] for d, p in s.transitions]} for s in self.states
            ]
        }


def _validate_hmm(hmm: PhoneHmm) -> None:
    n = len(hmm.states)
    if n < 1:
        raise ValueError("an HMM needs at least one state")
    for i, state in enumerate(hmm.states):
        if not isinstance(state.pdf_class, int) or isinstance(state.pdf_class, bool) or state.pdf_class < 0:
            raise ValueError(f"state {i}: pdf_class must be an integer >= 0, got {state.pdf_class!r}")
        if not state.transitions:
            raise ValueError(f"state {i} has no transitions")
        seen = set()
        total = 0.0
        for dest, prob in state.transitions:
            if not isinstance(dest, int) or isinstance(dest, bool) or not 0 <= dest <= n:
                raise ValueError(f"state {i}: transition destination {dest!r} is not in 0..{n} ({n} = exit)")
            if dest in seen:
                raise ValueError(f"state {i}: two transitions to state {dest}")
            seen.add(dest)
            if not isinstance(prob, (int, float)) or not math.isfinite(prob) or prob <= 0.0:
                raise ValueError(f"state {i}: transition probability to {dest} must be > 0, got {prob!r}")
            if dest == 0 and i != 0:
                raise ValueError(f"state {i}: transitions back into the entry state 0 are not supported")
            total += prob
        if abs(total - 1.0) > _PROB_SUM_TOLERANCE:
            raise ValueError(f"state {i}: transition probabilities sum to {total:.6f}, not 1")
    # Reachability: every state from 0, and the exit from every state.
    reach = {0}
    stack = [0]
    while stack:
        s = stack.pop()
        for dest, _ in hmm.states[s].transitions:
            if dest < n and dest not in reach:
                reach.add(dest)
                stack.append(dest)
    if len(reach) != n:
        missing = sorted(set(range(n)) - reach)
        raise ValueError(f"states {missing} cannot be reached from the entry state 0")
    can_exit = {i for i, st in enumerate(hmm.states) if any(d == n for d, _ in st.transitions)}
    changed = True
    while changed:
        changed = False
        for i, st in enumerate(hmm.states):
            if i not in can_exit and any(d in can_exit for d, _ in st.transitions):
                can_exit.add(i)
                changed = True
    if len(can_exit) != n:
        stuck = sorted(set(range(n)) - can_exit)
        raise ValueError(f"states {stuck} can never leave the phone")


def _normalized(transitions: Iterable[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    pairs = [(int(d), float(p)) for d, p in transitions]
    total = sum(p for _, p in pairs)
    return tuple((d, p / total) for d, p in pairs)


def left_to_right_hmm(
    num_states: int = 3,
    self_loop_prob: float = DEFAULT_SELF_LOOP_PROB,
    pdf_classes: Sequence[int] | None = None,
) -> PhoneHmm:
    """A left-to-right HMM: each state has a self-loop and one forward transition.

    Args:
        num_states: number of emitting states (>= 1).
        self_loop_prob: initial self-loop probability of every state, in (0, 1); 0 gives no self-loops.
        pdf_classes: pdf class per state (default: the state index).

    Returns:
        The :class:`PhoneHmm`.
    """
    if num_states < 1:
        raise ValueError(f"num_states must be >= 1, got {num_states}")
    if not 0.0 <= self_loop_prob < 1.0:
        raise ValueError(f"self_loop_prob must be in [0, 1), got {self_loop_prob}")
    classes = list(range(num_states)) if pdf_classes is None else [int(c) for c in pdf_classes]
    if len(classes) != num_states:
        raise ValueError(f"{len(classes)} pdf classes given for {num_states} states")
    states = []
    for i in range(num_states):
        trans = [(i + 1, 1.0 - self_loop_prob)]
        if self_loop_prob > 0.0:
            trans.insert(0, (i, self_loop_prob))
        states.append(HmmState(pdf_class=classes[i], transitions=tuple(trans)))
    return PhoneHmm(states=tuple(states))


def kaldi_silence_hmm(num_states: int = 5) -> PhoneHmm:
    """Kaldi's ``gen_topo.pl`` silence HMM (see the module docstring); needs ``num_states >= 3``."""
    if num_states < 3:
        raise ValueError(f"Kaldi's silence topology needs at least 3 states, got {num_states}")
    n = num_states
    p = 1.0 / (n - 1)
    states = [HmmState(0, tuple((d, p) for d in range(0, n - 1)))]
    for i in range(1, n - 1):
        states.append(HmmState(i, tuple((d, p) for d in range(1, n))))
    states.append(HmmState(n - 1, ((n - 1, 0.75), (n, 0.25))))
    return PhoneHmm(states=tuple(states))


class Topology:
    """The HMM of every phone.

    Args:
        phone_hmms: phone id (> 0) -> :class:`PhoneHmm`.
    """

    def __init__(self, phone_hmms: Mapping[int, PhoneHmm]):
        for phone in phone_hmms:
            if not isinstance(phone, int) or isinstance(phone, bool) or phone <= 0:
                raise ValueError(f"phone ids must be integers > 0 (0 is epsilon), got {phone!r}")
        if not phone_hmms:
            raise ValueError("a topology needs at least one phone")
        self._hmms = dict(sorted(phone_hmms.items()))

    @property
    def phones(self) -> list[int]:
        """Sorted phone ids that have an HMM."""
        return list(self._hmms)

    def hmm(self, phone: int) -> PhoneHmm:
        """The HMM of ``phone`` (KeyError naming the phone if it has none)."""
        try:
            return self._hmms[phone]
        except KeyError:
            raise KeyError(f"phone {phone} has no HMM in the topology") from None

    def __contains__(self, phone: object) -> bool:
        return phone in self._hmms

    def num_pdf_classes(self, phone: int) -> int:
        """Number of pdf classes of ``phone``'s HMM."""
        return self.hmm(phone).num_pdf_classes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and self._hmms == other._hmms

    def __repr__(self) -> str:
        sizes = sorted({h.num_states for h in self._hmms.values()})
        return f"Topology({len(self._hmms)} phones, state counts {sizes})"

    def to_json_dict(self) -> dict:
        """JSON-ready dict; phones sharing one HMM are grouped."""
        groups: dict[PhoneHmm, list[int]] = {}
        for phone, hmm in self._hmms.items():
            groups.setdefault(hmm, []).append(phone)
        return {
            "format": TOPOLOGY_FORMAT,
            "version": TOPOLOGY_VERSION,
            "hmms": [{"phones": phones, **hmm.to_json_dict()} for hmm, phones in groups.items()],
        }

    @classmethod
    def from_json_dict(cls, data: object, path: str | os.PathLike | None = None) -> Topology:
        """Build from :meth:`to_json_dict` output; InputError (naming ``path``) on malformed data."""

        def bad(msg: str) -> InputError:
            return InputError(f"malformed topology: {msg}", path)

        if not isinstance(data, dict):
            raise bad("top level must be an object")
        if data.get("format") != TOPOLOGY_FORMAT:
            raise bad(f"'format' must be {TOPOLOGY_FORMAT!r}, got {data.get('format')!r}")
        if data.get("version") != TOPOLOGY_VERSION:
            raise bad(f"unsupported version {data.get('version')!r} (expected {TOPOLOGY_VERSION})")
        hmms = data.get("hmms")
        if not isinstance(hmms, list) or not hmms:
            raise bad("'hmms' must be a non-empty list")
        phone_hmms: dict[int, PhoneHmm] = {}
        for k, entry in enumerate(hmms):
            if not isinstance(entry, dict):
                raise bad(f"hmms[{k}] must be an object")
            phones = entry.get("phones")
            states = entry.get("states")
            if not isinstance(phones, list) or not phones:
                raise bad(f"hmms[{k}].phones must be a non-empty list of phone ids")
            if not isinstance(states, list):
                raise bad(f"hmms[{k}].states must be a list")
            parsed = []
            for i, st in enumerate(states):
                if not isinstance(st, dict) or "pdf_class" not in st or "transitions" not in st:
                    raise bad(f"hmms[{k}].states[{i}] needs 'pdf_class' and 'transitions'")
                trans = st["transitions"]
                if not isinstance(trans, list) or not all(isinstance(t, list) and len(t) == 2 for t in trans):
                    raise bad(f"hmms[{k}].states[{i}].transitions must be a list of [destination, probability]")
                for dest, prob in trans:
                    if not isinstance(dest, int) or isinstance(dest, bool):
                        raise bad(f"hmms[{k}].states[{i}]: destination {dest!r} is not an integer")
                    if not isinstance(prob, (int, float)) or isinstance(prob, bool):
                        raise bad(f"hmms[{k}].states[{i}]: probability {prob!r} is not a number")
                parsed.append(HmmState(pdf_class=st["pdf_class"], transitions=tuple((d, float(p)) for d, p in trans)))
            try:
                hmm = PhoneHmm(states=tuple(parsed))
            except ValueError as err:
                raise bad(f"hmms[{k}]: {err}") from None
            hmm = PhoneHmm(states=tuple(HmmState(s.pdf_class, _normalized(s.transitions)) for s in hmm.states))
            for phone in phones:
                if not isinstance(phone, int) or isinstance(phone, bool) or phone <= 0:
                    raise bad(f"hmms[{k}]: phone id {phone!r} is not an integer > 0")
                if phone in phone_hmms:
                    raise bad(f"phone {phone} is listed twice")
                phone_hmms[phone] = hmm
        return cls(phone_hmms)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``topo.json`` atomically."""
        with atomic_write(path) as f:
            json.dump(self.to_json_dict(), f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Topology:
        """Read a ``topo.json``; InputError naming the file (and line for JSON syntax errors)."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise InputError(f"cannot read topology: {err.strerror}", path) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"invalid JSON: {err.msg} (column {err.colno})", path, err.lineno) from None
        return cls.from_json_dict(data, path)


def make_topology(
    nonsilence_phones: Iterable[int],
    silence_phones: Iterable[int],
    num_nonsilence_states: int = 3,
    num_silence_states: int = 5,
    self_loop_prob: float = DEFAULT_SELF_LOOP_PROB,
    silence_topology: str = "left_to_right",
) -> Topology:
    """The standard topology: left-to-right HMMs for non-silence phones, 5-state HMMs for silence.

    Args:
        nonsilence_phones: phone ids of the non-silence phones.
        silence_phones: phone ids of the silence phones (SIL, SPN).
        num_nonsilence_states: states per non-silence phone (default 3).
        num_silence_states: states per silence phone (default 5).
        self_loop_prob: initial self-loop probability of left-to-right states.
        silence_topology: ``"left_to_right"`` (default) or ``"kaldi"`` (Kaldi's gen_topo.pl silence HMM).

    Returns:
        The :class:`Topology`.
    """
    nonsil = list(nonsilence_phones)
    sil = list(silence_phones)
    overlap = set(nonsil) & set(sil)
    if overlap:
        raise ValueError(f"phones {sorted(overlap)} are both silence and non-silence")
    if silence_topology == "left_to_right":
        sil_hmm = left_to_right_hmm(num_silence_states, self_loop_prob)
    elif silence_topology == "kaldi":
        sil_hmm = kaldi_silence_hmm(num_silence_states)
    else:
        raise ValueError(f"silence_topology must be 'left_to_right' or 'kaldi', got {silence_topology!r}")
    nonsil_hmm = left_to_right_hmm(num_nonsilence_states, self_loop_prob)
    hmms = {p: nonsil_hmm for p in nonsil}
    hmms.update({p: sil_hmm for p in sil})
    return Topology(hmms)
