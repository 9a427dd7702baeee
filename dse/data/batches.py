"""Batches of a split, and the augmentation applied to a whole uint8 batch at once."""

from __future__ import annotations

import torch

from dse.data.dataset import Split


def augment(batch: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, on a whole uint8 batch at once."""
    n, c, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad))
    dev = batch.device
    oy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(dev)
    rows = (oy + torch.arange(h, device=dev))[:, :, None]  # n, h, 1
    cols = ox + torch.arange(w, device=dev)  # n, w
    if flip:
        flipped = torch.rand(n, generator=generator).to(dev) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    idx = torch.arange(n, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows, cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def batches(split: Split, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None):
    """Yield (uint8 images, labels) batches."""
    n = len(split.labels)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield split.images[idx], split.labels[idx]
