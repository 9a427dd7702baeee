"""Trials as Ray tasks: joining or starting the cluster, the remote trial, and the flat loop that keeps the
cluster busy (a design asked twice while it runs waits for the first; a trial that raises is told FAIL)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from dse.search import cluster, fidelity, internals, samplers
from dse.search.cache import default_cache_dir
from dse.search.lease import Lease
from dse.search.progress_line import Progress, pareto_size
from dse.search.space import SearchSpace
from dse.search.outcomes import COMPLETE, design_key, error_line, fail, tell_duplicate, tell_outcome
from dse.search.trial import run_trial
from dse.util.errors import UserError

if TYPE_CHECKING:
    from dse.search.driver import RunOptions

RESULT_WAIT_S = 5.0  # ray.wait slice; every Ray call has a timeout (a dead node must not hang the driver)


def probe(address: str) -> None:
    """Fail fast on a HOST:PORT where nothing listens: ray.init would retry for minutes."""
    if address == "auto":  # the cluster this machine last started: found the way ray.init finds it
        found = internals.auto_address()
        if found is None:
            raise UserError("--address auto: no running Ray cluster found on this machine (start one with "
                            "`ray start --head`, or leave --address out for a private local instance)")
        address = found
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray:// client addresses: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray head answers there ({exc.strerror or exc})") from None


def init_ray(address: str | None, directory: Path | None = None):
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return ray
    log = cluster.log_file(directory)
    return cluster.join(address, log) if address else cluster.start_local(log)


def remote(ray):
    @ray.remote(max_retries=3)  # worker or node death: retried; an exception in the trial: not retried
    def trial_task(space, params, cache_dir, data_dir, threads, board=None, number=None):
        report = fidelity.reporter(ray, board, number) if board is not None else None
        outcome = run_trial(space, params, cache_dir, data_dir, threads, report=report)
        outcome["node"] = ray.get_runtime_context().get_node_id()
        return outcome

    return trial_task


def check_resources(space: SearchSpace, address: str | None) -> None:
    """Join the cluster, or look at this machine, before anything is written: a cluster that refuses us, or
    one where no node can ever run a trial (it would wait forever), leaves nothing behind."""
    if not address:
        cluster.check_fits(space.cpus_per_trial, space.gpus_per_trial, cluster.local_nodes(), "this machine")
        return
    ray = init_ray(address)
    try:
        cluster.check_fits(space.cpus_per_trial, space.gpus_per_trial, cluster.cluster_nodes(ray),
                           f"the cluster at {address}")
    except UserError:
        ray.shutdown()
        raise


def run_trials(study: optuna.Study, lease: Lease, space: SearchSpace, opts: RunOptions, directory: Path,
               target: int, timeout: float | None, ray) -> optuna.Study:
    """Ask, run on Ray and tell until ``target`` trials are done (or ``timeout``, or ``max_failures`` in a row)."""
    task = remote(ray)
    cache_dir = str(opts.cache_dir or default_cache_dir())
    threads = max(1, int(space.cpus_per_trial))
    capacity = space.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1) // space.cpus_per_trial))
    progress = Progress(opts.progress, target)
    done = {design_key(t.params): t for t in study.get_trials(deepcopy=False, states=[COMPLETE])}
    counted = [COMPLETE, optuna.trial.TrialState.PRUNED]  # the budget counts pruned trials: designs tried
    progress.done = progress.earlier = len(study.get_trials(deepcopy=False, states=counted))
    fid = fidelity.Fidelity(ray, study, space.pruning) if space.pruning.enabled else None
    inflight: dict = {}  # ObjectRef -> optuna.Trial
    followers: dict = {}  # ObjectRef -> trials that asked for the same design meanwhile
    running: dict = {}  # design key -> ObjectRef
    in_a_row, last_error = 0, ""
    start = time.monotonic()
    while True:
        lease.renew()
        stopping = (timeout is not None and time.monotonic() - start > timeout) or \
            (opts.max_failures and in_a_row >= opts.max_failures)
        waiting = sum(map(len, followers.values()))
        while not stopping and len(inflight) < capacity and progress.done + len(inflight) + waiting < target:
            trial = study.ask()
            params = {p.name: samplers.suggest(trial, p) for p in space.params}
            key = design_key(params)
            if key in done:  # no design is trained or priced twice in a study
                tell_duplicate(study, trial, done[key])
                progress.done += 1
                progress.cached += 1
            elif key in running:
                followers[running[key]].append(trial)
                waiting += 1
            else:
                ref = task.options(num_cpus=space.cpus_per_trial, num_gpus=space.gpus_per_trial).remote(
                    space, params, cache_dir, opts.data_dir, threads, fid and fid.board, trial.number)
                inflight[ref], running[key], followers[ref] = trial, ref, []
        if not inflight:
            break
        progress.show(len(inflight), lambda: pareto_size(study))
        ready, _ = ray.wait(list(inflight) + ([fid.pending] if fid else []), num_returns=1, timeout=RESULT_WAIT_S)
        for ref in ready:
            if fid is not None and ref == fid.pending:  # epoch reports: judged now, while trainings wait
                fid.handle()
                continue
            trial = inflight.pop(ref)
            running.pop(design_key(trial.params), None)
            outcome = pruned = None
            try:
                outcome = ray.get(ref, timeout=60)
            except Exception as exc:  # the trial raised, or its worker died past its retries
                error = fail(study, trial, error_line(exc))
            else:
                pruned = outcome.get("pruned")
                error = fidelity.tell_pruned(study, trial, outcome) if pruned else \
                    tell_outcome(study, space, trial, outcome)
            if fid is not None:
                fid.finish(trial.number, None if isinstance(error, str) else outcome)
            if not isinstance(error, str):
                if not pruned:  # a pruned design is no result to reuse: asked again, its training resumes
                    done[design_key(trial.params)] = error
                error = None
            same = followers.pop(ref)
            for follower in same:
                if pruned:
                    fidelity.tell_pruned(study, follower, {**outcome, "duplicate_of": trial.number})
                elif error is None:
                    tell_duplicate(study, follower, done[design_key(trial.params)])
                else:
                    fail(study, follower, f"same design as trial {trial.number}, which failed: {error}")
            n = 1 + len(same)
            if pruned:
                progress.done += n
                progress.pruned += n
                in_a_row = 0
            elif error is None:
                progress.done += n
                progress.cached += bool(outcome["cached"]) + n - 1
                in_a_row = 0
            else:
                progress.failed += n
                in_a_row, last_error = in_a_row + 1, error
    progress.show(0, lambda: pareto_size(study), final=True)
    if fid is not None:
        fid.close()
    if opts.max_failures and in_a_row >= opts.max_failures:
        raise UserError(f"{directory}: stopped after {in_a_row} trials failed in a row (last: {last_error}); "
                        "finished trials are kept: fix the cause, then --resume")
    return study
