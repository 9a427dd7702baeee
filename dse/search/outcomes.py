"""Telling Optuna a trial's outcome: its values and constraints, a failure with its error, a duplicate design's
earlier result; and the trials a killed driver left running."""

from __future__ import annotations

import optuna

from dse.search.space import SearchSpace
from dse.search.trial import finite

COMPLETE = optuna.trial.TrialState.COMPLETE


def design_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def requeue_stale(study: optuna.Study, space: SearchSpace) -> int:
    """Fail trials a killed driver left RUNNING and enqueue their parameters again. A trial killed
    between ``ask`` and its last suggestion never ran and has partial parameters: it is only failed."""
    stale = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING])
    names = {p.name for p in space.params}
    for t in stale:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if set(t.params) == names:
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number}, skip_if_exists=False)
    return len(stale)


def constraints_of(space: SearchSpace, outcome: dict) -> dict[str, float]:
    cons = {"feasible_processor": 0.0 if outcome["feasible"] else 1.0}
    for c in space.constraints:
        cons[f"{c.metric} {c.op} {c.value:g}"] = c.violation(outcome["values"][c.metric])
    return cons


def tell_outcome(study: optuna.Study, space: SearchSpace, trial: optuna.Trial,
                 outcome: dict) -> optuna.trial.FrozenTrial | str:
    """Tell the trial's result: the completed trial, or the error that failed it."""
    values = outcome["values"]
    if not finite(values, space.objectives):
        return fail(study, trial, f"non-finite objective values {values}")
    for key, value in constraints_of(space, outcome).items():
        trial.set_constraint(key, value)
    for key in ("per_workload", "arch", "cached", "seconds", "reasons", "node"):
        trial.set_user_attr(key, outcome[key])
    if outcome.get("test_accuracy") is not None:  # reported beside the objective, never optimized on
        trial.set_user_attr("test_accuracy", outcome["test_accuracy"])
    return study.tell(trial, [values[o] for o in space.objectives])


def fail(study: optuna.Study, trial: optuna.Trial, error: str) -> str:
    trial.set_user_attr("error", error[-2000:])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return error


def error_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[0] if "\n" in text and len(text) > 300 else text


def tell_duplicate(study: optuna.Study, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> None:
    """Complete ``trial`` with the result of ``earlier``, the same design: nothing is trained or priced
    again, and ``duplicate_of`` says so (fronts and exports list the design once)."""
    names = [k for k in earlier.user_attrs if k not in ("duplicate_of", "requeued_from")]
    for key in names:
        trial.set_user_attr(key, earlier.user_attrs[key])
    trial.set_user_attr("duplicate_of", earlier.user_attrs.get("duplicate_of", earlier.number))
    trial.set_user_attr("cached", True)
    for key, value in earlier.constraints.items():
        trial.set_constraint(key, value)
    study.tell(trial, earlier.values)
