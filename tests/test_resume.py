"""A training killed mid-way (SIGKILL, as a pre-empted node) resumes from its last epoch and ends bit for bit
where an uninterrupted run of the same seed ends. Real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dse.train.loop import STATE_FILE
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec
from dse.util.errors import UserError

# CAT with every phase: full-precision pre-training, CAT, folded fine-tune (kills land in any of them)
SPEC = dict(dataset="digits", model="tiny_vgg", epochs=30, pretrain_epochs=6, finetune_epochs=4, batch_size=32,
            theta="fixed")


def _train_cmd(out, **extra) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**SPEC, **extra}.items()]
    return [sys.executable, "-m", "dse.cli", "train", *flags, "--out", str(out), "--threads", "1", "--device", "cpu"]


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_a_killed_training_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = subprocess.run(_train_cmd(tmp_path / "ref"), env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / STATE_FILE).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    state = torch.load(out / STATE_FILE, weights_only=True)
    done = {"pretrain": 0, "train": 6, "finetune": 30}[["pretrain", "train", "finetune"][state["phase"]]] + state["epoch"]
    assert 1 <= done < 34 and not (out / "metrics.json").exists()  # killed mid-training

    resumed = subprocess.run(_train_cmd(out), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / STATE_FILE} after epoch {done} of 34" in resumed.stdout
    a, b = _weights(tmp_path / "ref" / "checkpoint.pt"), _weights(out / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "ref", out))
    assert (ma["ann_accuracy"], ma["snn_accuracy"], ma["agreement"]) == (mb["ann_accuracy"], mb["snn_accuracy"], 1.0)
    assert [r["epoch"] for r in ma["curve"]] == [r["epoch"] for r in mb["curve"]]  # one row per epoch, none twice
    assert not (out / STATE_FILE).exists()  # a finished training leaves its outputs, not its state


def test_a_state_of_another_spec_is_refused_not_resumed(tmp_path) -> None:
    spec = TrainSpec(**{**SPEC, "epochs": 2, "pretrain_epochs": 0, "finetune_epochs": 0})
    train_and_evaluate(spec, tmp_path, progress=False, threads=1)
    (tmp_path / "metrics.json").unlink()
    from dse.network.registry import build_model
    from dse.train.loop import TrainState

    model = build_model("tiny_vgg", 10, 1, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    TrainState(spec).save(tmp_path / STATE_FILE, model, opt, None, torch.Generator())
    other = TrainSpec(**{**SPEC, "epochs": 3, "pretrain_epochs": 0, "finetune_epochs": 0})
    with pytest.raises(UserError, match="holds a training of another spec"):
        train_and_evaluate(other, tmp_path, progress=False, threads=1)


@pytest.mark.parametrize("variant", [dict(theta="fixed", log2_theta=2), dict(pretrain_epochs=2),
                                     dict(rounding="round", theta="fixed")])
def test_every_recipe_converts_exactly(tmp_path, variant) -> None:
    """The recipes of the CAT attribution keep SNN = CAT on every test image."""
    spec = TrainSpec(dataset="digits", model="tiny_vgg", epochs=4, finetune_epochs=1, batch_size=64, **variant)
    r = train_and_evaluate(spec, tmp_path, progress=False, threads=1, monitor=360)
    assert r.agreement == 1.0 and r.snn_accuracy == r.ann_accuracy
    assert set(r.metrics["stages"]) == {"before_fold", "after_fold"} and len(r.metrics["curve"]) == 5


def test_attribution_variants_without_an_snn_report_the_ann_only(tmp_path) -> None:
    r = train_and_evaluate(TrainSpec(dataset="digits", model="tiny_vgg", epochs=2, weights="float"), tmp_path,
                           progress=False, threads=1)
    assert r.metrics["ann_accuracy"] > 0 and "snn_accuracy" not in r.metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.json"]
    relu_log = train_and_evaluate(TrainSpec(dataset="digits", model="tiny_vgg", epochs=2, activation="relu",
                                            weights="log"), tmp_path / "relu", progress=False, threads=1)
    from dse.train.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(relu_log.checkpoint)
    assert model.weight_bits == 5 and model.activation == "relu"


def test_a_state_recorded_before_a_field_existed_resumes_as_the_training_it_was(tmp_path) -> None:
    """A training state written before validation_images and fold existed trained on every image with the plain
    fold: it resumes under exactly that spec, and is refused under today's defaults."""
    from dse.network.registry import build_model
    from dse.train.loop import TrainState
    from dse.train.spec import TrainSpec

    old = TrainSpec(dataset="digits", model="tiny_vgg", epochs=1, validation_images=0, fold="plain")
    path = tmp_path / "train_state.pt"
    TrainState(old).save(path, build_model("tiny_vgg", 10, 1, 8), None, None, torch.Generator())
    doc = torch.load(path, weights_only=False)
    for key in TrainSpec.RECORDED_BEFORE:
        del doc["spec"][key]
    torch.save(doc, path)
    assert TrainState.load(path, old)[0].spec == old
    with pytest.raises(UserError, match="another spec"):
        TrainState.load(path, TrainSpec(dataset="digits", model="tiny_vgg", epochs=1))
