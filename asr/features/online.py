"""Features for one new recording, offline or as audio arrives: resampling, filterbank / MFCC, CMVN policy.

Three pieces, each usable on a whole recording or chunk by chunk with the same numbers:

- :class:`StreamingResampler`: torchaudio's band-limited sinc resampler (the kernel
  :func:`asr.data.audio.resample` uses, via ``torchaudio.transforms.Resample``) applied block by block: a
  block of output samples is computed as soon as every input sample its filter reaches has arrived, and
  :meth:`~StreamingResampler.finish` pads the end with zeros as the offline call does. Chunked output equals
  the offline output up to float rounding of the convolution (tested within 1e-6).
- :class:`OnlineFeatures`: kaldi-native-fbank's ``OnlineFbank`` / ``OnlineMfcc`` (the extractor the feature
  archives are computed with, :class:`asr.features.extract.KnfExtractor`); frames come out as soon as their
  25 ms window is complete, and the frames are the same whatever the chunking.
- :class:`CmvnPolicy` and :func:`normalize`: what to subtract from a new recording's features. The models
  were trained on features normalized per speaker (``cmvn=speaker`` in the archive), which needs all of a
  speaker's audio; for one new file the choices are:

  - ``online`` (the default in bundles): Kaldi's ``OnlineCmvn`` (``apply-cmvn-online``): frame t is
    normalized with the mean of the frames in a causal window ``[t - window + 1, t]`` (window 600 frames),
    completed, while that window holds fewer than ``window`` frames, by up to ``global_frames`` (200) frames'
    worth of the global training statistics. Causal, so streaming gives exactly the offline numbers.
  - ``global``: the mean (and variance) of all training frames. Causal too.
  - ``utterance``: the mean of this recording's frames; needs the whole recording (offline only).
  - ``speaker``: the training condition, for a data dir (``utt2spk``): the mean over each speaker's
    utterances; offline only.
  - ``none``: no normalization.

  WER (%) measured with ``python -m asr.bench.transcribe`` (bundles of the models named; LM weight as the
  bundle recorded it):

  ==================================  =======  =========  ======  ======
  set, model                          speaker  utterance  online  global
  ==================================  =======  =========  ======  ======
  AN4 dev, tri1 GMM (lmwt 17)            6.62       7.91    7.77    8.35
  AN4 dev, DNN 1 x 512 (lmwt 10)         6.62       7.34    9.78   10.79
  AN4 dev, DNN 4 x 512 (lmwt 13)         6.04       7.91    7.77    9.06
  yes/no test, mono GMM                  0.43       0.43    0.86    0.43
  yes/no test, DNN 1 x 32 (3 epochs)     2.16       1.29    3.02    1.29
  ==================================  =======  =========  ======  ======

  ``speaker`` reproduces ``decode_dir`` exactly. For one new file no policy reaches it (1.2 to 3.2 points
  worse on AN4 dev, whose speakers each have ~10 utterances). ``online`` is the default because it is the
  best causal policy on AN4 (the only ones that can stream, so that ``--stream`` and offline agree by
  default); ``utterance`` is as good or better offline for some models (``--cmvn utterance``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from asr.errors import ConfigError
from asr.features.cmvn import VARIANCE_FLOOR, apply_cmvn, cmvn_stats
from asr.features.options import FeatureOptions

CMVN_POLICIES = ("online", "global", "utterance", "speaker", "none")
STREAMING_POLICIES = ("online", "global", "none")
DEFAULT_CMVN_POLICY = "online"
# Kaldi's OnlineCmvnOptions defaults (online-feature.h): --cmvn-window=600 --global-frames=200
DEFAULT_CMVN_WINDOW = 600
DEFAULT_GLOBAL_FRAMES = 200


# ---------------------------------------------------------------------------------------------- resampling
@functools.lru_cache(maxsize=16)
def _resample_transform(orig_rate: int, new_rate: int):
    import torchaudio.transforms

    return torchaudio.transforms.Resample(orig_rate, new_rate)


class StreamingResampler:
    """Resample audio chunk by chunk with torchaudio's sinc kernel (same output as a one-call resample).

    Args:
        orig_rate: rate of the samples given to :meth:`accept`.
        new_rate: rate of the samples returned.

    Offline, torchaudio pads the signal with ``width`` zeros on the left and ``width + orig`` on the right
    (rates divided by their gcd) and convolves with stride ``orig``: output block ``k`` (``new`` samples)
    reads input samples ``[k * orig - width, k * orig + orig + width)``. Here block ``k`` is computed once
    those samples are all in; :meth:`finish` adds the right padding and cuts the output to
    ``ceil(new * num_input / orig)`` samples, as torchaudio does. The algorithmic delay is ``width + orig``
    input samples (about 6 / min(rates) seconds, e.g. 0.75 ms from 16 to 8 kHz).
    """

    def __init__(self, orig_rate: int, new_rate: int):
        if orig_rate <= 0 or new_rate <= 0:
            raise ConfigError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.identity = self.orig_rate == self.new_rate
        self._num_in = 0
        self._num_out = 0
        self._finished = False
        if self.identity:
            return
        transform = _resample_transform(self.orig_rate, self.new_rate)
        gcd = math.gcd(self.orig_rate, self.new_rate)
        self._o, self._n = self.orig_rate // gcd, self.new_rate // gcd
        self._width = int(transform.width)
        self._kernel = transform.kernel  # [n, 1, 2 * width + o]
        self._k = int(self._kernel.shape[-1])
        self._buffer = np.zeros(self._width, dtype=np.float32)  # padded signal from block self._next * o on

    @property
    def delay_samples(self) -> int:
        """Input samples that must follow a sample before the output block holding it can be computed."""
        return 0 if self.identity else self._width + self._o

    def _blocks(self, buffer: np.ndarray, count: int) -> np.ndarray:
        import torch

        span = (count - 1) * self._o + self._k
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(buffer[:span]))[None, None]
            out = torch.nn.functional.conv1d(x, self._kernel, stride=self._o)  # [1, n, count]
            return out[0].transpose(0, 1).reshape(-1).numpy().astype(np.float32, copy=False)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Take the next input samples (float32 mono); return the output samples that are now complete."""
        if self._finished:
            raise RuntimeError("accept() after finish()")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._num_in += samples.size
        if self.identity:
            self._num_out += samples.size
            return samples
        self._buffer = np.concatenate([self._buffer, samples])
        return self._emit()

    def _emit(self) -> np.ndarray:
        if self._buffer.size < self._k:
            return np.zeros(0, dtype=np.float32)
        count = (self._buffer.size - self._k) // self._o + 1
        out = self._blocks(self._buffer, count)
        self._buffer = self._buffer[count * self._o :]
        return self._cut(out)

    def _cut(self, out: np.ndarray) -> np.ndarray:
        if self._finished:  # the offline length: ceil(new * num_in / orig)
            target = -(-self._n * self._num_in // self._o)
            out = out[: max(0, target - self._num_out)]
        self._num_out += out.size
        return out

    def finish(self) -> np.ndarray:
        """No more input: return the last output samples (the end padded with zeros, as offline)."""
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        self._finished = True
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, np.zeros(self._width + self._o, dtype=np.float32)])
        return self._emit()


