"""What the benchmarks share: interleaved timing rounds and writing the report they print."""

from __future__ import annotations

import time
from pathlib import Path


def interleaved(runs: dict, rounds: int, warmup: int = 1) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time each callable ``rounds`` times, one of each per round, so machine noise hits all alike.

    Returns (per-run times, per-run warm-up seconds); the warm-up calls (compilation, caches) are not timed.
    """
    warm = {}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        warm[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times, warm


def report(lines: list[str], out: Path) -> None:
    """Print the report and keep it as the latest output (results/benchmarks/)."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
