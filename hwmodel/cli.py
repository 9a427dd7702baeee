"""The ``hwmodel`` command: estimate, sweep, calibrate. Errors are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import hwmodel
from hwmodel.arch import FIELDS, INT_FIELDS, STR_FIELDS
from hwmodel.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line, no usage dump
        raise ConfigError(message)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # a partial file after a failed write (disk full)


def _workload(args) -> hwmodel.Workload:
    wl = hwmodel.load_workload(args.workload)
    if args.firing is not None:
        if not 0.0 <= args.firing <= 1.0:
            raise ConfigError(f"--firing: must be between 0 and 1, got {args.firing}")
        wl = wl.with_firing(args.firing)
    if args.spikes:
        wl = hwmodel.overlay_spikes(wl, args.spikes)
    return wl


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="paper", help="preset name or YAML file (default: paper)")
    parser.add_argument("--workload", default="vgg16-cifar10", help="built-in name or YAML/JSON file")
    parser.add_argument("--spikes", help="spike-statistics file whose per-layer counts overlay the workload")
    parser.add_argument("--firing", type=float, help="set every layer's input firing fraction (before --spikes)")


MAX_SWEEP_POINTS = 1_000_000
NETWORK_FIELDS = ("time_window", "weight_bits", "steps_per_octave")  # fixed by a trained network's spike file


def _check_network(arch: hwmodel.Arch, wl: hwmodel.Workload, args, grid: dict | None = None) -> None:
    """A trained network priced on a processor built for another T, weight width or k is an error."""
    built = {k: wl.meta[k] for k in NETWORK_FIELDS if k in wl.meta}
    values = {k: (grid or {}).get(k, [getattr(arch, k)]) for k in built}
    wrong = [k for k in built if any(v != built[k] for v in values[k])]
    if wrong:
        have = ", ".join("/".join(str(v) for v in values[k]) for k in wrong)
        raise ConfigError(f"{args.spikes or args.workload}: the network was built for "
                          f"{', '.join(f'{k} {built[k]}' for k in wrong)}; processor {args.arch} has {have} "
                          "(set them in the --arch file)")


def cmd_estimate(args) -> int:
    arch, wl = hwmodel.load_arch(args.arch), _workload(args)
    _check_network(arch, wl, args)
    report = hwmodel.estimate(arch, wl)
    if not report.feasible:  # a search keeps such points as a constraint; asked for alone, it is an error
        raise ConfigError(f"{args.arch}: infeasible processor for {report.workload}: {'; '.join(report.reasons)}")
    print(json.dumps(report.to_dict(), indent=2) if args.format == "json" else report.table())
    return 0


def _values(spec: str) -> tuple[str, list]:
    """``field=1,2,4`` or ``field=lo:hi:step`` (inclusive) or ``sram_cell=lstp,hp``."""
    if "=" not in spec:
        raise ConfigError(f"--set {spec!r}: expected FIELD=V1,V2,... or FIELD=LO:HI:STEP")
    name, text = spec.split("=", 1)
    if name not in FIELDS:
        hwmodel.arch.check_field(name, 0)   # raises with a did-you-mean
    if name in STR_FIELDS:
        return name, text.split(",")
    try:
        if ":" in text:
            lo, hi, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            n = int((hi - lo) / step + 0.5) + 1 if hi >= lo else 0
            values = None if n > MAX_SWEEP_POINTS else list(np.arange(lo, hi + step / 2, step))
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--set {name}: cannot read {text!r} as numbers (V1,V2 or LO:HI:STEP, STEP > 0)") from None
    if values is None:  # counted before np.arange would try to allocate them
        raise ConfigError(f"--set {name}: {text} gives {n} values (at most {MAX_SWEEP_POINTS:,})")
    return name, [int(v) if name in INT_FIELDS and v == int(v) else v for v in values]


def cmd_sweep(args) -> int:
    arch, wl = hwmodel.load_arch(args.arch), _workload(args)
    if not args.set:
        raise ConfigError("sweep: give at least one --set FIELD=VALUES")
    grid = dict(_values(spec) for spec in args.set)
    points = int(np.prod([len(v) for v in grid.values()], dtype=float))
    if points > MAX_SWEEP_POINTS:
        raise ConfigError(f"--set: the grid has {points} points (at most {MAX_SWEEP_POINTS:,})")
    _check_network(arch, wl, args, grid)
    combos = list(itertools.product(*grid.values()))
    columns = {name: np.array([c[i] for c in combos]) for i, name in enumerate(grid)}
    result = hwmodel.estimate_many(arch, wl, **columns)
    out = io.StringIO()
    writer = csv.writer(out)
    keys = list(result)
    writer.writerow(list(grid) + keys)
    for i, combo in enumerate(combos):
        writer.writerow(list(combo) + [bool(result[k][i]) if k == "feasible" else f"{result[k][i]:.6g}"
                                       for k in keys])
    if args.out:
        try:
            atomic_write(Path(args.out), out.getvalue())
        except OSError as exc:  # name the flag and the path, not a temporary file or a parent directory
            blocker = next((p for p in Path(args.out).parents if p.exists()), Path("."))
            reason = f"{blocker} is not a directory" if not blocker.is_dir() else exc.strerror or exc
            raise ConfigError(f"--out {args.out}: cannot write ({reason})") from None
        print(f"wrote {len(combos)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(out.getvalue())
    return 0


def cmd_calibrate(args) -> int:
    from hwmodel import calibrate
    return calibrate.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hwmodel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("estimate", help="energy, latency and area of one inference")
    _common(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_estimate)
    p = sub.add_parser("sweep", help="evaluate a grid of arch fields, CSV out")
    _common(p)
    p.add_argument("--set", action="append", metavar="FIELD=VALUES",
                   help="FIELD=V1,V2,... or FIELD=LO:HI:STEP; repeat for a cartesian grid")
    p.add_argument("--out", help="CSV file (written atomically); default stdout")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("calibrate", help="fit the ERT scale factors to the paper's 486.7 uJ")
    _common(p)
    p.add_argument("--target-uj", type=float, default=486.7)
    p.add_argument("--out", default="results/hwmodel/calibration.json")
    p.add_argument("--write", action="store_true", help="update hwmodel/presets/calibration.yaml")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
