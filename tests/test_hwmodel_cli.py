"""The ``hwmodel`` command line, run as a real subprocess: outputs, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

import hwmodel


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwmodel.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_estimate_table_and_json():
    table = run("estimate", "--arch", "paper", "--workload", "vgg16-cifar10")
    assert table.returncode == 0, table.stderr
    assert "conv5_3" in table.stdout and "pJ/SOP" in table.stdout
    out = run("estimate", "--workload", "vgg16-tiny-imagenet", "--format", "json")
    data = json.loads(out.stdout)
    rep = hwmodel.estimate(hwmodel.load_arch("paper"), hwmodel.load_workload("vgg16-tiny-imagenet"))
    assert data["energy_j"] == rep.energy_j and data["feasible"] is True
    assert set(data["breakdowns"]["energy_j"]) == set(rep.layers)


def test_estimate_with_spike_file(tmp_path):
    spikes = tmp_path / "stats.yaml"
    spikes.write_text("layers:\n  - {name: conv1_2, input_firing: 0.0}\n  - {name: conv2_1, input_spikes: 0}\n")
    out = run("estimate", "--spikes", str(spikes), "--format", "json")
    data = json.loads(out.stdout)
    assert data["breakdowns"]["sops"]["conv1_2"] == 0 and data["breakdowns"]["sops"]["conv2_1"] == 0
    assert data["breakdowns"]["sops"]["conv2_2"] > 0


@pytest.mark.parametrize("args, words", [
    (("estimate", "--arch", "nope"), "'nope' is neither a preset"),
    (("estimate", "--workload", "vgg16-cifar1"), "did you mean 'vgg16-cifar10'"),
    (("estimate", "--format", "xml"), "invalid choice: 'xml'"),
    (("estimate", "--spikes", "/nonexistent/stats.json"), "spikes: no such file"),
    (("sweep", "--set", "pe_rowz=1,2"), "did you mean 'pe_rows'"),
    (("sweep", "--set", "pe_rows=a,b"), "--set pe_rows: cannot read"),
    (("sweep", "--set", "pe_rows=-1,2"), "estimate_many.pe_rows: must be >= 0"),
    (("sweep",), "give at least one --set"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_errors_are_one_line_exit_2(args, words):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_bad_arch_file_names_file_and_field(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("pe_rows: 8\nweight_sram_kb: 64\n")
    out = run("estimate", "--arch", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {path}: unknown field 'weight_sram_kb' (did you mean 'weight_sram_kib'?)"
    path.write_text("pe_rows: 8\n  bad: [\n")
    out = run("estimate", "--arch", str(path))
    assert out.returncode == 2 and "YAML syntax error at line 2" in out.stderr and len(out.stderr.splitlines()) == 1


def test_sweep_writes_csv_grid(tmp_path):
    dest = tmp_path / "sweep.csv"
    out = run("sweep", "--set", "pe_rows=0,8,16", "--set", "vmem_sram_kib=64:128:64", "--set", "sram_cell=lstp,hp",
              "--out", str(dest))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert len(rows) == 3 * 2 * 2
    assert {r["vmem_sram_kib"] for r in rows} == {"64.0", "128.0"}
    assert all((r["feasible"] == "True") == (r["pe_rows"] != "0") for r in rows)
    row = next(r for r in rows if r["pe_rows"] == "16" and r["vmem_sram_kib"] == "128.0" and r["sram_cell"] == "lstp")
    assert float(row["energy_j"]) == pytest.approx(
        hwmodel.estimate(hwmodel.load_arch("paper"), hwmodel.load_workload("vgg16-cifar10")).energy_j, rel=1e-5)


def test_calibrate_reports_all_builtins(tmp_path):
    dest = tmp_path / "cal.json"
    out = run("calibrate", "--firing", "0.5", "--out", str(dest))
    assert out.returncode == 0, out.stderr
    data = json.loads(dest.read_text())
    assert abs(data["error_pct"]) < 1e-6 and data["activity"]["firing"] == 0.5
    assert set(data["same_constants"]) == {"vgg16-cifar10", "vgg16-cifar100", "vgg16-tiny-imagenet"}
    assert run("calibrate", "--target-uj", "5", "--out", str(dest)).returncode == 2


def test_sweep_rows_say_why_they_are_infeasible_and_help_lists_the_fields() -> None:
    out = run("sweep", "--arch", "paper", "--workload", "vgg16-cifar10", "--set", "pe_rows=0,8",
              "--set", "vmem_sram_kib=0,128")
    assert out.returncode == 0, out.stderr
    rows = {(r["pe_rows"], r["vmem_sram_kib"]): r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows[("8", "128.0")]["feasible"] == "True" and rows[("8", "128.0")]["infeasible_because"] == ""
    assert rows[("0", "128.0")]["infeasible_because"] == "no processing elements (pe_rows x pe_cols = 0)"
    assert rows[("0", "0.0")]["infeasible_because"].startswith("no processing elements (pe_rows x pe_cols = 0); "
                                                             "Vmem SRAM smaller than one output channel's potentials")
    for (pe, kib), row in rows.items():  # the same reasons the scalar estimate gives (which names the layers)
        if kib == "0.0":
            continue
        report = hwmodel.estimate(hwmodel.with_fields(hwmodel.load_arch("paper"), pe_rows=int(pe),
                                                      vmem_sram_kib=float(kib)),
                                  hwmodel.load_workload("vgg16-cifar10"))
        assert row["infeasible_because"] == "; ".join(report.reasons)
    helptext = run("sweep", "--help").stdout
    assert all(name in helptext for name in hwmodel.FIELDS)


def test_a_builtin_says_whose_activity_it_carries_and_when_it_is_borrowed() -> None:
    own = run("estimate", "--arch", "paper", "--workload", "vgg16-cifar10").stdout.splitlines()[0]
    borrowed = run("estimate", "--arch", "paper", "--workload", "vgg16-cifar100").stdout.splitlines()[0]
    assert "activity: vgg16 on cifar10" in own and "borrowed" not in own
    assert "activity: vgg16 on cifar10, 88.2 %: borrowed, no cifar100 network measured" in borrowed
    assert json.loads(run("estimate", "--arch", "paper", "--workload", "vgg16-cifar100", "--format", "json").stdout)[
        "activity"].endswith("borrowed, no cifar100 network measured")


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    """`hwmodel estimate | true`: the reader is gone before the first write (Python starts far slower than
    `true`), so every write meets a closed pipe; the command exits 0 without a word (it printed
    'error: : Broken pipe' and exited 2)."""
    out = subprocess.run(f"set -o pipefail; {sys.executable} -m hwmodel.cli estimate --arch paper | true",
                         shell=True, capture_output=True, text=True, executable="/bin/bash")
    assert (out.returncode, out.stderr) == (0, "")
