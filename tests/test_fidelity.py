"""Multi-fidelity search on real Ray, real Optuna storage and real digits trainings: epoch reports reach the
driver through the board, the pruner stops trainings, pruned trials stay off the front and out of the cache,
and a pruned network asked for again resumes where it stopped."""

from __future__ import annotations

import json

import optuna
import pytest
import torch

from dse.search.cache import cache_key, data_fingerprint, train_cached
from dse.search.driver import RunOptions, run_search
from dse.search.fidelity import Pruned, companion_name
from dse.search.reports import front
from dse.search.space import load_space
from dse.train.checkpoint import safe_load
from dse.train.spec import TrainSpec
from studies import write_space

PRUNED, COMPLETE = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
EPOCHS = 4  # 3 + 1 fine-tune: rungs at epochs 1 and 2 (reduction factor 2)

SPACE = """\
study: prune
workloads:
  - dataset: digits
    model: tiny_vgg
    train: {epochs: 3, finetune_epochs: 1, batch_size: 64, width: 0.25, time_window: 4}
space:
  lr: [0.0, 0.1]
  weight_bits: [3, 4, 5]
objectives: [accuracy, energy]
sampler: {name: grid, seed: 0}
pruner: {name: successive_halving, reduction_factor: 2}
budget: {n_trials: 6}
resources: {cpus: 1, max_concurrent: 1}
"""


@pytest.mark.ray
def test_pruned_trainings_stop_early_and_never_reach_the_front_or_the_cache(ray_local, tmp_path) -> None:
    space = load_space(write_space(tmp_path, SPACE))
    cache = tmp_path / "cache"
    study = run_search(space, RunOptions(results_dir=tmp_path, progress=False, cache_dir=str(cache)))
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == PRUNED]
    done = [t for t in trials if t.state == COMPLETE]
    assert len(pruned) + len(done) == 6 and pruned and done  # the budget counts pruned trials
    # lr = 0 never learns: every such training but the first to reach a rung is stopped there
    assert sum(t.params["lr"] == 0.0 for t in pruned) >= 2
    assert all(t.values is None for t in pruned) and not {t.number for t in front(study)} & {t.number for t in pruned}

    companion = optuna.load_study(study_name=companion_name("prune", "digits"), storage=f"sqlite:///{tmp_path}/prune/study.db")
    by_trial = {t.user_attrs["search_trial"]: t for t in companion.get_trials()}
    assert set(by_trial) == {t.number for t in trials}  # every search trial trained its own network
    fp = data_fingerprint(TrainSpec(dataset="digits"))
    for t in pruned:
        stop = t.user_attrs["pruned"]
        c = by_trial[t.number]
        assert c.state == PRUNED and sorted(c.intermediate_values) == list(range(1, stop["epoch"] + 1))
        assert stop["epoch"] < EPOCHS and stop["val_accuracy"] == pytest.approx(100 * c.intermediate_values[stop["epoch"]])
        spec = _spec(space, t.params)
        key = cache_key(spec, fp)
        assert not (cache / key).exists()  # never published as a finished network
        state = safe_load(cache / f".partial-{key}" / "train_state.pt", "training state")
        assert len(state["curve"]) == stop["epoch"]  # kept to resume from
    for t in done:
        c = by_trial[t.number]
        assert c.state == COMPLETE and sorted(c.intermediate_values) == list(range(1, EPOCHS + 1))
        metrics = json.loads((cache / cache_key(_spec(space, t.params), fp) / "metrics.json").read_text())
        # the objective is the validation accuracy; the test accuracy is reported beside it, never optimized
        assert t.values[0] == 100 * metrics["val_snn_accuracy"] and c.value == metrics["curve"][-1]["val_accuracy"]
        assert t.user_attrs["test_accuracy"] == 100 * metrics["snn_accuracy"]
        assert t.user_attrs["per_workload"]["digits"]["test_accuracy"] == 100 * metrics["snn_accuracy"]
        assert metrics["validation_images"] == 143
    epochs = sum(t.user_attrs["pruned"]["epoch"] for t in pruned) + EPOCHS * len(done)
    assert epochs < 6 * EPOCHS


def _spec(space, params) -> TrainSpec:
    from dse.search.resolve import resolve

    return resolve(space, params, space.workloads[0]).spec


def test_a_pruned_network_resumes_bit_for_bit_and_is_cached_only_when_finished(tmp_path) -> None:
    spec = TrainSpec(dataset="digits", model="tiny_vgg", epochs=3, finetune_epochs=1, batch_size=64, width=0.25,
                     time_window=4)
    seen = []

    def stop_at_two(n, row):
        seen.append((n, row["val_accuracy"]))
        if n == 2:
            raise Pruned("digits", n, row["val_accuracy"])

    with pytest.raises(Pruned):
        train_cached(spec, tmp_path / "a", threads=1, on_epoch=stop_at_two)
    assert [n for n, _ in seen] == [1, 2] and not [p for p in (tmp_path / "a").iterdir() if not p.name.startswith(".")]
    replayed = []
    resumed, cached = train_cached(spec, tmp_path / "a", threads=1, on_epoch=lambda n, row: replayed.append(n))
    assert not cached and replayed == [1, 2, 3, 4]  # the earlier epochs are reported again, then the new ones
    assert not list((tmp_path / "a").glob(".partial-*"))
    whole, _ = train_cached(spec, tmp_path / "b", threads=1)
    a, b = (safe_load(r.checkpoint)["state_dict"] for r in (resumed, whole))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["val_snn_accuracy"] == whole.metrics["val_snn_accuracy"]
    assert [r["val_accuracy"] for r in resumed.metrics["curve"]][:2] == [v for _, v in seen]
    assert train_cached(spec, tmp_path / "a", threads=1)[1] is True
