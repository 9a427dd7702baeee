"""Studies on real Ray and real Optuna storage: end to end, constraints, failures, two nodes.
(Faults, resume after a kill, and the driver lock: test_faults.py.)"""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

import hwmodel
from dse.search.driver import RunOptions, run_search
from dse.search.reports import export_study, front, hypervolume, pareto_mask, to_minimization
from dse.search.space import load_space
from studies import DIGITS_SPACE, ENV, HW_SPACE, loopback_cluster, search_cmd, storage_trials, write_space

pytestmark = pytest.mark.ray


def _space(tmp_path: Path, text: str):
    path = write_space(tmp_path, text)
    return load_space(path), path


def _brute_force(space) -> set[tuple]:
    """Non-dominated processors of the whole grid, priced directly by hwmodel."""
    base, wl = hwmodel.load_arch(space.arch), hwmodel.load_workload("vgg16-cifar10")
    grid = list(itertools.product(*(p.grid() for p in space.params)))
    values = []
    for combo in grid:
        r = hwmodel.estimate(hwmodel.with_fields(base, **dict(zip([p.name for p in space.params], combo))), wl)
        values.append((r.energy_j * 1e6, r.area_mm2))
    mask = pareto_mask(to_minimization(np.array(values), space.objectives))
    return {combo for combo, m in zip(grid, mask) if m}


def test_grid_study_front_equals_brute_force_and_exports(ray_local, tmp_path) -> None:
    space, _ = _space(tmp_path, HW_SPACE.format(study="grid", extra="sampler: grid\nbudget: {n_trials: 12}"))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 12 and len({tuple(t.params.values()) for t in done}) == 12  # the whole grid, once each
    assert study.metric_names == ["energy (uJ)", "area (mm2)"]  # what optuna-dashboard labels its axes with
    got = {tuple(t.params[p.name] for p in space.params) for t in front(study)}
    assert got == _brute_force(space)

    files = export_study(space, study, tmp_path / "grid")
    rows = list(csv.DictReader(open(files["pareto.csv"])))
    assert {int(r["trial"]) for r in rows} == {t.number for t in front(study)}
    assert len(list(csv.DictReader(open(files["trials.csv"])))) == 12
    doc = json.loads(files["pareto.json"].read_text())
    assert {e["trial"] for e in doc["pareto"]} == {t.number for t in front(study)}
    assert doc["pareto"][0]["arch"]["pe_rows"] in (4, 8, 16)
    for name in ("pareto.png", "hypervolume.png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in files["pareto.html"].read_text()[:200000].lower()
    # an independent reader of the same storage: Optuna's own command line
    out = subprocess.run([str(Path(sys.executable).with_name("optuna")), "best-trials", "--study-name", "grid", "--storage",
                          f"sqlite:///{tmp_path / 'grid' / 'study.db'}", "-f", "json"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    assert {t["number"] for t in json.loads(out.stdout)} == {t.number for t in front(study)}


def test_vectorized_sweep_prices_the_whole_grid_and_flags_the_exact_front(ray_local, tmp_path) -> None:
    from dse.search.sweep import sweep_study

    space, _ = _space(tmp_path, HW_SPACE.format(study="sw", extra="sampler: random\nbudget: {n_trials: 2}"))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False))
    out, n = sweep_study(space, study, tmp_path / "sweep.csv")
    rows = list(csv.DictReader(open(out)))
    assert n == len(rows) == 12  # every processor of the grid, not just the 2 sampled
    flagged = {(int(r["pe_rows"]), int(r["weight_sram_kib"]), int(r["spike_sram_kib"])) for r in rows
               if r["pareto"] == "True"}
    assert flagged == _brute_force(space)


def test_constraints_exclude_infeasible_points_from_the_front(ray_local, tmp_path) -> None:
    space, _ = _space(tmp_path, HW_SPACE.format(study="cons", extra="sampler: grid\nconstraints: ['area <= 0.5']"))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    best = front(study)
    assert best and all(t.values[1] <= 0.5 for t in best)
    assert any(t.values[1] > 0.5 for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]))


