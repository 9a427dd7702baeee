"""Folding batch norm into the layers before it (and into per-channel thresholds), for every network family.

A CAT network trains with batch norm; its SNN has none. Folding moves each batch norm's scale and shift into the
conv (or the activation's threshold), optionally correcting the biases on calibration images; the network is
then fine-tuned folded, and export is exact.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.quant import threshold_scales

FOLDS = ("thresholds", "weights")


@torch.no_grad()
def fold_batchnorm(model: nn.Module, calibration: torch.Tensor | None = None, into: str = "weights") -> nn.Module:
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
    return model.fold_batchnorm(calibration, into)  # each family folds over its own layer graph


@torch.no_grad()
def fold_chain(model: nn.Module, calibration: torch.Tensor | None = None, into: str = "weights") -> nn.Module:
    """``fold_batchnorm`` for a chain of conv -> batch norm -> activation blocks and pools (``VGG``)."""
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
        # the register's exponent range; a dead channel (gamma ~ 0) keeps a bounded bias
        magnitude = scale.abs().clamp(2.0**-12, 2.0**15)
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


def _correct_biases(reference: nn.Module, folded: nn.Module, images: torch.Tensor, batch: int = 500) -> None:
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


@torch.no_grad()
def fold_units(model: nn.Module, calibration: torch.Tensor | None = None, into: str = "weights",
               batch: int = 500) -> nn.Module:
    """Fold each unit's batch norm into its conv (in place), for any network that lists its ``units()``.

    With ``calibration`` images, the bias correction of ``fold_batchnorm``: unit by unit, in
    forward order, each folded conv's bias is shifted per channel by the mean difference between the unfolded
    network's batch-norm output and the folded conv's output on those images, the folded network's earlier
    units already corrected. The potentials are read by forward hooks, so the graph (residual additions
    included) is whatever the network's forward is. ``into="thresholds"``: units with their own activation fold
    into its per-channel thresholds; a unit whose potential feeds an add (a shortcut's spikes join it unscaled)
    folds into its weights.
    """
    reference = copy.deepcopy(model).eval() if calibration is not None else None
    for unit in model.units():
        if isinstance(unit["bn"], nn.Identity):
            continue
        fold_unit(unit, into)
    if reference is None:
        return model
    model.eval()
    for ref_unit, unit in zip(reference.units(), model.units()):
        seen: dict[str, torch.Tensor] = {}
        hooks = [ref_unit["bn"].register_forward_hook(lambda m, i, o: seen.__setitem__("ref", o)),
                 unit["conv"].register_forward_hook(lambda m, i, o: seen.__setitem__("fold", o))]
        shift = 0.0
        for i in range(0, len(calibration), batch):
            reference(calibration[i:i + batch])
            model(calibration[i:i + batch])
            shift = shift + (seen["ref"] * potential_scale(unit) - seen["fold"]).sum(dim=(0, 2, 3))
        for hook in hooks:
            hook.remove()
        out = seen["fold"]
        unit["conv"].op.bias += shift / (len(calibration) * out.shape[2] * out.shape[3])
    return model
