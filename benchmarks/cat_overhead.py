"""Training-step time of the CAT + log-weight network over the same network with ReLU, in one run.

Same architecture, batch, optimizer and data; warm-up steps excluded; steps interleaved in rounds so
that machine noise hits every variant alike. Reports the median step time and the ratio to ReLU for
the eager CAT network, for CAT with its elementwise passes fused (what ``dse train`` uses on long
runs) and, optionally, for both whole networks under ``torch.compile``.

    python benchmarks/cat_overhead.py [--model small_vgg] [--batch 128] [--steps 20] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import LoadCheck, add_load_option, interleaved, report
from dse.network.registry import build_model


def step_fn(model, opt, x, y):
    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small_vgg")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time both networks under torch.compile")
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/cat_overhead.txt"))
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randint(0, 256, (args.batch, 3, 32, 32)).float() / 256
    y = torch.randint(0, 10, (args.batch,))
    variants = {}
    for name, kw in (("relu", dict(activation="relu", weight_bits=None)), ("cat+log5", dict(activation="cat", weight_bits=5))):
        model = build_model(args.model, 10, 3, 32, **kw)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        variants[name] = step_fn(model, opt, x, y)
        if name == "cat+log5":  # what dse train uses for long trainings: fused CAT passes, eager convolutions
            fused = build_model(args.model, 10, 3, 32, **kw)
            if fused.fuse_activations():
                fopt = torch.optim.SGD(fused.parameters(), lr=0.01, momentum=0.9)
                variants["cat+log5 fused"] = step_fn(fused, fopt, x, y)
        if args.compile:
            cmodel = torch.compile(build_model(args.model, 10, 3, 32, **kw))
            copt = torch.optim.SGD(cmodel.parameters(), lr=0.01, momentum=0.9)
            variants[name + " compiled"] = step_fn(cmodel, copt, x, y)
    times, warm = interleaved(variants, args.steps, warmup=3)  # compilation happens in the warm-up
    base = statistics.median(times["relu"])
    lines = [f"training step, {args.model}, batch {args.batch}, 32x32x3, {args.threads} threads, torch "
             f"{torch.__version__}, median of {args.steps} interleaved steps (warm-up excluded)"]
    for name, ts in times.items():
        med = statistics.median(ts)
        ref = statistics.median(times["relu compiled"]) if name == "cat+log5 compiled" else base
        lines.append(f"{name:>18}: {med * 1e3:8.1f} ms/step  {args.batch / med:7.1f} img/s  "
                     f"ratio {med / ref:5.2f}x of {'compiled ' if 'compiled' in name and name != 'relu compiled' else ''}"
                     f"relu  (warm-up {warm[name]:.1f} s)")
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
