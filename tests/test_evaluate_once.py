"""A trial evaluates the SNN once; the float64 ANN runs on a stated sample and on everything only if it differs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dse.data.splits import subset
from dse.train import evaluate
from dse.train.checkpoint import load_checkpoint
from dse.train.evaluate import ann_predictions, measure
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec, build_for

SPEC = TrainSpec(dataset="digits", model="tiny_vgg", epochs=2, batch_size=64, max_train_images=600, max_test_images=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    r = train_and_evaluate(SPEC, tmp_path_factory.mktemp("once"), threads=1, progress=False)
    return load_checkpoint(r.checkpoint)


def _test_split(data, n):
    return subset(data.test, n)  # the class-balanced draw measure() tests on


def test_ann_runs_on_the_sample_only_and_its_accuracy_is_the_full_anns(trained) -> None:
    model, spec, data = trained
    metrics, doc, _ = measure(model, spec, data, torch.device("cpu"), "once", check_images=32)
    assert metrics["ann_images"] == 32 and metrics["ann_equal_snn_bitwise"] is True
    assert metrics["test_images"] == 200 and doc["snn"]["images"] == 200
    full = ann_predictions(model, _test_split(data, 200), torch.device("cpu"))
    assert metrics["ann_accuracy"] == float((full == _test_split(data, 200).labels).float().mean())
    assert metrics["agreement"] == 1.0 and metrics["snn_accuracy"] == metrics["ann_accuracy"]


def test_a_differing_sample_makes_the_ann_run_on_every_image(trained, monkeypatch) -> None:
    model, spec, data = trained
    honest = evaluate.evaluate_snn

    def broken(*args, **kwargs):  # an SNN that gets image 0 wrong, as a broken float32 platform would
        outputs, doc = honest(*args, **kwargs)
        outputs[0] = -outputs[0]
        return outputs, doc

    monkeypatch.setattr(evaluate, "evaluate_snn", broken)
    metrics, _, _ = measure(model, spec, data, torch.device("cpu"), "once", check_images=32)
    assert metrics["ann_images"] == 200 and metrics["ann_equal_snn_bitwise"] is False
    full = ann_predictions(model, _test_split(data, 200), torch.device("cpu"))
    assert metrics["ann_accuracy"] == float((full == _test_split(data, 200).labels).float().mean())
    assert metrics["agreement"] == pytest.approx(199 / 200)


def test_a_relu_network_runs_its_ann_on_every_image(trained) -> None:
    _, _, data = trained
    spec = dataclasses.replace(SPEC, activation="relu", epochs=1)
    model = build_for(spec, data).eval()
    metrics, _, _ = measure(model, spec, data, torch.device("cpu"), "relu", check_images=32)
    assert metrics["ann_images"] == 200 and metrics["ann_equal_snn_bitwise"] is False
