"""The calibration fit, pure: scale factors so that a processor's *chip* energy hits a published figure.

The chip energy is linear in each scale (memory energy x ``sram_scale``; datapath, fire and pool energy x
``logic_scale``; wires, clock, leakage do not depend on them), so E = A * sram_scale + B * logic_scale + C
exactly. Among the pairs that hit the target, the fit takes the one closest to the uncalibrated table in log
space (least total relative change), each scale inside its literature range. DRAM energy is off chip and
never part of the fit (docs/hwmodel.md: what the paper's 486.7 uJ covers). The command is in cli.py.
"""

from __future__ import annotations

import math

import numpy as np

from hwmodel import costs
from hwmodel.arch import Arch
from hwmodel.errors import ConfigError
from hwmodel.model import arch_fields, evaluate, layer_table
from hwmodel.workload import Workload

PAPER_UJ = 486.7   # Lew, Lee, Park, DAC 2022: VGG-16 / CIFAR-10 per inference, on the processor (chip)
RANGES = {"sram_scale": (0.5, 4.0),    # CACTI settings spread ~4x upward (Horowitz, ZigZag); 2x down
          "logic_scale": (0.5, 2.0)}   # Horowitz vs gate-level 28 nm: a +-2x band
SCALED = {"memory": "sram_scale", "compute": "logic_scale"}


def chip_parts(arch: Arch, wl: Workload, scales: dict[str, float] | None = None) -> dict[str, float]:
    """On-chip energy (uJ) by kind at the given scales (default 1.0: the uncalibrated table)."""
    out = evaluate(arch_fields(arch), layer_table(wl), scales or {"sram_scale": 1.0, "logic_scale": 1.0})
    by_term = {t.name: float(np.sum(e)) * 1e-6 for t, e in zip(costs.TERMS, out["energy_pj"])}
    return {kind: sum(by_term[t.name] for t in costs.TERMS if t.kind == kind) for kind in costs.KINDS}


def fit(arch: Arch, wl: Workload, target_uj: float = PAPER_UJ) -> dict[str, float]:
    """The scales that make ``arch``'s chip energy on ``wl`` equal ``target_uj``; ConfigError if the ranges
    cannot reach it."""
    parts = chip_parts(arch, wl)
    a, b = parts["memory"], parts["compute"]
    c = sum(v for kind, v in parts.items() if kind in costs.CHIP_KINDS and kind not in SCALED)
    lo_l, hi_l = RANGES["logic_scale"]
    lo_s, hi_s = RANGES["sram_scale"]
    logic = np.exp(np.linspace(math.log(lo_l), math.log(hi_l), 20001))
    sram = (target_uj - c - b * logic) / a
    ok = (sram >= lo_s) & (sram <= hi_s)
    if not ok.any():
        span = (a * lo_s + b * lo_l + c, a * hi_s + b * hi_l + c)
        raise ConfigError(f"calibrate: {target_uj} uJ is outside what the ranges allow here "
                          f"({span[0]:.1f}-{span[1]:.1f} uJ on chip); check the workload activity and the arch")
    cost = np.where(ok, np.log(np.where(ok, sram, 1.0)) ** 2 + np.log(logic) ** 2, np.inf)
    i = int(np.argmin(cost))
    return {"sram_scale": float(sram[i]), "logic_scale": float(logic[i])}
