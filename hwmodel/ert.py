"""Energy reference table (ERT): every constant with its source, at 28 nm and 0.9 V unless stated.

Sources are the figures docs/hwmodel.md lists (its "Sources" section): Horowitz,
ISSCC 2014 (45 nm, 0.9 V, x0.51 to 28 nm per Stillmaker & Baas); CACTI 7 runs at 32 nm (64-bit port, one RW
port, dynamic-power optimized, x0.8 to 28 nm); Aladdin (40 nm); ISAAC (32 nm); ZigZag's 28 nm gate figures.
A constant marked ASSUMPTION has no measured source: docs/hwmodel.md says why its value, and
`hwmodel sensitivity` shows what it moves. The two scale factors the calibration fits live in
presets/calibration.yaml.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import yaml

from hwmodel import memories, spike_code

REFERENCE_NM = 28.0
# Energy and leakage scale as node**1.5: fitted to the Stillmaker & Baas factors 0.51 (45 -> 28 nm,
# exponent 1.43) and 0.78 (32 -> 28 nm, exponent 1.86). Area scales as node**2 (ideal shrink).
ENERGY_EXPONENT = 1.5
AREA_EXPONENT = 2.0

# --- arithmetic, pJ at 28 nm, 0.9 V (Horowitz 2014, 45 nm column x 0.51) ---------------------------------
ADD_PJ_PER_BIT = 0.05 / 32          # 32-bit add 0.1 pJ @45 nm -> 0.05 pJ, per bit of width
MUL_PJ_PER_BITPRODUCT = 0.10 / 64   # 8-bit multiply 0.2 pJ @45 nm -> 0.10 pJ over 8x8 bit products
#                                     (the 32-bit multiply, 1.6 pJ / 1024, gives the same 1.6 fJ)
SHIFT_REL_ADD = 0.75                # a shift costs 0.5-1x an add of the same width (ISAAC); midpoint
REG_PJ_PER_BIT = 0.009 * (28 / 40) ** ENERGY_EXPONENT      # Aladdin 40 nm register read/write, per bit
CMP_PJ_PER_BIT = 0.029 / 32 * (28 / 40) ** ENERGY_EXPONENT  # Aladdin 40 nm 32-bit comparator, per bit
CLOCK_PJ_PER_FLOP = 1.7e-3          # per clocked flip-flop per cycle: ZigZag TECH_PARAM_28NM DFF ~1.7 fJ/bit
# Control outside the PEs: the registers at every SRAM port (address, data in, data out) are clocked on every
# cycle of a layer (ASSUMPTION: no clock gating of idle ports, as in ODIN and most small SNN cores); each
# costs CLOCK_PJ_PER_FLOP. Their count follows from the banks and widths the model already derives.
PORT_REGS_PER_DATA_BIT = 2          # one data-in and one data-out register per bit of the port width
PIXEL_BITS = 8                      # first layer: 8-bit pixels
MANTISSA_BITS = spike_code.MANTISSA_BITS  # a level that is not a power of two: its fixed-point mantissa
# A per-channel threshold register (dse train.fold: thresholds): a mantissa of MANTISSA_BITS + 1 significant bits
# (dse.network.quant.threshold_scales) and a 5-bit exponent (scales 2^-16..2^15 cover sigma / |gamma| of
# trained networks)
THRESHOLD_REGISTER_BITS = MANTISSA_BITS + 1 + 5

# --- logic area and leakage (Aladdin 40 nm 32-bit adder: 278 um^2, 2.4 uW leakage) ---------------------
ADDER_UM2_PER_BIT = 278 / 32 * (28 / 40) ** AREA_EXPONENT
SHIFTER_UM2_PER_BIT = ADDER_UM2_PER_BIT * 0.75   # ISAAC shift-and-add: shifter about the adder's size
REG_UM2_PER_BIT = ADDER_UM2_PER_BIT * 0.5        # a DFF is about half a full-adder cell (NAND2 counts)
LOGIC_LEAK_UW_PER_BIT = 2.4 / 32 * (28 / 40) ** ENERGY_EXPONENT  # per datapath bit (Aladdin adder)
OVERHEAD_AREA_FRAC = 0.15   # ASSUMPTION: control and I/O outside PEs and SRAMs (Eyeriss-class chips: 10-20 %)

# --- on-chip wires ------------------------------------------------------------------------------------------
# Full-swing repeated wire: 310 fJ/bit/mm at 130 nm, 1.2 V (survey "On-chip interconnect: energy and
# reliability", ISRN Electronics 2012, Table 1). Wire capacitance per mm barely changes with the node, so
# only V^2 scales it: x (0.9/1.2)^2.
# Random data toggles a wire on half the transfers: x0.5 (the usual switching-activity assumption).
WIRE_PJ_PER_BIT_MM = 0.310 * (0.9 / 1.2) ** 2 * 0.5

# --- SRAM: CACTI 7 itself, 32 nm (hwmodel.memories: the generated table, its generator and configs) -------
# Each bank is priced at its port width: read and write energy apart, leakage, area; below CACTI's smallest
# array, a register file (Aladdin's flip-flop figures). docs/memories.md: options, reach, how to rebuild.
CACTI_WIDTH_BITS = 64        # the weight SRAM's port (a streamed or reloaded weight word)
CACTI_TO_28NM = 0.8          # energy and leakage, "28 nm ~ 0.8x" of 32 nm (ZigZag uses 0.81 = VDD^2 ratio)
CACTI_AREA_TO_28NM = (28 / 32) ** AREA_EXPONENT
# ASSUMPTION: an access narrower than the port costs a fixed part (decoder, word line, control) plus its share
# of the bit lines; CACTI's breakdowns put the decoder at 20-40 % of a small array's read energy.
SRAM_FIXED_FRAC = 0.3

# --- off-chip memory: pJ/bit (interface included) and peak bandwidth --------------------------------------
DRAM = {  # name: (pJ/bit, Gbit/s, source)
    "lpddr4": (8.0, 102.4, "notes: LPDDR4 ~8 pJ/bit (Accelergy CACTI plug-in tables); x32 at 3200 MT/s"),
    "lpddr5": (6.4, 204.8, "LPDDR4's 8 pJ/bit x0.8 (vendors claim >20 % better energy/bit); x32 at 6400 MT/s"),
    "hbm2": (3.9, 2048.0, "notes: HBM2 3.9-6.25 pJ/bit (low end); one stack, 1024 bits at 2 Gb/s"),
    "none": (0.0, 0.0, "no off-chip memory: every weight must stay on chip"),
}

# --- voltage and frequency ---------------------------------------------------------------------------------
# Alpha-power law (Sakurai & Newton 1990): f_max ~ (V - Vth)^alpha / V. Every energy above is quoted at
# V_NOM; dynamic energy scales as (V/V_NOM)^2, leakage power about as V/V_NOM (DIBL ignored).
V_NOM = 0.9                  # Horowitz's 45 nm figures and ZigZag's 28 nm set are at 0.9 V
V_MIN = 0.6                  # ASSUMPTION: 6T SRAM retention/write margin floor in 28 nm bulk (0.6-0.7 V)
V_MAX = 1.0                  # 28 nm overdrive limit
# A chip may publish a supply below V_MIN (ODIN: 0.55 V in 28 nm FDSOI): the V-f relation is tabulated down to
# V_FLOOR so that such a supply is priced and checked against its clock.
V_FLOOR = 0.45               # ASSUMPTION: ~Vth + 0.1 V, where the alpha-power law stops describing near-threshold delay
VTH, ALPHA = 0.35, 1.3       # ASSUMPTION: 28 nm HPM-class threshold; alpha 1.2-1.4 for short-channel devices
# ASSUMPTION: clock each part reaches at V_NOM. Logic: a 16-bit add-and-shift stage in 28 nm (~1 GHz);
# SRAM: hp cells ~1 GHz, lstp (high-Vt) cells ~2.5x slower access, the CACTI hp/lstp access-time ratio.
F_NOM_MHZ = {"logic": 1000.0, "hp": 1000.0, "lstp": 400.0}


def _speed(v):
    return (v - VTH) ** ALPHA / v


_V_TABLE = np.linspace(V_FLOOR, V_MAX, 551)
_SPEED_TABLE = _speed(_V_TABLE) / _speed(V_NOM)   # f_max(V) / f_max(V_NOM), increasing in V


def needed_v(clock_mhz, hp):
    """The lowest supply (>= V_FLOOR) at which logic and the SRAM cells reach ``clock_mhz``; NaN above what
    V_MAX reaches (an infeasible clock). A derived operating point takes max(this, V_MIN)."""
    sram = np.where(hp, F_NOM_MHZ["hp"], F_NOM_MHZ["lstp"])
    need = np.maximum(clock_mhz / F_NOM_MHZ["logic"], clock_mhz / sram)
    return np.interp(need, _SPEED_TABLE, _V_TABLE, left=V_FLOOR, right=np.nan)


UNCALIBRATED = {"sram_scale": 1.0, "logic_scale": 1.0}   # the table's own constants, nothing fitted


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


def sram_macro(bank_kib, width_bits, hp):
    """One bank of ``bank_kib`` with a ``width_bits`` port at 28 nm, 0.9 V: (pJ per read, pJ per write, leakage W,
    area mm^2), each shaped like the broadcast inputs; ``hp``: hp cells where true, else lstp."""
    lstp = memories.sram(bank_kib, width_bits, 1, "lstp")[:4]
    if np.any(hp):
        hps = memories.sram(bank_kib, width_bits, 1, "hp")[:4]
        lstp = tuple(np.where(hp, h, low) for h, low in zip(hps, lstp))
    read, write, leak, area = lstp
    return read * CACTI_TO_28NM, write * CACTI_TO_28NM, leak * CACTI_TO_28NM, area * CACTI_AREA_TO_28NM


def width_factor(width_bits, port_bits=CACTI_WIDTH_BITS):
    """An access of ``width_bits`` relative to a full-port one: a fixed part plus a per-bit part."""
    return SRAM_FIXED_FRAC + (1.0 - SRAM_FIXED_FRAC) * width_bits / port_bits
