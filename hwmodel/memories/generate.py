"""Regenerate hwmodel's SRAM table (``sram_cacti7_32nm.csv``) by running CACTI 7 over a sweep.

    python -m hwmodel.memories.generate --cacti PATH/TO/CACTI_DIR --out hwmodel/memories/sram_cacti7_32nm.csv

PATH/TO/CACTI_DIR is the folder of a built CACTI 7 (https://github.com/HewlettPackard/cacti): the ``cacti``
binary and its ``tech_params/``; CACTI reads those relative to its working directory, so every run starts there.
Each point fills ``configs/sram.cfg`` (size, word width, ports, cell type, node, temperature, objective) in a
temporary folder and parses CACTI's printed summary. A point that CACTI refuses (it prints an error, or no
result) is recorded in the sidecar YAML's ``rejected`` list and not in the CSV.

The sweep: capacities 64 B .. 4 MiB (powers of two) x word widths 8..128 bits x 1 or 2 read-write ports x
``itrs-lstp`` and ``itrs-hp`` cells, at 32 nm (CACTI 7's nearest node to 28 nm). ``--jobs`` CACTI processes
run at once (default 2). Standard library and pyyaml (the sidecar) only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import os
import re
import shlex
import string
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

SIZES_BYTES = tuple(2**k for k in range(6, 23))      # 64 B .. 4 MiB
WIDTHS_BITS = (8, 16, 32, 64, 128)
PORTS = (1, 2)
CELLS = ("lstp", "hp")                              # CACTI's itrs-lstp and itrs-hp devices (cells and periphery)
TECH_NM = 32                                        # CACTI 7 has 22 and 32 nm parameters; hwmodel scales 32 -> 28
TEMPERATURE_K = 350                                 # leakage is quoted at this junction temperature

# How CACTI picks the array organization (Ndwl, Ndbl, Nspd, mux degrees) among the valid ones: the design
# objective's weights and allowed deviations, both in the order (delay, dynamic power, leakage, cycle time, area),
# and whether ED / ED^2 overrides them. CACTI first keeps the organizations within each deviation (percent) of
# the best value of that metric, then minimizes the weighted sum of the normalized metrics.
OBJECTIVES = {
    # Default: CACTI's energy x delay^2 optimum (the setting of its sample cache.cfg; ED^2 overrides the weights).
    # Over the sweep its read and write energies never fall as the capacity doubles, and its lstp arrays
    # cycle 2-4x slower than its hp ones (hwmodel.ert's clock table assumes 2.5x).
    "ed2": ("0:0:0:100:0", "20:100000:100000:100000:100000", "ED^2"),
    # The fastest cycle among the organizations whose access time is within 20 % of the fastest one (CACTI's
    # sample weights and deviations with ED^2 off): deep pipelined partitions, so the cycle time falls again
    # above 256 KiB, and the read energy falls with the capacity at five of the sweep's doublings.
    "cycle": ("0:0:0:100:0", "20:100000:100000:100000:100000", "NONE"),
    # The least dynamic read energy, any delay: CACTI then prices a write at 3-5x a read (64-bit words, 16 KiB
    # to 1 MiB: it minimizes the read alone) and a 1 MiB lstp array takes 8 ns a cycle.
    "energy": ("0:100:0:0:0", "100000:100000:100000:100000:100000", "NONE"),
}
DEFAULT_OBJECTIVE = "ed2"

COLUMNS = ("cell", "ports", "width_bits", "size_bytes", "rows", "read_pj", "write_pj", "subthreshold_leak_mw",
           "gate_leak_mw", "area_mm2", "access_ns", "cycle_ns", "ndwl", "ndbl", "nspd", "ndcm", "ndsam1", "ndsam2")

# CACTI's summary lines (io.cc, output_UCA), in nJ, mW, mm and ns.
_FIELDS = {
    "access_ns": r"^\s*Access time \(ns\):\s*(\S+)",
    "cycle_ns": r"^\s*Cycle time \(ns\):\s*(\S+)",
    "read_nj": r"^\s*Total dynamic read energy per access \(nJ\):\s*(\S+)",
    "write_nj": r"^\s*Total dynamic write energy per access \(nJ\):\s*(\S+)",
    "subthreshold_leak_mw": r"^\s*Total leakage power of a bank \(mW\):\s*(\S+)",
    "gate_leak_mw": r"^\s*Total gate leakage power of a bank \(mW\):\s*(\S+)",
    "height_mm": r"^\s*Cache height x width \(mm\):\s*(\S+) x",
    "width_mm": r"^\s*Cache height x width \(mm\):\s*\S+ x (\S+)",
    "ndwl": r"^\s*Best Ndwl :\s*(\S+)",
    "ndbl": r"^\s*Best Ndbl :\s*(\S+)",
    "nspd": r"^\s*Best Nspd :\s*(\S+)",
    "ndcm": r"^\s*Best Ndcm :\s*(\S+)",
    "ndsam1": r"^\s*Best Ndsam L1 :\s*(\S+)",
    "ndsam2": r"^\s*Best Ndsam L2 :\s*(\S+)",
}
_PATTERNS = {k: re.compile(v, re.MULTILINE) for k, v in _FIELDS.items()}
_VERSION = re.compile(r"CACTI \(version ([^)]*)\)")


def template() -> string.Template:
    return string.Template(resources.files("hwmodel.memories").joinpath("configs/sram.cfg").read_text())


def port_counts(ports: int) -> tuple[int, int, int]:
    """(read-write, read-only, write-only) ports. Two ports are two read-write ports: CACTI sizes a cell as its
    one-port cell plus wires per extra port (parameter.cc), so 2 RW and 1 R + 1 W differ little (4 KiB, 64-bit,
    lstp: read energy 1 %, area 2 %, leakage 5 %); 2 RW also serves a read and a write in the same cycle."""
    if ports not in PORTS:
        raise ValueError(f"ports must be one of {PORTS}, not {ports}")
    return (ports, 0, 0)


def config_text(size_bytes: int, width_bits: int, ports: int, cell: str, *, objective: str = DEFAULT_OBJECTIVE,
                tech_nm: int = TECH_NM, temperature_k: int = TEMPERATURE_K) -> str:
    if width_bits % 8:
        raise ValueError("CACTI's block size is whole bytes: width_bits must be a multiple of 8")
    weights, deviate, optimize = OBJECTIVES[objective]
    rw, rd, wr = port_counts(ports)
    return template().substitute(
        size_bytes=size_bytes, block_bytes=width_bits // 8, width_bits=width_bits, rw_ports=rw, rd_ports=rd,
        wr_ports=wr, tech_um=f"{tech_nm / 1000:g}", cell=f"itrs-{cell}", temperature_k=temperature_k,
        weights=weights, deviate=deviate, optimize=optimize)


def parse_output(text: str) -> dict[str, float] | None:
    """CACTI's summary as numbers, or None when it printed no result (a refused configuration)."""
    found = {k: p.search(text) for k, p in _PATTERNS.items()}
    if any(m is None for m in found.values()):
        return None
    return {k: float(m.group(1)) for k, m in found.items()}


