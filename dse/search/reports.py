"""Pareto fronts, hypervolume and the exported files of a study.

All objectives are turned into minimization (accuracy negated) before dominance and hypervolume.
The hypervolume is exact: a sweep in two dimensions, recursive slicing above.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from dse.search.resolve import describe
from dse.search.space import OBJECTIVES, SearchSpace
from dse.util import units
from dse.util.atomic import replacing, write_text

PAPER_POINT = {"accuracy": 91.7, "energy": 486.7}  # Lew et al., DAC 2022: VGG-16, CIFAR-10, 28 nm


def to_minimization(values: np.ndarray, objectives) -> np.ndarray:
    signs = np.array([-1.0 if OBJECTIVES[o].direction == "maximize" else 1.0 for o in objectives])
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
    return all(c <= 0 for c in t.constraints.values())


def normalization(space: SearchSpace, trials) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) of the feasible trials in minimization form; the hypervolume reference is
    the nadir pushed out by 10 % of the range, after scaling every objective to [0, 1]."""
    pts = to_minimization(np.array([t.values for t in trials if feasible(t)] or [[0.0] * len(space.objectives)]),
                          space.objectives)
    ideal, nadir = pts.min(axis=0), pts.max(axis=0)
    return ideal, np.where(nadir > ideal, nadir, ideal + 1.0)


