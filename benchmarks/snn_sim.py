"""Throughput of the two SNN simulators over ANN inference, in one run.

A small VGG at 32x32 (folded, 5-bit log weights, CAT; or any registered network, ``--model resnet8``), batch 128: float32 ANN inference (what a
user's ANN evaluation costs), the float64 ANN (the exact reference), the closed-form SNN and the
event-driven SNN at several T. Interleaved rounds, median per batch. Thresholds are calibrated per layer
(99th percentile) so that every layer is active; the closed form is checked bit for bit against the float64 ANN.
Besides time, it counts the closed form's work against the ANN's multiply-adds (a figure load does not change):
float32 and float64 multiply-adds and the values gathered to recompute uncertain neurons exactly.

    python benchmarks/snn_sim.py [--rounds 3] [--out results/benchmarks/snn_sim.txt] [--allow-load]
    python benchmarks/snn_sim.py --trained RUN_DIR --data-dir DIR --out results/benchmarks/snn_sim_trained.txt

``--trained``: a `dse train` output folder (checkpoint.pt, snn.pt): the trained network on the first test images
instead (its own T; its threshold registers when it was folded into them). A trained network's activity, not a
calibrated random one's, is what an evaluation pays for.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
from pathlib import Path

import torch

from _timing import LoadCheck, add_load_option, interleaved, report
from dse.network.fold import fold_batchnorm
from dse.network.registry import build_model
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.export import export_snn


@torch.no_grad()
def calibrated(model, pixels):
    """Each layer's threshold at the power of two above its 99th-percentile potential, as training would set
    it: realistic activity in every layer (a fresh network's thetas of 1 leave the deep layers silent)."""
    x = pixels.float() / 256
    if not hasattr(model, "blocks") or hasattr(model, "units"):  # a residual network: activations in forward order
        return _calibrated_by_hooks(model, x)
    for block in model.blocks:
        if isinstance(block, torch.nn.ModuleDict):
            v = block["conv"](x, None)
            level = float(torch.quantile(v.flatten()[: 1 << 24], 0.99))
            block["act"].log2_theta.fill_(math.ceil(math.log2(level)) if level > 0 else 0)
            x = block["act"](v)
        else:
            x = block(x)
    return model


def _calibrated_by_hooks(model, x):
    """The same rule for any graph: each CAT activation in forward (module) order reads its input through a
    hook on one forward pass, with the earlier activations already set."""
    from dse.network.quant import CATActivation

    for act in [m for m in model.modules() if isinstance(m, CATActivation)][1 if model.input_code else 0:]:
        seen = []
        hook = act.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        model(x)
        hook.remove()
        level = float(torch.quantile(seen[0].flatten()[: 1 << 24], 0.99))
        act.log2_theta.fill_(math.ceil(math.log2(level)) if level > 0 else 0)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small_vgg")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--windows", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/snn_sim.txt"))
    p.add_argument("--trained", type=Path, help="a `dse train` output folder: its network on real test images")
    p.add_argument("--data-dir", type=Path)
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs, refined, work = {}, {}, {}
    for T, model, net, pixels in _networks(args):
        closed, rec = simulate_closed_form(net, pixels)
        assert torch.equal(closed, copy.deepcopy(model).double()(pixels.double() / 256)), "not bit-exact"
        refined[T] = rec.refined / max(rec.certified, 1)
        ann_macs = simulate_closed_form(net, pixels, certified=False)[1].work["float64 MACs"]  # the ANN's
        work[T] = {k: v / ann_macs for k, v in rec.work.items()}
        ann32 = copy.deepcopy(model).float()
        ann64 = copy.deepcopy(model).double()
        if "ANN float32" not in runs:
            runs["ANN float32"] = lambda m=ann32: m(pixels.float() / 256)
            runs["ANN float64 (exact)"] = lambda m=ann64: m(pixels.double() / 256)
        runs[f"SNN closed form T={T}"] = lambda n=net: simulate_closed_form(n, pixels)
        runs[f"SNN event-driven T={T}"] = lambda n=net: simulate_events(n, pixels)
    with torch.no_grad():
        times, _ = interleaved(runs, args.rounds)
    base = statistics.median(times["ANN float32"])
    what = (f"{args.trained} (trained, spec {_spec_line(args.trained)}), the first {args.batch} test images"
            if args.trained else f"{args.model} (random weights, calibrated thresholds), random pixels")
    lines = [f"{what}, batch {args.batch}, {args.threads} threads, torch {torch.__version__}, "
             f"median of {args.rounds} interleaved rounds"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines.append(f"{name:>24}: {args.batch / med:8.1f} img/s   {med / base:6.2f}x the float32 ANN's time")
    lines.append("closed form = float64 ANN bit for bit at every T; neurons the float32 bound left to float64: "
                 + ", ".join(f"T={T} {share:.3%}" for T, share in refined.items()))
    lines.append("closed form's work, per the ANN's multiply-adds:")
    for T, counts in work.items():
        lines.append(f"  T={T}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(counts.items())))
    report(lines, args.out, load)


def _networks(args):
    """(T, float model, SNN, pixels) per time window: calibrated random networks, or the one trained network."""
    if args.trained:
        from dse.snn.network import SNNNetwork
        from dse.train.checkpoint import load_checkpoint

        model, _, data = load_checkpoint(args.trained / "checkpoint.pt", data_dir=args.data_dir)
        net = SNNNetwork.load(args.trained / "snn.pt")
        yield net.code.time_window, model, net, data.test.images[: args.batch]
        return
    pixels = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    for T in args.windows:
        model = calibrated(fold_batchnorm(build_model(args.model, 10, 3, 32, time_window=T).eval()), pixels)
        yield T, model, export_snn(model), pixels


def _spec_line(folder: Path) -> str:
    import json

    spec = json.loads((folder / "metrics.json").read_text())["spec"]
    return ", ".join(f"{k} {spec[k]}" for k in ("model", "dataset", "time_window", "fold") if k in spec)


if __name__ == "__main__":
    main()
