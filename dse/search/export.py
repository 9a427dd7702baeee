"""Pareto fronts, hypervolume and the exported files of a study.

All objectives are turned into minimization (accuracy negated) before dominance and hypervolume.
The hypervolume is exact: a sweep in two dimensions, recursive slicing above.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import optuna

from dse.atomic import replacing, write_text
from dse.search.resolve import describe
from dse.search.space import OBJECTIVES, SearchSpace

PAPER_POINT = {"accuracy": 91.7, "energy": 486.7}  # Lew et al., DAC 2022: VGG-16, CIFAR-10, 28 nm


def to_minimization(values: np.ndarray, objectives) -> np.ndarray:
    signs = np.array([-1.0 if OBJECTIVES[o][0] == "maximize" else 1.0 for o in objectives])
    return np.asarray(values, dtype=float) * signs


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of a minimization problem (duplicates all kept)."""
    pts = np.asarray(points, dtype=float)
    mask = np.ones(len(pts), dtype=bool)
    for i, p in enumerate(pts):
        dominated = np.all(pts <= p, axis=1) & np.any(pts < p, axis=1)
        mask[i] = not dominated.any()
    return mask


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``points`` (minimization) and bounded by ``reference``."""
    pts = np.asarray(points, dtype=float).reshape(-1, len(reference))
    pts = pts[np.all(pts < reference, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_mask(pts)]
    if pts.shape[1] == 1:
        return float(reference[0] - pts[:, 0].min())
    if pts.shape[1] == 2:
        pts = pts[np.argsort(pts[:, 0])]
        volume, best_y = 0.0, reference[1]
        for x, y in pts:
            if y < best_y:
                volume += (reference[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    # slice along the last objective: between consecutive levels, the front of the points at or below
    order = np.argsort(pts[:, -1])
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else reference[-1]
        if upper > pts[i, -1]:
            volume += hypervolume(pts[: i + 1, :-1], reference[:-1]) * (upper - pts[i, -1])
    return float(volume)


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    return all(c <= 0 for c in t.system_attrs.get(_CONSTRAINTS_KEY, []))


def normalization(space: SearchSpace, trials) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) of the feasible trials in minimization form; the hypervolume reference is
    the nadir pushed out by 10 % of the range, after scaling every objective to [0, 1]."""
    pts = to_minimization(np.array([t.values for t in trials if feasible(t)] or [[0.0] * len(space.objectives)]),
                          space.objectives)
    ideal, nadir = pts.min(axis=0), pts.max(axis=0)
    return ideal, np.where(nadir > ideal, nadir, ideal + 1.0)


def hypervolume_history(space: SearchSpace, study: optuna.Study) -> list[tuple[int, float]]:
    """(trial number, normalized hypervolume of the feasible trials so far); reference 1.1 after scaling."""
    trials = sorted(completed(study), key=lambda t: t.number)
    ideal, nadir = normalization(space, trials)
    reference = np.full(len(space.objectives), 1.1)
    history, pts = [], []
    for t in trials:
        if feasible(t):
            pts.append((to_minimization(np.array(t.values), space.objectives) - ideal) / (nadir - ideal))
        history.append((t.number, hypervolume(np.array(pts), reference) if pts else 0.0))
    return history


