"""ResNet-style networks for CIFAR: basic blocks with residual additions, CAT activations and log weights.

A block computes ``CAT(bn2(conv2(CAT(bn1(conv1(x))))) + shortcut(x))``. The shortcut is parameter-free
(He et al., CVPR 2016, CIFAR option A): the identity, or where a block halves the map and doubles the
channels, every second position of ``x`` with the new channels zero. ``x`` is a CAT output, so the shortcut
carries decoded spike values (dyadic) and the sum is exact: in the SNN the shortcut's spikes accumulate into
the same membrane potential as conv2's weighted input, and one TTFS neuron fires the sum (docs/cat-snn.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dse.network.fold import fold_units
from dse.network.layers import PIXEL_FRACTION_BITS, LogLayer
from dse.network.quant import CATActivation, SpikeCode
from dse.network.vgg import VGG

# (stem channels, [(channels, stride) per block]); every block's channels are a multiple of its input's
RESNET_CONFIGS: dict[str, tuple[int, list[tuple[int, int]]]] = {
    "resnet8": (16, [(16, 1), (32, 2), (64, 2)]),
    "resnet14": (16, [(16, 1), (16, 1), (32, 2), (32, 1), (64, 2), (64, 1)]),
}


def shortcut(x: torch.Tensor, channels: int, stride: int) -> torch.Tensor:
    """Option A: every ``stride``-th position, the channels beyond ``x``'s zero (exact: a selection)."""
    x = x[:, :, ::stride, ::stride] if stride > 1 else x
    return F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1])) if channels > x.shape[1] else x


class ResNet(nn.Module):
    """A conv stem, basic blocks, a global average pool and one linear classifier, as ``VGG``'s interface."""

    CAT_ONLY = True  # its SNN is exact with CAT and log weights only (the Network protocol, dse.network.registry)
    NAIVE_CONVERSION = False

    def __init__(self, config: tuple[int, list[tuple[int, int]]], num_classes: int, in_channels: int,
                 input_size: int, *, width: float = 1.0, activation: str = "cat", weight_bits: int | None = 5,
                 code: SpikeCode = SpikeCode(), first_layer: str = "pixels", pool: str = "avg",
                 log2_theta: int = 0, learn_theta: bool = True):
        super().__init__()
        if activation != "cat":
            raise ValueError(f"a ResNet trains with CAT activations only (its SNN is exact), got {activation!r}")
        if first_layer not in ("pixels", "ttfs"):
            raise ValueError(f"first_layer must be 'pixels' or 'ttfs', got {first_layer!r}")
        self.activation, self.code, self.first_layer, self.pool = activation, code, first_layer, "avg"
        self.weight_bits = weight_bits
        self.input_shape = (in_channels, input_size, input_size)
        self.input_code = CATActivation(code) if first_layer == "ttfs" else None
        if self.input_code is not None:
            self.input_code.log2_theta.requires_grad_(False)

        def unit(cin: int, cout: int, stride: int, act: bool = True) -> nn.ModuleDict:
            conv = LogLayer(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), weight_bits)
            parts = {"conv": conv, "bn": nn.BatchNorm2d(cout)}
            if act:
                parts["act"] = CATActivation(code, log2_theta, learn_theta=learn_theta)
            return nn.ModuleDict(parts)

        stem, blocks = config
        c = max(1, round(stem * width))
        self.stem = unit(in_channels, c, 1)
        self.blocks = nn.ModuleList()
        size = input_size
        for channels, stride in blocks:
            out = max(1, round(channels * width))
            if out < c or (stride > 1 and size < 2 * stride - 1):
                raise ValueError(f"block of {out} channels, stride {stride}: cannot follow {c} channels at {size}x{size}")
            block = nn.ModuleDict({"a": unit(c, out, stride), "b": unit(out, out, 1, act=False),
                                   "act": CATActivation(code, log2_theta, learn_theta=learn_theta)})
            block.stride = stride
            self.blocks.append(block)
            c, size = out, (size - 1) // stride + 1
        if size & (size - 1):
            raise ValueError(f"the global average pool needs a power-of-two map (exact mean), got {size}x{size}")
        self.pool_kernel = size
        self.classifier = LogLayer(nn.Linear(c, num_classes), weight_bits)

    fuse_activations = VGG.fuse_activations
    set_pretraining = VGG.set_pretraining

    def units(self) -> list[nn.ModuleDict]:
        """Every conv with its batch norm, in forward order (what folding walks)."""
        return [self.stem, *(u for block in self.blocks for u in (block["a"], block["b"]))]

    @property
    def folded(self) -> bool:
        return all(isinstance(u["bn"], nn.Identity) for u in self.units())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frac = self.code.fraction_bits
        if self.input_code is not None:
            x, grid = self.input_code(x), -frac
        else:
            grid = -PIXEL_FRACTION_BITS
        x = self.stem["act"](self.stem["bn"](self.stem["conv"](x, grid)))
        grid = self.stem["act"].theta_exponent() - frac
        for block in self.blocks:
            a, b = block["a"], block["b"]
            h = a["act"](a["bn"](a["conv"](x, grid)))
            v = b["bn"](b["conv"](h, a["act"].theta_exponent() - frac))
            x = block["act"](v + shortcut(x, v.shape[1], block.stride))
            grid = block["act"].theta_exponent() - frac
        k = self.pool_kernel
        x = F.avg_pool2d(x, k) if k > 1 else x
        grid -= 2 * (k - 1).bit_length()  # the mean of k^2 values: that many more fractional bits
        return self.classifier(torch.flatten(x, 1), grid)

    @torch.no_grad()
    def fold_batchnorm(self, calibration: torch.Tensor | None = None, into: str = "weights") -> ResNet:
        """``dse.network.fold.fold_batchnorm`` for this network: see ``fold_units`` there."""
        return fold_units(self, calibration, into)

    def snn_graph(self, g) -> None:
        """This network's SNN, told to ``g`` (``dse.snn.export.GraphBuilder``): each block's shortcut reads the
        spikes that entered the block (that fire op), and ``add`` sums conv2's potential with them before the
        block's fire."""
        g.weight(self.stem["conv"].op)
        g.fire(self.stem["act"])
        for block in self.blocks:
            entry = g.last
            g.weight(block["a"]["conv"].op)
            g.fire(block["a"]["act"])
            conv = g.weight(block["b"]["conv"].op)
            short = g.shortcut(entry, block.stride, int(block["b"]["conv"].op.weight.shape[0]))
            g.add([conv, short])
            g.fire(block["act"])
        if self.pool_kernel > 1:
            g.pool("avg", self.pool_kernel)
        g.flatten()
        g.weight(self.classifier.op)

