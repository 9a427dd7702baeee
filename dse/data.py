"""Datasets as in-memory uint8 tensors (N, C, H, W), with batch-wise augmentation.

Readers accept each dataset's standard on-disk layout under a data directory:
``cifar-10-batches-py/``, ``cifar-100-python/``, ``tiny-imagenet-200/``, or any image folder
(``<root>/<split>/<class>/*.jpg|png``). ``digits`` (scikit-learn) needs no files. Missing data is
downloaded from the official address when a network exists; otherwise one clear error says where
to put which files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tarfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from collections.abc import Callable

import numpy as np
import torch

from dse.util.atomic import replacing
from dse.util.errors import UserError

MAX_IMAGE_PIXELS = 40_000_000  # one dataset image: a 12-megapixel photo passes, a decompression bomb does not

# official sources: (url, md5, directory the archive unpacks to)
_SOURCES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python"),
    "tiny-imagenet": ("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
                      "tiny-imagenet-200"),
}


def default_data_dir() -> Path:
    return Path(os.environ.get("DSE_DATA_DIR", Path(os.environ.get("DSE_CACHE_DIR", Path.home() / ".cache" / "dse")) / "data"))


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


def load_dataset(name: str, data_dir: str | Path | None = None, *, coarse_labels: bool = False,
                 download: bool = True) -> Dataset:
    """Load ``name`` from ``data_dir`` (default ``$DSE_DATA_DIR`` or ``~/.cache/dse/data``), with its
    content fingerprint: two folders holding different images never share a trained network."""
    data = _load(name, Path(data_dir) if data_dir is not None else default_data_dir(), coarse_labels, download)
    return data if data.fingerprint else dataclasses.replace(data, fingerprint=content_hash(data))


def content_hash(data: Dataset) -> str:
    """SHA-256 of everything training reads: class names, then each split's shapes, pixels and labels."""
    digest = hashlib.sha256(repr((data.name, data.classes)).encode())
    for split in (data.train, data.test):
        for t in (split.images, split.labels):
            digest.update(repr((tuple(t.shape), str(t.dtype))).encode())
            digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _load(name: str, root: Path, coarse_labels: bool, download: bool) -> Dataset:
    if name not in DATASETS:
        raise UserError(f"dataset: unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name](root, coarse_labels, download)


def _fetched(name: str, root: Path, download: bool) -> Path:
    """The folder an official archive unpacks to, downloaded first where it is missing."""
    folder = root / _SOURCES[name][2]
    if not folder.exists():
        if not download:
            raise UserError(_missing_message(name, root))
        _download(name, root)
    return folder


def _cifar100(folder: Path, coarse_labels: bool) -> Dataset:
    key = b"coarse_labels" if coarse_labels else b"fine_labels"
    names = b"coarse_label_names" if coarse_labels else b"fine_label_names"
    return _cifar(folder, "cifar100", ["train"], "test", "meta", key, names)


_EXPECTED_FILES = {"cifar10": "{data_batch_1..5,test_batch,batches.meta}", "cifar100": "{train,test,meta}",
                   "tiny-imagenet": "{wnids.txt,train/,val/val_annotations.txt,val/images/}"}


def _missing_message(name: str, root: Path) -> str:
    url, _, sub = _SOURCES[name]
    return f"dataset {name!r} not found and could not be downloaded: put {root / sub}/{_EXPECTED_FILES[name]} " \
           f"there (unpack {url} into {root}), or pass --data-dir"


def _download(name: str, root: Path) -> None:
    url, md5, _ = _SOURCES[name]
    archive = root / url.rsplit("/", 1)[1]
    tmp = archive.with_name(archive.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            root.mkdir(parents=True, exist_ok=True)  # only once the server answers: offline, nothing is created
            digest = hashlib.md5()
            with open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != md5:
            tmp.unlink()
            raise UserError(f"dataset {name!r}: download from {url} failed its md5 check")
        tmp.replace(archive)
    except OSError:  # no network (URLError is an OSError), refused, timed out
        tmp.unlink(missing_ok=True)
        raise UserError(_missing_message(name, root)) from None
    opener = zipfile.ZipFile if archive.suffix == ".zip" else tarfile.open
    with opener(archive) as f:
        f.extractall(root, filter="data") if opener is tarfile.open else f.extractall(root)


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


def _tiny_imagenet(folder: Path) -> Dataset:
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


def _image_folder(root: Path) -> Dataset:
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


def _digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 real images): a fixed, seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    x, y = torch.from_numpy(images[order]), torch.from_numpy(d.target[order].astype(np.int64))
    return Dataset("digits", Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:]), tuple(str(i) for i in range(10)))


SPLIT_SEED = 0  # every subset and validation split draws from this seed: trials compare on the same images
AUTO_VALIDATION = -1  # TrainSpec.validation_images: a tenth of the training images, at most MAX_AUTO_VALIDATION
MAX_AUTO_VALIDATION = 5000


def balanced(labels: torch.Tensor, n: int, seed: int = SPLIT_SEED) -> torch.Tensor:
    """Indices of a seeded, class-balanced (stratified) draw of ``n`` of ``labels``, in ascending order.

    Each class's images are shuffled; the draw takes the first image of every class, then the second, and
    so on, so class counts differ by at most one (which classes get the extra image is seeded too) until a
    class runs out, when the others fill in. A loader's class-sorted order never decides what is left out.
    """
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


# The dataset registry: name -> loader(data root, coarse labels, may download). A new dataset is one entry here.
DATASETS: dict[str, Callable[[Path, bool, bool], Dataset]] = {
    "cifar10": lambda root, coarse, download: _cifar(
        _fetched("cifar10", root, download), "cifar10", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
        "batches.meta", b"labels", b"label_names"),
    "cifar100": lambda root, coarse, download: _cifar100(_fetched("cifar100", root, download), coarse),
    "tiny-imagenet": lambda root, coarse, download: _tiny_imagenet(_fetched("tiny-imagenet", root, download)),
    "digits": lambda root, coarse, download: _digits(),
    "imagefolder": lambda root, coarse, download: _image_folder(root),
}
DATASET_NAMES = tuple(DATASETS)
