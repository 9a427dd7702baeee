"""The objective registry: what a search can optimize, and how each objective is read and aggregated.

An objective is one entry here. ``report_key`` names the ``hwmodel.Report`` attribute (and the
``hwmodel.estimate_many`` result) it is read from, in SI units; ``None`` means it comes from the trained
network (accuracy). ``scale`` turns SI into the display unit a study stores. Across workloads, ``mean``
averages, ``worst`` takes the worst by the direction, and ``sum`` adds the objectives that add up over
workloads run one after another (``additive``: energy, latency) and averages the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # maximize | minimize
    unit: str  # the display unit the study stores
    scale: float  # display value = SI value x scale
    report_key: str | None  # hwmodel.Report attribute and estimate_many key; None: from training
    additive: bool  # a sum over workloads means something (energy, latency; not accuracy, area)

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"objective {self.name}: direction must be maximize or minimize, got {self.direction!r}")

    def read(self, report) -> float:
        """The display value from a ``hwmodel.Report``."""
        return float(getattr(report, self.report_key)) * self.scale

    def read_many(self, results: dict) -> np.ndarray:
        """The display values from ``hwmodel.estimate_many``'s results."""
        return np.asarray(results[self.report_key], dtype=float) * self.scale

    def aggregate(self, values, how: str, axis: int = 0):
        """Across workloads (``values`` stacked along ``axis``): ``how`` is one of AGGREGATES."""
        stack = np.asarray(values, dtype=float)
        if how == "sum" and self.additive:
            out = stack.sum(axis=axis)
        elif how == "worst":
            out = stack.min(axis=axis) if self.direction == "maximize" else stack.max(axis=axis)
        elif how in ("mean", "sum"):
            out = stack.mean(axis=axis)
        else:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
        return float(out) if np.ndim(out) == 0 else out


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("accuracy", "maximize", "%", 100.0, None, additive=False),
    Objective("energy", "minimize", "uJ", 1e6, "energy_j", additive=True),
    Objective("area", "minimize", "mm2", 1.0, "area_mm2", additive=False),
    Objective("latency", "minimize", "ms", 1e3, "latency_s", additive=True),
)}
AGGREGATES = ("mean", "worst", "sum")
PRICED = tuple(o for o in OBJECTIVES.values() if o.report_key is not None)  # what hwmodel gives
