"""Feature options: one dataclass for filterbank and MFCC extraction, stored in every feature archive.

The defaults are Kaldi's (``compute-fbank-feats`` / ``compute-mfcc-feats``: 25 ms povey window, 10 ms
shift, pre-emphasis 0.97, DC removal, ``snip_edges=true``, mel bins from 20 Hz to Nyquist) except two:

- ``dither`` is 0 (Kaldi: 1.0) so that the same audio always gives the same numbers;
- the filterbank has 40 bins (Kaldi: 23) and no energy, as in Zeiler et al. (2013).

Samples are scaled by ``waveform_scale`` (32768) before extraction, so a 16-bit file gives exactly the
numbers Kaldi computes from it (Kaldi reads integer sample values).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

from asr.errors import ConfigError

FEATURE_TYPES = ("fbank", "mfcc")
WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "blackman")


@dataclass(frozen=True)
class FeatureOptions:
    """How to turn samples into feature frames.

    Attributes:
        type: ``"fbank"`` (log mel filterbank) or ``"mfcc"``.
        sample_rate: the rate features are computed at (audio at another rate is resampled).
        num_bins: mel bins; None means 40 for fbank, 23 for mfcc (Kaldi's MFCC default).
        num_ceps: cepstra kept (mfcc only).
        frame_shift_ms, frame_length_ms: hop and window length in milliseconds.
        dither: Gaussian dither added to each sample (in int16 units); 0 = deterministic.
        preemph_coeff, remove_dc_offset, window_type, round_to_power_of_two, snip_edges, low_freq,
            high_freq (0 = Nyquist, negative = offset from Nyquist), energy_floor, raw_energy,
            cepstral_lifter: as Kaldi's options of the same names.
        use_energy: append (fbank) / put in C0 (mfcc) the log frame energy; None means False for both,
            as Kaldi's recipes set in conf/mfcc.conf (--use-energy=false; the binary's own default is true).
            On AN4 dev, C0 instead of the energy cut mono WER from 9.93% to 8.63% at LM weight 10.
        waveform_scale: factor applied to float samples in [-1, 1] before extraction.
    """

    type: str = "fbank"
    sample_rate: int = 16000
    num_bins: int | None = None
    num_ceps: int = 13
    frame_shift_ms: float = 10.0
    frame_length_ms: float = 25.0
    dither: float = 0.0
    preemph_coeff: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_energy: bool | None = None
    energy_floor: float = 0.0
    raw_energy: bool = True
    cepstral_lifter: float = 22.0
    waveform_scale: float = 32768.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # types first: options also come from files (archives, bundles)
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool) or f.name == "use_energy":
                ok = (
                    isinstance(value, bool)
                    or getattr(getattr(value, "dtype", None), "kind", "") == "b"
                    or (value is None and default is None)
                )
            elif isinstance(default, (int, float)) or f.name == "num_bins":
                ok = (value is None and default is None) or (
                    isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                )
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ConfigError(f"feature option {f.name} has a bad value: {value!r}")
        if self.type not in FEATURE_TYPES:
            raise ConfigError(f"feature type must be one of {FEATURE_TYPES}, not {self.type!r}")
        if self.num_bins is None:
            object.__setattr__(self, "num_bins", 40 if self.type == "fbank" else 23)
        if self.use_energy is None:
            object.__setattr__(self, "use_energy", False)
        if self.window_type not in WINDOW_TYPES:
            raise ConfigError(f"window_type must be one of {WINDOW_TYPES}, not {self.window_type!r}")
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive integer, not {self.sample_rate!r}")
        object.__setattr__(self, "sample_rate", int(self.sample_rate))
        if self.frame_shift_ms <= 0 or self.frame_length_ms <= 0:
            raise ConfigError("frame_shift_ms and frame_length_ms must be positive")
        if self.num_bins < 3:
            raise ConfigError(f"num_bins must be at least 3, not {self.num_bins}")
        if self.type == "mfcc" and not 1 <= self.num_ceps <= self.num_bins:
            raise ConfigError(f"num_ceps must be in [1, num_bins={self.num_bins}], not {self.num_ceps}")
        if self.dither < 0:
            raise ConfigError(f"dither must be >= 0, not {self.dither}")
        nyquist = self.sample_rate / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not 0 <= self.low_freq < high <= nyquist:
            raise ConfigError(f"need 0 <= low_freq ({self.low_freq}) < high_freq ({high}) <= Nyquist ({nyquist}) Hz")

    @property
    def dim(self) -> int:
        """Feature dimension: num_bins (+1 with energy) for fbank, num_ceps for mfcc."""
        if self.type == "fbank":
            return self.num_bins + (1 if self.use_energy else 0)
        return self.num_ceps

    @property
    def window_size(self) -> int:
        """Samples per frame (Kaldi: ``int(rate * length_ms / 1000)``)."""
        return int(self.sample_rate * 0.001 * self.frame_length_ms)

    @property
    def window_shift(self) -> int:
        """Samples per hop."""
        return int(self.sample_rate * 0.001 * self.frame_shift_ms)

    def num_frames(self, num_samples: int) -> int:
        """Number of frames Kaldi makes from ``num_samples`` samples with these options."""
        size, shift = self.window_size, self.window_shift
        if self.snip_edges:
            return 0 if num_samples < size else 1 + (num_samples - size) // shift
        return (num_samples + shift // 2) // shift

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (defaults resolved)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the form stored in archives and compared for idempotence."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureOptions:
        """Build from a dict; unknown keys raise :class:`ConfigError`."""
        if not isinstance(values, dict):
            raise ConfigError(f"feature options must be a mapping, not {values!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown feature option(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> FeatureOptions:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def knf_options(self):
        """The equivalent ``kaldi_native_fbank.FbankOptions`` or ``MfccOptions``."""
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions() if self.type == "fbank" else knf.MfccOptions()
        frame = opts.frame_opts
        frame.samp_freq = float(self.sample_rate)
        frame.frame_shift_ms = float(self.frame_shift_ms)
        frame.frame_length_ms = float(self.frame_length_ms)
        frame.dither = float(self.dither)
        frame.preemph_coeff = float(self.preemph_coeff)
        frame.remove_dc_offset = bool(self.remove_dc_offset)
        frame.window_type = self.window_type
        frame.round_to_power_of_two = bool(self.round_to_power_of_two)
        frame.snip_edges = bool(self.snip_edges)
        mel = opts.mel_opts
        mel.num_bins = int(self.num_bins)
        mel.low_freq = float(self.low_freq)
        mel.high_freq = float(self.high_freq)
        opts.use_energy = bool(self.use_energy)
        opts.energy_floor = float(self.energy_floor)
        opts.raw_energy = bool(self.raw_energy)
        if self.type == "mfcc":
            opts.num_ceps = int(self.num_ceps)
            opts.cepstral_lifter = float(self.cepstral_lifter)
        return opts
