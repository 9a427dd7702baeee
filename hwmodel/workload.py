"""Workloads (docs/workload-format.md): layers with shapes and per-inference input spike counts."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from hwmodel.arch import read_yaml
from hwmodel.errors import ConfigError, brief, did_you_mean
from hwmodel.files import is_file, read_text

SCHEMA_MAJOR = "snn-workload/1"
LAYER_TYPES = ("conv", "linear", "maxpool", "avgpool", "add")
LAYER_KEYS = {"name", "type", "in_shape", "out_channels", "out_features", "kernel", "stride", "padding",
              "input_spikes", "input_firing", "output_spikes", "spike_time_histogram", "potential_bits", "input",
              "channel_thresholds"}
MAX_POTENTIAL_BITS = 4096   # beyond any accumulator
TOP_KEYS = {"schema", "name", "input_shape", "first_layer_input", "layers", "default_input_firing", "snn"}
# Beyond any network, and small enough that neuron and synapse counts stay exact in float64 and the
# per-offset loop in _taps stays short.
MAX_SIZE = 2**24    # channels, features, height, width
MAX_WINDOW = 2**12  # kernel, stride, padding


@dataclasses.dataclass(frozen=True)
class Layer:
    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    input_spikes: float | None = None
    input_firing: float | None = None
    potential_bits: int | None = None   # measured: the exact SNN's accumulator width for this layer (dse evaluate --events)
    extra: dict = dataclasses.field(default_factory=dict, compare=False)
    # add: the earlier layer whose spikes the shortcut carries (kept in the spike SRAM until this add)
    input: str | None = None
    # a threshold register per output channel (a batch norm folded into thresholds, dse train.fold: thresholds)
    # instead of one power-of-two threshold per layer
    channel_thresholds: bool = False

    @property
    def in_neurons(self) -> int:
        return _prod(self.in_shape)

    @property
    def out_neurons(self) -> int:
        return _prod(self.out_shape)

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv", "linear")

    @property
    def weights(self) -> int:
        if self.type == "conv":
            return self.out_shape[0] * self.in_shape[0] * self.kernel ** 2
        if self.type == "linear":
            return self.out_shape[0] * self.in_shape[0]
        return 0

    @property
    def macs(self) -> int:
        """Synapses that connect an input to an output (padding taps excluded): dense SOPs."""
        if self.type == "linear":
            return self.in_shape[0] * self.out_shape[0]
        if self.type == "add":   # each shortcut spike reaches one potential
            return self.in_neurons
        if self.type == "conv":
            c, h, w = self.in_shape
            taps = _taps(h, self.out_shape[1], self.kernel, self.stride, self.padding) * \
                _taps(w, self.out_shape[2], self.kernel, self.stride, self.padding)
            return self.out_shape[0] * c * taps
        return 0


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def _taps(size: int, out: int, kernel: int, stride: int, padding: int) -> int:
    """(output, kernel-offset) pairs along one axis whose input index o*stride + k - padding is in the map."""
    total = 0
    for k in range(kernel):
        lo = max(0, -((k - padding) // stride))            # ceil((padding - k) / stride)
        hi = min(out - 1, (size - 1 + padding - k) // stride)
        total += max(0, hi - lo + 1)
    return total


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    input_shape: tuple[int, ...]
    first_layer_input: str          # "pixels" or "spikes"
    layers: tuple[Layer, ...]
    default_input_firing: float = 1.0
    meta: dict = dataclasses.field(default_factory=dict, compare=False)
    source: str = ""

    def input_spikes(self) -> list[float]:
        """Resolved per-layer input spikes per inference (rules in docs/workload-format.md)."""
        out = []
        for i, layer in enumerate(self.layers):
            if i == 0 and self.first_layer_input == "pixels":
                out.append(float(layer.in_neurons))
            elif layer.input_spikes is not None:
                out.append(float(layer.input_spikes))
            elif layer.input_firing is not None:
                out.append(layer.input_firing * layer.in_neurons)
            else:
                out.append(self.default_input_firing * layer.in_neurons)
        return out

    def with_firing(self, firing: float) -> Workload:
        """All layers at one input firing fraction (measured counts dropped)."""
        layers = tuple(dataclasses.replace(layer, input_spikes=None, input_firing=None) for layer in self.layers)
        return dataclasses.replace(self, layers=layers, default_input_firing=float(firing))


def _int(value: Any, label: str, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    # NaN and inf fail the comparison (int() would raise on them); integers of any size pass it
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -math.inf < value < math.inf \
            or value != int(value):
        raise ConfigError(f"{label}: must be an integer, got {brief(value)}")
    if value < minimum:
        raise ConfigError(f"{label}: must be >= {minimum}, got {brief(value)}")
    if value > maximum:
        raise ConfigError(f"{label}: must be at most {maximum}, got {brief(value)}")
    return int(value)


def _number(value: Any, label: str, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{label}: must be a number, got {brief(value)}")
    if not value >= 0 or (maximum is not None and value > maximum):
        bound = f"between 0 and {maximum:g}" if maximum is not None else ">= 0"
        raise ConfigError(f"{label}: must be {bound}, got {brief(value)}")
    return float(value)


def _shape(value: Any, label: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 3):
        raise ConfigError(f"{label}: must be [C, H, W] or [N], got {brief(value)}")
    return tuple(_int(v, label) for v in value)


def _parse_layer(raw: Any, where: str, index: int, prev_out: tuple[int, ...] | None, fold: int = 1) -> Layer:
    """``fold``: spikes per input neuron at most (> 1 after an average-pool, whose inputs' spikes all
    arrive at the next layer, each shifted by the pool size)."""
    label = f"{where}: layers[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in LAYER_KEYS:
            raise ConfigError(f"{label}.{key}: unknown key{did_you_mean(str(key), LAYER_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{label}.name: required string")
    label = f"{where}: layer {name}"
    kind = raw.get("type")
    if kind not in LAYER_TYPES:
        raise ConfigError(f"{label}.type: must be one of {', '.join(LAYER_TYPES)}, got {kind!r}"
                          f"{did_you_mean(str(kind), LAYER_TYPES)}")
    in_shape = _shape(raw["in_shape"], f"{label}.in_shape") if "in_shape" in raw else prev_out
    if in_shape is None:
        raise ConfigError(f"{label}.in_shape: required for the first layer")
    if kind == "linear" and len(in_shape) == 3:
        in_shape = (in_shape[0] * in_shape[1] * in_shape[2],)     # implicit flatten
    if prev_out is not None and _prod(in_shape) != _prod(prev_out):
        raise ConfigError(f"{label}.in_shape: {list(in_shape)} does not chain with the previous output "
                          f"{list(prev_out)}")
    kernel = stride = 1
    padding = 0
    if kind == "linear":
        if len(in_shape) != 1:
            raise ConfigError(f"{label}.in_shape: a linear layer takes [N], got {list(in_shape)}")
        out_shape: tuple[int, ...] = (_int(raw.get("out_features"), f"{label}.out_features"),)
    else:
        if len(in_shape) != 3:
            raise ConfigError(f"{label}.in_shape: a {kind} layer takes [C, H, W], got {list(in_shape)}")
        kernel = _int(raw.get("kernel", 1 if kind == "add" else None), f"{label}.kernel", maximum=MAX_WINDOW)
        stride = _int(raw.get("stride", 1 if kind == "conv" else kernel), f"{label}.stride", maximum=MAX_WINDOW)
        padding = _int(raw.get("padding", 0), f"{label}.padding", minimum=0, maximum=MAX_WINDOW)
        c, h, w = in_shape
        ho = (h + 2 * padding - kernel) // stride + 1
        wo = (w + 2 * padding - kernel) // stride + 1
        if ho < 1 or wo < 1:
            raise ConfigError(f"{label}.kernel: {kernel} does not fit the {h}x{w} input with padding {padding}")
        if kind == "add" and (kernel, stride, padding) != (1, 1, 0):
            raise ConfigError(f"{label}.kernel: an add sums two maps of one shape (kernel 1, stride 1, padding 0)")
        out_c = _int(raw.get("out_channels"), f"{label}.out_channels") if kind == "conv" else c
        out_shape = (out_c, ho, wo)
    spikes = firing = None
    if "input_spikes" in raw and "input_firing" in raw:
        raise ConfigError(f"{label}: give at most one of input_spikes and input_firing")
    if "input_spikes" in raw:
        spikes = _number(raw["input_spikes"], f"{label}.input_spikes", maximum=float(_prod(in_shape) * fold))
    if "input_firing" in raw:
        firing = _number(raw["input_firing"], f"{label}.input_firing", maximum=1.0)
    potential = None
    if "potential_bits" in raw:
        if kind not in ("conv", "linear"):
            raise ConfigError(f"{label}.potential_bits: only a conv or linear layer has an accumulator")
        potential = _int(raw["potential_bits"], f"{label}.potential_bits", 1, MAX_POTENTIAL_BITS)
    extra = {k: raw[k] for k in ("output_spikes", "spike_time_histogram") if k in raw}
    if "output_spikes" in raw:  # a count: never negative, never more than the layer's neurons
        extra["output_spikes"] = _number(raw["output_spikes"], f"{label}.output_spikes", maximum=float(_prod(out_shape)))
    source = raw.get("input")
    if (source is None) != (kind != "add") or (source is not None and (not isinstance(source, str) or not source)):
        raise ConfigError(f"{label}.input: " + ("an add names the earlier layer its shortcut carries"
                                                 if kind == "add" else "only an add layer reads another layer"))
    channel = raw.get("channel_thresholds", False)
    if not isinstance(channel, bool):
        raise ConfigError(f"{label}.channel_thresholds: expected true or false, got {brief(channel)}")
    if channel and kind != "conv":
        raise ConfigError(f"{label}.channel_thresholds: only a conv layer's neurons fire against per-channel thresholds")
    return Layer(name, kind, in_shape, out_shape, kernel, stride, padding, spikes, firing, potential, extra, source,
                 channel)


def parse_workload(data: Any, where: str) -> Workload:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'schema' and 'layers'")
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(str(key), TOP_KEYS)}")
    schema = data.get("schema")
    if not isinstance(schema, str) or schema.split(".")[0] != SCHEMA_MAJOR:
        raise ConfigError(f"{where}: schema must be {SCHEMA_MAJOR!r}, got {schema!r}")
    first = data.get("first_layer_input", "pixels")
    if first not in ("pixels", "spikes"):
        raise ConfigError(f"{where}: first_layer_input must be 'pixels' or 'spikes', got {first!r}")
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise ConfigError(f"{where}: layers must be a non-empty list")
    layers: list[Layer] = []
    prev = _shape(data["input_shape"], f"{where}: input_shape") if "input_shape" in data else None
    fold = 1
    for i, raw in enumerate(raw_layers):
        layer = _parse_layer(raw, where, i, prev, fold)
        fold = fold * layer.kernel ** 2 if layer.type == "avgpool" else 1
        if any(layer.name == other.name for other in layers):
            raise ConfigError(f"{where}: layer {layer.name}: duplicate name")
        if layer.input is not None and not any(layer.input == other.name for other in layers):
            raise ConfigError(f"{where}: layer {layer.name}.input: {brief(layer.input)} is not an earlier layer"
                              f"{did_you_mean(layer.input, [other.name for other in layers])}")
        if layer.type == "add" and not (layers and layers[-1].has_weights):
            raise ConfigError(f"{where}: layer {layer.name}: an add follows the weight layer whose potentials it adds to")
        layers.append(layer)
        prev = layer.out_shape
    if not layers[0].has_weights and first == "pixels":
        raise ConfigError(f"{where}: layer {layers[0].name}: the first layer must be conv or linear for pixels")
    default = _number(data.get("default_input_firing", 1.0), f"{where}: default_input_firing", maximum=1.0)
    name = data.get("name", Path(where).stem)
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        raise ConfigError(f"{where}: name: expected a string, got {type(name).__name__}")
    return Workload(str(name), layers[0].in_shape, first, tuple(layers),
                    default, _meta(data, where), where)


def _meta(data: dict, where: str) -> dict:
    snn = data.get("snn")
    if snn is not None and not isinstance(snn, dict):
        raise ConfigError(f"{where}: snn: expected a mapping of metadata, got {type(snn).__name__}")
    return dict(snn or {})


def read_document(path: Path) -> Any:
    """The parsed YAML or JSON of a workload or spike-statistics file (not yet validated)."""
    text = read_text(path)
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: JSON syntax error at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from None
    return read_yaml(text, str(path))


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Built-ins carry measured per-layer activity from committed files (workloads/activity_<dataset>.yaml,
# written by ``hwmodel activity``); a layer the file does not name fires at the explicit fallback below.
# CIFAR-100 has no trained CAT network yet: it takes the CIFAR-10 measurement (same input size), said so in docs.
BUILTIN_FIRING = 0.15
ACTIVITY_FILES = {"vgg16-cifar10": "workloads/activity_cifar10.yaml", "vgg16-cifar100": "workloads/activity_cifar10.yaml",
                  "vgg16-tiny-imagenet": "workloads/activity_tiny-imagenet.yaml"}
BUILTINS = {"vgg16-cifar10": ((3, 32, 32), 10), "vgg16-cifar100": ((3, 32, 32), 100),
            "vgg16-tiny-imagenet": ((3, 64, 64), 200)}


def vgg16(name: str, input_shape: tuple[int, int, int], classes: int) -> dict:
    """VGG-16 (13 conv 3x3 + 5 max-pools + fc 512-512-classes), the usual CIFAR variant (15.0 M weights)."""
    layers: list[dict] = []
    block, index = 1, 1
    for item in VGG16_CFG:
        if item == "M":
            layers.append({"name": f"pool{block}", "type": "maxpool", "kernel": 2})
            block, index = block + 1, 1
        else:
            layers.append({"name": f"conv{block}_{index}", "type": "conv", "out_channels": item,
                           "kernel": 3, "padding": 1})
            index += 1
    layers += [{"name": "fc1", "type": "linear", "out_features": 512},
               {"name": "fc2", "type": "linear", "out_features": 512},
               {"name": "fc3", "type": "linear", "out_features": classes}]
    return {"schema": SCHEMA_MAJOR, "name": name, "input_shape": list(input_shape),
            "first_layer_input": "pixels", "default_input_firing": BUILTIN_FIRING, "layers": layers}


def builtin_activity(name: str) -> dict:
    """The committed measurement for built-in ``name``: {"network", "source", "command", "input_firing"}."""
    from importlib import resources

    from hwmodel.arch import read_yaml

    path = ACTIVITY_FILES[name]
    return read_yaml(resources.files("hwmodel").joinpath(path).read_text(), path)


def _spiking(wl: Workload) -> list[tuple[int, Layer, float]]:
    """(position, layer, input firing) of every layer whose input is spikes and whose count is known."""
    spikes = wl.input_spikes()
    return [(i, layer, spikes[i] / layer.in_neurons) for i, layer in enumerate(wl.layers)
            if not (i == 0 and wl.first_layer_input == "pixels") and layer.type != "avgpool"]


def map_activity(measured: Workload, target: Workload) -> dict[str, float]:
    """Per-layer input firing of ``target`` taken from ``measured``: the layer of the same class (pooling or
    weighted) at the nearest relative depth. Identical networks map one to one."""
    src = _spiking(measured)
    n_src, n_dst = len(measured.layers) - 1, len(target.layers) - 1
    out = {}
    for i, layer, _ in _spiking(target):
        pool = layer.type == "maxpool"
        same = [(j, f) for j, other, f in src if (other.type == "maxpool") == pool] or [(j, f) for j, _, f in src]
        j, f = min(same, key=lambda jf: abs(jf[0] / max(n_src, 1) - i / max(n_dst, 1)))
        out[layer.name] = round(min(f, 1.0), 6)
    return out


def _fanin(layer: Layer) -> int:
    return layer.in_shape[0] * layer.kernel ** 2 if layer.type == "conv" else layer.in_neurons


def map_potential_bits(measured: Workload, target: Workload) -> dict[str, int]:
    """Per weight layer of ``target``, the accumulator width the exact SNN needed on ``measured`` (dse evaluate
    --events): the layer of the same name when both have the same weight layers (a narrower VGG-16), else the
    weight layer at the nearest relative depth; widened by ceil(log2) of the fan-in ratio where the target's
    fan-in is larger (a sum of n terms grows at most as n). Empty when a measured weight layer lacks the width."""
    src = [(i, layer) for i, layer in enumerate(measured.layers) if layer.has_weights]
    if not src or any(layer.potential_bits is None for _, layer in src):
        return {}
    dst = [(i, layer) for i, layer in enumerate(target.layers) if layer.has_weights]
    n_src, n_dst = len(measured.layers) - 1, len(target.layers) - 1
    same = [layer.name for _, layer in src] == [layer.name for _, layer in dst]
    out = {}
    for k, (i, layer) in enumerate(dst):   # same layer names (a narrower VGG-16): one to one
        other = src[k][1] if same else min(src, key=lambda jl: abs(jl[0] / max(n_src, 1) - i / max(n_dst, 1)))[1]
        out[layer.name] = other.potential_bits + max(0, math.ceil(math.log2(_fanin(layer) / _fanin(other))))
    return out


def load_workload(spec: str | Path | dict) -> Workload:
    """A built-in name, a YAML/JSON workload file, a spike-statistics file (same schema), or such a document."""
    if isinstance(spec, dict):
        return parse_workload(spec, "workload")
    text = str(spec)
    if text in BUILTINS:
        shape, classes = BUILTINS[text]
        doc = vgg16(text, shape, classes)
        activity = builtin_activity(text)
        firing, potential = activity["input_firing"], activity.get("potential_bits", {})
        for layer in doc["layers"]:
            if layer["name"] in firing:
                layer["input_firing"] = firing[layer["name"]]
            if layer["name"] in potential:
                layer["potential_bits"] = potential[layer["name"]]
        if potential:   # the widths hold at the measuring network's T, k and weight bits (not the built-in's:
            # a built-in is priced at any of them, so they are kept apart from its own network fields)
            code = activity["potential_bits_source"]["measured_on"]
            doc["snn"] = {"potential_measured_on": {key: code[key] for key in
                                                    ("time_window", "steps_per_octave", "rounding", "weight_bits")}}
        measured = activity["measured_on"]
        doc.setdefault("snn", {})["activity"] = (
            f"{measured['model']} on {measured['dataset']}, {measured['accuracy'] * 100:.1f} %"
            + ("" if text.endswith(measured["dataset"]) else f": borrowed, no {text.split('-', 1)[1]} network measured"))
        return parse_workload(doc, f"workload {text}")
    path = Path(text)
    if not is_file(path):
        raise ConfigError(f"workload: {brief(text)} is neither a built-in ({', '.join(BUILTINS)}) nor a file"
                          f"{did_you_mean(text, BUILTINS)}")
    return parse_workload(read_document(path), str(path))


def overlay_spikes(workload: Workload, path_or_dict: str | Path | dict) -> Workload:
    """Measured activity (input_spikes / input_firing per layer name) from a spike-statistics file."""
    if isinstance(path_or_dict, dict):
        data, where = path_or_dict, "spikes"
    else:
        path = Path(path_or_dict) if isinstance(path_or_dict, (str, Path)) else None
        if path is None or not is_file(path):
            raise ConfigError(f"spikes: no such file {brief(str(path_or_dict))}")
        data, where = read_document(path), str(path)
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise ConfigError(f"{where}: expected a mapping with a 'layers' list")
    by_name = {layer.name: layer for layer in workload.layers}
    updated = dict(by_name)
    folds, fold = {}, 1
    for layer in workload.layers:
        folds[layer.name] = fold
        fold = fold * layer.kernel ** 2 if layer.type == "avgpool" else 1
    for i, raw in enumerate(data["layers"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ConfigError(f"{where}: layers[{i}].name: required string")
        name = raw["name"]
        if name not in by_name:
            raise ConfigError(f"{where}: layer {name}: not in workload {workload.name}"
                              f"{did_you_mean(str(name), by_name)}")
        layer = by_name[name]
        label = f"{where}: layer {name}"
        if "input_spikes" in raw:
            spikes = _number(raw["input_spikes"], f"{label}.input_spikes", maximum=float(layer.in_neurons * folds[name]))
            updated[name] = dataclasses.replace(layer, input_spikes=spikes, input_firing=None)
        elif "input_firing" in raw:
            firing = _number(raw["input_firing"], f"{label}.input_firing", maximum=1.0)
            updated[name] = dataclasses.replace(layer, input_spikes=None, input_firing=firing)
        if "output_spikes" in raw:
            _number(raw["output_spikes"], f"{label}.output_spikes", maximum=float(_prod(layer.out_shape)))
    meta = {**workload.meta, **_meta(data, where)}
    return dataclasses.replace(workload, layers=tuple(updated[layer.name] for layer in workload.layers), meta=meta)

