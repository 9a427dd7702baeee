"""Training, export and SNN evaluation end to end on real data (digits, CIFAR-10, Tiny-ImageNet)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

import hwmodel
from dse.data.batches import batches
from dse.data.registry import load_dataset
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.network import SNNNetwork
from dse.train.checkpoint import load_checkpoint
from dse.train.evaluate import ann_predictions
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec
from dse.util.errors import UserError

DIGITS = TrainSpec(dataset="digits", model="tiny_vgg", epochs=10, batch_size=64, time_window=8)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return train_and_evaluate(DIGITS, out, threads=1, progress=False), out


def test_digits_cat_learns_and_the_snn_agrees_where_the_ann_ran(digits_run):
    r, out = digits_run
    assert r.ann_accuracy > 0.85
    assert r.agreement == 1.0 and r.snn_accuracy == r.ann_accuracy
    m = json.loads((out / "metrics.json").read_text())
    # the agreement is the sample's, the search's default (the ANN on 256 of 360 test, of 143 validation images)
    assert m["ann_images"] == 256 and m["ann_equal_snn_bitwise"] is True and m["val_ann_images"] == 143
    assert m["spec"] == DIGITS.to_dict() and m["test_images"] == 360 and m["conversion_loss"] == 0.0
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt", "snn.pt", "spikes.json", "metrics.json",
                                               "spikes-validation.json"}
    # a tenth of digits' 1,437 training images held out, never trained on; the curve is their accuracy
    assert m["validation_images"] == 143 and m["train_images"] == 1437 - 143
    assert len(m["curve"]) == DIGITS.epochs + DIGITS.finetune_epochs
    assert all(0 <= row["val_accuracy"] <= 1 for row in m["curve"]) and m["val_agreement"] == 1.0
    val = json.loads((out / "spikes-validation.json").read_text())["snn"]
    assert val["images"] == 143 and val["accuracy"] == pytest.approx(m["val_snn_accuracy"])


def test_checkpoint_is_plain_and_reloads_to_the_same_predictions(digits_run):
    r, _ = digits_run
    state = torch.load(r.checkpoint, weights_only=True)
    assert TrainSpec.from_dict(state["spec"]) == DIGITS and state["folded"] is True
    model, spec, data = load_checkpoint(r.checkpoint)
    assert spec == DIGITS
    preds = ann_predictions(model, data.test, torch.device("cpu"))
    assert float((preds == data.test.labels).float().mean()) == r.ann_accuracy
    net = SNNNetwork.load(r.snn)
    x = data.test.images[:120]
    closed, _ = simulate_closed_form(net, x)
    events, rec = simulate_events(net, x)
    assert torch.equal(closed, events) and rec.overflows == 0
    assert torch.equal(closed.argmax(1), preds[:120])


def test_spike_statistics_file_is_a_workload_hwmodel_prices(digits_run):
    r, _ = digits_run
    doc = json.loads(r.spike_stats.read_text())
    assert doc["schema"] == "snn-workload/1" and doc["input_shape"] == [1, 8, 8]
    assert doc["snn"]["time_window"] == 8 and doc["snn"]["weight_bits"] == 5 and doc["snn"]["images"] == 360
    assert doc["snn"]["accuracy"] == pytest.approx(r.snn_accuracy)
    convs = [layer for layer in doc["layers"] if layer["type"] == "conv"]
    assert len(convs) == 3 and convs[0]["input_spikes"] == 64.0  # the first layer reads every pixel
    for layer in convs:
        assert len(layer["spike_time_histogram"]) == 8
        assert sum(layer["spike_time_histogram"]) == pytest.approx(layer["output_spikes"])
    report = hwmodel.estimate(hwmodel.load_arch("paper"), hwmodel.load_workload(str(r.spike_stats)))
    assert report.feasible and report.energy_j > 0


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    spec = dataclasses.replace(DIGITS, epochs=1, finetune_epochs=1, max_train_images=400, max_test_images=50)
    states = []
    for i, s in enumerate((spec, spec, dataclasses.replace(spec, seed=1))):
        r = train_and_evaluate(s, tmp_path / str(i), threads=1, progress=False)
        states.append(torch.load(r.checkpoint, weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_naive_relu_conversion_is_measured(tmp_path, capfd):
    spec = dataclasses.replace(DIGITS, activation="relu", time_window=4)
    r = train_and_evaluate(spec, tmp_path, threads=1, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # progress=False prints nothing
    assert r.ann_accuracy > 0.9
    assert r.metrics["conversion_loss"] == pytest.approx(r.ann_accuracy - r.snn_accuracy)
    assert 0.0 < r.snn_accuracy <= 1.0 and r.agreement < 1.0  # naive conversion at T=4 does lose images


@pytest.mark.parametrize("values, field", [
    ({"dataset": "mnist"}, "train.dataset"), ({"time_window": 0}, "train.time_window"),
    ({"weight_bits": 9}, "train.weight_bits"), ({"epochs": "3"}, "train.epochs"), ({"schedule": "step"}, "train.schedule"),
    ({"epoch": 3}, "did you mean 'epochs'"),
])
def test_bad_spec_fields_are_named(values, field):
    with pytest.raises(UserError, match=field):
        TrainSpec.from_dict(values)


def test_yaml_floats_written_as_ints_are_accepted():
    assert TrainSpec.from_dict({"lr": 1, "width": 2}).lr == 1.0


def _dse(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dse.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_cli_train_and_evaluate(tmp_path, digits_run):
    cfg = tmp_path / "spec.yaml"
    cfg.write_text("dataset: digits\nmodel: tiny_vgg\nepochs: 1\nmax_train_images: 300\ntime_window: 4\n")
    run = _dse("train", "--config", cfg, "--epochs", "2", "--no-augment", "--threads", "1", "--out", tmp_path / "run")
    assert run.returncode == 0, run.stderr
    assert "agreement 100.00% of 256 images" in run.stdout  # the ANN checked 256 of digits' 360 test images
    spec = json.loads((tmp_path / "run" / "metrics.json").read_text())["spec"]
    assert spec["epochs"] == 2 and spec["time_window"] == 4 and spec["augment"] is False  # flags win over the file

    r, _ = digits_run
    ev = _dse("evaluate", r.checkpoint, "--events", "--accumulator-bits", "48", "--spikes-out", tmp_path / "s.json",
              "--threads", "1", "--ann-images", "0")
    assert ev.returncode == 0, ev.stderr
    assert f"ANN accuracy     {r.ann_accuracy:.2%}" in ev.stdout and "agreement        100.00% of 360 images" in ev.stdout
    assert "event sim = closed form on 100.00% of images (0 accumulator overflows at 48 bits;" in ev.stdout
    assert "conv" in ev.stdout and json.loads((tmp_path / "s.json").read_text())["schema"] == "snn-workload/1"


def test_vmem_width_derived_from_the_exact_snn_never_overflows(tmp_path, digits_run):
    """Without a measurement hwmodel derives the worst-case bound; with the exact SNN's measured widths
    (dse evaluate --events writes them) it derives the measured width. Both give 0 overflows on the trained
    digits network; one bit less than each is what hwmodel's check flags, and one bit less than the measured
    width really overflows."""
    import hwmodel

    r, _ = digits_run
    paper = hwmodel.load_arch("paper")
    ev = _dse("evaluate", r.checkpoint, "--events", "--accumulator-bits", "48", "--spikes-out", tmp_path / "s.json",
              "--threads", "1", "--json")
    assert ev.returncode == 0, ev.stderr
    metrics, doc = json.loads(ev.stdout), json.loads((tmp_path / "s.json").read_text())
    assert metrics["event_overflows"] == 0
    measured = max(metrics["event_potential_bits"])
    weighted = [layer for layer in doc["layers"] if layer["type"] in ("conv", "linear")]
    assert [layer["potential_bits"] for layer in weighted] == metrics["event_potential_bits"]
    shaped = hwmodel.with_fields(paper, weight_bits=doc["snn"]["weight_bits"], time_window=doc["snn"]["time_window"],
                                 steps_per_octave=doc["snn"]["steps_per_octave"])

    def width(workload):
        return int(hwmodel.estimate(shaped, workload).operating_point["accumulator_bits"])

    with_measured = hwmodel.load_workload(doc)
    for layer in doc["layers"]:
        layer.pop("potential_bits", None)
    bound = width(hwmodel.load_workload(doc))
    assert width(with_measured) == measured < bound
    for workload, bits in ((with_measured, measured), (hwmodel.load_workload(doc), bound)):
        assert not hwmodel.estimate(hwmodel.with_fields(shaped, accumulator_bits=bits - 1), workload).feasible
        assert hwmodel.estimate(hwmodel.with_fields(shaped, accumulator_bits=bits), workload).feasible
    # the default check runs at the paper processor's width for this network: the bound (no measurement yet)
    default = _dse("evaluate", r.checkpoint, "--events", "--threads", "1")
    assert default.returncode == 0 and f"(0 accumulator overflows at {bound} bits;" in default.stdout
    at = {bits: json.loads(_dse("evaluate", r.checkpoint, "--events", "--accumulator-bits", bits, "--threads", "1",
                                "--json").stdout)["event_overflows"] for bits in (measured, measured - 1)}
    assert at[measured] == 0 and at[measured - 1] > 0


@pytest.mark.parametrize("args, says", [
    (["train", "--bogus", "1"], "unrecognized arguments"),
    (["train", "--epochs", "x"], "--epochs"),
    (["train", "--dataset", "mnist"], "train.dataset"),
    (["train", "--config", "NOPE.yaml"], "NOPE.yaml"),
    (["evaluate", "NOPE.pt"], "NOPE.pt"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, args, says):
    run = _dse(*args, "--out", tmp_path) if args[0] == "train" else _dse(*args)
    assert run.returncode == 2 and says in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_cli_rejects_unknown_yaml_key_and_a_non_checkpoint(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: digits\nwieght_bits: 5\n")
    run = _dse("train", "--config", cfg, "--out", tmp_path)
    assert run.returncode == 2 and "wieght_bits" in run.stderr and "weight_bits" in run.stderr
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    run = _dse("evaluate", junk)
    assert run.returncode == 2 and str(junk) in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_real_cifar10_quick_training_snn_equals_cat(cifar10_data_dir, tmp_path):
    spec = TrainSpec(dataset="cifar10", model="tiny_vgg", width=1.0, epochs=2, time_window=8, max_train_images=3000,
                     max_test_images=1000)
    r = train_and_evaluate(spec, tmp_path, cifar10_data_dir, threads=2, progress=False)
    assert r.ann_accuracy > 0.25  # 10 classes: chance is 0.10
    assert r.agreement == 1.0 and r.snn_accuracy == r.ann_accuracy
    net = SNNNetwork.load(r.snn)
    x = load_dataset("cifar10", cifar10_data_dir).test.images[:100]
    closed, _ = simulate_closed_form(net, x)
    events, _ = simulate_events(net, x)
    assert torch.equal(closed, events)


@pytest.mark.slow
def test_real_tiny_imagenet_short_run(tiny_imagenet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path / "cache"))
    spec = TrainSpec(dataset="tiny-imagenet", model="tiny_vgg", width=0.5, epochs=1, time_window=8, max_train_images=800,
                     max_test_images=400)
    r = train_and_evaluate(spec, tmp_path / "run", tiny_imagenet_dir, threads=2, progress=False)
    assert r.agreement == 1.0 and r.metrics["test_images"] == 400
    doc = json.loads(r.spike_stats.read_text())
    assert doc["input_shape"] == [3, 64, 64] and doc["layers"][-1]["out_features"] == 20
    for x, _ in batches(load_dataset("tiny-imagenet", tiny_imagenet_dir).test, 50):
        assert torch.equal(simulate_closed_form(SNNNetwork.load(r.snn), x)[0], simulate_events(SNNNetwork.load(r.snn), x)[0])
        break