# ---------------------------------------------------------------------------------------------- features
class OnlineFeatures:
    """Filterbank or MFCC frames computed as samples arrive (kaldi-native-fbank's online extractors).

    Args:
        options: the feature options (``type`` picks fbank or mfcc); samples must be at
            ``options.sample_rate`` (use :class:`StreamingResampler` first).
    """

    def __init__(self, options: FeatureOptions):
        import kaldi_native_fbank as knf

        self.options = options
        online_class = knf.OnlineFbank if options.type == "fbank" else knf.OnlineMfcc
        self._computer = online_class(options.knf_options())
        self._emitted = 0
        self._scale = np.float32(options.waveform_scale)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return self.options.dim

    @property
    def num_frames(self) -> int:
        """Frames returned so far."""
        return self._emitted

    def _take(self) -> np.ndarray:
        ready = self._computer.num_frames_ready
        out = np.empty((ready - self._emitted, self.dim), dtype=np.float32)
        for i in range(self._emitted, ready):
            out[i - self._emitted] = self._computer.get_frame(i)
        self._emitted = ready
        return out

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Take float samples in [-1, 1]; return the new complete frames ``[n, dim]`` (n may be 0)."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size:
            waveform = np.ascontiguousarray(samples * self._scale)
            self._computer.accept_waveform(float(self.options.sample_rate), memoryview(waveform))
        return self._take()

    def finish(self) -> np.ndarray:
        """No more samples: return the last frames (none with ``snip_edges``, the default)."""
        self._computer.input_finished()
        return self._take()


