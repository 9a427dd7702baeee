"""``TrainSpec``: everything that changes a trained network (its hash keys the search's cache), validated when
built; and the network a spec describes for a dataset (``build_for``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dse.data.dataset import Dataset
from dse.data.registry import DATASET_NAMES
from dse.network.registry import FAMILY, NETWORKS, Network, build_model
from dse.util.errors import UserError
from hwmodel import brief, spike_code


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
    # after folding batch norm (CAT only). The threshold fold costs <= 0.2 points (0.01 on VGG-16 at 30 epochs,
    # results/cat/h100), and a fine-tune epoch after it did not help (VGG-16, width 0.25: 76.2 -> 75.6 %): the
    # epoch is better spent training. The weight folds ("plain", "corrected") want 1.
    finetune_epochs: int = 0
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
        choices = {"dataset": DATASET_NAMES, "model": tuple(NETWORKS), "activation": ("cat", "relu"),
                   "rounding": spike_code.ROUNDINGS, "first_layer": ("pixels", "ttfs"), "pool": ("max", "avg"),
                   "schedule": ("onecycle", "cosine"), "weights": ("auto", "log", "float"),
                   "theta": ("auto", "fixed", "learned"), "fold": ("thresholds", "corrected", "plain")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"train.{name}: {brief(getattr(self, name))} is not one of {', '.join(allowed)}")
        minimum = {"width": 1e-3, "weight_bits": spike_code.LOG_WEIGHT_BITS[0], "time_window": spike_code.MIN_TIME_WINDOW,
                   "steps_per_octave": spike_code.MIN_STEPS_PER_OCTAVE, "epochs": 0,
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
        if FAMILY[self.model].CAT_ONLY and not (self.activation == "cat" and self.log_weights):
            raise UserError(f"train.model: {self.model} trains with CAT and log weights only (its SNN is exact); "
                            f"got activation {self.activation!r}, weights {self.weights!r}")
        if self.pretrain_epochs > self.epochs:
            raise UserError(f"train.pretrain_epochs: {self.pretrain_epochs} is more than train.epochs ({self.epochs}): "
                            "pre-training counts within the epochs")
        if self.pretrain_epochs and self.activation != "cat":
            raise UserError("train.pretrain_epochs: only a CAT network is pre-trained (a ReLU network already is)")
        if abs(self.log2_theta) > 30:
            raise UserError(f"train.log2_theta: must be within -30..30, got {self.log2_theta}")
        top = spike_code.LOG_WEIGHT_BITS[1]
        if self.weight_bits > top:
            raise UserError(f"train.weight_bits: at most {top} (sign + {top - 1}-bit exponent, magnitudes down to "
                            f"2^-{spike_code.max_exponent(top)}), got {self.weight_bits}")

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


def build_for(spec: TrainSpec, data: Dataset) -> Network:
    return build_model(spec.model, data.num_classes, data.in_channels, data.input_size, width=spec.width,
                       activation=spec.activation, weight_bits=spec.weight_bits if spec.log_weights else None,
                       time_window=spec.time_window, steps_per_octave=spec.steps_per_octave, rounding=spec.rounding,
                       first_layer=spec.first_layer, pool=spec.pool, log2_theta=spec.theta_exponent,
                       learn_theta=spec.theta == "learned")
