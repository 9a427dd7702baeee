"""VGG-style networks built from CAT activations and log-weight layers (and their ReLU twins).

Inputs are pixels / 256 (dyadic), zero-padded: a zero pixel and "no spike" mean the same thing, so
padding agrees between the ANN and the SNN. Input normalization is left to the first layer's
batch norm, which folds into its bias at export.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from dse.quant import (CATActivation, SpikeCode, max_exponent, quantize_fixed, quantize_log_weights, threshold_scales,
                       weight_scale_exponent)

PIXEL_FRACTION_BITS = 8  # inputs are uint8 pixels / 256

VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "small_vgg": [32, 32, "M", 64, 64, "M", 128, 128, "M", 128, "M"],
    "tiny_vgg": [16, "M", 32, "M", 64, "M"],
}
MODEL_NAMES = tuple(VGG_CONFIGS)


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


class VGG(nn.Module):
    """conv(3x3) -> BN -> activation blocks, 2x2 pools, one linear classifier reading the last potential."""

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
        from dse.quant import fused_kernels_available

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


def build_model(name: str, num_classes: int, in_channels: int, input_size: int, *, time_window: int = 8,
                steps_per_octave: int = 1, rounding: str = "floor", **options) -> VGG:
    """A named VGG; ``options`` are VGG's (width, activation, weight_bits, first_layer, pool)."""
    if name not in VGG_CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    code = SpikeCode(time_window, steps_per_octave, rounding)
    return VGG(VGG_CONFIGS[name], num_classes, in_channels, input_size, code=code, **options)


FOLDS = ("thresholds", "weights")


@torch.no_grad()
def fold_batchnorm(model: VGG, calibration: torch.Tensor | None = None, into: str = "weights") -> VGG:
    """Fold each batch norm (in place, running statistics) into the conv before it and, with ``into="thresholds"``,
    into the activation's per-channel threshold.

    ``"weights"``: the conv takes the scale; the forward pass log-quantizes w * gamma / sigma again, which moves
    each channel's gain by up to 2^(+-1/2) (small VGG at 2 CAT epochs: 72.7 % -> 62.4 %). ``"thresholds"``: the
    weights stay as trained (a negative scale flips a channel's signs, exact in the log code); the neuron fires
    against theta * scale[c] * thr[t], scale[c] = sigma / |gamma| on MANTISSA_BITS + 1 significant bits (0.2 %),
    a threshold register per channel in hardware. ``calibration`` (input images, N x C x H x W, in the network's
    input scale) then shifts, layer by layer, each channel's bias so that its mean potential on these images
    equals the unfolded network's (72.7 % -> 71.7 % for the weight fold, benchmarks/fold_correction.py).
    """
    if into not in FOLDS:
        raise ValueError(f"fold into must be one of {', '.join(FOLDS)}, got {into!r}")
    if not isinstance(model, VGG):  # another family folds over its own layer graph (dse.resnet.fold_units)
        return model.fold_batchnorm(calibration, into)
    reference = copy.deepcopy(model).eval() if calibration is not None else None
    for block in model.blocks:
        if not isinstance(block, nn.ModuleDict) or isinstance(block["bn"], nn.Identity):
            continue
        fold_unit(block, into)
    if reference is not None:
        _correct_biases(reference, model.eval(), calibration)
    return model


@torch.no_grad()
def fold_unit(unit: nn.ModuleDict, into: str = "weights") -> None:
    """Fold one conv -> batch norm [-> activation] unit (in place); see ``fold_batchnorm``. A unit without its
    own activation (its potential feeds an add) folds into its weights."""
    conv, bn = unit["conv"].op, unit["bn"]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    if into == "thresholds" and "act" in unit:
        sign = torch.where(scale < 0, -1.0, 1.0).to(scale.dtype)
        magnitude = scale.abs().clamp(2.0**-12, 2.0**15)  # the register's exponent range; a dead channel keeps a bounded bias
        conv.weight.mul_(sign.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(shift * sign / magnitude)
        unit["act"].register_buffer("threshold_scale", threshold_scales(1.0 / magnitude).to(scale.dtype))
    else:
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(shift)
    unit["bn"] = nn.Identity()


def potential_scale(unit: nn.ModuleDict) -> torch.Tensor | float:
    """What a folded unit's potential is per unit of its batch norm's output: 1, or the per-channel threshold scale."""
    scale = getattr(unit["act"], "threshold_scale", None) if "act" in unit else None
    return 1.0 if scale is None else scale.view(1, -1, 1, 1)


def folded_into(state_dict: dict) -> str:
    """How the network a state dict was saved from was folded (what ``fold_batchnorm`` must rebuild)."""
    return "thresholds" if any(k.endswith("threshold_scale") for k in state_dict) else "weights"


def _correct_biases(reference: VGG, folded: VGG, images: torch.Tensor, batch: int = 500) -> None:
    """Shift each folded conv's bias by the mean potential difference (per channel) to ``reference``; the
    folded network's inputs come from its own corrected layers, so later layers see what the export sees."""
    cat = folded.activation == "cat"
    grid = -PIXEL_FRACTION_BITS
    if folded.input_code is not None:
        images, grid = folded.input_code(images), -folded.code.fraction_bits
    ref_x = fold_x = images
    for ref_block, block in zip(reference.blocks, folded.blocks):
        if not isinstance(block, nn.ModuleDict):
            ref_x, fold_x = ref_block(ref_x), block(fold_x)
            if isinstance(block, nn.AvgPool2d):
                grid -= 2
            continue
        layer = None if not cat else grid
        shift = 0.0
        for i in range(0, len(images), batch):
            ref_v = ref_block["bn"](ref_block["conv"](ref_x[i:i + batch], layer)) * potential_scale(block)
            shift = shift + (ref_v - block["conv"](fold_x[i:i + batch], layer)).sum(dim=(0, 2, 3))
        block["conv"].op.bias += shift / (len(images) * ref_x.shape[2] * ref_x.shape[3])
        ref_x = torch.cat([ref_block["act"](ref_block["bn"](ref_block["conv"](ref_x[i:i + batch], layer)))
                           for i in range(0, len(images), batch)])
        fold_x = torch.cat([block["act"](block["conv"](fold_x[i:i + batch], layer))
                            for i in range(0, len(images), batch)])
        if cat:
            grid = block["act"].theta_exponent() - folded.code.fraction_bits
