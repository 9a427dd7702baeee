"""``estimate`` (one config -> Report) and ``estimate_many`` (broadcast arrays of configs -> arrays)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hwmodel import costs, ert
from hwmodel.arch import Arch
from hwmodel.model import arch_fields, evaluate, field_arrays, layer_table, quantize
from hwmodel.units import human
from hwmodel.workload import Workload


@dataclasses.dataclass(frozen=True)
class Report:
    """Totals and per-layer x per-term breakdowns; every breakdown sums exactly to its total.

    ``energy_j`` is the system energy per inference: the chip's (``energy_chip_j``, every term whose kind is
    in costs.CHIP_KINDS) plus the off-chip DRAM's (``energy_dram_j``). ``latency_s`` is the time a batch of
    ``arch.batch`` images takes (an image's result waits for its batch); energies are per image.
    """

    arch: Arch
    workload: str
    feasible: bool
    reasons: tuple[str, ...]
    energy_j: float
    latency_s: float
    area_mm2: float
    sops: float
    layers: tuple[str, ...]
    energy_breakdown: dict[str, dict[str, float]]    # layer -> term -> J
    latency_breakdown: dict[str, dict[str, float]]   # layer -> part -> s
    area_breakdown: dict[str, float]                 # part -> mm^2
    layer_sops: dict[str, float]
    operating_point: dict[str, float]                # supply_v, accumulator_bits, vmem_banks, weight_banks
    activity: str = ""                               # whose spikes a built-in's firing is (and if it is borrowed)

    @property
    def energy_by_term(self) -> dict[str, float]:
        return {c: sum(row[c] for row in self.energy_breakdown.values()) for c in costs.NAMES}

    @property
    def energy_by_kind(self) -> dict[str, float]:
        by = self.energy_by_term
        return {kind: sum(by[t.name] for t in costs.TERMS if t.kind == kind) for kind in costs.KINDS}

    @property
    def energy_chip_j(self) -> float:
        by = self.energy_by_kind
        return sum(by[kind] for kind in costs.CHIP_KINDS)

    @property
    def energy_dram_j(self) -> float:
        return self.energy_by_kind["dram"]

    @property
    def energy_by_layer(self) -> dict[str, float]:
        return {name: sum(row.values()) for name, row in self.energy_breakdown.items()}

    @property
    def pj_per_sop(self) -> float:
        return self.energy_j / self.sops * 1e12 if self.sops else float("nan")

    @property
    def chip_pj_per_sop(self) -> float:
        return self.energy_chip_j / self.sops * 1e12 if self.sops else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; SI units, the unit in every key (docs/hwmodel.md, Report)."""
        return {"arch": self.arch.to_dict(), "workload": self.workload, "feasible": self.feasible,
                "reasons": list(self.reasons), "energy_j": self.energy_j, "energy_chip_j": self.energy_chip_j,
                "energy_dram_j": self.energy_dram_j, "latency_s": self.latency_s, "area_mm2": self.area_mm2,
                "sops": self.sops, "pj_per_sop": self.pj_per_sop if self.sops else None,
                "operating_point": self.operating_point, "activity": self.activity,
                "energy_by_kind_j": self.energy_by_kind,
                "energy_by_term_j": self.energy_by_term,
                "breakdowns": {"energy_j": self.energy_breakdown, "latency_s": self.latency_breakdown,
                               "area_mm2": self.area_breakdown, "sops": self.layer_sops}}

    def table(self) -> str:
        kinds = costs.KINDS
        w = max(10, 1 + max(map(len, self.layers), default=0))   # long names (block1_conv1) keep the columns
        head = f"{'layer':<{w}}{'SOPs':>10}" + "".join(f"{k:>13}" for k in kinds) + f"{'total':>12}{'latency':>11}"
        lines = [f"arch {self.arch.name} | workload {self.workload} | "
                 + (f"activity: {self.activity} | " if self.activity else "")
                 + ("feasible" if self.feasible else "INFEASIBLE: " + "; ".join(self.reasons)), head]
        by_kind_layer = {name: {k: sum(row[t.name] for t in costs.TERMS if t.kind == k) for k in kinds}
                         for name, row in self.energy_breakdown.items()}
        for name in self.layers:
            row = by_kind_layer[name]
            lines.append(f"{name:<{w}}{human(self.layer_sops[name], ''):>10}"
                         + "".join(f"{human(row[k], 'J'):>13}" for k in kinds)
                         + f"{human(sum(row.values()), 'J'):>12}{human(sum(self.latency_breakdown[name].values()), 's'):>11}")
        by = self.energy_by_kind
        lines.append(f"{'total':<{w}}{human(self.sops, ''):>10}" + "".join(f"{human(by[k], 'J'):>13}" for k in kinds)
                     + f"{human(self.energy_j, 'J'):>12}{human(self.latency_s, 's'):>11}")
        op = self.operating_point
        lines.append(f"energy {human(self.energy_j, 'J')} = chip {human(self.energy_chip_j, 'J')} + DRAM "
                     f"{human(self.energy_dram_j, 'J')}; chip {self.chip_pj_per_sop:.3g} pJ/SOP; latency "
                     f"{human(self.latency_s, 's')} (batch {self.arch.batch}); area {self.area_mm2:.3g} mm^2; "
                     f"{op['supply_v']:.3g} V, {op['accumulator_bits']:.0f}-bit Vmem, {op['vmem_banks']:.0f} Vmem "
                     f"banks, {op['weight_banks']:.0f} weight banks")
        return "\n".join(lines)


def estimate(arch: Arch, workload: Workload, calibration: dict[str, float] | None = None) -> Report:
    """Price one inference of ``workload`` on ``arch`` (the vectorized model at size-1 arrays). ``calibration``:
    the scale factors (default: the fitted ones, presets/calibration.yaml; ``ert.UNCALIBRATED``: the table's own)."""
    table = layer_table(workload)
    out = evaluate(arch_fields(arch), table, calibration or ert.calibration(), exact=True, detail=True)
    reasons = [reason for reason, flag in out["checks"].items() if flag]
    for reason, flags in out["layer_checks"].items():
        bad = [name for name, flag in zip(table.names, np.broadcast_to(flags, (len(table.names),))) if flag]
        if bad:
            reasons.append(f"{reason} ({', '.join(bad)})")
    energy, latency = quantize(out["energy_pj"] * 1e-12), out["latency"]
    op = {"supply_v": float(out["volts"]), "accumulator_bits": float(out["acc_bits"]),
          "vmem_banks": float(out["banks_vmem"]), "weight_banks": float(out["banks_weight"])}
    return Report(
        arch=arch, workload=workload.name, feasible=not reasons, reasons=tuple(reasons),
        energy_j=float(energy.sum()), latency_s=float(latency.sum()), area_mm2=float(out["area"].sum()),
        sops=float(out["sops"].sum()), layers=table.names,
        energy_breakdown={n: dict(zip(costs.NAMES, row)) for n, row in zip(table.names, energy.tolist())},
        latency_breakdown={n: dict(zip(costs.LATENCY_PARTS, row)) for n, row in zip(table.names, latency.tolist())},
        area_breakdown=dict(zip(costs.AREA_PARTS, out["area"].tolist())),
        layer_sops=dict(zip(table.names, out["sops"].tolist())), operating_point=op,
        activity=str(workload.meta.get("activity", "")))


def estimate_many(arch: Arch, workload: Workload, **field_values) -> dict[str, np.ndarray]:
    """Broadcast the given arch fields (arrays) over ``arch``; infeasible entries are NaN, ``feasible`` False.

    Keys: feasible, energy_j (chip + DRAM), energy_chip_j, energy_dram_j, energy_<kind>_j, latency_s,
    area_mm2, sops, pj_per_sop."""
    table = layer_table(workload)
    out = evaluate(field_arrays(arch, field_values), table, ert.calibration())
    feasible = out["feasible"]
    shape = feasible.shape
    nan = np.where(feasible, 1.0, np.nan)
    by_kind = {kind: _layer_sum([e for t, e in zip(costs.TERMS, out["energy_pj"]) if t.kind == kind], shape) * (nan * 1e-12)
               for kind in costs.KINDS}
    chip = sum(by_kind[kind] for kind in costs.CHIP_KINDS)
    result = {"feasible": feasible, "energy_j": chip + by_kind["dram"], "energy_chip_j": chip,
              "energy_dram_j": by_kind["dram"], "latency_s": _layer_sum(out["latency"], shape) * nan,
              "area_mm2": np.broadcast_to(sum(out["area"]), shape) * nan,
              "sops": _layer_sum([out["sops"]], shape) * nan}
    result["pj_per_sop"] = result["energy_j"] / result["sops"] * 1e12
    result.update({f"energy_{kind}_j": e for kind, e in by_kind.items() if kind != "dram"})
    return result


def infeasible_reasons(arch: Arch, workload: Workload, **field_values) -> np.ndarray:
    """Per config of ``estimate_many``'s grid, why it is infeasible ("" where it is feasible): the checks of
    ``estimate``, vectorized (a second evaluation: kept out of ``estimate_many``'s hot path)."""
    out = evaluate(field_arrays(arch, field_values), layer_table(workload), ert.calibration(), detail=True)
    shape = out["feasible"].shape
    flags = dict(out["checks"])
    flags.update({reason: np.asarray(f).any(axis=-1) for reason, f in out["layer_checks"].items()})
    reasons = np.full(shape, "", dtype=object)
    for reason, flag in flags.items():
        hit = np.broadcast_to(flag, shape)
        reasons[hit] = np.where(reasons[hit] == "", reason, reasons[hit] + "; " + reason)
    return reasons


def _layer_sum(arrays: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The sum over the layer axis of arrays broadcast to ``shape`` + (layers,), without broadcasting them:
    a config-only array (one layer entry) counts once per layer, a workload-only one is summed once."""
    total = np.zeros(shape)
    layers = max(a.shape[-1] for a in arrays if np.ndim(a))
    grouped: dict[tuple, np.ndarray] = {}
    for a in arrays:   # add arrays of one shape first: one reduction per shape, not per array
        a = np.asarray(a)
        grouped[a.shape] = grouped[a.shape] + a if a.shape in grouped else a
    for a in grouped.values():
        total = total + (a[..., 0] * layers if a.shape[-1] == 1 else a.sum(axis=-1))
    return total
