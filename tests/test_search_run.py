"""Studies on real Ray and real Optuna storage: end to end, constraints, failures, resume, two nodes."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

import hwmodel
from dse.search.driver import RunOptions, run_search
from dse.search.export import export_study, front, hypervolume, pareto_mask, to_minimization
from dse.search.space import load_space

pytestmark = pytest.mark.ray
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}

HW_SPACE = """\
study: {study}
workloads:
  - hwmodel: vgg16-cifar10
space:
  pe_rows: [4, 8, 16]
  weight_sram_kib: [64, 256]
  spike_sram_kib: [16, 64]
objectives: [energy, area]
{extra}
"""

DIGITS_SPACE = """\
study: {study}
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {{epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512}}
space:
  weight_bits: {bits}
  time_window: {windows}
  pe_rows: [4, 8]
objectives: [accuracy, energy]
sampler: {{name: random, seed: 3}}
budget: {{n_trials: {n}}}
resources: {{cpus: 1, max_concurrent: {concurrent}}}
"""


@pytest.fixture(scope="module")
def ray_local():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             object_store_memory=100 << 20)
    yield ray
    ray.shutdown()


def _space(tmp_path: Path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
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
    # 6-bit log weights (down to 2^-30) with T = 16 need 55-bit sums: the exact export refuses them, a real
    # error raised inside the worker
    space, _ = _space(tmp_path, DIGITS_SPACE.format(study="fails", bits="[3, 6]", windows="[16]", n=4, concurrent=2))
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
    from dse.errors import UserError

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


def _storage_trials(db: Path, study: str):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_resume_after_kill_9_loses_and_repeats_nothing(tmp_path) -> None:
    # every trial trains a network of its own (a grid over training parameters only, no cache hits), so a
    # trial in RUNNING is surely mid-training for seconds: the kill below cannot miss the window
    space_text = DIGITS_SPACE.format(study="resume", bits="[3, 4, 5]", windows="[2, 4]", n=6, concurrent=2)
    space_text = space_text.replace("pe_rows: [4, 8]", "pe_rows: [8]").replace("{name: random, seed: 3}", "{name: grid}")
    _, path = _space(tmp_path, space_text)
    cmd = [sys.executable, "-m", "dse.cli", "search", str(path), "--results-dir", str(tmp_path), "--quiet",
           "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = tmp_path / "resume" / "study.db"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                states = [t.state for t in _storage_trials(db, "resume")]
            except Exception:
                continue
            if states.count(optuna.trial.TrialState.COMPLETE) >= 2 and optuna.trial.TrialState.RUNNING in states:
                break
    _kill_group(proc)  # SIGKILL: the driver and the Ray instance it started
    before = _storage_trials(db, "resume")
    finished = {t.number: t.values for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    stale = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert len(finished) >= 2 and stale and len(finished) < 6

    out = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    after = _storage_trials(db, "resume")
    complete = [t for t in after if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6  # exactly the target: nothing lost, nothing run twice
    assert all(after[n].values == v for n, v in finished.items())  # finished trials untouched
    for t in stale:
        assert after[t.number].state == optuna.trial.TrialState.FAIL
        rerun = [r for r in after if r.user_attrs.get("requeued_from") == t.number]
        assert len(rerun) == 1 and rerun[0].params == t.params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_node_cluster_on_loopback_runs_a_study(tmp_path) -> None:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path("/tmp") / f"dse-ray-{port}"  # short: Ray's socket paths must fit in 107 bytes
    ray_bin = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"]
    try:
        subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        f"--temp-dir={temp}", "--min-worker-port=20000", "--max-worker-port=20199", *common[:2]],
                       env=ENV, check=True, timeout=120, capture_output=True)
        subprocess.run(["timeout", "120", ray_bin, "start", f"--address={address}", "--node-ip-address=127.0.0.1",
                        "--min-worker-port=20200", "--max-worker-port=20399", common[0]], env=ENV, check=True,
                       capture_output=True)
        _, path = _space(tmp_path, DIGITS_SPACE.format(study="cluster", bits="[3, 4]", windows="[2, 4]", n=4, concurrent=2))
        out = subprocess.run([sys.executable, "-m", "dse.cli", "search", str(path), "--address", address,
                              "--results-dir", str(tmp_path), "--quiet", "--cache-dir", str(tmp_path / "cache")],
                             env=ENV, capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stdout + out.stderr
        trials = _storage_trials(tmp_path / "cluster" / "study.db", "cluster")
        assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 4
        assert len({t.user_attrs["node"] for t in trials}) == 2  # both nodes ran trials
    finally:
        # stop only this cluster's processes (never `ray stop`, which ends every Ray on the host): the ones
        # naming its temp dir or port, and their descendants (Ray's agents rename their command lines)
        found = subprocess.run(["pgrep", "-f", f"({temp}|127.0.0.1:{port}|gcs_server_port={port})"],
                               capture_output=True, text=True).stdout.split()
        for pid in _with_descendants({int(p) for p in found}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _with_descendants(pids: set[int]) -> set[int]:
    table = [line.split() for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True,
                                                      text=True).stdout.splitlines()]
    children: dict[int, list[int]] = {}
    for pid, ppid in table:
        children.setdefault(int(ppid), []).append(int(pid))
    out, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in out and pid != os.getpid():
            out.add(pid)
            todo += children.get(pid, [])
    return out
