"""``dse train`` and ``dse evaluate``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from dse.util import flags
from dse.util.errors import UserError


_HELP = {"max_train_images": "train on N images only (class-balanced, seeded draw), 0 = all ",
         "max_test_images": "test on N images only (class-balanced, seeded draw), 0 = all ",
         "validation_images": "hold N training images out, never trained on (class-balanced, seeded); their "
                              "accuracy is the curve's val_accuracy; -1 = a tenth, at most 5,000; 0 = none "}


def register(subparsers) -> None:
    from dse.train.spec import TrainSpec

    p = subparsers.add_parser("train", help="train a CAT (or ReLU) network, export it to the SNN and measure both",
                              description="Every TrainSpec field is a flag; --config YAML sets them from a file "
                                          "(flags win).")
    p.add_argument("--config", type=Path, help="YAML mapping of TrainSpec fields")
    for f in dataclasses.fields(TrainSpec):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument(flag, dest=f.name, type={"int": int, "float": float, "str": str}[f.type], default=None,
                           help=_HELP.get(f.name, "") + f"(default: {f.default})")
    p.add_argument("--out", type=Path, default=Path("runs/train"),
                   help="output directory; a killed training re-run with the same --out and spec resumes there")
    p.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=None,
                   help="compile CAT's elementwise passes (same numbers; default: on for trainings of 1000+ steps)")
    p.add_argument("--ann-images", type=flags.count, default=None, metavar="N",
                   help="run the CAT network's float64 ANN on the first N test (and validation) images and "
                        "compare its outputs with the SNN's bit for bit (0: all of them; default 256: the SNN "
                        "equals the ANN by construction); agreement is measured on those N only")
    p.add_argument("--monitor", type=int, default=0, metavar="N",
                   help="record the accuracy on N test images after every epoch (metrics.json: curve, stages)")
    _common(p)
    p.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="ANN and SNN accuracy, conversion loss and spike statistics of a checkpoint")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--events", action="store_true", help="also run the event-driven simulator and check it equals the closed form")
    e.add_argument("--accumulator-bits", type=flags.positive_int, default=None,
                   help="membrane accumulator width of the event simulator (default: the --arch processor's)")
    e.add_argument("--arch", default="paper", help="processor whose accumulator width --events checks (default: paper)")
    e.add_argument("--max-test-images", type=flags.count, default=0, metavar="N",
                   help="evaluate on N test images only, a class-balanced seeded draw (default 0: all of them, "
                        "whatever the training tested on)")
    e.add_argument("--ann-images", type=flags.count, default=None, metavar="N",
                   help="compare the CAT network's float64 outputs with the SNN's, bit for bit, on the first N test "
                        "images (0: all of them; default 256: the SNN equals the ANN by construction); agreement "
                        "is measured on those N only")
    e.add_argument("--spikes-out", type=Path, help="write the spike-statistics file (hwmodel workload) here")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _common(e)
    e.set_defaults(func=_evaluate, interrupted="interrupted: nothing written (evaluate writes its files at the end)")


def _common(p) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="where the datasets' standard layouts live")
    p.add_argument("--device", type=flags.device, default="auto", help="auto (cuda when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=flags.positive_int, default=None, help="torch CPU threads")


def load_yaml_mapping(path: Path) -> dict:
    from hwmodel import read_yaml
    from hwmodel import read_text

    if not path.exists():
        raise UserError(f"{path}: no such file")
    values = read_yaml(read_text(path), str(path))  # safe_load: a !!python tag is refused, never run
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of training fields, got {type(values).__name__}")
    return values


def _train(args) -> int:
    from dse.train.evaluate import agreement_text
    from dse.train.pipeline import train_and_evaluate
    from dse.train.spec import TrainSpec

    values = load_yaml_mapping(args.config) if args.config else {}
    where = str(args.config) if args.config else "train"
    spec = TrainSpec.from_dict(values, where=where)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSpec) if getattr(args, f.name) is not None}
    spec = dataclasses.replace(spec, **flags)
    if args.monitor < 0:
        raise UserError(f"--monitor: must be >= 0, got {args.monitor}")
    check = {} if args.ann_images is None else {"ann_images": args.ann_images}
    result = train_and_evaluate(spec, args.out, args.data_dir, args.device, args.threads, fuse=args.fuse,
                                monitor=args.monitor, **check)
    m = result.metrics
    if "snn_accuracy" not in m:
        print(f"ANN accuracy {m['ann_accuracy']:.2%}  (float weights: no SNN on log-weight hardware)")
    else:
        print(f"ANN accuracy {m['ann_accuracy']:.2%}  SNN accuracy {m['snn_accuracy']:.2%}  "
              f"agreement {agreement_text(m)}  conversion loss {m['conversion_loss']:+.2%}")
    print(f"wrote {result.checkpoint}, {result.snn}, {result.spike_stats}, {args.out / 'metrics.json'}")
    return 0


def _processor_accumulator_bits(arch_name: str, spec, doc: dict) -> int:
    """The Vmem width of ``arch_name`` running this network: its own, or (0 in the preset) the width the
    processor derives from T, k, weight bits and fan-in, as hwmodel prices it."""
    import hwmodel

    arch = hwmodel.load_arch(arch_name)
    if arch.accumulator_bits:
        return int(arch.accumulator_bits)
    shaped = hwmodel.with_fields(arch, weight_bits=spec.weight_bits, time_window=spec.time_window,
                                 steps_per_octave=spec.steps_per_octave)
    report = hwmodel.estimate(shaped, hwmodel.load_workload(doc))
    return int(report.operating_point["accumulator_bits"])


def _evaluate(args) -> int:
    import torch

    from dse.data.batches import batches
    from dse.data.splits import subset
    from dse.snn.closed_form import simulate_closed_form
    from dse.snn.events import simulate_events
    from dse.snn.statistics import write_spike_statistics
    from dse.train.checkpoint import load_checkpoint
    from dse.train.device import resolve_device
    from dse.train.evaluate import agreement_text, measure
    from dse.util.progress import bar, batch_count

    if args.threads:
        torch.set_num_threads(args.threads)
    model, spec, data = load_checkpoint(args.checkpoint, data_dir=args.data_dir)
    spec = dataclasses.replace(spec, max_test_images=args.max_test_images)  # the flag, not the training's value
    device = resolve_device(args.device)
    check = {} if args.ann_images is None else {"check_images": args.ann_images}
    metrics, doc, net = measure(model.to(device), spec, data, device, f"{spec.model}-{spec.dataset}", **check)
    if args.events and args.accumulator_bits is None:  # check overflow at the width of the processor that runs it
        args.accumulator_bits = _processor_accumulator_bits(args.arch, spec, doc)
    if args.events:
        test = subset(data.test, spec.max_test_images)  # the images measure() tested
        equal = overflows = 0
        peaks: list[int] = []
        for x, _ in bar(batches(test, 250), batch_count(len(test.labels), 250), "event-driven SNN"):
            a, _ = simulate_closed_form(net, x.to(device))
            b, rec = simulate_events(net, x.to(device), args.accumulator_bits)
            equal += int((a == b).all(1).sum())
            overflows += rec.overflows
            peaks = [max(a, b) for a, b in zip(peaks, rec.peaks)] if peaks else list(rec.peaks)
        metrics["event_equal_closed_form"] = equal / len(test.labels)
        metrics["event_overflows"] = overflows
        # the two's-complement width each weight layer's accumulator needed on these images (exact)
        bits = [1 + int(p).bit_length() for p in peaks]
        metrics["event_potential_bits"] = bits
        weighted = [layer for layer in doc["layers"] if layer["type"] in ("conv", "linear")]
        if overflows == 0:   # measured without saturation: the width hwmodel can derive from (docs/hwmodel.md)
            for layer, b in zip(weighted, bits):
                layer["potential_bits"] = b
    if args.spikes_out:
        write_spike_statistics(doc, args.spikes_out)
    if args.json:
        print(json.dumps(metrics, indent=1))
        return 0
    print(f"{args.checkpoint}: {spec.model} on {spec.dataset}, {spec.activation}, {spec.weight_bits}-bit log weights, "
          f"T={spec.time_window}, k={spec.steps_per_octave}, {metrics['test_images']} test images")
    print(f"  ANN accuracy     {metrics['ann_accuracy']:.2%}")
    print(f"  SNN accuracy     {metrics['snn_accuracy']:.2%}")
    print(f"  agreement        {agreement_text(metrics)}")
    print(f"  conversion loss  {metrics['conversion_loss']:+.2%}")
    if args.events:
        print(f"  event sim = closed form on {metrics['event_equal_closed_form']:.2%} of images "
              f"({metrics['event_overflows']} accumulator overflows at {args.accumulator_bits} bits; "
              f"widest layer needed {max(metrics['event_potential_bits'], default=0)} bits)")
    print(f"  {'layer':<10} {'type':<8} {'input spikes':>14} {'output spikes':>14}")
    for layer in doc["layers"]:
        print(f"  {layer['name']:<10} {layer['type']:<8} {layer.get('input_spikes', 0):>14.1f} "
              f"{layer.get('output_spikes', float('nan')):>14.1f}")
    return 0
