"""The closed-form simulator: layer by layer, each fire phase in closed form (first threshold crossing by table
search).

Exact because every value is dyadic: hidden layers in float32 with a certified error bound (float64 only for
the few neurons the bound cannot decide), the output in float64. It agrees bit for bit with the event-driven
simulator (``dse.snn.events``) and with the float64 CAT network.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.quant import FLOAT_FIELDS as _FLOAT_FIELDS
from dse.network.quant import channel_spike_times, log_decode, max_exponent, per_channel
from dse.network.resnet import shortcut
from dse.snn.network import SNNNetwork, apply_weights, reread
from dse.snn.record import SpikeRecord, record_fire

FLOAT32_BITS = 24  # significand bits of float32


def _weight(op: dict) -> torch.Tensor:
    return log_decode(op["codes"], op["scale_exp"])


def simulate_closed_form(net: SNNNetwork, pixels: torch.Tensor, keep_times: bool = False,
                         certified: bool = True) -> tuple[torch.Tensor, SpikeRecord]:
    """``pixels``: uint8 (or integer-valued) N,C,H,W. Returns the last layer's membrane potentials (float64).

    ``certified``: hidden layers run in float32 (the activity is exact there: dyadic values of at most 24
    significant bits) with a per-channel bound on the rounding error of the potentials; a neuron fires at the
    same step for every potential within the bound of the float32 one, or its potential is recomputed exactly
    in float64 (``record.refined`` counts them). The output layer runs in float64. ``False``: float64 throughout,
    exact because every partial sum fits 52 bits (``dse.snn.export.EXACT_BITS``): the reference.
    """
    code, T = net.code, net.code.time_window
    record = SpikeRecord(images=len(pixels))
    last = max(i for i, op in enumerate(net.ops) if op["op"] in ("conv", "linear"))
    kept = reread(net)  # outputs a later op reads again (a residual branch): kept until then
    exact = {j for op in net.ops if op["op"] == "add" for j in op["inputs"]}  # potentials an add sums
    x = pixels.to(torch.float32 if certified else torch.float64) / 2**PIXEL_FRACTION_BITS
    bits, magnitude = PIXEL_FRACTION_BITS, 1.0  # significant bits of the activity; a bound on its |value|
    span = PIXEL_FRACTION_BITS  # log2(bound on |activity| / its least significant bit)
    events = float(x.numel())  # layer 1 in pixel mode takes every pixel as a multi-bit input
    error = layer = None  # per-channel bound on |float32 potential - exact potential|; the op and input behind it
    pair = None  # two exact float32 group sums whose rounded float32 sum is x
    outputs: dict[int, tuple] = {}
    for i, op in enumerate(net.ops):
        kind = op["op"]
        if "input" in op:  # a branch: this op reads an earlier op's output, not the previous one's
            x, events, bits, magnitude, span = outputs[op["input"]]
            error = layer = None
        if kind in ("conv", "linear"):
            record.input_events.append(events)
            w = _weight(op).to(x.device)
            bias = torch.ldexp(op["bias"].to(x.device, torch.float64), torch.tensor(op["lsb"], device=x.device))
            shape = (1, -1, 1, 1) if kind == "conv" else (1, -1)
            hidden32 = i != last and x.dtype == torch.float32
            groups = _exact_groups(op, span, net.weight_bits) if hidden32 else None
            # a potential that feeds an add stays exact: the exact groups or float64, never the error-bound path
            error = (_error_bound(op, w, bias, magnitude) if hidden32 and groups is None and i not in exact
                     else None)
            pair = None
            if groups is not None:  # built on the CPU from the op's codes: moved to the activity's device
                masks, biases, separate = ([t.to(x.device) for t in g] if isinstance(g, list) else
                                           None if g is None else g.to(x.device) for g in groups)
                with _ieee_float32(x.device):
                    parts = apply_weights(op, x, torch.cat([w * m for m in masks]).float(), torch.cat(biases))
                if len(masks) == 1 and separate is None:
                    x = parts  # exact in float32: the bias is in the group's sums
                else:  # two exact float32 terms: their float32 sum rounds once (settled at the fire op)
                    high, low = (parts, separate.view(shape).expand_as(parts)) if separate is not None \
                        else parts.chunk(2, dim=1)
                    x = high.double() + low if i in exact else high + low
                    pair = None if i in exact else (high, low)
                error = layer = None
                record.certified += x.numel()
                record.work["float32 MACs"] += parts.numel() * w[0].numel()
            elif error is not None:
                with _ieee_float32(x.device):
                    v = apply_weights(op, x, w.float()) + bias.float().view(shape)
                error = error.view(shape).to(torch.float32)
                layer, x = (op, x, w, bias), v
                record.work["float32 MACs"] += x.numel() * w[0].numel()
            else:  # the output layer (its potentials are the result), or float32 cannot hold this layer
                x = apply_weights(op, x.double(), w) + bias.view(shape)
                error = layer = None
                record.work["float64 MACs"] += x.numel() * w[0].numel()
        elif kind == "fire":
            theta_exp, scale = op["theta_exp"], op.get("threshold_scale")
            scale = None if scale is None else scale.to(x.device)
            times = (_times(x, theta_exp, code, scale) if error is None
                     else _certified_times(x, error, theta_exp, code, layer, record, scale))
            if pair is not None:
                _settle_rounded_sums(times, x, pair, theta_exp, code, scale, record)
                pair = None
            events = record_fire(record, times, T, keep_times)
            bits, magnitude = code.fraction_bits + 1, 2.0**theta_exp  # levels: theta down to 2^-fraction_bits theta
            span = code.fraction_bits
            exact32 = certified and bits <= FLOAT32_BITS
            x = _decode(times, theta_exp, code, torch.float32 if exact32 else torch.float64)
            error = layer = None
        elif kind == "maxpool":  # only the earliest spike of each window passes
            x = _max_pool(x, op["kernel"])
            events = float((x != 0).sum())
        elif kind == "avgpool":  # every spike passes, its weight shifted by log2(kernel^2)
            bits += 2 * (op["kernel"] - 1).bit_length()  # the mean of kernel^2 values: more fractional bits
            span += 2 * (op["kernel"] - 1).bit_length()
            x = F.avg_pool2d(x, op["kernel"]) if bits <= FLOAT32_BITS else F.avg_pool2d(x.double(), op["kernel"])
        elif kind == "flatten":
            x = torch.flatten(x, 1)
        elif kind == "shortcut":  # spikes that skip the block: a selection, exact
            x = shortcut(x, op["channels"], op["stride"])
            events = float((x != 0).sum())
        elif kind == "add":  # both terms are exact (float64 potentials, decoded spikes): so is the sum
            a, b = (outputs[j] for j in op["inputs"])
            record.shortcut_events.append(b[1])
            x = a[0].double() + b[0].double()
            error = layer = None
        if i in kept:
            outputs[i] = (x, events, bits, magnitude, span)
    return x, record


def _exact_groups(op: dict, span: int, weight_bits: int) -> tuple[list, list, torch.Tensor | None] | None:
    """Weight masks (one per group of adjacent exponents) and bias parts (float32, one per group) whose float32
    sums are exact, and the bias as a term of its own where it fits no group; None if none exist.

    Every product of an activity (a multiple of its LSB, at most 2^span LSBs) and a log weight 2^(s - e) of a
    group whose smallest weight is 2^(s - e1) is an integer number of units LSB * 2^(s - e1), and so is every
    partial sum, which is at most 2^span * sum_i 2^(e1 - e_i) units over a channel's weights in the group. A float32
    sum in any order (BLAS blocks, FMA) of integers that stays within 2^24 is exact, so each group's potential is
    exact. The bias (an integer of accumulator LSBs) is split between the groups on their units: the first takes
    its multiple of the first group's unit, the last the rest (on its own unit, or a finer one that divides it),
    each counted in its group's bound; where that breaks a single group's bound, the bias is its own exact float32
    term (at most 24 significant bits). Groups are grown greedily from the largest weights while every channel's
    bound holds. With spike activity (span = T - 1 for k = 1) and 5-bit weights this takes one group at T = 4
    and two at T = 8: the layer costs one float32 convolution with 1-2x the channels, and nothing is uncertain."""
    codes = op["codes"].flatten(1).to(torch.int64)
    exponent = codes.abs() - 1  # -1: a zero weight
    emax = int(exponent.max())
    if emax < 0 or op["lsb"] < -100:  # no weights; or units that float32 cannot hold (underflow)
        return None
    channels = len(exponent)
    index = (torch.arange(channels).view(-1, 1) * (emax + 2) + exponent + 1).flatten()  # bin 0: zero weights
    counts = torch.bincount(index, minlength=channels * (emax + 2)).view(channels, -1)[:, 1:].to(torch.float64)
    budget = 2.0 ** (FLOAT32_BITS - span)
    ranges, first, total = [], 0, counts[:, 0].clone()
    for e in range(1, emax + 2):
        grown = 2 * total + counts[:, e] if e <= emax else None
        if grown is None or float(grown.max()) > budget:  # close the group [first, e - 1]
            ranges.append((first, e - 1, total))
            first, total = e, counts[:, e] if e <= emax else None
        else:
            total = grown
    if len(ranges) > MAX_GROUPS:
        return None
    masks = [((exponent >= lo) & (exponent <= hi)).view(op["codes"].shape) for lo, hi, _ in ranges]
    bias = op["bias"].to(torch.int64)
    biases, rest = [], bias
    for g, (lo, hi, total) in enumerate(ranges):
        unit = max_exponent(weight_bits) - hi  # the group's unit, in accumulator LSBs: 2^unit
        part = rest if g == len(ranges) - 1 else (rest >> unit) << unit
        rest = rest - part
        nonzero = part[part != 0]
        while unit > 0 and bool((nonzero % (1 << unit) != 0).any()):  # the rest needs a finer unit
            total, unit = total * 2, unit - 1
        if float((total * 2.0**span + part.abs().double() / 2.0**unit).max()) > 2.0**FLOAT32_BITS:
            break
        biases.append(_lsbs(part, op["lsb"]))
    else:
        return masks, biases, None
    # the bias does not fit inside the groups: one group without it, and the bias as the second exact term
    separate = _lsbs(bias, op["lsb"])
    if len(ranges) > 1 or not torch.equal(separate.double(), _lsbs(bias, op["lsb"], torch.float64)):
        return None
    return masks, [torch.zeros_like(separate)], separate


def _lsbs(n: torch.Tensor, lsb: int, dtype=torch.float32) -> torch.Tensor:
    """Integers of accumulator LSBs as values (float32 rounds where they have more than 24 significant bits)."""
    return torch.ldexp(n.double(), torch.tensor(lsb)).to(dtype)


def _settle_rounded_sums(times: torch.Tensor, s: torch.Tensor, pair: tuple, theta_exp: int, code,
                         scale: torch.Tensor | None, record: SpikeRecord) -> None:
    """``times`` (of ``s``, the float32 sum of the exact ``pair``) made exact, in place. Rounding to nearest can
    move a sum across a threshold (float32-exact: at most 18 significant bits) only onto it: a threshold between
    the exact sum and ``s`` would be nearer than ``s``. So only a sum equal to its step's threshold is unsure; those
    few are added exactly in float64."""
    T = code.time_window
    if code.exact_shift and code.rounding == "floor" and s.dtype in _FLOAT_FIELDS:
        # thresholds theta scale[c] 2^-t: candidates share the scale's mantissa field (0 without a scale)
        as_int, mantissa, _ = _FLOAT_FIELDS[s.dtype]
        field = (1 << mantissa) - 1
        target = 0 if scale is None else per_channel(scale.to(s.dtype).view(as_int) & field, s.view(as_int))
        at = ((s.view(as_int) & field) == target).nonzero(as_tuple=True)
        silent = times[at] == T  # few: filtered here rather than with one more pass over the layer
        at = tuple(a[~silent] for a in at)
    else:
        at = (times < T).nonzero(as_tuple=True)
    if not len(at[0]):
        return
    table = torch.tensor(code.thresholds(), dtype=s.dtype, device=s.device) * 2.0**theta_exp
    level = table[times[at].long()]
    if scale is not None:
        level = level * scale.to(s.device, s.dtype)[at[1]]
    on = s[at] == level
    at = tuple(a[on] for a in at)
    if not len(at[0]):
        return
    exact = pair[0][at].double() + pair[1][at].double()
    times[at] = _times(exact, theta_exp, code, None if scale is None else scale.to(s.device)[at[1]])
    record.refined += len(at[0])


MAX_GROUPS = 2  # beyond this, one float32 pass with an error bound (and a few neurons in float64) is cheaper
TIGHTEN_SHARE = 0.002  # above this share of uncertain neurons, a per-neuron bound is computed (one more pass)
REFINE_SHARE = 0.05  # above this share still uncertain, the layer is recomputed whole in float64


def _error_bound(op: dict, w: torch.Tensor, bias: torch.Tensor, magnitude: float) -> torch.Tensor | None:
    """Per output channel, a bound on |float32 potential - exact potential| for inputs of |x| <= ``magnitude``;
    None where float32 cannot be bounded so (a product could underflow, a sum overflow, n u reach 1 %).

    A float32 sum of n products (in any order, blocked or fused, as BLAS and oneDNN do) errs by at most
    gamma_n * sum |x w|, gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability of Numerical
    Algorithms, 2nd ed., eq. 3.5); adding the bias rounded to float32 costs u |b| and one more rounding.
    2 (n + 4) u covers all of it, with room for the rounding of ``v +- bound`` itself.
    """
    largest = magnitude * w.abs().flatten(1).sum(1) + bias.abs()  # |potential| can reach no further
    n = w[0].numel() + 1
    if op["lsb"] < -100 or float(largest.max()) >= 2.0**100 or n * 2.0**-FLOAT32_BITS > 0.01:
        return None
    return 2 * (n + 4) * 2.0**-FLOAT32_BITS * largest


@contextlib.contextmanager
def _ieee_float32(device: torch.device):
    """Plain IEEE float32 sums on CUDA too: no TF32, and no cuDNN (whose Winograd and FFT algorithms obey
    other error bounds); im2col + cuBLAS instead. On CPU, oneDNN's direct convolution is already plain."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _certified_times(v: torch.Tensor, error: torch.Tensor, theta_exp: int, code, layer: tuple,
                     record: SpikeRecord, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Spike times of float32 potentials ``v`` known to within ``error``: exact. Where the interval
    ``v +- error`` straddles a threshold, a bound from the neuron's actual inputs is taken (``_local_bound``,
    at those neurons only), and the neurons it still cannot decide are recomputed exactly in float64."""
    record.certified += v.numel()
    times, unsure = _bracket(v, error, theta_exp, code, scale)
    if not unsure.any():
        return times
    op, x, w, bias = layer
    where = unsure.nonzero()
    if len(where) > TIGHTEN_SHARE * v.numel():
        at = tuple(where.t())
        local_times, still = _bracket(v[at], _local_bound(op, x, w, bias, where, record), theta_exp, code,
                                      None if scale is None else scale.to(v.device)[where[:, 1]])
        times[at] = local_times  # exact where no longer unsure; the rest is recomputed below
        where = where[still]
    record.refined += len(where)
    if len(where) > REFINE_SHARE * v.numel():  # cheaper as one float64 layer than neuron by neuron
        exact = apply_weights(op, x.double(), w) + bias.view((1, -1, 1, 1) if op["op"] == "conv" else (1, -1))
        record.work["float64 MACs"] += v.numel() * w[0].numel()
        return _times(exact, theta_exp, code, scale)
    if len(where):
        times[tuple(where.t())] = _times(_exact_at(op, x, w, bias, where, record), theta_exp, code,
                                         None if scale is None else scale.to(v.device)[where[:, 1]])
    return times


def _bracket(v: torch.Tensor, error: torch.Tensor, theta_exp: int, code,
             scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(spike times of ``v + error``, where ``v - error`` would fire later). A higher potential fires no
    later, so the times are exact wherever the second is False."""
    times = _times(v + error, theta_exp, code, scale)
    return times, _times(v - error, theta_exp, code, scale) != times


