"""Exact quantizers: the TTFS spike-time code (CAT activation) and logarithmic weights.

Every value these functions produce is dyadic (an integer times a power of two), so sums of
products are exact in float64 and the ANN computes bit for bit what the SNN computes. See
docs/cat-snn.md for the argument.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from hwmodel import spike_code

MANTISSA_BITS = spike_code.MANTISSA_BITS  # a level or threshold that is not a power of two: its fixed-point mantissa
# A float's integer view, mantissa bits and exponent bias: spike times read off the exponent field (k = 1, floor)
FLOAT_FIELDS = {torch.float32: (torch.int32, 23, 127), torch.float64: (torch.int64, 52, 1023)}


def _fixed(x: float) -> float:
    return round(x * 2**MANTISSA_BITS) / 2**MANTISSA_BITS


@dataclass(frozen=True)
class SpikeCode:
    """TTFS code of one layer: a spike at step t of the window 0..T-1 means theta * 2^(-t/k)."""

    time_window: int = 8
    steps_per_octave: int = 1
    rounding: str = "floor"  # "floor": fire when V >= level; "round": threshold halfway (in log) below

    def __post_init__(self) -> None:
        if self.time_window < spike_code.MIN_TIME_WINDOW:
            raise ValueError(f"time_window must be >= {spike_code.MIN_TIME_WINDOW}, got {self.time_window}")
        if self.steps_per_octave < spike_code.MIN_STEPS_PER_OCTAVE:
            raise ValueError(f"steps_per_octave must be >= {spike_code.MIN_STEPS_PER_OCTAVE}, got {self.steps_per_octave}")
        if self.rounding not in spike_code.ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(spike_code.ROUNDINGS)}, got {self.rounding!r}")

    def levels(self) -> list[float]:
        """Decoded value of a spike at t = 0..T-1, for theta = 1 (exact dyadic numbers)."""
        k = self.steps_per_octave
        return [2.0 ** -(t // k) * _fixed(2.0 ** -((t % k) / k)) for t in range(self.time_window)]

    def thresholds(self) -> list[float]:
        """Firing threshold at step t, for theta = 1: the decaying threshold of the fire phase."""
        if self.rounding == "floor":
            return self.levels()
        k = self.steps_per_octave
        return [2.0 ** -(t // k) * _fixed(2.0 ** -((t % k + 0.5) / k)) for t in range(self.time_window)]

    @property
    def exact_shift(self) -> bool:
        """True when every level is a power of two: each synaptic product is a pure shift."""
        return self.steps_per_octave == 1

    @property
    def fraction_bits(self) -> int:
        """Fractional bits below theta that a decoded value needs."""
        return int(spike_code.fraction_bits(self.time_window, self.steps_per_octave, self.rounding == "floor"))


def spike_times(v: torch.Tensor, theta: torch.Tensor | float, code: SpikeCode) -> torch.Tensor:
    """First step t with v >= theta * threshold[t]; T where the neuron never fires (int64)."""
    thr = torch.tensor(code.thresholds(), dtype=v.dtype, device=v.device)
    # thresholds decrease with t: the number strictly above v/theta is the first step that v reaches.
    # v / theta is exact because theta is a power of two.
    ratio = v / theta
    return torch.searchsorted(-thr, -ratio.contiguous()).clamp_(max=code.time_window).to(torch.int64)


def per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per channel (dim 1 of ``like``), shaped to broadcast over ``like`` and in its dtype and device."""
    return values.to(like.device, like.dtype).view([1, -1] + [1] * (like.dim() - 2))


def channel_spike_times(v: torch.Tensor, theta: torch.Tensor | float, scale: torch.Tensor, code: SpikeCode) -> torch.Tensor:
    """``spike_times`` against a threshold theta * scale[c] per channel (dim 1), exactly (int32 for k = 1, floor:
    read off the float's fields; else int64).

    ``scale`` holds dyadic numbers of at most MANTISSA_BITS + 1 significant bits (``threshold_scales``), so every
    threshold theta * scale[c] * thr[t] is exact: the step found from the rounded ratio v / scale is checked
    against those exact products and moved by the one step a rounding can cost."""
    T = code.time_window
    if code.exact_shift and code.rounding == "floor" and v.dtype in FLOAT_FIELDS:
        return _exponent_field_times(v, math.frexp(float(theta))[1] - 1, T, scale)  # theta: a power of two
    phi = per_channel(scale, v) * theta
    times = spike_times(v / phi, 1.0, code)
    table = torch.tensor(code.thresholds(), dtype=v.dtype, device=v.device)
    later = (times < T) & (v < phi * table[times.clamp(max=T - 1)])  # the rounded ratio reached a level v does not
    earlier = (times > 0) & (v >= phi * table[(times - 1).clamp(min=0)])
    return times + later.to(times.dtype) - earlier.to(times.dtype)


