"""Hand-counted actions and prices on a tiny workload (the v2 equivalents of v1's formula checks), and each
knob moving what the physics says it moves. Expected values are built from ert constants and counts done by
hand here, never read back from the model."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hwmodel
from hwmodel import ert
from hwmodel.model import EXACT_BITS

CAL = ert.calibration()
# 16 inputs -> fc1 (4 neurons, fires) -> fc2 (2 neurons, read out); 5 input spikes, 3 fc1 spikes
TINY = hwmodel.load_workload({"schema": "snn-workload/1", "name": "tiny", "input_shape": [16],
                              "first_layer_input": "spikes",
                              "layers": [{"name": "fc1", "type": "linear", "out_features": 4, "input_spikes": 5},
                                         {"name": "fc2", "type": "linear", "out_features": 2, "input_spikes": 3}]})
# one PE, 200 MHz: the supply sits exactly at V_MIN; everything fits on chip, no DRAM
ARCH = hwmodel.load_arch({"name": "tiny", "pe_rows": 1, "pe_cols": 1, "weight_sram_kib": 8, "vmem_sram_kib": 8,
                          "spike_sram_kib": 8, "clock_mhz": 200, "supply_v": 0, "dram": "none"})
DYN = (ert.V_MIN / ert.V_NOM) ** 2           # 28 nm: tech scale 1
T, WB = 8, 5
EMAX = 2 ** (WB - 1) - 2                                       # largest weight exponent: weights +-2^0..2^14
# the exact SNN's worst case: 2 (inputs + a bias as large) x 16 inputs x 2^EMAX x 2^(T-1), two's complement
ACC = 1 + math.ceil(math.log2(2 * 16 * 2 ** EMAX * 2 ** (T - 1) + 1))   # = 28
TIME_BITS = 3                                                  # ceil(log2 8)
EXP_BITS = (WB - 1) + TIME_BITS                                # weight exponent + spike time
SOPS = 5 * 4 + 3 * 2                                           # input spikes x fan-out, per layer


def close(a, b):
    # These energies are ~1e-13 J: pytest's default absolute slack (1e-12) would pass anything. What is left is the
    # report's rounding of each entry to 2^-45 of its total (~1e-23 J here).
    return a == pytest.approx(b, rel=1e-12, abs=1e-22)


def rw(kib, port):
    """A read plus a write of one bank of ``kib`` through a ``port``-bit port (ert.sram_macro: CACTI 7), lstp."""
    read, write, _, _ = ert.sram_macro(kib, port, False)
    return float(read + write)


def access(kib, bits, port=ert.CACTI_WIDTH_BITS):
    """A read of ``bits`` through a ``port``-bit port: the fixed part plus its share (ert.width_factor)."""
    return float(ert.sram_macro(kib, port, False)[0]) * ert.width_factor(bits, port)


def test_tiny_workload_actions_and_prices_by_hand():
    rep = hwmodel.estimate(ARCH, TINY)
    assert rep.feasible and rep.sops == SOPS and rep.layer_sops == {"fc1": 20.0, "fc2": 6.0}
    op = rep.operating_point
    assert op["supply_v"] == ert.V_MIN and op["accumulator_bits"] == ACC == 28
    by = rep.energy_by_term
    logic, sram = CAL["logic_scale"] * DYN, CAL["sram_scale"] * DYN
    # log datapath: exponent add (EXP_BITS) + shift (0.75 add) + accumulate, per SOP
    assert close(by["datapath"], 1e-12 * logic * SOPS * ert.ADD_PJ_PER_BIT * (EXP_BITS + ACC * 1.75))
    # the weight register: read per SOP, and written per weight loaded; one PE cycles through every lane, so each
    # input spike loads fc1's 4 (fc2's 2) lanes' weights: as many loads as SOPs
    assert close(by["weight_register"], 1e-12 * logic * 2 * SOPS * WB * ert.REG_PJ_PER_BIT)
    # fire: fc1's 4 neurons compare their ACC-bit potential at each of T steps; fc2 is read out, never fired
    assert close(by["fire"], 1e-12 * logic * 4 * T * ACC * ert.CMP_PJ_PER_BIT)
    # Vmem: read + write per SOP and init write + fire read per output neuron of each layer, one 8 KiB bank with
    # an ACC-bit port
    vmem = (SOPS + (4 + 2)) * rw(8.0, ACC)
    assert close(by["vmem_sram"], 1e-12 * sram * vmem)
    assert by["dram"] == 0 and rep.energy_dram_j == 0 and by["pool"] == 0
    # one PE: each spike takes a round per lane (fc1: 4 lanes, fc2: 2); fire: T steps per neuron of fc1
    cycles = 5 * 4 + 3 * 2 + T * 4
    assert close(rep.latency_s, cycles / 200e6)
    assert close(by["clock"], 1e-12 * DYN * cycles * (WB + ACC + TIME_BITS) * ert.CLOCK_PJ_PER_FLOP)
    assert sum(rep.energy_by_layer.values()) == rep.energy_j == rep.energy_chip_j


def test_int_datapath_prices_a_multiply_by_hand():
    rep = hwmodel.estimate(hwmodel.with_fields(ARCH, datapath="int"), TINY)
    acc = 3 + (WB - 1) + 4 + (T - 1)                            # the worst case with weights <= 2^(n-1): 18
    assert rep.operating_point["accumulator_bits"] == acc
    per_sop = ert.MUL_PJ_PER_BITPRODUCT * WB * WB + ert.ADD_PJ_PER_BIT * acc
    assert close(rep.energy_by_term["datapath"], 1e-12 * CAL["logic_scale"] * DYN * SOPS * per_sop)


def test_neuron_word_widens_each_vmem_access_only():
    wide = hwmodel.estimate(hwmodel.with_fields(ARCH, neuron_word_bits=128), TINY)
    base = hwmodel.estimate(ARCH, TINY)
    ratio = rw(8.0, 128) / rw(8.0, ACC)
    assert close(wide.energy_by_term["vmem_sram"], base.energy_by_term["vmem_sram"] * ratio)
    assert close(wide.energy_by_term["datapath"], base.energy_by_term["datapath"])
    assert hwmodel.with_fields(ARCH, neuron_word_bits=4).neuron_word_bits == 4   # below ACC: no effect
    assert hwmodel.estimate(hwmodel.with_fields(ARCH, neuron_word_bits=4), TINY).energy_j == base.energy_j


def test_neuron_major_reads_each_row_once_per_frame_by_hand():
    """dataflow neuron (TrueNorth): per output neuron one synapse-row read (fan-in x synapse bits, one access of
    that width), one neuron-word read and one potential write; no memory access per SOP."""
    nm = hwmodel.estimate(hwmodel.with_fields(ARCH, dataflow="neuron", synapse_word_bits=1, neuron_word_bits=40),
                          TINY)
    assert nm.feasible and nm.sops == SOPS
    by, sram = nm.energy_by_term, CAL["sram_scale"] * DYN
    # fc1: 4 neurons with 16-bit rows, fc2: 2 neurons with 4-bit rows; all in one 8 KiB weight bank
    rows = 4 * access(8.0, 16) + 2 * access(8.0, 4)
    assert close(by["weight_sram"], 1e-12 * sram * rows)
    assert close(by["vmem_sram"], 1e-12 * sram * (4 + 2) * rw(8.0, 40))  # the potential written back in the word's port
    # the SOPs themselves cost what they cost in the event-driven core
    assert close(by["datapath"], hwmodel.estimate(ARCH, TINY).energy_by_term["datapath"])


PAPER = hwmodel.with_fields(hwmodel.load_arch("paper"), supply_v=0)  # the supply its clock needs (>= V_MIN)
C10 = hwmodel.load_workload("vgg16-cifar10")


def test_pe_count_buys_throughput_and_vmem_capacity_does_not():
    """Issue 22's acceptance: with a Vmem bank per PE, 64 -> 256 PEs at least halves the latency; at a fixed bank
    count, 128 -> 512 KiB of Vmem moves it by under 10 %; rows and columns are interchangeable."""
    def run(**changes):
        return hwmodel.estimate(hwmodel.with_fields(PAPER, **changes), C10)

    small, big = run(pe_rows=8, pe_cols=8), run(pe_rows=16, pe_cols=16)
    assert small.operating_point["vmem_banks"] == 64 and big.operating_point["vmem_banks"] == 256
    assert small.latency_s >= 2.0 * big.latency_s
    assert sum(r["bank_stall"] for r in big.latency_breakdown.values()) == 0  # a bank per PE never conflicts
    fixed = [run(vmem_banks=64, vmem_sram_kib=kib) for kib in (128, 512)]
    assert abs(fixed[1].latency_s / fixed[0].latency_s - 1.0) < 0.10
    assert sum(r["bank_stall"] for r in fixed[0].latency_breakdown.values()) > 0  # 256 PEs on 64 banks wait
    tall, wide = run(pe_rows=16, pe_cols=4), run(pe_rows=4, pe_cols=16)
    assert (tall.energy_j, tall.latency_s, tall.area_mm2) == (wide.energy_j, wide.latency_s, wide.area_mm2)


def test_hp_cells_pay_leakage_and_buy_only_speed():
    at200 = [hwmodel.estimate(hwmodel.with_fields(PAPER, clock_mhz=200, sram_cell=c), C10) for c in ("lstp", "hp")]
    assert at200[0].operating_point["supply_v"] == at200[1].operating_point["supply_v"] == ert.V_MIN
    assert at200[1].energy_by_term["leakage_sram"] > at200[0].energy_by_term["leakage_sram"]
    assert at200[1].latency_s == at200[0].latency_s and at200[1].energy_chip_j > at200[0].energy_chip_j
    hp400 = hwmodel.estimate(hwmodel.with_fields(PAPER, clock_mhz=400, sram_cell="hp"), C10)
    lstp400 = hwmodel.estimate(hwmodel.with_fields(PAPER, clock_mhz=400), C10)
    assert hp400.operating_point["supply_v"] < lstp400.operating_point["supply_v"]
    assert hwmodel.estimate(hwmodel.with_fields(PAPER, clock_mhz=800, sram_cell="hp"), C10).feasible
    assert not hwmodel.estimate(hwmodel.with_fields(PAPER, clock_mhz=800), C10).feasible


def test_t_grows_the_compare_fire_phase_and_the_vmem_width():
    reps = [hwmodel.estimate(hwmodel.with_fields(PAPER, time_window=t), C10) for t in (4, 8, 16)]
    fire = [r.energy_by_term["fire"] for r in reps]
    acc = [r.operating_point["accumulator_bits"] for r in reps]
    # the measured widths (T = 8) move with the fraction bits T - 1: the range stays, the LSB moves
    assert fire[0] < fire[1] < fire[2] and acc == [25.0, 29.0, 37.0]


def test_per_channel_thresholds_cost_a_register_read_per_firing_neuron_by_hand():
    """A batch norm folded into thresholds (dse train.fold: thresholds): each output neuron of the conv reads its
    channel's threshold register in the fire phase (and with lod compares its mantissa); the registers load with
    the weights. Nothing else moves."""
    def conv(channel: bool) -> hwmodel.Workload:
        extra = {"channel_thresholds": True} if channel else {}
        return hwmodel.load_workload({"schema": "snn-workload/1", "name": "c", "input_shape": [1, 4, 4],
                                      "first_layer_input": "spikes", "layers": [
                                          {"name": "c1", "type": "conv", "out_channels": 2, "kernel": 3, "padding": 1,
                                           "input_spikes": 6, **extra},
                                          {"name": "fc", "type": "linear", "out_features": 2, "input_spikes": 9}]})
    logic = CAL["logic_scale"] * DYN
    for method, compare_bits in (("compare", 0), ("lod", ert.MANTISSA_BITS + 1)):
        arch = hwmodel.with_fields(ARCH, fire_method=method)
        base, per_channel = hwmodel.estimate(arch, conv(False)), hwmodel.estimate(arch, conv(True))
        neurons = 2 * 4 * 4
        extra = neurons * (ert.THRESHOLD_REGISTER_BITS * ert.REG_PJ_PER_BIT + compare_bits * ert.CMP_PJ_PER_BIT)
        # each report rounds every layer's entry to half a quantum (at most 2^-(EXACT_BITS - 1) of its own total):
        # two layers in each report
        quanta = 2 * (base.energy_j + per_channel.energy_j) * 2.0 ** -EXACT_BITS
        assert per_channel.energy_by_term["fire"] - base.energy_by_term["fire"] == \
            pytest.approx(1e-12 * logic * extra, rel=0, abs=quanta)
        assert per_channel.energy_by_term["weight_sram"] > base.energy_by_term["weight_sram"]
        for term in ("datapath", "vmem_sram", "spike_sram", "pool"):
            assert per_channel.energy_by_term[term] == pytest.approx(base.energy_by_term[term], rel=0, abs=quanta)
    with pytest.raises(hwmodel.ConfigError, match="fc.channel_thresholds"):
        hwmodel.load_workload({"schema": "snn-workload/1", "name": "c", "input_shape": [4], "layers": [
            {"name": "fc", "type": "linear", "out_features": 2, "channel_thresholds": True}]})
