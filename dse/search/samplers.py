"""The sampler registry: name -> factory. A name exists only with its factory (no list beside the dict)."""

from __future__ import annotations

from collections.abc import Callable

import optuna


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


def resolve(name: str, n_trials: int) -> str:
    return ("tpe" if n_trials < AUTO_NSGA2_FROM else "nsga2") if name == AUTO else name


def build(name: str, grid: Callable[[], dict], n_trials: int, seed: int) -> optuna.samplers.BaseSampler:
    name = resolve(name, n_trials)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(NAMES)}")
    return SAMPLERS[name](grid, n_trials, seed)
