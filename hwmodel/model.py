"""Action counting and pricing, vectorized over configs: one model for ``estimate`` and ``estimate_many``.

Dataflow (docs/hwmodel.md): layer by layer on one PE array. A weight layer is split into output-channel
groups so that a group's membrane potentials fit the Vmem SRAM and its weights fit the weight SRAM; each
group is one pass over the layer's input spikes. Within a pass the weights of one input channel for the
group sit in PE registers (loaded once), and every input spike of that channel is read from the spike
SRAM once per *round* of ``pe_count`` (output channel x kernel offset) PEs, each PE doing one synaptic
operation (exponent add, shift, accumulate) as a read-modify-write of its output's Vmem word. After
integration, the fire phase compares every output's potential with the decaying threshold at each of
the ``T`` steps and writes the emitted spike events. Arrays have config axes ``S...`` and a layer axis.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from hwmodel import ert
from hwmodel.arch import FIELDS, INT_FIELDS, MAX_VALUE, MIN_RATE, STR_FIELDS, Arch
from hwmodel.errors import ConfigError, did_you_mean
from hwmodel.workload import Workload

ENERGY_COMPONENTS = ("compute", "weight_sram", "vmem_sram", "spike_sram", "dram", "leakage")
LATENCY_COMPONENTS = ("compute", "memory_stall", "fire")
AREA_COMPONENTS = ("pe_array", "weight_sram", "vmem_sram", "spike_sram", "overhead")
KIB_BITS = 8192.0
EXACT_BITS = 45   # breakdown entries are rounded to 2**-45 of the total so every sum is exact


@dataclasses.dataclass(frozen=True)
class LayerTable:
    """Per-layer workload constants (layer axis last)."""

    names: tuple[str, ...]
    weighted: np.ndarray     # conv or linear
    is_max: np.ndarray       # maxpool
    cin: np.ndarray
    cout: np.ndarray
    k2: np.ndarray           # kernel taps (1 for linear)
    in_w: np.ndarray         # input width (1 for linear)
    out_hw: np.ndarray       # output positions per channel (1 for linear)
    in_neurons: np.ndarray
    out_neurons: np.ndarray
    weights: np.ndarray
    fanout: np.ndarray       # synapses per input neuron (padding excluded)
    s_in: np.ndarray         # input spikes (pixels for a pixel-input first layer)
    s_out: np.ndarray        # spikes this layer emits = the next layer's input (0 for the last)
    pixel: np.ndarray        # first layer fed with multi-bit pixels
    readout: np.ndarray      # last layer: read out as membrane potential


@functools.lru_cache(maxsize=64)   # workloads are frozen and hashable; the search reprices the same ones
def layer_table(wl: Workload) -> LayerTable:
    spikes = wl.input_spikes()
    rows = []
    for i, layer in enumerate(wl.layers):
        conv = layer.type == "conv"
        rows.append((layer.has_weights, layer.type == "maxpool", layer.in_shape[0], layer.out_shape[0],
                     layer.kernel ** 2 if conv else 1, layer.in_shape[2] if len(layer.in_shape) == 3 else 1,
                     layer.out_shape[1] * layer.out_shape[2] if conv else 1, layer.in_neurons, layer.out_neurons,
                     layer.weights, layer.macs / layer.in_neurons, spikes[i],
                     spikes[i + 1] if i + 1 < len(spikes) else 0.0,
                     i == 0 and wl.first_layer_input == "pixels", i + 1 == len(wl.layers)))
    cols = [np.array(c) for c in zip(*rows)]
    return LayerTable(tuple(layer.name for layer in wl.layers), cols[0].astype(bool), cols[1].astype(bool),
                      *[c.astype(float) for c in cols[2:13]], cols[13].astype(bool), cols[14].astype(bool))


def _ceil_log2(x):
    return np.ceil(np.log2(np.maximum(x, 2.0)))


def _quantize(parts: np.ndarray) -> np.ndarray:
    """Round the entries of each config's breakdown (last two axes) to one power-of-two quantum."""
    total = parts.sum(axis=(-2, -1), keepdims=True)
    exponent = np.frexp(np.where(total > 0, total, 1.0))[1]
    quantum = np.ldexp(1.0, exponent - EXACT_BITS)
    return np.round(parts / quantum) * quantum


