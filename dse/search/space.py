"""The search-space file: one validated YAML schema (docs/search.md), loaded into frozen dataclasses.

Every mistake is one ``UserError`` naming the key and its path in the file, raised before anything
starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import hwmodel
from dse.data import DATASET_NAMES
from dse.errors import UserError
from dse.models import MODEL_NAMES
from dse.train import TrainSpec

OBJECTIVES = {  # name -> (direction, unit, scale from the trial's SI value)
    "accuracy": ("maximize", "%", 100.0),
    "energy": ("minimize", "uJ", 1e6),
    "area": ("minimize", "mm2", 1.0),
    "latency": ("minimize", "ms", 1e3),
}
SAMPLERS = ("auto", "nsga2", "tpe", "random", "grid", "qmc", "gp")
AGGREGATES = ("mean", "worst", "sum")
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainSpec)}
SHARED_FIELDS = {"weight_bits", "time_window", "steps_per_octave"}  # set both the network and the processor
ARCH_FIELDS = {f.name for f in dataclasses.fields(hwmodel.Arch)} - {"name"}
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def target(self) -> str:
        return "train" if self.name in TRAIN_FIELDS else "arch"

    def grid(self) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            raise UserError(f"space.{self.name}: the grid sampler needs a step for float parameters")
        n = int(round((self.high - self.low) / self.step))
        return [self.low + i * self.step for i in range(n + 1)]


@dataclass(frozen=True)
class Workload:
    """One thing every processor is evaluated on: a network to train, or a fixed hwmodel workload to price."""

    name: str
    train: dict = field(default_factory=dict)  # fixed TrainSpec fields (dataset, model, epochs, ...)
    hwmodel_workload: str | None = None  # a built-in name or file: pricing only, no accuracy

    @property
    def trains(self) -> bool:
        return self.hwmodel_workload is None


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # <= | >=
    value: float  # in the objective's display unit

    def violation(self, metric_value: float) -> float:
        """<= 0 when satisfied (Optuna's convention)."""
        return metric_value - self.value if self.op == "<=" else self.value - metric_value


@dataclass(frozen=True)
class SearchSpace:
    study: str
    workloads: tuple[Workload, ...]
    params: tuple[Param, ...]
    objectives: tuple[str, ...]
    aggregate: str = "mean"
    constraints: tuple[Constraint, ...] = ()
    sampler: str = "auto"
    seed: int = 0
    n_trials: int = 20
    timeout: float | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0 = as many as the cluster's CPUs allow
    arch: str = "paper"  # base processor: preset name or YAML file
    storage: str | None = None
    source: dict = field(default_factory=dict, compare=False)  # the file as loaded, for the results directory

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o][0] for o in self.objectives]

    @property
    def trains(self) -> bool:
        return any(w.trains for w in self.workloads)


def _fail(path: str, message: str) -> UserError:
    return UserError(f"{path}: {message}")


