"""Nested search: trainings are searched, processors are solved.

The sampler proposes networks only (the training parameters: weight bits, T, width, ...). Each proposed
network is trained (or taken from the cache) in a Ray task, which then solves the processor side:
every processor of the space's grid is priced by one ``hwmodel.estimate_many`` per workload when the
grid has at most ``MAX_NESTED_GRID`` points (exact), else ``search.inner_samples`` processors drawn at
random (seeded by the network) are. The network's feasible Pareto set over its processors is recorded
in the study as ordinary completed trials, one per (network, processor) with every parameter, so the
study's front (``dse status``, ``pareto``, ``show``, the exports) is the union over networks.

The sampler runs on an in-memory study of networks, one trial per network, valued at its ideal point
(its accuracy, and the least energy, area and latency any of its processors reached): a network is good
when what it makes possible is. That study is rebuilt from the storage on ``--resume``; nothing of it
is stored, and a killed driver loses only the networks in flight (their trainings resume from the
cache's partial entries).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import zlib
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

import hwmodel
from dse.search import samplers
from dse.search.objectives import OBJECTIVES, PRICED
from dse.search.progress_line import clock
from dse.search.ray_runner import RESULT_WAIT_S
from dse.search.internals import add_finished
from dse.search.reports import pareto_mask, to_minimization
from dse.search.resolve import design
from dse.search.space import MAX_NESTED_GRID, SHARED_FIELDS, Param, SearchSpace
from dse.search.sweep import price_grid
from dse.search.outcomes import error_line
from dse.search.trial import price
from dse.util.errors import UserError

# what solve() sets per processor: the priced objectives and these
_PER_PROCESSOR = (*(o.name for o in PRICED), "feasible", "reasons", "sops", "adapted")
MAX_REPEATS = 200  # proposals of networks already solved, in a row, before the network space counts as exhausted


def network_params(space: SearchSpace) -> list[Param]:
    """What the sampler proposes: the training parameters (T and weight bits, shared, included)."""
    return [p for p in space.params if p.target == "train"]


def processor_params(space: SearchSpace) -> list[Param]:
    """What is solved per network: the processor-only parameters."""
    return [p for p in space.params if p.target == "arch" and p.name not in SHARED_FIELDS]


def distribution(p: Param):
    """The Optuna distribution ``samplers.suggest`` uses for ``p``."""
    if p.kind == "categorical":
        return CategoricalDistribution(list(p.choices))
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return FloatDistribution(p.low, p.high, step=p.step, log=p.log)


def grid_points(space: SearchSpace) -> int | None:
    """The processor grid's size, or None when a float range has no step."""
    sizes = [p.size for p in processor_params(space)]
    return None if any(s is None for s in sizes) else math.prod(sizes)


def exact(space: SearchSpace) -> bool:
    points = grid_points(space)
    return points is not None and points <= MAX_NESTED_GRID


def candidates(space: SearchSpace, network: dict) -> list[dict]:
    """The processors solved for ``network``: the whole grid when ``exact``, else ``inner_samples`` random
    draws from the space's distributions, seeded by the network (the same network draws the same ones)."""
    params = processor_params(space)
    if exact(space):
        return [dict(zip((p.name for p in params), combo)) for combo in itertools.product(*(p.grid() for p in params))]
    seed = zlib.crc32(repr(sorted(network.items())).encode())
    rng = np.random.default_rng([space.seed, seed])
    columns = {p.name: _draw(p, rng, space.search.inner_samples) for p in params}
    return [{k: v[i] for k, v in columns.items()} for i in range(space.search.inner_samples)]


def _draw(p: Param, rng: np.random.Generator, n: int) -> list:
    if p.kind == "categorical" or p.size is not None:
        grid = p.grid()
        return [grid[i] for i in rng.integers(0, len(grid), n)]
    if p.log:
        return np.exp(rng.uniform(math.log(p.low), math.log(p.high), n)).tolist()
    return rng.uniform(p.low, p.high, n).tolist()


