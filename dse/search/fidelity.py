"""Multi-fidelity search: trainings report their validation accuracy every epoch, a pruner stops hopeless ones.

Optuna's pruners judge single-objective trials only (``trial.report`` raises ``NotImplementedError`` on a
multi-objective study), and a search has several objectives. A training's own fidelity is one curve, its
validation accuracy per epoch, so each trained network gets a trial in a companion single-objective study
(maximize), ``<study>.fidelity.<workload>``, in the same storage: the curve is reported there and the pruner
judges it against the other trainings of that workload at the same epoch. The companion trial ends COMPLETE
(its last validation accuracy) or PRUNED; the search's trial is told PRUNED when one of its trainings is,
so it never reaches the front. Companion studies are per workload: accuracies of different datasets do not
compare.

Epoch reports travel from the Ray workers to the driver through an actor (``Board``): a worker posts
(training, epoch, accuracy) and waits for the verdict; the driver, which alone writes the storage, collects
the posts, reports them, asks the pruner and answers. No worker needs the storage, so this works on any
cluster. A pruned training stops after its epoch's resumable state is saved: the cache never publishes it,
and a later trial that asks for the same network resumes it (its earlier epochs are reported again first).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import optuna

from dse.search import internals
from dse.util.errors import UserError

PRUNERS = ("none", "successive_halving", "hyperband")
VERDICT_WAIT_S = 600.0  # a worker waits this long for the driver's verdict, then trains on (never stuck)
COLLECT_WAIT_S = 5.0


@dataclass(frozen=True)
class Pruning:
    name: str = "none"
    min_epochs: int = 1  # the first rung: no training is judged before this many epochs
    reduction_factor: int = 3  # each rung keeps the best 1/reduction_factor

    @property
    def enabled(self) -> bool:
        return self.name != "none"

    def pruner(self) -> optuna.pruners.BasePruner:
        if self.name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.min_epochs,
                                                          reduction_factor=self.reduction_factor)
        if self.name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=self.min_epochs, reduction_factor=self.reduction_factor)
        return optuna.pruners.NopPruner()


def parse_pruner(value: Any) -> Pruning:
    """``pruner: none | successive_halving | hyperband``, or a mapping ``{name, min_epochs, reduction_factor}``."""
    if value is None:
        return Pruning()
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise UserError(f"pruner: expected one of {', '.join(PRUNERS)} or a mapping with name, min_epochs, "
                        f"reduction_factor; got {type(value).__name__}")
    for key in value:
        if key not in ("name", "min_epochs", "reduction_factor"):
            raise UserError(f"pruner.{key}: unknown key (allowed: min_epochs, name, reduction_factor)")
    name = value.get("name", "none")
    if name not in PRUNERS:
        raise UserError(f"pruner.name: unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    out = {}
    for key, minimum in (("min_epochs", 1), ("reduction_factor", 2)):
        v = value.get(key, getattr(Pruning, key))
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise UserError(f"pruner.{key}: expected an integer >= {minimum}, got {v!r}")
        out[key] = v
    return Pruning(name, **out)


class Pruned(Exception):
    """Raised in a worker's training when the driver prunes it (its state is saved: it can resume)."""

    def __init__(self, workload: str, epoch: int, value: float):
        super().__init__(f"{workload}: pruned after epoch {epoch} (validation accuracy {value:.2%})")
        self.workload, self.epoch, self.value = workload, epoch, value


def make_board(ray):
    @ray.remote(num_cpus=0, max_restarts=0)
    class Board:
        """Posts from the workers, verdicts from the driver. Every method is a coroutine: the actor's event
        loop serves workers that wait for their verdicts and the driver that collects, all at once."""

        def __init__(self):
            self.posts: list[tuple] = []
            self.verdicts: dict[tuple, bool] = {}
            self.waiting: dict[tuple, asyncio.Event] = {}
            self.arrived = asyncio.Event()

        async def post(self, token: tuple, epoch: int, value: float) -> bool:
            key = (*token, epoch)
            event = self.waiting[key] = asyncio.Event()
            self.posts.append((token, epoch, value))
            self.arrived.set()
            try:
                await asyncio.wait_for(event.wait(), VERDICT_WAIT_S)
            except asyncio.TimeoutError:
                return False
            finally:
                self.waiting.pop(key, None)
            return self.verdicts.pop(key)

        async def collect(self, wait_s: float) -> list[tuple]:
            if not self.posts:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), wait_s)
                except asyncio.TimeoutError:
                    pass
            posts, self.posts = self.posts, []
            return posts

        async def decide(self, verdicts: list[tuple]) -> None:
            for token, epoch, prune in verdicts:
                key = (*token, epoch)
                if key in self.waiting:
                    self.verdicts[key] = prune
                    self.waiting[key].set()

    return Board.options(max_concurrency=1000).remote()


