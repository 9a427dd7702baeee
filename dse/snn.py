"""Two simulators of an exported TTFS SNN, and the spike statistics ``hwmodel`` prices.

- ``simulate_closed_form``: layer by layer, each fire phase in closed form (first threshold
  crossing by table search); float64, exact because every value is dyadic. Near ANN speed.
- ``simulate_events``: time-stepped and event-driven. Spikes are processed in time order through
  the integer datapath (weight code -> shift by the spike's step -> integer accumulator of a
  configurable width), then the fire phase walks the decaying threshold step by step. Every neuron
  fires at most once. It agrees with the closed form bit for bit unless the accumulator overflows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from dse.atomic import write_text
from dse.export import SNNNetwork
from dse.models import PIXEL_FRACTION_BITS
from dse.quant import decode, log_decode, max_exponent, spike_times


@dataclass
class SpikeRecord:
    """Per weight layer: events arriving; per fire op: spikes emitted and their step histogram (batch totals)."""

    input_events: list[float] = field(default_factory=list)
    output_spikes: list[float] = field(default_factory=list)
    histograms: list[torch.Tensor] = field(default_factory=list)
    spike_times: list[torch.Tensor] = field(default_factory=list)  # per fire op, kept when asked
    overflows: int = 0
    images: int = 0


def _weight(op: dict) -> torch.Tensor:
    return log_decode(op["codes"], op["scale_exp"])


def _apply_weights(op: dict, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if op["op"] == "conv":
        return F.conv2d(x, w, None, op["stride"], op["padding"])
    return F.linear(x, w)


def _record_fire(record: SpikeRecord, times: torch.Tensor, T: int, keep_times: bool) -> None:
    fired = times < T
    record.output_spikes.append(float(fired.sum()))
    record.histograms.append(torch.bincount(times[fired].flatten(), minlength=T)[:T].cpu())
    if keep_times:
        record.spike_times.append(times)


def simulate_closed_form(net: SNNNetwork, pixels: torch.Tensor, keep_times: bool = False) -> tuple[torch.Tensor, SpikeRecord]:
    """``pixels``: uint8 (or integer-valued) N,C,H,W. Returns the last layer's membrane potentials (float64)."""
    code, T = net.code, net.code.time_window
    record = SpikeRecord(images=len(pixels))
    x = pixels.to(torch.float64) / 2**PIXEL_FRACTION_BITS
    events = float(x.numel())  # layer 1 in pixel mode takes every pixel as a multi-bit input
    for op in net.ops:
        kind = op["op"]
        if kind in ("conv", "linear"):
            record.input_events.append(events)
            bias = torch.ldexp(op["bias"].to(x.device, torch.float64), torch.tensor(op["lsb"], device=x.device))
            x = _apply_weights(op, x, _weight(op).to(x.device)) + (bias.view(1, -1, 1, 1) if kind == "conv" else bias)
        elif kind == "fire":
            theta = 2.0 ** op["theta_exp"]
            times = spike_times(x, theta, code)
            _record_fire(record, times, T, keep_times)
            x = decode(times, theta, code)
            events = float((times < T).sum())
        elif kind == "maxpool":  # only the earliest spike of each window passes
            x = F.max_pool2d(x, op["kernel"])
            events = float((x != 0).sum())
        elif kind == "avgpool":  # every spike passes, its weight shifted by log2(kernel^2)
            x = F.avg_pool2d(x, op["kernel"])
        elif kind == "flatten":
            x = torch.flatten(x, 1)
    return x, record


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
    for op in net.ops:
        kind = op["op"]
        if kind in ("conv", "linear"):
            w_int = log_decode(op["codes"], emax).to(pixels.device)  # +-2^(emax - e): integers
            acc = op["bias"].to(pixels.device).view(1, -1, *([1, 1] if kind == "conv" else []))
            if state[0] == "pixels":  # first layer: multi-bit pixel inputs (one MAC each)
                record.input_events.append(float(state[1].numel()))
                acc = acc + _apply_weights(op, state[1].to(torch.float64), w_int).to(torch.int64)
            else:
                _, times, transforms = state
                record.input_events.append(float((times < T).sum()))
                for t in range(T):
                    events = (times == t).to(torch.float64)
                    for transform in transforms:
                        events = transform(events)
                    if not events.any() and acc.shape[0] == len(times):
                        continue  # a silent step adds nothing (the first one still sets the shape)
                    step = _apply_weights(op, events, w_int).to(torch.int64) * levels[t]  # << (fraction_bits - t)
                    acc = acc + step
                    over = (acc < lo) | (acc > hi)
                    if over.any():
                        record.overflows += int(over.sum())
                        acc = acc.clamp(lo, hi)
            acc = acc.clamp(lo, hi)
            state = ("potential", acc, op["lsb"])
        elif kind == "fire":
            if state[0] == "pixels":  # TTFS-encoded input: pixels / 256 against theta = 1
                potential, lsb = state[1], -PIXEL_FRACTION_BITS
            else:
                _, potential, lsb = state
            times = _fire_phase(potential, lsb, op["theta_exp"], code)
            _record_fire(record, times, T, keep_times)
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
    _, potential, lsb = state
    return torch.ldexp(potential.to(torch.float64), torch.tensor(lsb, device=potential.device)), record


