"""Export a trained network to the SNN (``dse.snn.network``): integer log-weight codes, integer biases, pow2
thresholds (times a per-channel scale where batch norm was folded into the thresholds).

``export_snn`` is lossless for a folded CAT network; ``convert_relu`` is the naive baseline: a full-precision
ReLU network converted after training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dse.network.fold import fold_batchnorm
from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.quant import SpikeCode, log_encode, max_exponent, weight_scale_exponent
from dse.network.resnet import ResNet
from dse.network.vgg import VGG
from dse.snn.network import SNNNetwork
from dse.util.errors import UserError

EXACT_BITS = 52  # float64 sums of dyadic values are exact while they fit in 52 bits above the LSB


def _weight_op(layer: nn.Conv2d | nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None, weight_bits: int,
               input_grid: int) -> dict:
    weight = weight.detach().cpu()  # the SNN file is a CPU artifact; simulators move it to their device
    bias = None if bias is None else bias.detach().cpu()
    scale = weight_scale_exponent(weight)
    lsb = scale - max_exponent(weight_bits) + input_grid
    b = torch.zeros(weight.shape[0], dtype=torch.float64) if bias is None else bias.detach().to(torch.float64)
    op = {"op": "conv" if isinstance(layer, nn.Conv2d) else "linear",
          "codes": log_encode(weight, weight_bits, scale), "scale_exp": scale, "lsb": lsb,
          "bias": torch.round(torch.ldexp(b, torch.tensor(-lsb))).to(torch.int64)}
    if isinstance(layer, nn.Conv2d):
        op.update(stride=int(layer.stride[0]), padding=int(layer.padding[0]))
    # exactness bound: |sum| <= fan_in * 2^(max_exponent + input fraction) LSBs, plus the bias
    fan_in = weight[0].numel()
    span = math.log2(fan_in) + max_exponent(weight_bits) + (-input_grid) + 1
    bias_bits = math.log2(float(op["bias"].abs().max()) + 1)
    if max(span, bias_bits) + 1 > EXACT_BITS:
        raise UserError(f"weight_bits={weight_bits} with this time window needs {max(span, bias_bits) + 1:.0f}-bit "
                        f"sums (fan-in {fan_in}); the exact datapath supports {EXACT_BITS}: lower weight_bits or T")
    return op


def _fire(act: nn.Module, theta_exp: int | None = None) -> dict:
    """A fire op: theta = 2^theta_exp, and the per-channel threshold scale of a batch norm folded into thresholds."""
    op = {"op": "fire", "theta_exp": act.theta_exponent() if theta_exp is None else theta_exp}
    scale = getattr(act, "threshold_scale", None)
    if scale is not None:
        op["threshold_scale"] = scale.detach().cpu().to(torch.float64)
    return op


def _input_ops(model) -> tuple[list[dict], int]:
    """The ops before the first weight layer and the grid its inputs sit on: pixels / 256, or TTFS-coded pixels."""
    if model.first_layer == "ttfs":
        return [{"op": "fire", "theta_exp": 0}], -model.code.fraction_bits
    return [], -PIXEL_FRACTION_BITS


def _export(model: VGG, thetas: list[int], weight_bits: int) -> SNNNetwork:
    code = model.code
    ops, grid = _input_ops(model)
    thetas = iter(thetas)
    for block in model.blocks:
        if isinstance(block, nn.ModuleDict):
            conv = block["conv"].op
            ops.append(_weight_op(conv, conv.weight, conv.bias, weight_bits, grid))
            theta = next(thetas)
            ops.append(_fire(block["act"], theta))
            grid = theta - code.fraction_bits
        elif isinstance(block, nn.MaxPool2d):
            ops.append({"op": "maxpool", "kernel": 2})
        else:
            ops.append({"op": "avgpool", "kernel": 2})
            grid -= 2
    ops.append({"op": "flatten"})
    fc = model.classifier.op
    ops.append(_weight_op(fc, fc.weight, fc.bias, weight_bits, grid))
    return SNNNetwork(code, weight_bits, model.input_shape, ops)


def _export_resnet(model: ResNet, weight_bits: int) -> SNNNetwork:
    """The residual graph: each block's shortcut reads the spikes that entered the block (``input``: that
    fire op's index), and ``add`` sums conv2's potential with them before the block's fire."""
    code = model.code
    ops, grid = _input_ops(model)

    def unit(u, grid: int) -> int:
        conv = u["conv"].op
        ops.append(_weight_op(conv, conv.weight, conv.bias, weight_bits, grid))
        return len(ops) - 1

    unit(model.stem, grid)
    theta = model.stem["act"].theta_exponent()
    ops.append(_fire(model.stem["act"]))
    for block in model.blocks:
        entry, grid = len(ops) - 1, theta - code.fraction_bits
        unit(block["a"], grid)
        inner = block["a"]["act"].theta_exponent()
        ops.append(_fire(block["a"]["act"]))
        conv = unit(block["b"], inner - code.fraction_bits)
        channels = int(block["b"]["conv"].op.weight.shape[0])
        ops.append({"op": "shortcut", "input": entry, "stride": block.stride, "channels": channels})
        ops.append({"op": "add", "inputs": [conv, len(ops) - 1]})
        theta = block["act"].theta_exponent()
        ops.append(_fire(block["act"]))
    grid = theta - code.fraction_bits
    if model.pool_kernel > 1:
        ops.append({"op": "avgpool", "kernel": model.pool_kernel})
        grid -= 2 * (model.pool_kernel - 1).bit_length()
    ops.append({"op": "flatten"})
    fc = model.classifier.op
    ops.append(_weight_op(fc, fc.weight, fc.bias, weight_bits, grid))
    return SNNNetwork(code, weight_bits, model.input_shape, ops)


