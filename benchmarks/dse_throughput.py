"""dse search throughput and sampler efficiency, measured in one run (ratios: this machine is noisy).

1. A cached (processor-only) trial against a training trial, both through ``run_trial``.
2. Trials per hour with 1 and 2 Ray workers on distinct training trials (digits).
3. On a hwmodel-only space small enough to enumerate, the hypervolume NSGA-II, TPE and random search
   reach with 10 % of the grid's evaluations, as a fraction of the exhaustive front's (several seeds).

    python benchmarks/dse_throughput.py [--seeds 3] [--out results/benchmarks/dse_throughput.txt]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

import hwmodel
from _timing import LoadCheck, add_load_option, report
from dse.search.driver import RunOptions, run_search
from dse.search.reports import hypervolume, pareto_mask
from dse.search.samplers import make_sampler, suggest
from dse.search.space import parse_space
from dse.search.trial import run_trial

DIGITS = {"dataset": "digits", "model": "tiny_vgg", "train": {"epochs": 4, "finetune_epochs": 1, "batch_size": 64}}
HW_SPACE = {"pe_rows": [4, 8, 16, 32], "pe_cols": [4, 8, 16, 32], "weight_sram_kib": [32, 64, 128, 256, 512, 1024],
            "spike_sram_kib": [16, 32, 64, 128], "vmem_sram_kib": [64, 128, 256]}
OBJECTIVES = ["energy", "area", "latency"]


def cached_vs_training(lines: list[str]) -> None:
    space = parse_space({"study": "b1", "workloads": [DIGITS], "space": {"pe_rows": [4, 8]},
                         "objectives": ["accuracy", "energy"]})
    cache = tempfile.mkdtemp()
    first = run_trial(space, {"pe_rows": 4}, cache, threads=2)
    second = run_trial(space, {"pe_rows": 8}, cache, threads=2)
    assert not first["cached"] and second["cached"]
    lines.append(f"training trial (digits, tiny_vgg, 5 epochs): {first['seconds']:8.3f} s")
    lines.append(f"cached trial (same network, other processor): {second['seconds']:8.4f} s   "
                 f"-> {first['seconds'] / second['seconds']:,.0f}x faster")


def trials_per_hour(lines: list[str], n: int = 6) -> None:
    rates = {}
    for workers in (1, 2):
        source = {"study": f"tph{workers}", "workloads": [DIGITS], "space": {"seed": list(range(n))},
                  "objectives": ["accuracy", "energy"], "sampler": "grid", "budget": {"n_trials": n},
                  "resources": {"cpus": 1, "max_concurrent": workers}}
        space = parse_space(source)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            run_search(space, RunOptions(results_dir=Path(d), progress=False, cache_dir=str(Path(d) / "cache")))
            rates[workers] = n / (time.perf_counter() - t0) * 3600
    lines.append(f"training trials per hour, 1 worker: {rates[1]:7.0f}; 2 workers: {rates[2]:7.0f} "
                 f"-> {rates[2] / rates[1]:.2f}x ({n} distinct digits trainings each, 1 CPU per trial, 2-core machine)")


def sampler_efficiency(lines: list[str], seeds: int) -> None:
    base, wl = hwmodel.load_arch("paper"), hwmodel.load_workload("vgg16-cifar10")
    names = list(HW_SPACE)
    grid = np.array(list(itertools.product(*HW_SPACE.values())), dtype=float)
    t0 = time.perf_counter()
    res = hwmodel.estimate_many(base, wl, **{k: grid[:, i] for i, k in enumerate(names)})
    exhaustive_s = time.perf_counter() - t0
    values = np.stack([res["energy_j"] * 1e6, res["area_mm2"], res["latency_s"] * 1e3], axis=1)
    ok = res["feasible"] & np.all(np.isfinite(values), axis=1)
    pts = values[ok]
    ideal, nadir = pts.min(axis=0), pts.max(axis=0)
    scale = lambda v: (v - ideal) / (nadir - ideal)  # noqa: E731
    reference = np.full(3, 1.1)
    full = hypervolume(scale(pts[pareto_mask(pts)]), reference)
    front_keys = {tuple(r) for r in grid[ok][pareto_mask(pts)]}
    budget = len(grid) // 10
    lines.append(f"enumerable space: {len(grid)} processors ({ok.sum()} feasible), priced exhaustively by "
                 f"estimate_many in {exhaustive_s * 1e3:.1f} ms; budget {budget} evaluations (10 %)")
    lookup = {tuple(row): (tuple(v), f) for row, v, f in zip(grid, values, ok)}
    source = {"study": "hv", "workloads": [{"hwmodel": "vgg16-cifar10"}], "space": HW_SPACE, "objectives": OBJECTIVES}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for sampler in ("nsga2", "tpe", "random"):
        fractions, recalls = [], []
        for seed in range(seeds):
            space = parse_space({**source, "sampler": {"name": sampler, "seed": seed}})
            study = optuna.create_study(directions=space.directions, sampler=make_sampler(space, budget))
            for _ in range(budget):
                trial = study.ask()
                params = tuple(float(suggest(trial, p)) for p in space.params)
                v, feasible = lookup[params]
                trial.set_constraint("feasible_processor", 0.0 if feasible else 1.0)
                study.tell(trial, list(v))
            found = np.array([t.values for t in study.best_trials])
            fractions.append(hypervolume(scale(found), reference) / full if len(found) else 0.0)
            seen = {tuple(float(t.params[p.name]) for p in space.params) for t in study.trials}
            recalls.append(len(seen & front_keys) / len(front_keys))
        lines.append(f"  {sampler:>6}: hypervolume {np.mean(fractions):6.1%} of the exhaustive front's "
                     f"(seeds: {', '.join(f'{f:.1%}' for f in fractions)}); found {np.mean(recalls):5.1%} of its "
                     f"{len(front_keys)} Pareto-optimal processors")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/dse_throughput.txt"))
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    lines = [f"dse search throughput ({os.cpu_count()} cores), one run"]
    cached_vs_training(lines)
    sampler_efficiency(lines, args.seeds)
    trials_per_hour(lines)
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
