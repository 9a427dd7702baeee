"""Every hwmodel figure that docs/hwmodel.md shows, computed here and written between its markers.

Run: ``python benchmarks/hwmodel_figures.py`` rewrites each ``<!-- figure: NAME -->`` ... ``<!-- /figure -->``
block of docs/hwmodel.md and the files of results/hwmodel/ (validation, calibration, sensitivity, front).
tests/test_hwmodel_figures.py recomputes the blocks and fails when a committed one drifts from the model.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

import hwmodel
from hwmodel import calibrate, costs, ert, sensitivity, validation
from hwmodel.units import human
from hwmodel.workload import builtin_activity

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs/hwmodel.md"
BLOCK = re.compile(r"(<!-- figure: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /figure -->)", re.S)
C10 = "vgg16-cifar10"


def _paper(**changes) -> hwmodel.Arch:
    return hwmodel.with_fields(hwmodel.load_arch("paper"), **changes)


def validation_table() -> str:
    """``hwmodel validate``'s table: calibrated and uncalibrated ratios."""
    rows = validation.table()
    lines = [f"{'target':<34}{'metric':<24}{'published':>12}{'model':>13}{'ratio':>7}{'uncal.':>8}  within x2"]
    for r in rows:
        scale, unit = {"chip_energy_j": (1.0, "J"), "clock_pj_per_cycle": (1e-12, "J/cycle"),
                       "leakage_w": (1.0, "W")}.get(r["metric"], (1e-12, "J/SOP"))
        lines.append(f"{r['target']:<34}{r['metric']:<24}{human(r['published'] * scale, unit):>12}"
                     f"{human(r['model'] * scale, unit):>13}{r['ratio']:>7.3g}{r['ratio_uncalibrated']:>8.3g}  "
                     f"{'yes' if r['within'] else 'no (documented miss)' if r['documented_miss'] else 'NO'}")
    return "```\n" + "\n".join(lines) + "\n```\n"


def banking() -> str:
    """Latency and chip energy against the PE count: a Vmem bank per PE (the default) and a fixed 64 banks."""
    wl = hwmodel.load_workload(C10)
    lines = ["| PEs | Vmem banks | chip energy | latency | bank stalls | area |", "| --- | --- | --- | --- | --- | --- |"]
    for side in (8, 16, 32):
        for banks in (0, 64):
            r = hwmodel.estimate(_paper(pe_rows=side, pe_cols=side, vmem_banks=banks), wl)
            stall = sum(row["bank_stall"] for row in r.latency_breakdown.values())
            lines.append(f"| {side * side} | {r.operating_point['vmem_banks']:.0f}{' (one per PE)' if banks == 0 else ''} "
                         f"| {human(r.energy_chip_j, 'J')} | {human(r.latency_s, 's')} | {human(stall, 's')} "
                         f"| {r.area_mm2:.3g} mm2 |")
    fixed = [hwmodel.estimate(_paper(vmem_banks=64, vmem_sram_kib=kib), wl).latency_s for kib in (128, 512)]
    tall, wide = (hwmodel.estimate(_paper(pe_rows=r, pe_cols=c), wl) for r, c in ((16, 4), (4, 16)))
    return ("\n".join(lines) + f"\n\nAt 64 banks, Vmem 128 -> 512 KiB moves the latency by "
            f"{(fixed[1] / fixed[0] - 1) * 100:+.1f} %. A 16 x 4 and a 4 x 16 array: "
            f"{human(tall.energy_chip_j, 'J')} / {human(tall.latency_s, 's')} and "
            f"{human(wide.energy_chip_j, 'J')} / {human(wide.latency_s, 's')}.\n")


