"""hwmodel: action counts on hand-computed layers, properties of the model, validation, calibration."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import hwmodel
from hwmodel.workload import builtin_activity
from hwmodel import ert
from hwmodel.calibrate import PAPER_UJ, RANGES, chip_parts, fit
from hwmodel.model import arch_fields, evaluate, layer_table
from hwmodel.workload import parse_workload

PAPER = hwmodel.load_arch("paper")


def workload(*layers, first="spikes", **top):
    return parse_workload({"schema": "snn-workload/1", "name": "t", "first_layer_input": first,
                           "layers": list(layers), **top}, "test")


def detail(arch, wl):
    return evaluate(arch_fields(arch), layer_table(wl), ert.calibration(), detail=True)


CONV = {"name": "c", "type": "conv", "in_shape": [2, 4, 4], "out_channels": 3, "kernel": 3, "padding": 1,
        "input_spikes": 5}


def test_conv_counts_by_hand():
    # Taps along a 4-wide axis with k=3, p=1: outputs 0..3 see 2, 3, 3, 2 inputs = 10; 10x10 x 2 x 3 = 600
    # synapses over 32 inputs: 18.75 per input, so 5 spikes give 93.75 SOPs.
    wl = workload(CONV)
    assert wl.layers[0].macs == 600
    # 4 PEs; the weight SRAM holds 2 of the 3 filters (2*9*5 = 90 bits each): 2 passes of 2 channels,
    # each spike visits ceil(2*9/4) = 5 rounds, so 5 spikes x 2 passes x 5 rounds = 50 spike reads.
    arch = hwmodel.with_fields(PAPER, pe_rows=2, pe_cols=2, weight_sram_kib=180 / 8192)
    out = detail(arch, wl)
    assert out["sops"].tolist() == [93.75]
    assert out["passes"].tolist() == [2.0] and out["rounds"].tolist() == [5.0]
    assert out["spike_reads"].tolist() == [50.0]
    assert out["dram_bits"].tolist() == [54 * 5]          # weights do not fit: streamed once
    rep = hwmodel.estimate(arch, wl)
    assert rep.sops == 93.75 and rep.feasible
    assert rep.latency_breakdown["c"]["compute"] == pytest.approx(50 / (PAPER.clock_mhz * 1e6), rel=1e-12)
    # whole network in the weight SRAM: no DRAM traffic, one pass
    roomy = detail(hwmodel.with_fields(arch, weight_sram_kib=1.0), wl)
    assert roomy["dram_bits"].tolist() == [0.0] and roomy["passes"].tolist() == [1.0]


def test_linear_pool_and_pixel_counts():
    wl = workload({"name": "fc", "type": "linear", "in_shape": [8], "out_features": 4, "input_spikes": 3})
    assert hwmodel.estimate(PAPER, wl).sops == 12.0
    # a pixel-fed first layer does every synapse (dense) and reads 8-bit pixels from DRAM
    pix = workload({k: v for k, v in CONV.items() if k != "input_spikes"}, first="pixels")
    out = detail(PAPER, pix)
    assert out["sops"].tolist() == [600.0]
    assert out["dram_bits"].tolist() == [32 * 8]   # weights stay in the 256 KiB SRAM; pixels come in
    pool = workload(CONV | {"input_spikes": 8},
                    {"name": "p", "type": "maxpool", "kernel": 2, "input_spikes": 7})
    rep = hwmodel.estimate(PAPER, pool)
    assert rep.layer_sops == {"c": 150.0, "p": 0.0}
    assert pool.layers[1].out_shape == (3, 2, 2)


def test_breakdowns_sum_exactly():
    rng = np.random.default_rng(0)
    wl = hwmodel.load_workload("vgg16-tiny-imagenet")
    for _ in range(30):
        arch = hwmodel.with_fields(PAPER, pe_rows=int(rng.integers(1, 64)), weight_sram_kib=float(rng.uniform(40, 3000)),
                                   vmem_sram_kib=float(rng.uniform(8, 600)), spike_sram_kib=float(rng.uniform(4, 300)),
                                   time_window=int(rng.integers(2, 24)), tech_nm=float(rng.uniform(7, 90)))
        rep = hwmodel.estimate(arch, wl.with_firing(float(rng.uniform(0, 1))))
        assert sum(rep.energy_by_term.values()) == rep.energy_j
        assert sum(rep.energy_by_kind.values()) == rep.energy_j
        assert sum(rep.energy_by_layer.values()) == rep.energy_j
        assert math.fsum(v for row in rep.energy_breakdown.values() for v in row.values()) == rep.energy_j
        assert sum(sum(row.values()) for row in rep.latency_breakdown.values()) == rep.latency_s
        assert sum(rep.area_breakdown.values()) == rep.area_mm2
        assert sum(rep.layer_sops.values()) == rep.sops


def test_a_weight_width_outside_the_spike_codes_range_is_refused_naming_the_field():
    with pytest.raises(hwmodel.ConfigError, match=r"arch\.weight_bits: must be between 2 and 16, got 1"):
        hwmodel.with_fields(PAPER, weight_bits=1)  # hwmodel.spike_code: the one definition dse trains with too


def test_infeasible_configs_are_reported_not_raised():
    wl = hwmodel.load_workload("vgg16-cifar10")
    for changes, words in [({"pe_rows": 0}, "no processing elements"),
                           ({"weight_sram_kib": 2}, "weight SRAM smaller"), ({"vmem_sram_kib": 0}, "Vmem SRAM"),
                           ({"spike_sram_kib": 0.5}, "spike SRAM")]:
        rep = hwmodel.estimate(hwmodel.with_fields(PAPER, **changes), wl)
        assert not rep.feasible and any(words in r for r in rep.reasons), (changes, rep.reasons)
    rep = hwmodel.estimate(hwmodel.with_fields(PAPER, weight_sram_kib=2), wl)
    assert "conv4_2" in rep.reasons[0] and "conv1_1" not in rep.reasons[0]   # 512x3x3x5 bits > 2 KiB
    many = hwmodel.estimate_many(PAPER, wl, pe_rows=np.array([0, 16]), weight_sram_kib=np.array([[2], [256]]))
    assert many["feasible"].tolist() == [[False, False], [False, True]]
    assert np.isnan(many["energy_j"][0]).all() and np.isfinite(many["energy_j"][1, 1])


def test_estimate_many_equals_estimate():
    wl = hwmodel.load_workload("vgg16-cifar100")
    fields = {"pe_rows": np.array([4, 16, 33]), "weight_sram_kib": np.array([[96], [700]]),
              "sram_cell": np.array(["lstp", "hp"])[:, None, None], "time_window": 12, "tech_nm": 40}
    many = hwmodel.estimate_many(PAPER, wl, **fields)
    assert many["energy_j"].shape == (2, 2, 3)
    for idx in np.ndindex(2, 2, 3):
        arch = hwmodel.with_fields(PAPER, pe_rows=int(fields["pe_rows"][idx[2]]),
                                   weight_sram_kib=float(fields["weight_sram_kib"][idx[1], 0]),
                                   sram_cell=str(fields["sram_cell"][idx[0], 0, 0]), time_window=12, tech_nm=40)
        rep = hwmodel.estimate(arch, wl)
        assert many["feasible"][idx] == rep.feasible
        for key, value in [("energy_j", rep.energy_j), ("latency_s", rep.latency_s), ("area_mm2", rep.area_mm2),
                           ("sops", rep.sops), ("energy_dram_j", rep.energy_dram_j), ("energy_chip_j", rep.energy_chip_j)]:
            assert many[key][idx] == pytest.approx(value, rel=1e-12), key


def test_calibrated_preset_reproduces_the_paper():
    rep = hwmodel.estimate(PAPER, hwmodel.load_workload("vgg16-cifar10"))
    assert abs(rep.energy_chip_j * 1e6 / PAPER_UJ - 1) < 0.05     # the chip's energy; DRAM is reported apart
    wl = hwmodel.load_workload("vgg16-cifar10").with_firing(0.5)
    scales = fit(PAPER, wl)
    for name, (lo, hi) in RANGES.items():
        assert lo <= scales[name] <= hi
    parts = chip_parts(PAPER, wl, scales)
    assert sum(v for k, v in parts.items() if k != "dram") == pytest.approx(PAPER_UJ, rel=1e-9)
    with pytest.raises(hwmodel.ConfigError, match="outside what the ranges allow"):
        fit(PAPER, wl, target_uj=1.0)


def test_workload_files_and_spike_overlay(tmp_path):
    stats = {"schema": "snn-workload/1", "name": "measured", "input_shape": [3, 32, 32],
             "first_layer_input": "pixels", "snn": {"time_window": 8, "accuracy": 0.9},
             "layers": [layer | {"input_firing": 0.05} for layer in
                        [{"name": "conv1_1", "type": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
                         {"name": "pool1", "type": "maxpool", "kernel": 2},
                         {"name": "fc3", "type": "linear", "out_features": 10}]]}
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats))
    wl = hwmodel.load_workload(path)
    assert [layer.in_shape for layer in wl.layers] == [(3, 32, 32), (4, 32, 32), (1024,)]
    assert wl.input_spikes() == [3072.0, 0.05 * 4096, 0.05 * 1024] and wl.meta["accuracy"] == 0.9
    base = hwmodel.load_workload("vgg16-cifar10")
    over = hwmodel.overlay_spikes(base, {"layers": [{"name": "conv1_2", "input_spikes": 100.0},
                                                    {"name": "fc1", "input_firing": 0.5}]})
    spikes = dict(zip([layer.name for layer in base.layers], over.input_spikes()))
    assert spikes["conv1_2"] == 100.0 and spikes["fc1"] == 256.0 and spikes["conv2_1"] == pytest.approx(
        builtin_activity("vgg16-cifar10")["input_firing"]["conv2_1"] * 64 * 16 * 16)   # measured (activity file)
    with pytest.raises(hwmodel.ConfigError, match=r"spikes: layer conv1_9: not in workload vgg16-cifar10 \(did you mean 'conv"):
        hwmodel.overlay_spikes(base, {"layers": [{"name": "conv1_9", "input_spikes": 1}]})


@pytest.mark.parametrize("text, match", [
    ("pe_rowz: 8\n", r"arch.yaml: unknown field 'pe_rowz' \(did you mean 'pe_rows'\?\)"),
    ("pe_rows: eight\n", r"arch.yaml.pe_rows: must be a number"),
    ("weight_sram_kib: -4\n", r"arch.yaml.weight_sram_kib: must be >= 0"),
    ("pe_rows: 2.5\n", r"arch.yaml.pe_rows: must be an integer"),
    ("sram_cell: fast\n", r"arch.yaml.sram_cell: must be one of lstp, hp"),
    ("pe_rows: [1\n", r"arch.yaml: YAML syntax error at line 2"),
    ("tech_nm: 2\n", r"arch.yaml.tech_nm: the scaling rule covers"),
    ("- 1\n", r"arch.yaml: expected a mapping"),
])
def test_arch_file_errors(tmp_path, text, match):
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    with pytest.raises(hwmodel.ConfigError, match=match):
        hwmodel.load_arch(path)


def test_arch_file_inherits_and_api_errors(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("pe_rows: 4\nsram_cell: hp\n")
    arch = hwmodel.load_arch(path)
    assert (arch.name, arch.pe_count, arch.sram_cell, arch.weight_bits) == ("small", 4 * 16, "hp", 5)
    with pytest.raises(hwmodel.ConfigError, match="did you mean 'paper'"):
        hwmodel.load_arch("papr")
    with pytest.raises(hwmodel.ConfigError, match="arch.clock_mhz: must be > 0"):
        hwmodel.with_fields(PAPER, clock_mhz=0)
    with pytest.raises(hwmodel.ConfigError, match="did you mean 'vmem_sram_kib'"):
        hwmodel.estimate_many(PAPER, hwmodel.load_workload("vgg16-cifar10"), vmem_kib=np.ones(2))
    with pytest.raises(hwmodel.ConfigError, match="estimate_many.spike_sram_kib: must be >= 0"):
        hwmodel.estimate_many(PAPER, hwmodel.load_workload("vgg16-cifar10"), spike_sram_kib=np.array([1, -1]))
    with pytest.raises(hwmodel.ConfigError, match="did you mean 'vgg16-cifar10'"):
        hwmodel.load_workload("vgg16-cifar1")


@pytest.mark.parametrize("layer, match", [
    ({"name": "a", "type": "conv", "in_shape": [3, 8, 8], "out_channel": 4, "kernel": 3},
     r"layers\[0\].out_channel: unknown key \(did you mean 'out_channels'\?\)"),
    ({"name": "a", "type": "dense", "in_shape": [8]}, r"layer a.type: must be one of .*did you mean 'avgpool'|type"),
    ({"name": "a", "type": "conv", "in_shape": [3, 8, 8], "out_channels": 4, "kernel": 9},
     r"layer a.kernel: 9 does not fit"),
    ({"name": "a", "type": "linear", "in_shape": [8], "out_features": 2, "input_firing": 1.5},
     r"layer a.input_firing: must be between 0 and 1"),
    ({"name": "a", "type": "linear", "in_shape": [8], "out_features": -2}, r"layer a.out_features: must be >= 1"),
])
def test_workload_errors(layer, match):
    with pytest.raises(hwmodel.ConfigError, match=match):
        workload(layer)


def test_workload_chain_and_schema_errors(tmp_path):
    with pytest.raises(hwmodel.ConfigError, match=r"layer b.in_shape: \[5\] does not chain"):
        workload({"name": "a", "type": "linear", "in_shape": [8], "out_features": 4},
                 {"name": "b", "type": "linear", "in_shape": [5], "out_features": 2})
    path = tmp_path / "w.yaml"
    path.write_text("schema: snn-workload/2\nlayers: []\n")
    with pytest.raises(hwmodel.ConfigError, match=r"w.yaml: schema must be 'snn-workload/1'"):
        hwmodel.load_workload(path)
    path.write_text("schema: snn-workload/1\nlayer: []\n")
    with pytest.raises(hwmodel.ConfigError, match=r"unknown key 'layer' \(did you mean 'layers'\?\)"):
        hwmodel.load_workload(path)


def test_builtin_workloads():
    shapes = {name: hwmodel.load_workload(name) for name in ("vgg16-cifar10", "vgg16-cifar100", "vgg16-tiny-imagenet")}
    weights = {name: sum(layer.weights for layer in wl.layers) for name, wl in shapes.items()}
    conv = 14_710_464   # the 13 VGG-16 conv layers, 3x3, no bias
    assert weights["vgg16-cifar10"] == conv + 512 * 512 * 2 + 512 * 10
    assert weights["vgg16-tiny-imagenet"] == conv + 2048 * 512 + 512 * 512 + 512 * 200
    assert shapes["vgg16-tiny-imagenet"].layers[-1].out_shape == (200,)
    # 2x2 maps, 3x3 kernels, padding 1: each output sees 2x2 real inputs
    assert {layer.name: layer.macs for layer in shapes["vgg16-cifar10"].layers}["conv5_2"] == 512 * 512 * 16


def test_import_loads_no_heavy_packages():
    code = ("import sys, hwmodel; bad = [m for m in ('torch', 'ray', 'optuna', 'dse') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_average_pool_folds_spikes_into_the_next_layer():
    # As dse writes it: the conv after an average-pool receives every pre-pool spike (shifted by the pool),
    # so its input_spikes may exceed its own input neurons, up to kernel^2 times (here 4 x 2x2x2 = 32).
    layers = [{"name": "c1", "type": "conv", "in_shape": [1, 4, 4], "out_channels": 2, "kernel": 3, "padding": 1,
               "input_spikes": 16},
              {"name": "a1", "type": "avgpool", "kernel": 2, "input_spikes": 30},
              {"name": "c2", "type": "conv", "out_channels": 2, "kernel": 1, "input_spikes": 30}]
    wl = workload(*layers)
    assert hwmodel.estimate(PAPER, wl).layer_sops["c2"] == 30 * 2   # 1x1 conv: fan-out 2 per spike
    with pytest.raises(hwmodel.ConfigError, match=r"layer c2.input_spikes: must be between 0 and 32"):
        workload(*layers[:2], layers[2] | {"input_spikes": 33})
    with pytest.raises(hwmodel.ConfigError, match=r"layer c2.input_spikes: must be between 0 and 32"):
        hwmodel.overlay_spikes(wl, {"layers": [{"name": "c2", "input_spikes": 40}]})


def test_estimate_many_equals_estimate_over_every_field():
    rng = np.random.default_rng(1)
    n = 12
    fields = {"pe_rows": rng.integers(0, 40, n), "pe_cols": rng.integers(1, 40, n),
              "weight_sram_kib": rng.uniform(0, 3000, n), "vmem_sram_kib": rng.uniform(0, 600, n),
              "spike_sram_kib": rng.uniform(0, 300, n), "weight_bits": rng.integers(2, 9, n),
              "time_window": rng.integers(1, 33, n), "steps_per_octave": rng.integers(1, 5, n),
              "accumulator_bits": rng.choice([0, 0, 0, 48, 200], n), "clock_mhz": rng.uniform(10, 1000, n),
              "tech_nm": rng.uniform(7, 180, n), "dram": rng.choice(["lpddr4", "lpddr5", "hbm2", "none"], n),
              "batch": rng.integers(1, 9, n), "datapath": rng.choice(["log", "int"], n),
              "fire_method": rng.choice(["compare", "lod"], n), "dataflow": rng.choice(["event", "neuron"], n), "sram_cell": rng.choice(["lstp", "hp"], n),
              "weight_pin_frac": rng.uniform(0, 1, n)}
    wl = hwmodel.load_workload("vgg16-tiny-imagenet")
    many = hwmodel.estimate_many(PAPER, wl, **fields)
    assert 0 < many["feasible"].sum() < n     # both kinds drawn
    for i in range(n):
        rep = hwmodel.estimate(hwmodel.with_fields(PAPER, **{k: v[i].item() for k, v in fields.items()}), wl)
        assert many["feasible"][i] == rep.feasible
        if rep.feasible:
            for key, value in [("energy_j", rep.energy_j), ("latency_s", rep.latency_s), ("area_mm2", rep.area_mm2)]:
                assert many[key][i] == pytest.approx(value, rel=1e-12), key
        else:
            assert np.isnan(many["energy_j"][i])


