"""The driver: owns the Optuna study (ask/tell) and hands its trials to a runner: Ray tasks (``ray_runner``),
networks solved over their processors (``nested``), or, with nothing to train, the driver itself
(``processor_only``).

Only the driver writes to the study storage, and one driver at a time owns a study directory (an
advisory lock the kernel releases if the driver dies) and the study in its storage (a lease, for
drivers on other machines: ``dse.search.lease``). A trial that raises is told FAIL with its
error and the study goes on, unless ``max_failures`` trials fail in a row (a broken setup, not a bad
point); a worker that dies is retried by Ray (``max_retries``); trials left RUNNING by a killed
driver are failed and re-queued with the same parameters on ``--resume``, once its lease has expired.
No design is evaluated twice: a repeated suggestion reuses the earlier result (``duplicate_of``).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna

from dse.search import samplers
from dse.search.lease import Lease
from dse.search.lock import driver_lock
from dse.search.processor_only import price_in_driver
from dse.search.progress_line import Progress
from dse.search.ray_runner import check_resources, init_ray, probe, run_trials
from dse.search.space import OBJECTIVES, SearchSpace
from dse.search.storage import locate, write_record
from dse.search.study import check_results_dir, open_study, study_dir, write_space
from dse.search.outcomes import requeue_stale
from dse.util.errors import UserError


@dataclass(frozen=True)
class RunOptions:
    results_dir: Path = Path("runs")
    address: str | None = None
    n_trials: int | None = None  # total COMPLETE trials wanted, counting earlier runs of the study
    timeout: float | None = None
    resume: bool = False
    storage: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    max_failures: int = 10  # consecutive failed trials that stop the study (0: never stop)




def run_search(space: SearchSpace, opts: RunOptions) -> optuna.Study:
    directory = study_dir(space, opts.results_dir)
    check_results_dir(space, directory, opts.resume)
    address = opts.address or os.environ.get("RAY_ADDRESS")
    if address:
        probe(address)  # before writing: an unreachable cluster leaves nothing behind
    storage = locate(opts.storage, directory, space.storage, must_exist=False)
    if space.trains:  # trials run on Ray (a processor-only study is priced in the driver)
        check_resources(space, address)
    try:
        write_space(space, directory)
        write_record(directory, storage)
    except OSError as exc:
        raise UserError(f"{directory}: cannot write results ({exc.strerror})") from None
    with driver_lock(directory):
        return _drive(space, opts, directory, storage)


def _drive(space: SearchSpace, opts: RunOptions, directory: Path, storage: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = opts.n_trials or space.n_trials
    study = open_study(space, storage, target, create=True)
    lease = Lease(study)
    lease.take()  # before touching any trial: a live driver elsewhere on this storage keeps its own
    try:
        return _run(study, lease, space, opts, directory, target)
    finally:
        lease.release()


def _run(study: optuna.Study, lease: Lease, space: SearchSpace, opts: RunOptions, directory: Path,
         target: int) -> optuna.Study:
    study.set_user_attr("space", space.source)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what optuna-dashboard labels its axes with
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([f"{o} ({OBJECTIVES[o].unit})" for o in space.objectives])
    if any(w.optional for w in space.workloads):
        from dse.search import optional_workloads

        space = optional_workloads.settle(study, space, opts.data_dir, directory)
        for name in study.user_attrs.get(optional_workloads.ATTR, []):
            if opts.progress:
                print(f"workload {name}: dataset files missing under the data directory; the study runs without it",
                      file=sys.stderr)
    if opts.resume:
        requeue_stale(study, space)  # the lease is ours: whoever left trials RUNNING is gone
    study.sampler = samplers.make_sampler(space, target, offset=len(study.get_trials(deepcopy=False)))
    if space.sampler == "grid":
        target = min(target, samplers.grid_size(space))
    timeout = opts.timeout or space.timeout
    if not space.trains:  # nothing to train: no Ray, the driver prices the trials itself
        return price_in_driver(study, lease, space, opts, target, timeout, directory)
    ray = init_ray(opts.address, directory)
    if space.search.mode == "nested":  # the sampler proposes networks; each one's processors are solved
        from dse.search import nested

        return nested.drive(study, lease, space, opts, directory, target, ray, nested.remote(ray),
                            Progress(opts.progress, target))
    return run_trials(study, lease, space, opts, directory, target, timeout, ray)