def _fire_phase(potential: torch.Tensor, lsb: int, theta_exp: int, code) -> torch.Tensor:
    """Walk the decaying threshold theta * thr[t] for t = 0..T-1; each neuron fires once, at first crossing."""
    T = code.time_window
    times = torch.full_like(potential, T)
    # thresholds in accumulator units: theta * thr[t] / 2^lsb, exact dyadic -> compare in float64
    v = potential.to(torch.float64)
    for t, thr in enumerate(code.thresholds()):
        threshold = thr * 2.0 ** (theta_exp - lsb)
        fire = (times == T) & (v >= threshold)
        times[fire] = t
    return times


def layer_table(net: SNNNetwork) -> list[dict]:
    """The network as a workload (docs/workload-format.md), without activity."""
    layers, shape = [], list(net.input_shape)
    block, conv_in_block, fc = 1, 0, 0  # VGG naming, as hwmodel's built-ins: conv{block}_{i}, pool{block}, fc{n}
    for op in net.ops:
        kind = op["op"]
        if kind == "conv":
            conv_in_block += 1
            out_c, _, kh, _ = op["codes"].shape
            layers.append({"name": f"conv{block}_{conv_in_block}", "type": "conv", "in_shape": shape, "out_channels": int(out_c),
                           "kernel": int(kh), "stride": op["stride"], "padding": op["padding"]})
            h = (shape[1] + 2 * op["padding"] - kh) // op["stride"] + 1
            shape = [int(out_c), h, h]
        elif kind in ("maxpool", "avgpool"):
            k = op["kernel"]
            layers.append({"name": f"pool{block}", "type": kind, "in_shape": shape, "kernel": k, "stride": k})
            shape = [shape[0], shape[1] // k, shape[2] // k]
            block, conv_in_block = block + 1, 0
        elif kind == "flatten":
            n = 1
            for s in shape:
                n *= s
            shape = [n]
        elif kind == "linear":
            fc += 1
            layers.append({"name": f"fc{fc}", "type": "linear", "in_shape": shape,
                           "out_features": int(op["codes"].shape[0])})
            shape = [int(op["codes"].shape[0])]
    return layers


def spike_statistics(net: SNNNetwork, batches, *, device="cpu", meta: dict | None = None,
                     predictions: list | None = None) -> dict:
    """Run the closed-form SNN over ``batches`` ((pixels, labels) pairs) and return the workload document.

    Counts are means per image. Pool layers receive the spikes the layer before them emitted.
    Each batch's predicted classes are appended to ``predictions`` when given.
    """
    layers = layer_table(net)
    weight_idx = [i for i, l in enumerate(layers) if l["type"] in ("conv", "linear")]
    fire_owner = [i for i in weight_idx if layers[i]["type"] == "conv"]
    T = net.code.time_window
    events = torch.zeros(len(weight_idx), dtype=torch.float64)
    out_spikes = torch.zeros(len(fire_owner), dtype=torch.float64)
    hist = torch.zeros(len(fire_owner), T, dtype=torch.float64)
    images = correct = 0
    for pixels, y in batches:
        pixels = pixels.to(device)
        logits, rec = simulate_closed_form(net, pixels)
        events += torch.tensor(rec.input_events, dtype=torch.float64)
        fires = rec.output_spikes[-len(fire_owner):] if fire_owner else []
        out_spikes += torch.tensor(fires, dtype=torch.float64)
        if fire_owner:
            hist += torch.stack(rec.histograms[-len(fire_owner):]).to(torch.float64)
        images += len(pixels)
        pred = logits.argmax(1).cpu()
        correct += int((pred == y).sum())
        if predictions is not None:
            predictions.append(pred)
    n = max(images, 1)
    for j, i in enumerate(weight_idx):
        layers[i]["input_spikes"] = float(events[j] / n)
    for j, i in enumerate(fire_owner):
        layers[i]["output_spikes"] = float(out_spikes[j] / n)
        layers[i]["spike_time_histogram"] = [float(v) for v in hist[j] / n]
        if i + 1 < len(layers) and layers[i + 1]["type"] in ("maxpool", "avgpool"):
            layers[i + 1]["input_spikes"] = float(out_spikes[j] / n)
    first = "spikes" if net.ops[0]["op"] == "fire" else "pixels"
    doc = {"schema": "snn-workload/1", "name": (meta or {}).get("name", "trained-snn"), "input_shape": list(net.input_shape),
           "first_layer_input": first, "layers": layers,
           "snn": {"time_window": T, "steps_per_octave": net.code.steps_per_octave, "rounding": net.code.rounding,
                   "weight_bits": net.weight_bits, "images": images, "accuracy": correct / n, **(meta or {})}}
    return doc


def write_spike_statistics(doc: dict, path: str | Path) -> Path:
    path = Path(path)
    write_text(path, json.dumps(doc, indent=1))
    return path
