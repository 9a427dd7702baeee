"""Seeded, class-balanced draws: the validation images held out of training, and subsets of a split."""

from __future__ import annotations

import torch

from dse.data.dataset import Split
from dse.util.errors import UserError

SPLIT_SEED = 0  # every subset and validation split draws from this seed: trials compare on the same images
AUTO_VALIDATION = -1  # TrainSpec.validation_images: a tenth of the training images, at most MAX_AUTO_VALIDATION
MAX_AUTO_VALIDATION = 5000


def balanced(labels: torch.Tensor, n: int, seed: int = SPLIT_SEED) -> torch.Tensor:
    """Indices of a seeded, class-balanced (stratified) draw of ``n`` of ``labels``, in ascending order.

    Each class's images are shuffled; the draw takes the first image of every class, then the second, and
    so on, so class counts differ by at most one (which classes get the extra image is seeded too) until a
    class runs out, when the others fill in. A loader's class-sorted order never decides what is left out.
    """
    labels = labels.cpu()  # the draw is made on the CPU (its generator's device); CPU indices index any device
    total = len(labels)
    if n >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(total, generator=gen)  # a random order, then stable-sorted by class
    shuffled = labels[order]
    by_class = order[torch.argsort(shuffled, stable=True)]
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[by_class]
    rank = torch.arange(total) - starts[sorted_labels]  # position of each image within its class
    class_order = torch.randperm(len(counts), generator=gen)  # which classes come first in each round
    tiebreak = torch.empty_like(class_order)
    tiebreak[class_order] = torch.arange(len(counts))
    key = rank * len(counts) + tiebreak[sorted_labels]
    return by_class[torch.argsort(key)[:n]].sort().values


def subset(split: Split, n: int, seed: int = SPLIT_SEED) -> Split:
    """``n`` images of ``split``, class-balanced and seeded (``balanced``); 0 or more than it holds: all."""
    if not n or n >= len(split.labels):
        return split
    idx = balanced(split.labels, n, seed)
    return Split(split.images[idx], split.labels[idx])


def validation_size(requested: int, train_images: int) -> int:
    """Validation images for ``requested`` (AUTO_VALIDATION, 0 or a count) when ``train_images`` are trained on."""
    if requested == AUTO_VALIDATION:
        return min(MAX_AUTO_VALIDATION, max(1, train_images // 10))
    return requested


def hold_out(train: Split, validation_images: int, max_train_images: int = 0,
             seed: int = SPLIT_SEED) -> tuple[Split, Split | None]:
    """(training split, validation split): the validation images are drawn first, class-balanced and seeded,
    from the whole training data, and never trained on; then ``max_train_images`` (0: all the rest) are drawn,
    class-balanced, from what remains. The same arguments give the same images on every machine."""
    total = len(train.labels)
    wanted = max_train_images or total
    size = validation_size(validation_images, min(wanted, total))
    if size and size >= total:
        raise UserError(f"train.validation_images: {size} is not fewer than the {total} training images")
    if not size:
        return subset(train, max_train_images, seed), None
    held = balanced(train.labels, size, seed)
    keep = torch.ones(total, dtype=torch.bool)
    keep[held] = False
    rest = Split(train.images[keep], train.labels[keep])
    return subset(rest, max_train_images, seed), Split(train.images[held], train.labels[held])
