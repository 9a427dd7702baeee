"""A study directory: the space it was run with (``space.yaml``), the checks before a run writes there, and the
Optuna study its storage holds."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import yaml

from dse.search import samplers
from dse.search.lock import LOCK_FILE, take
from dse.search.space import SearchSpace, load_space
from dse.search.storage import display_name as storage_name
from dse.search.storage import locate, open_storage
from dse.util.errors import UserError
from hwmodel import ConfigError, load_yaml, read_text

SPACE_FILE = "space.yaml"


def study_dir(space: SearchSpace, results_dir: Path) -> Path:
    return Path(results_dir) / space.study


def check_results_dir(space: SearchSpace, directory: Path, resume: bool) -> None:
    if (directory / LOCK_FILE).is_file():  # refuse a running study before any other message
        with open(directory / LOCK_FILE) as handle:
            take(handle, directory)
    saved = directory / SPACE_FILE
    if not saved.is_file():
        if any(directory.glob("*")) and not resume:
            raise UserError(f"{directory}: exists and is not a dse study directory; choose another --results-dir")
        return
    try:
        previous = load_yaml(read_text(saved), str(saved)) or {}
    except (yaml.YAMLError, ConfigError):
        previous = None
    if not isinstance(previous, dict):
        raise UserError(f"{saved}: unreadable; this directory does not hold a study dse can resume")
    if previous.get("study") != space.study:
        raise UserError(f"{directory}: belongs to study {previous.get('study')!r}, not {space.study!r}")
    same = all(previous.get(k) == space.source.get(k) for k in ("space", "objectives", "workloads", "arch", "search"))
    if not resume:
        raise UserError(f"{directory}: study {space.study!r} already has results; pass --resume to continue it")
    if not same:
        raise UserError(f"{directory}: study {space.study!r} was run with a different space, objectives, workloads "
                        "arch or search mode; use a new study name")


def write_space(space: SearchSpace, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (SPACE_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(space.source, sort_keys=False))
    os.replace(tmp, directory / SPACE_FILE)


def open_study(space: SearchSpace, storage: str, n_trials: int, create: bool) -> optuna.Study:
    """The study in ``storage`` (a URL or journal path, as ``storage.locate`` returns it)."""
    sampler = samplers.make_sampler(space, n_trials)
    if create:
        return optuna.create_study(study_name=space.study, storage=open_storage(storage), sampler=sampler,
                                   directions=space.directions, load_if_exists=True)
    try:
        return optuna.load_study(study_name=space.study, storage=open_storage(storage), sampler=sampler)
    except KeyError:
        raise UserError(f"{storage_name(storage)}: no study named {space.study!r} in it") from None


def load_results(results: Path, storage: str | None = None) -> tuple[SearchSpace, optuna.Study]:
    """The space and study of a study directory, from the storage it records (or ``storage``), opened
    relative to ``results`` itself: a copied or renamed directory reads its own trials."""
    saved = Path(results) / SPACE_FILE
    if not saved.is_file():
        raise UserError(f"{results}: not a dse study directory (no {SPACE_FILE})")
    space = load_space(saved)
    url = locate(storage, Path(results), space.storage, must_exist=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(space, url, space.n_trials, create=False)
    missing = study.user_attrs.get("missing_workloads")
    if missing:  # an optional workload the study ran without (dse.search.optional_workloads)
        from dse.search.optional_workloads import without

        space = without(space, missing)
    return space, study
