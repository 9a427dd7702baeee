"""The exported SNN computes exactly what the CAT network computes; both simulators agree bit for bit."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

from dse.network.fold import fold_batchnorm
from dse.network.registry import build_model
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.export import convert_relu, export_snn
from dse.snn.network import SNNNetwork
from dse.snn.statistics import workload_layers, spike_statistics
from dse.util.errors import UserError
from networks import trained_briefly

# every option on, against the default: T x k x rounding x first layer x pooling, 2 x 2 x 2 x 2 x 2 (+ T=16)
CASES = list(itertools.product((4, 8), (1, 2), ("floor", "round"), ("pixels", "ttfs"), ("max", "avg"))) + [
    (16, 1, "floor", "pixels", "max"), (16, 1, "round", "ttfs", "avg")]


def _trained(T=8, k=1, rounding="floor", first="pixels", pool="max", bits=5, seed=0, size=8, into="weights"):
    """A tiny CAT network after a few real SGD steps, folded and fine-tuned: non-trivial weights and thetas."""
    torch.manual_seed(seed)
    m = build_model("tiny_vgg", 10, 3, size, width=0.5, weight_bits=bits, time_window=T, steps_per_octave=k,
                    rounding=rounding, first_layer=first, pool=pool)

    def fold(model, pixels):
        _spread_batchnorms(model)
        fold_batchnorm(model, into=into)

    return trained_briefly(m, fold, seed, size)


def _spread_batchnorms(m) -> None:
    """Batch norms with scales of both signs over two octaves: non-trivial threshold scales and sign flips."""
    g = torch.Generator().manual_seed(1)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            sign = torch.where(torch.rand(b.weight.shape, generator=g) < 0.2, -1.0, 1.0)
            b.weight.data = sign * (0.5 + 1.5 * torch.rand(b.weight.shape, generator=g))
            b.running_var.mul_(0.5 + torch.rand(b.running_var.shape, generator=g))


@pytest.mark.parametrize("into", ["weights", "thresholds"])
@pytest.mark.parametrize("T,k,rounding,first,pool", CASES)
def test_ann_closed_form_and_events_agree_bit_exactly(T, k, rounding, first, pool, into) -> None:
    model, pixels = _trained(T, k, rounding, first, pool, into=into)
    assert any("threshold_scale" in op for op in export_snn(model).ops) == (into == "thresholds")
    ann = copy.deepcopy(model).double()(pixels.double() / 256)
    net = export_snn(model)
    closed, rec_c = simulate_closed_form(net, pixels, keep_times=True)
    events, rec_e = simulate_events(net, pixels, keep_times=True)
    assert torch.equal(ann, closed)
    assert torch.equal(closed, events)
    assert rec_e.overflows == 0
    for a, b in zip(rec_c.spike_times, rec_e.spike_times, strict=True):
        assert torch.equal(a, b)  # every spike at the same step
    assert rec_c.input_events == rec_e.input_events and rec_c.output_spikes == rec_e.output_spikes
    assert sum(rec_c.output_spikes) > 0  # the test exercises real spiking


def test_each_neuron_fires_at_most_once_and_within_the_window() -> None:
    model, pixels = _trained(T=8)
    _, rec = simulate_events(export_snn(model), pixels, keep_times=True)
    for times in rec.spike_times:
        assert times.min() >= 0 and times.max() <= 8  # one time per neuron; 8 = silent
    for hist, n in zip(rec.histograms, rec.output_spikes):
        assert float(hist.sum()) == n


def test_max_pool_forwards_the_earliest_spike() -> None:
    model, pixels = _trained(T=8, pool="max")
    net = export_snn(model)
    _, rec = simulate_events(net, pixels, keep_times=True)
    times = rec.spike_times[0]  # after conv1, before the first max-pool
    earliest = -F.max_pool2d(-times.double(), 2)
    pooled_ops = [i for i, op in enumerate(net.ops) if op["op"] == "maxpool"]
    assert pooled_ops
    # decoded values: max of decoded spikes == decoded earliest spike (decode is decreasing in t)
    from dse.network.quant import decode

    theta = 2.0 ** net.ops[1]["theta_exp"]
    assert torch.equal(F.max_pool2d(decode(times, theta, net.code), 2), decode(earliest.long(), theta, net.code))


def test_narrow_accumulator_overflows_and_is_reported() -> None:
    model, pixels = _trained(T=8)
    net = export_snn(model)
    exact, _ = simulate_closed_form(net, pixels)
    narrow, rec = simulate_events(net, pixels, accumulator_bits=8)
    assert rec.overflows > 0
    assert not torch.equal(exact, narrow)


def test_export_requires_folded_batchnorm() -> None:
    m = build_model("tiny_vgg", 10, 3, 16)
    with pytest.raises(UserError, match="fold"):
        export_snn(m)


@pytest.mark.parametrize("into", ["weights", "thresholds"])
def test_snn_file_round_trips_with_weights_only(tmp_path, into) -> None:
    model, pixels = _trained(into=into)
    net = export_snn(model)
    net.save(tmp_path / "snn.pt")
    state = torch.load(tmp_path / "snn.pt", weights_only=True)
    again = SNNNetwork.from_state(state)
    assert torch.equal(simulate_closed_form(net, pixels)[0], simulate_closed_form(again, pixels)[0])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt"):
        SNNNetwork.load(tmp_path / "bad.pt")


def test_bn_fold_is_exact_in_float64() -> None:
    torch.manual_seed(1)
    m = build_model("tiny_vgg", 10, 3, 16, activation="relu", weight_bits=None)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.running_mean.uniform_(-1, 1)
            b.running_var.uniform_(0.5, 2)
            b.weight.data.uniform_(0.5, 1.5)
    m = m.double().eval()
    x = torch.rand(8, 3, 16, 16, dtype=torch.float64)
    before = m(x)
    after = fold_batchnorm(m)(x)
    assert torch.allclose(before, after, rtol=1e-12, atol=1e-12)


def test_naive_relu_conversion_runs_and_loses_accuracy_information() -> None:
    torch.manual_seed(0)
    m = build_model("tiny_vgg", 10, 3, 16, activation="relu", weight_bits=None).eval()
    pixels = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    net = convert_relu(m, pixels.float() / 256, weight_bits=5, time_window=8)
    a, _ = simulate_closed_form(net, pixels)
    b, _ = simulate_events(net, pixels)
    assert torch.equal(a, b)  # the converted network is still an exact SNN; only its ANN differs


def test_spike_statistics_document_matches_the_schema_and_the_simulator() -> None:
    model, pixels = _trained(T=8)
    net = export_snn(model)
    labels = torch.zeros(len(pixels), dtype=torch.int64)
    doc = spike_statistics(net, [(pixels[:20], labels[:20]), (pixels[20:], labels[20:])])
    _, rec = simulate_closed_form(net, pixels)
    assert doc["schema"] == "snn-workload/1" and doc["snn"]["images"] == len(pixels)
    convs = [l for l in doc["layers"] if l["type"] == "conv"]
    assert [l["output_spikes"] * len(pixels) for l in convs] == pytest.approx(rec.output_spikes, rel=1e-12)
    assert doc["layers"][0]["input_spikes"] == 3 * 8 * 8  # pixel mode: every pixel is an input
    assert [l["name"] for l in doc["layers"]] == [l["name"] for l in workload_layers(net)]
    shapes = [tuple(l["in_shape"]) for l in doc["layers"]]
    assert shapes[0] == (3, 8, 8)


@pytest.mark.parametrize("first", ["pixels", "ttfs"])
def test_corrected_fold_restores_each_channels_mean_potential_and_stays_exact(first) -> None:
    """Folding re-quantizes w * gamma / sigma, which moves the potentials; the corrected fold shifts each
    channel's bias so that its mean potential on the calibration images is the unfolded network's again
    (to the accumulator grid the bias lands on), layer after layer. The export is still exact."""
    torch.manual_seed(0)
    m = build_model("tiny_vgg", 10, 3, 16, width=0.5, first_layer=first)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.running_mean.uniform_(-0.2, 0.2)
            b.running_var.uniform_(0.05, 0.5)
            b.weight.data.uniform_(0.3, 3.0)
    m.eval()
    pixels = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    x = pixels.float() / 256
    plain, corrected = fold_batchnorm(copy.deepcopy(m)), fold_batchnorm(copy.deepcopy(m), calibration=x)

    @torch.no_grad()
    def potentials(net):  # per conv layer: (mean potential per channel, the accumulator LSB its bias sits on)
        h, grid = (net.input_code(x), -net.code.fraction_bits) if net.input_code is not None else (x, -8)
        out = []
        for block in net.blocks:
            if isinstance(block, torch.nn.ModuleDict):
                v = block["bn"](block["conv"](h, grid))
                out.append((v.mean(dim=(0, 2, 3)), block["conv"].accumulator_lsb(grid)))
                h, grid = block["act"](v), block["act"].theta_exponent() - net.code.fraction_bits
            else:
                h = block(h)
        return out

    reference = potentials(m)
    plain_gap = max(float((p - r).abs().max()) for (p, _), (r, _) in zip(potentials(plain), reference))
    for (c, lsb), (r, _) in zip(potentials(corrected), reference, strict=True):
        assert float((c - r).abs().max()) <= 2.0 ** (lsb - 1) + 1e-6  # the bias rounds to the accumulator grid
    assert plain_gap > 10 * 2.0 ** max(lsb for _, lsb in reference)  # the uncorrected fold did move them
    net = export_snn(corrected)
    assert torch.equal(copy.deepcopy(corrected).double()(pixels.double() / 256), simulate_closed_form(net, pixels)[0])


def test_fold_into_thresholds_keeps_what_each_neuron_computes() -> None:
    """Folding a batch norm into the weights re-quantizes w * gamma / sigma (each channel's gain moves by up to
    2^(+-1/2)); into per-channel thresholds the weights stay as trained and only the threshold rounds (9
    significant bits). Layer by layer, on the unfolded network's own inputs, nearly every neuron fires at the
    step it fired unfolded, and a negative gamma (a sign flip of the channel's weights) changes nothing."""
    torch.manual_seed(0)
    m = build_model("small_vgg", 10, 3, 16, width=0.5)
    _spread_batchnorms(m)
    m.eval()
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8).double() / 256
    unfolded = copy.deepcopy(m).double()
    agree = {}
    for into in ("weights", "thresholds"):
        folded = fold_batchnorm(copy.deepcopy(m), into=into).double()
        same = total = 0
        h, grid = x, -8
        with torch.no_grad():
            for ref, block in zip(unfolded.blocks, folded.blocks):
                if not isinstance(block, torch.nn.ModuleDict):
                    h = ref(h)
                    continue
                expected = ref["act"](ref["bn"](ref["conv"](h, grid)))
                got = block["act"](block["conv"](h, grid))
                same, total = same + int((expected == got).sum()), total + got.numel()
                h, grid = expected, ref["act"].theta_exponent() - m.code.fraction_bits
        agree[into] = same / total
    assert any(float(b.weight.detach().min()) < 0 for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    assert agree["thresholds"] > 0.99 > agree["weights"] + 0.05


def test_a_network_folded_into_thresholds_is_priced_with_its_threshold_registers() -> None:
    """The workload says which convs fire against per-channel threshold registers, and hwmodel charges them."""
    import hwmodel

    model, pixels = _trained(into="thresholds")
    net = export_snn(model)
    labels = torch.zeros(len(pixels), dtype=torch.int64)
    doc = spike_statistics(net, [(pixels, labels)])
    convs = [layer for layer in doc["layers"] if layer["type"] == "conv"]
    assert convs and all(layer.get("channel_thresholds") is True for layer in convs)
    plain = copy.deepcopy(doc)
    for layer in plain["layers"]:
        layer.pop("channel_thresholds", None)
    arch = hwmodel.load_arch("paper")
    fire = [hwmodel.estimate(arch, hwmodel.load_workload(d)).energy_by_term["fire"] for d in (doc, plain)]
    assert fire[0] > fire[1] > 0
