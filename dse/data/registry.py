"""The dataset registry: every dataset's name and its loader, and ``load_dataset``.

Loaders read each dataset's standard on-disk layout under a data directory: ``cifar-10-batches-py/``,
``cifar-100-python/``, ``tiny-imagenet-200/``, or any image folder (``<root>/<split>/<class>/*.jpg|png``).
``digits`` (scikit-learn) needs no files. Missing data is downloaded from the official address when a
network exists (``dse.data.download``); otherwise one clear error says where to put which files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from dse.data import cifar, images
from dse.data.dataset import Dataset, content_hash
from dse.data.digits import digits
from dse.data.download import fetched
from dse.util.errors import UserError


def default_data_dir() -> Path:
    return Path(os.environ.get("DSE_DATA_DIR", Path(os.environ.get("DSE_CACHE_DIR", Path.home() / ".cache" / "dse")) / "data"))


def load_dataset(name: str, data_dir: str | Path | None = None, *, coarse_labels: bool = False,
                 download: bool = True) -> Dataset:
    """Load ``name`` from ``data_dir`` (default ``$DSE_DATA_DIR`` or ``~/.cache/dse/data``), with its
    content fingerprint: two folders holding different images never share a trained network."""
    data = _load(name, Path(data_dir) if data_dir is not None else default_data_dir(), coarse_labels, download)
    return data if data.fingerprint else dataclasses.replace(data, fingerprint=content_hash(data))


def _load(name: str, root: Path, coarse_labels: bool, download: bool) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"dataset: unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name](root, coarse_labels, download)


# The dataset registry: name -> loader(data root, coarse labels, may download). A new dataset is one entry here.
DATASETS: dict[str, Callable[[Path, bool, bool], Dataset]] = {
    "cifar10": lambda root, coarse, download: cifar.cifar10(fetched("cifar10", root, download)),
    "cifar100": lambda root, coarse, download: cifar.cifar100(fetched("cifar100", root, download), coarse),
    "tiny-imagenet": lambda root, coarse, download: images.tiny_imagenet(fetched("tiny-imagenet", root, download)),
    "digits": lambda root, coarse, download: digits(),
    "imagefolder": lambda root, coarse, download: images.image_folder(root),
}
DATASET_NAMES = tuple(DATASETS)
