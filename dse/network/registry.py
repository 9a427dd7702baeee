"""The network registry: every trainable family's names, and what dse asks of a family (``Network``).

Fold (``dse.network.fold``), export (``dse.snn.export``), training and ``TrainSpec``'s checks ask the network
through this protocol, never for its class: adding a family is its module and one ``register`` call here
(tests/test_contracts.py adds a throwaway family and runs it from TrainSpec to its exact SNN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from dse.network.quant import SpikeCode
from dse.network.resnet import RESNET_CONFIGS, ResNet
from dse.network.vgg import VGG, VGG_CONFIGS


class Network(Protocol):
    """A trainable network: a ``torch.nn.Module`` with these members."""

    CAT_ONLY: ClassVar[bool]          # trains with CAT and log weights only (its SNN is exact only then)
    NAIVE_CONVERSION: ClassVar[bool]  # a ReLU network of the family converts naively (dse.snn.export.convert_relu)
    activation: str                   # "cat" or "relu"
    code: SpikeCode
    weight_bits: int | None           # None: float weights
    first_layer: str                  # "pixels" or "ttfs"
    input_shape: tuple[int, int, int]

    @property
    def folded(self) -> bool: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def fold_batchnorm(self, calibration: torch.Tensor | None = None, into: str = "weights") -> nn.Module: ...

    def set_pretraining(self, enabled: bool) -> None: ...

    def fuse_activations(self, enabled: bool = True) -> bool: ...

    def snn_graph(self, g) -> None:
        """Describe the SNN to ``g`` (``dse.snn.export.GraphBuilder``): weight layers, fires, pools, shortcuts, adds."""


NETWORKS: dict[str, Callable[..., nn.Module]] = {}  # model name -> factory(num_classes, in_channels, size, **options)
FAMILY: dict[str, type] = {}                        # model name -> its family's class


def register(family: type, configs: Mapping[str, Any]) -> None:
    """Make each ``configs`` name a model of ``family`` (a class with the ``Network`` members)."""
    for name, config in configs.items():
        NETWORKS[name] = lambda *shape, _config=config, **options: family(_config, *shape, **options)
        FAMILY[name] = family


register(VGG, VGG_CONFIGS)
register(ResNet, RESNET_CONFIGS)
NETWORK_NAMES = tuple(NETWORKS)


def build_model(name: str, num_classes: int, in_channels: int, input_size: int, *, time_window: int = 8,
                steps_per_octave: int = 1, rounding: str = "floor", **options) -> nn.Module:
    """A named network; ``options`` are its family's (width, activation, weight_bits, first_layer, pool, ...)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NETWORKS)}")
    code = SpikeCode(time_window, steps_per_octave, rounding)
    return NETWORKS[name](num_classes, in_channels, input_size, code=code, **options)
