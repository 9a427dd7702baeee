"""The spike statistics ``hwmodel`` prices: the SNN as a workload (docs/workload-format.md), with the activity
the closed-form simulator measured on a set of images."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dse.snn.closed_form import simulate_closed_form
from dse.snn.network import SNNNetwork
from dse.util.atomic import write_text


def workload_layers(net: SNNNetwork) -> list[dict]:
    """The network as a workload (docs/workload-format.md), without activity."""
    if any(op["op"] == "add" for op in net.ops):
        return _graph_workload_layers(net)
    layers, shape = [], list(net.input_shape)
    block, conv_in_block, fc = 1, 0, 0  # VGG naming, as hwmodel's built-ins: conv{block}_{i}, pool{block}, fc{n}
    for i, op in enumerate(net.ops):
        kind = op["op"]
        if kind == "conv":
            conv_in_block += 1
            out_c, _, kh, _ = op["codes"].shape
            layers.append({"name": f"conv{block}_{conv_in_block}", "type": "conv", "in_shape": shape, "out_channels": int(out_c),
                           "kernel": int(kh), "stride": op["stride"], "padding": op["padding"],
                           **_threshold_kind(net, i)})
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


def _threshold_kind(net: SNNNetwork, i: int) -> dict:
    """``channel_thresholds: true`` for a conv whose neurons fire against per-channel threshold registers."""
    after = net.ops[i + 1] if i + 1 < len(net.ops) else {}
    return {"channel_thresholds": True} if "threshold_scale" in after else {}


def _graph_workload_layers(net: SNNNetwork) -> list[dict]:
    """A residual network's workload: conv1 (the stem), block{b}_conv1, block{b}_conv2, block{b}_add (the
    shortcut's spikes accumulating into conv2's potentials; ``input`` names the layer whose spikes they are),
    pool, fc. A fire op's spikes belong to the layer before it (an add's to the add)."""
    layers: list[dict] = []
    shapes: list[list[int]] = []  # per op: its output shape
    owner: dict[int, str] = {}  # per op index: the workload layer whose output it carries
    shape, block, current = list(net.input_shape), 0, ""
    for i, op in enumerate(net.ops):
        kind = op["op"]
        if "input" in op:
            shape = shapes[op["input"]]
        if kind == "conv":
            out_c, _, kh, _ = op["codes"].shape
            if not layers:
                name = "conv1"
            elif net.ops[i + 1]["op"] == "fire":
                block += 1
                name = f"block{block}_conv1"
            else:
                name = f"block{block}_conv2"
            layers.append({"name": name, "type": "conv", "in_shape": shape, "out_channels": int(out_c),
                           "kernel": int(kh), "stride": op["stride"], "padding": op["padding"],
                           **_threshold_kind(net, i)})
            h = (shape[1] + 2 * op["padding"] - kh) // op["stride"] + 1
            shape, current = [int(out_c), h, h], name
        elif kind == "shortcut":
            s = op["stride"]
            shape = [op["channels"], (shape[1] - 1) // s + 1, (shape[2] - 1) // s + 1]
        elif kind == "add":
            source = owner.get(net.ops[op["inputs"][1]]["input"], "")
            layers.append({"name": f"block{block}_add", "type": "add", "in_shape": shapes[op["inputs"][0]],
                           "input": source})
            shape, current = shapes[op["inputs"][0]], f"block{block}_add"
        elif kind in ("maxpool", "avgpool"):
            k = op["kernel"]
            layers.append({"name": "pool", "type": kind, "in_shape": shape, "kernel": k, "stride": k})
            shape, current = [shape[0], shape[1] // k, shape[2] // k], "pool"
        elif kind == "flatten":
            shape = [shape[0] * shape[1] * shape[2]]
        elif kind == "linear":
            layers.append({"name": "fc", "type": "linear", "in_shape": shape,
                           "out_features": int(op["codes"].shape[0])})
            shape, current = [int(op["codes"].shape[0])], "fc"
        shapes.append(shape)
        owner[i] = current
    return layers


def spike_statistics(net: SNNNetwork, batches, *, device="cpu", meta: dict | None = None,
                     outputs: list | None = None) -> dict:
    """Run the closed-form SNN over ``batches`` ((pixels, labels) pairs) and return the workload document.

    Counts are means per image. Pool layers receive the spikes the layer before them emitted.
    Each batch's output potentials (float64, on the CPU) are appended to ``outputs`` when given.
    """
    layers = workload_layers(net)
    weight_idx = [i for i, l in enumerate(layers) if l["type"] in ("conv", "linear")]
    fire_owner = [i for i in weight_idx if layers[i]["type"] == "conv"]
    T = net.code.time_window
    events = torch.zeros(len(weight_idx), dtype=torch.float64)
    out_spikes = torch.zeros(len(fire_owner), dtype=torch.float64)
    hist = torch.zeros(len(fire_owner), T, dtype=torch.float64)
    add_idx = [i for i, l in enumerate(layers) if l["type"] == "add"]
    shortcut = torch.zeros(len(add_idx), dtype=torch.float64)
    images = correct = 0
    for pixels, y in batches:
        pixels = pixels.to(device)
        logits, rec = simulate_closed_form(net, pixels)
        events += torch.tensor(rec.input_events, dtype=torch.float64)
        fires = rec.output_spikes[-len(fire_owner):] if fire_owner else []
        out_spikes += torch.tensor(fires, dtype=torch.float64)
        if fire_owner:
            hist += torch.stack(rec.histograms[-len(fire_owner):]).to(torch.float64)
        if add_idx:
            shortcut += torch.tensor(rec.shortcut_events, dtype=torch.float64)
        images += len(pixels)
        correct += int((logits.argmax(1).cpu() == y).sum())
        if outputs is not None:
            outputs.append(logits.cpu())
    n = max(images, 1)
    for j, i in enumerate(weight_idx):
        layers[i]["input_spikes"] = float(events[j] / n)
    for j, i in enumerate(fire_owner):
        layers[i]["output_spikes"] = float(out_spikes[j] / n)
        layers[i]["spike_time_histogram"] = [float(v) for v in hist[j] / n]
        after = i + 1 + (i + 1 < len(layers) and layers[i + 1]["type"] == "add")  # an add's sum fires here
        if after < len(layers) and layers[after]["type"] in ("maxpool", "avgpool"):
            layers[after]["input_spikes"] = float(out_spikes[j] / n)
    for j, i in enumerate(add_idx):
        layers[i]["input_spikes"] = float(shortcut[j] / n)
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