def export_snn(model: VGG | ResNet) -> SNNNetwork:
    """Lossless export of a folded CAT network: the SNN computes what ``model.double().eval()`` computes."""
    if model.activation != "cat":
        raise UserError("export_snn needs a CAT network; use convert_relu for a ReLU network")
    if not model.folded:
        raise UserError("fold the batch norms first (dse.network.fold.fold_batchnorm) and fine-tune; export is exact only then")
    if isinstance(model, ResNet):
        return _export_resnet(model, model.weight_bits)
    thetas = [b["act"].theta_exponent() for b in model.blocks if isinstance(b, nn.ModuleDict)]
    return _export(model, thetas, model.weight_bits)


@torch.no_grad()
def convert_relu(relu_model: VGG, calib_images: torch.Tensor, *, percentile: float = 99.9, weight_bits: int = 5,
                 time_window: int = 8, steps_per_octave: int = 1, rounding: str = "floor") -> SNNNetwork:
    """Naive conversion: fold BN, log-quantize weights, thresholds at the activation percentile (pow2 ceil).

    ``calib_images`` are float inputs (pixels / 256). Conversion loss is what this loses against the
    full-precision network; the CAT network avoids it by training on the converted representation.
    """
    import copy

    if not isinstance(relu_model, VGG):
        raise UserError(f"the naive ReLU conversion is for VGG networks; {type(relu_model).__name__} trains with CAT")
    model = fold_batchnorm(copy.deepcopy(relu_model)).eval().float()
    thetas = []
    x = calib_images.float()
    for block in model.blocks:
        if isinstance(block, nn.ModuleDict):
            x = block["act"](block["conv"](x, None))
            level = torch.quantile(x.flatten()[: 2**24].float(), percentile / 100.0).item()
            thetas.append(math.ceil(math.log2(level)) if level > 0 else 0)
        else:
            x = block(x)
    model.code = SpikeCode(time_window, steps_per_octave, rounding)
    return _export(model, thetas, weight_bits)
