"""Nested search (networks sampled, processors solved) and warm start, on real Ray, real Optuna storage
and the real digits dataset."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys

import numpy as np
import optuna
import pytest

import hwmodel
from dse.search.cache import cache_key, data_fingerprint, train_cached
from dse.search.driver import RunOptions, run_search
from dse.search.nested import processor_params
from dse.search.reports import export_study, front, pareto_mask, to_minimization
from dse.search.resolve import resolve
from dse.search.space import load_space
from dse.search.warm_start import nearest, train_network
from dse.train.spec import TrainSpec
from studies import ENV, write_space

pytestmark = pytest.mark.ray

NESTED = """\
study: {study}
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {{epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512}}
space:
  weight_bits: [3, 4]
  time_window: [2, 4]
  pe_rows: [4, 8, 16]
  weight_sram_kib: [64, 256]
  spike_sram_kib: [16, 64]
objectives: [accuracy, energy, area]
constraints: ["area <= {area}"]
search: {{mode: nested{extra}}}
sampler: {{name: random, seed: 1}}
budget: {{n_trials: {n}}}
resources: {{cpus: 1}}
"""


def _nested(tmp_path, study="nested", n=4, area=100.0, extra=""):
    path = write_space(tmp_path, NESTED.format(study=study, n=n, area=area, extra=extra))
    return load_space(path), path


def _exact_front(space, study) -> set[tuple]:
    """Every (network, processor) of the space priced by the scalar hwmodel estimate, from the networks the
    study trained (their spike statistics in the cache); the feasible non-dominated ones."""
    networks = {}
    for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
        networks[(t.params["weight_bits"], t.params["time_window"])] = t.user_attrs["per_workload"]["digits"]
    names = [p.name for p in space.params]
    points, values = [], []
    for (bits, window), per in networks.items():
        for combo in itertools.product(*(p.grid() for p in processor_params(space))):
            params = {"weight_bits": bits, "time_window": window,
                      **dict(zip([p.name for p in processor_params(space)], combo))}
            arch = resolve(space, params, space.workloads[0]).arch
            r = hwmodel.estimate(arch, hwmodel.load_workload(per["spike_stats"]))
            if r.feasible and r.area_mm2 <= space.constraints[0].value:
                points.append(tuple(params[n] for n in names))
                values.append((per["accuracy"], r.energy_j * 1e6, r.area_mm2))
    mask = pareto_mask(to_minimization(np.array(values), space.objectives))
    return {p for p, m in zip(points, mask) if m}


def test_nested_front_is_the_exact_union_over_networks_and_exports_show_processors(ray_local, tmp_path) -> None:
    space, path = _nested(tmp_path, area=30.0)
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len({t.user_attrs["network"] for t in done}) == 4  # the budget counts networks: all four
    names = [p.name for p in space.params]
    got = {tuple(t.params[n] for n in names) for t in front(study)}
    assert got == _exact_front(space, study)
    assert all(t.values[2] <= 30.0 for t in front(study))  # the constraint holds on the front
    files = export_study(space, study, tmp_path / "nested")
    rows = list(csv.DictReader(open(files["pareto.csv"])))
    assert {(int(r["weight_bits"]), int(r["time_window"]), int(r["pe_rows"]), float(r["weight_sram_kib"]),
             float(r["spike_sram_kib"])) for r in rows} == got
    shown = subprocess.run([sys.executable, "-m", "dse.cli", "show", str(tmp_path / "nested"), str(rows[0]["trial"])],
                           capture_output=True, text=True, timeout=120, env=ENV)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["arch"]["pe_rows"] == int(rows[0]["pe_rows"]) == doc["resolved"]["digits"]["arch"]["pe_rows"]
    # each agreement carries the images it was measured on: the ANN's 256 of digits' 360 test images
    exported = json.loads(files["pareto.json"].read_text())["pareto"]
    assert all(p["per_workload"]["digits"]["ann_images"] == 256 for p in exported)
    assert doc["per_workload"]["digits"]["ann_images"] == 256 and doc["per_workload"]["digits"]["agreement"] == 1.0
    status = subprocess.run([sys.executable, "-m", "dse.cli", "status", str(tmp_path / "nested")],
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert status.returncode == 0, status.stderr
    assert "nested: 4 networks trained" in status.stdout and f"Pareto front: {len(got)} trials" in status.stdout


def test_a_sampler_stuck_on_one_network_still_covers_the_network_grid(ray_local, tmp_path, monkeypatch) -> None:
    """TPE on a small categorical grid keeps proposing the networks it solved (the CPU joint study stalled at 21
    of 72): a proposal already solved is replaced by an untrained network drawn from the grid."""
    from dse.search import samplers

    stuck = lambda *a, **k: optuna.samplers.PartialFixedSampler(  # noqa: E731
        {"weight_bits": 3, "time_window": 2}, optuna.samplers.RandomSampler(seed=0))
    monkeypatch.setattr(samplers, "make_sampler", stuck)
    space, _ = _nested(tmp_path)
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert {(t.params["weight_bits"], t.params["time_window"]) for t in done} == {(3, 2), (3, 4), (4, 2), (4, 4)}
    assert len({t.user_attrs["network"] for t in done}) == 4


def test_nested_resume_adds_networks_and_records_none_twice(ray_local, tmp_path) -> None:
    space, _ = _nested(tmp_path, study="resumed")
    cache = str(tmp_path / "cache")
    run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=cache, n_trials=2))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=cache, n_trials=4,
                                         resume=True))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    by_network: dict[tuple, set] = {}
    for t in done:
        by_network.setdefault((t.params["weight_bits"], t.params["time_window"]), set()).add(t.user_attrs["network"])
    assert len(by_network) == 4 and all(len(ids) == 1 for ids in by_network.values())
    designs = [tuple(sorted(t.params.items())) for t in done]
    assert len(designs) == len(set(designs))


def test_nested_inner_sampling_where_the_grid_is_not_enumerable(ray_local, tmp_path) -> None:
    text = NESTED.format(study="inner", n=1, area=100.0, extra=", inner_samples: 300").replace(
        "spike_sram_kib: [16, 64]", "clock_mhz: {type: float, low: 100, high: 800}")
    space = load_space(write_space(tmp_path, text))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert done and {t.user_attrs["processors_solved"] for t in done} == {300}
    clocks = [t.params["clock_mhz"] for t in done]
    assert all(100 <= c <= 800 for c in clocks) and len(set(clocks)) == len(clocks)
    values = to_minimization(np.array([t.values for t in done]), space.objectives)
    assert pareto_mask(values).all()  # what a network records is its own non-dominated set


def _digits_spec(**fields) -> TrainSpec:
    """A network that learns (about 80 % in 3 epochs: a warm start has something to keep)."""
    return TrainSpec(**{"dataset": "digits", "model": "tiny_vgg", "width": 0.25, "epochs": 3, "finetune_epochs": 1,
                        "batch_size": 32, **fields})


def test_warm_start_starts_from_the_nearest_scratch_network_and_keys_it(tmp_path) -> None:
    cache = tmp_path / "cache"
    far, _ = train_cached(_digits_spec(weight_bits=2, time_window=8), cache)
    near, _ = train_cached(_digits_spec(weight_bits=4, time_window=4), cache)
    fp = data_fingerprint(_digits_spec())
    target = _digits_spec(weight_bits=3, time_window=4)
    assert nearest(target, cache, fp) == near.checkpoint.parent.name  # 1 bit apart, against 1 bit + 1 octave
    assert nearest(_digits_spec(weight_bits=2, time_window=4), cache, fp) == far.checkpoint.parent.name
    assert nearest(_digits_spec(weight_bits=3, time_window=4, width=0.5), cache, fp) is None  # other shape
    space = load_space(write_space(tmp_path, NESTED.format(study="w", n=1, area=100.0,
                                                          extra=", warm_start: {finetune_epochs: 1}")))
    warm, hit = train_network(space, target, cache)
    assert not hit and warm.metrics["warm_from"] == near.checkpoint.parent.name
    assert warm.metrics["spec"]["epochs"] == 0 and warm.metrics["spec"]["finetune_epochs"] == 1
    assert warm.agreement == 1.0 and warm.snn_accuracy > 0.5  # exact SNN, and it kept what the source learnt
    tuned = TrainSpec.from_dict(warm.metrics["spec"])
    assert warm.checkpoint.parent.name == cache_key(tuned, fp, warm=near.checkpoint.parent.name) != cache_key(tuned, fp)
    again, hit = train_network(space, target, cache)
    assert hit and again.checkpoint == warm.checkpoint
    # the warm network is no starting point for others: only networks trained from scratch are
    assert nearest(_digits_spec(weight_bits=3, time_window=2), cache, fp) == near.checkpoint.parent.name


OPTIONAL = """\
study: opt
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512}
  - dataset: cifar100
    model: tiny_vgg
    optional: true
