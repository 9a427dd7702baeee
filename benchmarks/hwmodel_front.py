"""The energy/area/latency front of the processors of search_spaces/paper_cifar10.yaml on the paper preset.

Run: ``python benchmarks/hwmodel_front.py`` (writes results/hwmodel/front_paper_cifar10.{csv,txt}). Weight bits
and T are held at the paper's (they also change the network); energy is the system energy (chip + DRAM).
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

import hwmodel

SPACE = {"pe_rows": [8, 16, 24, 32], "pe_cols": [8, 16, 24, 32], "weight_sram_kib": [64, 128, 256, 512, 1024],
         "vmem_sram_kib": [64, 128, 256], "spike_sram_kib": [32, 64, 128],
         "clock_mhz": [100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0]}


def pareto(points: np.ndarray) -> np.ndarray:
    keep = np.ones(len(points), dtype=bool)
    for i, p in enumerate(points):
        if keep[i]:
            dominated = np.all(points >= p, axis=1) & np.any(points > p, axis=1)
            keep &= ~dominated
    return keep


def main() -> None:
    combos = list(itertools.product(*SPACE.values()))
    cols = {n: np.array([c[i] for c in combos]) for i, n in enumerate(SPACE)}
    res = hwmodel.estimate_many(hwmodel.load_arch("paper"), hwmodel.load_workload("vgg16-cifar10"), **cols)
    ok = res["feasible"]
    objs = np.stack([res["energy_j"], res["area_mm2"], res["latency_s"]], axis=1)
    front = np.zeros(len(combos), dtype=bool)
    idx = np.flatnonzero(ok)
    front[idx] = pareto(objs[idx])
    out = Path("results/hwmodel")
    with open(out / "front_paper_cifar10.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*SPACE, "energy_j", "energy_chip_j", "energy_dram_j", "area_mm2", "latency_s"])
        for i in np.flatnonzero(front):
            w.writerow([*combos[i], *(f"{res[k][i]:.6g}" for k in ("energy_j", "energy_chip_j", "energy_dram_j",
                                                                    "area_mm2", "latency_s"))])
    lines = [f"{len(combos)} processors of search_spaces/paper_cifar10.yaml (weight_bits 5, T 8), {ok.sum()} feasible; "
             f"energy (chip + DRAM) / area / latency front: {front.sum()} points"]
    for name in SPACE:
        lines.append(f"  {name}: values on the front {sorted(set(cols[name][front].tolist()))}")
    text = "\n".join(lines)
    (out / "front_paper_cifar10.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
