"""scikit-learn's handwritten digits: real images that ship offline (the quickstart's dataset)."""

from __future__ import annotations

import numpy as np
import torch

from dse.data.dataset import Dataset, Split


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 real images): a fixed, seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    x, y = torch.from_numpy(images[order]), torch.from_numpy(d.target[order].astype(np.int64))
    return Dataset("digits", Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:]), tuple(str(i) for i in range(10)))
