"""Dataset readers on real files in each dataset's exact on-disk format, and batch augmentation."""

from __future__ import annotations

import io
import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from dse.data.batches import augment, batches
from dse.data.registry import load_dataset
from dse.util.errors import UserError

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _dump(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_cifar100(root, rng, n_train=300, n_test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        fine = rng.integers(0, 100, n)
        fine[:100] = np.arange(100) if n >= 100 else fine[:100]
        coarse = fine // 5
        _dump(folder / split, {b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine.tolist(),
                               b"coarse_labels": coarse.tolist(), b"data": x.reshape(n, 3072)})
        made[split] = (x, fine, coarse)
    _dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return made


def test_cifar100_exact_format_fine_and_coarse(tmp_path):
    made = _write_cifar100(tmp_path, np.random.default_rng(1))
    fine = load_dataset("cifar100", tmp_path)
    assert fine.num_classes == 100 and fine.classes[7] == "fine7"
    assert (fine.in_channels, fine.input_size) == (3, 32)
    assert fine.train.images.dtype == torch.uint8 and fine.train.images.shape == (300, 3, 32, 32)
    assert torch.equal(fine.train.images, torch.from_numpy(made["train"][0]))  # R, G, B planes in that order
    assert torch.equal(fine.test.labels, torch.from_numpy(made["test"][1]))
    coarse = load_dataset("cifar100", tmp_path, coarse_labels=True)
    assert coarse.num_classes == 20 and coarse.classes[3] == "coarse3"
    assert torch.equal(coarse.train.labels, torch.from_numpy(made["train"][2]))
    assert torch.equal(coarse.train.images, fine.train.images)


def test_truncated_and_incomplete_cifar_are_one_line_errors_naming_the_path(tmp_path):
    _write_cifar100(tmp_path, np.random.default_rng(2))
    train = tmp_path / "cifar-100-python" / "train"
    train.write_bytes(train.read_bytes()[: 5000])
    with pytest.raises(UserError) as exc:
        load_dataset("cifar100", tmp_path)
    assert str(train) in _one_line(exc)
    (tmp_path / "cifar-100-python" / "test").unlink()
    train.unlink()
    with pytest.raises(UserError) as exc:
        load_dataset("cifar100", tmp_path)
    assert "cifar-100-python" in _one_line(exc) and "missing" in str(exc.value)


def test_cifar10_wrong_layout_is_an_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _dump(folder / name, {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]})
    with pytest.raises(UserError) as exc:  # no batches.meta
        load_dataset("cifar10", tmp_path)
    assert str(folder / "batches.meta") in _one_line(exc)
    _dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES]})
    _dump(folder / "test_batch", {b"data": rng.integers(0, 256, (4, 1024), dtype=np.uint8), b"labels": [0, 1, 2, 3]})
    with pytest.raises(UserError) as exc:  # grey 32x32 rows are not CIFAR images
        load_dataset("cifar10", tmp_path)
    assert str(folder) in _one_line(exc)


def test_missing_dataset_without_network_says_where_to_put_which_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    for name, url, sub in (("cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py"),
                           ("cifar100", "cifar-100-python.tar.gz", "cifar-100-python"),
                           ("tiny-imagenet", "tiny-imagenet-200.zip", "tiny-imagenet-200")):
        with pytest.raises(UserError) as exc:
            load_dataset(name, tmp_path)
        msg = _one_line(exc)
        assert name in msg and str(tmp_path / sub) in msg and url in msg
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10", tmp_path, download=False)
    assert "cifar-10-batches-py" in _one_line(exc)


def test_download_failing_its_md5_check_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"not the archive"))
    with pytest.raises(UserError) as exc:
        load_dataset("cifar10", tmp_path)
    assert "md5" in _one_line(exc)
    assert not any(tmp_path.iterdir())


def test_unknown_dataset(tmp_path):
    with pytest.raises(UserError) as exc:
        load_dataset("mnist", tmp_path)
    assert "mnist" in _one_line(exc) and "cifar10" in str(exc.value)


