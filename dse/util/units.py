"""One unit policy for everything dse writes.

Machine outputs (JSON, CSV) carry SI values with the unit in every key or column name (``energy_J``,
``latency_s``, ``area_mm2``, ``val_accuracy_percent``). Human outputs (terminal lines, plot labels) are
auto-scaled to an SI prefix with 3 significant digits (``28.8 nJ``, ``325 us``).

A study keeps its objective values in the display units of ``dse.search.space.OBJECTIVES`` (uJ, ms: what
the constraints in a space file are written in); they are converted here, on the way out.
"""

from __future__ import annotations

import math

# metric -> (machine key, display-unit values per machine unit (uJ per J), unit for humans)
SI = {
    "accuracy": ("val_accuracy_percent", 1.0, "%"),  # what the search optimizes: the validation images'
    "test_accuracy": ("test_accuracy_percent", 1.0, "%"),  # reported beside it, never optimized on
    "ann_accuracy": ("ann_accuracy_percent", 1.0, "%"),
    "energy": ("energy_J", 1e6, "J"),
    "latency": ("latency_s", 1e3, "s"),
    "area": ("area_mm2", 1.0, "mm2"),
    "train_seconds": ("train_s", 1.0, "s"),
}
_PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M")]


def key(metric: str) -> str:
    """The machine-output name of a metric (``energy`` -> ``energy_J``); other names unchanged."""
    return SI[metric][0] if metric in SI else metric


def to_si(metric: str, value):
    """A display-unit value of ``metric`` in the unit of ``key(metric)``."""
    if metric not in SI or value is None or isinstance(value, bool):
        return value
    return value / SI[metric][1]  # a division: 486.7 uJ is 0.0004867 J, not 0.00048669999999999996


def si_dict(metrics: dict | None) -> dict | None:
    """A metrics mapping with SI keys and values (nested mappings converted too)."""
    if metrics is None:
        return None
    return {key(k): si_dict(v) if isinstance(v, dict) else to_si(k, v) for k, v in metrics.items()}


def human(value: float, unit: str) -> str:
    """``2.88e-8, "J"`` -> ``28.8 nJ``; units other than J and s are not prefixed (``97.8 %``, ``1.23 mm2``)."""
    if value is None or not math.isfinite(value):
        return f"{value} {unit}"
    value = float(f"{value:.3g}")  # round first: 999.6 nJ is 1.00 uJ
    if unit not in ("J", "s") or value == 0:
        return f"{sig3(value)} {unit}"
    scale, prefix = next(((s, p) for s, p in reversed(_PREFIXES) if abs(value) >= s), _PREFIXES[0])
    return f"{sig3(value / scale)} {prefix}{unit}"


def human_metric(metric: str, display_value: float) -> str:
    """A study value (display units) for humans: ``human_metric("energy", 0.0288)`` -> ``28.8 nJ``."""
    return human(to_si(metric, display_value), SI[metric][2]) if metric in SI else sig3(display_value)


def duration(seconds: float) -> str:
    """``5400`` -> ``1.50 h``: seconds, minutes or hours, 3 significant digits."""
    if seconds < 60:
        return human(seconds, "s")
    return f"{sig3(seconds / 60)} min" if seconds < 3600 else f"{sig3(seconds / 3600)} h"


def sig3(x: float) -> str:
    """3 significant digits in fixed notation (trailing zeros kept: 1.00)."""
    x = float(f"{x:.3g}")
    if x == 0:
        return "0"
    return f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f}"
