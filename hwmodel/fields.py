"""The processor's fields, declared once: type, unit, bounds, meaning and the ``paper`` value's reason.

Everything else is generated from ``FIELDS``: the frozen ``Arch`` dataclass (arch.py), the validation of
one value (``check``) and of an array of values (``check_array``, for ``estimate_many``), the parsing of
``hwmodel sweep --set``, and the table in docs/hwmodel.md (``markdown_table``; a test keeps it in sync).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hwmodel import spike_code
from hwmodel.errors import ConfigError, brief, did_you_mean

MAX_VALUE = 1e9  # far beyond any processor, and it keeps every product in the model finite in float64
MIN_RATE = 1e-6  # a rate that divides (the clock): a 1e-300 MHz clock would make the latency overflow


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: str                 # "int", "float" or "choice"
    unit: str
    doc: str
    low: float = 0.0          # inclusive; a value below is malformed
    high: float = MAX_VALUE
    positive: bool = False    # a rate that divides: at least MIN_RATE
    choices: tuple[str, ...] = ()

    def check(self, value: Any, where: str = "arch") -> Any:
        label = f"{where}.{self.name}"
        if self.kind == "choice":
            if value not in self.choices:
                raise ConfigError(f"{label}: must be one of {', '.join(self.choices)}, got {brief(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label}: must be a number, got {type(value).__name__} {brief(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{label}: must be a finite number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{label}: must be >= 0, got {brief(value)}")
        if value > self.high:  # compared before any float(): integers beyond float range end here too
            raise ConfigError(f"{label}: {self._range()}, got {brief(value)}")
        if self.kind == "int":
            if value != int(value):
                raise ConfigError(f"{label}: must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if value < self.low or (self.positive and value < MIN_RATE):
            raise ConfigError(f"{label}: {self._range()}, got {value!r}")
        return value

    def check_array(self, value: Any) -> np.ndarray:
        label = f"estimate_many.{self.name}"
        arr = np.asarray(value)
        if self.kind == "choice":
            bad = ~np.isin(arr, self.choices)
            if bad.any():
                raise ConfigError(f"{label}: must be one of {', '.join(self.choices)}, got {arr[bad].flat[0]!r}")
            out = np.zeros(arr.shape)
            for i, choice in enumerate(self.choices):   # a choice travels through the model as its index
                out[arr == choice] = i
            return out
        if arr.dtype.kind not in "iuf" or arr.dtype == bool:
            raise ConfigError(f"{label}: must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(float)
        if np.isnan(arr).any() or (arr < 0).any():
            raise ConfigError(f"{label}: must be >= 0, got {arr[np.isnan(arr) | (arr < 0)].flat[0]!r}")
        if (arr > self.high).any():
            raise ConfigError(f"{label}: {self._range()}, got {arr[arr > self.high].flat[0]!r}")
        if self.kind == "int" and (arr != np.round(arr)).any():
            raise ConfigError(f"{label}: must be integers")
        low = (arr < MIN_RATE) if self.positive else (arr < self.low)
        if low.any():
            raise ConfigError(f"{label}: {self._range()}, got {arr[low].flat[0]!r}")
        return arr

    def parse_values(self, text: str, limit: int) -> list:
        """``--set`` values: ``V1,V2,...`` or ``LO:HI:STEP`` (inclusive, at most ``limit``); choices by name."""
        if self.kind == "choice":
            return text.split(",")
        n = 0
        try:
            if ":" in text:
                lo, hi, step = (float(v) for v in text.split(":"))
                if not step > 0 or not math.isfinite(hi - lo):
                    raise ValueError
                n = int((hi - lo) / step + 0.5) + 1 if hi >= lo else 0
                values = None if n > limit else list(np.arange(lo, hi + step / 2, step))
            else:
                values = [float(v) for v in text.split(",")]
        except (ValueError, OverflowError):
            raise ConfigError(f"--set {self.name}: cannot read {text!r} as numbers (V1,V2 or LO:HI:STEP, "
                              "STEP > 0)") from None
        if values is None:  # counted before np.arange would try to allocate them
            raise ConfigError(f"--set {self.name}: {text} gives {n} values (at most {limit:,})")
        return [int(v) if self.kind == "int" and v == int(v) else float(v) for v in values]

    def _range(self) -> str:
        if self.name == "tech_nm":
            return f"the scaling rule covers {self.low:g}-{self.high:g} nm"
        if self.positive:
            return f"must be > 0 (at least {MIN_RATE:g})"
        if self.high < MAX_VALUE:
            return f"must be between {self.low:g} and {self.high:g}"
        return f"must be at least {self.low:g}" if self.low else f"must be at most {self.high:g}"


F = Field
FIELDS: dict[str, Field] = {f.name: f for f in [
    F("pe_rows", "int", "", "PE array rows"),
    F("pe_cols", "int", "", "PE array columns"),
    F("weight_sram_kib", "float", "KiB", "weight buffer: pinned layers plus the streaming buffer"),
    F("vmem_sram_kib", "float", "KiB", "membrane-potential buffer, split evenly into vmem_banks banks"),
    F("spike_sram_kib", "float", "KiB", "spike-event buffer (a layer's input and output events)"),
    F("vmem_banks", "int", "bank", "Vmem SRAM banks; 0: one per PE (each PE updates the potentials in its own bank: no "
      "conflicts). Fewer banks than busy PEs serialize their updates (bank stalls)"),
    F("weight_banks", "int", "bank", "weight SRAM banks; 0: enough 64-bit ports to reload every PE's weight register "
      "in one cycle (PEs x weight bits / 64, to a power of two): symmetric in rows and columns"),
    F("weight_bits", "int", "bit", f"weight width: log = sign + exponent bits (at most {spike_code.LOG_WEIGHT_BITS[1]}); "
      "int = two's complement", low=spike_code.LOG_WEIGHT_BITS[0], high=spike_code.INT_WEIGHT_BITS[1]),
    F("time_window", "int", "step", "T, steps per layer window", low=spike_code.MIN_TIME_WINDOW),
    F("steps_per_octave", "int", "", "k: a spike at step t means theta * 2^(-t/k)", low=spike_code.MIN_STEPS_PER_OCTAVE),
    F("rounding", "choice", "", "spike-time rounding: floor (fire when V >= level) or round (threshold halfway in log "
      "below); anything but floor at k = 1 widens the datapath by a mantissa", choices=spike_code.ROUNDINGS),
    F("accumulator_bits", "int", "bit", "Vmem width; 0 = the derived minimum (see Datapath)"),
    F("neuron_word_bits", "int", "bit", "neuron state an SOP reads and writes back; below the Vmem width: the Vmem "
      "width (this design keeps only the potential)"),
    F("synapse_word_bits", "int", "bit", "weight-memory word an SOP reads; 0: weights sit in PE registers, reloaded "
      "per round (this design); a crossbar core (ODIN) reads its synapse word from SRAM on every SOP"),
    F("cycles_per_sop", "int", "cycle", "cycles a PE spends per SOP: 2 for a single-port neuron memory (read, then "
      "write back)", low=1),
    F("clock_mhz", "float", "MHz", "clock; sets the supply voltage through the V-f relation", positive=True),
    F("supply_v", "float", "V", "published supply; 0: the lowest the V-f relation allows (>= 0.6 V); a supply "
      "below what the clock needs is infeasible", high=1.0),
    F("frame_us", "float", "us", "period per inference (frame or tick); the chip leaks over it when it is longer "
      "than the compute time; 0: back to back"),
    F("tech_nm", "float", "nm", "technology node (energy x (node/28)^1.5, area x (node/28)^2)", low=7.0,
      high=180.0),
    F("dram", "choice", "", "off-chip memory (pJ/bit and bandwidth in ert.DRAM)",
      choices=("lpddr4", "lpddr5", "hbm2", "none")),
    F("sram_cell", "choice", "", "SRAM cells: lstp (low leakage, slow) or hp (fast, ~2000x the leakage)",
      choices=("lstp", "hp")),
    F("weight_pin_frac", "float", "", "share of the weight SRAM that keeps layers pinned (when not all fit)",
      high=1.0),
    F("batch", "int", "image", "images per weight fetch: amortizes streaming, costs Vmem/spike room and latency",
      low=1),
    F("datapath", "choice", "", "log: exponent add + shift (the paper); int: linear INT-n weights, n x n multiply",
      choices=("log", "int")),
    F("dataflow", "choice", "", "event: each SOP reads and writes back its target's neuron word (this design, ODIN); "
      "neuron: a neuron-major core (TrueNorth) reads each output neuron's synapse row (fan-in x synapse_word_bits) "
      "and neuron word once per frame and writes its potential back; SOPs add in a register",
      choices=("event", "neuron")),
    F("fire_method", "choice", "", "fire phase: compare (T steps, one compare each) or lod (one leading-one detect)",
      choices=("compare", "lod")),
]}
NAMES = tuple(FIELDS)
CHOICE_FIELDS = tuple(n for n, f in FIELDS.items() if f.kind == "choice")
INT_FIELDS = tuple(n for n, f in FIELDS.items() if f.kind == "int")


def field(name: str, where: str) -> Field:
    if name not in FIELDS:
        raise ConfigError(f"{where}: unknown field {name!r}{did_you_mean(name, NAMES)}")
    return FIELDS[name]


def check(name: str, value: Any, where: str = "arch") -> Any:
    return field(name, where).check(value, where)


def check_array(name: str, value: Any) -> np.ndarray:
    return field(name, "estimate_many").check_array(value)


def markdown_table(paper: dict[str, Any]) -> str:
    rows = ["| field | unit | paper | range | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in FIELDS.values():
        span = " / ".join(f.choices) if f.choices else \
            (f"> {f.low:g}" if f.positive else f"{f.low:g} - {f.high:g}" if f.high < MAX_VALUE else f">= {f.low:g}")
        rows.append(f"| `{f.name}` | {f.unit} | {paper[f.name]} | {span} | {f.doc} |")
    return "\n".join(rows)
