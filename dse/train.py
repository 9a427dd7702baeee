"""Train a CAT (or full-precision ReLU) network, export it to the SNN and measure both.

``train_and_evaluate`` is what ``dse train`` and each search trial run. For a CAT network:
train with batch norm, fold the batch norms, fine-tune the folded network, then evaluate the
ANN (in float64, where it is exact) and the exported SNN on the test set. For a ReLU network the
SNN is the naive conversion (``convert_relu``), so its conversion loss is measured.
"""

from __future__ import annotations

import dataclasses
import json
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dse import loop
from dse.data.batches import batches
from dse.data.dataset import Dataset
from dse.data.registry import DATASET_NAMES, load_dataset
from dse.data.splits import hold_out, subset
from dse.network.fold import fold_batchnorm, folded_into
from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.registry import NETWORK_NAMES as MODEL_NAMES, build_model
from dse.network.resnet import RESNET_CONFIGS
from dse.network.vgg import VGG
from dse.snn.export import convert_relu, export_snn
from dse.snn.network import SNNNetwork
from dse.snn.statistics import spike_statistics, write_spike_statistics
from dse.util.atomic import write_bytes, write_text
from dse.util.errors import UserError
from dse.util.progress import bar, batch_count
from hwmodel import brief

CHECKPOINT_FORMAT = "dse-checkpoint/1"
FUSE_MIN_STEPS = 1000  # below this, torch.compile's warm-up costs more than fusing saves


