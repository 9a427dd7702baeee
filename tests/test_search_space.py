"""The search-space schema: accepted files load, every mistake is one line naming the key and its path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dse.util.errors import UserError
from dse.search.space import load_space, parse_space

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
study: s
workloads:
  - hwmodel: vgg16-cifar10
space:
  pe_rows: {type: int, low: 4, high: 32, step: 4}
  weight_sram_kib: [128, 256]
objectives: [energy, area]
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return load_space(path)


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_load(path: Path) -> None:
    space = load_space(path)
    assert space.params and space.objectives and space.workloads


def test_base_space_parses_into_params_and_targets(tmp_path) -> None:
    space = _load(tmp_path, BASE)
    assert [p.name for p in space.params] == ["pe_rows", "weight_sram_kib"]
    assert space.params[0].grid() == [4, 8, 12, 16, 20, 24, 28, 32]
    assert {p.target for p in space.params} == {"arch"}
    assert space.directions == ["minimize", "minimize"]


BROKEN = [
    ("study: [unclosed\n", r"space.yaml:\d+:\d+: not valid YAML"),
    (BASE.replace("objectives:", "objectivs:"), r"objectivs: unknown key \(did you mean 'objectives'\?\)"),
    (BASE.replace("pe_rows:", "pe_row:"), r"space.pe_row: not a training or processor parameter \(did you mean 'pe_rows'\?\)"),
    (BASE.replace("low: 4, high: 32", "low: 40, high: 32"), r"space.pe_rows: low \(40\) is greater than high \(32\)"),
    (BASE.replace("low: 4, high: 32", "low: four, high: 32"), r"space.pe_rows.low: expected a number, got 'four'"),
    (BASE.replace("step: 4", "step: 5"), r"space.pe_rows.step: high - low \(28\) is not a multiple of step"),
    (BASE.replace("[energy, area]", "[energy, power]"), r"objectives\[1\]: unknown objective 'power'"),
    (BASE.replace("[energy, area]", "[accuracy, energy]"), r"objectives: accuracy needs at least one workload"),
    (BASE.replace("hwmodel: vgg16-cifar10", "dataset: cifar11"), r"workloads\[0\].dataset: unknown dataset 'cifar11'"),
    (BASE.replace("hwmodel: vgg16-cifar10", "hwmodel: vgg99"), r"workloads\[0\].hwmodel: "),
    (BASE.replace("study: s", "study: ../escape"), r"study: expected a name .* \(no paths\)"),
    (BASE.replace("study: s", "study: /abs/path"), r"study: expected a name"),
    (BASE.replace("weight_sram_kib: [128, 256]", "weight_sram_kib: []"), r"space.weight_sram_kib.choices: expected a non-empty list"),
    (BASE.replace("weight_sram_kib: [128, 256]", "weight_sram_kib: [-1, 256]"), r"space.weight_sram_kib: .*weight_sram_kib"),
    (BASE + "sampler: cmaes\n", r"sampler.name: unknown sampler 'cmaes'"),
    (BASE + "constraints: ['area < 3']\n", r"constraints\[0\]: expected '<metric> <= <value>'"),
    (BASE + "budget: {n_trials: 0}\n", r"budget.n_trials: must be >= 1"),
    (BASE + "resources: {cpus: 0}\n", r"resources: cpus must be > 0"),
    ("- just\n- a list\n", r"expected a mapping, got list"),
    (BASE.replace("space:\n  pe_rows: {type: int, low: 4, high: 32, step: 4}\n  weight_sram_kib: [128, 256]\n", "space: {}\n"),
     r"space: expected a non-empty mapping"),
]


@pytest.mark.parametrize("text,message", BROKEN, ids=range(len(BROKEN)))
def test_broken_space_is_one_clear_error(tmp_path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        _load(tmp_path, text)
    assert "\n" not in str(info.value)


def test_training_field_errors_name_the_workload_path() -> None:
    data = {"study": "s", "workloads": [{"dataset": "digits", "train": {"epoch": 3}}], "space": {"width": [0.5, 1.0]},
            "objectives": ["accuracy"]}
    with pytest.raises(UserError, match=r"workloads\[0\].train.epoch: unknown key \(did you mean 'epochs'\?\)"):
        parse_space(data)


def test_pyyaml_exponent_without_dot_is_accepted_as_a_number(tmp_path) -> None:
    space = _load(tmp_path, BASE.replace("weight_sram_kib: [128, 256]", "clock_mhz: {type: float, low: 1e2, high: 4e2, log: true}"))
    assert space.params[1].low == 100.0 and space.params[1].high == 400.0


def test_cli_reports_a_bad_space_in_one_line_with_exit_2(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("objectives:", "objectivs:"))
    proc = subprocess.run([sys.executable, "-m", "dse.cli", "search", str(path), "--results-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "objectivs: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing started, nothing written
