"""A processor-only study: nothing to train, so no Ray; the driver prices the trials itself, a batch at a time."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from dse.search import samplers
from dse.search.lease import Lease
from dse.search.progress_line import Progress, pareto_size
from dse.search.internals import add_finished
from dse.search.space import SearchSpace
from dse.search.outcomes import COMPLETE, design_key, error_line, fail, tell_duplicate, tell_outcome
from dse.search.trial import price_trials
from dse.util.errors import UserError

if TYPE_CHECKING:
    from dse.search.driver import RunOptions

PRICE_BATCH = 64  # processor-only trials asked, priced (one estimate_many) and recorded together


def price_in_driver(study: optuna.Study, lease: Lease, space: SearchSpace, opts: RunOptions, target: int,
                     timeout: float | None, directory: Path) -> optuna.Study:
    """A processor-only study, without Ray. Trials are asked from an in-memory copy of the study (its sampler
    sees every trial), priced ``PRICE_BATCH`` at a time by one ``estimate_many`` per workload, and written to
    the storage a batch at a time, in one transaction (``dse.search.internals``): a kill -9 loses no finished
    trial, only the batch in hand, which was never recorded (--resume asks it again)."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
    progress = Progress(opts.progress, target)
    progress.done = len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))
    while study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.WAITING]):  # re-queued by --resume
        trial = study.ask()
        outcome = price_trials(space, [{p.name: samplers.suggest(trial, p) for p in space.params}])[0]
        if isinstance(outcome, Exception):
            fail(study, trial, error_line(outcome))
        elif not isinstance(tell_outcome(study, space, trial, {**outcome, "node": "driver"}), str):
            progress.done += 1
    working = optuna.create_study(directions=space.directions, sampler=study.sampler)  # reseeded on resume
    working.add_trials(study.get_trials(deepcopy=False, states=finished))
    done = {design_key(t.params): t for t in study.get_trials(deepcopy=False, states=[COMPLETE])}
    number = len(study.get_trials(deepcopy=False))  # the storage's next trial number (the lease makes it ours)
    in_a_row, last_error, start = 0, "", time.monotonic()
    while progress.done < target and not (timeout is not None and time.monotonic() - start > timeout) \
            and not (opts.max_failures and in_a_row >= opts.max_failures):
        lease.renew()
        trials = [working.ask() for _ in range(min(PRICE_BATCH, target - progress.done))]
        params = [{p.name: samplers.suggest(t, p) for p in space.params} for t in trials]
        fresh = {design_key(p): p for p in params if design_key(p) not in done}  # a design is priced once
        priced = dict(zip(fresh, price_trials(space, list(fresh.values()))))
        errors = []
        for trial, p in zip(trials, params):
            key = design_key(p)
            if key in done:
                tell_duplicate(working, trial, done[key])
                errors.append(None)
            elif isinstance(priced[key], Exception):
                errors.append(fail(working, trial, error_line(priced[key])))
            else:
                told = tell_outcome(working, space, trial, {**priced[key], "node": "driver"})
                errors.append(told if isinstance(told, str) else None)
                if errors[-1] is None:  # duplicates name the trial as the storage will number it
                    done[key] = copy.copy(told)
                    done[key].number = number + len(errors) - 1
        records = working.get_trials(deepcopy=False)
        numbers = add_finished(study, [records[t.number] for t in trials])  # the batch: one transaction
        if numbers[0] != number:  # the lease keeps other writers out; duplicate_of relies on it
            raise RuntimeError(f"study {space.study!r}: trial numbers moved under this driver's lease "
                               f"(expected {number}, got {numbers[0]})")
        number += len(trials)
        for error in errors:
            if error is None:
                progress.done += 1
                progress.cached += 1
                in_a_row = 0
            else:
                progress.failed += 1
                in_a_row, last_error = in_a_row + 1, error
        progress.show(0, lambda: pareto_size(working))
    progress.show(0, lambda: pareto_size(working), final=True)
    if opts.max_failures and in_a_row >= opts.max_failures:
        raise UserError(f"{directory}: stopped after {in_a_row} trials failed in a row (last: {last_error}); "
                        "finished trials are kept: fix the cause, then --resume")
    return study
