"""Property-based tests (hypothesis) of the config loaders and of hwmodel's estimates.

Inputs are arbitrary YAML-able documents and mutations of valid ones (a key dropped or renamed, a value
of another type, extreme numbers, NaN/inf, huge integers). The loaders must accept them or raise the
project's ``ConfigError`` / ``UserError`` with a one-line message; what they accept must survive a dump
and a reload unchanged; what hwmodel accepts it must price with finite, non-negative totals whose
breakdowns sum to them exactly, or call infeasible with a reason.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel
from dse.search.space import load_space, parse_space
from hwmodel.errors import ConfigError
from hwmodel.workload import parse_workload

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
# module-scoped directories are reused across examples: each example writes its own file names
SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- documents -------------------------------------------------------------------------------------------
EXTREMES = [0, -1, 1, 2, 0.5, 2**31, 2**63, 2**64 + 1, 10**400, -10**400, 1e308, -1e308, 5e-324, math.nan,
            math.inf, -math.inf, "", " ", "1e400", "nan", "../x", "/etc/passwd", "a" * 300, "\x00", True, False,
            None, [], {}, [[]], {"": None}]
keys = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**400, max_value=10**400)
           | st.floats() | st.text(max_size=12) | st.sampled_from(EXTREMES))
documents = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
                         max_leaves=16)


def _paths(doc, prefix=()):
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _at(doc, path):
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def mutated(draw, base: dict):
    """``base`` after 1-3 random edits at random places in its tree."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["drop", "extreme", "any", "rename", "retype", "copy"]))
        if op == "drop":
            del parent[key]
        elif op == "extreme":
            parent[key] = draw(st.sampled_from(EXTREMES))
        elif op == "any":
            parent[key] = draw(documents)
        elif op == "rename" and isinstance(parent, dict):
            cut = draw(st.integers(0, len(str(key))))
            parent[str(key)[:cut] + draw(st.sampled_from(["", "s", "_", "x"])) + str(key)[cut + 1:]] = parent.pop(key)
        elif op == "retype":
            value = parent[key]
            parent[key] = draw(st.sampled_from([str(value), [value], {"value": value}, None]))
        elif op == "copy":  # a value from elsewhere in the document: right shape, wrong place
            parent[key] = copy.deepcopy(_at(doc, draw(st.sampled_from(paths))))
    return doc


def one_line_error(exc: BaseException) -> None:
    assert isinstance(exc, ConfigError), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.strip() and "\n" not in message, repr(message)


def dumpable(doc) -> bool:
    try:
        yaml.safe_dump(doc)
    except yaml.YAMLError:
        return False
    return True


# --- search-space files ------------------------------------------------------------------------------------
SPACE = {
    "study": "prop",
    "workloads": [{"hwmodel": "vgg16-cifar10"}, {"dataset": "digits", "model": "tiny_vgg", "name": "d",
                                                  "train": {"epochs": 2, "lr": 0.05, "augment": False}}],
    "space": {"weight_bits": [3, 5], "time_window": {"type": "int", "low": 2, "high": 8, "step": 2},
              "pe_rows": {"type": "int", "low": 4, "high": 32, "log": True},
              "clock_mhz": {"type": "float", "low": 100.0, "high": 400.0, "step": 50.0},
              "width": {"choices": [0.5, 1.0]}},
    "objectives": ["accuracy", "energy", "area"],
    "aggregate": "worst",
    "constraints": ["area <= 10", "accuracy >= 50"],
    "sampler": {"name": "tpe", "seed": 3},
    "budget": {"n_trials": 12, "timeout": 600},
    "resources": {"cpus": 1, "gpus": 0, "max_concurrent": 2},
    "arch": "paper",
}


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spaces")


def check_space(doc, directory: Path):
    try:
        space = parse_space(doc, directory)
    except Exception as exc:  # noqa: BLE001 - the property: nothing but a one-line ConfigError
        one_line_error(exc)
        return None
    # the driver writes ``source`` to RESULTS/<study>/space.yaml; `dse pareto/status/show` reload it
    saved = directory / "saved.yaml"
    saved.write_text(yaml.safe_dump(space.source, sort_keys=False))
    assert load_space(saved) == space
    return space


