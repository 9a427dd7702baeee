"""The hwmodel half of benchmarks/zigzag_crosscheck.py (ZigZag is optional and not run here): the dense VGG-16 with
its zero border made explicit prices exactly ZigZag's loop-nest MACs, hwmodel's counts are the formulas the
benchmark's notes explain every difference with, and the fixed ZigZag mapping is complete (an incomplete one
would make ZigZag search mappings instead)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import zigzag_crosscheck as crosscheck  # noqa: E402


@pytest.fixture(scope="module")
def halves():
    hw = crosscheck.hwmodel_half()
    return hw, crosscheck.zigzag_spec(hw)


def test_hwmodel_prices_the_loop_nest_macs_with_the_notes_formulas(halves) -> None:
    hw, spec = halves
    assert [layer["name"] for layer in hw["layers"]] == crosscheck.layer_names()
    assert len(hw["layers"]) == 13
    for h, layer in zip(hw["layers"], spec["layers"]):
        assert h["macs"] == layer["k"] * layer["c"] * layer["s"] ** 2 * 9
        for what, (seen, formula) in crosscheck.hwmodel_formulas(h, layer, spec).items():
            assert seen == pytest.approx(formula, rel=1e-9), (h["name"], what)


def test_zigzag_mapping_is_complete_and_keeps_each_group_of_filters_on_chip(halves) -> None:
    _, spec = halves
    weight_bits = spec["memories"]["weight_sram"]["bits"]
    for layer, entry in zip(spec["layers"], crosscheck.mapping(spec)[1:]):
        ks = layer["k_spatial"]
        assert layer["k"] % ks == 0 and ks <= math.prod(spec["pe"])
        assert ks * layer["c"] * 9 * spec["weight_bits"] <= weight_bits
        unrolled = [int(item.split(", ")[1]) for dim in ("D1", "D2") for item in entry["spatial_mapping"][dim]]
        assert math.prod(unrolled) == ks and unrolled[0] <= spec["pe"][0] and unrolled[1] <= spec["pe"][1]
