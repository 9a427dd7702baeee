"""What the benchmarks share: a load check before and after, interleaved timing rounds, the report they print."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BUSY_SHARE = 0.10  # a process using more than 10 % of a core while we sample counts as busy


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (name, user + system ticks) of every process (Linux /proc; empty elsewhere)."""
    ticks = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        ticks[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))
    return ticks


def machine_load(seconds: float = 3.0) -> dict:
    """Load average and the other processes busy over ``seconds`` (this process and its children excluded)."""
    first = _cpu_ticks()
    time.sleep(seconds)
    second = _cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    mine = {os.getpid()} | {pid for pid in second if _parent(pid) == os.getpid()}
    busy = sorted(((pid, name, (t - first[pid][1]) / hz / seconds) for pid, (name, t) in second.items()
                   if pid in first and pid not in mine and (t - first[pid][1]) / hz / seconds > BUSY_SHARE),
                  key=lambda b: -b[2])
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"loadavg": load, "busy": busy, "cpus": os.cpu_count() or 1}


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return None


def _quiet(load: dict) -> bool:
    # other processes' CPU time, sampled directly, decides: the load average lags by minutes and, after a run,
    # counts the benchmark's own threads (it is recorded, not judged)
    return not load["busy"]


def _describe(load: dict) -> str:
    busy = ", ".join(f"{name}[{pid}] {share:.0%}" for pid, name, share in load["busy"][:5]) or "none"
    return f"load average {' '.join(f'{x:.2f}' for x in load['loadavg'])} on {load['cpus']} cores; other busy processes: {busy}"


def add_load_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-load", action="store_true",
                        help="run on a loaded machine anyway (smoke runs): the report is marked as indicative only")


class LoadCheck:
    """Samples the machine before a benchmark and refuses a loaded one (unless allowed); ``lines()`` samples it
    again after and says whether the figures can be trusted."""

    def __init__(self, allow_load: bool, counts: bool = False):
        self.allow, self.counts = allow_load, counts  # counts: the figures are counts, which load does not move
        self.before = machine_load()
        if not _quiet(self.before) and not allow_load:
            sys.exit(f"refusing to time on a loaded machine ({_describe(self.before)}); "
                     "wait for a quiet one, or pass --allow-load for a smoke run")

    def lines(self) -> list[str]:
        after = machine_load()
        quiet = _quiet(self.before) and _quiet(after)
        verdict = ("quiet before and after" if quiet else "loaded: recorded only, this benchmark's figures are counts"
                   if self.counts else "UNDER LOAD: figures are indicative only, not for the README")
        return [f"machine: {verdict}", f"  before: {_describe(self.before)}", f"  after:  {_describe(after)}"]


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


def report(lines: list[str], out: Path, load: LoadCheck | None = None) -> None:
    """Print the report (with the load check's verdict) and keep it as the latest output (results/benchmarks/)."""
    text = "\n".join(lines + (load.lines() if load is not None else [])) + "\n"
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
