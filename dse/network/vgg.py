"""VGG-style networks built from CAT activations and log-weight layers (and their ReLU twins)."""

from __future__ import annotations

import torch
from torch import nn

from dse.network.fold import fold_chain
from dse.network.layers import PIXEL_FRACTION_BITS, LogLayer
from dse.network.quant import CATActivation, SpikeCode

VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "small_vgg": [32, 32, "M", 64, 64, "M", 128, 128, "M", 128, "M"],
    "tiny_vgg": [16, "M", 32, "M", 64, "M"],
}


class VGG(nn.Module):
    """conv(3x3) -> BN -> activation blocks, 2x2 pools, one linear classifier reading the last potential."""

    CAT_ONLY = False  # trains with ReLU or CAT, float or log weights (the Network protocol, dse.network.registry)
    NAIVE_CONVERSION = True  # a ReLU network of this family converts naively (dse.snn.export.convert_relu)

    def __init__(
        self,
        config: list[int | str],
        num_classes: int,
        in_channels: int,
        input_size: int,
        *,
        width: float = 1.0,
        activation: str = "cat",
        weight_bits: int | None = 5,
        code: SpikeCode = SpikeCode(),
        first_layer: str = "pixels",
        pool: str = "max",
        log2_theta: int = 0,
        learn_theta: bool = True,
    ):
        super().__init__()
        if activation not in ("cat", "relu"):
            raise ValueError(f"activation must be 'cat' or 'relu', got {activation!r}")
        if first_layer not in ("pixels", "ttfs"):
            raise ValueError(f"first_layer must be 'pixels' or 'ttfs', got {first_layer!r}")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        self.activation, self.code, self.first_layer, self.pool = activation, code, first_layer, pool
        # ReLU networks train with float weights unless weight_bits is given (the attribution's "ReLU + log")
        self.weight_bits = weight_bits
        self.input_shape = (in_channels, input_size, input_size)
        self.input_code = CATActivation(code) if (activation == "cat" and first_layer == "ttfs") else None
        if self.input_code is not None:
            self.input_code.log2_theta.requires_grad_(False)  # pixels / 256 < 1 = theta

        blocks, c, size = [], in_channels, input_size
        for item in config:
            if item == "M":
                if size >= 2:  # small inputs (digits are 8x8) skip pools that would empty the map
                    blocks.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                    size //= 2
                continue
            out = max(1, round(int(item) * width))
            conv = LogLayer(nn.Conv2d(c, out, 3, padding=1, bias=False), self.weight_bits)
            act = CATActivation(code, log2_theta, learn_theta=learn_theta) if activation == "cat" else nn.ReLU()
            blocks.append(nn.ModuleDict({"conv": conv, "bn": nn.BatchNorm2d(out), "act": act}))
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = LogLayer(nn.Linear(c * size * size, num_classes), self.weight_bits)

    def fuse_activations(self, enabled: bool = True) -> bool:
        """Compile CAT's elementwise passes (bit-identical; pays off over long trainings). Returns whether
        fusing is on: it stays off where torch.compile cannot build kernels here."""
        from dse.network.quant import fused_kernels_available

        enabled = enabled and self.activation == "cat" and fused_kernels_available()
        for m in self.modules():
            if isinstance(m, CATActivation):
                m.fused = enabled
        return enabled

    def set_pretraining(self, enabled: bool) -> None:
        """ReLU activations and float weights (a CAT network's full-precision pre-training), or back to CAT."""
        for m in self.modules():
            if isinstance(m, (CATActivation, LogLayer)):
                m.pretraining = enabled

    @property
    def folded(self) -> bool:
        return all(isinstance(b["bn"], nn.Identity) for b in self.blocks if isinstance(b, nn.ModuleDict))

    def fold_batchnorm(self, calibration: torch.Tensor | None = None, into: str = "weights") -> VGG:
        """``dse.network.fold.fold_batchnorm`` for this network: see ``fold_chain`` there."""
        return fold_chain(self, calibration, into)

    def snn_graph(self, g) -> None:
        """This network's SNN, told to ``g`` (``dse.snn.export.GraphBuilder``) op by op."""
        for block in self.blocks:
            if isinstance(block, nn.ModuleDict):
                g.weight(block["conv"].op)
                g.fire(block["act"])
            else:
                g.pool("max" if isinstance(block, nn.MaxPool2d) else "avg", 2)
        g.flatten()
        g.weight(self.classifier.op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = self.activation == "cat"
        if self.input_code is not None:
            x = self.input_code(x)
            grid = -self.code.fraction_bits
        else:
            grid = -PIXEL_FRACTION_BITS
        for block in self.blocks:
            if isinstance(block, nn.ModuleDict):
                x = block["act"](block["bn"](block["conv"](x, grid if cat else None)))
                if cat:
                    grid = block["act"].theta_exponent() - self.code.fraction_bits
            else:
                x = block(x)
                if isinstance(block, nn.AvgPool2d):
                    grid -= 2  # the mean of four values needs two more fractional bits
        return self.classifier(torch.flatten(x, 1), grid if cat else None)
