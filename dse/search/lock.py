"""One driver at a time per study directory: an advisory lock the kernel releases if the driver dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from dse.util.errors import UserError

LOCK_FILE = ".driver.lock"


@contextlib.contextmanager
def driver_lock(directory: Path):
    """Hold the study directory for this driver. A second driver (a mistake, or a --resume while the
    first still runs, which would fail its running trials) is refused. ``flock`` dies with the process,
    so a killed driver never leaves a stale lock. It guards one results directory on one file system:
    drivers on other machines sharing the storage are kept apart by the lease (``dse.search.lease``)."""
    with open(directory / LOCK_FILE, "a+") as handle:
        take(handle, directory)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def take(handle, directory: Path) -> None:
    """Lock the open lock file, or refuse naming the driver that holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise UserError(f"{directory}: study is being run by another driver ({holder}); "
                        "wait for it to finish or stop it, then --resume") from None
