"""Nested search against today's flat search, at an equal number of trainings: the share of the exact
Pareto set each finds.

The space: networks (weight bits x T x width, trained on scikit-learn's digits in seconds) x the
1,152-processor grid of search_spaces/cpu_joint.yaml; objectives accuracy, energy, area. First every
network is trained (the cache) and solved over the whole grid: the union of the per-network fronts,
re-filtered, is the exact Pareto set. Then, for each sampler (TPE, random) and seed, real studies
(``run_search``, real Ray, SQLite storage) run with the same cache:

- nested: ``--n-trials K`` networks, each one's processors solved;
- flat: trials sampled jointly, up to the trial before the (K+1)-th distinct network is first proposed
  (everything flat search does with K trainings; it runs at most ``--flat-trials`` trials).

The share found is |front found ∩ exact front| / |exact front|, over (network, processor) points. Counts,
not times: the machine's load does not change them (it only slows the run).

Run: ``python benchmarks/nested.py`` (32 networks, K = 12, 3 seeds; writes results/benchmarks/nested.txt);
smoke: ``--networks-bits 3 4 --seeds 1 --budget 2 --flat-trials 30 --out /tmp/nested.txt``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna

from dse.search.driver import RunOptions, run_search
from dse.search.nested import network_key, network_params, solve
from dse.search.reports import feasible, pareto_mask, to_minimization
from dse.search.space import load_space
from dse.search.trial import workload_metrics

SPACE = """\
study: {study}
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {{epochs: 3, finetune_epochs: 1, batch_size: 32}}
space:
  weight_bits: {bits}
  time_window: [2, 4, 8, 16]
  width: [0.25, 0.5]
  pe_rows: [8, 16, 32]
  pe_cols: [8, 16, 32]
  weight_sram_kib: [64, 128, 256, 512]
  vmem_sram_kib: [32, 64, 128, 256]
  spike_sram_kib: [16, 32, 64, 128]
  clock_mhz: [200, 400]
objectives: [accuracy, energy, area]
search: {{mode: {mode}}}
sampler: {{name: {sampler}, seed: {seed}}}
budget: {{n_trials: {n}}}
resources: {{cpus: 1}}
"""


def space_file(directory: Path, **fields):
    path = directory / f"{fields['study']}.yaml"
    path.write_text(textwrap.dedent(SPACE.format(**fields)))
    return load_space(path)


def point(space, params: dict) -> tuple:
    return tuple(repr(params[p.name]) for p in space.params)


def exact_front(space, cache: Path) -> set[tuple]:
    """Every network trained, every processor priced: the feasible non-dominated (network, processor) points."""
    import itertools

    nets = network_params(space)
    keys, values = [], []
    for combo in itertools.product(*(p.grid() for p in nets)):
        network = dict(zip((p.name for p in nets), combo))
        per = {w.name: workload_metrics(space, network, w, str(cache), None, "auto", 1, None)
               for w in space.workloads}  # what a study records: validation accuracy and its spike statistics
        for p in solve(space, network, per):
            if p["feasible"]:
                keys.append(point(space, p["params"]))
                values.append([p["values"][o] for o in space.objectives])
    mask = pareto_mask(to_minimization(np.array(values), space.objectives))
    return {k for k, m in zip(keys, mask) if m}


def found(space, trials) -> set[tuple]:
    ok = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and feasible(t)]
    if not ok:
        return set()
    mask = pareto_mask(to_minimization(np.array([t.values for t in ok]), space.objectives))
    return {point(space, t.params) for t, m in zip(ok, mask) if m}


def within_trainings(space, study, budget: int) -> list:
    """The flat study's trials before its (budget+1)-th distinct network; and how many networks that is."""
    seen, kept = set(), []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        key = network_key(space, t.params)
        if key not in seen and len(seen) == budget:
            break
        seen.add(key)
        kept.append(t)
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks-bits", type=int, nargs="+", default=[2, 3, 4, 5], help="weight bits of the networks")
    ap.add_argument("--budget", type=int, default=12,
                    help="trainings each search may spend (K; TPE samples at random for its first 10)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--flat-trials", type=int, default=300, help="most trials a flat study runs")
    ap.add_argument("--cache", type=Path, help="trained-network cache (default: a temporary directory)")
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks/nested.txt"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="nested-bench-"))
    cache = args.cache or work / "cache"
    bits = str(list(args.networks_bits))
    base = space_file(work, study="exact", bits=bits, mode="flat", sampler="random", seed=0, n=1)
    t0 = time.perf_counter()
    exact = exact_front(base, cache)
    n_networks = len(args.networks_bits) * 4 * 2
    lines = [f"space: {n_networks} networks (digits, tiny_vgg, weight bits {bits} x T [2, 4, 8, 16] x width "
             f"[0.25, 0.5]) x 1,152 processors; objectives accuracy, energy, area",
             f"exact Pareto set: {len(exact)} (network, processor) points (every network trained and solved, "
             f"{time.perf_counter() - t0:.0f} s)",
             f"budget: {args.budget} trainings per search ({100 * args.budget / n_networks:.0f} % of the networks); "
             f"{args.seeds} seeds", "",
             f"{'search':<14} {'seed':>4} {'trainings':>9} {'trials':>7} {'front':>6} {'exact found':>12} {'share':>7}"]
    shares: dict[str, list[float]] = {}
    for mode in ("nested", "flat"):
        for sampler in ("tpe", "random"):
            for seed in range(args.seeds):
                n = args.budget if mode == "nested" else args.flat_trials
                space = space_file(work, study=f"{mode}-{sampler}-{seed}", bits=bits, mode=mode, sampler=sampler,
                                   seed=seed, n=n)
                study = run_search(space, RunOptions(results_dir=work / "runs", progress=False, cache_dir=str(cache),
                                                     max_failures=0))
                trials = study.get_trials(deepcopy=False)
                if mode == "flat":
                    trials = within_trainings(space, study, args.budget)
                got = found(space, trials)
                hit = len(got & exact)
                networks = len({network_key(space, t.params) for t in trials})
                share = hit / len(exact)
                shares.setdefault(f"{mode} {sampler}", []).append(share)
                lines.append(f"{mode + ' ' + sampler:<14} {seed:>4} {networks:>9} {len(trials):>7} {len(got):>6} "
                             f"{hit:>12} {100 * share:>6.1f}%")
                print(lines[-1], flush=True)
    lines += ["", "mean share of the exact Pareto set found at equal trainings:"]
    lines += [f"  {name:<14} {100 * np.mean(v):5.1f} %  (min {100 * min(v):.1f}, max {100 * max(v):.1f})"
              for name, v in shares.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
