"""Finished trials written in bulk (dse.search.internals) read back exactly as Optuna's add_trial writes them.

The bulk path writes Optuna's private tables directly; these tests read it back only through public
readers (``optuna.load_study`` in a fresh process's view, the ``optuna best-trials`` command line), so an
Optuna upgrade that changes the schema fails here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from dse.search.internals import add_finished, rdb_of
from dse.search.storage import open_storage
from studies import ENV

DISTS = {"rows": optuna.distributions.IntDistribution(2, 32, step=2),
         "sram": optuna.distributions.CategoricalDistribution([32, 64, 128]),
         "clock": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
DIRECTIONS = ["minimize", "minimize", "maximize"]


def _trials(n: int) -> list[optuna.trial.FrozenTrial]:
    """Finished trials with every kind of field the driver writes, and infinities and failures."""
    start = datetime(2024, 5, 1, 12, 0, 0, 123456)
    out = []
    for i in range(n):
        failed = i % 11 == 5
        values = None if failed else [float(i) / 7, [math.inf, -math.inf, 0.5][i % 3], 1.0 / (i + 1)]
        out.append(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
            params={"rows": 2 + 2 * (i % 16), "sram": [32, 64, 128][i % 3], "clock": 10 ** -(i % 3)},
            distributions=DISTS, values=values,
            user_attrs={"arch": {"pe_rows": i, "name": f"p{i}"}, "reasons": ["too big"] * (i % 2), "cached": True,
                        "seconds": i * 1e-3},
            system_attrs={"constraints:feasible_processor": float(i % 2), "constraints:area <= 0.5": -0.25 * i}))
        out[-1].datetime_start, out[-1].datetime_complete = start + timedelta(seconds=i), start + timedelta(seconds=i + 1)
    return out


def _study(path: Path) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{path}"), directions=DIRECTIONS)


def _statements(study: optuna.Study) -> list[int]:
    count = [0]
    sqlalchemy.event.listen(rdb_of(study).engine, "before_cursor_execute", lambda *_: count.__setitem__(0, count[0] + 1))
    return count


def _fields(t: optuna.trial.FrozenTrial) -> tuple:
    return (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,
            t.intermediate_values, t.datetime_start, t.datetime_complete)


def _best_trials_cli(db: Path) -> list[dict]:
    out = subprocess.run([str(Path(sys.executable).with_name("optuna")), "best-trials", "--study-name", "s",
                          "--storage", f"sqlite:///{db}", "-f", "json"], capture_output=True, text=True, timeout=120,
                         env=ENV)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_bulk_records_read_back_as_add_trial_writes_them(tmp_path) -> None:
    trials = _trials(150)
    one = _study(tmp_path / "one.db")
    for t in trials:
        one.add_trial(t)
    bulk = _study(tmp_path / "bulk.db")
    numbers = [n for i in range(0, 150, 64) for n in add_finished(bulk, trials[i:i + 64])]
    assert numbers == list(range(150))
    read = {name: optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / name}").get_trials()
            for name in ("one.db", "bulk.db")}
    assert [_fields(t) for t in read["bulk.db"]] == [_fields(t) for t in read["one.db"]]
    assert sum(t.state == optuna.trial.TrialState.FAIL for t in read["bulk.db"]) == 14
    assert _best_trials_cli(tmp_path / "bulk.db") == _best_trials_cli(tmp_path / "one.db")
    # the study object that wrote in bulk sees the batch and numbers Optuna's own next trial after it
    assert len(bulk.get_trials()) == 150
    assert bulk.ask().number == 150


def test_a_batch_costs_a_fixed_number_of_statements(tmp_path) -> None:
    """The load-independent figure behind the trials/s goal: statements per trial, add_trial against bulk."""
    trials = _trials(64)
    one = _study(tmp_path / "one.db")
    count = _statements(one)
    for t in trials:
        one.add_trial(t)
    per_trial = count[0] / len(trials)
    bulk = _study(tmp_path / "bulk.db")
    count = _statements(bulk)
    add_finished(bulk, trials[:8])
    eight = count[0]
    add_finished(bulk, trials[8:])
    # a lock, a count, one INSERT per table (trials, values, params, user and system attributes), the ids
    assert eight == count[0] - eight == 8
    assert per_trial >= 25 and 64 * per_trial / 8 >= 200  # add_trial: one transaction of ~30 statements each


def test_unfinished_or_wrongly_shaped_trials_are_refused_before_anything_is_written(tmp_path) -> None:
    study = _study(tmp_path / "s.db")
    running = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, params={}, distributions={})
    with pytest.raises(ValueError, match="RUNNING"):
        add_finished(study, [*_trials(3), running])
    short = optuna.trial.create_trial(params={}, distributions={}, values=[1.0])
    with pytest.raises(ValueError, match="1 values for 3 objectives"):
        add_finished(study, [*_trials(3), short])
    assert study.get_trials() == []


def test_a_journal_storage_gets_the_same_trials(tmp_path) -> None:
    trials = _trials(20)
    study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "j.log")), directions=DIRECTIONS)
    assert add_finished(study, trials) == list(range(20))
    back = optuna.load_study(study_name="s", storage=open_storage(str(tmp_path / "j.log"))).get_trials()
    assert [_fields(t)[1:] for t in back] == [_fields(t)[1:] for t in trials]


def test_an_empty_batch_writes_nothing(tmp_path) -> None:
    study = _study(tmp_path / "s.db")
    count = _statements(study)
    assert add_finished(study, []) == [] and count[0] == 0


# --- Ray: each private name the adapter uses exists, with the shape it relies on, in the installed Ray -------
def test_the_ray_names_the_adapter_uses_exist_in_this_ray() -> None:
    import inspect

    import ray

    from dse.search import internals

    assert "_node_ip_address" in inspect.getsource(ray.init)  # a keyword ray.init reads from **kwargs
    assert isinstance(ray._private.ray_constants.ENABLE_RAY_CLUSTER, bool)
    from ray._private.services import canonicalize_bootstrap_address  # noqa: F401 - importable is the contract
    from ray._raylet import Config

    assert callable(Config.initialize)
    found = internals.auto_address()
    assert found is None or isinstance(found, str)
