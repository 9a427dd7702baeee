"""The ``hwmodel`` command: estimate, sweep, calibrate, sensitivity, validate, activity. Errors are one line on
stderr and exit status 2."""

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
import yaml
from importlib import resources

import hwmodel
from hwmodel import calibrate, costs, fields, sensitivity, validation
from hwmodel.workload import BUILTINS, map_activity, map_potential_bits, parse_workload, vgg16
from hwmodel import ert
from hwmodel.errors import ConfigError
from hwmodel.units import human


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
NETWORK_FIELDS = ("time_window", "weight_bits", "steps_per_octave", "rounding")  # fixed by a trained network's spike file


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
    return name, fields.field(name, "arch").parse_values(text, MAX_SWEEP_POINTS)


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
    progress = _Progress(len(combos))
    result = hwmodel.estimate_many(arch, wl, **columns)
    reasons = hwmodel.infeasible_reasons(arch, wl, **columns) if not result["feasible"].all() else None
    progress.say(f"priced {len(combos):,} processors")
    out = io.StringIO()
    writer = csv.writer(out)
    keys = list(result)
    writer.writerow(list(grid) + keys + ["infeasible_because"])
    for i, combo in enumerate(combos):
        writer.writerow(list(combo) + [bool(result[k][i]) if k == "feasible" else f"{result[k][i]:.6g}"
                                       for k in keys] + [reasons[i] if reasons is not None else ""])
        if i % 100_000 == 99_999:
            progress.say(f"wrote {i + 1:,} of {len(combos):,} rows")
    if args.out:
        _write(args.out, out.getvalue())
        print(f"wrote {len(combos)} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(out.getvalue())
    return 0


class _Progress:
    """One stderr line per step of a long sweep (a terminal only): numpy + pyyaml, so no progress-bar library."""

    def __init__(self, rows: int):
        import time

        self.clock, self.start = time.monotonic, time.monotonic()
        self.on = rows >= 100_000 and sys.stderr.isatty()

    def say(self, what: str) -> None:
        if self.on:
            print(f"sweep: {what} ({self.clock() - self.start:.1f} s)", file=sys.stderr)


def _write(path: str, text: str) -> None:
    try:
        atomic_write(Path(path), text)
    except OSError as exc:  # name the flag and the path, not a temporary file or a parent directory
        blocker = next((p for p in Path(path).parents if p.exists()), Path("."))
        reason = f"{blocker} is not a directory" if not blocker.is_dir() else exc.strerror or exc
        raise ConfigError(f"--out {path}: cannot write ({reason})") from None


def cmd_calibrate(args) -> int:
    arch = hwmodel.load_arch(args.arch)
    wl = _workload(args)
    scales = calibrate.fit(arch, wl, args.target_uj)
    fitted = calibrate.chip_parts(arch, wl, scales)
    chip_uj = sum(v for k, v in fitted.items() if k in costs.CHIP_KINDS)
    others = {}
    for name in BUILTINS:   # the same constants, no refit
        other = hwmodel.load_workload(name)
        other = other.with_firing(args.firing) if args.firing is not None else other
        parts = calibrate.chip_parts(arch, other, scales)
        others[name] = {"energy_chip_j": sum(v for k, v in parts.items() if k in costs.CHIP_KINDS) * 1e-6,
                        "energy_dram_j": parts["dram"] * 1e-6}
    result = {"target_chip_energy_j": args.target_uj * 1e-6, "arch": arch.to_dict(), "workload": wl.name,
              "activity": {"firing": args.firing, "spikes_file": args.spikes}, "ranges": calibrate.RANGES,
              "fitted": scales, "energy_by_kind_j": {k: v * 1e-6 for k, v in fitted.items()},
              "error_pct": (chip_uj / args.target_uj - 1) * 100, "same_constants": others}
    _write(args.out, json.dumps(result, indent=2) + "\n")
    print(f"fitted sram_scale={scales['sram_scale']:.4f} logic_scale={scales['logic_scale']:.4f}: {wl.name} chip "
          f"{chip_uj:.4g} uJ (target {args.target_uj}, {result['error_pct']:+.3f} %)")
    for name, row in others.items():
        print(f"  {name:<22} chip {human(row['energy_chip_j'], 'J'):>9}   DRAM {human(row['energy_dram_j'], 'J'):>9}")
    if args.write:
        activity = args.spikes or (f"firing {args.firing}" if args.firing is not None else
                                   "measured activity, hwmodel/workloads/activity_cifar10.yaml")
        path = Path(str(resources.files("hwmodel").joinpath("presets/calibration.yaml")))
        atomic_write(path, "# Scale factors fitted by `hwmodel calibrate --write` (see docs/hwmodel.md); "
                     "1.0 = the uncalibrated ERT.\n"
                     f"# Fit: the chip energy of {wl.name} ({activity}), target {args.target_uj} uJ on arch "
                     f"{arch.name}.\nsram_scale: {scales['sram_scale']:.6f}\nlogic_scale: {scales['logic_scale']:.6f}\n")
        ert.calibration.cache_clear()
        print(f"updated {path}", file=sys.stderr)
    return 0


def cmd_sensitivity(args) -> int:
    text, rows = sensitivity.report(hwmodel.load_arch(args.arch), _workload(args))
    print(text)
    if args.out:
        _write(args.out, json.dumps(rows, indent=1) + "\n")
    return 0


def cmd_validate(args) -> int:
    rows = validation.table()
    print(f"{'target':<34}{'metric':<24}{'published':>14}{'model':>14}{'ratio':>8}{'uncal.':>8}{'tolerance':>11}"
          "  within")
    for r in rows:
        scale, unit = {"chip_energy_j": (1.0, "J"), "clock_pj_per_cycle": (1e-12, "J/cycle"),
                       "leakage_w": (1.0, "W")}.get(r["metric"], (1e-12, "J/SOP"))
        print(f"{r['target']:<34}{r['metric']:<24}{human(r['published'] * scale, unit):>14}"
              f"{human(r['model'] * scale, unit):>14}{r['ratio']:>8.3g}{r['ratio_uncalibrated']:>8.3g}"
              f"{'x' + format(1 + r['tolerance'], '.3g'):>11}"
              f"  {'yes' if r['within'] else 'NO (documented miss)' if r['documented_miss'] else 'NO'}")
    if args.out:
        _write(args.out, json.dumps(rows, indent=1) + "\n")
    return 0


def cmd_activity(args) -> int:
    measured = hwmodel.load_workload(args.spikes)
    shape, classes = BUILTINS[args.builtin]
    target = parse_workload(vgg16(args.builtin, shape, classes), args.builtin)
    firing = map_activity(measured, target)
    widths = hwmodel.load_workload(args.potential) if args.potential else measured
    potential = map_potential_bits(widths, target)
    meta = measured.meta
    text = (f"# Measured per-layer input firing for the built-in VGG-16 workload(s) {args.builtin}, written by\n"
            f"#   hwmodel activity {args.spikes} --builtin {args.builtin} --out {args.out}"
            + (f" --command '{args.command}'" if args.command else "")
            + (f" --potential {args.potential}" if args.potential else "")
            + (f" --potential-command '{args.potential_command}'" if args.potential_command else "") + "\n"
            + yaml.safe_dump({"network": meta.get("name", measured.name),
                              "measured_on": {k: v for k, v in meta.items() if k != "name"},
                              "source": str(args.spikes),
                              "command": (f"{args.command}; then dse's spike statistics of that checkpoint "
                                          f"({args.spikes}) -> hwmodel activity")
                              if args.command else "not given (pass --command)",
                              "mapping": "each VGG-16 layer takes the input firing of the measured layer of the same "
                                         "class (pooling or weighted) at the nearest relative depth",
                              "input_firing": firing,
                              **({"potential_bits_source": {
                                  "network": widths.meta.get("name", widths.name),
                                  "measured_on": {k: v for k, v in widths.meta.items() if k != "name"},
                                  "source": str(args.potential or args.spikes),
                                  "command": args.potential_command or "dse evaluate CHECKPOINT --events "
                                             "--accumulator-bits 48 --spikes-out SPIKES"},
                                  "potential_bits_mapping": "the exact SNN's accumulator width per weight layer "
                                  "(dse evaluate --events); a different network's nearest-depth layer, plus "
                                  "ceil(log2) of a larger fan-in ratio",
                                  "potential_bits": potential} if potential else {})},
                             sort_keys=False, width=110))
    _write(args.out, text)
    print(f"wrote {len(firing)} layers to {args.out}", file=sys.stderr)
    return 0


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
                   help="FIELD=V1,V2,... or FIELD=LO:HI:STEP; repeat for a cartesian grid. Fields: "
                        + ", ".join(fields.FIELDS))
    p.add_argument("--out", help="CSV file (written atomically); default stdout")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("calibrate", help="fit the ERT scale factors to the paper's 486.7 uJ (chip energy)")
    _common(p)
    p.add_argument("--target-uj", type=float, default=calibrate.PAPER_UJ)
    p.add_argument("--out", default="results/hwmodel/calibration.json")
    p.add_argument("--write", action="store_true", help="update hwmodel/presets/calibration.yaml")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("sensitivity", help="each knob over its range: energy, latency, area, driving term")
    _common(p)
    p.add_argument("--out", help="JSON rows (SI units)")
    p.set_defaults(func=cmd_sensitivity)
    p = sub.add_parser("validate", help="the model against published chips")
    p.add_argument("--out", help="JSON rows")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("activity", help="map a measured spike file onto the built-in VGG-16 activity file")
    p.add_argument("spikes", help="spike-statistics file written by dse evaluate")
    p.add_argument("--builtin", choices=sorted(BUILTINS), default="vgg16-cifar10",
                   help="the built-in whose layer names the firing is mapped onto (its input size)")
    p.add_argument("--command", help="the command that trained the measured network (recorded in the file)")
    p.add_argument("--potential", metavar="SPIKES",
                   help="spike file whose potential_bits (dse evaluate --events) set the Vmem width; default: SPIKES")
    p.add_argument("--potential-command", help="the command that measured --potential (recorded in the file)")
    p.add_argument("--out", default="hwmodel/workloads/activity_cifar10.yaml")
    p.set_defaults(func=cmd_activity)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`| head`): nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return 0
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
