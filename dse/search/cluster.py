"""Where trials run: a Ray cluster joined with its token, or a private local instance, started quietly;
and whether any node can run a trial at all.

Ray's token authentication (Ray >= 2.59 turns it on for local instances, 2.61 for every cluster): a
head started by ``ray start --head`` requires the token when ``~/.ray/auth_token`` exists, but a process
that joins with an explicit address only sends it under ``RAY_AUTH_MODE=token``. Joining, dse therefore
turns token mode on when a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``, Ray's own order), the rule ``ray start --head`` applies; a cluster without
authentication accepts such a client too. ``RAY_AUTH_MODE``, when set, is always left as the user set it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from pathlib import Path

from dse.search import internals
from dse.util.errors import UserError

AUTH_HELP = ("if the cluster uses token authentication, copy the head's ~/.ray/auth_token to this machine "
             "or set RAY_AUTH_TOKEN (docs/cluster.md)")


def token_available() -> bool:
    """A token where Ray looks for one (docs.ray.io, ray-security/token-auth)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(path).expanduser().is_file() if path else (Path.home() / ".ray" / "auth_token").is_file()


@contextlib.contextmanager
def _stderr_to(log: Path):
    """Send file descriptor 2 (Ray's Python and C++ messages alike) to ``log`` for the duration."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def log_file(directory: Path | None) -> Path:
    """``directory/ray.log``, or a temporary file while the study directory is not written yet."""
    if directory is not None and directory.is_dir():
        return directory / "ray.log"
    handle, name = tempfile.mkstemp(prefix="dse-ray-", suffix=".log")
    os.close(handle)
    return Path(name)


def _token_mode() -> None:
    """RAY_AUTH_MODE=token for this process and its children; Ray's configuration, read at import, is
    read again (what Ray itself does when it turns token mode on)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    internals.reload_ray_config()


def join(address: str, log: Path):
    """Connect to the cluster at ``address``; every failure is one line naming the likely cause."""
    import ray

    if "RAY_AUTH_MODE" not in os.environ and token_available():
        _token_mode()
    try:
        with _stderr_to(log):
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, AuthenticationError, RuntimeError, ...
        text = log.read_text(errors="replace") + str(exc)
        if "InvalidAuthToken" in text or "Unauthenticated" in text:
            why = ("the cluster requires a token and " + ("this one is not its token" if token_available()
                                                          else "none was found") + f"; {AUTH_HELP}")
        else:
            why = f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; {AUTH_HELP}"
        raise UserError(f"--address {address}: cannot join the Ray cluster: {why} (Ray's log: {log})") from None
    if log.stat().st_size == 0:  # a quiet join leaves no empty file behind
        log.unlink()
    return ray


def start_local(log: Path):
    """A private instance on loopback, without dashboard, its messages in ``log``. Unless the user chose
    an auth mode, it runs with token authentication and a token of its own, passed to its processes in
    the environment: nothing is written to ~/.ray, so a later ``ray start --head`` is not affected."""
    import ray

    if "RAY_AUTH_MODE" not in os.environ:
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        _token_mode()
    # Ray turns 127.0.0.1 into the host's address and listens on every interface unless told this
    # is a single-machine instance; then GCS, raylet, workers and agents bind loopback only
    # (tests/test_search_run.py checks the listening sockets). Children inherit the variable.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    internals.single_machine(ray)  # read at import; ray may be imported already
    with _stderr_to(log):
        internals.init_on_loopback(ray, address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                                   log_to_driver=False, logging_level=logging.WARNING, object_store_memory=128 << 20)
    return ray


def cluster_nodes(ray) -> list[dict[str, float]]:
    """The resources of each live node of the cluster this process joined."""
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def local_nodes() -> list[dict[str, float]]:
    """What a private local instance will have: this machine's CPUs and the GPUs torch sees."""
    import torch

    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]


def resources_text(cpus: float, gpus: float, with_gpus: bool = False) -> str:
    def n(x: float, what: str) -> str:
        return f"{x:g} {what}" + ("" if x == 1 else "s")

    return n(cpus, "CPU") + (f" + {n(gpus, 'GPU')}" if gpus or with_gpus else "")


def fitting_nodes(cpus: float, gpus: float, nodes: list[dict[str, float]]) -> list[dict[str, float]]:
    return [n for n in nodes if n.get("CPU", 0.0) >= cpus and n.get("GPU", 0.0) >= gpus]


def check_fits(cpus: float, gpus: float, nodes: list[dict[str, float]], where: str) -> None:
    """Refuse up front, in one line, a trial that no node can ever run (Ray would keep it pending forever)."""
    if fitting_nodes(cpus, gpus, nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    raise UserError(f"resources: each trial asks {resources_text(cpus, gpus)} but {where} has no node that large "
                    f"(largest: {resources_text(largest.get('CPU', 0.0), largest.get('GPU', 0.0), bool(gpus))}); "
                    "lower the space's resources or pass --address of a cluster that has them")