def _rows(space: SearchSpace, trials) -> tuple[list[str], list[list]]:
    names = [p.name for p in space.params]
    units = [f"{o}_{OBJECTIVES[o][1]}" for o in space.objectives]
    header = ["trial", "state", *names, *units, "feasible", "cached", "error"]
    rows = []
    for t in trials:
        values = t.values or [None] * len(space.objectives)
        rows.append([t.number, t.state.name, *[t.params.get(n) for n in names], *values,
                     feasible(t) if t.state == optuna.trial.TrialState.COMPLETE else "",
                     t.user_attrs.get("cached", ""), t.user_attrs.get("error", "")])
    return header, rows


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Feasible non-dominated trials (Optuna's best_trials honours the constraints), each design once:
    a trial that reused an earlier one's result (``duplicate_of``) is not listed again."""
    return sorted((t for t in study.best_trials if "duplicate_of" not in t.user_attrs), key=lambda t: t.number)


def export_study(space: SearchSpace, study: optuna.Study, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    best = front(study)
    files = {name: out / name for name in ("trials.csv", "pareto.csv", "pareto.json", "pareto.png", "pareto.html",
                                           "hypervolume.png")}
    _csv(files["trials.csv"], *_rows(space, trials))
    _csv(files["pareto.csv"], *_rows(space, best))
    history = hypervolume_history(space, study)
    doc = {"study": space.study, "objectives": {o: {"direction": OBJECTIVES[o][0], "unit": OBJECTIVES[o][1]}
                                                for o in space.objectives},
           "aggregate": space.aggregate, "hypervolume": history[-1][1] if history else 0.0,
           "pareto": [{"trial": t.number, "params": t.params, "values": dict(zip(space.objectives, t.values)),
                       "per_workload": t.user_attrs.get("per_workload"), "arch": t.user_attrs.get("arch"),
                       "resolved": describe(space, t.params)}
                      for t in best]}
    write_text(files["pareto.json"], json.dumps(doc, indent=1))
    _plot_front(space, trials, best, files["pareto.png"])
    _plot_html(space, trials, best, files["pareto.html"])
    _plot_history(history, files["hypervolume.png"])
    return files


def _paper_applies(space: SearchSpace) -> bool:
    return any(w.train.get("model") == "vgg16" and w.train.get("dataset") == "cifar10" for w in space.workloads)


def _plot_front(space: SearchSpace, trials, best, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    objs = list(space.objectives)
    pairs = [(objs[i], objs[j]) for i in range(len(objs)) for j in range(i + 1, len(objs))] or [(objs[0], objs[0])]
    if "accuracy" in objs and "energy" in objs:  # the headline view first: accuracy against energy
        pairs.sort(key=lambda p: p != ("accuracy", "energy") and p != ("energy", "accuracy"))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.5 * rows), squeeze=False)
    third = next((o for o in objs if o not in pairs[0]), None)
    for k, (ax, (a, b)) in enumerate(zip(axes.flat, pairs)):
        x, y = ("energy", "accuracy") if {a, b} == {"energy", "accuracy"} else (a, b)
        ix, iy = objs.index(x), objs.index(y)
        ok = [t for t in done if feasible(t)]
        bad = [t for t in done if not feasible(t)]
        if bad:
            ax.scatter([t.values[ix] for t in bad], [t.values[iy] for t in bad], marker="x", c="0.7", label="infeasible")
        color = {"c": [t.values[objs.index(third)] for t in ok], "cmap": "viridis"} if third else {"c": "tab:blue"}
        sc = ax.scatter([t.values[ix] for t in ok], [t.values[iy] for t in ok], s=28, label="trials", **color)
        if third and ok and k == 0:
            fig.colorbar(sc, ax=ax, label=f"{third} ({OBJECTIVES[third][1]})")
        pf = sorted(best, key=lambda t: t.values[ix])
        # a staircase only means something with two objectives; in projections of more, mark the points
        ax.plot([t.values[ix] for t in pf], [t.values[iy] for t in pf], "o-" if len(objs) == 2 else "o", mfc="none",
                c="tab:red", ms=9, label="Pareto front" if len(objs) == 2 else "Pareto-optimal")
        if _paper_applies(space) and {x, y} == {"energy", "accuracy"}:
            ax.scatter([PAPER_POINT["energy"]], [PAPER_POINT["accuracy"]], marker="*", s=220, c="gold",
                       edgecolors="k", label="Lew et al. 2022")
        ax.set_xlabel(f"{x} ({OBJECTIVES[x][1]})")
        ax.set_ylabel(f"{y} ({OBJECTIVES[y][1]})")
        if x in ("energy", "latency", "area") and ok and max(t.values[ix] for t in ok) > 20 * min(t.values[ix] for t in ok):
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle(f"{space.study}: {len(done)} trials, {len(best)} on the front")
    _save_png(fig, path)


def _save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def _plot_history(history: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step([n for n, _ in history], [v for _, v in history], where="post")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalized objectives, reference 1.1)")
    ax.grid(alpha=0.3)
    _save_png(fig, path)


def _plot_html(space: SearchSpace, trials, best, path: Path) -> None:
    """A self-contained interactive scatter matrix (plotly.js inlined: opens offline)."""
    import plotly.graph_objects as go

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    objs = list(space.objectives)
    on_front = {t.number for t in best}
    dims = [dict(label=f"{o} ({OBJECTIVES[o][1]})", values=[t.values[i] for t in done]) for i, o in enumerate(objs)]
    text = ["<br>".join([f"trial {t.number}"] + [f"{k}={v}" for k, v in t.params.items()]) for t in done]
    colors = ["crimson" if t.number in on_front else ("steelblue" if feasible(t) else "lightgray") for t in done]
    if len(objs) == 1:
        fig = go.Figure(go.Scatter(x=[t.number for t in done], y=dims[0]["values"], mode="markers", text=text,
                                   marker=dict(color=colors)))
    else:
        fig = go.Figure(go.Splom(dimensions=dims, text=text, hoverinfo="text", marker=dict(color=colors, size=7),
                                 diagonal_visible=False))
    fig.update_layout(title=f"{space.study}: Pareto front in red, infeasible in grey", height=300 + 220 * len(objs))
    with replacing(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
