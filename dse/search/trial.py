"""One trial: train (or reuse) each workload's network, then price the processor with hwmodel.

This runs inside a Ray task, so it lives in the installed package and takes only plain data.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

import hwmodel
from dse.search import objectives
from dse.search.fidelity import Pruned
from dse.search.resolve import design, resolve
from dse.search.space import SearchSpace
from dse.train.pipeline import VALIDATION_SPIKES


def price(arch: hwmodel.Arch, workload: hwmodel.Workload) -> dict:
    report = hwmodel.estimate(arch, workload)
    return {**{o.name: o.read(report) for o in objectives.PRICED}, "feasible": bool(report.feasible),
            "reasons": list(report.reasons), "sops": float(report.sops)}


def run_trial(space: SearchSpace, params: dict, cache_dir: str, data_dir: str | None = None,
              threads: int | None = None, device: str = "auto", report=None) -> dict:
    """Per-workload metrics and their aggregate, in display units (accuracy %, energy uJ, latency ms, area mm2).

    ``accuracy`` is the SNN's accuracy on the validation images (held out of the training data), what the
    search optimizes; ``test_accuracy`` (the test split) is reported beside it and never optimized on. A
    network trained without validation images is judged on its test accuracy. The network is priced on its
    validation images' spike statistics. ``report(workload, epoch, validation accuracy)`` is called after
    every epoch of a training and may raise ``fidelity.Pruned``: the outcome is then ``{"pruned": ...}``
    with the workloads finished so far.
    """
    t0 = time.perf_counter()
    per: dict[str, dict] = {}
    try:
        for w in space.workloads:
            per[w.name] = workload_metrics(space, params, w, cache_dir, data_dir, device, threads, report)
    except Pruned as exc:
        return {"pruned": {"workload": exc.workload, "epoch": exc.epoch, "val_accuracy": 100.0 * exc.value},
                "per_workload": per, "seconds": time.perf_counter() - t0}
    arch = design(space, params)
    values = aggregate(space, per)
    return {"values": values, "per_workload": per, "feasible": all(m["feasible"] for m in per.values()),
            "reasons": sorted({r for m in per.values() for r in m["reasons"]}),
            "test_accuracy": aggregate(space, {k: {"accuracy": m["test_accuracy"]} for k, m in per.items()
                                               if "test_accuracy" in m}).get("accuracy"),
            "cached": all(m["cached"] for m in per.values()), "seconds": time.perf_counter() - t0,
            "arch": {k: getattr(arch, k) for k in arch.__dataclass_fields__ if k != "name"}}


def workload_metrics(space, params, w, cache_dir, data_dir, device, threads, report) -> dict:
    r = resolve(space, params, w)
    if r.spec is not None:
        on_epoch = None
        if report is not None:
            def on_epoch(n: int, row: dict) -> None:
                if "val_accuracy" in row:
                    report(w.name, n, row["val_accuracy"])

        from dse.search.warm_start import train_network

        result, cached = train_network(space, r.spec, Path(cache_dir), data_dir, device, threads, on_epoch=on_epoch)
        m = result.metrics
        spikes = result.spike_stats.with_name(VALIDATION_SPIKES)
        validated = m.get("validation_images", 0) > 0 and spikes.is_file()
        metrics = price(r.arch, hwmodel.load_workload(spikes if validated else result.spike_stats))
        metrics.update(accuracy=100.0 * (m["val_snn_accuracy"] if validated else result.snn_accuracy),
                       test_accuracy=100.0 * result.snn_accuracy, ann_accuracy=100.0 * result.ann_accuracy,
                       agreement=result.agreement, ann_images=m.get("ann_images"),  # agreement's images
                       cached=cached, spike_stats=str(spikes if validated else result.spike_stats),
                       val_curve=[row["val_accuracy"] for row in m.get("curve", []) if "val_accuracy" in row],
                       train_seconds=0.0 if cached else m.get("train_seconds", 0.0))
        if "warm_from" in m:
            metrics["warm_from"] = m["warm_from"]
    else:
        metrics = price(r.arch, hwmodel.load_workload(w.hwmodel_workload))
        metrics["cached"] = True
    metrics["adapted"] = r.adapted  # the processor fields the network overrode, reported
    return metrics


def price_trials(space: SearchSpace, params_list: list[dict]) -> list[dict | Exception]:
    """``run_trial`` for many processor-only trials at once (no workload trains): each trial's processor is
    resolved per workload (``resolve``, as every path does: a spike file's T or weight bits adapt it, and
    ``adapted`` says so), then one ``estimate_many`` per workload prices them all; the scalar estimate runs
    only for infeasible ones (values and reasons). An invalid processor gives its error in place of the outcome."""
    t0 = time.perf_counter()
    out: list[dict | Exception | None] = [None] * len(params_list)
    per: list[dict] = [{} for _ in params_list]
    for w in space.workloads:
        workload = hwmodel.load_workload(w.hwmodel_workload)
        resolved = {}
        for i, params in enumerate(params_list):
            if out[i] is None:
                try:
                    resolved[i] = resolve(space, params, w)
                except Exception as exc:  # noqa: BLE001 - a bad field fails this trial only, as in run_trial
                    out[i] = exc
        resolved = {i: r for i, r in resolved.items() if out[i] is None}
        if not resolved:
            continue
        base = next(iter(resolved.values())).arch
        names = [k for k in base.__dataclass_fields__ if k != "name"]
        fields = {k: np.array([getattr(r.arch, k) for r in resolved.values()]) for k in names
                  if any(getattr(r.arch, k) != getattr(base, k) for r in resolved.values())}
        res = hwmodel.estimate_many(base, workload, **fields)
        for j, (i, r) in enumerate(resolved.items()):
            if res["feasible"][j]:
                metrics = {**{o.name: float(o.read_many(res)[j]) for o in objectives.PRICED},
                           "feasible": True, "reasons": [], "sops": float(res["sops"][j])}
            else:  # estimate_many leaves infeasible entries NaN: the scalar estimate gives values and reasons
                metrics = price(r.arch, workload)
            per[i][w.name] = {**metrics, "cached": True, "adapted": r.adapted}
    seconds = (time.perf_counter() - t0) / max(1, len(params_list))
    for i, params in enumerate(params_list):
        if out[i] is not None:
            continue
        arch, metrics = design(space, params), per[i]
        out[i] = {"values": aggregate(space, metrics), "per_workload": metrics,
                  "feasible": all(m["feasible"] for m in metrics.values()),
                  "reasons": sorted({r for m in metrics.values() for r in m["reasons"]}), "cached": True,
                  "seconds": seconds, "arch": {k: getattr(arch, k) for k in arch.__dataclass_fields__ if k != "name"}}
    return out


def aggregate(space: SearchSpace, per: dict[str, dict]) -> dict[str, float]:
    out = {}
    for name, objective in objectives.OBJECTIVES.items():
        xs = [m[name] for m in per.values() if name in m]
        if xs:
            out[name] = objective.aggregate(xs, space.aggregate)
    return out


def finite(values: dict[str, float], objectives) -> bool:
    return all(name in values and math.isfinite(values[name]) for name in objectives)