def _fmt(x: float) -> str:
    return f"{x:.6g}"    # CACTI prints 6 significant digits: keep exactly those


def row_from(size_bytes: int, width_bits: int, ports: int, cell: str, out: dict[str, float]) -> dict[str, str]:
    return {
        "cell": cell, "ports": str(ports), "width_bits": str(width_bits), "size_bytes": str(size_bytes),
        "rows": str(size_bytes * 8 // width_bits),
        "read_pj": _fmt(out["read_nj"] * 1e3), "write_pj": _fmt(out["write_nj"] * 1e3),
        "subthreshold_leak_mw": _fmt(out["subthreshold_leak_mw"]), "gate_leak_mw": _fmt(out["gate_leak_mw"]),
        "area_mm2": _fmt(out["height_mm"] * out["width_mm"]),
        "access_ns": _fmt(out["access_ns"]), "cycle_ns": _fmt(out["cycle_ns"]),
        **{k: _fmt(out[k]) for k in ("ndwl", "ndbl", "nspd", "ndcm", "ndsam1", "ndsam2")},
    }


def run_point(cacti_dir: str | os.PathLike, size_bytes: int, width_bits: int, ports: int, cell: str, *,
              objective: str = DEFAULT_OBJECTIVE, timeout_s: float = 1800.0) -> tuple[dict[str, str] | None, str]:
    """Run CACTI on one point: (CSV row, the version CACTI printed) or (None, why it gave no result)."""
    cacti_dir = Path(cacti_dir).resolve()
    binary = cacti_dir / "cacti"
    if not binary.is_file():
        raise FileNotFoundError(f"no CACTI binary at {binary}")
    with tempfile.TemporaryDirectory(prefix="hwmodel-cacti-") as tmp:
        cfg = Path(tmp) / "sram.cfg"      # CACTI appends a CSV summary to <infile>.out beside it: kept in tmp
        cfg.write_text(config_text(size_bytes, width_bits, ports, cell, objective=objective))
        try:
            proc = subprocess.run([str(binary), "-infile", str(cfg)], cwd=cacti_dir, capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout_s:g} s"
    out = parse_output(proc.stdout)
    if out is None:
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() or "must" in ln]
        why = (errors or lines[-1:] or ["no output"])[0]
        return None, f"exit {proc.returncode}: {why}"
    version = _VERSION.search(proc.stdout)
    return row_from(size_bytes, width_bits, ports, cell, out), version.group(1) if version else "unknown"


def sweep_points(sizes=SIZES_BYTES, widths=WIDTHS_BITS, ports=PORTS, cells=CELLS):
    return [(s, w, p, c) for c in cells for p in ports for w in widths for s in sizes]