def solve(space: SearchSpace, network: dict, per_network: dict[str, dict]) -> list[dict]:
    """The network's processors worth recording: its feasible Pareto set (constraints included), or, when no
    processor is feasible, the one that violates the constraints least (so the study shows why).

    ``per_network``: each workload's network metrics (accuracy, spike_stats, ...; a fixed workload: {}).
    Each point: params (network and processor), values and per-workload metrics in display units,
    the constraints (<= 0: satisfied), feasible, reasons, arch."""
    procs = candidates(space, network)
    names = [p.name for p in processor_params(space)]
    grid = price_grid(space, network, per_network, {n: np.array([c[n] for c in procs]) for n in names})
    values, violation, ok, feasible = grid.values, grid.violation, grid.ok, grid.feasible
    if feasible.any():
        idx = np.flatnonzero(feasible)
        chosen = idx[pareto_mask(to_minimization(np.stack([values[o][idx] for o in space.objectives], 1),
                                                 space.objectives))]
    else:  # nothing feasible: the least violation (an infeasible processor counts as violating by 1)
        total = (~ok).astype(float) + sum(np.clip(np.nan_to_num(v, nan=1e9), 0, None) for v in violation.values())
        chosen = np.array([int(np.argmin(total))])
    points = []
    for i in chosen.tolist():
        proc = {n: procs[i][n] for n in names}
        per, reasons = {}, set()
        for w, r, workload, res in grid.workloads:
            arch = hwmodel.with_fields(r.arch, **proc)
            if res["feasible"][i]:
                m = {o.name: float(res[o.report_key][i]) * o.scale for o in PRICED}
                m.update(feasible=True, reasons=[], sops=float(res["sops"][i]))
            else:  # estimate_many leaves infeasible entries NaN: the scalar estimate says why
                m = price(arch, workload)
                reasons.update(m["reasons"])
            per[w.name] = {**m, **per_network[w.name], "adapted": r.adapted}
        arch = design(space, {**network, **proc})
        cons = {"feasible_processor": 0.0 if ok[i] else 1.0}
        cons.update({k: float(np.nan_to_num(v[i], nan=1e9)) for k, v in violation.items()})
        points.append({"params": {**network, **proc}, "values": {m: float(v[i]) for m, v in values.items()},
                       "per_workload": per, "constraints": cons, "feasible": bool(feasible[i]),
                       "reasons": sorted(reasons), "arch": {k: getattr(arch, k) for k in arch.__dataclass_fields__
                                                            if k != "name"}})
    return points


def run_network(space: SearchSpace, network: dict, cache_dir: str, data_dir: str | None = None,
                threads: int | None = None, device: str = "auto") -> dict:
    """One nested trial (a Ray task): train or reuse each workload's network, then solve its processors.
    A network's metrics are those of flat search (``trial.workload_metrics``): its validation accuracy, what
    is optimized, priced on the validation images' spike statistics; its test accuracy reported beside it."""
    from dse.search.trial import workload_metrics

    t0, cpu0 = time.perf_counter(), time.process_time()
    per: dict[str, dict] = {}
    for w in space.workloads:
        m = workload_metrics(space, network, w, cache_dir, data_dir, device, threads, None)
        per[w.name] = {k: v for k, v in m.items() if k not in _PER_PROCESSOR}  # the processor is solved below
    cached = all(m["cached"] for m in per.values())
    t1 = time.perf_counter()
    points = solve(space, network, per)
    return {"points": points, "cached": cached, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,  # this worker's CPU time: a study's cost on a loaded machine
            "solve_seconds": time.perf_counter() - t1, "processors": len(candidates(space, network))}


def network_key(space: SearchSpace, params: dict) -> tuple:
    return tuple((p.name, repr(params.get(p.name))) for p in network_params(space))


def summary(space: SearchSpace, values: list[dict]) -> list[float]:
    """A network's value for the sampler: its ideal point over the processors recorded for it."""
    out = []
    for o in space.objectives:
        xs = [v[o] for v in values]
        out.append(max(xs) if OBJECTIVES[o].direction == "maximize" else min(xs))
    return out


