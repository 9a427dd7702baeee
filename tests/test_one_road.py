"""Every path gives the same answer (issue 21): a constraint's verdict is the same in every export and view,
and a processor is priced through ``resolve`` on every path (search, sweep, show). Real processor-only
studies in a real SQLite storage, read back through the ``dse`` commands; no Ray (nothing trains)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest

import hwmodel
from dse.search.reports import completed, distinct_designs, feasible, hypervolume_history
from dse.search.resolve import resolve
from studies import HW_SPACE
from test_correctness import _dse, _run

ROOT = Path(__file__).resolve().parents[1]
SPIKES_T8 = ROOT / "results/cat/cifar10_small_vgg_cat_log5_spikes.json"  # a small VGG's spike file, recorded at T = 8
AREA_LIMIT = 0.7

# the area is a constraint, not an objective: every path must price it all the same
CONSTRAINED = HW_SPACE.format(study="cons", extra=f'constraints: ["area <= {AREA_LIMIT}"]\n'
                                                  "sampler: {name: grid}\nbudget: {n_trials: 12}").replace(
    "objectives: [energy, area]", "objectives: [energy, latency]")


def _area(params: dict) -> float:
    """The processor's area from hwmodel directly, beside the study (the constraint's ground truth)."""
    arch = hwmodel.with_fields(hwmodel.load_arch("paper"), **params)
    return hwmodel.estimate(arch, hwmodel.load_workload("vgg16-cifar10")).area_mm2


def test_a_constraint_gives_one_verdict_in_every_export_and_view(tmp_path) -> None:
    space, study = _run(tmp_path, CONSTRAINED, tmp_path / "results")
    directory = tmp_path / "results" / "cons"
    trials = completed(study)
    truth = {t.number: _area(t.params) <= AREA_LIMIT for t in trials}
    assert len(trials) == 12 and 0 < sum(truth.values()) < 12  # the grid has designs on both sides

    assert {t.number: feasible(t) for t in trials} == truth  # Optuna's public constraints, read back
    assert {d.trial: d.feasible for d in distinct_designs(space, trials)} == truth  # what pareto.png draws

    assert _dse("pareto", str(directory), "--out", str(tmp_path / "export"))[0] == 0
    rows = list(csv.DictReader((tmp_path / "export" / "trials.csv").open()))
    assert {int(r["trial"]): r["feasible"] == "True" for r in rows} == truth
    front = {int(r["trial"]) for r in csv.DictReader((tmp_path / "export" / "pareto.csv").open())}
    assert front and all(truth[n] for n in front)
    assert {p["trial"] for p in json.loads((tmp_path / "export" / "pareto.json").read_text())["pareto"]} == front

    # the hypervolume is the feasible trials': the same study without its infeasible trials has the same one
    only_feasible = optuna.create_study(directions=space.directions)
    only_feasible.add_trials([t for t in trials if truth[t.number]])
    assert hypervolume_history(space, study)[-1][1] == hypervolume_history(space, only_feasible)[-1][1] > 0

    code, out, _ = _dse("status", str(directory))
    assert code == 0 and f"Pareto front: {len(front)} trials" in out
    for n, ok in truth.items():
        code, out, _ = _dse("show", str(directory), str(n))
        assert code == 0 and json.loads(out)["feasible"] is ok

    assert _dse("sweep", str(directory), "--out", str(tmp_path / "sweep.csv"))[0] == 0
    swept = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    names = ("pe_rows", "weight_sram_kib", "spike_sram_kib")
    for r in swept:
        params = {k: int(float(r[k])) for k in names}
        assert (r["feasible"] == "True") == (_area(params) <= AREA_LIMIT), params
    on_front = {tuple(int(float(r[k])) for k in names) for r in swept if r["pareto"] == "True"}
    assert on_front == {tuple(t.params[k] for k in names) for t in trials if t.number in front}


def test_processor_only_search_sweep_and_show_price_the_processor_resolve_decides(tmp_path) -> None:
    """A spike file recorded at T = 8 under a sampled T = 4: the processor adapts to T = 8 and says so."""
    (tmp_path / "spikes.json").write_bytes(SPIKES_T8.read_bytes())  # a space names files beside it only
    text = """\
study: road
workloads:
  - hwmodel: spikes.json
space:
  time_window: [4, 8]
  pe_rows: [4, 8]
