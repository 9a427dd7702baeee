"""Sensitivity: each knob swept over its range from a base processor; what it moves and which term drives it."""

from __future__ import annotations

from hwmodel import costs
from hwmodel.arch import Arch, with_fields
from hwmodel.report import estimate
from hwmodel.units import human
from hwmodel.workload import Workload

RANGES = {   # knob -> values swept (the others stay at the base processor's)
    "pe_rows": [4, 8, 16, 32, 64], "pe_cols": [4, 8, 16, 32, 64],
    "weight_sram_kib": [64, 128, 256, 512, 1024, 4096, 12288], "vmem_sram_kib": [32, 64, 128, 256, 512],
    "spike_sram_kib": [16, 32, 64, 128, 256], "vmem_banks": [0, 16, 64, 256, 1024], "weight_banks": [0, 4, 16, 64],
    "weight_bits": [3, 4, 5, 6, 8], "time_window": [4, 6, 8, 12, 16], "steps_per_octave": [1, 2],
    "rounding": ["floor", "round"], "accumulator_bits": [0, 16, 20, 24, 32], "neuron_word_bits": [0, 32, 64, 128],
    "clock_mhz": [50, 100, 200, 300, 400, 600], "tech_nm": [16, 22, 28, 40, 65],
    "dram": ["lpddr4", "lpddr5", "hbm2", "none"], "sram_cell": ["lstp", "hp"],
    "weight_pin_frac": [0.0, 0.25, 0.5, 0.75], "batch": [1, 2, 4, 8, 16], "datapath": ["log", "int"],
    "fire_method": ["compare", "lod"],
}


def sweep(arch: Arch, wl: Workload, knob: str, values=None) -> list[dict]:
    rows = []
    for value in values if values is not None else RANGES[knob]:
        rep = estimate(with_fields(arch, **{knob: value}), wl)
        rows.append({"value": value, "feasible": rep.feasible, "energy_chip_j": rep.energy_chip_j,
                     "energy_dram_j": rep.energy_dram_j, "latency_s": rep.latency_s, "area_mm2": rep.area_mm2,
                     "by_term": rep.energy_by_term, "reasons": rep.reasons})
    return rows


def driver(rows: list[dict]) -> str:
    """The term whose energy changes most across the feasible points."""
    ok = [r for r in rows if r["feasible"]]
    if len(ok) < 2:
        return "-"
    spread = {t: max(r["by_term"][t] for r in ok) - min(r["by_term"][t] for r in ok) for t in costs.NAMES}
    return max(spread, key=spread.get)


def report(arch: Arch, wl: Workload) -> tuple[str, list[dict]]:
    """A text table (3 significant digits) and the machine rows (SI units)."""
    base = estimate(arch, wl)
    lines = [f"sensitivity of {arch.name} on {wl.name}: base chip {human(base.energy_chip_j, 'J')}, DRAM "
             f"{human(base.energy_dram_j, 'J')}, latency {human(base.latency_s, 's')}, area {base.area_mm2:.3g} mm^2",
             f"{'knob':<18}{'values':<34}{'chip energy':>22}{'DRAM energy':>22}{'latency':>22}{'area mm^2':>16}"
             f"  {'driven by':<16}infeasible"]
    machine = []
    for knob in RANGES:
        rows = sweep(arch, wl, knob)
        ok = [r for r in rows if r["feasible"]]

        def span(key, unit):
            vals = [r[key] for r in ok]
            if not vals:
                return "-"
            return f"{human(min(vals), unit)}-{human(max(vals), unit)}" if unit else f"{min(vals):.3g}-{max(vals):.3g}"
        bad = [str(r["value"]) for r in rows if not r["feasible"]]
        lines.append(f"{knob:<18}{','.join(str(r['value']) for r in rows):<34}{span('energy_chip_j', 'J'):>22}"
                     f"{span('energy_dram_j', 'J'):>22}{span('latency_s', 's'):>22}{span('area_mm2', ''):>16}"
                     f"  {driver(rows):<16}{','.join(bad) or '-'}")
        for r in rows:
            machine.append({"knob": knob, "value": r["value"], "feasible": r["feasible"],
                            "energy_chip_j": r["energy_chip_j"], "energy_dram_j": r["energy_dram_j"],
                            "latency_s": r["latency_s"], "area_mm2": r["area_mm2"]})
    return "\n".join(lines), machine