def evaluate(f: dict[str, np.ndarray], t: LayerTable, cal: dict[str, float], exact: bool = False,
             detail: bool = False) -> dict:
    """The model. ``f``: arch fields as broadcastable arrays (``sram_cell`` as 1.0 for hp).

    ``exact`` stacks the per-layer x component breakdowns and rounds them for exact sums (the Report);
    otherwise energy, latency and area are lists of per-component arrays (cheaper for many configs).
    """
    with np.errstate(divide="ignore", invalid="ignore"):   # infeasible configs give inf/NaN, flagged below
        return _evaluate(f, t, cal, exact, detail)


def _evaluate(f, t, cal, exact, detail):
    x = {name: np.asarray(v, dtype=float)[..., None] for name, v in f.items()}   # add the layer axis
    rows, cols, wb, acc = x["pe_rows"], x["pe_cols"], x["weight_bits"], x["accumulator_bits"]
    steps, k, hp = x["time_window"], x["steps_per_octave"], x["sram_cell"] > 0
    pe = rows * cols
    pe_safe = np.maximum(pe, 1.0)
    cap_w, cap_v, cap_s = (x[n] * KIB_BITS for n in ("weight_sram_kib", "vmem_sram_kib", "spike_sram_kib"))
    escale = ert.tech_energy_scale(x["tech_nm"])
    logic = cal["logic_scale"] * escale
    sram = cal["sram_scale"] * escale
    time_bits = _ceil_log2(steps)

    # --- tiling into output-channel groups (passes over the input spikes) ---------------------------
    w = t.weighted
    filter_bits = t.cin * t.k2 * wb                           # one output channel's weights
    vmap_bits = t.out_hw * acc                                # one output channel's potentials
    w_bits = t.weights * wb
    # Residency: if the whole network fits, every weight stays on chip. Otherwise the first layers whose
    # cumulative weights fit the pinned share stay on chip and the rest stream through the remainder.
    all_fit = w_bits.sum(axis=-1, keepdims=True) <= cap_w
    pin_cap = x["weight_pin_frac"] * cap_w
    resident = all_fit | (np.cumsum(w_bits, axis=-1) <= pin_cap)
    stream_cap = np.where(all_fit, cap_w, cap_w - pin_cap)
    per_group_w = np.where(resident, t.cout, np.floor(stream_cap / filter_bits))
    per_group_v = np.floor(cap_v / np.maximum(vmap_bits, 1.0))
    per_group = np.maximum(np.minimum(np.minimum(per_group_w, per_group_v), t.cout), 1.0)
    passes = np.where(w, np.ceil(t.cout / per_group), 1.0)
    group = np.ceil(t.cout / passes)
    rounds = np.where(w, np.ceil(group * t.k2 / pe_safe), 1.0)

    # --- spike words: event = neuron address + spike time; pixels are 8-bit values ------------------
    word_in = np.where(t.pixel, float(ert.PIXEL_BITS), _ceil_log2(t.in_neurons) + time_bits)
    word_out = _ceil_log2(t.out_neurons) + time_bits
    spike_reads = t.s_in * np.where(w, passes * rounds, 1.0)
    read_bits = spike_reads * word_in
    write_bits = t.s_out * word_out
    need_s = t.s_in * word_in + write_bits                   # a layer's input and output events
    spill = np.where(need_s > cap_s, 1.0 - cap_s / np.maximum(need_s, 1e-30), 0.0)

    # --- actions ------------------------------------------------------------------------------------
    sops = np.where(w, t.s_in * t.fanout, 0.0)
    exp_add_bits = (wb - 1.0) + time_bits + _ceil_log2(k) * (k > 1)
    sop_pj = ert.ADD_PJ_PER_BIT * (exp_add_bits + acc * (1.0 + ert.SHIFT_REL_ADD + (k > 1))) \
        + ert.REG_PJ_PER_BIT * wb
    fire_cmp = np.where(w & ~t.readout, t.out_neurons * steps, 0.0)            # compares per step
    pool_cmp = np.where(t.is_max, t.s_in, 0.0)                                 # earliest spike wins
    e_compute = logic * (sops * sop_pj + fire_cmp * acc * ert.CMP_PJ_PER_BIT
                         + pool_cmp * time_bits * ert.CMP_PJ_PER_BIT)

    vmem_bits = np.where(w, sops * 2.0 * acc + t.out_neurons * acc * 2.0, 0.0)  # RMW; init + fire read
    e_vmem = sram * ert.sram_pj_per_bit(x["vmem_sram_kib"]) * vmem_bits
    e_weight = sram * ert.sram_pj_per_bit(x["weight_sram_kib"]) * w_bits * np.where(resident, 1.0, 2.0)
    e_spike = sram * ert.sram_pj_per_bit(x["spike_sram_kib"]) * (read_bits + write_bits) * (1.0 - spill)
    dram_bits = np.where(resident, 0.0, w_bits) + spill * (read_bits + write_bits) \
        + np.where(t.pixel, t.in_neurons * ert.PIXEL_BITS, 0.0)
    e_dram = dram_bits * x["dram_pj_per_bit"]

    # --- latency (cycles): compute overlaps DRAM streaming; the fire phase follows -------------------
    bits_per_cycle = x["dram_gbps"] * 1e3 / x["clock_mhz"]
    c_compute = np.where(w, spike_reads, np.ceil(t.s_in / pe_safe))
    c_memory = dram_bits / bits_per_cycle
    c_stall = np.maximum(c_memory - c_compute, 0.0)
    c_fire = np.where(w, steps * np.ceil(t.out_neurons / pe_safe), 0.0)
    cycle_s = 1e-6 / x["clock_mhz"]
    lat = [c_compute * cycle_s, c_stall * cycle_s, c_fire * cycle_s]
    if exact:
        lat = list(np.moveaxis(_quantize(np.stack(np.broadcast_arrays(*lat), axis=-1)), -1, 0))
    layer_s = lat[0] + lat[1] + lat[2]

    # --- leakage and area -----------------------------------------------------------------------------
    pe_bits = acc * 2.0 + wb + exp_add_bits                   # datapath bits that leak per PE
    leak_w = (ert.sram_leak_w(x["weight_sram_kib"], hp) + ert.sram_leak_w(x["vmem_sram_kib"], hp)
              + ert.sram_leak_w(x["spike_sram_kib"], hp)) * escale \
        + pe * pe_bits * ert.LOGIC_LEAK_UW_PER_BIT * 1e-6 * escale
    e_leak = leak_w * layer_s * 1e12                          # pJ

    energy = [e * 1e-12 for e in (e_compute, e_weight, e_vmem, e_spike, e_dram, e_leak)]

    ascale = ert.tech_area_scale(x["tech_nm"][..., 0])
    pe_um2 = acc * (ert.ADDER_UM2_PER_BIT + ert.SHIFTER_UM2_PER_BIT + ert.REG_UM2_PER_BIT) \
        + wb * ert.REG_UM2_PER_BIT + exp_add_bits * ert.ADDER_UM2_PER_BIT
    areas = [pe[..., 0] * pe_um2[..., 0] * 1e-6 * ascale] + \
        [ert.sram_area_mm2(x[n][..., 0]) * ascale for n in ("weight_sram_kib", "vmem_sram_kib", "spike_sram_kib")]
    areas.append(ert.OVERHEAD_AREA_FRAC * sum(areas))
    sops = sops + np.zeros_like(steps)            # a config axis even when only workload arrays vary
    shape = np.broadcast_shapes(*(e.shape for e in energy), sops.shape)
    if exact:   # the report's breakdowns: entries on a common quantum so every sum is exact
        energy = _quantize(np.stack([np.broadcast_to(e, shape) for e in energy], axis=-1))
        lat = np.stack([np.broadcast_to(v, shape) for v in lat], axis=-1)
        area = _quantize(np.stack(np.broadcast_arrays(*areas), axis=-1)[..., None, :])[..., 0, :]
        sops = _quantize(np.broadcast_to(sops, shape)[..., None])[..., 0]
    else:
        area = areas

    # --- feasibility ------------------------------------------------------------------------------------
    checks = {
        "no processing elements (pe_rows x pe_cols = 0)": pe[..., 0] < 1,
        "weight_bits < 2 leaves no exponent bit": wb[..., 0] < 2,
        "accumulator_bits < weight_bits": acc[..., 0] < wb[..., 0],
    }
    layer_checks = {
        "weight SRAM smaller than one output channel's filter": w & ~resident & (stream_cap < filter_bits),
        "Vmem SRAM smaller than one output channel's potentials": w & (cap_v < vmap_bits),
        "spike SRAM smaller than a kernel-high row of input events": cap_s < word_in * t.cin * t.in_w
        * np.sqrt(t.k2),
    }
    feasible = ~np.logical_or.reduce([np.broadcast_to(c, shape[:-1]) for c in checks.values()]
                                     + [np.broadcast_to(c.any(axis=-1), shape[:-1]) for c in layer_checks.values()])
    out = {"energy": energy, "latency": lat, "area": area, "sops": np.broadcast_to(sops, shape),
           "feasible": feasible}
    if detail:
        out.update(checks=checks, layer_checks=layer_checks, passes=passes, rounds=rounds, spill=spill,
                   dram_bits=dram_bits, resident=resident, sop_pj=sop_pj * logic, leak_w=leak_w,
                   spike_reads=spike_reads)
    return out