objectives: [energy, area]
sampler: {name: grid}
budget: {n_trials: 4}
"""
    space, study = _run(tmp_path, text, tmp_path / "results")
    workload = space.workloads[0]
    trials = completed(study)
    assert len(trials) == 4
    direct = {}
    for t in trials:
        r = resolve(space, t.params, workload)
        assert r.arch.time_window == 8
        per = t.user_attrs["per_workload"][workload.name]
        assert per["adapted"] == ({"time_window": {"processor": 4, "network": 8}} if t.params["time_window"] == 4
                                  else {})
        energy = hwmodel.estimate(r.arch, hwmodel.load_workload(str(SPIKES_T8))).energy_j * 1e6
        assert t.values[0] == pytest.approx(energy, rel=1e-12)
        direct[t.params["pe_rows"]] = energy
    by_rows = {}
    for t in trials:  # the sampled T = 4 changes nothing: the network runs at T = 8
        by_rows.setdefault(t.params["pe_rows"], set()).add(t.values[0])
    assert all(len(v) == 1 for v in by_rows.values())

    directory = tmp_path / "results" / "road"
    assert _dse("sweep", str(directory), "--out", str(tmp_path / "sweep.csv"))[0] == 0
    for r in csv.DictReader((tmp_path / "sweep.csv").open()):
        assert float(r["energy_J"]) * 1e6 == pytest.approx(direct[int(r["pe_rows"])], rel=1e-12)
    code, out, _ = _dse("show", str(directory), str(trials[0].number))
    assert code == 0 and json.loads(out)["resolved"][workload.name]["arch"]["time_window"] == 8


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["flat", "nested"])
def test_flat_and_nested_search_price_a_fixed_spike_file_through_resolve(ray_local, tmp_path, mode) -> None:
    """A digits network trained at T = 4 beside a fixed spike file recorded at T = 8: the spike file's processor
    is adapted to T = 8 (and says so) in flat and nested search alike, at the energy hwmodel gives directly."""
    (tmp_path / "spikes.json").write_bytes(SPIKES_T8.read_bytes())
    text = f"""\
study: {mode}
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {{epochs: 1, batch_size: 128, width: 0.25, max_train_images: 256}}
  - hwmodel: spikes.json
space:
  time_window: [4]
  pe_rows: [4, 8]
objectives: [accuracy, energy]
sampler: {{name: random, seed: 0}}
budget: {{n_trials: {2 if mode == "flat" else 1}}}
resources: {{cpus: 1, max_concurrent: 1}}
search: {{mode: {mode}}}
"""
    space, study = _run(tmp_path, text, tmp_path / "results")
    fixed = space.workloads[1]
    trials = completed(study)
    assert trials
    for t in trials:
        per = t.user_attrs["per_workload"][fixed.name]
        assert per["adapted"] == {"time_window": {"processor": 4, "network": 8}}
        arch = resolve(space, t.params, fixed).arch
        assert arch.time_window == 8 and arch.pe_rows == t.params["pe_rows"]
        energy = hwmodel.estimate(arch, hwmodel.load_workload(str(tmp_path / "spikes.json"))).energy_j * 1e6
        assert per["energy"] == pytest.approx(energy, rel=1e-12)


def test_the_progress_line_the_final_line_and_status_count_the_same_front(tmp_path) -> None:
    """Random draws from 4 designs repeat designs: the progress line counted every duplicate on the front
    (Optuna's best_trials), the final line and ``dse status`` each design once."""
    text = HW_SPACE.format(study="count", extra="sampler: {name: random, seed: 0}\nbudget: {n_trials: 12}").replace(
        "pe_rows: [4, 8, 16]", "pe_rows: [4, 8]").replace("spike_sram_kib: [16, 64]", "spike_sram_kib: [64]")
    space_file = tmp_path / "space.yaml"
    space_file.write_text(text)
    code, out, err = _dse("search", str(space_file), "--results-dir", str(tmp_path / "results"))
    assert code == 0
    progress = int(err.strip().splitlines()[-1].split("pareto ")[1].split()[0])
    final = int(out.split(" Pareto-optimal trials")[0].split()[-1])
    status = _dse("status", str(tmp_path / "results" / "count"))[1]
    trials = completed(optuna.load_study(study_name="count",
                                         storage=f"sqlite:///{tmp_path / 'results' / 'count' / 'study.db'}"))
    assert sum("duplicate_of" in t.user_attrs for t in trials) > 0   # the draw did repeat designs
    assert progress == final and f"Pareto front: {final} trials" in status