def frozen_point(space: SearchSpace, point: dict, network_id: int, outcome: dict, node: str):
    """A completed trial of the study for one solved (network, processor) point."""
    dists = {p.name: distribution(p) for p in space.params}
    return optuna.trial.create_trial(
        params=point["params"], distributions=dists, values=[point["values"][o] for o in space.objectives],
        user_attrs={"per_workload": point["per_workload"], "arch": point["arch"], "cached": outcome["cached"],
                    "seconds": outcome["seconds"], "cpu_seconds": outcome["cpu_seconds"], "reasons": point["reasons"],
                    "node": node, "network": network_id,
                    "processors_solved": outcome["processors"]},
        constraints=point["constraints"])


def failed_network(space: SearchSpace, network: dict, error: str, network_id: int):
    dists = {p.name: distribution(p) for p in network_params(space)}
    return optuna.trial.create_trial(params=network, distributions=dists, state=optuna.trial.TrialState.FAIL,
                                     user_attrs={"error": error[-2000:], "network": network_id})


def recorded_networks(space: SearchSpace, study: optuna.Study) -> dict[tuple, dict]:
    """Networks the storage holds: key -> {"id", "params", "values" (of its COMPLETE points)}."""
    out: dict[tuple, dict] = {}
    for t in study.get_trials(deepcopy=False):
        if "network" not in t.user_attrs:
            continue
        key = network_key(space, t.params)
        entry = out.setdefault(key, {"id": t.user_attrs["network"], "values": [],
                                     "params": {p.name: t.params[p.name] for p in network_params(space)}})
        if t.state == optuna.trial.TrialState.COMPLETE:
            entry["values"].append(dict(zip(space.objectives, t.values)))
    return out


class _Front:
    """The size of the study's feasible front, kept incrementally (the storage's best_trials re-reads every trial)."""

    def __init__(self, space: SearchSpace, study: optuna.Study):
        from dse.search.reports import feasible

        self.objectives = space.objectives
        self.points = np.array([to_minimization(t.values, self.objectives) for t in study.get_trials(
            deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]) if feasible(t)]).reshape(-1, len(self.objectives))
        self._prune()

    def add(self, points: list[dict]) -> None:
        new = [to_minimization([p["values"][o] for o in self.objectives], self.objectives) for p in points
               if p["feasible"]]
        if new:
            self.points = np.vstack([self.points, new])
            self._prune()

    def _prune(self) -> None:
        if len(self.points):
            self.points = self.points[pareto_mask(self.points)]

    def __len__(self) -> int:
        return len(self.points)


