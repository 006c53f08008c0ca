"""Feature extractors: samples in, ``[frames, dim]`` float32 out.

Two backends compute the same Kaldi features (they agree within 1e-3, see tests/features):

- ``knf`` (:class:`KnfExtractor`): kaldi-native-fbank, Kaldi's C++ code; one utterance at a time on a
  CPU core. The default, and what the parallel archive writer runs in its worker processes.
- ``torchaudio`` (:class:`TorchaudioExtractor`): ``torchaudio.compliance.kaldi.fbank`` / ``mfcc`` on a
  torch device. :meth:`TorchaudioExtractor.compute_batch` cuts many utterances into frames, stacks all
  frames and makes one call, so a GPU processes a whole batch at once.

Both take float samples in [-1, 1] (as :func:`asr.data.audio.read_audio` returns them) and scale them by
``options.waveform_scale`` themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from asr.errors import ConfigError
from asr.features.options import FeatureOptions

if TYPE_CHECKING:
    import torch

BACKENDS = ("knf", "torchaudio")


class KnfExtractor:
    """kaldi-native-fbank extractor (CPU, one utterance per call).

    Args:
        options: the feature options; their ``type`` picks fbank or mfcc.
    """

    backend = "knf"

    def __init__(self, options: FeatureOptions):
        import kaldi_native_fbank as knf

        self.options = options
        self._knf_options = options.knf_options()
        self._online_class = knf.OnlineFbank if options.type == "fbank" else knf.OnlineMfcc

    @property
    def dim(self) -> int:
        """Output dimension."""
        return self.options.dim

    def compute(self, samples: np.ndarray) -> np.ndarray:
        """Features of one utterance.

        Args:
            samples: mono float samples in [-1, 1] at ``options.sample_rate``.

        Returns:
            float32 ``[num_frames, dim]`` (``num_frames`` may be 0 for audio shorter than one window).
        """
        waveform = np.asarray(samples, dtype=np.float32) * np.float32(self.options.waveform_scale)
        computer = self._online_class(self._knf_options)
        # knf takes a Python sequence: a memoryview hands it Python floats without numpy scalar objects,
        # about 1.5x faster than passing the array itself
        computer.accept_waveform(float(self.options.sample_rate), memoryview(np.ascontiguousarray(waveform)))
        computer.input_finished()
        num_frames = computer.num_frames_ready
        out = np.empty((num_frames, self.dim), dtype=np.float32)
        for i in range(num_frames):
            out[i] = computer.get_frame(i)
        return out


class TorchaudioExtractor:
    """``torchaudio.compliance.kaldi`` extractor on a torch device; batched over utterances.

    Args:
        options: the feature options.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        dtype: computation dtype (float32 by default; results are returned as float32 numpy arrays).
    """

    backend = "torchaudio"

    def __init__(self, options: FeatureOptions, device: str = "cpu", dtype=None):
        import torch

        self.options = options
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self._size = options.window_size
        self._shift = options.window_shift

    @property
    def dim(self) -> int:
        """Output dimension."""
        return self.options.dim

    def _kwargs(self, frame_length_ms: float, frame_shift_ms: float, snip_edges: bool) -> dict:
        o = self.options
        kwargs = dict(
            sample_frequency=float(o.sample_rate),
            frame_length=frame_length_ms,
            frame_shift=frame_shift_ms,
            dither=float(o.dither),
            preemphasis_coefficient=float(o.preemph_coeff),
            remove_dc_offset=bool(o.remove_dc_offset),
            window_type=o.window_type,
            round_to_power_of_two=bool(o.round_to_power_of_two),
            snip_edges=snip_edges,
            num_mel_bins=int(o.num_bins),
            low_freq=float(o.low_freq),
            high_freq=float(o.high_freq),
            use_energy=bool(o.use_energy),
            energy_floor=float(o.energy_floor),
            raw_energy=bool(o.raw_energy),
        )
        if o.type == "mfcc":
            kwargs.update(num_ceps=int(o.num_ceps), cepstral_lifter=float(o.cepstral_lifter))
        return kwargs

    def _call(self, waveform, **kwargs):
        import torchaudio.compliance.kaldi as kaldi

        function = kaldi.fbank if self.options.type == "fbank" else kaldi.mfcc
        return function(waveform, **kwargs)

    def compute(self, samples: np.ndarray) -> np.ndarray:
        """Features of one utterance (one ``torchaudio.compliance.kaldi`` call); float32 ``[frames, dim]``."""
        return self.compute_batch([samples])[0]

    def compute_tensor(self, samples) -> torch.Tensor:
        """Features of one utterance as a tensor on the device, straight from ``torchaudio``'s function."""
        import torch

        o = self.options
        waveform = torch.as_tensor(np.asarray(samples), dtype=self.dtype, device=self.device) * o.waveform_scale
        if o.num_frames(waveform.numel()) == 0:
            return torch.empty((0, self.dim), dtype=self.dtype, device=self.device)
        return self._call(waveform[None], **self._kwargs(o.frame_length_ms, o.frame_shift_ms, o.snip_edges))

    def _frame_indices(self, num_samples: int):
        """Sample indices ``[frames, window]`` of each frame (Kaldi's framing, reflection at the edges)."""
        import torch

        num_frames = self.options.num_frames(num_samples)
        starts = torch.arange(num_frames, device=self.device) * self._shift
        if not self.options.snip_edges:
            starts = starts + self._shift // 2 - self._size // 2
        index = starts[:, None] + torch.arange(self._size, device=self.device)[None, :]
        if not self.options.snip_edges:  # Kaldi's ExtractWindow: reflect around the first / last sample
            index = torch.where(index < 0, -index - 1, index)
            index = torch.where(index >= num_samples, 2 * num_samples - 1 - index, index)
        return index

    def compute_batch(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Features of many utterances with one call on the device.

        Every utterance is cut into frames, all frames are stacked into one long signal whose frames do
        not overlap, and that signal goes through ``torchaudio.compliance.kaldi`` once (every step after
        framing works frame by frame, so the numbers are those of one call per utterance).

        Args:
            batch: mono float sample arrays in [-1, 1] at ``options.sample_rate``.

        Returns:
            one float32 ``[num_frames_i, dim]`` array per utterance (0 frames for audio shorter than a window).
        """
        import torch

        frames, counts = [], []
        for samples in batch:
            waveform = torch.as_tensor(np.asarray(samples), dtype=self.dtype, device=self.device)
            index = self._frame_indices(waveform.numel())
            frames.append(waveform[index])
            counts.append(index.shape[0])
        total = sum(counts)
        if total == 0:
            return [np.zeros((0, self.dim), dtype=np.float32) for _ in batch]
        stacked = torch.cat(frames).reshape(-1) * self.options.waveform_scale
        # window length in ms chosen so that int(rate * ms / 1000) gives back exactly self._size samples
        length_ms = (self._size + 0.5) * 1000.0 / self.options.sample_rate
        feats = self._call(stacked[None], **self._kwargs(length_ms, length_ms, True))
        if feats.shape[0] != total:
            raise RuntimeError(f"torchaudio returned {feats.shape[0]} frames for {total} stacked frames")
        feats = feats.to(torch.float32).cpu().numpy()
        out, start = [], 0
        for count in counts:
            out.append(feats[start : start + count])
            start += count
        return out


def make_extractor(options: FeatureOptions, backend: str = "knf", device: str = "cpu"):
    """Return a :class:`KnfExtractor` (``backend="knf"``, CPU only) or a :class:`TorchaudioExtractor`."""
    if backend == "knf":
        if device != "cpu":
            raise ConfigError(f"the knf backend runs on the CPU only (device {device!r} asked); use torchaudio")
        return KnfExtractor(options)
    if backend == "torchaudio":
        return TorchaudioExtractor(options, device)
    raise ConfigError(f"feature backend must be one of {BACKENDS}, not {backend!r}")
