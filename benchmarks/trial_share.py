"""Evaluation's share of a training trial, in one run: the exact SNN evaluation a trial does (test images, and the
validation images held out of training) against its training.

- The quickstart's network (digits, tiny VGG, the train settings of search_spaces/quickstart.yaml, width 1, T = 8,
  5-bit): trained and evaluated whole.
- Small VGG on CIFAR-10: one CAT epoch timed, then the evaluation a trial does (10,000 test and 5,000 validation
  images); the share is given for a trial of TrainSpec's default epochs (each epoch costs what the timed one did).

    python benchmarks/trial_share.py --data-dir DIR [--threads 2] [--out results/benchmarks/trial_share.txt]

DIR holds ``cifar-10-batches-py`` (``../shared/datasets/make_cifar10_batches.py DIR`` makes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch
import yaml

from _timing import LoadCheck, add_load_option, report
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[1]


def run(spec: TrainSpec, data_dir, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        return train_and_evaluate(spec, out, data_dir, device="cpu", threads=threads, progress=False).metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/trial_share.txt")
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    quick = yaml.safe_load((ROOT / "search_spaces/quickstart.yaml").read_text())["workloads"][0]
    rows = []
    spec = TrainSpec(dataset=quick["dataset"], model=quick["model"], width=1.0, **quick["train"])
    m = run(spec, args.data_dir, args.threads)
    evaluation = m["eval_seconds"] + m.get("val_eval_seconds", 0.0)
    epochs = spec.epochs + spec.finetune_epochs
    rows.append(("quickstart (digits, tiny VGG)", epochs, m["train_seconds"], evaluation, m))
    default = TrainSpec()
    one = dataclasses.replace(default, epochs=1, finetune_epochs=0)
    m = run(one, args.data_dir, args.threads)
    epochs = default.epochs + default.finetune_epochs
    evaluation = m["eval_seconds"] + m.get("val_eval_seconds", 0.0)
    rows.append(("small VGG, CIFAR-10 (1 epoch timed)", epochs, epochs * m["train_seconds"], evaluation, m))
    lines = [f"evaluation's share of a training trial; {args.threads} threads, torch {torch.__version__}",
             f"{'network':>38}  {'epochs':>6}  {'training s':>10}  {'evaluation s':>12}  {'images evaluated':>16}  share"]
    for name, epochs, train, evaluation, m in rows:
        images = m["test_images"] + m.get("validation_images", 0)
        lines.append(f"{name:>38}  {epochs:>6}  {train:>10.1f}  {evaluation:>12.1f}  {images:>16,}  "
                     f"{evaluation / (train + evaluation):.1%}")
    lines.append("evaluation = the closed-form SNN on the test and validation images, plus the float64 ANN on "
                 f"{rows[0][4].get('ann_images', 0)} of them to check SNN = ANN bit for bit")
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
