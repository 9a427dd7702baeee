"""Datasets stored as image files (Tiny-ImageNet-200, any ``train/<class>/`` folder), decoded once and cached
by the files' content."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from dse.data.dataset import Dataset, Split, content_hash
from dse.util.atomic import replacing
from dse.util.errors import UserError

MAX_IMAGE_PIXELS = 40_000_000  # one dataset image: a 12-megapixel photo passes, a decompression bomb does not


def _decode_images(paths: list[Path], size: int | None = None) -> torch.Tensor:
    from PIL import Image

    arrays = []
    for p in paths:
        try:
            with warnings.catch_warnings():  # PIL only warns below twice its own limit; ours is checked below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(p)
            with im:
                if im.width * im.height > MAX_IMAGE_PIXELS:  # checked on the header, before decoding
                    raise UserError(f"dataset: {p}: {im.width}x{im.height} pixels, more than the "
                                    f"{MAX_IMAGE_PIXELS:,} a dataset image may have")
                im = im.convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size))
                arrays.append(np.asarray(im, dtype=np.uint8))
        except Image.DecompressionBombError as exc:
            raise UserError(f"dataset: {p}: {exc}") from None
        except OSError:
            raise UserError(f"dataset: {p} is not a readable image") from None
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"dataset: images under {paths[0].parents[1]} differ in size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _decoded(name: str, classes: tuple[str, ...], splits: dict[str, tuple[list[Path], list[int]]],
             size: int | None) -> Dataset:
    """An image dataset from its files, through a cache of the decoded arrays keyed by the files' content
    (every byte, each file's split and label), never by dates: editing, adding or moving an image between
    classes is a new key. Both splits are decoded before anything is written, so a bad image leaves no
    cache file; the content fingerprint is computed once, when decoding, and kept in the cache file."""
    digest = hashlib.sha256(repr((name, classes, size)).encode())
    for split, (paths, labels) in splits.items():
        for path, label in zip(paths, labels):
            try:
                content = path.read_bytes()
            except OSError:
                raise UserError(f"dataset: {path} is not a readable image") from None
            digest.update(repr((split, path.name, label, len(content))).encode())
            digest.update(content)
    cache = Path(os.environ.get("DSE_CACHE_DIR", Path.home() / ".cache" / "dse")) / "decoded"
    path = cache / (digest.hexdigest()[:32] + ".npz")
    train, test = splits
    if path.is_file():
        with np.load(path) as z:
            arrays = {f"{split}_{k}": torch.from_numpy(z[f"{split}_{k}"]) for split in splits for k in "xy"}
            fingerprint = str(z["fingerprint"])
    else:
        arrays = {}
        for split, (paths, labels) in splits.items():
            arrays[f"{split}_x"], arrays[f"{split}_y"] = _decode_images(paths, size), torch.tensor(labels)
    data = Dataset(name, Split(arrays[f"{train}_x"], arrays[f"{train}_y"]),
                   Split(arrays[f"{test}_x"], arrays[f"{test}_y"]), classes)
    if path.is_file():
        return dataclasses.replace(data, fingerprint=fingerprint)
    data = dataclasses.replace(data, fingerprint=content_hash(data))
    cache.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        np.savez(tmp, **{k: v.numpy() for k, v in arrays.items()}, fingerprint=np.array(data.fingerprint))
    return data


def tiny_imagenet(folder: Path) -> Dataset:
    wnids_file = folder / "wnids.txt"
    if not wnids_file.is_file():
        raise UserError(f"dataset: {wnids_file} is missing (not a Tiny-ImageNet-200 layout)")
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    paths, labels = [], []
    for w in wnids:
        found = sorted((folder / "train" / w / "images").glob("*.JPEG"))
        if not found:
            raise UserError(f"dataset: no training images under {folder / 'train' / w / 'images'}")
        paths += found
        labels += [index[w]] * len(found)
    ann = folder / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise UserError(f"dataset: {ann} is missing (Tiny-ImageNet validation labels)")
    val_paths, val_labels = [], []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in index:
            val_paths.append(folder / "val" / "images" / parts[0])
            val_labels.append(index[parts[1]])
    if not val_paths:
        raise UserError(f"dataset: {ann} lists no image of the classes in wnids.txt")
    words = {}
    if (folder / "words.txt").is_file():
        words = dict(line.split("\t", 1) for line in (folder / "words.txt").read_text().splitlines() if "\t" in line)
    classes = tuple(words.get(w, w).split(",")[0] for w in wnids)
    return _decoded("tiny-imagenet", classes, {"train": (paths, labels), "val": (val_paths, val_labels)}, 64)


def image_folder(root: Path) -> Dataset:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (or ``val``), classes sorted by name."""
    train_dir = root / "train"
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise UserError(f"dataset: {root} needs train/<class>/ and test/<class>/ (or val/<class>/) folders")
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not classes:
        raise UserError(f"dataset: no class folders under {train_dir}")

    def listing(split_dir: Path) -> tuple[list[Path], list[int]]:
        paths, labels = [], []
        for i, c in enumerate(classes):
            found = sorted(p for p in (split_dir / c).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            paths += found
            labels += [i] * len(found)
        if not paths:
            raise UserError(f"dataset: no images under {split_dir}/<class>/")
        return paths, labels

    return _decoded("imagefolder", tuple(classes), {"train": listing(train_dir), "test": listing(test_dir)}, None)