def shares() -> str:
    """Chip energy by kind at the measured activity and with no spike at all (``--firing 0``): what is fixed."""
    lines = ["| workload | kind | measured activity | no spikes (`--firing 0`) | fixed share |",
             "| --- | --- | --- | --- | --- |"]
    for name in hwmodel.BUILTINS:
        wl = hwmodel.load_workload(name)
        busy, idle = hwmodel.estimate(_paper(), wl), hwmodel.estimate(_paper(), wl.with_firing(0.0))
        for kind in (*costs.CHIP_KINDS, "chip"):
            b = busy.energy_chip_j if kind == "chip" else busy.energy_by_kind[kind]
            i = idle.energy_chip_j if kind == "chip" else idle.energy_by_kind[kind]
            lines.append(f"| {name} | {kind} | {human(b, 'J')} | {human(i, 'J')} | {i / b * 100 if b else 0:.1f} % |")
    return "\n".join(lines) + "\n"


def supply() -> str:
    """The paper preset between 0.6 and 0.9 V: the clock each supply reaches, and what it costs."""
    wl = hwmodel.load_workload(C10)
    lines = ["| supply | clock (lstp cells) | chip energy | latency |", "| --- | --- | --- | --- |"]
    clocks = np.arange(10.0, 1000.0, 10.0)
    for volts in (0.6, 0.7, 0.8, 0.9):
        mhz = float(clocks[ert.needed_v(clocks, False) <= volts + 1e-9].max())   # the fastest clock it reaches
        r = hwmodel.estimate(_paper(supply_v=volts, clock_mhz=mhz), wl)
        lines.append(f"| {volts:.1f} V | {mhz:.0f} MHz | {human(r.energy_chip_j, 'J')} | {human(r.latency_s, 's')} |")
    return "\n".join(lines) + "\n"


def calibration() -> str:
    fitted, cal = calibrate.fit(_paper(), hwmodel.load_workload(C10)), ert.calibration()
    head = {name: hi / value - 1 for name, value in cal.items() for lo, hi in [calibrate.RANGES[name]]}
    return (f"`sram_scale` {cal['sram_scale']:.3f} (range {calibrate.RANGES['sram_scale'][0]}-"
            f"{calibrate.RANGES['sram_scale'][1]}: {head['sram_scale'] * 100:.0f} % headroom), `logic_scale` "
            f"{cal['logic_scale']:.3f} (range {calibrate.RANGES['logic_scale'][0]}-{calibrate.RANGES['logic_scale'][1]}: "
            f"{head['logic_scale'] * 100:.0f} % headroom); a refit now gives {fitted['sram_scale']:.3f} / "
            f"{fitted['logic_scale']:.3f}.\n")


def predictions() -> str:
    lines = ["| workload | chip energy | DRAM | SOPs | chip pJ/SOP | activity from |", "| --- | --- | --- | --- | --- | --- |"]
    for name in hwmodel.BUILTINS:
        r = hwmodel.estimate(_paper(), hwmodel.load_workload(name))
        source = builtin_activity(name)
        lines.append(f"| {name} | {human(r.energy_chip_j, 'J')} | {human(r.energy_dram_j, 'J')} | {r.sops / 1e6:.0f} M "
                     f"| {r.chip_pj_per_sop:.2f} | {source['network']} ({source['measured_on'].get('accuracy', 0) * 100:.1f} %) |")
    return "\n".join(lines) + "\n"


FIGURES = {"validation": validation_table, "banking": banking, "shares": shares, "supply": supply,
           "calibration": calibration, "predictions": predictions}


def render(text: str) -> str:
    """``text`` with every figure block recomputed."""
    def fill(m: re.Match) -> str:
        return m.group(1) + FIGURES[m.group("name")]() + m.group(4)
    return BLOCK.sub(fill, text)


def main() -> None:
    DOCS.write_text(render(DOCS.read_text()))
    out = ROOT / "results/hwmodel"
    (out / "validation.json").write_text(json.dumps(validation.table(), indent=1) + "\n")
    (out / "validation.txt").write_text(validation_table().strip("`\n") + "\n")
    for name in hwmodel.BUILTINS:
        text, rows = sensitivity.report(hwmodel.load_arch("paper"), hwmodel.load_workload(name))
        (out / f"sensitivity_{name}.txt").write_text(text + "\n")
        (out / f"sensitivity_{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import hwmodel_front

    hwmodel_front.main()
    print(f"updated {DOCS.relative_to(ROOT)} ({', '.join(FIGURES)}) and results/hwmodel/")


if __name__ == "__main__":
    main()
