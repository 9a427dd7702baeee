"""Load: a processor-only study of N trials (default 2,000) on the local default (SQLite, priced in the driver).

Runs ``dse search`` as a subprocess, as a user would, and samples the driver's resident memory and the
completed-trial count four times a second from outside (/proc and the SQLite file), so the measurement does
not perturb the driver. Prints memory at every 10 % of the study, the growth from the 25 % mark to the
end, trials per second, and failures. The driver records its trials a batch at a time
(``dse.search.internals``); the report also counts the storage statements per trial of that path and of
Optuna's ``add_trial``, on the study's own first batch: a figure that load does not change.

    python benchmarks/load_study.py [--trials 2000] [--out results/reliability/load.txt]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import sqlalchemy
from _timing import LoadCheck, add_load_option, report

from dse.search.processor_only import PRICE_BATCH
from dse.search.internals import add_finished, rdb_of
from dse.search.storage import open_storage

SPACE = """\
study: load
workloads:
  - hwmodel: vgg16-cifar10
space:
  pe_rows: {{type: int, low: 2, high: 32, step: 2}}
  pe_cols: {{type: int, low: 2, high: 32, step: 2}}
  weight_sram_kib: [32, 64, 128, 256, 512, 1024]
  vmem_sram_kib: [16, 32, 64, 128, 256]
  spike_sram_kib: [8, 16, 32, 64, 128]
  weight_bits: [3, 4, 5, 6]
  time_window: [4, 8, 16]
objectives: [energy, latency, area]
budget: {{n_trials: {n}}}
"""


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return dict(con.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.Error:  # created but without tables yet, or busy
        return {}


def statements_per_trial(db: Path, work: Path) -> dict[str, float]:
    """The study's first batch written again to fresh databases, one trial at a time and in bulk."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = optuna.load_study(study_name="load", storage=f"sqlite:///{db}")
    batch = source.get_trials()[:PRICE_BATCH]
    per = {}
    for how in ("add_trial", "batched"):
        study = optuna.create_study(study_name="copy", storage=open_storage(f"sqlite:///{work / how}.db"),
                                    directions=source.directions)
        count = [0]
        sqlalchemy.event.listen(rdb_of(study).engine, "before_cursor_execute", lambda *_: count.__setitem__(0, count[0] + 1))
        if how == "batched":
            add_finished(study, batch)
        else:
            for t in batch:
                study.add_trial(t)
        per[how] = count[0] / len(batch)
    return per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("results/reliability/load.txt"))
    add_load_option(p)
    args = p.parse_args()
    load = LoadCheck(args.allow_load)
    work = Path(tempfile.mkdtemp(prefix="dse-load-"))
    space = work / "load.yaml"
    space.write_text(SPACE.format(n=args.trials))
    db = work / "load" / "study.db"
    cmd = [sys.executable, "-m", "dse.cli", "search", str(space), "--results-dir", str(work), "--quiet", "--no-export"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int, float]] = []  # (seconds, completed, driver RSS MiB)
    while proc.poll() is None:
        mem = rss_mib(proc.pid)
        if mem is not None:
            samples.append((time.monotonic() - t0, counts(db).get("COMPLETE", 0), mem))
        time.sleep(0.25)
    wall = time.monotonic() - t0
    out, err = proc.communicate()
    final = counts(db)
    done = final.get("COMPLETE", 0)
    first = next((s for s in samples if s[1] > 0), samples[-1])
    last = next((s for s in samples if s[1] >= done), samples[-1])  # the study's end, not the process's exit
    lines = [f"load study: {args.trials} processor-only trials (VGG-16 CIFAR-10, 7 parameters, 3 objectives), "
             f"local default (SQLite, priced in the driver, {PRICE_BATCH} trials a transaction), `dse search` exit {proc.returncode}",
             f"trial states: {final}", "",
             "completed  seconds  driver RSS (MiB)"]
    for frac in [i / 10 for i in range(1, 11)]:
        s = next((s for s in samples if s[1] >= frac * done), samples[-1])
        lines.append(f"{s[1]:>9}  {s[0]:>7.1f}  {s[2]:>8.1f}")
    quarter = next(s for s in samples if s[1] >= 0.25 * done)
    peak = max(s[2] for s in samples)
    per = statements_per_trial(db, work) if done else {"add_trial": math.nan, "batched": math.nan}
    lines += ["", f"driver RSS: {quarter[2]:.1f} MiB at 25 % of the trials, {samples[-1][2]:.1f} MiB at the end, "
                  f"peak {peak:.1f} MiB: growth {samples[-1][2] / quarter[2]:.3f}x over the last 75 %",
              f"throughput: {done / wall:.1f} trials/s over the whole run ({wall:.1f} s incl. start-up); "
              f"{(last[1] - first[1]) / max(last[0] - first[0], 1e-9):.1f} trials/s once trials flow, from the first "
              f"recorded batch to the last (goal: 200)",
              f"storage statements per trial (the study's first {PRICE_BATCH} trials, written again): "
              f"{per['batched']:.3f} batched, {per['add_trial']:.1f} with add_trial "
              f"({per['add_trial'] / per['batched']:.0f}x fewer)",
              f"failures: {final.get('FAIL', 0)}"]
    if proc.returncode:
        lines.append("stderr: " + err.strip().splitlines()[-1])
    report(lines, args.out, load)


if __name__ == "__main__":
    main()
