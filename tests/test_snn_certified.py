"""The float32 closed form is exact: its certificate, its tighter bound and both exact fallbacks, each forced."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dse.network.quant import SpikeCode, decode
from dse.snn import closed_form
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.export import export_snn
from dse.snn.network import SNNNetwork
from test_snn import CASES, _trained


@pytest.mark.parametrize("T,k,rounding,first,pool", CASES)
def test_float32_closed_form_equals_the_float64_reference_and_the_ann(T, k, rounding, first, pool) -> None:
    model, pixels = _trained(T, k, rounding, first, pool, size=16)
    net = export_snn(model)
    fast, rec = simulate_closed_form(net, pixels, keep_times=True)
    ref, rec64 = simulate_closed_form(net, pixels, keep_times=True, certified=False)
    assert fast.dtype == torch.float64 and torch.equal(fast, ref)
    assert torch.equal(fast, copy.deepcopy(model).double()(pixels.double() / 256))
    for a, b in zip(rec.spike_times, rec64.spike_times, strict=True):
        assert torch.equal(a, b)
    assert rec.output_spikes == rec64.output_spikes and rec.input_events == rec64.input_events
    assert rec.certified > 0 and rec64.certified == 0  # float32 really ran


@pytest.fixture
def bounded(monkeypatch):
    """The error-bound path everywhere (where exact weight groups would otherwise take a layer)."""
    monkeypatch.setattr(closed_form, "_exact_groups", lambda *args: None)


@pytest.mark.parametrize("tighten,refine", [(0.0, 1.0), (1.0, 1.0), (0.0, 0.0)], ids=["tighter-bound", "per-neuron",
                                                                                   "whole-layer"])
def test_every_fallback_is_exact(monkeypatch, bounded, tighten, refine) -> None:
    """Inflate the static bound so that many neurons are uncertain, then force each way of settling them."""
    bound = closed_form._error_bound
    monkeypatch.setattr(closed_form, "_error_bound", lambda *a: None if (b := bound(*a)) is None else b * 2.0**12)
    monkeypatch.setattr(closed_form, "TIGHTEN_SHARE", tighten)
    monkeypatch.setattr(closed_form, "REFINE_SHARE", refine)
    for T, pool in ((8, "max"), (16, "avg")):
        model, pixels = _trained(T, pool=pool, size=16)
        net = export_snn(model)
        fast, rec = simulate_closed_form(net, pixels)
        assert torch.equal(fast, simulate_closed_form(net, pixels, certified=False)[0])
        assert rec.refined > 0


def _rounding_trap() -> tuple[SNNNetwork, torch.Tensor]:
    """One neuron whose exact potential 0.5 - 2^-38 lies just under its threshold 0.5, which float32 rounds
    it onto: 0.5 * 2^0 (pixel 128) - 2^-8 * 2^-30 (pixel 1, 6-bit weight). It fires at t = 1, not t = 0."""
    conv = {"op": "conv", "codes": torch.tensor([1, -31], dtype=torch.int16).view(1, 2, 1, 1), "scale_exp": 0,
            "lsb": -38, "bias": torch.zeros(1, dtype=torch.int64), "stride": 1, "padding": 0}
    out = {"op": "linear", "codes": torch.tensor([[1]], dtype=torch.int16), "scale_exp": 0, "lsb": -38,
           "bias": torch.zeros(1, dtype=torch.int64)}
    net = SNNNetwork(SpikeCode(8), 6, (2, 1, 1), [conv, {"op": "fire", "theta_exp": -1}, {"op": "flatten"}, out])
    return net, torch.tensor([128, 1], dtype=torch.uint8).view(1, 2, 1, 1)


def test_a_potential_float32_rounds_onto_a_threshold_is_caught(monkeypatch) -> None:
    net, pixels = _rounding_trap()
    exact, _ = simulate_closed_form(net, pixels, certified=False)
    assert exact.item() == 0.25  # fired at t = 1: theta / 2
    assert torch.equal(simulate_events(net, pixels)[0], exact)
    grouped, rec = simulate_closed_form(net, pixels)  # weights 2^0 and 2^-30 in separate exact groups
    # each group's sum is exact; their float32 sum rounds onto the threshold, which marks it unsure: added in float64
    assert torch.equal(grouped, exact) and rec.refined == 1 and rec.certified == 1
    monkeypatch.setattr(closed_form, "_exact_groups", lambda *args: None)
    fast, rec = simulate_closed_form(net, pixels)
    assert torch.equal(fast, exact) and rec.refined == 1
    monkeypatch.setattr(closed_form, "_error_bound", lambda op, w, bias, magnitude: torch.zeros(len(w)))
    naive, _ = simulate_closed_form(net, pixels)  # float32 without the certificate
    assert naive.item() == 0.5  # the rounding made it fire a step early


def test_exact_weight_groups_cost_at_most_two_float32_passes_and_leave_nothing_uncertain() -> None:
    """T = 4 and 8 (k = 1): every hidden layer splits its log weights into at most two exponent groups whose
    float32 sums are exact; no neuron is left for float64 (work, not time)."""
    for T in (4, 8):
        model, pixels = _trained(T, size=16)
        net = export_snn(model)
        _, rec = simulate_closed_form(net, pixels)
        ann = simulate_closed_form(net, pixels, certified=False)[1].work
        output = len(pixels) * net.ops[-1]["codes"].numel()
        hidden = ann["float64 MACs"] - output
        assert hidden <= rec.work["float32 MACs"] <= closed_form.MAX_GROUPS * hidden
        assert rec.work["float64 MACs"] == output and rec.refined == 0 and rec.certified > 0


def test_the_certified_path_costs_one_float32_pass_plus_the_undecided_neurons(bounded) -> None:
    """Work, not time (load does not change it): the hidden layers' float32 pass, a bound over each layer's
    inputs (not a second pass over its weights), and a float64 patch times every channel's weights per
    position holding a neuron left undecided."""
    for T, pool in ((8, "max"), (16, "avg")):
        model, pixels = _trained(T, pool=pool, size=16)
        net = export_snn(model)
        _, rec = simulate_closed_form(net, pixels)
        ann = simulate_closed_form(net, pixels, certified=False)[1].work
        assert set(ann) == {"float64 MACs"}  # the reference: every layer once, in float64
        output = len(pixels) * net.ops[-1]["codes"].numel()  # the output layer, float64 in both
        hidden = ann["float64 MACs"] - output
        assert hidden <= rec.work["float32 MACs"] < 1.5 * hidden  # a second full pass would make it 2x
        position = max(op["codes"].numel() for op in net.ops if op["op"] in ("conv", "linear"))  # channels x fan-in
        assert output <= rec.work["float64 MACs"] <= output + rec.refined * position
        assert rec.refined < 0.01 * rec.certified


@pytest.mark.parametrize("k", [2, 3])
def test_the_closed_forms_max_pool_and_decode_equal_torchs_and_quants(k) -> None:
    g = torch.Generator().manual_seed(k)
    for shape in [(2, 3, 8, 8), (1, 2, 7, 9), (3, 1, 5, 4)]:
        x = torch.randn(shape, generator=g)
        x[0, 0, 0, 0] = -0.0
        assert torch.equal(closed_form._max_pool(x, k), F.max_pool2d(x, k))
    for code in (SpikeCode(8), SpikeCode(16, 2, "round")):
        times = torch.randint(0, code.time_window + 1, (4, 5, 6), generator=g, dtype=torch.int32)
        for dtype in (torch.float32, torch.float64):
            assert torch.equal(closed_form._decode(times, 2, code, dtype), decode(times.long(), 4.0, code, dtype))