@SETTINGS
@given(doc=mutated(SPACE))
def test_mutated_space_is_accepted_and_round_trips_or_fails_in_one_line(doc, space_dir):
    check_space(doc, space_dir)


@SETTINGS
@given(doc=documents | st.dictionaries(st.sampled_from(sorted(SPACE)), documents, max_size=6))
def test_arbitrary_document_is_never_a_crash_as_a_space(doc, space_dir):
    check_space(doc, space_dir)


@SETTINGS
@given(doc=mutated(SPACE))
def test_space_file_loads_like_its_document(doc, space_dir):
    """The same documents through YAML text and ``load_space``: the same verdict, and the error names the file."""
    if not dumpable(doc):
        return
    path = space_dir / "space.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    reloaded = yaml.safe_load(path.read_text())
    try:
        expected = parse_space(reloaded, space_dir)
    except ConfigError as exc:
        expected = exc
    try:
        got = load_space(path)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        assert isinstance(expected, ConfigError) and str(exc) == f"{path}: {expected}"
        return
    assert got == expected


def test_valid_space_is_accepted(space_dir):
    space = check_space(SPACE, space_dir)
    assert space is not None and [p.name for p in space.params] == list(SPACE["space"])


# --- processor files ---------------------------------------------------------------------------------------
PAPER = yaml.safe_load((Path(hwmodel.__file__).parent / "presets" / "paper.yaml").read_text())


@pytest.fixture(scope="module")
def arch_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("archs")


def load_arch_doc(doc, directory: Path):
    """``doc`` as a processor file; the Arch, or None after checking the error."""
    if not dumpable(doc):
        return None
    path = directory / "arch.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        return hwmodel.load_arch(path)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        return None


@SETTINGS
@given(doc=mutated(PAPER) | documents | st.dictionaries(st.sampled_from(sorted(PAPER) + ["base"]), documents))
def test_arch_file_is_accepted_and_round_trips_or_fails_in_one_line(doc, arch_dir):
    arch = load_arch_doc(doc, arch_dir)
    if arch is None:
        return
    again = arch_dir / "again.yaml"
    again.write_text(yaml.safe_dump(arch.to_dict()))
    assert hwmodel.load_arch(again) == arch


# --- workload and spike-statistics files -----------------------------------------------------------------
WORKLOAD = {
    "schema": "snn-workload/1", "name": "w", "input_shape": [3, 16, 16], "first_layer_input": "pixels",
    "default_input_firing": 0.2,
    "layers": [
        {"name": "c1", "type": "conv", "out_channels": 8, "kernel": 3, "padding": 1},
        {"name": "p1", "type": "avgpool", "kernel": 2},
        {"name": "c2", "type": "conv", "out_channels": 16, "kernel": 3, "stride": 2, "input_spikes": 900.0},
        {"name": "p2", "type": "maxpool", "kernel": 3, "stride": 1},
        {"name": "f1", "type": "linear", "out_features": 10, "input_firing": 0.5, "output_spikes": 4.0},
    ],
    "snn": {"time_window": 8, "weight_bits": 5},
}


@pytest.fixture(scope="module")
def workload_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workloads")


def parse_or_none(doc):
    try:
        return parse_workload(doc, "w.yaml")
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        return None


@SETTINGS
@given(doc=mutated(WORKLOAD) | documents)
def test_workload_is_accepted_and_round_trips_or_fails_in_one_line(doc, workload_dir):
    wl = parse_or_none(doc)
    if wl is None:
        return
    for suffix, text in ((".yaml", yaml.safe_dump(doc)), (".json", json.dumps(doc))):
        path = workload_dir / f"w{suffix}"
        path.write_text(text)
        assert dataclasses.replace(hwmodel.load_workload(path), source="w.yaml") == wl


@SETTINGS
@given(doc=mutated({"layers": [{"name": "c2", "input_spikes": 10.0}, {"name": "f1", "input_firing": 0.1}],
                    "snn": {"accuracy": 0.9}}) | documents)