def test_digits_is_sklearns_images_with_a_fixed_split():
    from sklearn.datasets import load_digits

    d = load_dataset("digits")
    assert d.train.images.shape == (1437, 1, 8, 8) and d.test.images.shape == (360, 1, 8, 8)
    assert d.train.images.dtype == torch.uint8 and int(d.train.images.max()) == 255
    assert d.classes == tuple(str(i) for i in range(10))
    again = load_dataset("digits")
    assert torch.equal(again.test.images, d.test.images) and torch.equal(again.test.labels, d.test.labels)
    ref = load_digits()
    expected = np.minimum(ref.images * 16, 255).astype(np.uint8)
    ours = torch.cat([d.train.images, d.test.images])[:, 0].numpy()
    labels = torch.cat([d.train.labels, d.test.labels]).numpy()
    key = lambda imgs, ys: sorted(zip((im.tobytes() for im in imgs), ys.tolist()))  # noqa: E731
    assert key(ours, labels) == key(expected, ref.target)  # the same 1,797 labelled images, reordered once


def test_image_folder_reads_pixels_exactly(tmp_path):
    rng = np.random.default_rng(4)
    written = {}
    for split in ("train", "val"):
        for cls in ("zebra", "ant"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                px = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                Image.fromarray(px).save(tmp_path / split / cls / f"{i}.png")
                written[(split, cls, i)] = px
    d = load_dataset("imagefolder", tmp_path)
    assert d.classes == ("ant", "zebra") and d.train.images.shape == (6, 3, 12, 12)
    assert d.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(d.test.images[4].permute(1, 2, 0).numpy(), written[("val", "zebra", 1)])
    (tmp_path / "val").rename(tmp_path / "other")
    with pytest.raises(UserError) as exc:
        load_dataset("imagefolder", tmp_path)
    assert str(tmp_path) in _one_line(exc)


def test_augment_crops_and_flips_whole_batches():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 10, 10), dtype=torch.uint8)
    assert torch.equal(augment(x, gen, pad=0, flip=False), x)
    flipped = augment(x, gen, pad=0, flip=True)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    out = augment(x, gen, pad=2)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # every output is one 10x10 window of the zero-padded image, maybe mirrored
        windows = [padded[i, :, r:r + 10, c:c + 10] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    a = augment(x, torch.Generator().manual_seed(5), pad=2)
    b = augment(x, torch.Generator().manual_seed(5), pad=2)
    assert torch.equal(a, b) and not torch.equal(a, out)


def test_shuffled_batches_cover_every_image_once():
    d = load_dataset("digits")
    seen = torch.cat([y for _, y in batches(d.test, 64, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == sorted(d.test.labels.tolist())
    xs = [x for x, _ in batches(d.test, 64)]
    assert [len(x) for x in xs] == [64] * 5 + [40] and torch.equal(torch.cat(xs), d.test.images)


def test_real_cifar10(cifar10_data_dir):
    d = load_dataset("cifar10", cifar10_data_dir, download=False)
    assert d.classes == CIFAR10_NAMES
    assert d.train.images.shape == (50000, 3, 32, 32) and d.test.images.shape == (10000, 3, 32, 32)
    assert d.train.images.dtype == torch.uint8
    assert torch.bincount(d.train.labels).tolist() == [5000] * 10
    assert torch.bincount(d.test.labels).tolist() == [1000] * 10
    assert 60 < float(d.test.images.float().std()) < 70  # real photographs, not noise or blanks


def test_real_tiny_imagenet_subset(tiny_imagenet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path))
    root = tiny_imagenet_dir / "tiny-imagenet-200"
    d = load_dataset("tiny-imagenet", tiny_imagenet_dir)
    wnids = root.joinpath("wnids.txt").read_text().split()
    assert d.num_classes == len(wnids) == 20
    assert d.train.images.shape == (2000, 3, 64, 64) and d.test.images.shape == (1000, 3, 64, 64)
    assert torch.bincount(d.train.labels).tolist() == [100] * 20
    assert torch.bincount(d.test.labels).tolist() == [50] * 20
    first = root.joinpath("val", "val_annotations.txt").read_text().splitlines()[0].split("\t")
    with Image.open(root / "val" / "images" / first[0]) as im:
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(d.test.images[0], pixels) and int(d.test.labels[0]) == wnids.index(first[1])
    cached = load_dataset("tiny-imagenet", tiny_imagenet_dir)  # second load comes from the decoded cache
    assert torch.equal(cached.train.images, d.train.images)
