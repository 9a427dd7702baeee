"""The event-driven simulator: time-stepped, through the processor's integer datapath.

Spikes are processed in time order (weight code -> shift by the spike's step -> integer accumulator of a
configurable width), then the fire phase walks the decaying threshold step by step. Every neuron fires at most
once. It agrees with the closed form (``dse.snn.closed_form``) bit for bit unless the accumulator overflows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.quant import log_decode, max_exponent, per_channel
from dse.snn.network import SNNNetwork, apply_weights, reread
from dse.snn.record import SpikeRecord, record_fire


def simulate_events(net: SNNNetwork, pixels: torch.Tensor, accumulator_bits: int = 48,
                    keep_times: bool = False) -> tuple[torch.Tensor, SpikeRecord]:
    """Event-driven simulation with an integer accumulator of ``accumulator_bits`` (saturating).

    Between layers activity is a spike-time tensor (T = silent). A weight layer integrates, step by
    step, the spikes of step t: each event adds its weight's integer 2^(emax - e), shifted by the
    step's level (a pure shift for k = 1, floor), into the accumulator. Accumulator values are in
    units of the layer's LSB, so the result is an integer; overflow saturates and is counted.
    """
    code, T = net.code, net.code.time_window
    levels = [round(v * 2**code.fraction_bits) for v in code.levels()]  # integer level per step
    lo, hi = -(2 ** (accumulator_bits - 1)), 2 ** (accumulator_bits - 1) - 1
    record = SpikeRecord(images=len(pixels))
    emax = max_exponent(net.weight_bits)
    # activity: ("pixels", ints) | ("times", spike times, transforms of each step's events) | ("potential", ints, lsb)
    state: tuple = ("pixels", pixels.to(torch.int64))
    kept, states = reread(net), {}
    for i, op in enumerate(net.ops):
        kind = op["op"]
        if "input" in op:
            state = states[op["input"]]
        if kind in ("conv", "linear"):
            w_int = log_decode(op["codes"], emax).to(pixels.device)  # +-2^(emax - e): integers
            acc = op["bias"].to(pixels.device).view(1, -1, *([1, 1] if kind == "conv" else []))
            peak = int(acc.abs().max())   # before clamping: what the accumulator had to hold at any step
            if state[0] == "pixels":  # first layer: multi-bit pixel inputs (one MAC each)
                record.input_events.append(float(state[1].numel()))
                acc = acc + apply_weights(op, state[1].to(torch.float64), w_int).to(torch.int64)
                peak = max(peak, int(acc.abs().max()))
            else:
                _, times, transforms = state
                record.input_events.append(float((times < T).sum()))
                for t in range(T):
                    events = (times == t).to(torch.float64)
                    for transform in transforms:
                        events = transform(events)
                    if not events.any() and acc.shape[0] == len(times):
                        continue  # a silent step adds nothing (the first one still sets the shape)
                    step = apply_weights(op, events, w_int).to(torch.int64) * levels[t]  # << (fraction_bits - t)
                    acc = acc + step
                    peak = max(peak, int(acc.abs().max()))
                    over = (acc < lo) | (acc > hi)
                    if over.any():
                        record.overflows += int(over.sum())
                        acc = acc.clamp(lo, hi)
            acc = acc.clamp(lo, hi)
            record.peaks.append(max(peak, int(acc.abs().max())))
            state = ("potential", acc, op["lsb"])
        elif kind == "fire":
            if state[0] == "pixels":  # TTFS-encoded input: pixels / 256 against theta = 1
                potential, lsb = state[1], -PIXEL_FRACTION_BITS
            else:
                _, potential, lsb = state
            times = _fire_phase(potential, lsb, op["theta_exp"], code, op.get("threshold_scale"))
            record_fire(record, times, T, keep_times)
            state = ("times", times, ())
        elif kind == "maxpool":  # the earliest spike of each window wins
            _, times, transforms = state
            if transforms:
                raise ValueError("max-pool after an average-pool is not supported")
            state = ("times", -F.max_pool2d(-times.to(torch.float64), op["kernel"]).to(torch.int64), ())
        elif kind == "avgpool":  # every spike passes; the /kernel^2 is folded into the grid as a shift
            k = op["kernel"]
            state = (*state[:2], (*state[2], lambda e, k=k: F.avg_pool2d(e, k, divisor_override=1)))
        elif kind == "flatten":
            state = (*state[:2], (*state[2], lambda e: torch.flatten(e, 1)))
        elif kind == "shortcut":  # silent (T) in the padded channels
            _, times, transforms = state
            if transforms:
                raise ValueError("a shortcut reads spikes straight from a fire op")
            t = times[:, :, ::op["stride"], ::op["stride"]]
            t = F.pad(t, (0, 0, 0, 0, 0, op["channels"] - t.shape[1]), value=T)
            state = ("times", t, (), _theta_of(net, op["input"]))
        elif kind == "add":  # the shortcut's spikes accumulate into conv2's Vmem, shifted to a common LSB
            terms = [_as_potential(states[j], levels, code.fraction_bits) for j in op["inputs"]]
            record.shortcut_events.append(float((states[op["inputs"][1]][1] < T).sum()))
            lsb = min(t[1] for t in terms)
            acc = sum(t[0] << (t[1] - lsb) for t in terms)
            record.peaks[-1] = max(record.peaks[-1], int(acc.abs().max()))  # conv2's accumulator holds the sum
            over = (acc < lo) | (acc > hi)
            record.overflows += int(over.sum())
            state = ("potential", acc.clamp(lo, hi), lsb)
        if i in kept:
            states[i] = state
    _, potential, lsb = state
    return torch.ldexp(potential.to(torch.float64), torch.tensor(lsb, device=potential.device)), record


def _theta_of(net: SNNNetwork, index: int) -> int:
    op = net.ops[index]
    if op["op"] != "fire":
        raise ValueError(f"op {index} ({op['op']}) is not a fire op: a shortcut carries spikes")
    return op["theta_exp"]


def _as_potential(state: tuple, levels: list[int], fraction_bits: int) -> tuple[torch.Tensor, int]:
    """(integer potential, LSB exponent) of an add's input: a potential as is; spikes as their decoded values
    (level of the step, 0 for silent, in units of theta 2^-fraction_bits)."""
    if state[0] == "potential":
        return state[1], state[2]
    times, theta = state[1], state[3]
    table = torch.tensor(levels + [0], dtype=torch.int64, device=times.device)
    return table[times.long()], theta - fraction_bits


def _fire_phase(potential: torch.Tensor, lsb: int, theta_exp: int, code,
                scale: torch.Tensor | None = None) -> torch.Tensor:
    """Walk the decaying threshold theta * thr[t] (times the channel's ``scale``) for t = 0..T-1; each neuron
    fires once, at first crossing."""
    T = code.time_window
    times = torch.full_like(potential, T)
    # thresholds in accumulator units: theta * thr[t] / 2^lsb, exact dyadic -> compare in float64
    v = potential.to(torch.float64)
    channel = 1.0 if scale is None else per_channel(scale, v)
    for t, thr in enumerate(code.thresholds()):
        threshold = thr * 2.0 ** (theta_exp - lsb) * channel
        fire = (times == T) & (v >= threshold)
        times[fire] = t
    return times
