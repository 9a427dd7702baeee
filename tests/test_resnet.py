"""The ResNet family: residual additions convert exactly (ANN = closed form = events, bit for bit), fold with
the bias correction, and price as a workload with add layers."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

import hwmodel
from dse.network.fold import fold_batchnorm
from dse.network.registry import build_model
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.export import export_snn
from dse.snn.network import SNNNetwork
from dse.snn.statistics import workload_layers, spike_statistics
from networks import trained_briefly

CASES = list(itertools.product((4, 8), (1, 2), ("floor", "round"), ("pixels", "ttfs"))) + [(16, 1, "floor", "pixels")]


def _trained(T=8, k=1, rounding="floor", first="pixels", seed=0, size=8, name="resnet8", into="weights"):
    """A small CAT ResNet after real SGD steps, folded (bias-corrected) and fine-tuned."""
    torch.manual_seed(seed)
    m = build_model(name, 10, 3, size, width=0.25, time_window=T, steps_per_octave=k, rounding=rounding,
                    first_layer=first)
    return trained_briefly(m, lambda model, pixels: fold_batchnorm(model, calibration=pixels.float() / 256,
                                                                   into=into), seed, size)


@pytest.mark.parametrize("into", ["weights", "thresholds"])
@pytest.mark.parametrize("T,k,rounding,first", CASES)
def test_resnet_ann_closed_form_and_events_agree_bit_exactly(T, k, rounding, first, into) -> None:
    model, pixels = _trained(T, k, rounding, first, into=into)
    ann = copy.deepcopy(model).double()(pixels.double() / 256)
    net = export_snn(model)
    assert sum(op["op"] == "add" for op in net.ops) == 3
    closed, rec_c = simulate_closed_form(net, pixels, keep_times=True)
    exact, _ = simulate_closed_form(net, pixels, certified=False)
    events, rec_e = simulate_events(net, pixels, keep_times=True)
    assert torch.equal(ann, closed) and torch.equal(ann, exact) and torch.equal(closed, events)
    assert rec_e.overflows == 0
    for a, b in zip(rec_c.spike_times, rec_e.spike_times, strict=True):
        assert torch.equal(a, b)
    assert rec_c.input_events == rec_e.input_events and rec_c.output_spikes == rec_e.output_spikes
    assert rec_c.shortcut_events == rec_e.shortcut_events and len(rec_c.shortcut_events) == 3
    assert sum(rec_c.shortcut_events) > 0  # the residual path carries real spikes


def test_the_add_is_one_neuron_over_both_spike_trains() -> None:
    """The block's fire sees conv2's potential plus the decoded shortcut spikes: an add of conv2's potential
    with itself instead gives another output (the shortcut's spikes matter)."""
    model, pixels = _trained()
    net = export_snn(model)
    kept = copy.deepcopy(net)
    add = next(i for i, op in enumerate(kept.ops) if op["op"] == "add")
    kept.ops[add] = {"op": "add", "inputs": [kept.ops[add]["inputs"][0], kept.ops[add]["inputs"][0]]}
    assert not torch.equal(simulate_closed_form(kept, pixels)[0], simulate_closed_form(net, pixels)[0])


def test_corrected_fold_restores_mean_potentials() -> None:
    """After the corrected fold, each unit's mean potential (per channel, on the calibration images) equals the
    unfolded network's up to the bias grid; the plain fold leaves a larger gap."""
    torch.manual_seed(3)
    m = build_model("resnet8", 10, 3, 8, width=0.25)
    x = torch.randint(0, 256, (64, 3, 8, 8)).float() / 256
    m.train()
    for _ in range(3):  # running statistics from real batches
        m(x)
    m.eval()
    for u in m.units():  # batch norms far from identity: the fold's re-quantization moves the means
        u["bn"].weight.data.uniform_(0.3, 3.0)
        u["bn"].bias.data.uniform_(-0.5, 0.5)

    def means(net, units):
        seen = []
        hooks = [(u["bn"] if not isinstance(u["bn"], torch.nn.Identity) else u["conv"]).register_forward_hook(
            lambda mod, i, o: seen.append(o.mean(dim=(0, 2, 3)))) for u in units(net)]
        net(x)
        for h in hooks:
            h.remove()
        return seen

    reference = means(m, lambda n: n.units())
    plain = means(fold_batchnorm(copy.deepcopy(m)), lambda n: n.units())
    corrected = means(fold_batchnorm(copy.deepcopy(m), calibration=x), lambda n: n.units())
    gap = lambda got: max(float((a - b).detach().abs().max()) for a, b in zip(got, reference))
    assert gap(corrected) < gap(plain)
    assert gap(corrected) < 0.05


def test_workload_has_add_layers_and_prices(tmp_path) -> None:
    model, pixels = _trained(size=16)
    net = export_snn(model)
    doc = spike_statistics(net, [(pixels, torch.zeros(len(pixels), dtype=torch.long))])
    names = [l["name"] for l in doc["layers"]]
    assert names == ["conv1", "block1_conv1", "block1_conv2", "block1_add", "block2_conv1", "block2_conv2",
                     "block2_add", "block3_conv1", "block3_conv2", "block3_add", "pool", "fc"]
    assert names == [l["name"] for l in workload_layers(net)]
    adds = [l for l in doc["layers"] if l["type"] == "add"]
    assert [a["input"] for a in adds] == ["conv1", "block1_add", "block2_add"]
    _, rec = simulate_closed_form(net, pixels)
    assert [a["input_spikes"] for a in adds] == [n / len(pixels) for n in rec.shortcut_events]
    # the pool reads the last block's fire (its sum's spikes)
    assert doc["layers"][10]["input_spikes"] == doc["layers"][8]["output_spikes"]
    path = tmp_path / "spikes.json"
    import json

    path.write_text(json.dumps(doc))
    wl = hwmodel.load_workload(path)
    report = hwmodel.estimate(hwmodel.load_arch("paper"), wl)
    assert report.feasible and report.layer_sops["block1_add"] == doc["layers"][3]["input_spikes"]


def test_resnet14_identity_blocks_at_every_stage_convert_exactly() -> None:
    model, pixels = _trained(name="resnet14", T=4)
    net = export_snn(model)
    assert sum(op["op"] == "add" for op in net.ops) == 6
    closed, _ = simulate_closed_form(net, pixels)
    assert torch.equal(copy.deepcopy(model).double()(pixels.double() / 256), closed)
    assert torch.equal(closed, simulate_events(net, pixels)[0])


def test_trained_resnet_checkpoint_reloads_to_the_same_snn(tmp_path) -> None:
    """dse train's own path on real digits: SNN = CAT on every test image, and the checkpoint rebuilds (folded)
    into a network whose SNN gives the same outputs bit for bit."""
    from dse.train.checkpoint import load_checkpoint
    from dse.train.evaluate import snn_of
    from dse.train.pipeline import train_and_evaluate
    from dse.train.spec import TrainSpec

    spec = TrainSpec(dataset="digits", model="resnet8", width=0.25, epochs=1, finetune_epochs=1, batch_size=64,
                     max_train_images=256, validation_images=0)
    result = train_and_evaluate(spec, tmp_path / "run", progress=False, threads=1)
    assert result.metrics["ann_equal_snn_bitwise"] is True and result.agreement == 1.0
    assert result.metrics["test_images"] == 360
    model, again, data = load_checkpoint(result.checkpoint)
    assert again == spec and model.folded
    saved = SNNNetwork.load(result.snn)
    x = data.test.images[:64]
    assert torch.equal(simulate_closed_form(snn_of(model, spec, data), x)[0], simulate_closed_form(saved, x)[0])