def _key(row):
    return (CELLS.index(row["cell"]), int(row["ports"]), int(row["width_bits"]), int(row["size_bytes"]))


def write_csv(path: Path, rows: list[dict[str, str]], header_lines: list[str]) -> None:
    buf = io.StringIO()
    for line in header_lines:
        buf.write(f"# {line}\n" if line else "#\n")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=_key))
    path.write_text(buf.getvalue())


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cacti", required=True, help="folder of a built CACTI 7 (its `cacti` binary, tech_params/)")
    ap.add_argument("--out", required=True, help="CSV to write; a sidecar <out>.yaml records options and rejects")
    ap.add_argument("--jobs", type=int, default=2, help="CACTI processes at once (default 2)")
    ap.add_argument("--objective", choices=sorted(OBJECTIVES), default=DEFAULT_OBJECTIVE)
    ap.add_argument("--sizes", type=_int_list, default=SIZES_BYTES, help="bytes, comma-separated")
    ap.add_argument("--widths", type=_int_list, default=WIDTHS_BITS, help="bits, comma-separated")
    ap.add_argument("--ports", type=_int_list, default=PORTS)
    ap.add_argument("--cells", type=lambda t: tuple(t.split(",")), default=CELLS)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per CACTI run")
    args = ap.parse_args(argv)

    points = sweep_points(args.sizes, args.widths, args.ports, args.cells)
    rows, rejected, seconds, versions = [], [], {}, set()
    start = time.monotonic()

    def one(point):
        t0 = time.monotonic()
        row, why = run_point(args.cacti, *point, objective=args.objective, timeout_s=args.timeout)
        return point, row, why, time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for done, (point, row, why, dt) in enumerate(pool.map(one, points), 1):
            seconds[point] = dt
            size, width, ports, cell = point
            if row is None:
                rejected.append({"cell": cell, "ports": ports, "width_bits": width, "size_bytes": size,
                                 "why": why})
            else:
                rows.append(row)
                versions.add(why)
            print(f"[{done}/{len(points)}] {cell} {ports}p {width:>3} b {size:>8} B: "
                  f"{'ok' if row else 'rejected (' + why + ')'} {dt:.1f} s", file=sys.stderr, flush=True)
    wall = time.monotonic() - start

    weights, deviate, optimize = OBJECTIVES[args.objective]
    # The command as run, with the machine's CACTI folder written CACTI_DIR.
    given = list(argv if argv is not None else sys.argv[1:])
    given = ["CACTI_DIR" if a == args.cacti else a.replace(args.cacti, "CACTI_DIR") for a in given]
    command = "python -m hwmodel.memories.generate " + " ".join(shlex.quote(a) for a in given)
    version = ", ".join(sorted(versions)) or "unknown"
    out = Path(args.out)
    header = [
        f"hwmodel SRAM table: one CACTI run per row; CACTI printed: version {version}.",
        f"node {TECH_NM} nm, {TEMPERATURE_K} K, RAM (no tag), 1 UCA bank, block = port width, no ECC, "
        f"cell and periphery itrs-<cell>, ports = read-write ports,",
        f"objective '{args.objective}': weights {weights}, deviate {deviate}, ED/ED^2 {optimize};"
        " template hwmodel/memories/configs/sram.cfg.",
        "read_pj/write_pj: dynamic energy per access of one port-width word; leakage of the bank = "
        "subthreshold + gate; area = height x width.",
        f"made by: {command}   (options and refused points: {out.with_suffix('.yaml').name})",
    ]
    write_csv(out, rows, header)
    sidecar = {
        "cacti": {"printed_version": version, "source": "https://github.com/HewlettPackard/cacti"},
        "command": command,
        "template": "hwmodel/memories/configs/sram.cfg",
        "node_nm": TECH_NM, "temperature_k": TEMPERATURE_K,
        "objective": {"name": args.objective, "weights": weights, "deviate": deviate, "ed_ed2": optimize},
        "sweep": {"sizes_bytes": list(args.sizes), "widths_bits": list(args.widths), "ports": list(args.ports),
                  "cells": list(args.cells)},
        "ports_meaning": "read-write ports (2 = two RW ports)",
        "points": len(points), "rows": len(rows), "rejected_count": len(rejected),
        "wall_s": round(wall, 1), "jobs": args.jobs,
        "slowest_runs_s": [
            {"cell": p[3], "ports": p[2], "width_bits": p[1], "size_bytes": p[0], "s": round(t, 1)}
            for p, t in sorted(seconds.items(), key=lambda kv: -kv[1])[:5]],
        "rejected": rejected,
    }
    out.with_suffix(".yaml").write_text(yaml.safe_dump(sidecar, sort_keys=False, width=120, default_flow_style=None))
    print(f"{len(rows)} rows, {len(rejected)} refused, {wall:.0f} s -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
