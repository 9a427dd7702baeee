"""Exhaustive, vectorized processor sweeps over the networks a study trained.

For every distinct training configuration in the study, every processor of the space's grid is priced
with one ``hwmodel.estimate_many`` call per workload (milliseconds for thousands of processors):
the full picture an architect wants, beside the sampled front.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

import hwmodel
from dse.search.objectives import OBJECTIVES, PRICED
from dse.search.reports import pareto_mask, to_minimization
from dse.search.resolve import resolve
from dse.search.space import MAX_GRID, SHARED_FIELDS, SearchSpace
from dse.util import units
from dse.util.atomic import replacing
from dse.util.errors import UserError
from dse.util.progress import bar



@dataclass(frozen=True)
class PricedGrid:
    """One network's processors priced on every workload (``price_grid``), in display units."""

    values: dict[str, np.ndarray]  # every objective the workloads give, aggregated over them
    violation: dict[str, np.ndarray]  # each constraint of the space by its label: <= 0 where satisfied
    ok: np.ndarray  # the processor itself is feasible (hwmodel)
    feasible: np.ndarray  # ok, every constraint satisfied and every objective finite
    workloads: list  # (study workload, its resolve(), the hwmodel workload, estimate_many's results)


def price_grid(space: SearchSpace, network: dict, per_network: dict[str, dict],
               fields: dict[str, np.ndarray]) -> PricedGrid:
    """Price the processors ``fields`` (arrays of processor fields) for one network. ``per_network``: each
    workload's network metrics (accuracy, spike_stats; a fixed workload: {}). Every workload's processor is
    ``resolve``d for the network (its T and weight bits); the grid sets the other fields."""
    size = len(next(iter(fields.values()))) if fields else 1
    metrics: dict[str, list[np.ndarray]] = {m: [] for m in OBJECTIVES}
    ok = np.ones(size, dtype=bool)
    workloads = []
    for w in space.workloads:
        r = resolve(space, network, w)
        workload = hwmodel.load_workload(per_network[w.name]["spike_stats"] if w.trains else w.hwmodel_workload)
        res = hwmodel.estimate_many(r.arch, workload, **fields)
        ok &= res["feasible"]
        for o in PRICED:
            metrics[o.name].append(o.read_many(res))
        if w.trains:
            metrics["accuracy"].append(np.full(size, per_network[w.name]["accuracy"]))
        workloads.append((w, r, workload, res))
    values = {m: OBJECTIVES[m].aggregate(v, space.aggregate) for m, v in metrics.items() if v}
    violation = {f"{c.metric} {c.op} {c.value:g}": c.violation(values[c.metric]) for c in space.constraints}
    feasible = ok & np.all([v <= 0 for v in violation.values()] or [np.ones(size, bool)], axis=0)
    feasible &= np.all([np.isfinite(values[o]) for o in space.objectives], axis=0)
    return PricedGrid(values, violation, ok, feasible, workloads)


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
        for w in space.workloads:
            source = per.get(w.name, {}).get("spike_stats")
            if w.trains and (source is None or not Path(source).is_file()):
                raise UserError(f"sweep: the trained network of {w.name} ({dict(zip(train_names, key))}) is no longer "
                                "in the cache; re-run the trial or pass the same --cache-dir")
        priced = price_grid(space, trial.params, per, fields)  # the trial's own network; the grid sets the rest
        values.append(np.stack([priced.values[o] / OBJECTIVES[o].scale for o in space.objectives], axis=1))  # SI
        feasible.append(priced.feasible)
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