def auto_log2_theta(time_window: int, steps_per_octave: int = 1) -> int:
    """theta = 4 (two octaves above batch norm's unit scale) when the window spans 4+ octaves; for shorter
    windows half the octaves go above 1, so the lowest level still sits below the typical activation."""
    return min(2, (time_window - 1) // steps_per_octave // 2)


@dataclass(frozen=True)
class TrainSpec:
    """Everything that changes the trained network (its hash keys the search's cache)."""

    dataset: str = "cifar10"
    model: str = "small_vgg"
    width: float = 1.0
    activation: str = "cat"  # cat | relu (full-precision baseline, converted naively)
    weights: str = "auto"  # auto (log for CAT, float for ReLU) | log | float: the attribution's variants
    weight_bits: int = 5
    time_window: int = 8
    steps_per_octave: int = 1
    rounding: str = "floor"
    first_layer: str = "pixels"  # pixels | ttfs
    pool: str = "max"
    # Batch norm before the activation already sets the scale, so theta is free: "auto" fixes it at
    # 2^auto_log2_theta(T, k), 4 for T >= 5 (clips far less than 1: +8 points at 4 epochs, results/cat), lower for
    # short windows so the window still reaches below 1; "learned" (PACT) oscillates at the rounding boundary
    theta: str = "auto"  # auto | fixed (theta = 2^log2_theta) | learned (PACT from 2^log2_theta, rounded)
    log2_theta: int = 0
    epochs: int = 4
    pretrain_epochs: int = 0  # CAT only: the first epochs train ReLU + float weights, then CAT fine-tunes them
    finetune_epochs: int = 1  # after folding batch norm (CAT only)
    # "thresholds": the batch norm's scale goes to a per-channel threshold, the weights stay as trained (exact
    # to 0.2 %); "plain" folds it into the weights, re-quantizing w * gamma / sigma (a channel's gain moves by up
    # to 2^(+-1/2)); "corrected" is "plain" with each channel's bias shifted back to the unfolded mean potential
    # on training images ("thresholds" does that shift too)
    fold: str = "thresholds"  # thresholds | corrected | plain
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5.0e-4
    momentum: float = 0.9
    schedule: str = "onecycle"  # onecycle | cosine
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    max_train_images: int = 0  # 0 = all (after the validation images are held out)
    max_test_images: int = 0
    # held out of the training data, never trained on (dse.data.splits.hold_out); -1: a tenth, at most 5,000; 0: none
    validation_images: int = -1
    coarse_labels: bool = False  # CIFAR-100 only

    def __post_init__(self) -> None:
        choices = {"dataset": DATASET_NAMES, "model": MODEL_NAMES, "activation": ("cat", "relu"),
                   "rounding": ("floor", "round"), "first_layer": ("pixels", "ttfs"), "pool": ("max", "avg"),
                   "schedule": ("onecycle", "cosine"), "weights": ("auto", "log", "float"),
                   "theta": ("auto", "fixed", "learned"), "fold": ("thresholds", "corrected", "plain")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"train.{name}: {brief(getattr(self, name))} is not one of {', '.join(allowed)}")
        minimum = {"width": 1e-3, "weight_bits": 2, "time_window": 1, "steps_per_octave": 1, "epochs": 0,
                   "finetune_epochs": 0, "pretrain_epochs": 0, "log2_theta": -30, "batch_size": 1, "lr": 0.0, "weight_decay": 0.0, "momentum": 0.0,
                   "label_smoothing": 0.0, "max_train_images": 0, "max_test_images": 0,
                   "validation_images": -1}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
            if not isinstance(value, expected) or (f.type != "bool" and isinstance(value, bool)):
                raise UserError(f"train.{f.name}: expected {f.type}, got {brief(value)}")
            if f.type == "float" and not -1e300 < value < 1e300:  # NaN, inf: a run that cannot mean anything
                raise UserError(f"train.{f.name}: must be a finite number, got {brief(value)}")
            if f.name in minimum and value < minimum[f.name]:
                raise UserError(f"train.{f.name}: must be >= {minimum[f.name]}, got {value!r}")
        if not -2**63 <= self.seed < 2**64:  # what torch's generators take
            raise UserError(f"train.seed: must fit in 64 bits, got {brief(self.seed)}")
        if self.model in RESNET_CONFIGS and not (self.activation == "cat" and self.log_weights):
            raise UserError(f"train.model: {self.model} trains with CAT and log weights only (its SNN is exact); "
                            f"got activation {self.activation!r}, weights {self.weights!r}")
        if self.pretrain_epochs > self.epochs:
            raise UserError(f"train.pretrain_epochs: {self.pretrain_epochs} is more than train.epochs ({self.epochs}): "
                            "pre-training counts within the epochs")
        if self.pretrain_epochs and self.activation != "cat":
            raise UserError("train.pretrain_epochs: only a CAT network is pre-trained (a ReLU network already is)")
        if abs(self.log2_theta) > 30:
            raise UserError(f"train.log2_theta: must be within -30..30, got {self.log2_theta}")
        if self.weight_bits > 6:  # 2^(n-1)-2 exponents: 7 bits would span 2^-62, beyond any exact datapath
            raise UserError(f"train.weight_bits: at most 6 (sign + 5-bit exponent, magnitudes down to 2^-30), "
                            f"got {self.weight_bits}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def theta_exponent(self) -> int:
        """The threshold exponent the network starts from (and keeps, unless learned)."""
        return auto_log2_theta(self.time_window, self.steps_per_octave) if self.theta == "auto" else self.log2_theta

    @property
    def log_weights(self) -> bool:
        return self.weights == "log" or (self.weights == "auto" and self.activation == "cat")

    @property
    def exportable(self) -> bool:
        """A CAT network with log weights is an SNN exactly; a ReLU one is converted naively; a CAT network with
        float weights (an attribution variant) has no SNN on this hardware."""
        return self.activation == "relu" or self.log_weights

    # Fields added after networks were recorded without them, with the value that reproduces those networks: a
    # recorded spec (checkpoint, training state) that lacks one meant this, not today's default.
    RECORDED_BEFORE = {"validation_images": 0, "fold": "plain"}

    @classmethod
    def from_record(cls, values: dict, where: str) -> TrainSpec:
        """A spec recorded by an earlier version (a checkpoint's, a training state's)."""
        return cls.from_dict({**cls.RECORDED_BEFORE, **values} if isinstance(values, dict) else values, where)

    @classmethod
    def from_dict(cls, values: dict, where: str = "train") -> TrainSpec:
        if not isinstance(values, dict):
            raise UserError(f"{where}: expected a mapping of training fields, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                import difflib

                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{where}.{key}: unknown key{hint}")
        spec = dict(values)
        for f in dataclasses.fields(cls):  # YAML writes 0.1 as float but 1 as int: accept ints for floats
            if f.type == "float" and isinstance(spec.get(f.name), int) and not isinstance(spec[f.name], bool) \
                    and abs(spec[f.name]) < 1e300:
                spec[f.name] = float(spec[f.name])
        try:
            return cls(**spec)
        except UserError as exc:  # name the file or key the values came from, not a generic "train."
            message = str(exc)
            raise UserError(where + message[len("train"):] if message.startswith("train.") else message) from None


@dataclass(frozen=True)
class TrainResult:
    ann_accuracy: float
    snn_accuracy: float
    agreement: float  # fraction of test images where the SNN predicts what the ANN predicts
    checkpoint: Path
    snn: Path
    spike_stats: Path
    metrics: dict


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_for(spec: TrainSpec, data: Dataset) -> VGG:
    return build_model(spec.model, data.num_classes, data.in_channels, data.input_size, width=spec.width,
                       activation=spec.activation, weight_bits=spec.weight_bits if spec.log_weights else None,
                       time_window=spec.time_window, steps_per_octave=spec.steps_per_octave, rounding=spec.rounding,
                       first_layer=spec.first_layer, pool=spec.pool, log2_theta=spec.theta_exponent,
                       learn_theta=spec.theta == "learned")


def exact_kernels():
    """cuDNN may pick FFT or Winograd convolutions, and TF32 rounds float32 products: the exact paths run
    plain GEMM sums (a no-op on the CPU)."""
    return torch.backends.cudnn.flags(enabled=False, allow_tf32=False)


VALIDATION_SPIKES = "spikes-validation.json"  # the held-out training images' activity: what a search prices
ANN_CHECK_IMAGES = 256  # test images on which a CAT network's float64 ANN is run to check SNN = ANN


@torch.no_grad()
def ann_logits(model: VGG, split, device, batch_size: int = 500) -> torch.Tensor:
    """Eval-mode outputs (on the CPU); a folded CAT network runs in float64, where it is exact."""
    import copy

    exact = model.activation == "cat" and model.folded
    net = copy.deepcopy(model).eval()
    net = net.double() if exact else net.float()
    out = []
    with exact_kernels():
        for x, _ in bar(batches(split, batch_size), batch_count(len(split.labels), batch_size), "test ANN"):
            x = x.to(device).to(torch.float64 if exact else torch.float32) / 2**PIXEL_FRACTION_BITS
            out.append(net(x).cpu())
    return torch.cat(out)


def ann_predictions(model: VGG, split, device, batch_size: int = 500) -> torch.Tensor:
    """Eval-mode predictions; a folded CAT network runs in float64, where it is exact."""
    return ann_logits(model, split, device, batch_size).argmax(1)


def evaluate_snn(net: SNNNetwork, split, device, meta: dict, batch_size: int = 500) -> tuple[torch.Tensor, dict]:
    """The closed-form SNN's output potentials (float64) on ``split`` and its spike statistics document."""
    outputs: list[torch.Tensor] = []
    with exact_kernels():
        doc = spike_statistics(net, bar(batches(split, batch_size), batch_count(len(split.labels), batch_size),
                                        "test SNN"), device=device, meta=meta, outputs=outputs)
    return torch.cat(outputs), doc


def save_checkpoint(model: VGG, spec: TrainSpec, path: Path) -> None:
    state = {"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(), "folded": model.folded,
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def safe_load(path: str | Path, what: str = "checkpoint"):
    """``torch.load`` with ``weights_only=True``: tensors and plain data only. A pickle that would build
    Python objects (and so could run code) is refused, never executed; every failure is one line."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, foreign or unsafe: all refused the same way
        detail = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), None)
        if detail:  # the unpickler met a class or function to import: it would construct objects, maybe run code
            raise UserError(f"{path}: refused: the file asks to load Python objects, not only tensors ({detail})") \
                from None
        raise UserError(f"{path}: not a loadable {what} (corrupt, truncated or not a torch file: "
                        f"{type(exc).__name__})") from None


def load_checkpoint(path: str | Path, data: Dataset | None = None, data_dir=None) -> tuple[VGG, TrainSpec, Dataset]:
    """Load a checkpoint safely (``safe_load``); rebuilds the model from its spec."""
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a dse checkpoint (no format {CHECKPOINT_FORMAT!r}: a bare state_dict or "
                        "another tool's file does not say which network to build)")
    for key, kind in (("spec", dict), ("folded", bool), ("state_dict", dict)):
        if not isinstance(state.get(key), kind):
            raise UserError(f"{path}: {key}: missing or not a {kind.__name__} (a damaged dse checkpoint)")
    spec = TrainSpec.from_record(state["spec"], where=f"{path}: spec")
    data = data or load_dataset(spec.dataset, data_dir, coarse_labels=spec.coarse_labels)
    try:
        model = build_for(spec, data)
        if state["folded"]:
            fold_batchnorm(model, into=folded_into(state["state_dict"]))
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, ValueError, TypeError):  # missing, extra or mis-shaped tensors
        raise UserError(f"{path}: weights do not match a {spec.model} network for {spec.dataset}") from None
    return model.eval(), spec, data


def snn_of(model: VGG, spec: TrainSpec, data: Dataset) -> SNNNetwork:
    if spec.activation == "cat":
        return export_snn(model)
    calib = subset(data.train, 2000).images.float() / 2**PIXEL_FRACTION_BITS
    return convert_relu(model.cpu(), calib, weight_bits=spec.weight_bits, time_window=spec.time_window,
                        steps_per_octave=spec.steps_per_octave, rounding=spec.rounding)


def measure(model: VGG, spec: TrainSpec, data: Dataset, device, name: str,
            check_images: int = ANN_CHECK_IMAGES, split=None) -> tuple[dict, dict, SNNNetwork]:
    """SNN and ANN accuracy on the test split (or ``split``), their agreement, and the spike statistics document.

    The SNN is evaluated once, on every test image. A CAT network's SNN computes its float64 ANN bit for bit
    by construction (tests/test_snn.py), so the ANN runs only on the first ``check_images`` test images
    (0: all) and their outputs are compared bit for bit; should any differ, the ANN runs on every image and
    the metrics say so. A ReLU network's SNN is another function (the naive conversion): its ANN (float32)
    always runs on every image.
    """
    test = split if split is not None else subset(data.test, spec.max_test_images)
    labels = test.labels
    t0 = time.perf_counter()
    if not spec.exportable:  # CAT with float weights: an attribution variant with no SNN on this hardware
        ann = ann_predictions(model, test, device)
        return {"ann_accuracy": float((ann == labels).float().mean()), "test_images": len(labels),
                "eval_seconds": time.perf_counter() - t0}, None, None
    net = snn_of(model, spec, data)
    outputs, doc = evaluate_snn(net, test, device, {"name": name, "dataset": spec.dataset, "model": spec.model})
    snn = outputs.argmax(1)
    checked = len(labels)
    if spec.activation == "cat" and check_images:
        checked = min(check_images, len(labels))
    sample = ann_logits(model, type(test)(test.images[:checked], test.labels[:checked]), device)
    same = spec.activation == "cat" and torch.equal(sample, outputs[:checked])
    if same:
        ann = snn
    else:
        ann = (sample if checked == len(labels) else ann_logits(model, test, device)).argmax(1)
        checked = len(labels)
    metrics = {"ann_accuracy": float((ann == labels).float().mean()), "snn_accuracy": float((snn == labels).float().mean()),
               "agreement": float((ann == snn).float().mean()), "test_images": len(labels),
               "ann_images": checked, "ann_equal_snn_bitwise": same, "eval_seconds": time.perf_counter() - t0}
    metrics["conversion_loss"] = metrics["ann_accuracy"] - metrics["snn_accuracy"]
    return metrics, doc, net


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return platform.processor() or platform.machine()


def train_and_evaluate(spec: TrainSpec, out_dir: str | Path, data_dir: str | Path | None = None, device: str = "auto",
                       threads: int | None = None, progress: bool = True, fuse: bool | None = None,
                       monitor: int = 0, on_epoch=None, init: Path | None = None) -> TrainResult:
    """Train ``spec``, write checkpoint.pt, snn.pt, spikes.json and metrics.json to ``out_dir``.

    A killed training resumes from ``out_dir/train_state.pt`` (written after every epoch) when called
    again with the same spec. ``monitor`` > 0 records the float32 accuracy on that many test images
    after every epoch and around batch-norm folding (metrics' ``curve`` and ``stages``). The validation
    images (``spec.validation_images``, held out of the training data) give each curve row's
    ``val_accuracy``, passed to ``on_epoch(n, row)`` after each epoch (see ``loop.run``), and the final
    ``val_*`` metrics; ``spikes-validation.json`` holds their spike statistics.

    ``fuse`` compiles CAT's elementwise passes (same numbers, faster steps after a warm-up of tens of
    seconds); by default on for trainings of ``FUSE_MIN_STEPS`` steps or more.

    ``init``: a folded CAT checkpoint of the same network shape to start from (a warm start, run with
    ``epochs`` 0: only the fine-tune phase); the network keeps its own thresholds.
    """
    out = Path(out_dir)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{out}: cannot write the results there ({existing} is not a directory)")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    data = load_dataset(spec.dataset, data_dir, coarse_labels=spec.coarse_labels)
    train, validation = hold_out(data.train, spec.validation_images, spec.max_train_images)
    out.mkdir(parents=True, exist_ok=True)  # after the data loads: a bad data directory leaves nothing behind
    if dev.type == "cuda":  # the whole dataset on the GPU: no host-to-device copy per batch
        train = type(train)(train.images.to(dev), train.labels.to(dev))
    torch.manual_seed(spec.seed)
    model = build_for(spec, data).to(dev)
    if init is not None:
        source = safe_load(init)["state_dict"]
        fold_batchnorm(model.eval(), into=folded_into(source))
        model.load_state_dict({**model.state_dict(), **{k: v for k, v in source.items() if not k.endswith("log2_theta")}})
    steps = (spec.epochs + spec.finetune_epochs) * math.ceil(len(train.labels) / spec.batch_size)
    if fuse if fuse is not None else steps >= FUSE_MIN_STEPS:
        model.fuse_activations()
    watch = subset(data.test, monitor) if monitor else None
    state = loop.run(model, train, spec, dev, out, monitor=watch, validation=validation, on_epoch=on_epoch,
                     progress=progress, log=lambda m: print(m, flush=True) if progress else None)
    name = f"{spec.model}-{spec.dataset}"
    metrics, doc, net = measure(model, spec, data, dev, name)
    val_doc = None
    if validation is not None:
        val, val_doc, _ = measure(model, spec, data, dev, name, split=validation)
        metrics.update({f"val_{k}": v for k, v in val.items()
                        if k in ("ann_accuracy", "snn_accuracy", "agreement", "eval_seconds")})
    metrics["validation_images"] = 0 if validation is None else len(validation.labels)
    metrics.update(spec=spec.to_dict(), train_seconds=state.seconds, train_images=len(train.labels),
                   device=str(dev), device_name=_device_name(dev), torch=torch.__version__, curve=state.curve,
                   stages=state.stages, curve_images=len(watch.labels) if watch is not None else 0)
    ckpt, snn_path, stats = out / "checkpoint.pt", out / "snn.pt", out / "spikes.json"
    save_checkpoint(model.cpu(), spec, ckpt)
    if net is not None:
        net.save(snn_path)
        write_spike_statistics(doc, stats)
        if val_doc is not None:
            write_spike_statistics(val_doc, out / VALIDATION_SPIKES)
    write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    (out / loop.STATE_FILE).unlink(missing_ok=True)  # finished: the outputs above replace the resumable state
    return TrainResult(metrics["ann_accuracy"], metrics.get("snn_accuracy", float("nan")),
                       metrics.get("agreement", float("nan")), ckpt, snn_path, stats, metrics)
