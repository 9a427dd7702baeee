"""Action counting and pricing, vectorized over configs: one model for ``estimate`` and ``estimate_many``.

Dataflow (docs/hwmodel.md): layer by layer on one PE array, ``batch`` images per weight fetch. A weight
layer is split into output-channel groups so that a group's membrane potentials (for the whole batch) fit
the Vmem SRAM and its filters fit the weight SRAM (pinned layers: all of them); each group is one pass over
the layer's input spikes. Within a pass the weights of one input channel sit in PE registers, and each
input spike is read once per *round* of ``pe_count`` (output channel x kernel offset) PEs, each doing one
synaptic operation as a read-modify-write of its output's Vmem word in its own bank. The fire phase then
turns potentials into spike times. Arrays have config axes ``S...`` and a layer axis. Every energy term is
an entry of costs.TERMS.
"""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace

import numpy as np

from hwmodel import costs, ert, fields, spike_code
from hwmodel.arch import Arch
from hwmodel.workload import Workload

KIB_BITS = 8192.0
PIXEL_MAX = 2.0 ** ert.PIXEL_BITS - 1.0   # an 8-bit pixel's largest value (the exact SNN's first-layer input)
EXACT_BITS = 45   # breakdown entries are rounded to 2**-45 of the total so every sum is exact
DRAM_PJ = np.array([ert.DRAM[k][0] for k in fields.FIELDS["dram"].choices])
DRAM_GBPS = np.array([ert.DRAM[k][1] for k in fields.FIELDS["dram"].choices])
NO_DRAM = float(fields.FIELDS["dram"].choices.index("none"))
ROUNDING_FLOOR = float(fields.FIELDS["rounding"].choices.index("floor"))


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
    pinned_before: np.ndarray  # weights of this layer and every smaller one (smallest-first pinning order)
    addr_in: np.ndarray      # address bits of an input event (0 for a pixel layer: pixels are not events)
    addr_out: np.ndarray     # address bits of an output event
    row_neurons: np.ndarray  # C_in x W_in x K: the input events of a kernel-high row
    max_addr: float          # widest event address of any layer
    fire_out: np.ndarray     # output neurons that fire (weighted layers but the read-out one)
    pool_in: np.ndarray      # input spikes a max-pool compares
    vmem_init: np.ndarray    # Vmem accesses per layer outside SOPs: init write + fire read per output neuron
    any_pixel: bool          # some layer reads 8-bit pixels
    fanin: np.ndarray        # synapses per output neuron, C_in * K^2 (0 for layers without weights)
    log2_fanin_spikes: float  # floor(log2) of the largest fan-in of a layer fed with spikes (0 if none)
    log2_fanin_pixels: float  # floor(log2(255 x fan-in)) of the largest layer fed with 8-bit pixels (0 if none)
    add_in: np.ndarray       # an add's shortcut spikes: each one accumulate into a potential (0 elsewhere)
    held_in: np.ndarray      # shortcut spikes held in the spike SRAM while this layer runs (between source and add)
    held_addr: np.ndarray    # their address bits, summed (each held event also carries its time bits)
    any_add: bool            # some layer is an add (a residual network)
    measured_bits: float     # widest measured accumulator (every weight layer measured), less the measured
    #                          LSB position (fraction + exponent bits); 0: not measured
    thr_out: np.ndarray      # output neurons that fire against a per-channel threshold register (0 elsewhere)
    thr_words: np.ndarray    # per-channel threshold words the layer loads with its weights (0 elsewhere)


