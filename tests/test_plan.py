"""`dse plan` and the up-front refusal of trials no node can run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dse.cli import main
from dse.search.plan import distinct_trainings, make_plan, report
from dse.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"


def test_distinct_trainings_are_the_training_grid_capped_by_the_budget(tmp_path) -> None:
    assert distinct_trainings(load_space(SPACES / "quickstart.yaml")) == 16  # 4 x 4 x 3 = 48 > 16 trials
    assert distinct_trainings(load_space(SPACES / "paper_cifar10.yaml")) == 15  # 3 weight bits x 5 windows
    assert distinct_trainings(load_space(SPACES / "paper_joint.yaml")) == 27  # 9 networks on each of 3 datasets


def test_hours_from_a_given_epoch_time_are_exact() -> None:
    space = load_space(SPACES / "paper_cifar10.yaml")
    plan = make_plan(space, epoch_seconds=30.0)
    assert (plan.trainings, plan.epochs_per_training) == (15, [110])
    assert plan.training_hours == 15 * 110 * 30.0 / 3600
    lines = report(space, plan, [{"CPU": 8.0, "GPU": 2.0}, {"CPU": 2.0, "GPU": 0.0}], "the cluster")
    assert "55.0 CPU-hours + 13.8 GPU-hours" in lines[1]
    assert lines[2].endswith("1 can run a trial, 2 trials at once")


def test_plan_measures_an_epoch_here(capsys) -> None:
    assert main(["plan", str(SPACES / "quickstart.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("study quickstart: 16 trials; at most 16 distinct trainings (10 epochs each)")
    assert "measured on cpu" in out[1] or "measured on cuda" in out[1]
    assert "CPU-hours" in out[1] and "can run a trial" in out[2]


@pytest.mark.skipif(torch.cuda.device_count() > 0, reason="this machine has a GPU")
def test_a_trial_no_node_can_run_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys) -> None:
    assert main(["search", str(SPACES / "paper_cifar10.yaml"), "--results-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == ("error: resources: each trial asks 4 CPUs + 1 GPU but this machine has no node that large "
                   f"(largest: {torch.multiprocessing.cpu_count()} CPUs + 0 GPUs); lower the space's resources or "
                   "pass --address of a cluster that has them\n")
    assert not (tmp_path / "runs").exists()
    assert main(["plan", str(SPACES / "paper_cifar10.yaml")]) == 0
    out = capsys.readouterr().out
    assert "NO node can run a trial" in out and "pass --epoch-seconds" in out
