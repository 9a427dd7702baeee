"""Class-balanced, seeded subsets and the validation split, on real images; the decoded-image cache after
Tiny-ImageNet's class list is rewritten in place; ``dse evaluate``'s --max-test-images."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dse.cli import main
from dse.data.dataset import Split
from dse.data.registry import load_dataset
from dse.data.splits import balanced, hold_out, subset
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec
from dse.util.errors import UserError


def test_balanced_draw_counts_exactly_and_is_seeded():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5 + [3] * 15)
    idx = balanced(labels, 20)
    assert torch.bincount(labels[idx]).tolist() == [5, 5, 5, 5]
    assert torch.equal(idx, balanced(labels, 20)) and not torch.equal(idx, balanced(labels, 20, seed=1))
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == 20
    # class 2 runs out at 5: the others fill in, evenly
    assert torch.bincount(labels[balanced(labels, 50)]).tolist() == [15, 15, 5, 15]
    # 6 of 4 classes: two classes get a second image; which two is seeded
    assert sorted(torch.bincount(labels[balanced(labels, 6)], minlength=4).tolist()) == [1, 1, 2, 2]
    assert torch.equal(balanced(labels, 100), torch.arange(100)) and torch.equal(balanced(labels, 500), torch.arange(100))


def test_hold_out_is_disjoint_balanced_and_sized():
    labels = torch.arange(10).repeat_interleave(30)  # class-sorted, as the image-folder loaders give them
    split = Split(torch.arange(300, dtype=torch.int32).view(300, 1, 1, 1), labels)
    train, val = hold_out(split, 20, 100)
    assert torch.bincount(val.labels).tolist() == [2] * 10 and torch.bincount(train.labels).tolist() == [10] * 10
    assert not set(train.images.flatten().tolist()) & set(val.images.flatten().tolist())
    again, val2 = hold_out(split, 20, 100)
    assert torch.equal(again.images, train.images) and torch.equal(val2.images, val.images)
    # auto: a tenth of the images trained on, drawn before them; max_train_images still counts training images
    train, val = hold_out(split, -1, 100)
    assert len(val.labels) == 10 and len(train.labels) == 100
    train, val = hold_out(split, -1, 0)
    assert len(val.labels) == 30 and len(train.labels) == 270
    train, val = hold_out(split, 0, 0)
    assert val is None and train is split
    with pytest.raises(UserError, match="train.validation_images: 300 is not fewer than the 300 training images"):
        hold_out(split, 300)


def test_real_tiny_imagenet_subsets_cover_every_class(tiny_imagenet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path))
    d = load_dataset("tiny-imagenet", tiny_imagenet_dir)
    assert d.train.labels[:200].unique().tolist() == [0, 1]  # the loader's class-sorted order: the first 200 = 2 classes
    train, val = hold_out(d.train, 200, 400)
    assert torch.bincount(train.labels).tolist() == [20] * 20 and torch.bincount(val.labels).tolist() == [10] * 20
    test = subset(d.test, 100)
    assert torch.bincount(test.labels).tolist() == [5] * 20
    idx = balanced(d.test.labels, 100)
    assert torch.equal(test.images, d.test.images[idx])


def test_rewritten_wnids_gives_the_new_class_list(tiny_imagenet_dir, tmp_path, monkeypatch):
    """wnids.txt rewritten in place (same folder, same mtime of the top folder): the new classes, in the new
    order, from the decoded cache's new key; a class without images is one line naming the folder."""
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    shutil.copytree(tiny_imagenet_dir, root)
    wnids_file = root / "tiny-imagenet-200" / "wnids.txt"
    wnids = wnids_file.read_text().split()
    full = load_dataset("tiny-imagenet", root)
    kept = wnids[::-1][:5]
    wnids_file.write_text("\n".join(kept) + "\n")
    fewer = load_dataset("tiny-imagenet", root)
    assert fewer.num_classes == 5 and fewer.fingerprint != full.fingerprint
    assert torch.bincount(fewer.train.labels).tolist() == [100] * 5 and len(fewer.test.labels) == 250
    first = wnids.index(kept[0])  # new label 0 is the old class kept[0]: the same images
    assert torch.equal(fewer.train.images[:100], full.train.images[full.train.labels == first])
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npz"))) == 2
    wnids_file.write_text("\n".join(kept + ["n99999999"]) + "\n")
    with pytest.raises(UserError, match=r"no training images under .*n99999999"):
        load_dataset("tiny-imagenet", root)


def test_evaluate_tests_on_what_its_flag_says(tmp_path, capsys):
    """The training tested on 50 images; evaluate without --max-test-images tests on all 360, with it on a
    class-balanced draw of that many."""
    spec = TrainSpec(dataset="digits", model="tiny_vgg", epochs=1, finetune_epochs=0, width=0.25, time_window=4,
                     max_test_images=50)
    r = train_and_evaluate(spec, tmp_path / "run", threads=1, progress=False)
    assert r.metrics["test_images"] == 50
    assert main(["evaluate", str(r.checkpoint), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_images"] == 360
    assert main(["evaluate", str(r.checkpoint), "--json", "--max-test-images", "100"]) == 0
    m = json.loads(capsys.readouterr().out)
    data = load_dataset("digits")
    assert m["test_images"] == 100 and torch.bincount(subset(data.test, 100).labels).tolist() == [10] * 10
