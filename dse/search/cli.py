"""``dse search``, ``dse pareto``, ``dse status``, ``dse show``."""

from __future__ import annotations

import json
from pathlib import Path

from dse.util import flags


def register(subparsers) -> None:
    s = subparsers.add_parser("search", help="run (or resume) a design-space exploration study")
    s.add_argument("space", type=Path, help="search-space YAML (see docs/search.md)")
    s.add_argument("--address", type=flags.address, help="Ray cluster address (default: $RAY_ADDRESS, else a private local instance)")
    s.add_argument("--n-trials", type=flags.positive_int, help="total completed trials wanted, earlier runs included")
    s.add_argument("--timeout", type=flags.seconds, help="stop submitting trials after this many seconds")
    s.add_argument("--results-dir", type=Path, default=Path("runs"),
                   help="study outputs go to RESULTS_DIR/<study> (default: runs; results/ holds the curated examples)")
    s.add_argument("--resume", action="store_true", help="continue the study in the results directory")
    s.add_argument("--storage", help="Optuna storage URL or journal file (default: SQLite in the study directory)")
    s.add_argument("--data-dir", help="dataset directory (default: $DSE_DATA_DIR or ~/.cache/dse/data)")
    s.add_argument("--cache-dir", help="trained-network cache (default: $DSE_CACHE_DIR/trained)")
    s.add_argument("--no-export", action="store_true", help="do not write the Pareto files at the end")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.add_argument("--max-failures", type=flags.count, default=10, metavar="N",
                   help="stop after N trials fail in a row (default 10; 0: never)")
    s.set_defaults(func=_search)

    pl = subparsers.add_parser("plan", help="what a study will cost before it runs: trials, distinct trainings, "
                                             "CPU/GPU-hours from a measured epoch time, trial resources against "
                                             "the cluster's")
    pl.add_argument("space", type=Path, help="search-space YAML")
    pl.add_argument("--address", type=flags.address,
                    help="a Ray cluster to check the trials' resources against (default: this machine)")
    pl.add_argument("--epoch-seconds", type=flags.seconds, help="seconds per training epoch, instead of measuring a few "
                                                        "steps here (e.g. measured on the cluster's GPUs)")
    pl.add_argument("--device", type=flags.device, default="auto",
                    help="where to measure the epoch time (default: cuda if present)")
    pl.set_defaults(func=_plan)

    p = subparsers.add_parser("pareto", help="export a study: pareto.csv/json/png/html, trials.csv, hypervolume.png")
    _study_arg(p)
    p.add_argument("--out", type=Path, help="output directory (default: the study directory)")
    p.add_argument("--storage")
    p.set_defaults(func=_pareto)

    st = subparsers.add_parser("status", help="summarize a running or finished study")
    _study_arg(st)
    st.add_argument("--storage")
    st.set_defaults(func=_status)

    sw = subparsers.add_parser("sweep", help="price every processor of the space's grid on each trained network "
                                              "of a study (vectorized), writing sweep.csv with a Pareto flag")
    _study_arg(sw)
    sw.add_argument("--out", type=Path, help="CSV path (default: RESULTS/sweep.csv)")
    sw.add_argument("--storage")
    sw.set_defaults(func=_sweep)

    sh = subparsers.add_parser("show", help="one trial's full config and metrics, to reproduce it")
    _study_arg(sh)
    sh.add_argument("trial", type=int)
    sh.add_argument("--storage")
    sh.set_defaults(func=_show)


def _study_arg(parser) -> None:
    parser.add_argument("results", type=Path, help="the study directory (RESULTS_DIR/<study>), or the space YAML the "
                                                   "study was run with")
    parser.add_argument("--results-dir", type=Path, default=Path("runs"),
                        help="with a space YAML: where the study directory is (default: runs)")


def _search(args) -> int:
    from dse.search.driver import RunOptions, run_search
    from dse.search.reports import export_study, front
    from dse.search.space import load_space
    from dse.search.storage import locate
    from dse.search.study import SPACE_FILE, study_dir

    space = load_space(args.space)
    directory = study_dir(space, args.results_dir)
    if (directory / SPACE_FILE).is_file():  # a damaged copy is refused with its reason (pareto/status would be too)
        load_space(directory / SPACE_FILE)
    args.storage = locate(args.storage, directory, space.storage, must_exist=False)  # checked before any write
    opts = RunOptions(results_dir=args.results_dir, address=args.address, n_trials=args.n_trials, timeout=args.timeout,
                      resume=args.resume, storage=args.storage, data_dir=args.data_dir, cache_dir=args.cache_dir,
                      progress=not args.quiet, max_failures=args.max_failures)
    study = run_search(space, opts)
    if study.user_attrs.get("missing_workloads"):  # optional workloads the study runs without
        from dse.search.optional_workloads import without

        space = without(space, study.user_attrs["missing_workloads"])
    if not args.no_export:
        export_study(space, study, directory)
    print(f"{len(front(study))} Pareto-optimal trials; results in {directory}")
    return 0