def _check_keys(mapping: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(mapping, dict):
        raise _fail(path, f"expected a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"
            raise _fail(f"{path}.{key}" if path else str(key), f"unknown key{hint}")
    for key in sorted(required - set(mapping)):
        raise _fail(f"{path}.{key}" if path else key, "required key is missing")
    return mapping


def _number(value: Any, path: str, integer: bool = False) -> float:
    if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise _fail(path, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(path, f"expected a number, got {value!r}")
    if integer and value != int(value):
        raise _fail(path, f"expected an integer, got {value!r}")
    return int(value) if integer else float(value)


def _param(name: str, spec: Any, path: str) -> Param:
    if name not in TRAIN_FIELDS and name not in ARCH_FIELDS:
        close = difflib.get_close_matches(name, sorted(TRAIN_FIELDS | ARCH_FIELDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(path, f"not a training or processor parameter{hint}")
    if isinstance(spec, list):  # shorthand: a list of choices
        spec = {"choices": spec}
    _check_keys(spec, path, {"type", "low", "high", "step", "log", "choices"})
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if kind not in ("int", "float", "categorical"):
        raise _fail(f"{path}.type", f"expected int, float or categorical, got {kind!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _fail(f"{path}.choices", "expected a non-empty list")
        for i, c in enumerate(choices):
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise _fail(f"{path}.choices[{i}]", f"choices must be numbers, strings or booleans, got {c!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise _fail(f"{path}.choices", "choices repeat")
        for key in ("low", "high", "step", "log"):
            if key in spec:
                raise _fail(f"{path}.{key}", "not used with choices")
        return Param(name, kind, choices=tuple(choices))
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in spec:
            raise _fail(f"{path}.{key}", "required key is missing")
    low, high = _number(spec["low"], f"{path}.low", integer), _number(spec["high"], f"{path}.high", integer)
    if low > high:
        raise _fail(path, f"low ({low}) is greater than high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _fail(f"{path}.log", f"expected true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{path}.step", integer)
        if step <= 0:
            raise _fail(f"{path}.step", f"must be > 0, got {step}")
        if log:
            raise _fail(f"{path}.step", "cannot be combined with log: true")
        span = (high - low) / step
        if abs(span - round(span)) > 1e-9:
            raise _fail(f"{path}.step", f"high - low ({high - low}) is not a multiple of step ({step})")
    if log and low <= 0:
        raise _fail(f"{path}.low", "must be > 0 with log: true")
    return Param(name, kind, low, high, step, log)


def _workload(spec: Any, path: str) -> Workload:
    if isinstance(spec, dict) and "hwmodel" in spec:
        _check_keys(spec, path, {"hwmodel", "name"})
        try:
            hwmodel.load_workload(spec["hwmodel"])
        except hwmodel.ConfigError as exc:
            raise _fail(f"{path}.hwmodel", str(exc)) from None
        return Workload(str(spec.get("name", spec["hwmodel"])), hwmodel_workload=str(spec["hwmodel"]))
    _check_keys(spec, path, {"dataset", "model", "name", "train"}, {"dataset"})
    if spec["dataset"] not in DATASET_NAMES:
        raise _fail(f"{path}.dataset", f"unknown dataset {spec['dataset']!r}; choose one of {', '.join(DATASET_NAMES)}")
    model = spec.get("model", "small_vgg")
    if model not in MODEL_NAMES:
        raise _fail(f"{path}.model", f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    train = spec.get("train") or {}
    _check_keys(train, f"{path}.train", TRAIN_FIELDS - {"dataset", "model"})
    fixed = {**train, "dataset": spec["dataset"], "model": model}
    TrainSpec.from_dict(fixed, where=f"{path}.train")  # validates types and ranges now
    return Workload(str(spec.get("name", spec["dataset"])), train=fixed)


def _constraint(text: Any, path: str) -> Constraint:
    m = re.fullmatch(r"\s*([a-z]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*", str(text))
    if not m:
        raise _fail(path, f"expected '<metric> <= <value>' or '<metric> >= <value>', got {text!r}")
    metric, op, value = m.group(1), m.group(2), _number(m.group(3), path)
    if metric not in OBJECTIVES:
        raise _fail(path, f"unknown metric {metric!r}; choose one of {', '.join(OBJECTIVES)}")
    return Constraint(metric, op, value)


TOP_KEYS = {"study", "workloads", "space", "objectives", "aggregate", "constraints", "sampler", "seed", "budget",
            "resources", "arch", "storage"}


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    _check_keys(data, "", TOP_KEYS, {"study", "workloads", "objectives"})
    study = data["study"]
    if not isinstance(study, str) or not _STUDY_NAME.match(study):
        raise _fail("study", f"expected a name of letters, digits, '.', '_' or '-' (no paths), got {study!r}")
    workloads = data["workloads"]
    if not isinstance(workloads, list) or not workloads:
        raise _fail("workloads", "expected a non-empty list")
    wls = tuple(_workload(w, f"workloads[{i}]") for i, w in enumerate(workloads))
    if len({w.name for w in wls}) != len(wls):
        raise _fail("workloads", "workload names repeat; give each a distinct name")
    space = data.get("space") or {}
    if not isinstance(space, dict) or not space:
        raise _fail("space", "expected a non-empty mapping of parameters")
    params = tuple(_param(str(k), v, f"space.{k}") for k, v in space.items())
    objectives = data["objectives"]
    if isinstance(objectives, str):
        objectives = [objectives]
    if not isinstance(objectives, list) or not objectives:
        raise _fail("objectives", "expected a non-empty list")
    for i, o in enumerate(objectives):
        if o not in OBJECTIVES:
            raise _fail(f"objectives[{i}]", f"unknown objective {o!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise _fail("objectives", "objectives repeat")
    if "accuracy" in objectives and not any(w.trains for w in wls):
        raise _fail("objectives", "accuracy needs at least one workload with a dataset to train on")
    if not any(w.trains for w in wls) and any(p.target == "train" and p.name not in SHARED_FIELDS for p in params):
        raise _fail("space", "training parameters need a workload with a dataset")
    aggregate = data.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise _fail("aggregate", f"expected one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    constraints = data.get("constraints") or []
    if not isinstance(constraints, list):
        raise _fail("constraints", "expected a list like ['area <= 10', 'accuracy >= 90']")
    cons = tuple(_constraint(c, f"constraints[{i}]") for i, c in enumerate(constraints))
    sampler = data.get("sampler", {})
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    _check_keys(sampler, "sampler", {"name", "seed"})
    name = sampler.get("name", "auto")
    if name not in SAMPLERS:
        raise _fail("sampler.name", f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    seed = int(_number(sampler.get("seed", data.get("seed", 0)), "sampler.seed", integer=True))
    budget = _check_keys(data.get("budget") or {}, "budget", {"n_trials", "timeout"})
    n_trials = int(_number(budget.get("n_trials", 20), "budget.n_trials", integer=True))
    if n_trials < 1:
        raise _fail("budget.n_trials", f"must be >= 1, got {n_trials}")
    timeout = budget.get("timeout")
    timeout = None if timeout is None else _number(timeout, "budget.timeout")
    res = _check_keys(data.get("resources") or {}, "resources", {"cpus", "gpus", "max_concurrent"})
    cpus = _number(res.get("cpus", 1), "resources.cpus")
    gpus = _number(res.get("gpus", 0), "resources.gpus")
    concurrent = int(_number(res.get("max_concurrent", 0), "resources.max_concurrent", integer=True))
    if cpus <= 0 or gpus < 0 or concurrent < 0:
        raise _fail("resources", "cpus must be > 0, gpus and max_concurrent >= 0")
    arch = data.get("arch", "paper")
    try:
        base = hwmodel.load_arch(arch)
    except hwmodel.ConfigError as exc:
        raise _fail("arch", str(exc)) from None
    for p in params:  # every processor value must be one the model accepts
        if p.target == "arch" or p.name in SHARED_FIELDS:
            for value in ([p.low, p.high] if p.kind != "categorical" else list(p.choices)):
                try:
                    hwmodel.with_fields(base, **{p.name: int(value) if p.kind == "int" else value})
                except hwmodel.ConfigError as exc:
                    raise _fail(f"space.{p.name}", str(exc)) from None
    storage = data.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise _fail("storage", "expected an Optuna storage URL or a journal file path")
    return SearchSpace(study, wls, params, tuple(objectives), aggregate, cons, name, seed, n_trials, timeout, cpus, gpus,
                       concurrent, str(arch), storage, source=data)


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: no such search-space file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    try:
        return parse_space(data, str(path))
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
