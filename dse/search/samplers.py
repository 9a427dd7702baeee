"""The sampler registry: name -> factory. A name exists only with its factory (no list beside the dict). And the
study's sampler (``make_sampler``), and a parameter's value drawn from a trial (``suggest``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import optuna

if TYPE_CHECKING:
    from dse.search.space import Param, SearchSpace


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler stops a study from ``after_trial`` (only legal inside ``optimize``); the
    driver's own budget, capped at the grid's size, stops an ask/tell study instead."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


# factory(grid of the space's parameters, trial budget, seed); ``grid`` is a callable: only the grid sampler
# enumerates the space (a float range without a step has no grid)
Factory = Callable[[Callable[[], dict], int, int], optuna.samplers.BaseSampler]
SAMPLERS: dict[str, Factory] = {
    "tpe": lambda grid, n, seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True),
    "nsga2": lambda grid, n, seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, n // 5))),
    "random": lambda grid, n, seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda grid, n, seed: optuna.samplers.QMCSampler(seed=seed),
    "gp": lambda grid, n, seed: optuna.samplers.GPSampler(seed=seed),
    "grid": lambda grid, n, seed: GridSampler(grid(), seed=seed),
}
AUTO = "auto"  # TPE under AUTO_NSGA2_FROM trials (better than NSGA-II's generations at small budgets), NSGA-II above
AUTO_NSGA2_FROM = 250
NAMES = (AUTO, *SAMPLERS)


def chosen(name: str, n_trials: int) -> str:
    """The sampler ``auto`` stands for at this budget; other names unchanged."""
    return ("tpe" if n_trials < AUTO_NSGA2_FROM else "nsga2") if name == AUTO else name


def build(name: str, grid: Callable[[], dict], n_trials: int, seed: int) -> optuna.samplers.BaseSampler:
    name = chosen(name, n_trials)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(NAMES)}")
    return SAMPLERS[name](grid, n_trials, seed)


def make_sampler(space: SearchSpace, n_trials: int, offset: int = 0) -> optuna.samplers.BaseSampler:
    """``auto``: TPE under 250 trials (better than NSGA-II's generations at small budgets), NSGA-II above.
    ``offset``: trials the study already holds. A resumed study draws from a seed derived from it, so a
    seeded sampler continues with new suggestions instead of replaying its first ones; the same study
    resumed at the same point draws the same sequence."""
    seed = space.seed  # the grid sampler skips visited points by itself: its seed only orders the rest
    if offset and space.sampler != "grid":
        seed = int(np.random.SeedSequence([space.seed, offset]).generate_state(1)[0])
    return build(space.sampler, lambda: {p.name: p.grid() for p in space.params}, n_trials, seed)


def grid_size(space: SearchSpace) -> int:
    return math.prod(p.size for p in space.params)


def suggest(trial: optuna.Trial, p: Param):
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
