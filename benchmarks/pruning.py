"""Multi-fidelity pruning on real CIFAR-10: epochs trained against hypervolume reached, with and without a pruner.

Each arm runs the same seeded study (small VGG on a class-balanced CIFAR-10 subset; weight bits, T, learning
rate and one processor field searched; accuracy = validation accuracy, and energy) in its own results and
cache directories, so every arm trains from scratch. Arms: no pruning, successive halving and Hyperband
(reduction factor 3), and ASHA's defaults (Ray Tune's ASHAScheduler: grace period 1 epoch, reduction
factor 4), run as Optuna's SuccessiveHalvingPruner, which is the same asynchronous rung rule (Ray Tune
itself is compared only where ``ray[tune]`` is installed; the report says whether it was).

For each arm, trials are taken in the order they finished; after each, the epochs trained so far (a network
resumed after pruning counts only its new epochs) and the hypervolume of the front so far, normalized by
the ideal and nadir of every arm's trials together. Reported: each arm's epochs and final hypervolume, and
the epochs it needed to first reach the no-pruning arm's final hypervolume (its "epochs at equal
hypervolume"), as a ratio to the no-pruning arm's. Counts, not timings; the load check is still recorded.

    python benchmarks/pruning.py --data-dir DIR [--seeds 2] [--trials 16] [--train-images 2000]
                                 [--out results/benchmarks/pruning.txt]

DIR holds ``cifar-10-batches-py`` (``../shared/datasets/make_cifar10_batches.py DIR`` makes it).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import optuna

from _timing import LoadCheck, report
from dse.search.driver import RunOptions, run_search
from dse.search.fidelity import companion_name
from dse.search.reports import feasible, hypervolume, to_minimization
from dse.search.space import TRAIN_FIELDS, parse_space

ARMS = {"none": "none", "successive_halving": {"name": "successive_halving", "reduction_factor": 3},
        "hyperband": {"name": "hyperband", "reduction_factor": 3},
        "asha_defaults": {"name": "successive_halving", "min_epochs": 1, "reduction_factor": 4}}


def study_source(name: str, pruner, args, seed: int) -> dict:
    train = {"epochs": args.epochs, "finetune_epochs": 1, "batch_size": 128, "width": args.width,
             "max_train_images": args.train_images, "validation_images": args.validation_images,
             "max_test_images": args.test_images}
    return {"study": name, "workloads": [{"dataset": "cifar10", "model": "small_vgg", "train": train}],
            "space": {"weight_bits": [3, 4, 5], "time_window": [2, 4, 8], "lr": [0.001, 0.01, 0.05, 0.2],
                      "pe_rows": [4, 8, 16]},
            "objectives": ["accuracy", "energy"], "sampler": {"name": "tpe", "seed": seed},
            "pruner": pruner, "budget": {"n_trials": args.trials},
            "resources": {"cpus": 1, "max_concurrent": args.concurrent}}


def history(space, study: optuna.Study, epochs_per_training: int) -> list[tuple[int, np.ndarray | None]]:
    """(epochs trained so far, objective values or None) per trial, in the order the trials finished."""
    curves = {}
    try:
        companion = optuna.load_study(study_name=companion_name(space.study, "cifar10"), storage=study._storage)
        curves = {t.user_attrs["search_trial"]: len(t.intermediate_values) for t in companion.get_trials()}
    except KeyError:  # no pruner: no companion study
        pass
    reached: dict[tuple, int] = {}  # network -> epochs trained so far
    out, total = [], 0
    finished = [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)]
    for t in sorted(finished, key=lambda t: t.datetime_complete):
        network = tuple(sorted((k, v) for k, v in t.params.items() if k in TRAIN_FIELDS))
        if "duplicate_of" not in t.user_attrs:
            now = curves.get(t.number, epochs_per_training if t.state == optuna.trial.TrialState.COMPLETE else 0)
            total += max(0, now - reached.get(network, 0))
            reached[network] = max(now, reached.get(network, 0))
        ok = t.state == optuna.trial.TrialState.COMPLETE and feasible(t)
        out.append((total, to_minimization(np.array(t.values), space.objectives) if ok else None))
    return out


def hv_curve(points: list[tuple[int, np.ndarray | None]], ideal, nadir) -> list[tuple[int, float]]:
    front, curve = [], []
    reference = np.full(len(ideal), 1.1)
    for epochs, p in points:
        if p is not None:
            front.append((p - ideal) / (nadir - ideal))
        volume = hypervolume(np.array(front), reference) / np.prod(reference) if front else 0.0
        curve.append((epochs, volume))
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5, help="CAT epochs before the one fine-tune epoch")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--validation-images", type=int, default=500)
    p.add_argument("--test-images", type=int, default=1000)
    p.add_argument("--concurrent", type=int, default=2)
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    p.add_argument("--out", type=Path, default=Path("results/benchmarks/pruning.txt"))
    args = p.parse_args()
    load = LoadCheck(allow_load=True, counts=True)  # counts, not timings: the load is recorded, never refused
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arms = args.arms.split(",")
    epochs_per_training = args.epochs + 1
    try:
        import ray.tune  # noqa: F401

        tune = "ray[tune] is installed, but this script compares Optuna's pruners only (same rung rule as ASHA)"
    except ImportError:
        tune = "ray[tune] is not installed: ASHA is run as Optuna's SuccessiveHalvingPruner with ASHA's defaults"
    runs: dict[tuple[str, int], list] = {}
    for seed in range(args.seeds):
        for arm in arms:
            space = parse_space(study_source(f"prune-{arm}-{seed}", ARMS[arm], args, seed))
            with tempfile.TemporaryDirectory() as d:
                study = run_search(space, RunOptions(results_dir=Path(d), progress=False, data_dir=str(args.data_dir),
                                                     cache_dir=str(Path(d) / "cache")))
                runs[arm, seed] = history(space, study, epochs_per_training)
    lines = [f"pruning on real CIFAR-10: small_vgg width {args.width}, {args.train_images} training images, "
             f"{args.validation_images} validation, {args.test_images} test, {epochs_per_training} epochs per "
             f"training, {args.trials} trials per study (TPE), {args.seeds} seed(s), {args.concurrent} at a time",
             tune, ""]
    for seed in range(args.seeds):
        pts = np.array([v for arm in arms for _, v in runs[arm, seed] if v is not None])
        ideal, nadir = pts.min(axis=0), pts.max(axis=0)
        nadir = np.where(nadir > ideal, nadir, ideal + 1.0)
        curves = {arm: hv_curve(runs[arm, seed], ideal, nadir) for arm in arms}
        target = curves["none"][-1][1] if "none" in curves else max(c[-1][1] for c in curves.values())
        base = next((e for e, v in curves.get("none", []) if v >= target - 1e-12), None)
        lines.append(f"seed {seed}: hypervolume target = the no-pruning arm's final {target:.4f}")
        lines.append(f"  {'arm':<20} {'epochs':>7} {'pruned':>7} {'final HV':>9} {'epochs to target':>17} {'vs none':>8}")
        for arm in arms:
            reach = next((e for e, v in curves[arm] if v >= target - 1e-12), None)
            pruned = sum(v is None for _, v in runs[arm, seed])  # pruned or infeasible
            ratio = f"{reach / base:.2f}x" if reach is not None and base else "-"
            lines.append(f"  {arm:<20} {curves[arm][-1][0]:>7} {pruned:>7} {curves[arm][-1][1]:>9.4f} "
                         f"{reach if reach is not None else 'not reached':>17} {ratio:>8}")
    lines.append("('pruned' counts trials without a feasible point: pruned, or an infeasible processor)")
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
