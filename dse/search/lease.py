"""Driver liveness on a study's storage: a lease that the running driver renews.

The lock file (``dse.search.lock``) protects one study directory on one file system. Drivers on
other machines sharing a database or journal see each other only through the storage, so the driver
holding a study keeps a lease there (a study attribute: holder, id, expiry) and renews it while it
runs. Another driver is refused while the lease is live, naming the holder; once the holder is gone
(its lease expired, or, on the same host, its process no longer exists), ``--resume`` takes it over
and only then fails the trials that driver left RUNNING. Expiry compares wall clocks: hosts must agree
within a fraction of ``LEASE_S`` (NTP does).
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import optuna

from dse.util.errors import UserError

KEY = "driver_lease"
LEASE_S = 60.0  # a lease not renewed for this long belongs to a driver that is gone
RENEW_S = 10.0
SETTLE_S = 0.5  # two drivers taking a free lease at once: the later write wins, the other sees it and backs off


class Lease:
    def __init__(self, study: optuna.Study):
        self.study = study
        self.id = uuid.uuid4().hex
        self.pid, self.host = os.getpid(), socket.gethostname()
        self.holder = f"pid {self.pid} on {self.host}"
        self.renewed = 0.0

    def _current(self) -> dict | None:
        lease = self.study.user_attrs.get(KEY)  # read from the storage each time
        return lease if isinstance(lease, dict) else None

    def _refuse(self, lease: dict) -> UserError:
        age = time.time() - (lease.get("expires", 0.0) - LEASE_S)
        return UserError(f"study {self.study.study_name!r} is being run by another driver ({lease.get('holder')}, "
                         f"alive {max(age, 0.0):.0f} s ago, on the same storage); wait for it to finish or stop it, "
                         "then --resume")

    def _write(self, expires: float) -> None:
        self.study.set_user_attr(KEY, {"id": self.id, "holder": self.holder, "pid": self.pid, "host": self.host,
                                       "expires": expires})
        self.renewed = time.monotonic()

    def _alive(self, lease: dict) -> bool:
        if lease.get("expires", 0.0) <= time.time():
            return False
        if lease.get("host") == self.host and isinstance(lease.get("pid"), int):  # on this host: ask the kernel
            try:
                os.kill(lease["pid"], 0)
            except ProcessLookupError:
                return False
            except PermissionError:  # exists, another user's
                pass
        return True

    def take(self) -> None:
        """Hold the study, or raise naming the live driver that does."""
        lease = self._current()
        if lease and lease.get("id") != self.id and self._alive(lease):
            raise self._refuse(lease)
        self._write(time.time() + LEASE_S)
        time.sleep(SETTLE_S)
        lease = self._current()
        if not lease or lease.get("id") != self.id:
            raise self._refuse(lease or {})

    def renew(self) -> None:
        """Called from the driver's loop; cheap unless ``RENEW_S`` has passed. A lease taken over meanwhile
        (this driver was silent past ``LEASE_S``) stops this driver before it writes another trial."""
        if time.monotonic() - self.renewed < RENEW_S:
            return
        lease = self._current()
        if not lease or lease.get("id") != self.id:
            raise UserError(f"study {self.study.study_name!r}: another driver ({(lease or {}).get('holder')}) took "
                            f"the study over after this one was silent for {LEASE_S:.0f} s; stopping (trials are kept)")
        self._write(time.time() + LEASE_S)

    def release(self) -> None:
        lease = self._current()
        if lease and lease.get("id") == self.id:
            self._write(0.0)
