"""The one status line of a running study: done, running, failed, cached, pruned, the front's size, an ETA."""

from __future__ import annotations

import sys
import time

import optuna

LOG_EVERY_S = 60.0  # progress lines written to a log or pipe when nothing changes


class Progress:
    def __init__(self, enabled: bool, target: int):
        self.enabled, self.target, self.start = enabled, target, time.monotonic()
        self.done = self.failed = self.cached = self.earlier = self.pruned = 0
        self.tty = enabled and sys.stderr.isatty()
        self.last: tuple = (None, 0.0)  # (counts, when) of the last line written to a log

    def show(self, running: int, pareto, final: bool = False) -> None:
        """``pareto``: a callable, so a quiet run never pays for the front (a sort over every trial)."""
        if not self.enabled:
            return
        pareto = pareto()
        elapsed = time.monotonic() - self.start
        counts = (self.done, running, self.failed, self.cached, self.pruned, pareto)
        if not self.tty and not final and counts == self.last[0] and elapsed - self.last[1] < LOG_EVERY_S:
            return  # a log (not a terminal) gets a line when something changed, or once a minute
        self.last = (counts, elapsed)
        fresh = self.done - self.earlier  # finished in this run: the rate the ETA extrapolates
        eta = f"  eta {clock(elapsed / fresh * (self.target - self.done))}" if fresh and not final else ""
        line = (f"[{self.done}/{self.target}] done {self.done}  running {running}  failed {self.failed}  "
                f"cached {self.cached}  {f'pruned {self.pruned}  ' if self.pruned else ''}pareto {pareto}  {clock(elapsed)}{eta}")
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line + ("\x1b[K" if self.tty else ""), end=end, file=sys.stderr, flush=True)


def clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def pareto_size(study: optuna.Study) -> int:
    """The front's size as the final line, ``dse status`` and the exports count it: each design once."""
    from dse.search.reports import front  # the one definition of the front

    return len(front(study))
