"""SRAM macros at 32 nm as CACTI 7 prices them, and a register-file price below CACTI's smallest array.

``sram(kib, width_bits, ports, cell)`` -> ``(read_pj, write_pj, leak_w, area_mm2, cycle_ns)``: one bank of
``kib`` KiB read or written ``width_bits`` at a time through ``ports`` (1 or 2) read-write ports, with ``cell``
("lstp" or "hp") devices, at 32 nm as CACTI gives them (no scaling to another node or supply). ``kib`` and
``width_bits`` may be numpy arrays (they broadcast); ``kib <= 0`` (no array) prices zero.

The table is ``sram_cacti7_32nm.csv`` (``python -m hwmodel.memories.generate``; options in its header and in
``sram_cacti7_32nm.yaml``). Between its points the price is interpolated log-log: a power law in the capacity
between two generated capacities and a power law in the width between two generated widths (exactly the CSV
row at a generated point). Beyond 4 MiB, or outside 8..128 bits, the end segments' power laws extrapolate; a
width whose grid neighbour lies under CACTI's floor at that capacity (48 bits at 192 B: 64-bit words need
256 B) uses that neighbour's power law extended down from its two smallest arrays.

Below CACTI's smallest array (fewer than ``MIN_ROWS`` words, or fewer than ``MIN_BYTES`` bytes: CACTI finds no
organization there, or refuses the size) the array is priced as a register file of flip-flops: see ``REG_*``.
``python -m hwmodel.memories`` prints a few headline numbers.
"""

from __future__ import annotations

import bisect
import csv
import functools
import math
from importlib import resources

import numpy as np

TABLE = "sram_cacti7_32nm.csv"
TABLE_NODE_NM = 32.0
CELLS = ("lstp", "hp")
PORTS = (1, 2)
QUANTITIES = ("read_pj", "write_pj", "leak_w", "area_mm2", "cycle_ns")

# CACTI's floor. An array has at least 2 subarrays along its bitlines (Ndbl >= 2) of at least 16 rows each
# (MINSUBARRAYROWS, const.h: the row predecoder is at least two 2-4 decoders), so with one word per row it
# needs >= 32 words; and CACTI refuses capacities under 64 bytes ("Cache size must >=64").
MIN_ROWS = 32
MIN_BYTES = 64

# Register file (below the floor): an array of flip-flops, each access reading or writing width_bits registers.
# Aladdin (Shao et al., ISCA 2014), commercial 40 nm library characterized at a 1 ns clock, per bit of register:
# harvard-acc/ALADDIN common/power_func.h, REG_1ns_dynamic_energy, REG_1ns_leakage_power, REG_1ns_area
# (the same source as hwmodel.ert.REG_PJ_PER_BIT).
REG_NODE_NM = 40.0
REG_PJ_PER_BIT_40NM = 8.999495e-3    # pJ per bit read or written (Aladdin REG_1ns_dynamic_energy)
REG_LEAK_MW_PER_BIT_40NM = 7.395312e-5  # mW per stored bit (Aladdin REG_1ns_leakage_power)
REG_UM2_PER_BIT_40NM = 5.981433      # um^2 per stored bit (Aladdin REG_1ns_area)
# 40 -> 32 nm: energy and leakage as node**1.5, area as node**2 (hwmodel.ert.ENERGY_EXPONENT / AREA_EXPONENT,
# fitted to Stillmaker & Baas' scaling factors).
ENERGY_EXPONENT = 1.5
AREA_EXPONENT = 2.0
REG_PJ_PER_BIT = REG_PJ_PER_BIT_40NM * (TABLE_NODE_NM / REG_NODE_NM) ** ENERGY_EXPONENT
REG_LEAK_W_PER_BIT = 1e-3 * REG_LEAK_MW_PER_BIT_40NM * (TABLE_NODE_NM / REG_NODE_NM) ** ENERGY_EXPONENT
REG_MM2_PER_BIT = 1e-6 * REG_UM2_PER_BIT_40NM * (TABLE_NODE_NM / REG_NODE_NM) ** AREA_EXPONENT
# Aladdin's general-purpose flops leak like CACTI's itrs-hp devices (53 nW per bit at 32 nm, against 53 nW per
# bit of a 256 B, 64-bit hp array at the floor). ASSUMPTION: an lstp register file is built from the same
# low-standby-power devices as the lstp SRAM, so it leaks less by CACTI's own lstp/hp ratio: the median over the
# table's macros (``lstp_leak_factor()``, 1/1460; the ratio spans 1/1710..1/1240). Read/write energy and area
# do not depend on the cell type or the port count (a flip-flop array has one write path and a read
# multiplexer per port). Cycle time: ASSUMPTION, the cycle of the smallest CACTI array of the same width, ports
# and cells (a smaller flip-flop array is no slower).