def _local_bound(op: dict, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, where: torch.Tensor,
                 record: SpikeRecord) -> torch.Tensor:
    """``_error_bound`` for the neurons at ``where`` from their own inputs, not the worst case: the products
    sum |x w| <= max|w_c| sum |x| over the receptive field, and only its m nonzero inputs can round (a sum
    with an exact zero does not), so gamma_(m + 1) replaces gamma_(fan-in + 1). Costs one single-channel pass
    over the inputs (their sum and count per receptive field), not a second full layer."""
    a = x.abs()
    activity = torch.stack([a.sum(1), (a != 0).sum(1, dtype=a.dtype)], 1)  # per input position: sum |x|, count
    record.work["float32 MACs"] += x.numel()
    if op["op"] == "conv":
        k = w.shape[-1]
        field = F.conv2d(activity, torch.ones(2, 1, k, k, dtype=a.dtype, device=a.device), None, op["stride"],
                         op["padding"], groups=2)
        record.work["float32 MACs"] += field.numel() * k * k
        field = field[where[:, 0], :, where[:, 2], where[:, 3]]
    else:
        field = activity[where[:, 0]]
    n = w[0].numel() + 1
    slack = 2 * (n + 4) * 2.0**-FLOAT32_BITS  # the float32 sums above: within this of exact
    largest = w.abs().flatten(1).amax(1).float()[where[:, 1]] * field[:, 0] * (1 + slack)
    largest = largest + bias.abs().float()[where[:, 1]]
    nonzero = torch.clamp(field[:, 1] + 1, max=n)
    return 2 * (nonzero + 4) * 2.0**-FLOAT32_BITS * largest