def drive(study: optuna.Study, lease, space: SearchSpace, opts, directory: Path, target: int, ray, task,
          progress) -> optuna.Study:
    """The nested driver loop (``dse.search.driver`` hands over to it): ``target`` networks with a recorded point."""
    nets = network_params(space)
    recorded = recorded_networks(space, study)
    sampler = samplers.make_sampler(dataclasses.replace(space, params=tuple(nets)), target, offset=len(recorded))
    working = optuna.create_study(directions=space.directions, sampler=sampler)
    dists = {p.name: distribution(p) for p in nets}
    for entry in recorded.values():
        if entry["values"]:
            working.add_trial(optuna.trial.create_trial(params=entry["params"], distributions=dists,
                                                        values=summary(space, entry["values"])))
    solved = {k for k, e in recorded.items() if e["values"]}
    next_id = 1 + max((e["id"] for e in recorded.values()), default=-1)
    front = _Front(space, study)
    sizes = [p.size for p in nets]
    space_size = None if any(s is None for s in sizes) else math.prod(sizes)
    cache_dir = str(opts.cache_dir or _default_cache())
    threads = max(1, int(space.cpus_per_trial))
    capacity = space.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1) // space.cpus_per_trial))
    progress.done = progress.earlier = len(solved)
    progress.target = target = min(target, space_size or target)
    inflight: dict = {}  # ObjectRef -> (working trial, network params, key, id)
    explore = np.random.default_rng([space.seed, len(solved)])
    in_a_row, last_error, repeats = 0, "", 0
    timeout = opts.timeout or space.timeout
    start = time.monotonic()
    while True:
        lease.renew()
        stopping = (timeout is not None and time.monotonic() - start > timeout) or \
            (opts.max_failures and in_a_row >= opts.max_failures) or repeats >= MAX_REPEATS
        running = {v[2] for v in inflight.values()}
        while not stopping and len(inflight) < capacity and progress.done + len(inflight) < target:
            trial = working.ask()
            network = {p.name: samplers.suggest(trial, p) for p in nets}
            key = network_key(space, network)
            if key in solved or key in running:  # a network is trained and solved once
                working.tell(trial, state=optuna.trial.TrialState.FAIL)
                if key in running:  # wait for it rather than ask again at once
                    break
                repeats += 1
                fresh = _unseen(space, nets, solved | running, explore)
                if fresh is not None:  # the sampler keeps to what it has solved: explore an untrained network
                    working.enqueue_trial(fresh)
                    continue
                if repeats >= MAX_REPEATS:
                    break
                continue
            repeats = 0
            ref = task.options(num_cpus=space.cpus_per_trial, num_gpus=space.gpus_per_trial).remote(
                space, network, cache_dir, opts.data_dir, threads)
            inflight[ref] = (trial, network, key, next_id)
            running.add(key)
            next_id += 1
        if not inflight:
            break
        progress.show(len(inflight), lambda: len(front))
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=RESULT_WAIT_S)
        for ref in ready:
            trial, network, key, nid = inflight.pop(ref)
            try:
                outcome = ray.get(ref, timeout=60)
            except Exception as exc:  # the training raised, or its worker died past its retries
                error = error_line(exc)
                add_finished(study, [failed_network(space, network, error, nid)])
                working.tell(trial, state=optuna.trial.TrialState.FAIL)
                progress.failed += 1
                in_a_row, last_error = in_a_row + 1, error
                continue
            node = outcome.get("node", "")
            add_finished(study, [frozen_point(space, p, nid, outcome, node) for p in outcome["points"]])
            working.tell(trial, summary(space, [p["values"] for p in outcome["points"]]))
            front.add(outcome["points"])
            solved.add(key)
            progress.done += 1
            progress.cached += bool(outcome["cached"])
            in_a_row = 0
    progress.show(0, lambda: len(front), final=True)
    if opts.max_failures and in_a_row >= opts.max_failures:
        raise UserError(f"{directory}: stopped after {in_a_row} networks failed in a row (last: {last_error}); "
                        "finished networks are kept: fix the cause, then --resume")
    if repeats >= MAX_REPEATS and progress.done < target and opts.progress:
        print(f"nested: the sampler proposed only networks already solved {MAX_REPEATS} times in a row; "
              f"stopping at {progress.done} networks ({clock(time.monotonic() - start)})")
    return study


def _unseen(space: SearchSpace, nets: list[Param], seen: set, rng: np.random.Generator,
            enumerable: int = 100_000) -> dict | None:
    """A network not in ``seen``, drawn uniformly from the network grid; None when every one was seen (or the
    grid is continuous or too large to list)."""
    sizes = [p.size for p in nets]
    if any(n is None for n in sizes) or math.prod(sizes) > enumerable:
        return None
    options = [n for combo in itertools.product(*(p.grid() for p in nets))
               if network_key(space, n := dict(zip((p.name for p in nets), combo))) not in seen]
    return options[rng.integers(len(options))] if options else None


def _default_cache() -> str:
    from dse.search.cache import default_cache_dir

    return str(default_cache_dir())


def remote(ray):
    @ray.remote(max_retries=3)  # worker or node death: retried; an exception in the trial: not retried
    def network_task(space, network, cache_dir, data_dir, threads):
        outcome = run_network(space, network, cache_dir, data_dir, threads)
        outcome["node"] = ray.get_runtime_context().get_node_id()
        return outcome

    return network_task
