"""What a finished joint study answers: per-dataset fronts, the joint front, the one processor that serves
every dataset best, how it differs from each dataset's own optimum, and what the study cost.

Reads a study directory (``dse search search_spaces/cpu_joint.yaml``) and the trained networks it records
(their spike statistics in the cache), and writes ``--out`` (default results/joint/):

- ``front_<dataset>.csv``: that dataset's own exact front (accuracy, energy, area) over every trained network
  and every processor of the grid (each network re-solved on that dataset alone);
- ``front_joint.csv``: the study's front (aggregate ``worst``: lowest accuracy, highest energy), with each
  point's per-dataset accuracy and energy;
- ``summary.md``: the best shared processor and each dataset's own optimum, and the cost.

"Best": the least energy (the highest over the datasets, as the study aggregates it) among designs that reach
``--floor`` (default 0.9) of the best validation accuracy the study found, on every dataset, within the study's
constraints; where no design reaches that on every dataset, the floor is the highest such fraction one reaches.
A dataset's own optimum: the least energy on that dataset alone at the same floor, any network and processor.
Energies are per inference, chip plus DRAM. CPU cost: the Ray workers' CPU time per network (process time,
so a loaded machine does not inflate it) plus the driver's wall time, which is mostly idle waiting.

Run: ``python benchmarks/joint_report.py /work/joint-run/runs/cpu-joint --cache-dir /work/joint-run/cache/trained``
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np
import optuna

from dse.search.nested import network_key, network_params, solve
from dse.search.reports import feasible, front, pareto_mask, to_minimization
from dse.search.study import load_results


def _rows(points: list[dict], names: list[str], datasets: list[str]) -> tuple[list[str], list[list]]:
    header = [*names, "accuracy_percent", "energy_uJ", "area_mm2",
              *(f"{d}_{m}" for d in datasets for m in ("accuracy_percent", "energy_uJ"))]
    rows = [[p["params"][n] for n in names] + [p["values"]["accuracy"], p["values"]["energy"], p["values"]["area"]] +
            [p["per_workload"].get(d, {}).get(m) for d in datasets for m in ("accuracy", "energy")] for p in points]
    return header, rows


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _front(points: list[dict], objectives) -> list[dict]:
    if not points:
        return []
    mask = pareto_mask(to_minimization(np.array([[p["values"][o] for o in objectives] for p in points]), objectives))
    return [p for p, m in zip(points, mask) if m]


def _best(points: list[dict], floors: dict[str, float], acc) -> dict | None:
    ok = [p for p in points if all(acc(p, d) >= f for d, f in floors.items())]
    return min(ok, key=lambda p: p["values"]["energy"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="the study directory")
    ap.add_argument("--cache-dir", type=Path, help="unused unless the spike files moved: where the study's cache is")
    ap.add_argument("--floor", type=float, default=0.9, help="fraction of each dataset's best accuracy to reach")
    ap.add_argument("--started", type=Path, help="a file holding the study's start (unix seconds) for its wall time")
    ap.add_argument("--out", type=Path, default=Path("results/joint"))
    args = ap.parse_args()
    space, study = load_results(args.study)
    args.out.mkdir(parents=True, exist_ok=True)
    datasets = [w.name for w in space.workloads if w.trains]
    names = [p.name for p in space.params]
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    networks: dict[tuple, optuna.trial.FrozenTrial] = {}
    for t in done:
        networks.setdefault(network_key(space, t.params), t)

    # each dataset alone: every trained network re-solved on it over the whole grid
    own: dict[str, list[dict]] = {}
    for d in datasets:
        alone = dataclasses.replace(space, workloads=tuple(w for w in space.workloads if w.name == d))
        points = []
        for t in networks.values():
            per = {d: t.user_attrs["per_workload"][d]}
            net = {p.name: t.params[p.name] for p in network_params(space)}
            points += [{**p, "per_workload": {d: {"accuracy": p["values"]["accuracy"], "energy": p["values"]["energy"]}}}
                       for p in solve(alone, net, per) if p["feasible"]]
        own[d] = _front(points, ("accuracy", "energy", "area"))
        _write(args.out / f"front_{d}.csv", *_rows(own[d], names, [d]))

    joint = [{"params": t.params, "values": dict(zip(space.objectives, t.values)),
              "per_workload": t.user_attrs["per_workload"]} for t in front(study)]
    _write(args.out / "front_joint.csv", *_rows(joint, names, datasets))

    recorded = [{"params": t.params, "values": dict(zip(space.objectives, t.values)),
                 "per_workload": t.user_attrs["per_workload"]} for t in done if feasible(t)]
    best_acc = {d: max(p["per_workload"][d]["accuracy"] for p in recorded) for d in datasets}
    # the floor: --floor of each dataset's best, or, where no design reaches that on every dataset, the highest
    # fraction some design reaches on all of them
    reach = max(min(p["per_workload"][d]["accuracy"] / best_acc[d] for d in datasets) for p in recorded)
    fraction = min(args.floor, reach)
    floors = {d: fraction * a - 1e-9 for d, a in best_acc.items()}
    shared = _best(recorded, floors, lambda p, d: p["per_workload"][d]["accuracy"])
    lines = [f"# Joint study `{space.study}`: {len(networks)} networks trained, {len(done)} (network, processor) "
             f"points recorded, joint front {len(joint)} points", "",
             f"Datasets: {', '.join(datasets)}" + (f"; missing (optional, no files): "
                                                   f"{', '.join(study.user_attrs['missing_workloads'])}"
                                                   if study.user_attrs.get("missing_workloads") else ""),
             f"Best accuracy found per dataset: " + ", ".join(f"{d} {a:.2f} %" for d, a in best_acc.items()),
             f"Accuracy floor: {fraction:.3g} x each dataset's best" + ("" if fraction == args.floor else
                                                                     f" (no design reaches {args.floor:g} on every "
                                                                     "dataset: the highest fraction one reaches)") + ": " + ", ".join(f"{d} {f:.2f} %"
                                                                               for d, f in floors.items()), ""]
    knobs = [p.name for p in space.params]
    if shared is None:
        lines.append("No recorded design reaches the floor on every dataset.")
    else:
        lines += ["## The single processor that serves every dataset best",
                  "Least energy (the highest over the datasets) among designs at or above every floor:", "",
                  "| " + " | ".join(knobs) + " | energy (uJ, worst) | area (mm2) | " +
                  " | ".join(f"{d} acc % / uJ" for d in datasets) + " |",
                  "|" + " --- |" * (len(knobs) + 2 + len(datasets)),
                  "| " + " | ".join(str(shared["params"][k]) for k in knobs) +
                  f" | {shared['values']['energy']:.4g} | {shared['values']['area']:.3g} | " +
                  " | ".join(f"{shared['per_workload'][d]['accuracy']:.2f} / {shared['per_workload'][d]['energy']:.4g}"
                             for d in datasets) + " |", "",
                  "Accuracies are on the validation images (what the search optimizes); on the test images: " +
                  ", ".join(f"{d} {shared['per_workload'][d].get('test_accuracy', float('nan')):.2f} %"
                            for d in datasets), "",
                  "## Each dataset's own optimum (same floor, that dataset alone)", ""]
        for d in datasets:
            mine = _best(own[d], {d: floors[d]}, lambda p, d: p["values"]["accuracy"])
            if mine is None:
                lines.append(f"- {d}: no design reaches its floor")
                continue
            diff = {k: (shared["params"][k], mine["params"][k]) for k in knobs if shared["params"][k] != mine["params"][k]}
            cost = shared["per_workload"][d]["energy"] / mine["values"]["energy"]
            lines.append(f"- {d}: {mine['values']['accuracy']:.2f} % at {mine['values']['energy']:.4g} uJ, "
                         f"{mine['values']['area']:.3g} mm2; the shared design spends {cost:.2f}x its energy on {d}; "
                         "differs in " + (", ".join(f"{k} {a} (shared) vs {b}" for k, (a, b) in diff.items())
                                          or "nothing"))
    cpu = {}
    for t in done:
        cpu.setdefault(t.user_attrs["network"], t.user_attrs.get("cpu_seconds", t.user_attrs.get("seconds", 0.0)))
    lines += ["", "## Cost", f"Workers' CPU time: {sum(cpu.values()) / 3600:.2f} CPU-hours over {len(cpu)} networks "
                            f"({sum(cpu.values()) / max(1, len(cpu)):.0f} CPU-s per network: every dataset's training, "
                            "test and processor solve)"]
    starts = [t.datetime_start for t in done if t.datetime_start]
    ends = [t.datetime_complete for t in done if t.datetime_complete]
    if args.started and ends:
        import datetime

        began = datetime.datetime.fromtimestamp(int(args.started.read_text()), datetime.timezone.utc)
        wall = (max(ends).astimezone(datetime.timezone.utc) - began).total_seconds()
        lines.append(f"Wall time from start to the last network: {wall / 3600:.2f} h on a shared 2-core machine "
                     "(other engineers' jobs running)")
    elif starts:
        lines.append(f"Recorded from {min(starts)} to {max(ends)}")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
