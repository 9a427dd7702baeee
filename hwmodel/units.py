"""Human output: SI values auto-scaled to three significant digits (machine output stays in SI units)."""

from __future__ import annotations

import math

_PREFIXES = [(1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"),
             (1e-15, "f")]


def human(value: float, unit: str) -> str:
    """``human(4.867e-4, 'J') == '487 uJ'``; 0 and non-finite values as they are."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale * 0.9995:
            return f"{value / scale:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()