def arch_fields(arch: Arch) -> dict[str, np.ndarray]:
    values = {name: getattr(arch, name) for name in FIELDS}
    values["sram_cell"] = 1.0 if arch.sram_cell == "hp" else 0.0
    return {name: np.asarray(float(v)) for name, v in values.items()}


def _check_array(name: str, value) -> np.ndarray:
    if name not in FIELDS:
        raise ConfigError(f"estimate_many: unknown field {name!r}{did_you_mean(name, FIELDS)}")
    arr = np.asarray(value)
    if name in STR_FIELDS:
        bad = ~np.isin(arr, ert.SRAM_CELLS)
        if bad.any():
            raise ConfigError(f"estimate_many.{name}: must be lstp or hp, got {arr[bad].flat[0]!r}")
        return (arr == "hp").astype(float)
    if arr.dtype.kind not in "iuf" or arr.dtype == bool:
        raise ConfigError(f"estimate_many.{name}: must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if np.isnan(arr).any() or (arr < 0).any():
        raise ConfigError(f"estimate_many.{name}: must be >= 0, got {arr[np.isnan(arr) | (arr < 0)].flat[0]!r}")
    if (arr > MAX_VALUE).any():  # as check_field: inf, and sizes that would overflow the model's products
        raise ConfigError(f"estimate_many.{name}: must be at most {MAX_VALUE:g}, got {arr[arr > MAX_VALUE].flat[0]!r}")
    if name in INT_FIELDS and (arr != np.round(arr)).any():
        raise ConfigError(f"estimate_many.{name}: must be integers")
    if name in ("time_window", "steps_per_octave", "clock_mhz", "dram_gbps") and (arr < MIN_RATE).any():
        raise ConfigError(f"estimate_many.{name}: must be > 0 (at least {MIN_RATE:g})")
    if name == "weight_pin_frac" and (arr > 1).any():
        raise ConfigError(f"estimate_many.{name}: must be between 0 and 1")
    lo, hi = ert.TECH_RANGE_NM
    if name == "tech_nm" and ((arr < lo) | (arr > hi)).any():
        raise ConfigError(f"estimate_many.{name}: the scaling rule covers {lo:g}-{hi:g} nm")
    return arr


def field_arrays(arch: Arch, changes: dict) -> dict[str, np.ndarray]:
    fields = arch_fields(arch)
    fields.update({name: _check_array(name, value) for name, value in changes.items()})
    np.broadcast_shapes(*(v.shape for v in fields.values()))   # fail early on incompatible shapes
    return fields   # unvaried fields stay 0-d: the model then computes them once, not per config