def _exponent_field_times(v: torch.Tensor, theta_exp: int, T: int, scale: torch.Tensor) -> torch.Tensor:
    """k = 1, floor, a threshold theta * scale[c] per channel, in the float's fields: with v = m_v 2^e_v and
    scale = m_s 2^e_s (m in [1, 2)), v >= theta scale 2^-t first holds at t = theta_exp + e_s - e_v + [m_v < m_s].
    Subtracting the scale's mantissa field from v's bits borrows from v's exponent field exactly when
    m_v < m_s, so t = theta_exp + e_s - (the exponent field of bits_v - mantissa_s). Negative v (and -0) take the
    bits of +0 first: far below the window. Integer operations only, in place after one copy: exact."""
    as_int, mantissa, _ = FLOAT_FIELDS[v.dtype]
    s = scale.to(v.device, v.dtype).contiguous().view(as_int)
    times = v.contiguous().view(as_int).clamp_min(0)
    times -= per_channel(s & ((1 << mantissa) - 1), times)
    times >>= mantissa  # e_v + bias - [m_v < m_s]
    times.neg_().add_(per_channel(theta_exp + (s >> mantissa), times))  # theta_exp + e_s + bias - that
    return times.clamp_(0, T).to(torch.int32)


def threshold_scales(x: torch.Tensor) -> torch.Tensor:
    """``x`` (positive) rounded to MANTISSA_BITS + 1 significant bits: a threshold register's mantissa and exponent."""
    mant, exp = torch.frexp(x.to(torch.float64))  # mant in [0.5, 1)
    return torch.ldexp(torch.round(mant * 2.0 ** (MANTISSA_BITS + 1)), exp - (MANTISSA_BITS + 1))


def decode(times: torch.Tensor, theta: torch.Tensor | float, code: SpikeCode, dtype=torch.float64) -> torch.Tensor:
    """Value of each spike time (T = no spike = 0)."""
    table = torch.tensor(code.levels() + [0.0], dtype=dtype, device=times.device)
    return table[times] * theta


def cat_reference(v: torch.Tensor, theta: torch.Tensor | float, code: SpikeCode) -> torch.Tensor:
    """The CAT activation by definition: decode(fire(v)). Slow, exact; the tests' oracle."""
    return decode(spike_times(v, theta, code), theta, code, dtype=v.dtype)


def _cat_floor_pow2(x: torch.Tensor, theta: torch.Tensor, lowest: torch.Tensor) -> torch.Tensor:
    """k=1, floor: 2^floor(log2 min(x, theta)) by keeping only the float exponent bits; 0 below ``lowest``."""
    clipped = torch.clamp(x, max=theta)
    if x.dtype == torch.float32:  # masked in the integer domain: compiled, this loop vectorizes (~2x faster)
        return torch.where(x >= lowest, clipped.view(torch.int32) & 0x7F800000, 0).view(torch.float32)
    q = torch.ldexp(torch.full_like(clipped, 0.5), torch.frexp(clipped)[1])
    return torch.where(x >= lowest, q, torch.zeros_like(q))


