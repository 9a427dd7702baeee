"""The CAT-vs-conversion table on the real CIFAR-10 (issue: CAT, log weights, exact SNN).

For each T: train a CAT small VGG with 5-bit log weights, export it, and run both SNN simulators on
all 10,000 test images (agreement with the ANN must be 100 %). One full-precision ReLU network is
trained once and converted naively at each T (threshold balancing at the 99.9th percentile, the
same 5-bit log weights): its conversion loss is measured, not assumed.

    python benchmarks/cat_cifar10.py --data-dir DIR [--epochs 3] [--out results/cat] [--event-images N]

Rows already in --out and trainings already in --work are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dse.data.batches import batches
from dse.data.registry import load_dataset
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.train.checkpoint import load_checkpoint
from dse.train.evaluate import measure
from dse.train.pipeline import TrainResult, train_and_evaluate
from dse.train.spec import TrainSpec


def trained(spec: TrainSpec, work: Path, data_dir, threads: int) -> TrainResult:
    """``train_and_evaluate``, unless ``work`` already holds a finished training of this exact spec."""
    metrics = work / "metrics.json"
    if metrics.exists() and (m := json.loads(metrics.read_text()))["spec"] == spec.to_dict():
        return TrainResult(m["ann_accuracy"], m["snn_accuracy"], m.get("agreement"), work / "checkpoint.pt",
                           work / "snn.pt", work / "spikes.json", m)
    return train_and_evaluate(spec, work, data_dir, threads=threads, ann_images=0)  # the ANN on every test image


def event_agreement(snn_path: Path, split, limit: int, batch_size: int = 250) -> tuple[float, int, int]:
    """Fraction of the first ``limit`` test images (0: all) whose event-driven logits equal the closed form's."""
    from dse.snn.network import SNNNetwork

    net = SNNNetwork.load(snn_path)
    if limit and limit < len(split.labels):
        split = type(split)(split.images[:limit], split.labels[:limit])
    same = overflows = 0
    for x, _ in batches(split, batch_size):
        a, _ = simulate_closed_form(net, x)
        b, rec = simulate_events(net, x)
        same += int((a == b).all(1).sum())
        overflows += rec.overflows
    return same / len(split.labels), overflows, len(split.labels)


def ann_images(row: dict) -> int:
    """The test images the CAT network's ANN ran on, which its agreement is measured on. Rows without the field
    predate the sampled check (``dse.train.evaluate.measure``): the ANN then ran on every test image."""
    return row.get("cat_ann_images", row["test_images"])


def write_table(out: Path) -> None:
    """results table from every cifar10_T<T>.json in ``out`` (atomic write)."""
    rows = sorted((json.loads(p.read_text()) for p in out.glob("cifar10_T*[0-9].json")), key=lambda r: r["T"])
    lines = ["| T | ReLU FP ANN | naive conversion SNN | conversion loss | CAT ANN | CAT SNN | SNN = CAT ANN (images) | "
             "event sim = closed form (images) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for w in rows:
        lines.append(f"| {w['T']} | {w['relu_fp_accuracy']:.2%} | {w['naive_snn_accuracy']:.2%} | "
                     f"{w['naive_conversion_loss']:+.2%} | {w['cat_ann_accuracy']:.2%} | {w['cat_snn_accuracy']:.2%} | "
                     f"{w['cat_snn_agreement']:.2%} ({ann_images(w):,}) | {w['event_sim_equal_closed_form']:.2%} "
                     f"({w.get('event_images', w['test_images']):,}) |")
    if rows:
        s = rows[0]["spec"]
        lines.append(f"\n{s['model']} (width {s['width']}), {s['weight_bits']}-bit log weights, k={s['steps_per_octave']}, "
                     f"{s['epochs']} epochs + {s['finetune_epochs']} folded fine-tune, {s['schedule']} lr {s['lr']}, "
                     f"seed {s['seed']}, {rows[0]['test_images']} CIFAR-10 test images (CPU).")
    tmp = out / "table.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "table.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--windows", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--out", default="results/cat")
    p.add_argument("--work", default="/tmp/dse-cat-cifar10")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--event-images", type=int, default=0,
                   help="check the event-driven simulator on the first N test images (0: all; it is slow at large T)")
    p.add_argument("--table-only", action="store_true", help="only rebuild table.md from the JSONs in --out")
    args = p.parse_args()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        return write_table(out)
    data = load_dataset("cifar10", args.data_dir)
    rows = []
    base = dict(dataset="cifar10", model="small_vgg", width=args.width, weight_bits=5, epochs=args.epochs)
    relu = TrainSpec(**base, activation="relu")
    r = trained(relu, work / "relu", args.data_dir, args.threads)
    model, _, _ = load_checkpoint(r.checkpoint, data)
    for T in args.windows:
        if (out / f"cifar10_T{T}.json").exists():
            continue  # a finished row: delete its JSON to measure it again
        cat = trained(TrainSpec(**base, time_window=T), work / f"cat-T{T}", args.data_dir, args.threads)
        t0 = time.perf_counter()
        events, overflows, event_images = event_agreement(cat.snn, data.test, args.event_images)
        naive, _, _ = measure(model, TrainSpec(**base, activation="relu", time_window=T), data, torch.device("cpu"), "relu")
        row = {"T": T, "relu_fp_accuracy": r.ann_accuracy, "naive_snn_accuracy": naive["snn_accuracy"],
               "naive_conversion_loss": naive["conversion_loss"], "cat_ann_accuracy": cat.ann_accuracy,
               "cat_snn_accuracy": cat.snn_accuracy, "cat_snn_agreement": cat.agreement,
               "cat_ann_images": cat.metrics.get("ann_images", cat.metrics["test_images"]),
               "event_sim_equal_closed_form": events, "event_images": event_images, "event_sim_overflows": overflows,
               "event_check_seconds": time.perf_counter() - t0, "cat_train_seconds": cat.metrics["train_seconds"],
               "relu_train_seconds": r.metrics["train_seconds"], "test_images": cat.metrics["test_images"],
               "spec": cat.metrics["spec"]}
        rows.append(row)
        (out / f"cifar10_T{T}_spikes.json").write_text(cat.spike_stats.read_text())
        (out / f"cifar10_T{T}.json.tmp").write_text(json.dumps(row, indent=1))
        (out / f"cifar10_T{T}.json.tmp").replace(out / f"cifar10_T{T}.json")
        print(json.dumps({k: v for k, v in row.items() if k != "spec"}), flush=True)
        write_table(out)  # after every T, so a long run's finished rows are on disk
    write_table(out)
    print((out / "table.md").read_text())

if __name__ == "__main__":
    main()
