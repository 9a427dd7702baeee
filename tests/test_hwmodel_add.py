"""hwmodel's add layer: a residual network's shortcut spikes accumulate into the potentials of the layer
before the add (one SOP each, no weight), kept in the spike SRAM until then (one more write and a read)."""

from __future__ import annotations

import cProfile
import pstats

import numpy as np
import pytest

import hwmodel
from hwmodel.model import EXACT_BITS

PAPER = hwmodel.load_arch("paper")


def _doc(add: bool, shortcut_spikes: float = 100.0) -> dict:
    layers = [{"name": "c1", "type": "conv", "in_shape": [3, 8, 8], "out_channels": 8, "kernel": 3, "padding": 1},
              {"name": "c2", "type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "input_spikes": 150.0},
              {"name": "fc", "type": "linear", "out_features": 10, "input_spikes": 120.0}]
    if add:
        layers.insert(2, {"name": "sum", "type": "add", "input": "c1", "input_spikes": shortcut_spikes})
    return {"schema": "snn-workload/1", "name": "residual", "layers": layers}


def test_add_prices_one_accumulate_and_a_buffered_spike_per_shortcut_spike() -> None:
    with_add = hwmodel.estimate(PAPER, hwmodel.load_workload(_doc(True)))
    without = hwmodel.estimate(PAPER, hwmodel.load_workload(_doc(False)))
    assert with_add.feasible
    assert with_add.layer_sops["sum"] == 100.0  # one accumulate per shortcut spike
    e = with_add.energy_breakdown
    # each report rounds its entries to 2^-45 of its total; a per-SOP price read back off a rounded entry and
    # multiplied by 100 carries that rounding 100-fold (pytest's default slack, 1e-12 J, would pass anything here)
    slack = 200 * (with_add.energy_j + without.energy_j) * 2.0 ** -EXACT_BITS
    assert e["sum"]["weight_register"] == 0.0 and e["sum"]["fire"] == 0.0  # no weight, the sum fires at c2
    per_sop = e["c2"]["datapath"] / with_add.layer_sops["c2"]
    assert e["sum"]["datapath"] == pytest.approx(100.0 * per_sop, rel=1e-12, abs=slack)
    assert e["sum"]["spike_sram"] > 0 and e["sum"]["vmem_sram"] > 0
    # c2 fires the sum: it emits what fc reads, as without the add; every other layer prices the same
    for layer in ("c1", "c2", "fc"):
        for term in ("datapath", "spike_sram", "vmem_sram", "fire"):
            assert e[layer][term] == pytest.approx(without.energy_breakdown[layer][term], rel=1e-12, abs=slack), (layer, term)
    # twice the shortcut spikes: twice the add's accumulates and residual-buffer traffic
    double = hwmodel.estimate(PAPER, hwmodel.load_workload(_doc(True, 200.0))).energy_breakdown["sum"]
    for term in ("datapath", "spike_sram", "vmem_sram"):
        assert double[term] == pytest.approx(2 * e["sum"][term], rel=1e-12, abs=slack)


@pytest.mark.parametrize("change,field", [
    (lambda d: d["layers"][2].pop("input"), "sum.input"),
    (lambda d: d["layers"][2].update(input="fc"), "sum.input"),
    (lambda d: d["layers"][1].update(input="c1"), "c2.input"),
    (lambda d: d["layers"][2].update(kernel=3), "sum.kernel"),
])
def test_bad_add_layers_name_the_field(change, field) -> None:
    doc = _doc(True)
    change(doc)
    with pytest.raises(hwmodel.ConfigError, match=field.replace(".", r"\.")) as err:
        hwmodel.load_workload(doc)
    assert "\n" not in str(err.value)


def _numpy_calls(workload) -> int:
    values = np.linspace(100.0, 400.0, 64)
    hwmodel.estimate_many(PAPER, workload, clock_mhz=values)  # warm the caches
    profile = cProfile.Profile()
    profile.enable()
    hwmodel.estimate_many(PAPER, workload, clock_mhz=values)
    profile.disable()
    return sum(n for (path, _, func), (_, n, *_) in pstats.Stats(profile).stats.items()
               if "numpy" in path or func.startswith("<built-in") or func.startswith("<method"))


def test_a_residual_network_costs_a_few_numpy_calls_more_than_its_chain() -> None:
    """The add's terms are computed only for workloads that have one (a chain runs the code it ran before add
    layers existed: 316 numpy calls per vectorized estimate of the built-in VGG-16 before and after, counted
    with this helper on main and on this change); a residual network costs a handful more, not more per layer."""
    chain = _numpy_calls(hwmodel.load_workload(_doc(False)))
    residual = _numpy_calls(hwmodel.load_workload(_doc(True)))
    assert 0 < residual - chain <= 8


def test_the_residual_buffer_occupies_the_spike_sram_while_the_block_runs() -> None:
    """The shortcut's spikes are kept from c1 until the add: while c2 runs they sit beside c2's own events. A
    spike SRAM that holds c2's events and the add's, but not both c2's and the buffer, overflows at c2."""
    def doc(add: bool) -> dict:
        d = _doc(add, 300.0)
        d["layers"][1]["input_spikes"] = d["layers"][-1]["input_spikes"] = 400.0
        return d

    arch = hwmodel.with_fields(PAPER, spike_sram_kib=1.25, dram="none")
    assert hwmodel.estimate(arch, hwmodel.load_workload(doc(False))).feasible
    with_add = hwmodel.estimate(arch, hwmodel.load_workload(doc(True)))
    assert not with_add.feasible
    assert with_add.reasons == ("dram none, but these spike events overflow the spike SRAM (c2)",)
    table = hwmodel.model.layer_table(hwmodel.load_workload(doc(True)))
    assert list(table.held_in) == [0.0, 300.0, 0.0, 0.0]  # c2 only: after its source c1, before the add
    # with DRAM the overflow is priced as spill traffic at c2 instead
    spilled = hwmodel.estimate(hwmodel.with_fields(arch, dram="lpddr4"), hwmodel.load_workload(doc(True)))
    assert spilled.feasible and spilled.energy_breakdown["c2"]["dram"] > 0