def _cat_grad_x(grad: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Straight-through inside (0, theta), zero outside."""
    return torch.where((x > 0) & (x < theta), grad, torch.zeros_like(grad))


def _cat_grads(grad: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``_cat_grad_x``, and the PACT gradient for theta (the clipped share)."""
    return _cat_grad_x(grad, x, theta), torch.where(x >= theta, grad, torch.zeros_like(grad)).sum()


@functools.cache
def _fused_kernels():
    """The two elementwise passes compiled into one loop each (bit-identical to eager; compiled once per
    process, cached on disk by inductor). Worth its warm-up only for long trainings."""
    return (torch.compile(_cat_floor_pow2, dynamic=True), torch.compile(_cat_grads, dynamic=True),
            torch.compile(_cat_grad_x, dynamic=True))


def fused_kernels_available() -> bool:
    """True when torch.compile can build the fused kernels here (it needs a C++ compiler on CPU)."""
    try:
        x = torch.tensor([0.3, 2.0, 1e-3])
        one = torch.tensor(1.0)
        return torch.equal(_fused_kernels()[0](x, one, one / 128), _cat_floor_pow2(x, one, one / 128))
    except Exception:  # no compiler, unsupported platform: the eager path is exact too
        return False


class _CATFloorPow2(torch.autograd.Function):
    """CAT for k=1, floor, saving only the input: masks are recomputed in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, log2_theta: torch.Tensor, time_window: int, fused: bool):
        theta = torch.exp2(log2_theta)
        lowest = theta * 2.0 ** -(time_window - 1)
        ctx.fused = fused
        ctx.save_for_backward(x, theta)
        return (_fused_kernels()[0] if fused else _cat_floor_pow2)(x, theta, lowest)

    @staticmethod
    def backward(ctx, grad):
        x, theta = ctx.saved_tensors
        if not ctx.needs_input_grad[1]:  # theta fixed (the default): no reduction over the whole tensor
            return (_fused_kernels()[2] if ctx.fused else _cat_grad_x)(grad, x, theta), None, None, None
        grad_x, grad_theta = (_fused_kernels()[1] if ctx.fused else _cat_grads)(grad, x, theta)
        return grad_x, (grad_theta * theta * math.log(2.0)).reshape(()), None, None


class CATActivation(torch.nn.Module):
    """Clip to [0, theta], then quantize to the TTFS levels: exactly what the TTFS neuron decodes.

    theta = 2^round(s) with s learnable: always a power of two, so the exported threshold is the
    trained one. Straight-through gradient inside (0, theta), zero outside; PACT-style for s.
    """

    def __init__(self, code: SpikeCode, log2_theta: float = 0.0, fused: bool = False, learn_theta: bool = True):
        super().__init__()
        self.code = code
        self.fused = fused  # torch.compile the elementwise passes (long trainings; see benchmarks/cat_overhead.py)
        self.pretraining = False  # plain ReLU while a CAT network is pre-trained at full precision
        self.log2_theta = torch.nn.Parameter(torch.tensor(float(log2_theta)), requires_grad=learn_theta)

    def theta_exponent(self) -> int:
        return int(torch.round(self.log2_theta.detach()).item())

    def rounded_log2_theta(self) -> torch.Tensor:
        # straight-through rounding keeps s trainable while theta stays a power of two
        s = self.log2_theta
        return s + (torch.round(s) - s).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pretraining:
            return torch.relu(x)
        s = self.rounded_log2_theta().to(x.dtype)
        scale = getattr(self, "threshold_scale", None)  # batch norm folded into per-channel thresholds
        fast = self.code.exact_shift and self.code.rounding == "floor"
        if scale is not None and not (fast and self.training):
            return _CATChannels.apply(x, s, scale, self.code)  # exact: what the SNN computes
        if scale is not None:  # training: x / scale rounds (a step off at most, on a level); evaluation is exact
            x = x / per_channel(scale, x)
        if fast:
            fused = self.fused and self.training and x.dtype == torch.float32
            return _CATFloorPow2.apply(x, s, self.code.time_window, fused)
        return _CATGeneric.apply(x, s, self.code)

    def extra_repr(self) -> str:
        c = self.code
        return f"T={c.time_window}, k={c.steps_per_octave}, rounding={c.rounding}"


class _CATGeneric(torch.autograd.Function):
    """CAT for any k and rounding through the threshold table (exact comparisons)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, log2_theta: torch.Tensor, code: SpikeCode):
        theta = torch.exp2(log2_theta)
        ctx.save_for_backward(x, theta)
        return cat_reference(x, theta, code)

    @staticmethod
    def backward(ctx, grad):
        x, theta = ctx.saved_tensors
        grad_x, grad_theta = _cat_grads(grad, x, theta)
        return grad_x, (grad_theta * theta * math.log(2.0)).reshape(()), None


