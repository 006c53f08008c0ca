"""The acoustic model network: a ReLU MLP on spliced context windows (Zeiler et al. 2013).

Input: one context window per frame, ``(left + 1 + right) * feat_dim`` values (26 x 40 fbank = 1040 by
default), normalized by per-dimension shift and scale held as buffers (global mean / standard deviation of
the training features, so they travel with the weights); then ``depth`` hidden layers of ``width`` ReLU
units (optional dropout after each), and a linear output layer over the senones (pdf ids). The softmax is
left to the loss (``cross_entropy``) and to :class:`asr.nnet.model.DnnAcousticModel` (``log_softmax``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MAX_DEPTH = 12


class Mlp(nn.Module):
    """ReLU MLP: ``input -> (Linear -> ReLU [-> Dropout]) x depth -> Linear -> logits``.

    Args:
        input_dim: size of a context window (frames x feature dimension).
        num_outputs: number of senones (pdf ids).
        depth: hidden layers, 1..12.
        width: units per hidden layer.
        dropout: dropout probability after each hidden layer (0 disables it).

    Buffers ``input_shift`` and ``input_scale`` (``[input_dim]``) normalize the input as
    ``(x - input_shift) * input_scale``; they are 0 and 1 until :meth:`set_input_normalization`.
    """

    def __init__(self, input_dim: int, num_outputs: int, depth: int, width: int, dropout: float = 0.0):
        super().__init__()
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be in 1..{MAX_DEPTH}, not {depth}")
        if input_dim < 1 or num_outputs < 1 or width < 1:
            raise ValueError(f"input_dim, num_outputs and width must be >= 1 ({input_dim}, {num_outputs}, {width})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.input_dim = int(input_dim)
        self.num_outputs = int(num_outputs)
        self.depth = int(depth)
        self.width = int(width)
        self.dropout = float(dropout)
        self.register_buffer("input_shift", torch.zeros(self.input_dim))
        self.register_buffer("input_scale", torch.ones(self.input_dim))
        dims = [self.input_dim] + [self.width] * self.depth
        self.hidden = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(self.depth))
        self.output = nn.Linear(self.width, self.num_outputs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in) initialization for the ReLU layers, Glorot-like for the output; zero biases."""
        for layer in self.hidden:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        bound = math.sqrt(3.0 / self.width)
        nn.init.uniform_(self.output.weight, -bound, bound)
        nn.init.zeros_(self.output.bias)

    def hparams(self) -> dict[str, Any]:
        """The constructor arguments (what :meth:`from_hparams` needs), as JSON-friendly values."""
        return {
            "input_dim": self.input_dim,
            "num_outputs": self.num_outputs,
            "depth": self.depth,
            "width": self.width,
            "dropout": self.dropout,
        }

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> Mlp:
        """Build an (untrained) network from :meth:`hparams`'s dict."""
        return cls(
            int(hparams["input_dim"]),
            int(hparams["num_outputs"]),
            int(hparams["depth"]),
            int(hparams["width"]),
            float(hparams.get("dropout", 0.0)),
        )

    def num_params(self) -> int:
        """Trainable parameters (weights and biases)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def set_input_normalization(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Normalize inputs as ``(x - mean) / std``.

        Args:
            mean, std: ``[input_dim]``, or ``[feat_dim]`` per-frame statistics that are tiled over the
                context window (``input_dim`` must then be a multiple of ``feat_dim``). ``std`` is floored
                at 1e-5 times its largest value.
        """
        mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        std = torch.as_tensor(std, dtype=torch.float64).flatten()
        if mean.shape != std.shape or self.input_dim % mean.numel():
            raise ValueError(f"normalization statistics of size {mean.numel()} do not fit input_dim {self.input_dim}")
        repeat = self.input_dim // mean.numel()
        std = std.clamp(min=max(float(std.max()) * 1e-5, 1e-12))
        self.input_shift.copy_(mean.repeat(repeat).to(self.input_shift.dtype))
        self.input_scale.copy_((1.0 / std).repeat(repeat).to(self.input_scale.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, input_dim]`` context windows -> ``[B, num_outputs]`` logits."""
        x = (x - self.input_shift) * self.input_scale
        for layer in self.hidden:
            x = F.relu(layer(x))
            if self.dropout > 0.0:
                x = F.dropout(x, self.dropout, self.training)
        return self.output(x)
