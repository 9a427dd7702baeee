"""Invariants of the TTFS code and the log-weight codec (exact equalities throughout)."""

from __future__ import annotations

import itertools

import pytest
import torch

from dse.network.quant import (CATActivation, SpikeCode, cat_reference, decode, fused_kernels_available, log_decode,
                               log_encode, max_exponent, quantize_log_weights, spike_times, weight_scale_exponent)

CODES = [SpikeCode(T, k, r) for T, k, r in itertools.product((1, 4, 8, 16), (1, 2), ("floor", "round"))]


def _values(theta: float, code: SpikeCode) -> torch.Tensor:
    """Random potentials plus every level and threshold exactly, their neighbours, zero and negatives."""
    g = torch.Generator().manual_seed(code.time_window * 7 + code.steps_per_octave)
    rand = (torch.rand(20000, generator=g, dtype=torch.float64) * 2.5 - 0.5) * theta
    exact = torch.tensor(code.levels() + code.thresholds(), dtype=torch.float64) * theta
    near = torch.cat([torch.nextafter(exact, exact + 1), torch.nextafter(exact, exact - 1)])
    return torch.cat([rand, exact, near, torch.tensor([0.0, -0.0, -theta, 2 * theta, theta])])


@pytest.mark.parametrize("code", CODES, ids=str)
@pytest.mark.parametrize("log2_theta", [0, -3, 2])
def test_cat_equals_decoded_spike(code: SpikeCode, log2_theta: int) -> None:
    theta = 2.0**log2_theta
    act = CATActivation(code, log2_theta)
    for dtype in (torch.float64, torch.float32):
        v = _values(theta, code).to(dtype)
        y = act(v)
        times = spike_times(v, theta, code)
        assert torch.equal(y, decode(times, theta, code, dtype=dtype)), dtype
        assert torch.equal(y, cat_reference(v, theta, code))
        allowed = torch.tensor([0.0] + code.levels(), dtype=dtype) * theta
        assert torch.isin(y, allowed).all()
        assert torch.equal(act(y), y)  # idempotent
        order = torch.argsort(v)
        assert (torch.diff(y[order]) >= 0).all()  # monotone
        assert (times[v < theta * code.thresholds()[-1]] == code.time_window).all()  # below the last threshold: silent
        assert (times[v >= theta] == 0).all()  # at or above theta: fires at t = 0


def test_fast_paths_match_the_reference_exactly() -> None:
    """The bit-mask path, and its torch.compile'd twin used for long trainings, in values and gradients."""
    code = SpikeCode(8, 1, "floor")
    v = _values(1.0, code).float()
    outs = []
    for fused in (False, True):
        act = CATActivation(code, fused=fused)
        x = v.clone().requires_grad_(True)
        y = act(x)
        (y * torch.linspace(-1, 1, len(y))).sum().backward()
        outs.append((y.detach(), x.grad, act.log2_theta.grad))
    assert torch.equal(outs[0][0], cat_reference(v, 1.0, code))
    if fused_kernels_available():
        (y0, gx0, gt0), (y1, gx1, gt1) = outs
        assert torch.equal(y0, y1) and torch.equal(gx0, gx1)
        assert torch.allclose(gt0, gt1, rtol=1e-5)  # a float sum: the compiled reduction adds in another order
    # theta fixed (the default recipe): the backward computes the input's gradient only
    for fused in (False, True) if fused_kernels_available() else (False,):
        act = CATActivation(code, fused=fused, learn_theta=False)
        x = v.clone().requires_grad_(True)
        (act(x) * torch.linspace(-1, 1, len(v))).sum().backward()
        assert act.log2_theta.grad is None and torch.equal(x.grad, outs[0][1])


def test_cat_gradients_straight_through_inside_zero_outside() -> None:
    act = CATActivation(SpikeCode(4), 0)
    v = torch.tensor([-0.5, 0.0, 0.3, 0.99, 1.0, 3.0], requires_grad=True)
    act(v).sum().backward()
    assert v.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert act.log2_theta.grad is not None and torch.isfinite(act.log2_theta.grad)


def test_theta_is_always_a_power_of_two() -> None:
    act = CATActivation(SpikeCode(8), 0.4)
    y = act(torch.tensor([5.0]))
    assert y.item() == 1.0 and act.theta_exponent() == 0


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_log_weight_codec_round_trips(bits: int) -> None:
    w = torch.randn(4000, generator=torch.Generator().manual_seed(bits), dtype=torch.float64) * 0.1
    s = weight_scale_exponent(w)
    codes = log_encode(w, bits, s)
    assert codes.abs().max() <= 2 ** (bits - 1) - 1
    q = log_decode(codes, s)
    assert torch.equal(log_encode(q, bits, s), codes)  # decode -> encode is the identity
    assert torch.equal(log_decode(log_encode(q, bits, s), s), q)
    nonzero = q[q != 0].abs()
    exps = torch.log2(nonzero)
    assert torch.equal(exps, torch.round(exps))  # every magnitude is a power of two
    assert nonzero.max() <= 2.0**s and nonzero.min() >= 2.0 ** (s - max_exponent(bits))
    assert torch.equal(torch.sign(q[q != 0]), torch.sign(w[q != 0]))


def test_log_weights_pick_the_nearest_power_of_two() -> None:
    w = torch.tensor([1.0, 0.75, 0.74, 0.5, 0.376, 0.374, -0.3, 0.0], dtype=torch.float64)
    q = quantize_log_weights(w, 5)
    assert q.tolist() == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, -0.25, 0.0]


def test_smallest_weights_become_zero_at_two_bits() -> None:
    w = torch.tensor([1.0, -0.9, 0.6, 0.4, 0.0], dtype=torch.float64)
    assert quantize_log_weights(w, 2).tolist() == [1.0, -1.0, 1.0, 0.0, 0.0]  # ternary: {-s, 0, +s}


def test_weight_bits_below_two_rejected() -> None:
    with pytest.raises(ValueError, match="weight_bits"):
        max_exponent(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k,rounding", [(1, "floor"), (2, "floor"), (1, "round")])
def test_per_channel_spike_times_equal_the_comparisons_they_stand_for(dtype, k, rounding) -> None:
    """``channel_spike_times``: the first step with v >= theta * scale[c] * thr[t], by brute force, including
    potentials exactly on a threshold and one float step below it (the cases a rounded ratio gets wrong)."""
    from dse.network.quant import channel_spike_times, threshold_scales

    code = SpikeCode(8, k, rounding)
    g = torch.Generator().manual_seed(0)
    scale = threshold_scales(torch.rand(6, generator=g, dtype=torch.float64) * 4 + 0.01)
    v = (torch.randn(40, 6, 5, 5, generator=g, dtype=torch.float64) * 3).to(dtype)
    phi = scale.view(1, -1, 1, 1) * 4.0  # theta = 4
    thr = torch.tensor(code.thresholds(), dtype=torch.float64)
    for t in range(8):  # on a threshold, and just below it
        v[t, :, 0, 0] = (phi[0, :, 0, 0] * thr[t]).to(dtype)
        v[t, :, 0, 1] = torch.nextafter(v[t, :, 0, 0], torch.zeros((), dtype=dtype))
    expected = torch.full(v.shape, 8, dtype=torch.int64)
    for t in reversed(range(8)):
        expected = torch.where(v.double() >= phi * thr[t], torch.tensor(t), expected)
    assert torch.equal(channel_spike_times(v, 4.0, scale, code).long(), expected)
    assert 0 < int((expected < 8).sum()) < expected.numel()
