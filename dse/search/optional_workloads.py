"""Optional workloads: a dataset priced whenever its files are present, reported as missing otherwise.

Which optional workloads a study runs without is decided when the study starts (their dataset's
folder absent under the data directory) and kept in the study (``missing_workloads``): a resumed
study prices the same workloads, so its trials stay comparable. A damaged dataset is not missing:
its trials fail with the loader's error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna

from dse.data.download import SOURCES
from dse.data.registry import default_data_dir
from dse.util.errors import UserError
from dse.search.space import SearchSpace

ATTR = "missing_workloads"


def missing(space: SearchSpace, data_dir: str | None) -> list[str]:
    """The optional workloads whose dataset's folder is absent."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return [w.name for w in space.workloads if w.optional and w.train["dataset"] in SOURCES
            and not (root / SOURCES[w.train["dataset"]][2]).exists()]


def without(space: SearchSpace, names) -> SearchSpace:
    return dataclasses.replace(space, workloads=tuple(w for w in space.workloads if w.name not in set(names)))


def settle(study: optuna.Study, space: SearchSpace, data_dir: str | None, directory: Path) -> SearchSpace:
    """The space the study runs: without the optional workloads missing now (a new study) or when it started
    (a resumed one, which refuses a change)."""
    names = missing(space, data_dir)
    before = study.user_attrs.get(ATTR)
    if before is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(ATTR, names)
        before = names
    before = before or []
    if sorted(before) != sorted(names):
        appeared = sorted(set(before) - set(names))
        raise UserError(f"{directory}: workload(s) {', '.join(appeared or sorted(set(names) - set(before)))} "
                        f"{'have files now' if appeared else 'lost their files'} but the study "
                        f"{'started without' if appeared else 'started with'} them; start a new study (another "
                        "name) to change which datasets are priced")
    return without(space, before)
