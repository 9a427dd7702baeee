"""The driver: owns the Optuna study (ask/tell) and runs trials as Ray tasks.

Only the driver writes to the study storage, and one driver at a time owns a study directory (an
advisory lock the kernel releases if the driver dies) and the study in its storage (a lease, for
drivers on other machines: ``dse.search.lease``). A trial that raises is told FAIL with its
error and the study goes on, unless ``max_failures`` trials fail in a row (a broken setup, not a bad
point); a worker that dies is retried by Ray (``max_retries``); trials left RUNNING by a killed
driver are failed and re-queued with the same parameters on ``--resume``, once its lease has expired.
No design is evaluated twice: a repeated suggestion reuses the earlier result (``duplicate_of``).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import math
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import yaml

from dse.util.errors import UserError
from hwmodel import ConfigError, load_yaml, read_text
from dse.search import cluster, fidelity, samplers
from dse.search.cache import default_cache_dir
from dse.search.lease import Lease
from dse.search.records import add_finished
from dse.search.space import OBJECTIVES, Param, SearchSpace, load_space
from dse.search.storage import describe as storage_name
from dse.search.storage import locate, open_storage, write_record
from dse.search.trial import finite, price_trials, run_trial

SPACE_FILE = "space.yaml"
LOCK_FILE = ".driver.lock"
COMPLETE = optuna.trial.TrialState.COMPLETE
RESULT_WAIT_S = 5.0  # ray.wait slice; every Ray call has a timeout (a dead node must not hang the driver)
LOG_EVERY_S = 60.0  # progress lines written to a log or pipe when nothing changes
PRICE_BATCH = 64  # processor-only trials asked, priced (one estimate_many) and recorded together


@dataclass(frozen=True)
class RunOptions:
    results_dir: Path = Path("runs")
    address: str | None = None
    n_trials: int | None = None  # total COMPLETE trials wanted, counting earlier runs of the study
    timeout: float | None = None
    resume: bool = False
    storage: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True
    max_failures: int = 10  # consecutive failed trials that stop the study (0: never stop)


def study_dir(space: SearchSpace, results_dir: Path) -> Path:
    return Path(results_dir) / space.study


def make_sampler(space: SearchSpace, n_trials: int, offset: int = 0) -> optuna.samplers.BaseSampler:
    """``auto``: TPE under 250 trials (better than NSGA-II's generations at small budgets), NSGA-II above.
    ``offset``: trials the study already holds. A resumed study draws from a seed derived from it, so a
    seeded sampler continues with new suggestions instead of replaying its first ones; the same study
    resumed at the same point draws the same sequence."""
    seed = space.seed  # the grid sampler skips visited points by itself: its seed only orders the rest
    if offset and space.sampler != "grid":
        seed = int(np.random.SeedSequence([space.seed, offset]).generate_state(1)[0])
    return samplers.build(space.sampler, lambda: {p.name: p.grid() for p in space.params}, n_trials, seed)


def grid_size(space: SearchSpace) -> int:
    return math.prod(p.size for p in space.params)


def suggest(trial: optuna.Trial, p: Param):
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


@contextlib.contextmanager
def driver_lock(directory: Path):
    """Hold the study directory for this driver. A second driver (a mistake, or a --resume while the
    first still runs, which would fail its running trials) is refused. ``flock`` dies with the process,
    so a killed driver never leaves a stale lock. It guards one results directory on one file system:
    drivers on other machines sharing the storage are kept apart by the lease (``dse.search.lease``)."""
    with open(directory / LOCK_FILE, "a+") as handle:
        _take(handle, directory)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def _take(handle, directory: Path) -> None:
    """Lock the open lock file, or refuse naming the driver that holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise UserError(f"{directory}: study is being run by another driver ({holder}); "
                        "wait for it to finish or stop it, then --resume") from None


def _check_results_dir(space: SearchSpace, directory: Path, resume: bool) -> None:
    if (directory / LOCK_FILE).is_file():  # refuse a running study before any other message
        with open(directory / LOCK_FILE) as handle:
            _take(handle, directory)
    saved = directory / SPACE_FILE
    if not saved.is_file():
        if any(directory.glob("*")) and not resume:
            raise UserError(f"{directory}: exists and is not a dse study directory; choose another --results-dir")
        return
    try:
        previous = load_yaml(read_text(saved), str(saved)) or {}
    except (yaml.YAMLError, ConfigError):
        previous = None
    if not isinstance(previous, dict):
        raise UserError(f"{saved}: unreadable; this directory does not hold a study dse can resume")
    if previous.get("study") != space.study:
        raise UserError(f"{directory}: belongs to study {previous.get('study')!r}, not {space.study!r}")
    same = all(previous.get(k) == space.source.get(k) for k in ("space", "objectives", "workloads", "arch", "search"))
    if not resume:
        raise UserError(f"{directory}: study {space.study!r} already has results; pass --resume to continue it")
    if not same:
        raise UserError(f"{directory}: study {space.study!r} was run with a different space, objectives, workloads "
                        "arch or search mode; use a new study name")


def _write_space(space: SearchSpace, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (SPACE_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(space.source, sort_keys=False))
    os.replace(tmp, directory / SPACE_FILE)


def open_study(space: SearchSpace, storage: str, n_trials: int, create: bool) -> optuna.Study:
    """The study in ``storage`` (a URL or journal path, as ``storage.locate`` returns it)."""
    sampler = make_sampler(space, n_trials)
    if create:
        return optuna.create_study(study_name=space.study, storage=open_storage(storage), sampler=sampler,
                                   directions=space.directions, load_if_exists=True)
    try:
        return optuna.load_study(study_name=space.study, storage=open_storage(storage), sampler=sampler)
    except KeyError:
        raise UserError(f"{storage_name(storage)}: no study named {space.study!r} in it") from None


def _probe(address: str) -> None:
    """Fail fast on a HOST:PORT where nothing listens: ray.init would retry for minutes."""
    if address == "auto":  # the cluster this machine last started: found the way ray.init finds it
        from ray._private.services import canonicalize_bootstrap_address

        try:
            found = canonicalize_bootstrap_address("auto")
        except Exception:  # noqa: BLE001 - a stale or unreadable record of the last cluster
            found = None
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


def _init_ray(address: str | None, directory: Path | None = None):
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return ray
    log = cluster.log_file(directory)
    return cluster.join(address, log) if address else cluster.start_local(log)


def _remote(ray):
    @ray.remote(max_retries=3)  # worker or node death: retried; an exception in the trial: not retried
    def trial_task(space, params, cache_dir, data_dir, threads, board=None, number=None):
        report = fidelity.reporter(ray, board, number) if board is not None else None
        outcome = run_trial(space, params, cache_dir, data_dir, threads, report=report)
        outcome["node"] = ray.get_runtime_context().get_node_id()
        return outcome

    return trial_task


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
        return _fail(study, trial, f"non-finite objective values {values}")
    for key, value in constraints_of(space, outcome).items():
        trial.set_constraint(key, value)
    for key in ("per_workload", "arch", "cached", "seconds", "reasons", "node"):
        trial.set_user_attr(key, outcome[key])
    if outcome.get("test_accuracy") is not None:  # reported beside the objective, never optimized on
        trial.set_user_attr("test_accuracy", outcome["test_accuracy"])
    return study.tell(trial, [values[o] for o in space.objectives])


def _fail(study: optuna.Study, trial: optuna.Trial, error: str) -> str:
    trial.set_user_attr("error", error[-2000:])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return error


def _error_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[0] if "\n" in text and len(text) > 300 else text


class Progress:
    def __init__(self, enabled: bool, target: int):
        self.enabled, self.target, self.start = enabled, target, time.monotonic()
        self.done = self.failed = self.cached = self.earlier = self.pruned = 0
        self.tty = enabled and sys.stderr.isatty()
        self.last: tuple = (None, 0.0)  # (counts, when) of the last line written to a log

    def show(self, running: int, pareto, final: bool = False) -> None:
        """``pareto``: a callable, so a quiet run never pays for the front (a sort over every trial)."""
        if not self.enabled:
            return
        pareto = pareto()
        elapsed = time.monotonic() - self.start
        counts = (self.done, running, self.failed, self.cached, self.pruned, pareto)
        if not self.tty and not final and counts == self.last[0] and elapsed - self.last[1] < LOG_EVERY_S:
            return  # a log (not a terminal) gets a line when something changed, or once a minute
        self.last = (counts, elapsed)
        fresh = self.done - self.earlier  # finished in this run: the rate the ETA extrapolates
        eta = f"  eta {_clock(elapsed / fresh * (self.target - self.done))}" if fresh and not final else ""
        line = (f"[{self.done}/{self.target}] done {self.done}  running {running}  failed {self.failed}  "
                f"cached {self.cached}  {f'pruned {self.pruned}  ' if self.pruned else ''}pareto {pareto}  {_clock(elapsed)}{eta}")
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line + ("\x1b[K" if self.tty else ""), end=end, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _pareto_size(study: optuna.Study) -> int:
    try:
        return len(study.best_trials)
    except ValueError:
        return 0


def _check_resources(space: SearchSpace, address: str | None) -> None:
    """Join the cluster, or look at this machine, before anything is written: a cluster that refuses us, or
    one where no node can ever run a trial (it would wait forever), leaves nothing behind."""
    if not address:
        cluster.check_fits(space.cpus_per_trial, space.gpus_per_trial, cluster.local_nodes(), "this machine")
        return
    ray = _init_ray(address)
    try:
        cluster.check_fits(space.cpus_per_trial, space.gpus_per_trial, cluster.cluster_nodes(ray),
                           f"the cluster at {address}")
    except UserError:
        ray.shutdown()
        raise


def run_search(space: SearchSpace, opts: RunOptions) -> optuna.Study:
    directory = study_dir(space, opts.results_dir)
    _check_results_dir(space, directory, opts.resume)
    address = opts.address or os.environ.get("RAY_ADDRESS")
    if address:
        _probe(address)  # before writing: an unreachable cluster leaves nothing behind
    storage = locate(opts.storage, directory, space.storage, must_exist=False)
    if space.trains:  # trials run on Ray (a processor-only study is priced in the driver)
        _check_resources(space, address)
    try:
        _write_space(space, directory)
        write_record(directory, storage)
    except OSError as exc:
        raise UserError(f"{directory}: cannot write results ({exc.strerror})") from None
    with driver_lock(directory):
        return _drive(space, opts, directory, storage)


def _drive(space: SearchSpace, opts: RunOptions, directory: Path, storage: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = opts.n_trials or space.n_trials
    study = open_study(space, storage, target, create=True)
    lease = Lease(study)
    lease.take()  # before touching any trial: a live driver elsewhere on this storage keeps its own
    try:
        return _run(study, lease, space, opts, directory, target)
    finally:
        lease.release()


def _run(study: optuna.Study, lease: Lease, space: SearchSpace, opts: RunOptions, directory: Path,
         target: int) -> optuna.Study:
    study.set_user_attr("space", space.source)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what optuna-dashboard labels its axes with
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([f"{o} ({OBJECTIVES[o][1]})" for o in space.objectives])
    if any(w.optional for w in space.workloads):
        from dse.search import optional

        space = optional.settle(study, space, opts.data_dir, directory)
        for name in study.user_attrs.get(optional.ATTR, []):
            if opts.progress:
                print(f"workload {name}: dataset files missing under the data directory; the study runs without it",
                      file=sys.stderr)
    if opts.resume:
        requeue_stale(study, space)  # the lease is ours: whoever left trials RUNNING is gone
    study.sampler = make_sampler(space, target, offset=len(study.get_trials(deepcopy=False)))
    if space.sampler == "grid":
        target = min(target, grid_size(space))
    timeout = opts.timeout or space.timeout
    if not space.trains:  # nothing to train: no Ray, the driver prices the trials itself
        return _price_in_driver(study, lease, space, opts, target, timeout, directory)
    ray = _init_ray(opts.address, directory)
    task = _remote(ray)
    cache_dir = str(opts.cache_dir or default_cache_dir())
    threads = max(1, int(space.cpus_per_trial))
    capacity = space.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1) // space.cpus_per_trial))
    if space.search.mode == "nested":  # the sampler proposes networks; each one's processors are solved
        from dse.search import nested

        return nested.drive(study, lease, space, opts, directory, target, ray, nested.remote(ray),
                            Progress(opts.progress, target))
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
            params = {p.name: suggest(trial, p) for p in space.params}
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
        progress.show(len(inflight), lambda: _pareto_size(study))
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
                error = _fail(study, trial, _error_line(exc))
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
                    _fail(study, follower, f"same design as trial {trial.number}, which failed: {error}")
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
    progress.show(0, lambda: _pareto_size(study), final=True)
    if fid is not None:
        fid.close()
    if opts.max_failures and in_a_row >= opts.max_failures:
        raise UserError(f"{directory}: stopped after {in_a_row} trials failed in a row (last: {last_error}); "
                        "finished trials are kept: fix the cause, then --resume")
    return study


def design_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def tell_duplicate(study: optuna.Study, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> None:
    """Complete ``trial`` with the result of ``earlier``, the same design: nothing is trained or priced
    again, and ``duplicate_of`` says so (fronts and exports list the design once)."""
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    names = [k for k in earlier.user_attrs if k not in ("duplicate_of", "requeued_from")]
    for key in names:
        trial.set_user_attr(key, earlier.user_attrs[key])
    trial.set_user_attr("duplicate_of", earlier.user_attrs.get("duplicate_of", earlier.number))
    trial.set_user_attr("cached", True)
    for key, value in earlier.system_attrs.items():
        if key.startswith(f"{_CONSTRAINTS_KEY}:"):
            trial.set_constraint(key[len(_CONSTRAINTS_KEY) + 1:], value)
    study.tell(trial, earlier.values)


def _price_in_driver(study: optuna.Study, lease: Lease, space: SearchSpace, opts: RunOptions, target: int,
                     timeout: float | None, directory: Path) -> optuna.Study:
    """A processor-only study, without Ray. Trials are asked from an in-memory copy of the study (its sampler
    sees every trial), priced ``PRICE_BATCH`` at a time by one ``estimate_many`` per workload, and written to
    the storage a batch at a time, in one transaction (``dse.search.records``): a kill -9 loses no finished
    trial, only the batch in hand, which was never recorded (--resume asks it again)."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
    progress = Progress(opts.progress, target)
    progress.done = len(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))
    while study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.WAITING]):  # re-queued by --resume
        trial = study.ask()
        outcome = price_trials(space, [{p.name: suggest(trial, p) for p in space.params}])[0]
        if isinstance(outcome, Exception):
            _fail(study, trial, _error_line(outcome))
        elif not isinstance(tell_outcome(study, space, trial, {**outcome, "node": "driver"}), str):
            progress.done += 1
    working = optuna.create_study(directions=space.directions, sampler=study.sampler)  # reseeded on resume
    working.add_trials(study.get_trials(deepcopy=False, states=finished))
    done = {design_key(t.params): t for t in study.get_trials(deepcopy=False, states=[COMPLETE])}
    number = len(study.get_trials(deepcopy=False))  # the storage's next trial number (the lease makes it ours)
    in_a_row, last_error, start = 0, "", time.monotonic()
    while progress.done < target and not (timeout is not None and time.monotonic() - start > timeout) \
            and not (opts.max_failures and in_a_row >= opts.max_failures):
        lease.renew()
        trials = [working.ask() for _ in range(min(PRICE_BATCH, target - progress.done))]
        params = [{p.name: suggest(t, p) for p in space.params} for t in trials]
        fresh = {design_key(p): p for p in params if design_key(p) not in done}  # a design is priced once
        priced = dict(zip(fresh, price_trials(space, list(fresh.values()))))
        errors = []
        for trial, p in zip(trials, params):
            key = design_key(p)
            if key in done:
                tell_duplicate(working, trial, done[key])
                errors.append(None)
            elif isinstance(priced[key], Exception):
                errors.append(_fail(working, trial, _error_line(priced[key])))
            else:
                told = tell_outcome(working, space, trial, {**priced[key], "node": "driver"})
                errors.append(told if isinstance(told, str) else None)
                if errors[-1] is None:  # duplicates name the trial as the storage will number it
                    done[key] = copy.copy(told)
                    done[key].number = number + len(errors) - 1
        records = working.get_trials(deepcopy=False)
        numbers = add_finished(study, [records[t.number] for t in trials])  # the batch: one transaction
        if numbers[0] != number:  # the lease keeps other writers out; duplicate_of relies on it
            raise RuntimeError(f"study {space.study!r}: trial numbers moved under this driver's lease "
                               f"(expected {number}, got {numbers[0]})")
        number += len(trials)
        for error in errors:
            if error is None:
                progress.done += 1
                progress.cached += 1
                in_a_row = 0
            else:
                progress.failed += 1
                in_a_row, last_error = in_a_row + 1, error
        progress.show(0, lambda: _pareto_size(working))
    progress.show(0, lambda: _pareto_size(working), final=True)
    if opts.max_failures and in_a_row >= opts.max_failures:
        raise UserError(f"{directory}: stopped after {in_a_row} trials failed in a row (last: {last_error}); "
                        "finished trials are kept: fix the cause, then --resume")
    return study


def load_results(results: Path, storage: str | None = None) -> tuple[SearchSpace, optuna.Study]:
    """The space and study of a study directory, from the storage it records (or ``storage``), opened
    relative to ``results`` itself: a copied or renamed directory reads its own trials."""
    saved = Path(results) / SPACE_FILE
    if not saved.is_file():
        raise UserError(f"{results}: not a dse study directory (no {SPACE_FILE})")
    space = load_space(saved)
    url = locate(storage, Path(results), space.storage, must_exist=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(space, url, space.n_trials, create=False)
    missing = study.user_attrs.get("missing_workloads")
    if missing:  # an optional workload the study ran without (dse.search.optional)
        from dse.search.optional import without

        space = without(space, missing)
    return space, study
