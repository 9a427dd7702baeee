"""The exported files of a study: SI columns and keys, distinct designs, staircase fronts, bounded
hypervolume, the paper's chip on the paper's studies. Built on a real Optuna storage, without Ray."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from dse.search.reports import distinct_designs, export_study, hypervolume_history, staircase
from dse.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
study: ex
workloads:
  - dataset: {dataset}
    model: {model}
space:
  weight_bits: [3, 4, 5]
  pe_rows: [4, 8]
objectives: [accuracy, energy]
"""
# (weight_bits, pe_rows) -> accuracy %, energy uJ, area mm2, latency ms; (5, 8) appears twice
POINTS = [((3, 4), 80.0, 0.5, 1.0, 0.2), ((4, 4), 90.0, 2.0, 1.2, 0.3), ((5, 8), 95.0, 50.0, 2.0, 0.1),
          ((4, 8), 85.0, 10.0, 0.8, 0.4), ((5, 8), 95.0, 50.0, 2.0, 0.1)]


def _study(tmp_path: Path, dataset: str = "digits", model: str = "tiny_vgg"):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.format(dataset=dataset, model=model))
    space = load_space(path)
    study = optuna.create_study(study_name="ex", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "minimize"])
    dists = {"weight_bits": CategoricalDistribution([3, 4, 5]), "pe_rows": CategoricalDistribution([4, 8])}
    for (bits, rows), acc, energy, area, latency in POINTS:
        per = {"w0": {"accuracy": acc, "energy": energy, "area": area, "latency": latency, "feasible": True}}
        study.add_trial(optuna.trial.create_trial(
            params={"weight_bits": bits, "pe_rows": rows}, distributions=dists, values=[acc, energy],
            constraints={"feasible_processor": 0.0}, user_attrs={"per_workload": {space.workloads[0].name: per["w0"]},
                                                                 "test_accuracy": acc - 1.5}))
    return space, study


def test_machine_outputs_are_si_with_the_unit_in_every_name(tmp_path) -> None:
    space, study = _study(tmp_path)
    files = export_study(space, study, tmp_path / "out")
    rows = list(csv.DictReader(open(files["trials.csv"])))
    assert list(rows[0])[4:7] == ["val_accuracy_percent", "energy_J", "test_accuracy_percent"]
    assert [float(r["energy_J"]) for r in rows] == [e / 1e6 for _, _, e, _, _ in POINTS]
    assert [float(r["test_accuracy_percent"]) for r in rows] == [a - 1.5 for _, a, _, _, _ in POINTS]
    doc = json.loads(files["pareto.json"].read_text())
    assert doc["objectives"] == {"val_accuracy_percent": "maximize", "energy_J": "minimize"}
    first = doc["pareto"][0]
    assert first["values"] == {"val_accuracy_percent": 80.0, "energy_J": 0.5 / 1e6}
    assert set(next(iter(first["per_workload"].values()))) == {"val_accuracy_percent", "energy_J", "area_mm2",
                                                               "latency_s", "feasible"}
    assert 0.0 < doc["hypervolume_fraction"] <= 1.0


def test_designs_are_distinct_and_each_view_has_its_own_staircase(tmp_path) -> None:
    space, study = _study(tmp_path)
    designs = distinct_designs(space, study.get_trials())
    assert [d.trial for d in designs] == [0, 1, 2, 3]  # trial 4 repeats trial 2's design
    assert designs[0].metrics == {"accuracy": 80.0, "energy": 0.5, "area": 1.0, "latency": 0.2}
    points = [(d.metrics["energy"], d.metrics["accuracy"]) for d in designs]
    assert staircase(points, maximize_y=True) == [(0.5, 80.0), (2.0, 90.0), (50.0, 95.0)]  # (10, 85) is dominated
    area = [(d.metrics["energy"], d.metrics["area"]) for d in designs]
    assert staircase(area, maximize_y=False) == [(0.5, 1.0), (10.0, 0.8)]


def test_hypervolume_is_a_fraction_of_the_box(tmp_path) -> None:
    space, study = _study(tmp_path)
    history = hypervolume_history(space, study)
    values = [v for _, v in history]
    assert values == sorted(values) and all(0.0 <= v <= 1.0 for v in values)
    # minimization (-accuracy, energy) scaled to [0, 1] between ideal (-95, 0.5) and nadir (-80, 50): the front
    # (1, 0), (1/3, 1.5/49.5), (0, 1); (85 %, 10 uJ) is dominated. Exact 2-D sweep against reference 1.1:
    area = 1.1 * (1.1 - 1.0) + (1.1 - 1 / 3) * (1.0 - 1.5 / 49.5) + (1.1 - 1.0) * (1.5 / 49.5)
    assert values[-1] == pytest.approx(area / 1.21, rel=1e-9)


@pytest.mark.parametrize("dataset, model, star", [("cifar10", "vgg16", True), ("digits", "tiny_vgg", False)])
def test_the_papers_chip_is_drawn_on_the_papers_studies_only(tmp_path, dataset, model, star) -> None:
    space, study = _study(tmp_path, dataset, model)
    files = export_study(space, study, tmp_path / "out")
    html = files["pareto.html"].read_text()
    assert ("Lew et al. 2022" in html) == star
    assert f"{model} on {dataset}" in html and "energy per inference (J)" in html
    assert "trial 3\\u003cbr\\u003eweight_bits = 4" in html  # the hover label of a point
    assert files["pareto.png"].read_bytes()[:4] == b"\x89PNG"


def test_status_takes_the_space_file_or_the_study_directory_and_prints_people_units(tmp_path, capsys) -> None:
    from dse.cli import main

    directory = tmp_path / "runs" / "ex"
    directory.mkdir(parents=True)
    _study(directory)  # space.yaml and study.db in the study directory, as dse search leaves them
    assert main(["status", str(directory / "space.yaml"), "--results-dir", str(tmp_path / "runs")]) == 0
    by_file = capsys.readouterr().out
    assert main(["status", str(directory)]) == 0
    assert capsys.readouterr().out == by_file
    assert "study ex: 5 trials: 5 complete" in by_file
    assert "80.0 %" in by_file and "500 nJ" in by_file and "50.0 uJ" in by_file  # 0.5 uJ and 50 uJ, auto-scaled
