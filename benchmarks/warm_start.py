"""Warm start across the network grid against training from scratch, on real CIFAR-10 (small VGG, a
class-mixed subset): accuracy and training time, per (weight bits, T), in one run.

An anchor network (``--anchor`` bits and T) trains from scratch; then each target (bits, T) trains twice:
from scratch with the same recipe, and warm-started from the anchor (``dse.search.warm_start``: its folded
weights, ``--finetune`` epochs of fine-tuning), both through the search's cache (``train_cached``). The
ratio of training seconds is taken in this one run; accuracies are the SNN's on the first
``--test-images`` test images (SNN = ANN bit for bit).

Run quietly (about 12-15 min on an idle 2-core machine: 29 epochs of 10,000 images at full width, nine evaluations):
    python benchmarks/warm_start.py --data-dir DIR          (DIR/cifar-10-batches-py)
Smoke: ``--train-images 256 --test-images 128 --epochs 1 --targets 4:8 --allow-load --out /tmp/warm.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import LoadCheck, add_load_option, report  # noqa: E402

from dse.search.cache import data_fingerprint, train_cached  # noqa: E402
from dse.search.warm_start import fine_tune_spec  # noqa: E402
from dse.train.spec import TrainSpec  # noqa: E402


def pair(text: str) -> tuple[int, int]:
    bits, window = text.split(":")
    return int(bits), int(window)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="holds cifar-10-batches-py (default: $DSE_DATA_DIR or ~/.cache/dse/data)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=4, help="epochs from scratch (plus one folded fine-tune epoch)")
    ap.add_argument("--finetune", type=int, default=1, help="fine-tune epochs of a warm start")
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--anchor", type=pair, default=(5, 8), help="BITS:T of the network warm starts begin from")
    ap.add_argument("--targets", type=pair, nargs="+", default=[(4, 8), (3, 8), (5, 4), (5, 16)])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/warm_start.txt"))
    add_load_option(ap)
    args = ap.parse_args()
    load = LoadCheck(args.allow_load)
    base = TrainSpec(dataset="cifar10", model="small_vgg", width=args.width, epochs=args.epochs, finetune_epochs=1,
                     batch_size=64, lr=0.05, max_train_images=args.train_images, max_test_images=args.test_images)
    cache = Path(tempfile.mkdtemp(prefix="warm-bench-"))
    fp = data_fingerprint(base, args.data_dir)

    def run(spec: TrainSpec, warm: str | None = None):
        t0 = time.perf_counter()
        result, _ = train_cached(spec, cache, args.data_dir, threads=args.threads, fingerprint=fp, warm=warm)
        return result, time.perf_counter() - t0

    anchor, anchor_s = run(dataclasses.replace(base, weight_bits=args.anchor[0], time_window=args.anchor[1]))
    key = anchor.checkpoint.parent.name
    lines = [f"CIFAR-10, small VGG x{args.width}, {args.train_images} training images, {args.test_images} test images, "
             f"batch 64, {args.threads} threads",
             f"anchor (bits {args.anchor[0]}, T {args.anchor[1]}) from scratch: {100 * anchor.snn_accuracy:.2f} % in "
             f"{anchor.metrics['train_seconds']:.0f} s of training",
             f"scratch: {args.epochs} epochs + 1 fine-tune epoch; warm: {args.finetune} fine-tune epoch(s) from the "
             "anchor", "",
             f"{'bits':>4} {'T':>3} {'scratch %':>10} {'warm %':>8} {'delta':>7} {'scratch s':>10} {'warm s':>7} "
             f"{'time ratio':>10}"]
    ratios = []
    for bits, window in args.targets:
        spec = dataclasses.replace(base, weight_bits=bits, time_window=window)
        scratch, _ = run(spec)
        warm, _ = run(fine_tune_spec(spec, args.finetune), warm=key)
        s, w = scratch.metrics["train_seconds"], warm.metrics["train_seconds"]
        ratios.append(w / s)
        lines.append(f"{bits:>4} {window:>3} {100 * scratch.snn_accuracy:>10.2f} {100 * warm.snn_accuracy:>8.2f} "
                     f"{100 * (warm.snn_accuracy - scratch.snn_accuracy):>+7.2f} {s:>10.1f} {w:>7.1f} {w / s:>10.3f}")
        print(lines[-1], flush=True)
    lines += ["", f"warm start trains in {sum(ratios) / len(ratios):.3f}x the time of training from scratch (mean of "
                  f"the per-network ratios; the anchor's own {anchor.metrics['train_seconds']:.0f} s is paid once)"]
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