def _geo(v0, v1, t):
    """Geometric interpolation v0 * (v1/v0)**t, exactly v0 at t == 0 and v1 at t == 1."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mid = v0 * (v1 / v0) ** t
    return np.where(t == 0, v0, np.where(t == 1, v1, mid))


def _fill_column(lx_known, lv_known, lx_all):
    """log values on every knot of a column from its known ones: linear inside, end slopes outside."""
    out = np.interp(lx_all, lx_known, lv_known)
    lo, hi = lx_all < lx_known[0], lx_all > lx_known[-1]
    out[lo] = lv_known[0] + (lv_known[1] - lv_known[0]) / (lx_known[1] - lx_known[0]) * (lx_all[lo] - lx_known[0])
    out[hi] = lv_known[-1] + (lv_known[-1] - lv_known[-2]) / (lx_known[-1] - lx_known[-2]) * (lx_all[hi] - lx_known[-1])
    return out


@functools.cache
def table() -> tuple[dict[str, str], ...]:
    """The CSV's rows (strings), read once."""
    text = resources.files(__name__).joinpath(TABLE).read_text()
    return tuple(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#")))


@functools.cache
def _grids():
    """Per (cell, ports): log2-width knots, log2-KiB knots, and a (5, widths, capacities) array of the
    quantities; a point CACTI refused (under its floor) is filled along its width's column by the neighbouring
    power law, for the interpolation of the widths between."""
    rows = table()
    lw = np.log2(sorted({int(r["width_bits"]) for r in rows})).astype(float)
    lk = np.log2(np.array(sorted({int(r["size_bytes"]) for r in rows})) / 1024.0)
    grids = {}
    for cell in CELLS:
        for ports in PORTS:
            g = np.full((len(QUANTITIES), len(lw), len(lk)), np.nan)
            for r in rows:
                if r["cell"] != cell or int(r["ports"]) != ports:
                    continue
                i = int(np.searchsorted(lw, np.log2(int(r["width_bits"]))))
                j = int(np.searchsorted(lk, np.log2(int(r["size_bytes"]) / 1024.0)))
                g[:, i, j] = (float(r["read_pj"]), float(r["write_pj"]),
                              1e-3 * (float(r["subthreshold_leak_mw"]) + float(r["gate_leak_mw"])),
                              float(r["area_mm2"]), float(r["cycle_ns"]))
            for q in range(len(QUANTITIES)):
                for i in range(len(lw)):
                    known = ~np.isnan(g[q, i])
                    g[q, i, ~known] = np.exp2(_fill_column(lk[known], np.log2(g[q, i, known]), lk[~known]))
            grids[(cell, ports)] = g
    return lw, lk, grids


@functools.cache
def lstp_leak_factor() -> float:
    """Median over the table's macros of an lstp macro's leakage over the same hp macro's (about 1/1460)."""
    leak = {(r["cell"], r["ports"], r["width_bits"], r["size_bytes"]):
            float(r["subthreshold_leak_mw"]) + float(r["gate_leak_mw"]) for r in table()}
    return float(np.median([v / leak[("hp",) + k[1:]] for k, v in leak.items() if k[0] == "lstp"]))


def _locate(knots, x):
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    return i, (x - knots[i]) / (knots[i + 1] - knots[i])


def min_cacti_kib(width_bits):
    """The smallest capacity CACTI prices at this width (KiB): max(MIN_ROWS words, MIN_BYTES)."""
    return np.maximum(MIN_ROWS * np.asarray(width_bits, dtype=float) / 8.0, MIN_BYTES) / 1024.0


def sram(kib, width_bits, ports: int = 1, cell: str = "lstp"):
    """(read_pj, write_pj, leak_w, area_mm2, cycle_ns) of one bank at 32 nm, shaped like kib and width_bits
    broadcast; a register-file price below ``min_cacti_kib(width_bits)``."""
    if cell not in CELLS or ports not in PORTS:
        raise ValueError(f"cell must be one of {CELLS} and ports one of {PORTS}, not {cell!r}, {ports!r}")
    kib, width = np.broadcast_arrays(np.asarray(kib, dtype=float), np.asarray(width_bits, dtype=float))
    if kib.size == 1:   # one bank (a scalar estimate): the same interpolation in Python floats, ~20x faster
        return tuple(np.full(kib.shape, v) for v in _sram_one(float(kib.flat[0]), float(width.flat[0]), ports, cell))
    lw_knots, lk_knots, grids = _grids()
    g = grids[(cell, ports)]
    floor = min_cacti_kib(width)
    small = kib < floor
    bits = kib * 8192.0
    # CACTI's price, at the floor for the arrays below it (their cycle time is taken from there)
    with np.errstate(divide="ignore"):
        lk = np.log2(np.maximum(kib, floor))
        lw = np.log2(width)
    i, tw = _locate(lw_knots, lw)
    j, tk = _locate(lk_knots, lk)
    lo = _geo(g[:, i, j], g[:, i, j + 1], tk)
    hi = _geo(g[:, i + 1, j], g[:, i + 1, j + 1], tk)
    read, write, leak, area, cycle = _geo(lo, hi, tw)
    if small.any():
        reg_leak = REG_LEAK_W_PER_BIT * (lstp_leak_factor() if cell == "lstp" else 1.0)
        read = np.where(small, width * REG_PJ_PER_BIT, read)
        write = np.where(small, width * REG_PJ_PER_BIT, write)
        leak = np.where(small, bits * reg_leak, leak)
        area = np.where(small, bits * REG_MM2_PER_BIT, area)
    empty = kib <= 0
    if empty.any():
        read, write, leak, area, cycle = (np.where(empty, 0.0, x) for x in (read, write, leak, area, cycle))
    return read, write, leak, area, cycle


@functools.cache
def _grid_lists(cell: str, ports: int):
    """``_grids``' knots and values as Python lists, for ``_sram_one``."""
    lw_knots, lk_knots, grids = _grids()
    return lw_knots.tolist(), lk_knots.tolist(), grids[(cell, ports)].tolist()


def _locate_one(knots: list[float], x: float) -> tuple[int, float]:
    i = min(max(bisect.bisect_right(knots, x) - 1, 0), len(knots) - 2)
    return i, (x - knots[i]) / (knots[i + 1] - knots[i])


def _geo_one(v0: float, v1: float, t: float) -> float:
    return v0 if t == 0 else v1 if t == 1 else v0 * (v1 / v0) ** t


def _sram_one(kib: float, width: float, ports: int, cell: str) -> tuple[float, ...]:
    """``sram`` for one bank, in Python floats: the same knots, the same formulas."""
    if kib <= 0:
        return (0.0,) * len(QUANTITIES)
    lw_knots, lk_knots, g = _grid_lists(cell, ports)
    floor = max(MIN_ROWS * width / 8.0, MIN_BYTES) / 1024.0
    i, tw = _locate_one(lw_knots, math.log2(width))
    j, tk = _locate_one(lk_knots, math.log2(max(kib, floor)))
    read, write, leak, area, cycle = (_geo_one(_geo_one(q[i][j], q[i][j + 1], tk), _geo_one(q[i + 1][j], q[i + 1][j + 1], tk), tw)
                                      for q in g)
    if kib < floor:   # a register file
        bits = kib * 8192.0
        reg_leak = REG_LEAK_W_PER_BIT * (lstp_leak_factor() if cell == "lstp" else 1.0)
        read = write = width * REG_PJ_PER_BIT
        leak, area = bits * reg_leak, bits * REG_MM2_PER_BIT
    return read, write, leak, area, cycle
