"""Exhaustive, vectorized processor sweeps over the networks a study trained.

For every distinct training configuration in the study, every processor of the space's grid is priced
with one ``hwmodel.estimate_many`` call per workload (milliseconds for thousands of processors):
the full picture an architect wants, beside the sampled front.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import optuna

import hwmodel
from dse.search.objectives import OBJECTIVES
from dse.search.reports import pareto_mask, to_minimization
from dse.search.resolve import resolve
from dse.search.space import MAX_GRID, SHARED_FIELDS, SearchSpace
from dse.util import units
from dse.util.atomic import replacing
from dse.util.errors import UserError
from dse.util.progress import bar



def _aggregate(space: SearchSpace, per: list[np.ndarray], name: str) -> np.ndarray:
    return OBJECTIVES[name].aggregate(np.stack(per), space.aggregate, axis=0)


def sweep_study(space: SearchSpace, study: optuna.Study, out: Path) -> tuple[Path, int]:
    """Write ``out`` (CSV): one row per (trained network, processor); returns (path, rows)."""
    arch_params = [p for p in space.params if p.target == "arch" and p.name not in SHARED_FIELDS]
    train_names = [p.name for p in space.params if p.target == "train"]
    if not arch_params:
        raise UserError("sweep: the space has no processor parameters to enumerate")
    points = math.prod(p.size or 0 for p in arch_params)
    if any(p.size is None for p in arch_params) or points > MAX_GRID:  # counted before anything is built
        raise UserError(f"sweep: the processor grid has {points or 'unbounded'} points (at most {MAX_GRID:,}); "
                        "give float parameters a step and narrow the ranges")
    combos = list(itertools.product(*(p.grid() for p in arch_params)))
    grid = np.array(combos, dtype=float)
    fields = {p.name: grid[:, i].astype(int) if p.kind == "int" else grid[:, i] for i, p in enumerate(arch_params)}
    networks: dict[tuple, optuna.trial.FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]):
        networks.setdefault(tuple(t.params.get(n) for n in train_names), t)
    if not networks:
        raise UserError("sweep: the study has no completed trial yet")
    header = [*train_names, *(p.name for p in arch_params), *(units.key(o) for o in space.objectives), "feasible"]
    rows, values, feasible = [], [], []
    for key, trial in bar(networks.items(), len(networks), "price networks", unit="network"):
        per = trial.user_attrs.get("per_workload") or {}
        metrics: dict[str, list[np.ndarray]] = {o: [] for o in space.objectives}
        ok = np.ones(len(grid), dtype=bool)
        for w in space.workloads:
            source = per.get(w.name, {}).get("spike_stats") if w.trains else w.hwmodel_workload
            if source is None or (w.trains and not Path(source).is_file()):
                raise UserError(f"sweep: the trained network of {w.name} ({dict(zip(train_names, key))}) is no longer "
                                "in the cache; re-run the trial or pass the same --cache-dir")
            arch = resolve(space, trial.params, w).arch  # the trial's own pair; the grid sets the other fields
            res = hwmodel.estimate_many(arch, hwmodel.load_workload(source), **fields)
            ok &= res["feasible"]
            for o in space.objectives:
                if OBJECTIVES[o].report_key is None:  # from the trained network
                    metrics[o].append(np.full(len(grid), per[w.name]["accuracy"]))
                else:
                    metrics[o].append(res[OBJECTIVES[o].report_key])  # SI, as estimate_many gives it
        cols = np.stack([_aggregate(space, metrics[o], o) for o in space.objectives], axis=1)
        values.append(cols)
        feasible.append(ok & np.all(np.isfinite(cols), axis=1))
        rows += [[*key, *combo] for combo in combos]
    values, feasible = np.concatenate(values), np.concatenate(feasible)
    on_front = np.zeros(len(values), dtype=bool)
    idx = np.flatnonzero(feasible)
    on_front[idx] = pareto_mask(to_minimization(values[idx], space.objectives))
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + ["pareto"])
        for row, v, ok, pf in zip(rows, values.tolist(), feasible.tolist(), on_front.tolist()):
            w.writerow([*row, *v, ok, pf])
    return out, len(rows)
