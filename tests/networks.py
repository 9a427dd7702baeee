"""Small networks for the exactness tests: built by the caller, then a few real SGD steps with the batch norms
folded partway, so that weights, thresholds and biases are non-trivial (not a fresh initialisation)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def trained_briefly(model: torch.nn.Module, fold: Callable[[torch.nn.Module, torch.Tensor], None], seed: int = 0,
                    size: int = 8) -> tuple[torch.nn.Module, torch.Tensor]:
    """``model`` after five SGD steps on 32 random images (size x size), ``fold(model, pixels)`` applied in eval
    mode before the fourth: the last two steps fine-tune the folded network. Returns it in eval mode, and the
    images."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (32, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (32,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(5):
        if step == 3:
            fold(model.eval(), pixels)
        model.train()
        loss = F.cross_entropy(model(pixels.float() / 256), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), pixels
