"""A trial evaluates the SNN once; the float64 ANN runs on a stated sample and on everything only if it differs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dse.data.splits import subset
from dse.train import evaluate
from dse.train.checkpoint import load_checkpoint
from dse.train.evaluate import ANN_CHECK_IMAGES, agreement_text, ann_predictions, measure
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec, build_for

SPEC = TrainSpec(dataset="digits", model="tiny_vgg", epochs=2, batch_size=64, max_train_images=600, max_test_images=200)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    r = train_and_evaluate(SPEC, tmp_path_factory.mktemp("once"), threads=1, progress=False)
    return load_checkpoint(r.checkpoint)


def _test_split(data, n):
    return subset(data.test, n)  # the class-balanced draw measure() tests on


def _snn_predictions(model, split) -> torch.Tensor:
    """The exported SNN's predictions, simulated here, not by measure()."""
    from dse.snn.closed_form import simulate_closed_form
    from dse.snn.export import export_snn

    return simulate_closed_form(export_snn(model), split.images)[0].argmax(1)


def _flipping(index: int):
    """evaluate_snn, but image ``index``'s prediction moved to another class (as a platform that broke the SNN's
    exactness on that one image would)."""
    honest = evaluate.evaluate_snn

    def broken(*args, **kwargs):
        outputs, doc = honest(*args, **kwargs)
        top = int(outputs[index].argmax())
        outputs[index, (top + 1) % outputs.shape[1]] = outputs[index, top] + 1
        return outputs, doc

    return broken


def test_ann_runs_on_the_sample_only_and_its_accuracy_is_the_full_anns(trained) -> None:
    model, spec, data = trained
    metrics, doc, _ = measure(model, spec, data, torch.device("cpu"), "once", check_images=32)
    assert metrics["ann_images"] == 32 and metrics["ann_equal_snn_bitwise"] is True
    assert metrics["test_images"] == 200 and doc["snn"]["images"] == 200
    test = _test_split(data, 200)
    full, snn = ann_predictions(model, test, torch.device("cpu")), _snn_predictions(model, test)
    assert metrics["ann_accuracy"] == float((full == test.labels).float().mean())
    assert metrics["snn_accuracy"] == float((snn == test.labels).float().mean()) == metrics["ann_accuracy"]
    # the agreement of the 32 images the ANN ran on, nothing said of the other 168
    assert metrics["agreement"] == float((full[:32] == snn[:32]).float().mean())
    assert agreement_text(metrics) == f"{metrics['agreement']:.2%} of 32 images"


def test_a_difference_outside_the_sample_is_measured_only_when_the_ann_runs_there(trained, monkeypatch) -> None:
    """An SNN that differs from its ANN on one image beyond the default sample: the sampled check reports its
    agreement on its 256 images (where it holds), never on all 360; checking every image finds the difference."""
    model, spec, data = trained
    test = data.test  # all 360 digits test images
    assert len(test.labels) == 360 and ANN_CHECK_IMAGES == 256
    monkeypatch.setattr(evaluate, "evaluate_snn", _flipping(300))
    cpu = torch.device("cpu")
    sampled, _, _ = measure(model, spec, data, cpu, "once", split=test)  # the search's default: 256 images
    assert sampled["test_images"] == 360 and sampled["ann_images"] == 256 and sampled["ann_equal_snn_bitwise"] is True
    assert sampled["agreement"] == 1.0 and agreement_text(sampled) == "100.00% of 256 images"
    everywhere, _, _ = measure(model, spec, data, cpu, "once", check_images=0, split=test)
    assert everywhere["ann_images"] == 360 and everywhere["ann_equal_snn_bitwise"] is False
    assert everywhere["agreement"] == pytest.approx(359 / 360) and everywhere["agreement"] < 1.0
    assert agreement_text(everywhere) == "99.72% of 360 images"
    full = ann_predictions(model, test, cpu)
    assert everywhere["ann_accuracy"] == float((full == test.labels).float().mean())


def test_an_agreement_measured_on_no_image_is_not_reported() -> None:
    assert agreement_text({"agreement": None, "ann_images": 0}) == "not measured (the ANN ran on no image)"
    assert agreement_text({"agreement": 1.0, "ann_images": 1000}) == "100.00% of 1,000 images"


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
    assert metrics["agreement"] == pytest.approx(199 / 200) and agreement_text(metrics) == "99.50% of 200 images"


def test_a_relu_network_runs_its_ann_on_every_image(trained) -> None:
    _, _, data = trained
    spec = dataclasses.replace(SPEC, activation="relu", epochs=1)
    model = build_for(spec, data).eval()
    metrics, _, _ = measure(model, spec, data, torch.device("cpu"), "relu", check_images=32)
    assert metrics["ann_images"] == 200 and metrics["ann_equal_snn_bitwise"] is False