def test_spike_overlay_is_applied_or_fails_in_one_line(doc):
    wl = parse_workload(WORKLOAD, "w.yaml")
    try:
        out = hwmodel.overlay_spikes(wl, doc)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        return
    assert [layer.name for layer in out.layers] == [layer.name for layer in wl.layers]


# --- estimates -----------------------------------------------------------------------------------------------
FIELD_VALUES = {
    "pe_rows": st.integers(0, 64) | st.sampled_from([10**9, 10**10]),
    "pe_cols": st.integers(0, 64),
    "weight_sram_kib": st.floats(0, 4096) | st.sampled_from([1e9, 1e12, 1e300, math.inf]),
    "vmem_sram_kib": st.floats(0, 1024) | st.sampled_from([1e9, math.inf]),
    "spike_sram_kib": st.floats(0, 1024) | st.sampled_from([1e9, 1e300]),
    "weight_bits": st.integers(0, 12),
    "time_window": st.integers(0, 64) | st.sampled_from([10**9, 2**70]),
    "steps_per_octave": st.integers(0, 8),
    "accumulator_bits": st.integers(0, 64) | st.sampled_from([10**9]),
    "clock_mhz": st.floats(0, 5000) | st.sampled_from([1e-300, 1e300]),
    "tech_nm": st.floats(0, 400),
    "dram": st.sampled_from(["lpddr4", "lpddr5", "hbm2", "none", "ddr9"]),
    "batch": st.integers(0, 64) | st.sampled_from([10**9]),
    "datapath": st.sampled_from(["log", "int", "float"]),
    "fire_method": st.sampled_from(["compare", "lod", "never"]),
    "sram_cell": st.sampled_from(["lstp", "hp", "sram"]),
    "weight_pin_frac": st.floats(-0.5, 1.5),
}


def check_report(rep: hwmodel.Report) -> None:
    """Feasible or not, the numbers are finite and add up; an infeasible report says why."""
    assert rep.feasible == (not rep.reasons) and all(r.strip() for r in rep.reasons)
    totals = (rep.energy_j, rep.latency_s, rep.area_mm2, rep.sops)
    assert all(math.isfinite(v) and v >= 0 for v in totals), totals
    cells = [v for row in rep.energy_breakdown.values() for v in row.values()]
    assert all(math.isfinite(v) and v >= 0 for v in cells)
    # the report's promise: every breakdown sums exactly to its total
    assert sum(cells) == rep.energy_j
    assert sum(sum(row.values()) for row in rep.latency_breakdown.values()) == rep.latency_s
    assert sum(rep.area_breakdown.values()) == rep.area_mm2
    assert sum(rep.layer_sops.values()) == rep.sops
    assert sum(rep.energy_by_kind.values()) == rep.energy_j


@SETTINGS
@given(changes=st.fixed_dictionaries({}, optional=FIELD_VALUES), firing=st.floats(0, 1),
       workload=st.sampled_from(["vgg16-cifar10", "vgg16-tiny-imagenet", "small"]))
def test_estimate_of_any_accepted_processor(changes, firing, workload):
    try:
        arch = hwmodel.with_fields(hwmodel.load_arch("paper"), **changes)
    except Exception as exc:  # noqa: BLE001
        one_line_error(exc)
        return
    wl = parse_workload(WORKLOAD, "w") if workload == "small" else hwmodel.load_workload(workload).with_firing(firing)
    rep = hwmodel.estimate(arch, wl)
    check_report(rep)
    many = hwmodel.estimate_many(arch, wl, pe_rows=np.array([arch.pe_rows]))
    assert bool(many["feasible"][0]) == rep.feasible
    if rep.feasible:
        assert many["energy_j"][0] == pytest.approx(rep.energy_j, rel=1e-9)


@SETTINGS
@given(doc=mutated(WORKLOAD))
def test_estimate_of_any_accepted_workload(doc):
    wl = parse_or_none(doc)
    if wl is not None:
        check_report(hwmodel.estimate(hwmodel.load_arch("paper"), wl))
