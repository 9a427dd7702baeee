"""Helpers for tests that run real studies in real processes: spaces, storage readers, process control."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna

ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}

HW_SPACE = """\
study: {study}
workloads:
  - hwmodel: vgg16-cifar10
space:
  pe_rows: [4, 8, 16]
  weight_sram_kib: [64, 256]
  spike_sram_kib: [16, 64]
objectives: [energy, area]
{extra}
"""

# digits ships with scikit-learn: real data, offline, a training of a few seconds
DIGITS_SPACE = """\
study: {study}
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {{epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512}}
space:
  weight_bits: {bits}
  time_window: {windows}
  pe_rows: [4, 8]
objectives: [accuracy, energy]
sampler: {{name: random, seed: 3}}
budget: {{n_trials: {n}}}
resources: {{cpus: 1, max_concurrent: {concurrent}}}
"""


def distinct_trainings_space(study: str, n: int = 6) -> str:
    """A grid over training parameters only: every trial trains a network of its own (no cache hits), so
    a trial in RUNNING is surely mid-training for seconds and a fault injected then cannot miss it."""
    text = DIGITS_SPACE.format(study=study, bits="[3, 4, 5]", windows="[2, 4]", n=n, concurrent=2)
    text = text.replace("pe_rows: [4, 8]", "pe_rows: [8]").replace("{name: random, seed: 3}", "{name: grid}")
    # about 5 s per training on one idle core (digits trains in under a second otherwise)
    return text.replace("epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512",
                        "epochs: 60, finetune_epochs: 1, batch_size: 128, width: 0.5")


def write_space(directory: Path, text: str) -> Path:
    path = directory / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def search_cmd(space: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dse.cli", "search", str(space), "--results-dir", str(results), "--quiet",
            "--cache-dir", str(results / "cache"), *extra]


def storage_trials(db: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials()


def trials_so_far(db: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials, or [] while the database is still being created."""
    if not db.exists():
        return []
    try:  # read-only until the driver has created the study: opening Optuna's storage on a database being
        # created would race the driver's own schema set-up (it once failed the driver: UNIQUE alembic_version)
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            if not con.execute("SELECT 1 FROM studies WHERE study_name = ?", (study,)).fetchone():
                return []
        return storage_trials(db, study)
    except Exception:  # created but not yet holding the study
        return []


def states(db: Path, study: str) -> list[optuna.trial.TrialState]:
    return [t.state for t in trials_so_far(db, study)]


def wait_for(condition, timeout: float = 240, period: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition.__name__}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a driver and every process under it at once, as if its machine died. Ray's workers run in
    process groups of their own, so the driver's group alone would leave them finishing their tasks."""
    tree = with_descendants({proc.pid})
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    kill(tree)
    proc.wait(timeout=30)


def with_descendants(pids: set[int]) -> set[int]:
    table = [line.split() for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True,
                                                      text=True).stdout.splitlines()]
    children: dict[int, list[int]] = {}
    for pid, ppid in table:
        children.setdefault(int(ppid), []).append(int(pid))
    out, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in out and pid != os.getpid():
            out.add(pid)
            todo += children.get(pid, [])
    return out


def processes(pattern: str) -> dict[int, str]:
    """pid -> command line of the processes whose command line contains ``pattern``."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return {int(pid): args for pid, _, args in (line.strip().partition(" ") for line in out.splitlines())
            if pattern in args}


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_cluster():
    """A head and a worker node (1 CPU each) on 127.0.0.1; yields (address, worker raylet pid).

    Stops only this cluster's processes (never `ray stop`, which ends every Ray on the host): those
    naming its temp dir or port, and their descendants (Ray's agents rename their command lines)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path("/tmp") / f"dse-ray-{port}"  # short: Ray's socket paths must fit in 107 bytes
    ray_bin = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"]
    try:
        subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        f"--temp-dir={temp}", "--min-worker-port=20000", "--max-worker-port=20199", *common[:2]],
                       env=ENV, check=True, timeout=120, capture_output=True)
        raylets = set(processes("raylet/raylet"))
        subprocess.run(["timeout", "120", ray_bin, "start", f"--address={address}", "--node-ip-address=127.0.0.1",
                        "--min-worker-port=20200", "--max-worker-port=20399", common[0]], env=ENV, check=True,
                       capture_output=True)
        worker = set(processes("raylet/raylet")) - raylets
        assert len(worker) == 1, worker
        yield address, worker.pop()
    finally:
        found = subprocess.run(["pgrep", "-f", f"({temp}|127.0.0.1:{port}|gcs_server_port={port})"],
                               capture_output=True, text=True).stdout.split()
        kill(with_descendants({int(p) for p in found}))
