"""LM weight (inverse acoustic scale): parsing sweeps, picking the best weight on a dev set, reusing it.

Kaldi decodes with an acoustic scale (``--acwt 0.1``) and scores with LM weights ``lmwt`` (``7..17`` in
``local/score.sh``): the best path at ``lmwt`` minimises ``graph_cost + acoustic_cost / lmwt``, i.e. it is
the best path of a search at acoustic scale ``1 / lmwt``. The weight is picked on a development set
(lowest WER) and that weight is then used on the test set, never tuned there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from asr.errors import ConfigError, InputError

DEFAULT_LM_WEIGHT = 10.0


def format_lm_weight(lm_weight: float) -> str:
    """``10`` for 10.0, ``7.5`` for 7.5 (used in file names ``hyp_<lmwt>.txt`` and JSON keys)."""
    return str(int(lm_weight)) if float(lm_weight).is_integer() else f"{lm_weight:g}"


def parse_lm_weights(spec: str) -> list[float]:
    """Parse ``"7:17"`` (7, 8, ..., 17), ``"7:17:2"`` (step 2), ``"8,10,12"`` or ``"10"``; sorted, unique.

    Raises:
        ConfigError: an empty range, a non-positive or non-numeric weight.
    """
    spec = spec.strip()
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            if step <= 0 or stop < start:
                raise ConfigError(f"LM weight range {spec!r} is empty (want start:stop[:step], start <= stop)")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            weights = [round(start + i * step, 6) for i in range(count)]
        else:
            weights = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"bad LM weights {spec!r}: use start:stop[:step], a,b,c or one number") from None
    if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
        raise ConfigError(f"LM weights must be positive numbers, got {spec!r}")
    return sorted(set(weights))


def select_best_lm_weight(wer_by_lm_weight: Mapping[float, float]) -> float:
    """The LM weight with the lowest WER (ties: the smallest such weight)."""
    if not wer_by_lm_weight:
        raise ValueError("no LM weights to choose from")
    return min(sorted(wer_by_lm_weight), key=lambda w: wer_by_lm_weight[w])


def lm_weight_from_results(path: str | os.PathLike) -> float:
    """The LM weight chosen in a dev decode's ``results.json`` (``best_lmwt``, else ``lm_weight``).

    Raises:
        InputError: the file is missing, malformed or holds neither field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read results: {err.strerror}", path) from None
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    if not isinstance(data, dict):
        raise InputError("results.json must hold a JSON object", path)
    value = data.get("best_lmwt", data.get("lm_weight"))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise InputError('results.json has no positive "best_lmwt" or "lm_weight"', path)
    return float(value)


def lm_weights_to_scales(lm_weights: Sequence[float]) -> list[float]:
    """Acoustic scales ``1 / lmwt``."""
    return [1.0 / w for w in lm_weights]
