"""The only module that reaches into other libraries' non-public names (Optuna's storage tables, Ray's
configuration). Everything else uses their public API; tests/test_internals.py checks each use here
against the installed version, and CI runs it on the lowest and the newest versions pyproject.toml allows.

Optuna: finished trials written to a study's storage many at a time, in one transaction.

Optuna's ``Study.add_trials`` is a loop over ``add_trial``: on an RDB storage each trial is its own
transaction of about 35 statements (a lookup before every attribute, value and parameter). A
processor-only study records 64 priced trials at once, so on an RDB storage (SQLite by default) the
batch goes into Optuna's own tables (``optuna.storages._rdb.models``, the schema Optuna reads back) in
one transaction: one multi-row INSERT per table and two SELECTs per batch. A kill -9 loses the whole
batch or nothing. Other storages (a journal file) get ``add_trial`` per trial.

The rows are Optuna's private models: tests/test_internals.py reads a bulk-written study back through
``optuna.load_study`` and the ``optuna best-trials`` CLI and compares it with ``add_trial``'s, so an
Optuna upgrade that changes the schema fails there, loudly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone

import optuna
import sqlalchemy as sa
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` was opened on (Optuna keeps no public handle to it)."""
    return study._storage


def rdb_of(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    storage = storage_of(study)
    storage = getattr(storage, "_backend", storage)  # create_study wraps an RDBStorage in a cache
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def add_finished(study: optuna.Study, trials: Sequence[FrozenTrial]) -> list[int]:
    """Add finished ``trials`` to ``study`` as ``Study.add_trial`` would, in one transaction on an RDB
    storage; returns the numbers the storage gave them."""
    for t in trials:
        if not t.state.is_finished():
            raise ValueError(f"trial {t.number} is {t.state.name}: only finished trials are added in bulk")
        t._validate()  # what add_trial checks
        if t.values is not None and len(t.values) != len(study.directions):
            raise ValueError(f"trial {t.number} has {len(t.values)} values for {len(study.directions)} objectives")
    backend = rdb_of(study)
    if not trials:
        return []
    if backend is None:
        before = len(study.get_trials(deepcopy=False))
        study.add_trials(trials)
        return list(range(before, before + len(trials)))
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        owner = models.StudyModel.find_or_raise_by_id(study._study_id, session, for_update=True)
        first = models.TrialModel.count(session, owner)  # the lock makes the numbers ours
        numbers = range(first, first + len(trials))
        session.execute(sa.insert(models.TrialModel.__table__), [
            {"study_id": owner.study_id, "number": n, "state": t.state, "datetime_start": _utc(t.datetime_start),
             "datetime_complete": _utc(t.datetime_complete)} for n, t in zip(numbers, trials)])
        # the ids the database gave: read back by number (RETURNING would make SQLite insert row by row)
        ids = dict(session.execute(sa.select(models.TrialModel.number, models.TrialModel.trial_id)
                                   .where(models.TrialModel.study_id == owner.study_id,
                                          models.TrialModel.number >= first)).all())
        rows = _children(models, [(ids[n], t) for n, t in zip(numbers, trials)])
        for model, values in rows.items():
            if values:
                session.execute(sa.insert(model.__table__), values)
    return list(numbers)


def _utc(moment: datetime | None) -> datetime | None:
    """As ``TrialModel`` stores a datetime: naive UTC."""
    return None if moment is None else moment.astimezone(timezone.utc).replace(tzinfo=None)


def _children(models, trials: list[tuple[int, FrozenTrial]]) -> dict:
    """Each table's rows for ``trials`` (pairs of trial id and trial), as Optuna's ``add_trial`` writes them."""
    rows: dict = {models.TrialValueModel: [], models.TrialIntermediateValueModel: [], models.TrialParamModel: [],
                  models.TrialUserAttributeModel: [], models.TrialSystemAttributeModel: []}
    for trial_id, t in trials:
        for objective, v in enumerate(t.values or []):
            stored, kind = models.TrialValueModel.value_to_stored_repr(v)
            rows[models.TrialValueModel].append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
        for step, v in t.intermediate_values.items():
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v)
            rows[models.TrialIntermediateValueModel].append(
                {"trial_id": trial_id, "step": step, "intermediate_value": stored, "intermediate_value_type": kind})
        for name, v in t.params.items():
            dist = t.distributions[name]
            rows[models.TrialParamModel].append(
                {"trial_id": trial_id, "param_name": name, "param_value": dist.to_internal_repr(v),
                 "distribution_json": distribution_to_json(dist)})
        for model, attrs in ((models.TrialUserAttributeModel, t.user_attrs),
                             (models.TrialSystemAttributeModel, t.system_attrs)):
            rows[model] += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    return rows


# --- Ray ------------------------------------------------------------------------------------------------------

def auto_address() -> str | None:
    """The address of the cluster this machine last started (what ``ray.init(address="auto")`` would join),
    or None when there is none or its record is unreadable."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - a stale or unreadable record of the last cluster
        return None


def reload_ray_config() -> None:
    """Make Ray read its configuration from the environment again (read once at import): what Ray itself
    does when it turns token authentication on."""
    from ray._raylet import Config

    Config.initialize("")


def single_machine(ray) -> None:
    """Tell an already imported Ray that this is a single-machine instance: GCS, raylet, workers and agents then
    bind loopback only. Children read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, set by the caller."""
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False


def init_on_loopback(ray, **options) -> None:
    """``ray.init`` of a private instance whose node address is 127.0.0.1 (a keyword Ray keeps private)."""
    ray.init(_node_ip_address="127.0.0.1", **options)
