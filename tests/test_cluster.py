"""A real `ray start` cluster, run exactly as docs/cluster.md says, with Ray's default authentication: the
test executes the documented block line by line (no RAY_AUTH_MODE anywhere), in a fresh HOME."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from studies import free_port, kill, processes, with_descendants

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray]


def documented_commands() -> list[str]:
    text = (ROOT / "docs" / "cluster.md").read_text()
    block = re.search(r"<!-- cluster-test -->\n```bash\n(.*?)```", text, re.S)
    assert block, "docs/cluster.md lost its cluster-test block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    base = random.Random(port).randrange(22000, 29000, 200)
    env.update(HOME=str(home), PORT=str(port), W1=str(base), W2=str(base + 99), W3=str(base + 100),
               W4=str(base + 199), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               PYTHONUNBUFFERED="1")
    return env


def _run(line: str, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_documented_token_authenticated_cluster_runs_a_search(tmp_path) -> None:
    lines = documented_commands()
    assert [line.split()[:2] for line in lines[:2]] == [["ray", "get-auth-token"], ["ray", "start"]]
    assert "RAY_AUTH_MODE=disabled" not in "\n".join(lines)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    shutil.copytree(ROOT / "search_spaces", work / "search_spaces")
    port = free_port()
    env = _env(home, port)
    try:
        for line in lines[:-1]:  # token, head, worker
            done = _run(line, work, env, timeout=180)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert (home / ".ray" / "auth_token").is_file()

        # without the token, joining fails in one line that says what to do, and writes nothing
        stranger = {**env, "HOME": str(tmp_path / "stranger")}
        refused = _run(lines[-1], work, stranger)
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "requires a token" in refused.stderr and "auth_token" in refused.stderr
        assert not (work / "runs").exists()

        search = _run(lines[-1], work, env)
        assert search.returncode == 0, search.stderr
        ray_lines = [l for l in search.stderr.splitlines() if not l.startswith("[")]  # "[k/n] done ..." progress
        assert ray_lines == [], search.stderr  # Ray's messages went to runs/quickstart/ray.log
        trials = optuna.load_study(study_name="quickstart",
                                   storage=f"sqlite:///{work / 'runs/quickstart/study.db'}").get_trials()
        done_trials = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done_trials) == 4
        # one CPU per trial, one CPU per node, two trials in flight from the start: both nodes ran trials
        assert len({t.user_attrs["node"] for t in done_trials}) == 2
    finally:
        _stop(port)


def _stop(port: int) -> None:
    """Kill this cluster's processes only (never `ray stop`): those of the Ray sessions whose processes
    name the port, and their descendants (Ray's agents rename their command lines)."""
    named = processes(f"127.0.0.1:{port}") | processes(f"port={port}")
    sessions = {m for args in named.values() for m in re.findall(r"session_[0-9_-]+", args)}
    pids = set(named) | {pid for s in sessions for pid in processes(s)}
    kill(with_descendants(pids))