def _times(v: torch.Tensor, theta_exp: int, code, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``dse.network.quant.spike_times`` in one pass, exact. For k = 1 and floor thresholds (theta 2^-t) the step is
    theta_exp - floor(log2 v), read off the float's exponent field (zero, negative and subnormal potentials fall
    below the window); otherwise T minus the number of thresholds at or below v (a table search). ``scale``: a
    threshold per channel (dim 1, or the one dimension of a gathered vector),
    ``dse.network.quant.channel_spike_times``."""
    T = code.time_window
    if scale is not None:
        gathered = v.dim() == 1  # neurons gathered one by one, each with its channel's scale: one per "channel"
        u = v.view(1, -1) if gathered else v
        times = channel_spike_times(u, 2.0**theta_exp, scale.to(v.device), code).to(torch.int32)
        return times.view(-1) if gathered else times
    if code.exact_shift and code.rounding == "floor" and v.dtype in _FLOAT_FIELDS:
        as_int, mantissa, bias = _FLOAT_FIELDS[v.dtype]
        # theta_exp - (exponent field - bias); sign-extended, a negative v gives a field < 0: a step past T
        times = (theta_exp + bias) - (v.contiguous().view(as_int) >> mantissa)
        return times.clamp_(0, T).to(torch.int32)  # int32: half the traffic of int64
    below = torch.tensor(code.thresholds()[::-1], dtype=v.dtype, device=v.device) * 2.0**theta_exp
    return T - torch.bucketize(v.contiguous(), below, right=True, out_int32=True)


def _decode(times: torch.Tensor, theta_exp: int, code, dtype: torch.dtype) -> torch.Tensor:
    """``dse.network.quant.decode``: theta 2^(-t/k) (0 for t = T) as one table lookup (an embedding: several
    times faster than indexing or building the floats' fields and zeroing the silent ones)."""
    table = torch.tensor(code.levels() + [0.0], dtype=dtype, device=times.device) * 2.0**theta_exp
    return F.embedding(times, table.view(-1, 1)).view(times.shape)


def _max_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """``F.max_pool2d(x, k)`` (stride k, no padding): k^2 - 1 elementwise maxima of strided views, the same
    values, several times faster on CPU than the pooling kernel (which also builds the indices)."""
    h, w = x.shape[2] // k * k, x.shape[3] // k * k
    rows = functools.reduce(torch.maximum, [x[:, :, i:h:k] for i in range(k)])
    return functools.reduce(torch.maximum, [rows[..., j:w:k] for j in range(k)])


def _exact_at(op: dict, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, where: torch.Tensor,
              record: SpikeRecord, chunk_values: int = 1 << 22) -> torch.Tensor:
    """Exact float64 potentials of the neurons at ``where`` (rows of (n, c[, h, w]) indices), in that order.

    Each distinct input patch is gathered once (uncertain neurons cluster at positions) and multiplied by
    every channel's weights in one float64 matmul, then the wanted channels are picked: more multiply-adds
    than one dot product per neuron, but BLAS does them faster than the gathers a dot product per neuron needs."""
    w2 = w.flatten(1)  # channels x fan-in
    if op["op"] == "linear":
        key = where[:, 0]
    else:
        k, s, p = w.shape[-1], op["stride"], op["padding"]
        height, width = (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1
        key = (where[:, 0] * height + where[:, 2]) * width + where[:, 3]  # one integer per output position
        padded = F.pad(x, (p, p, p, p)).contiguous()
        _, c, hp, wp = padded.shape
        span = torch.arange(k, device=x.device)
        # a patch as flat offsets into the padded input, in the weights' (channel, row, column) order: one
        # 1-D gather per chunk (a 4-D advanced index costs several times more)
        field = ((torch.arange(c, device=x.device).view(-1, 1, 1) * hp + span.view(1, -1, 1)) * wp
                 + span.view(1, 1, -1)).flatten()
        flat = padded.view(-1)
    out = torch.empty(len(where), dtype=torch.float64, device=x.device)
    for part in key.argsort().split(max(1, chunk_values // w2.shape[1])):  # neurons of a position together
        positions, inverse = key[part].unique(return_inverse=True)
        if op["op"] == "linear":
            patches = x[positions].double()
        else:
            n, row, col = positions // (height * width), positions // width % height, positions % width
            corner = (n * c * hp + row * s) * wp + col * s
            patches = flat[corner.view(-1, 1) + field.view(1, -1)].double()
        out[part] = (patches @ w2.t())[inverse, where[part, 1]]
        record.work["gathered values"] += patches.numel()
        record.work["float64 MACs"] += len(patches) * w2.numel()
    return out + bias[where[:, 1]]
