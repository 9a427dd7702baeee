"""What folding batch norm into log weights costs, plain and corrected, on real CIFAR-10.

Trains small VGG with CAT (the default recipe, no fine-tune) for --epochs, keeps the network before folding,
and reports float32 accuracy on all test images: unfolded (batch norm), plain fold, corrected fold (each channel's
bias shifted back to its unfolded mean potential on 512 training images: ``fold_batchnorm(model, calibration)``).

    python benchmarks/fold_correction.py --data-dir DIR [--epochs 2] [--out results/cat/fold_correction.txt]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

from dse.data.registry import load_dataset
from dse.data.splits import subset
from dse.network.fold import fold_batchnorm
from dse.network.layers import PIXEL_FRACTION_BITS
from dse.train import loop
from dse.train.spec import TrainSpec, build_for


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/cat/fold_correction.txt"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = TrainSpec(epochs=args.epochs, finetune_epochs=0, validation_images=0)
    data = load_dataset(spec.dataset, args.data_dir)
    torch.manual_seed(spec.seed)
    model = build_for(spec, data)
    model.fuse_activations()
    with tempfile.TemporaryDirectory() as out:
        # the loop folds after the last epoch; keep the network as it stands before that
        unfolded = {}
        fold = loop._fold
        loop._fold = lambda m, *a: unfolded.setdefault("model", copy.deepcopy(m))
        try:
            loop.run(model, data.train, spec, torch.device("cpu"), Path(out), progress=False)
        finally:
            loop._fold = fold
    model = unfolded["model"].eval()
    calibration = subset(data.train, loop.CALIBRATION_IMAGES).images.float() / 2**PIXEL_FRACTION_BITS
    rows = [("before folding (batch norm)", model),
            ("plain fold", fold_batchnorm(copy.deepcopy(model))),
            ("corrected fold", fold_batchnorm(copy.deepcopy(model), calibration))]
    lines = [f"small VGG, CAT (T = 8, theta 4, 5-bit log), {args.epochs} epochs on all 50,000 CIFAR-10 training "
             "images, float32 accuracy on all 10,000 test images"]
    lines += [f"{name:>28}: {loop.accuracy(m, data.test, 'cpu'):.2%}" for name, m in rows]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
