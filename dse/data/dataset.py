"""A dataset in memory: uint8 images (N, C, H, W) and labels per split, with the content fingerprint that
keys trained networks (two folders holding different images never share one)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 N, C, H, W
    labels: torch.Tensor  # int64 N


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]
    fingerprint: str = ""  # content hash of the data as decoded: part of the trained-network cache key

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train.images.shape[2])


def content_hash(data: Dataset) -> str:
    """SHA-256 of everything training reads: class names, then each split's shapes, pixels and labels."""
    digest = hashlib.sha256(repr((data.name, data.classes)).encode())
    for split in (data.train, data.test):
        for t in (split.images, split.labels):
            digest.update(repr((tuple(t.shape), str(t.dtype))).encode())
            digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]
