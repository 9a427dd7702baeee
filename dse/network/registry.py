"""The network registry: every trainable family's names and the one factory that builds each.

A network is a ``torch.nn.Module`` with the interface ``dse.train`` and ``dse.snn.export`` use: ``forward``,
``folded``, ``fold_batchnorm`` (through ``dse.network.fold.fold_batchnorm``), ``set_pretraining``,
``fuse_activations`` and the attributes ``activation``, ``code``, ``weight_bits``, ``first_layer`` and
``input_shape``. Its SNN is a layer graph (``dse.snn.network``: conv, linear, pools, flatten, shortcut, add, fire).
Adding a family: its module, one entry per name below, and its case in ``dse.snn.export.export_snn``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dse.network.quant import SpikeCode
from dse.network.resnet import RESNET_CONFIGS, ResNet
from dse.network.vgg import VGG, VGG_CONFIGS


def _vgg(name: str) -> Callable[..., nn.Module]:
    return lambda *shape, **options: VGG(VGG_CONFIGS[name], *shape, **options)


def _resnet(name: str) -> Callable[..., nn.Module]:
    return lambda *shape, **options: ResNet(RESNET_CONFIGS[name], *shape, **options)


NETWORKS: dict[str, Callable[..., nn.Module]] = {
    **{name: _vgg(name) for name in VGG_CONFIGS},
    **{name: _resnet(name) for name in RESNET_CONFIGS},
}
NETWORK_NAMES = tuple(NETWORKS)


def build_model(name: str, num_classes: int, in_channels: int, input_size: int, *, time_window: int = 8,
                steps_per_octave: int = 1, rounding: str = "floor", **options) -> nn.Module:
    """A named network; ``options`` are its family's (width, activation, weight_bits, first_layer, pool, ...)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NETWORK_NAMES)}")
    code = SpikeCode(time_window, steps_per_octave, rounding)
    return NETWORKS[name](num_classes, in_channels, input_size, code=code, **options)