def hypervolume_history(space: SearchSpace, study: optuna.Study) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials so far) as a fraction of the box between the ideal
    point and the reference (1.1 after scaling every objective to [0, 1]): within [0, 1]."""
    trials = sorted(completed(study), key=lambda t: t.number)
    ideal, nadir = normalization(space, trials)
    reference = np.full(len(space.objectives), 1.1)
    history, front, volume = [], np.empty((0, len(reference))), 0.0
    for t in trials:
        if feasible(t):
            p = (to_minimization(np.array(t.values), space.objectives) - ideal) / (nadir - ideal)
            if not np.all(front <= p, axis=1).any():  # a point the front weakly dominates adds no volume
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                volume = hypervolume(front, reference) / np.prod(reference)  # when the front changes: linear
        history.append((t.number, volume))
    return history


def _rows(space: SearchSpace, trials) -> tuple[list[str], list[list]]:
    names = [p.name for p in space.params]
    header = ["trial", "state", *names, *(units.key(o) for o in space.objectives), units.key("test_accuracy"),
              "feasible", "cached", "error"]
    rows = []
    for t in trials:
        values = [units.to_si(o, v) for o, v in zip(space.objectives, t.values)] if t.values else \
            [None] * len(space.objectives)
        rows.append([t.number, t.state.name, *[t.params.get(n) for n in names], *values, t.user_attrs.get("test_accuracy"),
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
    doc = {"study": space.study, "objectives": {units.key(o): OBJECTIVES[o].direction for o in space.objectives},
           "aggregate": space.aggregate, "missing_workloads": study.user_attrs.get("missing_workloads", []),
           "hypervolume_fraction": history[-1][1] if history else 0.0,
           "pareto": [{"trial": t.number, "params": t.params,
                       "values": units.si_dict(dict(zip(space.objectives, t.values))),
                       "per_workload": units.si_dict(t.user_attrs.get("per_workload")),
                       "arch": t.user_attrs.get("arch"), "resolved": describe(space, t.params)}
                      for t in best]}
    write_text(files["pareto.json"], json.dumps(doc, indent=1))
    designs = distinct_designs(space, trials)
    _plot_front(space, designs, files["pareto.png"])
    _plot_html(space, designs, files["pareto.html"])
    _plot_history(space, history, files["hypervolume.png"])
    return files


def _paper_applies(space: SearchSpace) -> bool:
    return any(w.train.get("model") == "vgg16" and w.train.get("dataset") == "cifar10" for w in space.workloads)


@dataclass(frozen=True)
class Design:
    """One distinct point of a study: its parameters and every metric known for it, in display units."""

    trial: int
    params: dict
    metrics: dict
    feasible: bool


def distinct_designs(space: SearchSpace, trials) -> list[Design]:
    """One design per distinct parameter set among the completed trials (a design sampled again is priced
    again, to the same values); metrics that are not objectives come from the per-workload records."""
    from dse.search.trial import aggregate

    designs: dict[tuple, Design] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = tuple(sorted(t.params.items()))
        if t.state != optuna.trial.TrialState.COMPLETE or key in designs:
            continue
        per = t.user_attrs.get("per_workload") or {}
        metrics = {**(aggregate(space, per) if per else {}), **dict(zip(space.objectives, t.values))}
        designs[key] = Design(t.number, dict(t.params), metrics, feasible(t))
    return list(designs.values())


# the views an architect reads: each metric against the energy per inference
_VIEWS = (("accuracy", "accuracy (%)"), ("area", "area (mm2)"), ("latency", "latency per inference (s)"))
_ENERGY = "energy per inference (J)"


def _views(designs: list[Design]) -> list[tuple[str, str]]:
    return [v for v in _VIEWS if designs and all(v[0] in d.metrics and "energy" in d.metrics for d in designs)]


def staircase(points: list[tuple[float, float]], maximize_y: bool) -> list[tuple[float, float]]:
    """The non-dominated points of (minimize x, maximize or minimize y), sorted by x."""
    sign = -1.0 if maximize_y else 1.0
    out, best = [], float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], sign * p[1])):
        if sign * y < best:
            out.append((x, y))
            best = sign * y
    return out


def _xy(design: Design, metric: str) -> tuple[float, float]:
    return units.to_si("energy", design.metrics["energy"]), units.to_si(metric, design.metrics[metric])


def _subject(space: SearchSpace) -> str:
    """What the study evaluates, for titles: ``tiny_vgg on digits``."""
    return ", ".join(f"{w.train.get('model')} on {w.train.get('dataset')}" if w.trains else f"{w.name} (fixed workload)"
                     for w in space.workloads)


def _label(design: Design) -> str:
    shown = [f"trial {design.trial}" + ("" if design.feasible else " (infeasible)")]
    shown += [f"{k} = {v}" for k, v in design.params.items()]
    shown += [f"{m}: {units.human_metric(m, v)}" for m, v in design.metrics.items() if m in units.SI]
    return "<br>".join(shown)


def _plot_front(space: SearchSpace, designs: list[Design], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, LogLocator

    views = _views(designs) or [("energy", "energy")]
    fig, axes = plt.subplots(1, len(views), figsize=(5.5 * len(views), 4.6), squeeze=False)
    for ax, (metric, label) in zip(axes.flat, views):
        if metric == "energy":  # nothing to draw: no completed trial yet
            ax.text(0.5, 0.5, "no completed trial", ha="center", transform=ax.transAxes)
            continue
        ok = [_xy(d, metric) for d in designs if d.feasible]
        bad = [_xy(d, metric) for d in designs if not d.feasible]
        if bad:
            ax.scatter(*zip(*bad), marker="x", c="0.7", label="infeasible")
        if ok:
            ax.scatter(*zip(*ok), s=24, c="tab:blue", label="designs")
            stairs = staircase(ok, maximize_y=metric == "accuracy")
            ax.step(*zip(*stairs), where="post", c="tab:red", lw=1.5)
            ax.scatter(*zip(*stairs), s=80, facecolors="none", edgecolors="tab:red", label="Pareto front")
        if metric == "accuracy" and _paper_applies(space):
            ax.scatter([units.to_si("energy", PAPER_POINT["energy"])], [PAPER_POINT["accuracy"]], marker="*", s=220,
                       c="gold", edgecolors="k", label="Lew et al. 2022 (VGG-16, 28 nm)")
        ax.set_xscale("log")
        xs = [x for x, _ in ok + bad]
        if xs and max(xs) > 10 * min(xs):  # over a decade: label 1, 2 and 5 of each decade
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(unit="J"))
        ax.xaxis.set_minor_formatter(EngFormatter(unit="J"))
        if metric in ("latency", "area") and ok and max(y for _, y in ok) > 20 * min(y for _, y in ok):
            ax.set_yscale("log")
        if metric == "latency":
            ax.yaxis.set_major_formatter(EngFormatter(unit="s"))
        ax.set_xlabel(_ENERGY)
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs {_ENERGY}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"{space.study}: {_subject(space)}; {len(designs)} distinct designs")
    _save_png(fig, path)


def _save_png(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def _plot_history(space: SearchSpace, history: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.step([n for n, _ in history], [v for _, v in history], where="post")
    ax.set_ylim(0.0, 1.0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("dominated fraction of the objective box")
    ax.set_title(f"{space.study}: hypervolume of the feasible front\n({', '.join(space.objectives)} scaled to [0, 1], "
                 "reference 1.1)", fontsize=10)
    ax.grid(alpha=0.3)
    _save_png(fig, path)


def _plot_html(space: SearchSpace, designs: list[Design], path: Path) -> None:
    """The same views, interactive, a label on every point (plotly.js inlined: opens offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    views = _views(designs)
    fig = make_subplots(rows=1, cols=max(1, len(views)), subplot_titles=[f"{l} vs {_ENERGY}" for _, l in views])
    for col, (metric, label) in enumerate(views, start=1):
        for ok, name, marker in ((True, "designs", dict(color="steelblue", size=7)),
                                 (False, "infeasible", dict(color="lightgray", size=7, symbol="x"))):
            chosen = [d for d in designs if d.feasible == ok]
            if chosen:
                xy = [_xy(d, metric) for d in chosen]
                fig.add_trace(go.Scatter(x=[x for x, _ in xy], y=[y for _, y in xy], mode="markers", name=name,
                                         text=[_label(d) for d in chosen], hoverinfo="text", marker=marker,
                                         showlegend=col == 1), row=1, col=col)
        stairs = staircase([_xy(d, metric) for d in designs if d.feasible], maximize_y=metric == "accuracy")
        if stairs:
            fig.add_trace(go.Scatter(x=[x for x, _ in stairs], y=[y for _, y in stairs], mode="lines",
                                     line=dict(shape="hv", color="crimson"), name="Pareto front", hoverinfo="skip",
                                     showlegend=col == 1), row=1, col=col)
        if metric == "accuracy" and _paper_applies(space):
            fig.add_trace(go.Scatter(x=[units.to_si("energy", PAPER_POINT["energy"])], y=[PAPER_POINT["accuracy"]],
                                     mode="markers", marker=dict(symbol="star", size=16, color="gold"),
                                     name="Lew et al. 2022", text=["Lew et al., DAC 2022: VGG-16, CIFAR-10, 28 nm<br>"
                                                                   "91.7 %, 486.7 uJ"], hoverinfo="text"),
                          row=1, col=col)
        fig.update_xaxes(type="log", title_text=_ENERGY, exponentformat="SI", row=1, col=col)
        fig.update_yaxes(title_text=label, row=1, col=col, **({"exponentformat": "SI"} if metric == "latency" else {}))
    fig.update_layout(title=f"{space.study}: {_subject(space)}; {len(designs)} distinct designs (hover for each)",
                      height=520, width=max(600, 480 * len(views)))
    with replacing(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
