"""The layer every network family is built from: a conv or linear layer with log-quantized weights and a bias on
the integer accumulator's grid, and the input grid (pixels / 256).

Inputs are pixels / 256 (dyadic), zero-padded: a zero pixel and "no spike" mean the same thing, so padding agrees
between the ANN and the SNN. Input normalization is left to the first layer's batch norm, which folds into its
bias at export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dse.network.quant import max_exponent, quantize_fixed, quantize_log_weights, weight_scale_exponent

PIXEL_FRACTION_BITS = 8  # inputs are uint8 pixels / 256


class LogLayer(nn.Module):
    """A conv or linear layer whose weights are log-quantized and whose bias sits on the accumulator grid.

    ``input_grid`` (the exponent of the input's least significant bit) is passed in by the network so
    that the bias lands exactly on the grid of the integer accumulator: the SNN adds it as an integer.
    """

    def __init__(self, op: nn.Conv2d | nn.Linear, weight_bits: int | None):
        super().__init__()
        self.op = op
        self.weight_bits = weight_bits
        self.pretraining = False  # full-precision weights while a CAT network is pre-trained

    def accumulator_lsb(self, input_grid: int) -> int:
        """Exponent of the smallest product: weight scale - max exponent + input grid."""
        return weight_scale_exponent(self.op.weight) - max_exponent(self.weight_bits) + input_grid

    def forward(self, x: torch.Tensor, input_grid: int | None) -> torch.Tensor:
        bits = None if self.pretraining else self.weight_bits
        w = quantize_log_weights(self.op.weight, bits)
        b = self.op.bias
        if b is not None and bits is not None and input_grid is not None:
            b = quantize_fixed(b, -self.accumulator_lsb(input_grid))
        if isinstance(self.op, nn.Conv2d):
            return F.conv2d(x, w, b, self.op.stride, self.op.padding)
        return F.linear(x, w, b)
