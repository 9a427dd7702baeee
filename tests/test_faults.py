"""Faults injected into real processes: a worker, the driver, a node, a second driver, a full disk.

Each test runs ``dse search`` as a subprocess (its own session, so it and the Ray instance it starts
can be killed together) and reads the study back from its SQLite storage.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from studies import (DIGITS_SPACE, ENV, HW_SPACE, distinct_trainings_space, kill, kill_group, loopback_cluster,
                     processes, search_cmd, states, storage_trials, trials_so_far, wait_for, with_descendants,
                     write_space)

pytestmark = [pytest.mark.ray, pytest.mark.slow]
COMPLETE, RUNNING, FAIL = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING,
                           optuna.trial.TrialState.FAIL)


def _start(cmd: list[str]) -> subprocess.Popen:
    # stderr to a file, not a pipe: nobody reads a pipe while the test polls, and a full one would stall the driver
    err = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err, text=True)
    proc.err_file = err
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    finally:
        kill_group(proc)  # the driver's own Ray instance, whatever happened
    proc.err_file.seek(0)
    return proc.returncode, proc.err_file.read()


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _trial_tasks(under: int) -> list[int]:
    """Ray workers executing a trial right now, among the descendants of process ``under``."""
    mine = with_descendants({under})
    return [pid for pid in processes("ray::trial_task") if pid in mine]


def test_worker_killed_mid_trial_is_retried_and_the_study_completes(tmp_path) -> None:
    path = write_space(tmp_path, distinct_trainings_space("wkill", n=4))
    proc = _start(search_cmd(path, tmp_path))
    victim = wait_for(lambda: _trial_tasks(proc.pid))[0]
    kill([victim])  # SIGKILL mid-training
    code, err = _finish(proc)
    assert code == 0, err
    trials = storage_trials(tmp_path / "wkill" / "study.db", "wkill")
    assert [t.state for t in trials].count(COMPLETE) == 4 and FAIL not in [t.state for t in trials]


def test_driver_killed_then_resumed_loses_nothing_repeats_nothing_and_reuses_the_cache(tmp_path) -> None:
    from dse.search.cache import cache_key, data_fingerprint
    from dse.search.space import load_space
    from dse.search.resolve import resolve

    # Setting the scene (a kill while a training runs) is retried once in a fresh directory: once, the test's own
    # poller raced the driver's schema set-up (now read-only until the study exists, tests/studies.py). What is
    # tested, from the kill on, is not retried.
    for attempt in range(2):
        root = tmp_path / f"attempt{attempt}"
        root.mkdir()
        path = write_space(root, distinct_trainings_space("resume", n=6))
        db, cache = root / "resume" / "study.db", root / "cache"
        proc = _start(search_cmd(path, root))

        def training() -> bool:  # two trials done and one mid-training (all its parameters suggested)
            if proc.poll() is not None:
                raise AssertionError(f"the driver exited ({proc.returncode}): {_finish(proc)[1][-2000:]}")
            trials = trials_so_far(db, "resume")
            return [t.state for t in trials].count(COMPLETE) >= 2 and any(
                t.state == RUNNING and len(t.params) == 3 for t in trials)

        try:
            wait_for(training, timeout=150)
            break
        except AssertionError as exc:
            kill_group(proc)
            if attempt:
                raise
            print(f"setting the scene again: {exc}")
            time.sleep(5)
    kill_group(proc)  # SIGKILL: the driver and the Ray instance it started
    before = storage_trials(db, "resume")
    finished = {t.number: t.values for t in before if t.state == COMPLETE}
    stale = [t for t in before if t.state == RUNNING]
    assert len(finished) >= 2 and stale and len(finished) < 6
    trained_before = {d.name for d in cache.iterdir() if (d / "metrics.json").is_file()}

    out = subprocess.run(search_cmd(path, root, "--resume"), env=ENV, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    after = storage_trials(db, "resume")
    complete = [t for t in after if t.state == COMPLETE]
    assert len(complete) == 6  # exactly the target: nothing lost, nothing run twice
    assert all(after[n].values == v for n, v in finished.items())  # finished trials untouched
    space = load_space(path)
    names = {p.name for p in space.params}
    for t in stale:
        assert after[t.number].state == FAIL
        rerun = [r for r in after if r.user_attrs.get("requeued_from") == t.number]
        if set(t.params) != names:  # killed between ask and its suggestions: it never ran
            assert rerun == []
            continue
        assert len(rerun) == 1 and rerun[0].params == t.params and rerun[0].state == COMPLETE
        spec = resolve(space, t.params, space.workloads[0]).spec  # the network the trial trained
        # a network the killed run had finished training is priced from the cache, not trained again
        assert rerun[0].user_attrs["cached"] == (cache_key(spec, data_fingerprint(spec)) in trained_before)
    assert len({d.name for d in cache.iterdir() if (d / "metrics.json").is_file()}) == 6  # one training each


def test_worker_node_killed_mid_study_the_study_finishes_on_the_head(tmp_path) -> None:
    with loopback_cluster() as (address, worker_raylet):
        path = write_space(tmp_path, distinct_trainings_space("nodekill", n=4))
        proc = _start(search_cmd(path, tmp_path, "--address", address))
        wait_for(lambda: set(_trial_tasks(worker_raylet)))
        kill(with_descendants({worker_raylet}))  # the whole node: its raylet, workers and agents
        code, err = _finish(proc)
    assert code == 0, err
    trials = storage_trials(tmp_path / "nodekill" / "study.db", "nodekill")
    assert [t.state for t in trials].count(COMPLETE) == 4 and FAIL not in [t.state for t in trials]


def test_a_second_driver_on_the_same_study_is_refused_and_the_first_is_unharmed(tmp_path) -> None:
    path = write_space(tmp_path, distinct_trainings_space("twice", n=6))  # lasts while two more drivers start
    db = tmp_path / "twice" / "study.db"
    first = _start(search_cmd(path, tmp_path))
    wait_for(lambda: RUNNING in states(db, "twice"))
    for extra in (["--resume"], []):
        second = subprocess.run(search_cmd(path, tmp_path, *extra), env=ENV, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2
        assert f"being run by another driver (pid {first.pid} on " in _error_line(second.stderr)
    code, err = _finish(first)
    assert code == 0, err
    trials = storage_trials(db, "twice")
    assert [t.state for t in trials].count(COMPLETE) == 6 and FAIL not in [t.state for t in trials]


def test_trials_failing_in_a_row_stop_the_study_with_one_line(tmp_path) -> None:
    # 6-bit log weights at T = 32 need 60+-bit sums: the exact export refuses every trial (a real error)
    path = write_space(tmp_path, DIGITS_SPACE.format(study="broken", bits="[6]", windows="[32]", n=4, concurrent=2))
    out = subprocess.run(search_cmd(path, tmp_path, "--max-failures", "2"), env=ENV, capture_output=True, text=True,
                         timeout=400)
    assert out.returncode == 2
    line = _error_line(out.stderr)
    assert "stopped after" in line and "failed in a row" in line and "weight_bits=6" in line and "--resume" in line
    trials = storage_trials(tmp_path / "broken" / "study.db", "broken")
    assert len(trials) >= 2 and all(t.state == FAIL for t in trials)


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs), so writes fail with ENOSPC like on a full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs CAP_SYS_ADMIN): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(directory: Path) -> None:
    """Use up every free block."""
    try:
        with open(directory / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC


def _snapshot(directory: Path) -> dict[str, bytes]:
    """The files dse wrote (the database's pages move whenever it is opened: checked by integrity instead)."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and not p.name.startswith("study.db")}


def test_disk_full_during_a_study_and_its_export_keeps_what_was_written(small_disk, tmp_path) -> None:
    path = write_space(tmp_path, HW_SPACE.format(study="full", extra="sampler: random\nbudget: {n_trials: 5000}"))
    db = small_disk / "full" / "study.db"
    out = subprocess.run(search_cmd(path, small_disk), env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    assert _error_line(out.stderr).startswith("error: study storage: database or disk is full")
    # more room (SQLite in WAL mode needs a little to open the log of the commits not yet merged into the
    # file): the database rolled the failed write back and is whole, and the study resumes and finishes
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    done = [t for t in storage_trials(db, "full") if t.state == COMPLETE]
    assert len(done) > 50 and all(len(t.values) == 2 for t in done)
    target = len(done) + 20
    out = subprocess.run(search_cmd(path, small_disk, "--resume", "--n-trials", str(target)), env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert [t.state for t in storage_trials(db, "full")].count(COMPLETE) == target
    kept = _snapshot(small_disk / "full")
    assert {"pareto.csv", "pareto.json", "trials.csv", "pareto.html"} <= set(kept)

    # a full disk again, now while exporting: one line, exit 1, every file as it was, no temporary left
    _fill(small_disk)
    out = subprocess.run([*search_cmd(path, small_disk)[:3], "pareto", str(small_disk / "full")], env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "No space left on device" in _error_line(out.stderr)
    assert _snapshot(small_disk / "full") == kept
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = list(csv.DictReader(open(small_disk / "full" / "pareto.csv")))
    assert {int(r["trial"]) for r in rows} == {e["trial"] for e in
                                                json.loads((small_disk / "full" / "pareto.json").read_text())["pareto"]}


def test_a_cache_on_a_full_disk_fails_trials_clearly_and_leaves_no_partial_entry(small_disk, tmp_path) -> None:
    _fill(small_disk)
    path = write_space(tmp_path, distinct_trainings_space("nocache", n=4))
    out = subprocess.run(search_cmd(path, tmp_path, "--cache-dir", str(small_disk / "cache"), "--max-failures", "2"),
                         env=ENV, capture_output=True, text=True, timeout=400)
    assert out.returncode == 2
    line = _error_line(out.stderr)
    assert "failed in a row" in line and "No space left on device" in line
    trials = storage_trials(tmp_path / "nocache" / "study.db", "nocache")
    assert trials and all(t.state == FAIL and "No space left on device" in t.user_attrs["error"] for t in trials)
    leftovers = [p for p in (small_disk / "cache").iterdir()] if (small_disk / "cache").exists() else []
    assert leftovers == []  # no entry, and no temporary directory half-written
