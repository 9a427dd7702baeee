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


class GraphBuilder:
    """What a network family tells to describe its SNN (``model.snn_graph(builder)``, the ``Network`` protocol of
    ``dse.network.registry``): its weight layers, fires, pools, shortcuts and adds in order. The builder keeps the
    grid (the LSB exponent) each op's inputs sit on, so a family says only what its graph is.
    ``thetas``: the fire thresholds' exponents in order, in place of each activation's own (the naive conversion)."""

    def __init__(self, model: nn.Module, weight_bits: int, thetas: list[int] | None = None):
        self.code, self.weight_bits, self.thetas = model.code, weight_bits, iter(thetas) if thetas is not None else None
        if model.first_layer == "ttfs":  # the pixels arrive as TTFS spikes; else as pixels / 256
            self.ops, self.grid = [{"op": "fire", "theta_exp": 0}], -self.code.fraction_bits
        else:
            self.ops, self.grid = [], -PIXEL_FRACTION_BITS

    def _add(self, op: dict) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    @property
    def last(self) -> int:
        """The index of the op added last (a shortcut names the fire whose spikes it reads)."""
        return len(self.ops) - 1

    def weight(self, layer: nn.Conv2d | nn.Linear) -> int:
        return self._add(_weight_op(layer, layer.weight, layer.bias, self.weight_bits, self.grid))

    def fire(self, act: nn.Module) -> int:
        theta = act.theta_exponent() if self.thetas is None else next(self.thetas)
        self.grid = theta - self.code.fraction_bits
        return self._add(_fire(act, theta))

    def pool(self, kind: str, kernel: int) -> int:
        if kind == "avg":  # a mean of kernel^2 values: the grid moves down by log2 of it
            self.grid -= 2 * (kernel - 1).bit_length()
        return self._add({"op": f"{kind}pool", "kernel": kernel})

    def flatten(self) -> int:
        return self._add({"op": "flatten"})

    def shortcut(self, source: int, stride: int, channels: int) -> int:
        return self._add({"op": "shortcut", "input": source, "stride": stride, "channels": channels})

    def add(self, inputs: list[int]) -> int:
        return self._add({"op": "add", "inputs": inputs})


def export_snn(model: nn.Module) -> SNNNetwork:
    """Lossless export of a folded CAT network: the SNN computes what ``model.double().eval()`` computes."""
    if model.activation != "cat":
        raise UserError("export_snn needs a CAT network; use convert_relu for a ReLU network")
    if not model.folded:
        raise UserError("fold the batch norms first (dse.network.fold.fold_batchnorm) and fine-tune; export is exact only then")
    return _graph(model, model.weight_bits)


def _graph(model: nn.Module, weight_bits: int, thetas: list[int] | None = None) -> SNNNetwork:
    builder = GraphBuilder(model, weight_bits, thetas)
    model.snn_graph(builder)
    return SNNNetwork(builder.code, weight_bits, model.input_shape, builder.ops)


@torch.no_grad()
def convert_relu(relu_model: nn.Module, calib_images: torch.Tensor, *, percentile: float = 99.9, weight_bits: int = 5,
                 time_window: int = 8, steps_per_octave: int = 1, rounding: str = "floor") -> SNNNetwork:
    """Naive conversion: fold BN, log-quantize weights, thresholds at the activation percentile (pow2 ceil).

    ``calib_images`` are float inputs (pixels / 256). Conversion loss is what this loses against the
    full-precision network; the CAT network avoids it by training on the converted representation.
    """
    import copy

    if not relu_model.NAIVE_CONVERSION:
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
    return _graph(model, weight_bits, thetas)