space:
  weight_bits: [3, 4]
  pe_rows: [4, 8]
objectives: [accuracy, energy]
sampler: {name: random, seed: 0}
budget: {n_trials: 2}
resources: {cpus: 1}
"""


def test_an_optional_dataset_without_files_is_reported_missing_and_kept_missing_on_resume(ray_local, tmp_path) -> None:
    from dse.util.errors import UserError

    space = load_space(write_space(tmp_path, OPTIONAL))
    data = tmp_path / "data"
    data.mkdir()
    opts = dict(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache"), data_dir=str(data))
    study = run_search(space, RunOptions(**opts))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 2 and all(set(t.user_attrs["per_workload"]) == {"digits"} for t in done)
    assert study.user_attrs["missing_workloads"] == ["cifar100"]
    status = subprocess.run([sys.executable, "-m", "dse.cli", "status", str(tmp_path / "opt")], capture_output=True,
                            text=True, timeout=120, env=ENV)
    assert status.returncode == 0, status.stderr
    assert "missing: cifar100" in status.stdout
    export_study(*_loaded(tmp_path / "opt"), tmp_path / "opt")
    assert json.loads((tmp_path / "opt" / "pareto.json").read_text())["missing_workloads"] == ["cifar100"]
    (data / "cifar-100-python").mkdir()  # its files arrive: the study keeps to what it started with
    with pytest.raises(UserError, match="cifar100 have files now but the study started without them"):
        run_search(space, RunOptions(**opts, resume=True, n_trials=3))


def _loaded(directory):
    from dse.search.study import load_results

    return load_results(directory)