# ---------------------------------------------------------------------------------------------- CMVN
@dataclass(frozen=True)
class CmvnPolicy:
    """How a new recording's features are normalized (see the module docstring).

    Attributes:
        kind: one of :data:`CMVN_POLICIES`.
        norm_vars: also normalize variances (set from the training archive: it must match training).
        window: ``online``: frames in the causal window.
        global_frames: ``online``: most frames' worth of global statistics mixed into a short window.
    """

    kind: str = DEFAULT_CMVN_POLICY
    norm_vars: bool = False
    window: int = DEFAULT_CMVN_WINDOW
    global_frames: int = DEFAULT_GLOBAL_FRAMES

    def __post_init__(self) -> None:
        if self.kind not in CMVN_POLICIES:
            raise ConfigError(f"CMVN policy must be one of {CMVN_POLICIES}, not {self.kind!r}")
        if self.window < 1 or self.global_frames < 0:
            raise ConfigError(f"CMVN window must be >= 1 and global_frames >= 0 ({self.window}, {self.global_frames})")

    @property
    def streaming(self) -> bool:
        """Whether frame t's normalization depends only on frames <= t (and training statistics)."""
        return self.kind in STREAMING_POLICIES

    def to_dict(self) -> dict:
        """Plain dict (JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CmvnPolicy:
        """Inverse of :meth:`to_dict` (ConfigError on unknown keys)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown CMVN policy field(s): {', '.join(unknown)}")
        return cls(**values)


