"""Processor-only studies are priced in the driver, vectorized, and recorded a batch at a time, one transaction each."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from dse.search.driver import RunOptions, run_search
from dse.search.space import load_space
from dse.search.trial import run_trial
from studies import ENV, HW_SPACE, kill_group, search_cmd, storage_trials, wait_for, write_space

COMPLETE = optuna.trial.TrialState.COMPLETE
ATTRS = {"per_workload", "arch", "cached", "seconds", "reasons", "node"}


def test_each_trial_is_priced_as_run_trial_prices_it(tmp_path) -> None:
    path = write_space(tmp_path, HW_SPACE.format(study="hw", extra="sampler: grid\nconstraints: ['area <= 0.5']"))
    space = load_space(path)
    run_search(space, RunOptions(results_dir=tmp_path / "r", progress=False))
    trials = storage_trials(tmp_path / "r" / "hw" / "study.db", "hw")
    assert len(trials) == 12 and all(t.state == COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 12  # the whole grid, once each
    for t in trials:
        assert set(t.user_attrs) == ATTRS and t.user_attrs["node"] == "driver"
        scalar = run_trial(space, t.params, str(tmp_path / "cache"))
        assert t.values == pytest.approx([scalar["values"][o] for o in space.objectives], rel=1e-12)
        assert t.user_attrs["arch"] == scalar["arch"] and t.user_attrs["reasons"] == scalar["reasons"]
        assert t.system_attrs["constraints:feasible_processor"] == (0.0 if scalar["feasible"] else 1.0)
        assert t.system_attrs["constraints:area <= 0.5"] == pytest.approx(scalar["values"]["area"] - 0.5, rel=1e-12)


def test_kill_9_loses_no_finished_trial_and_resume_finishes(tmp_path) -> None:
    path = write_space(tmp_path, HW_SPACE.format(study="k", extra="sampler: random\nbudget: {n_trials: 100000}"))
    db = tmp_path / "k" / "study.db"
    proc = subprocess.Popen(search_cmd(path, tmp_path), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def some_recorded():  # a plain count: loading the trials through Optuna lets the driver race far ahead
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                return con.execute("SELECT count(*) FROM trials").fetchone()[0] >= 200
        except sqlite3.Error:  # not created yet
            return False

    wait_for(some_recorded, timeout=300)
    time.sleep(0.5)  # mid-batch, most likely
    kill_group(proc)
    trials = storage_trials(db, "k")
    assert all(t.state == COMPLETE for t in trials)  # nothing half-written: a batch is one transaction
    # a design drawn again reuses its earlier record and says so (duplicate_of)
    assert all(set(t.user_attrs) - {"duplicate_of"} == ATTRS and len(t.values) == 2 for t in trials)
    target = len(trials) + 70
    out = subprocess.run(search_cmd(path, tmp_path, "--resume", "--n-trials", str(target)), env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    again = storage_trials(db, "k")
    assert [t.state for t in again].count(COMPLETE) == target
    assert {t.number: t.params for t in trials} == {t.number: t.params for t in again[:len(trials)]}
