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
    x = {name: np.asarray(v, dtype=float)[..., None] for name, v in f.items()}   # add the layer axis
    rows, cols, wb, steps, k = x["pe_rows"], x["pe_cols"], x["weight_bits"], x["time_window"], x["steps_per_octave"]
    hp, batch, int_dp, lod = x["sram_cell"] > 0, x["batch"], x["datapath"] > 0, x["fire_method"] > 0
    nmaj = x["dataflow"] > 0     # neuron-major core: memory accessed per output neuron per frame, not per SOP
    any_nmaj = _any(nmaj)        # its terms are skipped when no config uses it (the search's common case)
    no_dram = x["dram"] == NO_DRAM
    dram_i = x["dram"].astype(int)
    pe = rows * cols
    pe_safe = np.maximum(pe, 1.0)
    cap_w, cap_v, cap_s = (x[n] * KIB_BITS for n in ("weight_sram_kib", "vmem_sram_kib", "spike_sram_kib"))
    w = t.weighted

    # --- operating point: the supply the clock needs; dynamic energy ~ V^2, leakage ~ V -----------------
    need_v = ert.needed_v(x["clock_mhz"], hp)         # NaN: the clock is out of reach (infeasible, below)
    published_v = x["supply_v"] > 0                   # a chip's published supply, checked against its clock
    volts = np.where(published_v, x["supply_v"], np.maximum(need_v, ert.V_MIN))
    priced_v = np.where(np.isnan(volts), ert.V_MAX, volts)
    node = ert.tech_energy_scale(x["tech_nm"])
    dyn = (priced_v / ert.V_NOM) ** 2 * node
    leak_scale = priced_v / ert.V_NOM * node
    logic, sram = cal["logic_scale"] * dyn, cal["sram_scale"] * dyn

    # --- datapath widths derived from T, k, weight bits and fan-in -----------------------------------------
    time_bits = _ceil_log2(steps)
    # The exact SNN's worst case (dse.snn.events). A spike adds +-2^(emax - e) x its step's level
    # (<= 2^frac_bits), a pixel +-2^(emax - e) x <= 255; every input of the largest fan-in at the largest
    # weight, plus a bias no larger than that sum (ASSUMPTION: one more such sum, +1 bit), in a two's
    # complement word: 1 + ceil(log2(bound + 1)) = 3 + emax + floor(log2(fan-in x largest input)) bits.
    # int: the same with linear weights of magnitude <= 2^(n-1) (emax = n - 1).
    # A workload that carries the exact SNN's measured widths (dse evaluate --events) sets the width instead:
    # the measured range at this LSB position, never above the bound.
    frac_bits = spike_code.fraction_bits(steps, k, x["rounding"] == ROUNDING_FLOOR)
    emax_log = spike_code.max_exponent(wb)
    emax = emax_log + int_dp * (wb + 1.0 - np.exp2(wb - 1.0))   # int: wb - 1 (ufuncs only: no np.where)
    acc_min = 3.0 + emax + np.maximum(t.log2_fanin_spikes + frac_bits, t.log2_fanin_pixels)
    if t.measured_bits:   # measured on a log-weight network: it lowers the log datapath's width only
        acc_min = acc_min - ~int_dp * np.maximum(acc_min - (t.measured_bits + frac_bits + emax_log), 0.0)
    acc = np.where(x["accumulator_bits"] > 0, x["accumulator_bits"], acc_min)
    # the word an SOP reads and writes back: the potential alone (this design), or a richer neuron state
    # (leak, threshold, adaptation: ODIN's 128-bit neuron word) that a time-multiplexed core moves whole
    word = np.maximum(acc, x["neuron_word_bits"])
    exp_bits = (wb - 1.0) + time_bits + _ceil_log2(k) * (k > 1)

    # --- weight residency: all on chip if they fit, else smallest layers first into the pinned share ------
    syn = x["synapse_word_bits"]
    # bits stored per synapse: the weight, or a neuron-major core's synapse-row bits (TrueNorth: 1)
    store_b = np.where(nmaj & (syn > 0), syn, wb) if any_nmaj else wb
    w_bits = t.weights * store_b
    all_fit = w_bits.sum(axis=-1, keepdims=True) <= cap_w
    resident = w & (all_fit | (t.pinned_before * wb <= x["weight_pin_frac"] * cap_w))
    pinned_bits = np.where(resident, w_bits, 0.0).sum(axis=-1, keepdims=True)
    stream_cap = cap_w - pinned_bits
    streamed = w & ~resident

    # --- tiling into output-channel groups (passes over the input spikes), banks ---------------------------
    filter_bits = t.cin * t.k2 * store_b
    vmap_bits = t.out_hw * (word * batch)                         # a channel's potentials for the whole batch
    per_group_w = np.where(resident, t.cout, np.floor(stream_cap / filter_bits))
    per_group = np.clip(np.minimum(per_group_w, np.floor(cap_v / np.maximum(vmap_bits, 1.0))), 1.0, t.cout)
    passes = np.where(w, np.ceil(t.cout / per_group), 1.0)
    lanes = np.ceil(t.cout / passes) * t.k2                     # SOP lanes one input spike feeds per pass
    rounds = np.where(w, np.ceil(lanes / pe_safe), 1.0)
    # banks are design choices (fields.py); 0 derives them from the PE array, symmetric in rows and columns
    banks_v = np.where(x["vmem_banks"] > 0, x["vmem_banks"], pe_safe)
    bank_cycles = np.ceil(np.minimum(lanes, pe_safe) / banks_v)  # > 1: fewer Vmem banks than busy PEs
    banks_w = np.where(x["weight_banks"] > 0, x["weight_banks"],
                       np.exp2(np.ceil(np.log2(np.maximum(pe * wb / ert.CACTI_WIDTH_BITS, 1.0)))))

    # --- spikes: event = neuron address + spike time; pixels are 8-bit values ------------------------------
    word_in = np.where(t.pixel, float(ert.PIXEL_BITS), t.addr_in + time_bits)
    word_out = t.addr_out + time_bits
    spike_reads = t.s_in * np.where(w, passes * rounds, 1.0)
    read_bits, write_bits = spike_reads * word_in, t.s_out * word_out
    spike_writes = t.s_out
    if t.any_add:   # residual buffer: a shortcut's spikes are written again and kept until their add reads them
        write_bits = write_bits + t.add_in * word_in
        spike_writes = spike_writes + t.add_in
    event_bits = read_bits + write_bits
    # a layer's input and output events and the residual buffer held beside it, for the batch
    need_s = (t.s_in * word_in + write_bits + t.held_addr + t.held_in * time_bits) * batch
    spill = np.where(need_s > cap_s, 1.0 - cap_s / np.maximum(need_s, 1e-30), 0.0)

    # --- area (mm^2), needed for wire lengths -------------------------------------------------------------
    ascale = ert.tech_area_scale(x["tech_nm"])
    pe_um2 = np.where(int_dp, wb * wb * ert.ADDER_UM2_PER_BIT + acc * (ert.ADDER_UM2_PER_BIT + ert.REG_UM2_PER_BIT),
                      acc * (ert.ADDER_UM2_PER_BIT + ert.SHIFTER_UM2_PER_BIT + ert.REG_UM2_PER_BIT)
                      + exp_bits * ert.ADDER_UM2_PER_BIT) + wb * ert.REG_UM2_PER_BIT
    a_pe = pe * pe_um2 * 1e-6 * ascale
    # each SRAM's bank at its port width (CACTI 7: pJ per read, pJ per write, leakage W, area mm^2); a 0 KiB SRAM
    # is absent. Ports: Vmem the neuron word; weights 64 bits (a crossbar core's synapse word; a neuron-major
    # core's wide rows are 64-bit accesses); spikes the widest event of any layer.
    w_port = np.where((syn > 0) & ~nmaj, syn, float(ert.CACTI_WIDTH_BITS)) if _any(syn > 0) \
        else float(ert.CACTI_WIDTH_BITS)
    spike_port = np.maximum(t.max_addr + time_bits, ert.PIXEL_BITS if t.any_pixel else 0.0)
    mac_w, mac_v, mac_s = (ert.sram_macro(kib, port, hp) for kib, port in (
        (x["weight_sram_kib"] / banks_w, w_port), (x["vmem_sram_kib"] / banks_v, word), (x["spike_sram_kib"], spike_port)))
    a_w = np.where(cap_w > 0, mac_w[3] * banks_w, 0.0) * ascale
    a_v = np.where(cap_v > 0, mac_v[3] * banks_v, 0.0) * ascale
    a_s = np.where(cap_s > 0, mac_s[3], 0.0) * ascale
    areas = [a_pe, a_w, a_v, a_s]
    areas.append(ert.OVERHEAD_AREA_FRAC * sum(areas))
    side_pe = np.sqrt(a_pe)

    # --- actions and prices per term (pJ per inference) -------------------------------------------------
    sops = np.where(w, t.s_in * t.fanout, 0.0)
    weight_sops = sops
    if t.any_add:   # an add's shortcut spike: one accumulate of its level into the potential, no weight read
        sops = sops + t.add_in
    sop_pj = np.where(int_dp, ert.MUL_PJ_PER_BITPRODUCT * wb * wb + ert.ADD_PJ_PER_BIT * acc,
                      ert.ADD_PJ_PER_BIT * (exp_bits + acc * (1.0 + ert.SHIFT_REL_ADD + (k > 1))))
    fire_cmp_bits = np.where(lod, acc * (1.0 + (k > 1)), steps * acc)
    w_words = np.where(streamed, w_bits, 0.0) * (1.0 / ert.CACTI_WIDTH_BITS / batch)   # streamed, per inference
    # Weight reads into PE registers: once per batch when a channel's lanes fit the PEs (one round); with
    # several rounds the registers cycle, so every spike reloads the weights of every round it visits.
    # A crossbar core (synapse_word_bits > 0) instead reads each synapse word of the weight SRAM once for the
    # synapse_word_bits / weight_bits neurons whose synapses it holds, and writes it back (ODIN's controller.v,
    # state POP_NEUR: the synapse array's chip select once per 8 neurons, a read then a write of the 32-bit word).
    busy = np.minimum(pe_safe, lanes)
    w_read_bits = np.where(rounds > 1, spike_reads * busy, t.weights * (1.0 / batch)) * wb   # layers without weights: 0
    # per-channel threshold registers load with the layer's weights, once per batch
    w_read_bits = w_read_bits + t.thr_words * (ert.THRESHOLD_REGISTER_BITS / batch)
    w_width = np.minimum(busy * wb, float(ert.CACTI_WIDTH_BITS))
    w_rw = 1.0   # accesses per word read: 2 where the word is written back
    if _any(syn > 0):   # skipped when no config reads synapse words: the search's common case
        w_read_bits = np.where(syn > 0, weight_sops * wb, w_read_bits)
        w_width = np.where(syn > 0, syn, w_width)
        w_rw = np.where((syn > 0) & ~nmaj, 2.0, 1.0)   # a neuron-major core's synapse rows are only read
    # Vmem accesses of the neuron word: a read and a write per SOP, plus the init write and fire read per
    # output neuron (t.vmem_init = 2 per output neuron): as many reads as writes
    vmem_rw = sops + t.vmem_init * 0.5
    vmem_bus_bits = sops * word
    if any_nmaj:   # neuron-major (TrueNorth): per output neuron and frame, one synapse-row read (fan-in x
        # synapse bits, one access), one neuron-word read and one potential write; no memory access per SOP
        row_bits = t.fanin * np.maximum(syn, 1.0)
        w_read_bits = np.where(nmaj, t.vmem_init * 0.5 * row_bits, w_read_bits)
        w_width = np.where(nmaj, np.maximum(row_bits, 1.0), w_width)
        vmem_rw = np.where(nmaj, t.vmem_init * 0.5, vmem_rw)   # the potential written back in the word's port
        vmem_bus_bits = np.where(nmaj, t.vmem_init * 0.5 * (word + acc), vmem_bus_bits)
    # bit x mm: a spike is broadcast over the array (a spine and sqrt(PEs) branches: symmetric in rows and
    # columns, a square array's spine and rows); a Vmem RMW stays in its bank's tile (the PEs sharing a bank and
    # the bank: the side of that tile); a weight word crosses half the array and half the weight SRAM
    wire_mm_bits = (spike_reads * word_in * (side_pe * (1.0 + np.sqrt(pe)))
                    + vmem_bus_bits * np.sqrt((a_pe + a_v) / banks_v)
                    + w_read_bits * (0.5 * (side_pe + np.sqrt(a_w))))
    dram_bits = np.where(no_dram, 0.0, w_words * ert.CACTI_WIDTH_BITS + spill * event_bits
                         + np.where(t.pixel, t.in_neurons * ert.PIXEL_BITS, 0.0))

    # --- latency (cycles per inference; the batch's latency is batch x that) -----------------------------
    cycle_s = 1e-6 / x["clock_mhz"]
    cps = x["cycles_per_sop"]
    c_compute = np.where(w, spike_reads * cps if _any(cps != 1) else spike_reads, np.ceil(t.s_in / pe_safe))
    c_bank = np.where(w, spike_reads * (bank_cycles - 1.0), 0.0)
    bits_per_cycle = np.where(no_dram, np.inf, DRAM_GBPS[dram_i] * 1e3 / x["clock_mhz"])
    w_reads = w_read_bits / w_width                             # weight-SRAM accesses
    c_memory = np.maximum(dram_bits / bits_per_cycle, w_reads * (1.0 / banks_w))
    c_stall = np.maximum(c_memory - c_compute - c_bank, 0.0)
    c_fire = np.where(w & ~t.readout, np.where(lod, 1.0, steps) * np.ceil(t.out_neurons / pe_safe), 0.0)
    cycles = c_compute + c_bank + c_stall + c_fire
    # the latency parts for the report; only their sum for the vectorized totals
    lat = [c * (cycle_s * batch) for c in (c_compute, c_bank, c_stall, c_fire)] if exact else [cycles * (cycle_s * batch)]
    # the chip leaks over its time per inference, or over the whole frame (tick) when that is longer: the
    # idle rest of the frame is shared among the layers in proportion to their time
    image_s = cycles * cycle_s
    frame = x["frame_us"]
    leak_s = image_s * np.maximum(1.0, frame * 1e-6 / image_s.sum(axis=-1, keepdims=True)) if _any(frame > 0) \
        else image_s

    flops = pe * (wb + word + time_bits)                        # weight, neuron-word and time registers per PE
    # control outside the PEs: address and data registers at every SRAM port, clocked every cycle (the spike
    # SRAM's port is as wide as the widest event of any layer)
    reg_port = np.where(nmaj, w_width, w_port) if any_nmaj else w_port   # a neuron-major row is latched whole
    port_flops = (banks_v * (ert.PORT_REGS_PER_DATA_BIT * word + _ceil_log2(cap_v / banks_v / word))
                  + banks_w * (ert.PORT_REGS_PER_DATA_BIT * reg_port + _ceil_log2(cap_w / banks_w / reg_port))
                  + ert.PORT_REGS_PER_DATA_BIT * spike_port + _ceil_log2(cap_s / spike_port))
    pe_bits = np.where(int_dp, wb * wb, exp_bits) + acc * 2.0 + wb
    leak_sram_w = (np.where(cap_w > 0, mac_w[2] * banks_w, 0.0) + np.where(cap_v > 0, mac_v[2] * banks_v, 0.0)
                   + np.where(cap_s > 0, mac_s[2], 0.0)) * leak_scale
    leak_logic_w = pe * pe_bits * ert.LOGIC_LEAK_UW_PER_BIT * 1e-6 * leak_scale
    # config-only factors are multiplied first, so each term costs as few config x layer operations as it can
    pj = {
        "datapath": sops * (logic * sop_pj),
        "weight_register": weight_sops * (logic * wb * ert.REG_PJ_PER_BIT),
        # a per-channel threshold: its register read per firing neuron, and with lod a compare of the mantissa
        # (the leading-one position gives the octave; the mantissa decides between two steps)
        "fire": (t.fire_out * (logic * fire_cmp_bits * ert.CMP_PJ_PER_BIT)
                 + t.thr_out * (logic * (ert.THRESHOLD_REGISTER_BITS * ert.REG_PJ_PER_BIT
                                         + np.where(lod, ert.MANTISSA_BITS + 1, 0.0) * ert.CMP_PJ_PER_BIT))),
        "pool": t.pool_in * (logic * time_bits * ert.CMP_PJ_PER_BIT),
        "vmem_sram": vmem_rw * (sram * (mac_v[0] + mac_v[1])),
        # an access of b bits = fixed part + b x per-bit part of a full-port one (ert.width_factor), summed over
        # accesses; a crossbar's word is written back (w_rw); streamed weights are written in 64-bit words
        "weight_sram": ((w_reads * ert.SRAM_FIXED_FRAC + w_read_bits * ((1.0 - ert.SRAM_FIXED_FRAC) / w_port))
                        * (sram * (mac_w[0] + (w_rw - 1.0) * mac_w[1]))
                        + w_words * (ert.CACTI_WIDTH_BITS / w_port) * (sram * mac_w[1])),
        "spike_sram": (spike_reads * mac_s[0] + spike_writes * mac_s[1]) * ((1.0 - spill) * sram),
        "wire": wire_mm_bits * (dyn / node * ert.WIRE_PJ_PER_BIT_MM),
        "clock": cycles * (dyn * flops * ert.CLOCK_PJ_PER_FLOP),
        "control_clock": cycles * (dyn * port_flops * ert.CLOCK_PJ_PER_FLOP),
        "leakage_sram": leak_s * (leak_sram_w * 1e12),
        "leakage_logic": leak_s * (leak_logic_w * 1e12),
        "dram": dram_bits * DRAM_PJ[dram_i],
    }
    energy = [pj[name] for name in costs.NAMES]
    areas = [a[..., 0] for a in areas]
    shape = np.broadcast_shapes(*(e.shape for e in energy))   # config axes and the layer axis
    if exact:   # the report's breakdowns: entries on a common quantum so every sum is exact
        energy = _stack(energy, shape)            # quantized in J by the Report
        lat = quantize(_stack(lat, shape))
        area = quantize(_stack(areas, shape[:-1])[..., None, :])[..., 0, :]
        sops = quantize(_stack([sops], shape))[..., 0]
    else:
        area = areas

    # --- feasibility ------------------------------------------------------------------------------------
    checks = {
        "no processing elements (pe_rows x pe_cols = 0)": pe[..., 0] < 1,
        "accumulator_bits below the width T, k, weight bits and fan-in need":
            (x["accumulator_bits"] > 0)[..., 0] & (acc < acc_min)[..., 0],
        f"clock_mhz above what {ert.V_MAX:g} V reaches with these SRAM cells": np.isnan(need_v[..., 0]),
        "supply_v below what clock_mhz needs with these SRAM cells":
            (published_v & (x["supply_v"] < need_v - 1e-9))[..., 0],
    }
    layer_checks = {
        "dram none, but these weights do not fit the weight SRAM": no_dram & streamed,
        "dram none, but these spike events overflow the spike SRAM": no_dram & (spill > 0),
        "weight SRAM smaller than one output channel's filter": streamed & (stream_cap < filter_bits),
        "Vmem SRAM smaller than one output channel's potentials (x batch)": w & (cap_v < vmap_bits),
        "a Vmem bank smaller than one neuron word": w & (cap_v < banks_v * word),
        "spike SRAM smaller than a kernel-high row of input events": cap_s < word_in * t.row_neurons,
    }
    infeasible = np.zeros(shape[:-1], dtype=bool)
    for flag in checks.values():
        infeasible |= flag
    for flags in layer_checks.values():
        infeasible |= flags.any(axis=-1)
    out = {"energy_pj": energy, "latency": lat, "area": area, "sops": sops, "feasible": ~infeasible}
    if detail:
        out.update(checks=checks, layer_checks=layer_checks, passes=passes, rounds=rounds, spill=spill,
                   dram_bits=dram_bits, resident=resident, spike_reads=spike_reads, volts=volts[..., 0],
                   acc_bits=acc[..., 0], acc_min=acc_min[..., 0], banks_vmem=banks_v[..., 0],
                   banks_weight=banks_w[..., 0], bank_cycles=bank_cycles, sop_pj=sop_pj * logic,
                   weight_accesses=w_reads * w_rw,
                   # per-memory counts and per-access prices (pJ, at this config's supply and calibration), for
                   # cross-checks against other models (benchmarks/zigzag_crosscheck.py): Vmem reads = writes
                   vmem_accesses=vmem_rw, spike_writes=spike_writes,
                   weight_writes=w_words * (ert.CACTI_WIDTH_BITS / w_port),
                   access_pj={name: (m[0] * sram, m[1] * sram)
                              for name, m in (("vmem", mac_v), ("weight", mac_w), ("spike", mac_s))})
    return out


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
