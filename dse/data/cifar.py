"""CIFAR-10 and CIFAR-100 from their official python batches, read without running the pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from dse.data.dataset import Dataset, Split
from dse.util.errors import UserError


def cifar10(folder: Path) -> Dataset:
    return _cifar(folder, "cifar10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta",
                  b"labels", b"label_names")


def cifar100(folder: Path, coarse_labels: bool) -> Dataset:
    key = b"coarse_labels" if coarse_labels else b"fine_labels"
    names = b"coarse_label_names" if coarse_labels else b"fine_label_names"
    return _cifar(folder, "cifar100", ["train"], "test", "meta", key, names)


class _ArrayUnpickler(pickle.Unpickler):
    """The official CIFAR format is a pickle, and ``pickle.load`` of a stranger's file can run any code.
    This one builds only what a CIFAR batch holds (dicts, lists, bytes, numbers, numpy arrays)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR batch holds only arrays, "
                                         "lists and bytes")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"dataset: {path} is missing (not a complete {path.parent.name} directory)")
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise UserError(f"dataset: {path} is not a readable CIFAR batch ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - truncated or not a pickle at all
        raise UserError(f"dataset: {path} is not a readable CIFAR batch ({type(exc).__name__})") from None
    if not isinstance(batch, dict):
        raise UserError(f"dataset: {path} is not a CIFAR batch (a {type(batch).__name__}, not a mapping)")
    return batch


def _cifar(folder: Path, name: str, train_files: list[str], test_file: str, meta_file: str, label_key: bytes,
           names_key: bytes) -> Dataset:
    meta = _unpickle(folder / meta_file)
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, []))
    if not classes:
        raise UserError(f"dataset: {folder / meta_file} names no classes ({names_key.decode()!r})")

    def batch(file: str) -> tuple[np.ndarray, np.ndarray]:
        """One batch's pixels and labels, checked: the format's uint8 range and class numbers, no wrapping."""
        path = folder / file
        b = _unpickle(path)
        try:
            data, labels = np.asarray(b[b"data"]), np.asarray(b[label_key])
        except KeyError as exc:
            raise UserError(f"dataset: {folder} batches lack the key {exc.args[0]!r}") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise UserError(f"dataset: {folder} batches are not 32x32x3 images with one label each")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise UserError(f"dataset: {path}: labels must be a flat list of class numbers, got shape "
                            f"{labels.shape} of {labels.dtype}")
        if data.dtype != np.uint8:
            bad = data[(data < 0) | (data > 255)] if data.dtype.kind in "iu" else data.ravel()
            if len(bad):
                raise UserError(f"dataset: {path}: pixel values must be 0..255, found {bad[0].item()!r}")
        wrong = labels[(labels < 0) | (labels >= len(classes))]
        if len(wrong):
            raise UserError(f"dataset: {path}: labels must be class numbers 0..{len(classes) - 1}, found {wrong[0]}")
        return data.astype(np.uint8), labels.astype(np.int64)

    def split(files: list[str]) -> Split:
        data, labels = zip(*(batch(f) for f in files))
        images = np.concatenate(data).reshape(-1, 3, 32, 32)
        return Split(torch.from_numpy(images).contiguous(), torch.from_numpy(np.concatenate(labels)))

    return Dataset(name, split(train_files), split([test_file]), classes)
