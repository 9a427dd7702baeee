"""A ResNet in a search: real Ray, real Optuna storage, real digits; every trial's energy is hwmodel's price
of a trained residual network's spike statistics (add layers included)."""

from __future__ import annotations

import json

import optuna
import pytest

import hwmodel
from dse.search.driver import RunOptions, run_search
from dse.search.resolve import design
from dse.search.space import load_space
from studies import storage_trials, write_space

pytestmark = pytest.mark.ray

RESNET_SPACE = """\
study: resnet
workloads:
  - dataset: digits
    model: resnet8
    train: {epochs: 1, finetune_epochs: 1, batch_size: 128, width: 0.25, max_train_images: 512}
space:
  weight_bits: [4, 5]
  time_window: [4]
  pe_rows: [4, 8]
objectives: [accuracy, energy]
sampler: {name: grid}
budget: {n_trials: 4}
resources: {cpus: 1, max_concurrent: 2}
"""


def test_resnet_study_trains_converts_and_prices_residual_networks(ray_local, tmp_path) -> None:
    space = load_space(write_space(tmp_path, RESNET_SPACE))
    cache = tmp_path / "cache"
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(cache)))
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 4  # the whole grid
    assert len(storage_trials(tmp_path / "resnet" / "study.db", "resnet")) == 4  # in the real storage
    entries = [p.parent for p in cache.rglob("metrics.json")]
    assert len(entries) == 2  # one training per weight_bits: trials that differ in pe_rows share it
    priced = set()
    for entry in entries:
        metrics = json.loads((entry / "metrics.json").read_text())
        assert metrics["spec"]["model"] == "resnet8" and metrics["ann_equal_snn_bitwise"] is True
        assert metrics["agreement"] == 1.0
        for name in ("spikes.json", "spikes-validation.json"):
            if (entry / name).is_file():
                doc = json.loads((entry / name).read_text())
                assert [l["name"] for l in doc["layers"] if l["type"] == "add"] == \
                    ["block1_add", "block2_add", "block3_add"]
                wl = hwmodel.load_workload(entry / name)
                for t in done:
                    if t.params["weight_bits"] == metrics["spec"]["weight_bits"]:
                        priced.add((t.number, hwmodel.estimate(design(space, t.params), wl).energy_j * 1e6))
    for t in done:  # each trial's energy is the exact price of its own network's measured activity
        assert (t.number, t.values[1]) in priced
        assert 0.0 <= t.values[0] <= 100.0
