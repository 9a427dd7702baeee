"""Wrong answers are never silent (issue 11): study identity, cache keys, replays and duplicates, one
resolution of a trial's (network, processor) pair, and driver liveness on a shared storage. Real
studies on real Ray and real Optuna storage; real image files; real driver processes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from dse.cli import main as dse_main
from dse.search.driver import RunOptions, run_search
from dse.search.reports import front
from dse.search.space import load_space
from studies import DIGITS_SPACE, ENV, HW_SPACE, distinct_trainings_space, kill_group, search_cmd, wait_for, \
    write_space

pytestmark = pytest.mark.ray
COMPLETE = optuna.trial.TrialState.COMPLETE


def _run(tmp_path: Path, text: str, results: Path, **opts):
    space = load_space(write_space(tmp_path, text))
    return space, run_search(space, RunOptions(results_dir=results, progress=False, cache_dir=str(tmp_path / "cache"),
                                               **opts))


def _dse(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = os.getcwd()
    try:
        os.chdir(cwd or saved)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = dse_main(list(args))
    finally:
        os.chdir(saved)
    return code, out.getvalue(), err.getvalue()


# --- 1. a study directory describes itself ------------------------------------------------------------------
def test_a_copied_and_renamed_study_reads_its_own_trials_and_status_dot_works(ray_local, tmp_path) -> None:
    text = HW_SPACE.format(study="ident", extra="sampler: {name: random, seed: 1}\nbudget: {n_trials: 3}")
    _run(tmp_path, text, tmp_path / "results")
    original = tmp_path / "results" / "ident"
    assert json.loads(json.dumps(__import__("yaml").safe_load((original / "study.yaml").read_text()))) == \
        {"format": "dse-study/1", "storage": "sqlite:///study.db"}  # relative: the directory can move
    copy = tmp_path / "elsewhere" / "renamed-copy"
    shutil.copytree(original, copy)
    _run(tmp_path, text, tmp_path / "results", resume=True, n_trials=6)  # the original grows to 6 trials
    code, out, err = _dse("status", str(copy))
    assert (code, err) == (0, "") and "study ident: 3 trials: 3 complete" in out  # its own 3, not the original's 6
    code, out, _ = _dse("status", ".", cwd=copy)
    assert code == 0 and "3 trials" in out
    code, out, _ = _dse("status", str(original))
    assert code == 0 and "6 trials" in out
    assert _dse("pareto", str(original))[0] == 0
    before = (original / "pareto.csv").read_bytes()
    assert _dse("pareto", str(copy))[0] == 0
    rows = list(csv.DictReader((copy / "pareto.csv").open()))
    assert {int(r["trial"]) for r in rows} <= {0, 1, 2} and (original / "pareto.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["renamed-copy"]  # no sibling created


# --- 2. the train-once cache keys on the data's content ---------------------------------------------------------
def _folder(root: Path, shade: int) -> Path:
    from PIL import Image

    for split, n in (("train", 12), ("test", 6)):
        for c, cls in enumerate(("a", "b")):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (8, 8), ((shade + 90 * c + 7 * i) % 256, 30 * c, shade)).save(
                    root / split / cls / f"{i}.png")
    return root


def test_the_same_spec_on_other_images_is_trained_again_never_served_from_the_cache(tmp_path, monkeypatch) -> None:
    from dse.search.cache import train_cached
    from dse.train.spec import TrainSpec

    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path / "dsecache"))
    spec = TrainSpec(dataset="imagefolder", model="tiny_vgg", width=0.25, epochs=1, finetune_epochs=0, batch_size=8,
                     augment=False)
    a, b, cache = _folder(tmp_path / "a", 0), _folder(tmp_path / "b", 200), tmp_path / "trained"
    first, cached_a = train_cached(spec, cache, a)
    second, cached_b = train_cached(spec, cache, b)
    again, cached_again = train_cached(spec, cache, a)
    assert (cached_a, cached_b, cached_again) == (False, False, True)
    assert first.spike_stats != second.spike_stats and again.spike_stats == first.spike_stats
    # moving an image between classes keeps every folder's mtime-free content but changes the labels
    os.replace(a / "train" / "a" / "0.png", a / "train" / "b" / "moved.png")
    _, cached_moved = train_cached(spec, cache, a)
    assert cached_moved is False
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3


# --- 5. resume continues, duplicates are reused ---------------------------------------------------------------
def test_resume_continues_the_seeded_sequence_with_no_replays(ray_local, tmp_path) -> None:
    text = HW_SPACE.format(study="replay", extra="sampler: {name: tpe, seed: 0}\nbudget: {n_trials: 5}")
    text = text.replace("pe_rows: [4, 8, 16]", "pe_rows: {type: int, low: 4, high: 64}")
    _, study = _run(tmp_path, text, tmp_path / "results")
    _, study = _run(tmp_path, text, tmp_path / "results", resume=True, n_trials=10)
    trials = sorted(study.get_trials(states=[COMPLETE]), key=lambda t: t.number)
    first, later = [t.params for t in trials[:5]], [t.params for t in trials[5:]]
    assert len(trials) == 10 and later != first  # before the fix: trials 5-9 repeated trials 0-4
    designs = [tuple(sorted(t.params.items())) for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(designs) == len(set(designs))


def test_a_repeated_suggestion_reuses_the_earlier_result_and_is_listed_once(ray_local, tmp_path) -> None:
    text = HW_SPACE.format(study="dups", extra="sampler: {name: random, seed: 0}\nbudget: {n_trials: 8}")
    text = text.replace("pe_rows: [4, 8, 16]", "pe_rows: [4, 8]").replace("weight_sram_kib: [64, 256]",
                                                                        "weight_sram_kib: [64]")
    text = text.replace("spike_sram_kib: [16, 64]", "spike_sram_kib: [64]")
    space, study = _run(tmp_path, text, tmp_path / "results")
    trials = study.get_trials(states=[COMPLETE])
    originals = {t.number: t for t in trials if "duplicate_of" not in t.user_attrs}
    copies = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(trials) == 8 and len(originals) == 2 and len(copies) == 6  # 2 designs: priced twice, not 8 times
    for t in copies:
        earlier = originals[t.user_attrs["duplicate_of"]]
        assert t.params == earlier.params and t.values == earlier.values and t.user_attrs["cached"] is True
    assert len({tuple(sorted(t.params.items())) for t in front(study)}) == len(front(study))


# --- 6. one resolution for trial, sweep and show ------------------------------------------------------------
def test_sweep_prices_exactly_the_processor_the_trial_priced_when_the_workload_fixes_t(ray_local, tmp_path) -> None:
    text = DIGITS_SPACE.format(study="same", bits="[4]", windows="[4]", n=2, concurrent=2)
    text = text.replace("  time_window: [4]\n", "").replace("max_train_images: 512}", "max_train_images: 512, "
                                                                                        "time_window: 4}")
    space, study = _run(tmp_path, text, tmp_path / "results")
    directory = tmp_path / "results" / "same"
    assert _dse("sweep", str(directory))[0] == 0
    rows = list(csv.DictReader((directory / "sweep.csv").open()))
    for t in study.get_trials(states=[COMPLETE]):
        row = next(r for r in rows if int(r["pe_rows"]) == t.params["pe_rows"])
        assert float(row["energy_J"]) * 1e6 == pytest.approx(t.values[1], rel=1e-12)  # +7.5 % before the fix
        assert t.user_attrs["per_workload"]["digits"]["adapted"] == {"time_window": {"processor": 8, "network": 4}}
        code, out, _ = _dse("show", str(directory), str(t.number))
        resolved = json.loads(out)["resolved"]["digits"]
        assert code == 0 and resolved["arch"]["time_window"] == resolved["train"]["time_window"] == 4


# --- 4. liveness on a shared storage -----------------------------------------------------------------------
def test_a_second_driver_on_a_shared_journal_is_refused_while_the_first_lives_and_resumes_once_it_is_gone(
        tmp_path) -> None:
    journal = tmp_path / "shared.journal"
    space = write_space(tmp_path, distinct_trainings_space("live"))
    first = subprocess.Popen(search_cmd(space, tmp_path / "a", "--storage", str(journal)), env=ENV,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def running():
        try:
            study = optuna.load_study(study_name="live", storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(journal))))
        except Exception:  # not created yet
            return None
        return study if study.get_trials(states=[optuna.trial.TrialState.RUNNING]) else None

    try:
        study = wait_for(running)
        second = subprocess.run(search_cmd(space, tmp_path / "b", "--storage", str(journal), "--resume"), env=ENV,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and f"pid {first.pid} on" in second.stderr, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        kill_group(first)  # the first driver's machine dies: its lease stops being renewed
        stale = {t.number for t in study.get_trials(states=[optuna.trial.TrialState.RUNNING])}
        lease = study.user_attrs["driver_lease"]  # seen from another machine, a silent holder may be alive:
        study.set_user_attr("driver_lease", {**lease, "host": "another-machine"})  # no pid to ask the kernel about
        refused = subprocess.run(search_cmd(space, tmp_path / "b", "--storage", str(journal), "--resume"), env=ENV,
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2  # within LEASE_S of its last renewal: refused
        assert f"pid {first.pid} on" in refused.stderr
        study.set_user_attr("driver_lease", {**lease, "host": "another-machine", "expires": time.time() - 1})
        resumed = subprocess.run(search_cmd(space, tmp_path / "b", "--storage", str(journal), "--resume"), env=ENV,
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
        trials = study.get_trials()
        failed = {t.number for t in trials if t.state == optuna.trial.TrialState.FAIL}
        assert failed == stale and len([t for t in trials if t.state == COMPLETE]) == 6
    finally:
        if first.poll() is None:
            kill_group(first)