def reporter(ray, board, trial_number: int):
    """``report(workload, epoch, value)`` for ``run_trial``: posts to the board, raises ``Pruned`` on its verdict."""

    def report(workload: str, epoch: int, value: float) -> None:
        try:
            prune = ray.get(board.post.remote((trial_number, workload), epoch, value), timeout=VERDICT_WAIT_S + 60)
        except Exception:  # noqa: BLE001 - the driver or its board is gone: train on, the result still counts
            prune = False
        if prune:
            raise Pruned(workload, epoch, value)

    return report


class Fidelity:
    """The driver's side: the companion studies, the pending collect call, the verdicts."""

    def __init__(self, ray, study: optuna.Study, pruning: Pruning):
        self.ray, self.study, self.pruning = ray, study, pruning
        self.board = make_board(ray)
        self.pending = self.board.collect.remote(COLLECT_WAIT_S)
        self.trials: dict[tuple, optuna.Trial] = {}  # (search trial number, workload) -> companion trial
        self.studies: dict[str, optuna.Study] = {}

    def companion(self, workload: str) -> optuna.Study:
        if workload not in self.studies:
            name = companion_name(self.study.study_name, workload)
            study = optuna.create_study(study_name=name, storage=internals.storage_of(self.study), direction="maximize",
                                        pruner=self.pruning.pruner(), load_if_exists=True)
            for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # left by a killed driver
            self.studies[workload] = study
        return self.studies[workload]

    def handle(self) -> None:
        """Report the posts collected so far, ask the pruner, answer; then wait for more."""
        verdicts = []
        for token, epoch, value in self.ray.get(self.pending, timeout=60):
            trial = self.trials.get(token)
            if trial is None:
                trial = self.trials[token] = self.companion(token[1]).ask()
                trial.set_user_attr("search_trial", token[0])
            trial.report(value, epoch)
            prune = trial.should_prune()
            if prune:
                self.companion(token[1]).tell(trial, state=optuna.trial.TrialState.PRUNED)
                self.trials.pop(token)
            verdicts.append((token, epoch, prune))
        if verdicts:
            self.board.decide.remote(verdicts)
        self.pending = self.board.collect.remote(COLLECT_WAIT_S)

    def finish(self, number: int, outcome: dict | None) -> None:
        """The search trial ``number`` ended (``outcome`` None: it failed): its trainings' companion trials end
        with it, COMPLETE with the last validation accuracy where the training finished, FAIL otherwise."""
        for token in [t for t in self.trials if t[0] == number]:
            trial = self.trials.pop(token)
            companion = self.companion(token[1])
            metrics = (outcome or {}).get("per_workload", {}).get(token[1])
            curve = (metrics or {}).get("val_curve") or []
            if not curve:  # failed, or never finished training
                companion.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                companion.tell(trial, curve[-1])

    def close(self) -> None:
        self.ray.kill(self.board)


def tell_pruned(study: optuna.Study, trial: optuna.Trial, outcome: dict) -> optuna.trial.FrozenTrial:
    """Mark a search trial PRUNED: no objective values, so it never reaches a front; what was learnt is kept."""
    trial.set_user_attr("pruned", outcome["pruned"])
    for key in ("per_workload", "seconds", "node", "duplicate_of"):
        if key in outcome:
            trial.set_user_attr(key, outcome[key])
    return study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def companion_name(study: str, workload: str) -> str:
    return f"{study}.fidelity.{workload}"