def test_failing_trials_are_recorded_and_the_study_goes_on(ray_local, tmp_path) -> None:
    # 6-bit log weights (down to 2^-30) with T = 32 need 60+-bit sums: the exact export refuses them, a real
    # error raised inside the worker
    space, _ = _space(tmp_path, DIGITS_SPACE.format(study="fails", bits="[3, 6]", windows="[32]", n=4, concurrent=2))
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(tmp_path / "cache")))
    trials = study.get_trials()
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and failed
    assert all(t.params["weight_bits"] == 6 for t in failed) and all(t.params["weight_bits"] == 3 for t in done)
    assert all("weight_bits=6 with this time window needs" in t.user_attrs["error"] for t in failed)
    # train once, price many: trials sharing (weight_bits, time_window) reuse the trained network
    keys = [t.params["weight_bits"] for t in sorted(done, key=lambda t: t.number)]
    first_seen = [k not in keys[:i] for i, k in enumerate(keys)]
    assert [not t.user_attrs["cached"] for t in sorted(done, key=lambda t: t.number)] == first_seen
    assert all(0 <= t.values[0] <= 100 for t in done)


def test_existing_study_needs_resume_and_other_studies_are_refused(ray_local, tmp_path) -> None:
    from dse.util.errors import UserError

    space, _ = _space(tmp_path, HW_SPACE.format(study="mine", extra="budget: {n_trials: 2}"))
    run_search(space, RunOptions(results_dir=tmp_path, progress=False))
    with pytest.raises(UserError, match="pass --resume"):
        run_search(space, RunOptions(results_dir=tmp_path, progress=False))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "space.yaml").write_text((tmp_path / "mine" / "space.yaml").read_text())
    other, _ = _space(tmp_path, HW_SPACE.format(study="other", extra=""))
    with pytest.raises(UserError, match="belongs to study 'mine'"):
        run_search(other, RunOptions(results_dir=tmp_path, resume=True, progress=False))
    more = run_search(space, RunOptions(results_dir=tmp_path, resume=True, n_trials=4, progress=False))
    assert len(more.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 4  # n_trials counts earlier runs


def test_hypervolume_of_hand_computed_fronts() -> None:
    ref = np.array([4.0, 4.0])
    assert hypervolume(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), ref) == 6.0  # 3 + 2 + 1
    assert hypervolume(np.array([[1.0, 3.0], [2.0, 2.0], [2.5, 2.5]]), ref) == 5.0  # a dominated point adds nothing
    assert hypervolume(np.array([[5.0, 1.0]]), ref) == 0.0  # beyond the reference
    cube = hypervolume(np.array([[1.0, 2.0, 2.0], [2.0, 1.0, 2.0], [2.0, 2.0, 1.0]]), np.array([3.0, 3.0, 3.0]))
    assert cube == 3 * 2.0 - 3 * 1.0 + 1.0  # inclusion-exclusion: 3 boxes of 2, pairwise overlaps of 1, triple 1
    rng = np.random.default_rng(0)
    pts = rng.random((12, 3))
    samples = rng.random((200000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for p in pts:
        dominated |= np.all(samples >= p, axis=1)
    assert hypervolume(pts, np.ones(3)) == pytest.approx(dominated.mean(), abs=0.005)  # Monte Carlo cross-check


@pytest.mark.slow
def test_two_node_cluster_on_loopback_runs_a_study(tmp_path) -> None:
    with loopback_cluster() as (address, _):
        path = write_space(tmp_path, DIGITS_SPACE.format(study="cluster", bits="[3, 4]", windows="[2, 4]", n=4,
                                                         concurrent=2))
        out = subprocess.run(search_cmd(path, tmp_path, "--address", address), env=ENV, capture_output=True, text=True,
                             timeout=400)
        assert out.returncode == 0, out.stdout + out.stderr
        trials = storage_trials(tmp_path / "cluster" / "study.db", "cluster")
        assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 4
        assert len({t.user_attrs["node"] for t in trials}) == 2  # both nodes ran trials


LISTENERS = """
import json, os
from dse.search.ray_runner import init_ray
ray = init_ray(None)
ray.get(ray.remote(lambda: 1).remote())  # a worker up, too
import psutil  # Ray vendors it
ours = {p.pid: " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)} | {os.getpid(): "driver"}
print(json.dumps([[c.laddr.ip, c.laddr.port, ours[c.pid][:80]] for c in psutil.net_connections("inet")
                  if c.status == psutil.CONN_LISTEN and c.pid in ours]))
"""


def test_the_local_ray_instance_listens_on_loopback_only_and_has_no_dashboard() -> None:
    out = subprocess.run([sys.executable, "-c", LISTENERS], env=ENV, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    listening = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(listening) >= 4  # GCS, raylet, the driver's and the worker's core workers, agents
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip, _, _ in listening), listening
    assert not any("dashboard.py" in cmd for _, _, cmd in listening)
