"""The official archives of the datasets that are downloaded: where from, their md5, what they unpack to;
offline, one error says where to put which files."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from dse.util.errors import UserError

# official sources: (url, md5, directory the archive unpacks to)
SOURCES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                "cifar-10-batches-py"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                 "cifar-100-python"),
    "tiny-imagenet": ("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de",
                      "tiny-imagenet-200"),
}
_EXPECTED_FILES = {"cifar10": "{data_batch_1..5,test_batch,batches.meta}", "cifar100": "{train,test,meta}",
                   "tiny-imagenet": "{wnids.txt,train/,val/val_annotations.txt,val/images/}"}


def _missing_message(name: str, root: Path) -> str:
    url, _, sub = SOURCES[name]
    return f"dataset {name!r} not found and could not be downloaded: put {root / sub}/{_EXPECTED_FILES[name]} " \
           f"there (unpack {url} into {root}), or pass --data-dir"


def _download(name: str, root: Path) -> None:
    url, md5, _ = SOURCES[name]
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


def fetched(name: str, root: Path, download: bool) -> Path:
    """The folder an official archive unpacks to, downloaded first where it is missing."""
    folder = root / SOURCES[name][2]
    if not folder.exists():
        if not download:
            raise UserError(_missing_message(name, root))
        _download(name, root)
    return folder
