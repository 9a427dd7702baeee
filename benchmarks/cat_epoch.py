"""Whole training epochs of CAT (fused, as `dse train` runs long trainings) against ReLU, on real CIFAR-10.

The same loop `dse train` runs (shuffle, augmentation on the batch, forward, backward, SGD step, schedule),
the same small VGG, batch and data; epochs interleaved in rounds so that machine noise hits both alike;
the compile warm-up is a separate untimed epoch. Not a single step: everything an epoch does.

    python benchmarks/cat_epoch.py --data-dir DIR [--images 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import torch

from _timing import LoadCheck, add_load_option, interleaved, report
from dse.data.registry import load_dataset
from dse.train import loop
from dse.train.spec import TrainSpec, build_for


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--images", type=int, default=10000, help="training images per epoch (0: all 50,000)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/cat_epoch.txt"))
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    torch.set_num_threads(args.threads)
    data = load_dataset("cifar10", args.data_dir)
    train = data.train if not args.images else type(data.train)(data.train.images[:args.images],
                                                                   data.train.labels[:args.images])
    runs, specs = {}, {"relu": TrainSpec(activation="relu"), "cat+log5 fused": TrainSpec()}
    for name, spec in specs.items():
        torch.manual_seed(0)
        model = build_for(spec, data)
        if spec.activation == "cat":
            assert model.fuse_activations(), "torch.compile cannot build the fused kernels here"
        phase = loop.Phase("train", 1, spec.lr)
        opt, sched = loop._optimizer(model, spec, phase, math.ceil(len(train.labels) / spec.batch_size) * 99)
        gen = torch.Generator().manual_seed(0)
        runs[name] = (lambda m=model, s=spec, o=opt, sc=sched, g=gen:
                      loop._epoch(m, train, s, torch.device("cpu"), g, o, sc, False, "bench"))
    times, warm = interleaved(runs, args.rounds, warmup=1)
    relu = statistics.median(times["relu"])
    lines = [f"whole epochs of {len(train.labels):,} real CIFAR-10 images, small VGG, batch 128, {args.threads} threads,"
             f" {args.rounds} interleaved rounds (median), warm-up epoch untimed",
             f"{'variant':<16} {'s/epoch':>9} {'img/s':>8} {'vs ReLU':>8} {'warm-up s':>10}"]
    for name, t in times.items():
        med = statistics.median(t)
        lines.append(f"{name:<16} {med:>9.1f} {len(train.labels) / med:>8.0f} {med / relu:>7.2f}x {warm[name]:>10.1f}")
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