class OnlineCmvn:
    """Causal CMVN (policies ``online``, ``global``, ``none``) applied chunk by chunk.

    Args:
        policy: a streaming :class:`CmvnPolicy`.
        global_stats: float64 ``[2, dim + 1]`` Kaldi CMVN statistics of the training features (sums, sums
            of squares, frame count), as stored in feature archives.

    ``online`` follows Kaldi's ``OnlineCmvn`` without speaker statistics: frame t's statistics are the sums
    over ``[max(0, t - window + 1), t]`` (count c = min(t + 1, window)); when c < window,
    ``min(window - c, global_frames)`` frames' worth of the global statistics are added
    (``SmoothOnlineCmvnStats``); then the mean (and with ``norm_vars`` the variance) is removed.
    Feeding the frames in any chunking gives the same numbers (running sums are carried exactly).
    """

    def __init__(self, policy: CmvnPolicy, global_stats: np.ndarray | None):
        if not policy.streaming:
            raise ConfigError(
                f"CMVN policy {policy.kind!r} needs the whole recording; streaming works with {STREAMING_POLICIES}"
            )
        self.policy = policy
        self._global = None if global_stats is None else np.asarray(global_stats, dtype=np.float64)
        if policy.kind in ("online", "global"):
            if self._global is None or self._global.ndim != 2 or self._global.shape[0] != 2:
                raise ConfigError(f"CMVN policy {policy.kind!r} needs global statistics [2, dim + 1]")
            if self._global[0, -1] <= 0:
                raise ConfigError("the global CMVN statistics count no frames")
        self._t = 0
        self._cum: np.ndarray | None = None  # cumulative sums (and squares) of frames [start, t)
        self._cum_start = 0
        self._last: np.ndarray | None = None  # cumulative row of frame t - 1

    def accept(self, feats: np.ndarray) -> np.ndarray:
        """Normalize the next frames ``[n, dim]``; returns float32 ``[n, dim]``."""
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2:
            raise ValueError(f"features must be [frames, dim], got shape {feats.shape}")
        kind = self.policy.kind
        if kind == "none" or feats.shape[0] == 0:
            return feats.copy()
        if self._global is not None and feats.shape[1] != self._global.shape[1] - 1:
            raise ValueError(f"features of dimension {feats.shape[1]}, CMVN statistics of {self._global.shape[1] - 1}")
        if kind == "global":
            return apply_cmvn(feats, self._global, self.policy.norm_vars)
        return self._online(feats)

    def _online(self, feats: np.ndarray) -> np.ndarray:
        n, dim = feats.shape
        norm_vars = self.policy.norm_vars
        window, global_frames = self.policy.window, self.policy.global_frames
        x = feats.astype(np.float64)
        rows = np.concatenate([x, x * x], axis=1) if norm_vars else x
        last = self._last if self._last is not None else np.zeros(rows.shape[1])
        cum = np.cumsum(np.concatenate([last[None], rows]), axis=0)[1:]  # cum[i] = sums over frames [0, t0 + i]
        self._last = cum[-1]
        t0 = self._t
        history = cum if self._cum is None else np.concatenate([self._cum, cum])
        history_start = t0 if self._cum is None else self._cum_start
        frames = np.arange(t0, t0 + n)
        before = frames - window  # the window sum of frame t is cum[t] - cum[t - window]
        sub = np.zeros_like(cum)
        valid = before >= 0
        sub[valid] = history[before[valid] - history_start]
        sums = cum - sub
        count = np.minimum(frames + 1, window).astype(np.float64)
        extra = np.clip(window - count, 0, global_frames) if global_frames > 0 else np.zeros(n)
        gcount = self._global[0, -1]
        weight = extra / gcount
        total = count + extra
        mean = (sums[:, :dim] + weight[:, None] * self._global[0, :-1]) / total[:, None]
        keep_from = t0 + n - window  # rows still needed as cum[t - window] for later frames
        if keep_from > history_start:
            history = history[keep_from - history_start :]
            history_start = keep_from
        self._cum, self._cum_start = history, history_start
        self._t = t0 + n
        if not norm_vars:
            return (feats + (-mean).astype(np.float32)).astype(np.float32, copy=False)
        sq = (sums[:, dim:] + weight[:, None] * self._global[1, :-1]) / total[:, None]
        scale = 1.0 / np.sqrt(np.maximum(sq - mean**2, VARIANCE_FLOOR))
        return (feats * scale.astype(np.float32) + (-mean * scale).astype(np.float32)).astype(np.float32, copy=False)


def normalize(
    feats: np.ndarray,
    policy: CmvnPolicy,
    global_stats: np.ndarray | None = None,
    speaker_stats: np.ndarray | None = None,
) -> np.ndarray:
    """Normalize one whole recording's features ``[T, dim]`` with ``policy``; returns float32 ``[T, dim]``.

    Args:
        feats: raw features of one recording.
        policy: the :class:`CmvnPolicy`.
        global_stats: training statistics ``[2, dim + 1]`` (``online``, ``global``).
        speaker_stats: statistics of all of this recording's speaker's frames (``speaker``).

    Raises:
        ConfigError: statistics the policy needs are missing.
    """
    feats = np.asarray(feats, dtype=np.float32)
    if policy.kind == "utterance":
        return apply_cmvn(feats, cmvn_stats(feats), policy.norm_vars) if feats.shape[0] else feats.copy()
    if policy.kind == "speaker":
        if speaker_stats is None:
            raise ConfigError("CMVN policy 'speaker' needs the speaker's statistics (transcribe a data dir)")
        return apply_cmvn(feats, speaker_stats, policy.norm_vars)
    return OnlineCmvn(policy, global_stats).accept(feats)