def _plan(args) -> int:
    from dse.search import cluster, plan
    from dse.search.space import load_space

    space = load_space(args.space)
    if args.address:
        from dse.search.ray_runner import probe

        probe(args.address)
        nodes, where = cluster.cluster_nodes(cluster.join(args.address, cluster.log_file(None))), args.address
    else:
        nodes, where = cluster.local_nodes(), "this machine"
    for line in plan.report(space, plan.make_plan(space, args.epoch_seconds, args.device), nodes, where):
        print(line)
    return 0


def _results(args):
    from dse.search.space import load_space
    from dse.search.study import load_results, study_dir

    if args.results.is_file():  # the space YAML: its study directory, as dse search chose it
        args.results = study_dir(load_space(args.results), args.results_dir)
    return load_results(args.results, args.storage)


def _pareto(args) -> int:
    from dse.search.reports import export_study

    space, study = _results(args)
    files = export_study(space, study, args.out or args.results)
    print("wrote " + ", ".join(str(f) for f in files.values()))
    return 0


def _status(args) -> int:
    import optuna

    from dse.search.reports import front, hypervolume_history
    from dse.util import units

    space, study = _results(args)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    cached = sum(bool(t.user_attrs.get("cached")) for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    print(f"study {space.study}: {len(trials)} trials: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
          + f" ({cached} priced from cached networks); target {space.n_trials}")
    if study.user_attrs.get("missing_workloads"):
        print(f"missing: {', '.join(study.user_attrs['missing_workloads'])} (optional; dataset files absent when the "
              "study started, so it runs without them)")
    if space.search.mode == "nested":  # trials are (network, processor) points; the budget counts networks
        networks = {t.user_attrs["network"] for t in trials if "network" in t.user_attrs
                    and t.state == optuna.trial.TrialState.COMPLETE}
        print(f"nested: {len(networks)} networks trained and solved (target {space.n_trials}); each one's "
              f"Pareto-optimal processors are its trials")
    history = hypervolume_history(space, study)
    best = front(study)
    fraction = history[-1][1] if history else 0.0
    print(f"Pareto front: {len(best)} trials; hypervolume {fraction:.3f} of the objective box")
    header = ["trial", *space.objectives, *(p.name for p in space.params)]
    print("  ".join(f"{h:>14}" for h in header))
    for t in best:
        cells = [t.number, *(units.human_metric(o, v) for o, v in zip(space.objectives, t.values)),
                 *(t.params.get(p.name) for p in space.params)]
        print("  ".join(f"{str(c):>14}" for c in cells))
    return 0


def _show(args) -> int:
    from dse.search.reports import feasible
    from dse.search.resolve import describe
    from dse.util import units
    from dse.util.errors import UserError

    space, study = _results(args)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if args.trial not in trials:
        raise UserError(f"trial {args.trial}: not in study {space.study!r} (trials 0..{max(trials, default=-1)})")
    t = trials[args.trial]
    complete = set(t.params) == {p.name for p in space.params}  # a trial killed mid-suggestion has fewer
    attrs = {**t.user_attrs, "per_workload": units.si_dict(t.user_attrs.get("per_workload"))}
    doc = {"trial": t.number, "state": t.state.name, "params": t.params,
           "values": units.si_dict(dict(zip(space.objectives, t.values))) if t.values else None,
           "feasible": feasible(t) if t.values else None, **attrs,
           "resolved": describe(space, t.params) if complete else None}
    print(json.dumps(doc, indent=1, default=str))
    return 0


def _sweep(args) -> int:
    import time

    from dse.search.sweep import sweep_study
    from dse.util.units import duration

    space, study = _results(args)
    t0 = time.perf_counter()
    out, rows = sweep_study(space, study, args.out or args.results / "sweep.csv")
    print(f"wrote {out}: {rows:,} (network, processor) points in {duration(time.perf_counter() - t0)}")
    return 0
