"""Energy reference table (ERT): every constant at 28 nm with its source, SRAM fits, technology scaling.

Sources are the figures collected in docs/hwmodel.md (Horowitz ISSCC 2014; CACTI 7 runs at 32 nm with a
64-bit port, 1 RW port, dynamic-power optimized; Aladdin 40 nm; ISAAC 32 nm). Scale factors that the
calibration fits (``sram_scale``, ``logic_scale``) live in ``presets/calibration.yaml``.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import yaml

REFERENCE_NM = 28.0
# Energy and leakage scale as node**1.5: fitted to the Stillmaker & Baas factors 0.51 (45 -> 28 nm,
# exponent 1.43) and 0.78 (32 -> 28 nm, exponent 1.86). Area scales as node**2 (ideal shrink).
ENERGY_EXPONENT = 1.5
AREA_EXPONENT = 2.0
TECH_RANGE_NM = (7.0, 180.0)   # outside this the power law above is not credible

# --- arithmetic, pJ at 28 nm (Horowitz 2014, 45 nm column x 0.51) -------------------------------------
ADD_PJ_PER_BIT = 0.05 / 32          # 32-bit add 0.1 pJ @45 nm -> 0.05 pJ @28 nm, per bit of width
SHIFT_REL_ADD = 0.75                # a shift costs 0.5-1x an add of the same width (ISAAC); midpoint
REG_PJ_PER_BIT = 0.009 * (28 / 40) ** ENERGY_EXPONENT   # Aladdin 40 nm register read/write, per bit
CMP_PJ_PER_BIT = 0.029 / 32 * (28 / 40) ** ENERGY_EXPONENT  # Aladdin 40 nm 32-bit comparator, per bit
PIXEL_BITS = 8                       # first layer: 8-bit pixels, shifted by the log weight

# --- logic area and leakage (Aladdin 40 nm 32-bit adder: 278 um^2, 2.4 uW leakage) ---------------------
ADDER_UM2_PER_BIT = 278 / 32 * (28 / 40) ** AREA_EXPONENT
SHIFTER_UM2_PER_BIT = ADDER_UM2_PER_BIT * 0.75   # ISAAC shift-and-add: shifter about the adder's size
REG_UM2_PER_BIT = ADDER_UM2_PER_BIT * 0.5        # a DFF is about half a full-adder cell (NAND2 counts)
LOGIC_LEAK_UW_PER_BIT = 2.4 / 32 * (28 / 40) ** ENERGY_EXPONENT  # per adder bit; applied to PE datapath bits
OVERHEAD_AREA_FRAC = 0.15   # control, NoC, I/O as a fraction of PE + SRAM area (assumption, see docs)

# --- SRAM: CACTI 7, 32 nm, 64-bit port, dynamic-power optimized (docs/hwmodel.md) -----------------------
CACTI_KIB = np.array([2, 8, 32, 128, 512, 2048], dtype=float)
CACTI_READ_PJ = np.array([1.24, 2.91, 8.51, 14.4, 25.7, 50.9])          # per 64-bit access
CACTI_LEAK_MW = {"hp": np.array([1.46, 5.3, 19.7, 71.9, 288.0, 1140.0]),
                 "lstp": np.array([0.73e-3, 2.7e-3, 9.9e-3, 35.8e-3, 136e-3, 540e-3])}
CACTI_AREA_MM2 = np.array([0.0038, 0.013, 0.048, 0.217, 0.87, 3.16])
CACTI_WIDTH_BITS = 64
CACTI_TO_28NM = 0.8          # energy, "28 nm ~ 0.8x" of 32 nm (ZigZag uses 0.81 = VDD^2 ratio)
CACTI_AREA_TO_28NM = (28 / 32) ** AREA_EXPONENT
WRITE_REL_READ = 1.0         # SRAM write energy taken equal to read (CACTI gives them within ~10 %)
SRAM_CELLS = ("lstp", "hp")


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares a, b of y = a + b * x."""
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


# read energy per 64-bit access = a + b * sqrt(KiB); leakage and area linear in size.
SRAM_READ_FIT = _fit(np.sqrt(CACTI_KIB), CACTI_READ_PJ)
SRAM_LEAK_FIT = {cell: _fit(CACTI_KIB, mw) for cell, mw in CACTI_LEAK_MW.items()}
SRAM_AREA_FIT = _fit(CACTI_KIB, CACTI_AREA_MM2)


@functools.cache
def calibration() -> dict[str, float]:
    """The fitted scale factors (written by ``hwmodel calibrate --write``)."""
    text = resources.files("hwmodel").joinpath("presets/calibration.yaml").read_text()
    data = yaml.safe_load(text)
    return {"sram_scale": float(data["sram_scale"]), "logic_scale": float(data["logic_scale"])}


def tech_energy_scale(tech_nm):
    return (np.asarray(tech_nm, dtype=float) / REFERENCE_NM) ** ENERGY_EXPONENT


def tech_area_scale(tech_nm):
    return (np.asarray(tech_nm, dtype=float) / REFERENCE_NM) ** AREA_EXPONENT


def sram_pj_per_bit(kib):
    """Read (or write) energy per bit at 28 nm for an SRAM of ``kib`` KiB (before calibration scale)."""
    a, b = SRAM_READ_FIT
    return (a + b * np.sqrt(kib)) / CACTI_WIDTH_BITS * CACTI_TO_28NM


def sram_leak_w(kib, hp):
    """Leakage in W at 28 nm; ``hp`` selects high-performance cells (else low-standby-power)."""
    a_hp, b_hp = SRAM_LEAK_FIT["hp"]
    a_lp, b_lp = SRAM_LEAK_FIT["lstp"]
    mw = np.where(hp, a_hp + b_hp * kib, a_lp + b_lp * kib)
    return np.where(kib > 0, np.maximum(mw, 0.0), 0.0) * 1e-3 * CACTI_TO_28NM


def sram_area_mm2(kib):
    a, b = SRAM_AREA_FIT
    return np.where(kib > 0, np.maximum(a + b * kib, 0.0), 0.0) * CACTI_AREA_TO_28NM