class _CATChannels(torch.autograd.Function):
    """CAT with a threshold theta * scale[c] per channel (a batch norm folded into thresholds): fires at the first
    step t with x >= theta * scale[c] * thr[t], decodes to theta * level[t] like every CAT neuron."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, log2_theta: torch.Tensor, scale: torch.Tensor, code: SpikeCode):
        theta = torch.exp2(log2_theta)
        ctx.save_for_backward(x, theta, scale)
        return decode(channel_spike_times(x, theta, scale, code).long(), theta, code, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, theta, scale = ctx.saved_tensors
        s = per_channel(scale, x)
        u = x / s  # straight through u = x / scale[c] inside (0, theta); theta's gradient where u clips
        grad_x = _cat_grad_x(grad / s, u, theta)
        grad_theta = torch.where(u >= theta, grad, torch.zeros_like(grad)).sum()
        return grad_x, (grad_theta * theta * math.log(2.0)).reshape(()), None, None


# --- logarithmic weights -------------------------------------------------------------------------


def max_exponent(weight_bits: int) -> int:
    """Largest exponent e of a magnitude 2^-e: codes 1..2^(n-1)-1 mean e = 0..2^(n-1)-2, code 0 = zero."""
    if weight_bits < spike_code.LOG_WEIGHT_BITS[0]:
        raise ValueError(f"weight_bits must be >= {spike_code.LOG_WEIGHT_BITS[0]} (sign + exponent), got {weight_bits}")
    return spike_code.max_exponent(weight_bits)


def weight_scale_exponent(w: torch.Tensor) -> int:
    """Per-layer power-of-two scale: the smallest 2^s >= max|w| (0 for an all-zero tensor)."""
    m = float(w.detach().abs().max()) if w.numel() else 0.0
    return math.ceil(math.log2(m)) if m > 0 else 0


def log_encode(w: torch.Tensor, weight_bits: int, scale_exp: int) -> torch.Tensor:
    """Signed codes (int16): sign * c, c = 0 for zero, else c - 1 = e with |w| ~ 2^(scale_exp - e).

    Nearest level in the linear domain: 2^E is chosen over 2^(E-1) when the mantissa is >= 0.75.
    Magnitudes below half the smallest level become zero.
    """
    emax = max_exponent(weight_bits)
    mag = torch.ldexp(w.detach().abs().to(torch.float64), torch.tensor(-scale_exp, device=w.device))
    mant, exp = torch.frexp(mag)  # mag = mant * 2^exp, mant in [0.5, 1)
    e = -(exp - 1) - (mant >= 0.75).to(exp.dtype)  # exponent of the nearest power of two, as 2^-e
    e = e.clamp(min=0)  # magnitudes above the scale (cannot happen with scale >= max|w|)
    zero = mag < 2.0 ** -(emax + 1)  # nearer to 0 than to the smallest level 2^-emax
    code = torch.where(zero, torch.zeros_like(e), e.clamp(max=emax) + 1)
    return (torch.sign(w.detach()).to(torch.int16) * code.to(torch.int16)).to(torch.int16)


def log_decode(codes: torch.Tensor, scale_exp: int, dtype=torch.float64) -> torch.Tensor:
    c = codes.to(torch.int64)
    mag = torch.where(c == 0, torch.zeros_like(c, dtype=dtype), torch.ldexp(torch.ones_like(c, dtype=dtype), scale_exp - (c.abs() - 1)))
    return torch.sign(c).to(dtype) * mag


class _LogWeightSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, weight_bits: int):
        s = weight_scale_exponent(w)
        return log_decode(log_encode(w, weight_bits, s), s, dtype=w.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def quantize_log_weights(w: torch.Tensor, weight_bits: int | None) -> torch.Tensor:
    """Log-quantized weights with a straight-through gradient; identity when weight_bits is None."""
    return w if weight_bits is None else _LogWeightSTE.apply(w, weight_bits)


def quantize_fixed(x: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Round to the fixed-point grid 2^-frac_bits (straight-through), exact in float64."""
    scale = 2.0**frac_bits
    q = torch.round(x * scale) / scale
    return x + (q - x).detach()
