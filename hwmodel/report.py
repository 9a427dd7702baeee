"""``estimate`` (one config -> Report) and ``estimate_many`` (broadcast arrays of configs -> arrays)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hwmodel import ert
from hwmodel.arch import Arch
from hwmodel.model import (AREA_COMPONENTS, ENERGY_COMPONENTS, LATENCY_COMPONENTS, arch_fields, evaluate,
                           field_arrays, layer_table)
from hwmodel.workload import Workload


@dataclasses.dataclass(frozen=True)
class Report:
    """Totals and per-layer x per-component breakdowns; every breakdown sums exactly to its total."""

    arch: Arch
    workload: str
    feasible: bool
    reasons: tuple[str, ...]
    energy_j: float
    latency_s: float
    area_mm2: float
    sops: float
    layers: tuple[str, ...]
    energy_breakdown: dict[str, dict[str, float]]    # layer -> component -> J
    latency_breakdown: dict[str, dict[str, float]]   # layer -> component -> s
    area_breakdown: dict[str, float]                 # component -> mm^2
    layer_sops: dict[str, float]

    @property
    def pj_per_sop(self) -> float:
        return self.energy_j / self.sops * 1e12 if self.sops else float("nan")

    @property
    def energy_by_component(self) -> dict[str, float]:
        return {c: sum(row[c] for row in self.energy_breakdown.values()) for c in ENERGY_COMPONENTS}

    @property
    def energy_by_layer(self) -> dict[str, float]:
        return {name: sum(row.values()) for name, row in self.energy_breakdown.items()}

    @property
    def energy_split(self) -> dict[str, float]:
        """compute / SRAM / DRAM / leakage shares of the energy."""
        by = self.energy_by_component
        return {"compute": by["compute"], "sram": by["weight_sram"] + by["vmem_sram"] + by["spike_sram"],
                "dram": by["dram"], "leakage": by["leakage"]}

    # keep both names the contract mentions
    @property
    def breakdowns(self) -> dict[str, Any]:
        return {"energy_j": self.energy_breakdown, "latency_s": self.latency_breakdown,
                "area_mm2": self.area_breakdown, "sops": self.layer_sops}

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "workload": self.workload, "feasible": self.feasible,
                "reasons": list(self.reasons), "energy_j": self.energy_j, "latency_s": self.latency_s,
                "area_mm2": self.area_mm2, "sops": self.sops, "pj_per_sop": self.pj_per_sop if self.sops else None,
                "energy_split_j": self.energy_split, "energy_by_component_j": self.energy_by_component,
                "breakdowns": self.breakdowns}

    def table(self) -> str:
        cols = ENERGY_COMPONENTS
        head = f"{'layer':<10}{'SOPs':>12}" + "".join(f"{c + ' uJ':>15}" for c in cols) + f"{'total uJ':>12}" \
            f"{'latency us':>12}"
        lines = [f"arch {self.arch.name} | workload {self.workload} | "
                 + ("feasible" if self.feasible else "INFEASIBLE: " + "; ".join(self.reasons)), head]
        for name in self.layers:
            row = self.energy_breakdown[name]
            lines.append(f"{name:<10}{self.layer_sops[name]:>12.4g}" + "".join(f"{row[c] * 1e6:>15.3f}" for c in cols)
                         + f"{sum(row.values()) * 1e6:>12.3f}{sum(self.latency_breakdown[name].values()) * 1e6:>12.2f}")
        by = self.energy_by_component
        lines.append(f"{'total':<10}{self.sops:>12.4g}" + "".join(f"{by[c] * 1e6:>15.3f}" for c in cols)
                     + f"{self.energy_j * 1e6:>12.3f}{self.latency_s * 1e6:>12.2f}")
        split = ", ".join(f"{k} {v / self.energy_j:.1%}" if self.energy_j else k for k, v in self.energy_split.items())
        lines.append(f"energy {self.energy_j * 1e6:.2f} uJ ({split}); {self.pj_per_sop:.3f} pJ/SOP; "
                     f"latency {self.latency_s * 1e3:.3f} ms; area {self.area_mm2:.3f} mm^2 ("
                     + ", ".join(f"{k} {v:.3f}" for k, v in self.area_breakdown.items()) + ")")
        return "\n".join(lines)


def estimate(arch: Arch, workload: Workload) -> Report:
    """Price one inference of ``workload`` on ``arch`` (the vectorized model at size-1 arrays)."""
    table = layer_table(workload)
    out = evaluate(arch_fields(arch), table, ert.calibration(), exact=True, detail=True)
    reasons = [reason for reason, flag in out["checks"].items() if flag]
    for reason, flags in out["layer_checks"].items():
        bad = [name for name, flag in zip(table.names, np.broadcast_to(flags, (len(table.names),))) if flag]
        if bad:
            reasons.append(f"{reason} ({', '.join(bad)})")
    energy, latency = out["energy"], out["latency"]
    return Report(
        arch=arch, workload=workload.name, feasible=not reasons, reasons=tuple(reasons),
        energy_j=float(energy.sum()), latency_s=float(latency.sum()), area_mm2=float(out["area"].sum()),
        sops=float(out["sops"].sum()), layers=table.names,
        energy_breakdown={n: dict(zip(ENERGY_COMPONENTS, map(float, energy[i]))) for i, n in enumerate(table.names)},
        latency_breakdown={n: dict(zip(LATENCY_COMPONENTS, map(float, latency[i])))
                           for i, n in enumerate(table.names)},
        area_breakdown=dict(zip(AREA_COMPONENTS, map(float, out["area"]))),
        layer_sops={n: float(s) for n, s in zip(table.names, out["sops"])})


def estimate_many(arch: Arch, workload: Workload, **field_values) -> dict[str, np.ndarray]:
    """Broadcast the given arch fields (arrays) over ``arch``; infeasible entries are NaN, ``feasible`` False."""
    table = layer_table(workload)
    out = evaluate(field_arrays(arch, field_values), table, ert.calibration())
    feasible = out["feasible"]
    shape = feasible.shape
    nan = np.where(feasible, 1.0, np.nan)
    by_component = [np.broadcast_to(e, shape + e.shape[-1:]).sum(axis=-1) * nan for e in out["energy"]]
    result = {"feasible": feasible, "energy_j": sum(by_component),
              "latency_s": sum(np.broadcast_to(v, shape + v.shape[-1:]).sum(axis=-1) for v in out["latency"]) * nan,
              "area_mm2": np.broadcast_to(sum(out["area"]), shape) * nan, "sops": out["sops"].sum(axis=-1) * nan}
    result["pj_per_sop"] = result["energy_j"] / result["sops"] * 1e12
    result.update({f"energy_{name}_j": e for name, e in zip(ENERGY_COMPONENTS, by_component)})
    return result