def _held(wl: Workload, spikes: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(events, their address bits) of the residual buffer while each layer runs: an add's shortcut spikes
    are kept from the layer that emits them until the add reads them, beside the layers in between."""
    index = {layer.name: i for i, layer in enumerate(wl.layers)}
    events, addr = np.zeros(len(wl.layers)), np.zeros(len(wl.layers))
    for j, layer in enumerate(wl.layers):
        if layer.type == "add":
            span = slice(index[layer.input] + 1, j)
            events[span] += spikes[j]
            addr[span] += spikes[j] * float(_ceil_log2(layer.in_neurons))
    return events, addr


@functools.lru_cache(maxsize=64)   # workloads are frozen and hashable; the search reprices the same ones
def layer_table(wl: Workload) -> LayerTable:
    spikes = wl.input_spikes()
    rows = []
    for i, layer in enumerate(wl.layers):
        conv = layer.type == "conv"
        # the layer's emitted spikes are the next layer's input; a layer followed by an add fires the sum, whose
        # spikes the layer after the add reads; an add emits nothing itself
        emit = i + 1 + (i + 1 < len(wl.layers) and wl.layers[i + 1].type == "add")
        rows.append((layer.has_weights, layer.type == "maxpool", layer.in_shape[0], layer.out_shape[0],
                     layer.kernel ** 2 if conv else 1, layer.in_shape[2] if len(layer.in_shape) == 3 else 1,
                     layer.out_shape[1] * layer.out_shape[2] if conv else 1, layer.in_neurons, layer.out_neurons,
                     layer.weights, layer.macs / layer.in_neurons, spikes[i],
                     spikes[emit] if emit < len(spikes) and layer.type != "add" else 0.0,
                     i == 0 and wl.first_layer_input == "pixels", i + 1 == len(wl.layers)))
    cols = [np.array(c) for c in zip(*rows)]
    weighted, weights = cols[0].astype(bool), cols[9].astype(float)
    order = np.argsort(weights, kind="stable")            # smallest first; ties in network order
    pinned_before = np.empty_like(weights)
    pinned_before[order] = np.cumsum(weights[order])
    fanin = np.where(weighted, cols[2] * cols[4], 1.0)
    pixel = cols[13].astype(bool)
    return LayerTable(tuple(layer.name for layer in wl.layers), weighted, cols[1].astype(bool),
                      *[c.astype(float) for c in cols[2:13]], pixel, cols[14].astype(bool),
                      np.where(weighted, pinned_before, 0.0), np.where(pixel, 0.0, _ceil_log2(cols[7])),
                      _ceil_log2(cols[8]), cols[2] * cols[5] * np.sqrt(cols[4]),
                      float(max(np.where(pixel, 0.0, _ceil_log2(cols[7])).max(), _ceil_log2(cols[8]).max())),
                      np.where(weighted & ~cols[14].astype(bool), cols[8], 0.0).astype(float),
                      np.where(cols[1].astype(bool), spikes, 0.0).astype(float),
                      np.where(weighted, 2.0 * cols[8], 0.0).astype(float),
                      bool(pixel.any()), np.where(weighted, fanin, 0.0),
                      float(np.floor(np.log2(max(np.where(weighted & ~pixel, fanin, 1.0).max(), 1.0)))),
                      float(np.floor(np.log2(max(np.where(weighted & pixel, fanin * PIXEL_MAX, 1.0).max(), 1.0)))),
                      np.array([s if layer.type == "add" else 0.0 for s, layer in zip(spikes, wl.layers)]),
                      *_held(wl, spikes),
                      any(layer.type == "add" for layer in wl.layers), _measured_bits(wl),
                      np.array([layer.out_neurons if layer.channel_thresholds else 0.0 for layer in wl.layers]),
                      np.array([layer.out_shape[0] if layer.channel_thresholds else 0.0 for layer in wl.layers]))


def _measured_bits(wl: Workload) -> float:
    """The measured accumulator width in units of the LSB position: a measured width of b bits at fraction
    bits F and largest exponent E means a potential range of b - F - E bits above one weight-times-level;
    at other T, k or weight bits the same range needs that plus the new F + E (the LSB moves, the range does
    not: a scaling ASSUMPTION). 0 where a weight layer is unmeasured or the measuring code is not recorded."""
    bits = [layer.potential_bits for layer in wl.layers if layer.has_weights]
    snn = wl.meta.get("potential_measured_on", wl.meta)   # a built-in's widths come from another network
    if not bits or None in bits or not all(isinstance(snn.get(k), int) for k in ("time_window", "steps_per_octave",
                                                                                   "weight_bits")):
        return 0.0
    return float(max(bits) - _lsb_bits(snn["time_window"], snn["steps_per_octave"], snn["weight_bits"],
                                        snn.get("rounding", "floor")))


def _lsb_bits(time_window, k, weight_bits, rounding="floor"):
    """Fraction bits of a spike level plus the largest weight exponent: the accumulator's LSB position."""
    return spike_code.fraction_bits(time_window, k, rounding == "floor") + spike_code.max_exponent(weight_bits)


def _ceil_log2(x):
    return np.ceil(np.log2(np.maximum(x, 2.0)))


def quantize(parts: np.ndarray) -> np.ndarray:
    """Round the entries of each config's breakdown (last two axes) to one power-of-two quantum."""
    total = parts.sum(axis=(-2, -1), keepdims=True)
    exponent = np.frexp(np.where(total > 0, total, 1.0))[1]
    quantum = np.ldexp(1.0, exponent - EXACT_BITS)
    return np.round(parts / quantum) * quantum


def evaluate(f: dict[str, np.ndarray], t: LayerTable, cal: dict[str, float], exact: bool = False,
             detail: bool = False) -> dict:
    """The model. ``f``: arch fields as broadcastable arrays (choice fields as their index in fields.py).

    Returns ``energy_pj`` (term -> per-layer pJ per inference, costs.NAMES order), ``latency`` (costs.LATENCY_PARTS;
    without ``exact`` only their sum,
    per-layer s for the batch), ``area`` (costs.AREA_PARTS, mm^2), ``sops``, ``feasible``. ``exact`` stacks
    and rounds the breakdowns so that every sum of them is exact (the Report).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # infeasible configs: inf/NaN
        return _evaluate(f, t, cal, exact, detail)


def _any(flags: np.ndarray) -> bool:
    """``flags.any()``; a single config's flag is read as a bool (no call into numpy: cheaper per estimate)."""
    return bool(flags) if flags.size == 1 else bool(flags.any())


def _evaluate(f, t, cal, exact, detail):
    """The model in stages, each a function of the stages before it (a namespace ``s`` they fill): inputs,
    operating point, widths, tiling, events, area and memories, actions, cycles; then one price function per
    cost term (``PRICES``, the registry's order) and the feasibility checks."""
    s = _inputs(f, t)
    _operating_point(s, cal)
    _widths(s)
    _tiling(s)
    _events(s)
    _area(s)
    _actions(s)
    _cycles(s, exact)
    energy = [PRICES[name](s) for name in costs.NAMES]
    areas = [a[..., 0] for a in s.areas]
    shape = np.broadcast_shapes(*(e.shape for e in energy))   # config axes and the layer axis
    sops, lat = s.sops, s.lat
    if exact:   # the report's breakdowns: entries on a common quantum so every sum is exact
        energy = _stack(energy, shape)            # quantized in J by the Report
        lat = quantize(_stack(lat, shape))
        area = quantize(_stack(areas, shape[:-1])[..., None, :])[..., 0, :]
        sops = quantize(_stack([sops], shape))[..., 0]
    else:
        area = areas
    checks, layer_checks = _feasibility(s)
    infeasible = np.zeros(shape[:-1], dtype=bool)
    for flag in checks.values():
        infeasible |= flag
    for flags in layer_checks.values():
        infeasible |= flags.any(axis=-1)
    out = {"energy_pj": energy, "latency": lat, "area": area, "sops": sops, "feasible": ~infeasible}
    if detail:
        out.update(checks=checks, layer_checks=layer_checks, passes=s.passes, rounds=s.rounds, spill=s.spill,
                   dram_bits=s.dram_bits, resident=s.resident, spike_reads=s.spike_reads, volts=s.volts[..., 0],
                   acc_bits=s.acc[..., 0], acc_min=s.acc_min[..., 0], banks_vmem=s.banks_v[..., 0],
                   banks_weight=s.banks_w[..., 0], bank_cycles=s.bank_cycles, sop_pj=s.sop_pj * s.logic,
                   weight_accesses=s.w_reads * s.w_rw, register_loads=s.reg_load_bits / s.wb,
                   # per-memory counts and per-access prices (pJ, at this config's supply and calibration), for
                   # cross-checks against other models (benchmarks/zigzag_crosscheck.py): Vmem reads = writes
                   vmem_accesses=s.vmem_rw, spike_writes=s.spike_writes,
                   weight_writes=s.w_words * (ert.CACTI_WIDTH_BITS / s.w_port),
                   access_pj={name: (m[0] * s.sram, m[1] * s.sram)
                              for name, m in (("vmem", s.mac_v), ("weight", s.mac_w), ("spike", s.mac_s))})
    return out


def _inputs(f, t) -> SimpleNamespace:
    """The fields with a layer axis, the choice flags and the capacities in bits."""
    x = {name: np.asarray(v, dtype=float)[..., None] for name, v in f.items()}   # add the layer axis
    s = SimpleNamespace(t=t, x=x, w=t.weighted, rows=x["pe_rows"], cols=x["pe_cols"], wb=x["weight_bits"],
                        steps=x["time_window"], k=x["steps_per_octave"], hp=x["sram_cell"] > 0, batch=x["batch"],
                        int_dp=x["datapath"] > 0, lod=x["fire_method"] > 0, syn=x["synapse_word_bits"])
    s.nmaj = x["dataflow"] > 0     # neuron-major core: memory accessed per output neuron per frame, not per SOP
    s.any_nmaj = _any(s.nmaj)      # its terms are skipped when no config uses it (the search's common case)
    s.no_dram = x["dram"] == NO_DRAM
    s.dram_i = x["dram"].astype(int)
    s.pe = s.rows * s.cols
    s.pe_safe = np.maximum(s.pe, 1.0)
    s.cap_w, s.cap_v, s.cap_s = (x[n] * KIB_BITS for n in ("weight_sram_kib", "vmem_sram_kib", "spike_sram_kib"))
    return s


def _operating_point(s, cal) -> None:
    """The supply the clock needs (or the published one); dynamic energy ~ V^2, leakage ~ V."""
    x = s.x
    s.need_v = ert.needed_v(x["clock_mhz"], s.hp)      # NaN: the clock is out of reach (infeasible)
    s.published_v = x["supply_v"] > 0                   # a chip's published supply, checked against its clock
    s.volts = np.where(s.published_v, x["supply_v"], np.maximum(s.need_v, ert.V_MIN))
    priced_v = np.where(np.isnan(s.volts), ert.V_MAX, s.volts)
    s.node = ert.tech_energy_scale(x["tech_nm"])
    s.dyn = (priced_v / ert.V_NOM) ** 2 * s.node
    s.leak_scale = priced_v / ert.V_NOM * s.node
    s.logic, s.sram = cal["logic_scale"] * s.dyn, cal["sram_scale"] * s.dyn


def _widths(s) -> None:
    """Datapath widths derived from T, k, weight bits and fan-in.

    The exact SNN's worst case (dse.snn.events). A spike adds +-2^(emax - e) x its step's level
    (<= 2^frac_bits), a pixel +-2^(emax - e) x <= 255; every input of the largest fan-in at the largest
    weight, plus a bias no larger than that sum (ASSUMPTION: one more such sum, +1 bit), in a two's
    complement word: 1 + ceil(log2(bound + 1)) = 3 + emax + floor(log2(fan-in x largest input)) bits.
    int: the same with linear weights of magnitude <= 2^(n-1) (emax = n - 1). A workload that carries the exact
    SNN's measured widths (dse evaluate --events) sets the width instead: the measured range at this LSB
    position, never above the bound."""
    t, x, wb, k = s.t, s.x, s.wb, s.k
    s.time_bits = _ceil_log2(s.steps)
    frac_bits = spike_code.fraction_bits(s.steps, k, x["rounding"] == ROUNDING_FLOOR)
    emax_log = spike_code.max_exponent(wb)
    emax = emax_log + s.int_dp * (wb + 1.0 - np.exp2(wb - 1.0))   # int: wb - 1 (ufuncs only: no np.where)
    acc_min = 3.0 + emax + np.maximum(t.log2_fanin_spikes + frac_bits, t.log2_fanin_pixels)
    if t.measured_bits:   # measured on a log-weight network: it lowers the log datapath's width only
        acc_min = acc_min - ~s.int_dp * np.maximum(acc_min - (t.measured_bits + frac_bits + emax_log), 0.0)
    s.acc_min = acc_min
    s.acc = np.where(x["accumulator_bits"] > 0, x["accumulator_bits"], acc_min)
    # the word an SOP reads and writes back: the potential alone (this design), or a richer neuron state
    # (leak, threshold, adaptation: ODIN's 128-bit neuron word) that a time-multiplexed core moves whole
    s.word = np.maximum(s.acc, x["neuron_word_bits"])
    s.exp_bits = (wb - 1.0) + s.time_bits + _ceil_log2(k) * (k > 1)


def _tiling(s) -> None:
    """Weight residency (all on chip if they fit, else smallest layers first into the pinned share), output-channel
    groups (passes over the input spikes), rounds of PEs, and the banks (design choices; 0 derives them from the
    PE array, symmetric in rows and columns)."""
    t, x, w, wb = s.t, s.x, s.w, s.wb
    # bits stored per synapse: the weight, or a neuron-major core's synapse-row bits (TrueNorth: 1)
    s.store_b = np.where(s.nmaj & (s.syn > 0), s.syn, wb) if s.any_nmaj else wb
    s.w_bits = t.weights * s.store_b
    all_fit = s.w_bits.sum(axis=-1, keepdims=True) <= s.cap_w
    s.resident = w & (all_fit | (t.pinned_before * wb <= x["weight_pin_frac"] * s.cap_w))
    pinned_bits = np.where(s.resident, s.w_bits, 0.0).sum(axis=-1, keepdims=True)
    s.stream_cap = s.cap_w - pinned_bits
    s.streamed = w & ~s.resident
    s.filter_bits = t.cin * t.k2 * s.store_b
    s.vmap_bits = t.out_hw * (s.word * s.batch)                    # a channel's potentials for the whole batch
    per_group_w = np.where(s.resident, t.cout, np.floor(s.stream_cap / s.filter_bits))
    per_group = np.clip(np.minimum(per_group_w, np.floor(s.cap_v / np.maximum(s.vmap_bits, 1.0))), 1.0, t.cout)
    s.passes = np.where(w, np.ceil(t.cout / per_group), 1.0)
    s.lanes = np.ceil(t.cout / s.passes) * t.k2                    # SOP lanes one input spike feeds per pass
    s.rounds = np.where(w, np.ceil(s.lanes / s.pe_safe), 1.0)
    s.banks_v = np.where(x["vmem_banks"] > 0, x["vmem_banks"], s.pe_safe)
    s.bank_cycles = np.ceil(np.minimum(s.lanes, s.pe_safe) / s.banks_v)  # > 1: fewer Vmem banks than busy PEs
    s.banks_w = np.where(x["weight_banks"] > 0, x["weight_banks"],
                         np.exp2(np.ceil(np.log2(np.maximum(s.pe * wb / ert.CACTI_WIDTH_BITS, 1.0)))))


def _events(s) -> None:
    """Spike-SRAM traffic: an event is a neuron address and a spike time; pixels are 8-bit values."""
    t = s.t
    s.word_in = np.where(t.pixel, float(ert.PIXEL_BITS), t.addr_in + s.time_bits)
    word_out = t.addr_out + s.time_bits
    s.spike_reads = t.s_in * np.where(s.w, s.passes * s.rounds, 1.0)
    read_bits, write_bits = s.spike_reads * s.word_in, t.s_out * word_out
    s.spike_writes = t.s_out
    if t.any_add:   # residual buffer: a shortcut's spikes are written again and kept until their add reads them
        write_bits = write_bits + t.add_in * s.word_in
        s.spike_writes = s.spike_writes + t.add_in
    s.event_bits = read_bits + write_bits
    # a layer's input and output events and the residual buffer held beside it, for the batch
    need_s = (t.s_in * s.word_in + write_bits + t.held_addr + t.held_in * s.time_bits) * s.batch
    s.spill = np.where(need_s > s.cap_s, 1.0 - s.cap_s / np.maximum(need_s, 1e-30), 0.0)


def _area(s) -> None:
    """Areas (mm^2; the wires need them) and each SRAM's bank at its port width (CACTI 7: pJ per read, pJ per
    write, leakage W, area mm^2; a 0 KiB SRAM is absent). Ports: Vmem the neuron word; weights 64 bits (a crossbar
    core's synapse word; a neuron-major core's wide rows are 64-bit accesses); spikes the widest event."""
    t, x, wb, acc = s.t, s.x, s.wb, s.acc
    ascale = ert.tech_area_scale(x["tech_nm"])
    pe_um2 = np.where(s.int_dp, wb * wb * ert.ADDER_UM2_PER_BIT + acc * (ert.ADDER_UM2_PER_BIT + ert.REG_UM2_PER_BIT),
                      acc * (ert.ADDER_UM2_PER_BIT + ert.SHIFTER_UM2_PER_BIT + ert.REG_UM2_PER_BIT)
                      + s.exp_bits * ert.ADDER_UM2_PER_BIT) + wb * ert.REG_UM2_PER_BIT
    s.a_pe = s.pe * pe_um2 * 1e-6 * ascale
    s.w_port = np.where((s.syn > 0) & ~s.nmaj, s.syn, float(ert.CACTI_WIDTH_BITS)) if _any(s.syn > 0) \
        else float(ert.CACTI_WIDTH_BITS)
    s.spike_port = np.maximum(t.max_addr + s.time_bits, ert.PIXEL_BITS if t.any_pixel else 0.0)
    s.mac_w, s.mac_v, s.mac_s = (ert.sram_macro(kib, port, s.hp) for kib, port in (
        (x["weight_sram_kib"] / s.banks_w, s.w_port), (x["vmem_sram_kib"] / s.banks_v, s.word),
        (x["spike_sram_kib"], s.spike_port)))
    s.a_w = np.where(s.cap_w > 0, s.mac_w[3] * s.banks_w, 0.0) * ascale
    s.a_v = np.where(s.cap_v > 0, s.mac_v[3] * s.banks_v, 0.0) * ascale
    a_s = np.where(s.cap_s > 0, s.mac_s[3], 0.0) * ascale
    s.areas = [s.a_pe, s.a_w, s.a_v, a_s]
    s.areas.append(ert.OVERHEAD_AREA_FRAC * sum(s.areas))
    s.side_pe = np.sqrt(s.a_pe)


def _actions(s) -> None:
    """What each term counts: SOPs, weight and Vmem accesses, bit x mm of wire, DRAM bits."""
    t, wb, acc, k, syn, nmaj = s.t, s.wb, s.acc, s.k, s.syn, s.nmaj
    s.sops = np.where(s.w, t.s_in * t.fanout, 0.0)
    s.weight_sops = s.sops
    if t.any_add:   # an add's shortcut spike: one accumulate of its level into the potential, no weight read
        s.sops = s.sops + t.add_in
    s.sop_pj = np.where(s.int_dp, ert.MUL_PJ_PER_BITPRODUCT * wb * wb + ert.ADD_PJ_PER_BIT * acc,
                        ert.ADD_PJ_PER_BIT * (s.exp_bits + acc * (1.0 + ert.SHIFT_REL_ADD + (k > 1))))
    s.fire_cmp_bits = np.where(s.lod, acc * (1.0 + (k > 1)), s.steps * acc)
    s.w_words = np.where(s.streamed, s.w_bits, 0.0) * (1.0 / ert.CACTI_WIDTH_BITS / s.batch)   # streamed, per inference
    # Weight reads into PE registers: once per batch when a channel's lanes fit the PEs (one round); with
    # several rounds the registers cycle, so every spike reloads the weights of every lane it visits (its last
    # round's idle PEs load nothing: the ZigZag cross-check found them charged).
    # A crossbar core (synapse_word_bits > 0) instead reads each synapse word of the weight SRAM once for the
    # synapse_word_bits / weight_bits neurons whose synapses it holds, and writes it back (ODIN's controller.v,
    # state POP_NEUR: the synapse array's chip select once per 8 neurons, a read then a write of the 32-bit word).
    busy = np.minimum(s.pe_safe, s.lanes)
    w_read_bits = np.where(s.rounds > 1, t.s_in * s.passes * s.lanes, t.weights * (1.0 / s.batch)) * wb  # none: 0
    # per-channel threshold registers load with the layer's weights, once per batch
    w_read_bits = w_read_bits + t.thr_words * (ert.THRESHOLD_REGISTER_BITS / s.batch)
    s.reg_load_bits = w_read_bits   # what the registers take in (written): none where no weight sits in a register
    w_width = np.minimum(busy * wb, float(ert.CACTI_WIDTH_BITS))
    s.w_rw = 1.0   # accesses per word read: 2 where the word is written back
    if _any(syn > 0):   # skipped when no config reads synapse words: the search's common case
        w_read_bits = np.where(syn > 0, s.weight_sops * wb, w_read_bits)
        s.reg_load_bits = np.where(syn > 0, 0.0, s.reg_load_bits)
        w_width = np.where(syn > 0, syn, w_width)
        s.w_rw = np.where((syn > 0) & ~nmaj, 2.0, 1.0)   # a neuron-major core's synapse rows are only read
    # Vmem accesses of the neuron word: a read and a write per SOP, plus the init write and fire read per
    # output neuron (t.vmem_init = 2 per output neuron): as many reads as writes
    s.vmem_rw = s.sops + t.vmem_init * 0.5
    vmem_bus_bits = s.sops * s.word
    if s.any_nmaj:   # neuron-major (TrueNorth): per output neuron and frame, one synapse-row read (fan-in x
        # synapse bits, one access), one neuron-word read and one potential write; no memory access per SOP
        row_bits = t.fanin * np.maximum(syn, 1.0)
        w_read_bits = np.where(nmaj, t.vmem_init * 0.5 * row_bits, w_read_bits)
        s.reg_load_bits = np.where(nmaj, 0.0, s.reg_load_bits)
        w_width = np.where(nmaj, np.maximum(row_bits, 1.0), w_width)
        s.vmem_rw = np.where(nmaj, t.vmem_init * 0.5, s.vmem_rw)   # the potential written back in the word's port
        vmem_bus_bits = np.where(nmaj, t.vmem_init * 0.5 * (s.word + acc), vmem_bus_bits)
    s.w_read_bits, s.w_width = w_read_bits, w_width
    s.w_reads = w_read_bits / w_width                             # weight-SRAM accesses
    # bit x mm: a spike is broadcast over the array (a spine and sqrt(PEs) branches: symmetric in rows and
    # columns, a square array's spine and rows); a Vmem RMW stays in its bank's tile (the PEs sharing a bank and
    # the bank: the side of that tile); a weight word crosses half the array and half the weight SRAM
    s.wire_mm_bits = (s.spike_reads * s.word_in * (s.side_pe * (1.0 + np.sqrt(s.pe)))
                      + vmem_bus_bits * np.sqrt((s.a_pe + s.a_v) / s.banks_v)
                      + w_read_bits * (0.5 * (s.side_pe + np.sqrt(s.a_w))))
    s.dram_bits = np.where(s.no_dram, 0.0, s.w_words * ert.CACTI_WIDTH_BITS + s.spill * s.event_bits
                           + np.where(t.pixel, t.in_neurons * ert.PIXEL_BITS, 0.0))


def _cycles(s, exact: bool) -> None:
    """Cycles per inference (the batch's latency is batch x that), the latency parts, and the seconds the chip
    leaks: its time per inference, or the whole frame (tick) when that is longer, the idle rest shared among the
    layers in proportion to their time."""
    t, x = s.t, s.x
    cycle_s = 1e-6 / x["clock_mhz"]
    cps = x["cycles_per_sop"]
    c_compute = np.where(s.w, s.spike_reads * cps if _any(cps != 1) else s.spike_reads, np.ceil(t.s_in / s.pe_safe))
    c_bank = np.where(s.w, s.spike_reads * (s.bank_cycles - 1.0), 0.0)
    bits_per_cycle = np.where(s.no_dram, np.inf, DRAM_GBPS[s.dram_i] * 1e3 / x["clock_mhz"])
    c_memory = np.maximum(s.dram_bits / bits_per_cycle, s.w_reads * (1.0 / s.banks_w))
    c_stall = np.maximum(c_memory - c_compute - c_bank, 0.0)
    c_fire = np.where(s.w & ~t.readout, np.where(s.lod, 1.0, s.steps) * np.ceil(t.out_neurons / s.pe_safe), 0.0)
    s.cycles = c_compute + c_bank + c_stall + c_fire
    # the latency parts for the report; only their sum for the vectorized totals
    s.lat = [c * (cycle_s * s.batch) for c in (c_compute, c_bank, c_stall, c_fire)] if exact \
        else [s.cycles * (cycle_s * s.batch)]
    image_s = s.cycles * cycle_s
    frame = x["frame_us"]
    s.leak_s = image_s * np.maximum(1.0, frame * 1e-6 / image_s.sum(axis=-1, keepdims=True)) if _any(frame > 0) \
        else image_s


# --- one price per cost term (costs.TERMS): pJ per inference, per layer ----------------------------------------
# Config-only factors are multiplied first, so each term costs as few config x layer operations as it can.

def _datapath(s):
    return s.sops * (s.logic * s.sop_pj)


def _weight_register(s):
    """A read of the weight per SOP, and a write of every weight loaded into a register."""
    return (s.weight_sops * s.wb + s.reg_load_bits) * (s.logic * ert.REG_PJ_PER_BIT)


def _fire(s):
    """T compares (or a leading-one detect) per firing neuron; a per-channel threshold: its register read, and with
    lod a compare of the mantissa (the leading-one position gives the octave; the mantissa decides the step)."""
    t = s.t
    return (t.fire_out * (s.logic * s.fire_cmp_bits * ert.CMP_PJ_PER_BIT)
            + t.thr_out * (s.logic * (ert.THRESHOLD_REGISTER_BITS * ert.REG_PJ_PER_BIT
                                      + np.where(s.lod, ert.MANTISSA_BITS + 1, 0.0) * ert.CMP_PJ_PER_BIT)))


def _pool(s):
    return s.t.pool_in * (s.logic * s.time_bits * ert.CMP_PJ_PER_BIT)


def _vmem_sram(s):
    return s.vmem_rw * (s.sram * (s.mac_v[0] + s.mac_v[1]))


def _weight_sram(s):
    """An access of b bits = fixed part + b x per-bit part of a full-port one (ert.width_factor), summed over
    accesses; a crossbar's word is written back (w_rw); streamed weights are written in 64-bit words."""
    return ((s.w_reads * ert.SRAM_FIXED_FRAC + s.w_read_bits * ((1.0 - ert.SRAM_FIXED_FRAC) / s.w_port))
            * (s.sram * (s.mac_w[0] + (s.w_rw - 1.0) * s.mac_w[1]))
            + s.w_words * (ert.CACTI_WIDTH_BITS / s.w_port) * (s.sram * s.mac_w[1]))


def _spike_sram(s):
    return (s.spike_reads * s.mac_s[0] + s.spike_writes * s.mac_s[1]) * ((1.0 - s.spill) * s.sram)


def _wire(s):
    return s.wire_mm_bits * (s.dyn / s.node * ert.WIRE_PJ_PER_BIT_MM)


def _clock(s):
    flops = s.pe * (s.wb + s.word + s.time_bits)                  # weight, neuron-word and time registers per PE
    return s.cycles * (s.dyn * flops * ert.CLOCK_PJ_PER_FLOP)


def _control_clock(s):
    """Address and data registers at every SRAM port, clocked every cycle (the spike SRAM's port is as wide as the
    widest event of any layer; a neuron-major row is latched whole)."""
    reg_port = np.where(s.nmaj, s.w_width, s.w_port) if s.any_nmaj else s.w_port
    port_flops = (s.banks_v * (ert.PORT_REGS_PER_DATA_BIT * s.word + _ceil_log2(s.cap_v / s.banks_v / s.word))
                  + s.banks_w * (ert.PORT_REGS_PER_DATA_BIT * reg_port + _ceil_log2(s.cap_w / s.banks_w / reg_port))
                  + ert.PORT_REGS_PER_DATA_BIT * s.spike_port + _ceil_log2(s.cap_s / s.spike_port))
    return s.cycles * (s.dyn * port_flops * ert.CLOCK_PJ_PER_FLOP)


def _leakage_sram(s):
    watts = (np.where(s.cap_w > 0, s.mac_w[2] * s.banks_w, 0.0) + np.where(s.cap_v > 0, s.mac_v[2] * s.banks_v, 0.0)
             + np.where(s.cap_s > 0, s.mac_s[2], 0.0)) * s.leak_scale
    return s.leak_s * (watts * 1e12)


def _leakage_logic(s):
    pe_bits = np.where(s.int_dp, s.wb * s.wb, s.exp_bits) + s.acc * 2.0 + s.wb
    return s.leak_s * (s.pe * pe_bits * ert.LOGIC_LEAK_UW_PER_BIT * 1e-6 * s.leak_scale * 1e12)


def _dram(s):
    return s.dram_bits * DRAM_PJ[s.dram_i]


PRICES = {"datapath": _datapath, "weight_register": _weight_register, "fire": _fire, "pool": _pool,
          "vmem_sram": _vmem_sram, "weight_sram": _weight_sram, "spike_sram": _spike_sram, "wire": _wire,
          "clock": _clock, "control_clock": _control_clock, "leakage_sram": _leakage_sram,
          "leakage_logic": _leakage_logic, "dram": _dram}
if tuple(PRICES) != costs.NAMES:   # every registry term has its price function, in the registry's order
    raise RuntimeError(f"hwmodel.model.PRICES {tuple(PRICES)} does not match costs.TERMS {costs.NAMES}")


def _feasibility(s) -> tuple[dict, dict]:
    """(config checks, per-layer checks): reason -> flags, true where the processor cannot run the workload."""
    t, x = s.t, s.x
    checks = {
        "no processing elements (pe_rows x pe_cols = 0)": s.pe[..., 0] < 1,
        "accumulator_bits below the width T, k, weight bits and fan-in need":
            (x["accumulator_bits"] > 0)[..., 0] & (s.acc < s.acc_min)[..., 0],
        f"clock_mhz above what {ert.V_MAX:g} V reaches with these SRAM cells": np.isnan(s.need_v[..., 0]),
        "supply_v below what clock_mhz needs with these SRAM cells":
            (s.published_v & (x["supply_v"] < s.need_v - 1e-9))[..., 0],
    }
    layer_checks = {
        "dram none, but these weights do not fit the weight SRAM": s.no_dram & s.streamed,
        "dram none, but these spike events overflow the spike SRAM": s.no_dram & (s.spill > 0),
        "weight SRAM smaller than one output channel's filter": s.streamed & (s.stream_cap < s.filter_bits),
        "Vmem SRAM smaller than one output channel's potentials (x batch)": s.w & (s.cap_v < s.vmap_bits),
        "a Vmem bank smaller than one neuron word": s.w & (s.cap_v < s.banks_v * s.word),
        "spike SRAM smaller than a kernel-high row of input events": s.cap_s < s.word_in * t.row_neurons,
    }
    return checks, layer_checks


def _stack(arrays, shape: tuple[int, ...]) -> np.ndarray:
    """``arrays`` broadcast to ``shape`` and stacked on a new last axis (one allocation, C-level broadcasting)."""
    out = np.empty(shape + (len(arrays),))
    for i, a in enumerate(arrays):
        out[..., i] = a
    return out


@functools.lru_cache(maxsize=256)   # Arch is frozen and hashable: a search reprices the same presets
def arch_fields(arch: Arch) -> dict[str, np.ndarray]:
    """The arch's fields as 0-d float arrays (choices as their index). Cached: callers must not mutate it."""
    out = {}
    for name, spec in fields.FIELDS.items():
        value = getattr(arch, name)
        out[name] = np.asarray(float(spec.choices.index(value) if spec.choices else value))
    return out


def field_arrays(arch: Arch, changes: dict) -> dict[str, np.ndarray]:
    values = dict(arch_fields(arch))
    values.update({name: fields.check_array(name, value) for name, value in changes.items()})
    np.broadcast_shapes(*(v.shape for v in values.values()))   # fail early on incompatible shapes
    return values   # unvaried fields stay 0-d: the model then computes them once, not per config
