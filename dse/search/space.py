"""The search-space file: one validated YAML schema (docs/search.md), loaded into frozen dataclasses.

Every mistake is one ``UserError`` naming the key and its path in the file, raised before anything
starts. Files the space names (``arch``, a ``hwmodel`` workload) are resolved against the space file's
directory and must stay inside it (``hwmodel.files``); their content is inlined into ``source``, the copy
the driver keeps in the study directory, so that copy needs no other file. A file-backed ``storage`` is a
plain file name, placed in the study directory (``dse.search.storage.study_storage``).
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
from dse.data.registry import DATASET_NAMES
from dse.network.registry import NETWORKS
from dse.search import objectives as objectives_registry, samplers
from dse.search.fidelity import Pruning, parse_pruner
from dse.search.storage import space_storage
from dse.train.spec import TrainSpec
from dse.util.errors import UserError
from hwmodel import BUILTINS, brief, inside, is_file, load_yaml, parse_workload, read_document, read_text

OBJECTIVES = objectives_registry.OBJECTIVES  # name -> Objective (direction, unit, scale from SI)
SAMPLERS = samplers.NAMES
AGGREGATES = objectives_registry.AGGREGATES
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainSpec)}
ARCH_FIELDS = {f.name for f in dataclasses.fields(hwmodel.Arch)} - {"name"}
SHARED_FIELDS = frozenset(TRAIN_FIELDS & ARCH_FIELDS)  # fields of both the network and the processor (T, bits, k)
MAX_GRID = 1_000_000  # points a grid sampler (or dse sweep) enumerates: Optuna holds them all in memory
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

    @property
    def size(self) -> int | None:
        """How many values the parameter takes; None for a float range without a step."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.kind == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        return None if self.step is None else int(round((self.high - self.low) / self.step)) + 1

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
class StudyWorkload:
    """One entry of a study's ``workloads``, on which every processor is evaluated: a network to train, or a fixed
    hwmodel workload to price (``hwmodel.Workload`` is a priced layer list, not this entry)."""

    name: str
    train: dict = field(default_factory=dict)  # fixed TrainSpec fields (dataset, model, epochs, ...)
    hwmodel_workload: str | dict | None = None  # a built-in name or a workload document: pricing only, no accuracy
    optional: bool = False  # a dataset whose files may be absent: then the study runs without it and says so

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


MODES = ("flat", "nested")
INNER_SAMPLES = 20_000  # nested: processors drawn per network when the grid is too large to enumerate
MAX_NESTED_GRID = 200_000  # nested: processor grids up to this size are enumerated exactly


@dataclass(frozen=True)
class WarmStart:
    """A network starts from the nearest cached (weight bits, T) network trained from scratch and
    fine-tunes for ``finetune_epochs`` (batch norm folded) instead of training every epoch."""

    finetune_epochs: int = 1


@dataclass(frozen=True)
class Search:
    """How a study spends its trainings (docs/search.md): ``flat`` samples networks and processors
    together, trial by trial; ``nested`` samples networks and solves each one's processors
    (``dse.search.nested``)."""

    mode: str = "flat"
    inner_samples: int = INNER_SAMPLES
    warm_start: WarmStart | None = None


@dataclass(frozen=True)
class SearchSpace:
    study: str
    workloads: tuple[StudyWorkload, ...]
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
    arch: str | dict = "paper"  # base processor: a preset name, or all its fields (from a file or a mapping)
    storage: str | None = None  # as written: a server URL, or a file name that lives in the study directory
    pruning: Pruning = Pruning()  # multi-fidelity: which pruner stops hopeless trainings (dse.search.fidelity)
    search: Search = Search()
    source: dict = field(default_factory=dict, compare=False)  # the file as loaded, for the results directory

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o].direction for o in self.objectives]

    @property
    def trains(self) -> bool:
        return any(w.trains for w in self.workloads)


def _fail(path: str, message: str) -> UserError:
    return UserError(f"{path}: {message}" if path else message)


def _optional(data: dict, key: str, default: Any) -> Any:
    """``data[key]``, or ``default`` when it is absent or null (not when it is 0, '' or []: those are errors)."""
    value = data.get(key)
    return default if value is None else value


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
            raise _fail(path, f"expected a number, got {brief(value)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, f"expected a number, got {brief(value)}")
    if not -1e300 < value < 1e300:  # NaN, inf, and integers beyond float range (float() of them raises)
        raise _fail(path, f"expected a finite number, got {brief(value)}")
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
        if not math.isfinite(span):
            raise _fail(f"{path}.step", f"{step} is too small for the range {low}..{high}")
        if abs(span - round(span)) > 1e-9:
            raise _fail(f"{path}.step", f"high - low ({high - low}) is not a multiple of step ({step})")
    if log and low <= 0:
        raise _fail(f"{path}.low", "must be > 0 with log: true")
    return Param(name, kind, low, high, step, log)


def _name(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(f"{path}.name", f"expected a string, got {type(value).__name__}")
    return str(value)


def _workload(spec: Any, path: str, directory: Path) -> tuple[StudyWorkload, Any]:
    """The workload, and its entry for ``source`` (a workload file's document inlined)."""
    if isinstance(spec, dict) and "hwmodel" in spec:
        _check_keys(spec, path, {"hwmodel", "name"})
        ref, where = spec["hwmodel"], f"{path}.hwmodel"
        if isinstance(ref, str) and ref in BUILTINS:
            return StudyWorkload(_name(spec.get("name", ref), path), hwmodel_workload=ref), spec
        if isinstance(ref, str):
            file = inside(directory, ref, where)
            if not is_file(file):
                raise _fail(where, f"{brief(ref)} is neither a built-in workload ({', '.join(BUILTINS)}) nor a file "
                                   f"in {directory.resolve()}")
        elif not isinstance(ref, dict):
            raise _fail(where, f"expected a built-in workload name or a workload file, got {brief(ref)}")
        try:
            doc, label = (read_document(file), str(file)) if isinstance(ref, str) else (ref, "workload")
            parse_workload(doc, label)
        except hwmodel.ConfigError as exc:
            raise _fail(where, str(exc)) from None
        name = _name(spec.get("name", ref if isinstance(ref, str) else doc.get("name", "workload")), path)
        return StudyWorkload(name, hwmodel_workload=doc), {"name": name, "hwmodel": doc}
    _check_keys(spec, path, {"dataset", "model", "name", "train", "optional"}, {"dataset"})
    optional = spec.get("optional", False)
    if not isinstance(optional, bool):
        raise _fail(f"{path}.optional", f"expected true or false, got {brief(optional)}")
    if spec["dataset"] not in DATASET_NAMES:
        raise _fail(f"{path}.dataset", f"unknown dataset {brief(spec['dataset'])}; choose one of "
                                       f"{', '.join(DATASET_NAMES)}")
    model = spec.get("model", "small_vgg")
    if not isinstance(model, str) or model not in NETWORKS:
        raise _fail(f"{path}.model", f"unknown model {brief(model)}; choose one of {', '.join(NETWORKS)}")
    train = _optional(spec, "train", {})
    _check_keys(train, f"{path}.train", TRAIN_FIELDS - {"dataset", "model"})
    fixed = {**train, "dataset": spec["dataset"], "model": model}
    TrainSpec.from_dict(fixed, where=f"{path}.train")  # validates types and ranges now
    return StudyWorkload(_name(spec.get("name", spec["dataset"]), path), train=fixed, optional=optional), spec


def _arch(value: Any, directory: Path) -> tuple[hwmodel.Arch, str | dict]:
    """The base processor, and what the space keeps of it: a preset's name, else every field."""
    if isinstance(value, str) and value in hwmodel.presets():
        return hwmodel.load_arch(value), value
    if isinstance(value, str):
        file = inside(directory, value, "arch")
        if not is_file(file):
            raise _fail("arch", f"{brief(value)} is neither a preset ({', '.join(hwmodel.presets())}) nor a file in "
                                f"{directory.resolve()}")
    elif not isinstance(value, dict):
        raise _fail("arch", f"expected a preset name, a processor file or a mapping of fields, got {brief(value)}")
    try:
        arch = hwmodel.load_arch(file if isinstance(value, str) else value, directory)
    except hwmodel.ConfigError as exc:
        raise _fail("arch", str(exc)) from None
    return arch, arch.to_dict()


def _constraint(text: Any, path: str) -> Constraint:
    m = re.fullmatch(r"\s*([a-z]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*", str(text))
    if not m:
        raise _fail(path, f"expected '<metric> <= <value>' or '<metric> >= <value>', got {text!r}")
    metric, op, value = m.group(1), m.group(2), _number(m.group(3), path)
    if metric not in OBJECTIVES:
        raise _fail(path, f"unknown metric {metric!r}; choose one of {', '.join(OBJECTIVES)}")
    return Constraint(metric, op, value)


def _check_training_values(params: tuple[Param, ...], wls: tuple[StudyWorkload, ...]) -> None:
    """Every value a training parameter can take must make a valid TrainSpec for every network, now, rather
    than fail every trial later."""
    for p in params:
        if p.target != "train":
            continue
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        for w in (w for w in wls if w.trains):
            for value in values:
                try:
                    TrainSpec.from_dict({**w.train, p.name: int(value) if p.kind == "int" else value})
                except UserError as exc:
                    raise _fail(f"space.{p.name}", f"{brief(value)} is not a valid training setting for "
                                                   f"workload {w.name} ({exc})") from None


TOP_KEYS = {"study", "workloads", "space", "objectives", "aggregate", "constraints", "sampler", "seed", "budget",
            "resources", "arch", "storage", "pruner", "search"}


def _search(data: Any, params: tuple[Param, ...], wls: tuple[StudyWorkload, ...]) -> Search:
    spec = _check_keys(_optional(data, "search", {}), "search", {"mode", "inner_samples", "warm_start"})
    mode = spec.get("mode", "flat")
    if mode not in MODES:
        raise _fail("search.mode", f"expected one of {', '.join(MODES)}, got {brief(mode)}")
    inner = int(_number(spec.get("inner_samples", INNER_SAMPLES), "search.inner_samples", integer=True))
    if inner < 1:
        raise _fail("search.inner_samples", f"must be >= 1, got {inner}")
    if mode == "nested":
        if not any(w.trains for w in wls):
            raise _fail("search.mode", "nested solves processors per trained network: it needs a workload with a "
                                       "dataset (a processor-only study is priced exhaustively already)")
        if not any(p.target == "train" for p in params):
            raise _fail("search.mode", "nested samples networks: the space needs a training parameter")
        if not any(p.target == "arch" and p.name not in SHARED_FIELDS for p in params):
            raise _fail("search.mode", "nested solves processor parameters: the space has none")
    warm = spec.get("warm_start", False)
    if warm is False or warm is None:
        return Search(mode, inner)
    if warm is True:
        warm = {}
    _check_keys(warm, "search.warm_start", {"finetune_epochs"})
    epochs = int(_number(warm.get("finetune_epochs", 1), "search.warm_start.finetune_epochs", integer=True))
    if epochs < 1:
        raise _fail("search.warm_start.finetune_epochs", f"must be >= 1, got {epochs}")
    if not any(w.trains for w in wls):
        raise _fail("search.warm_start", "needs a workload with a dataset to train on")
    return Search(mode, inner, WarmStart(epochs))


def parse_space(data: Any, directory: str | Path = ".") -> SearchSpace:
    """``data``: the parsed YAML; ``directory``: where files it names are (the space file's directory)."""
    directory = Path(directory)
    if data is None:
        raise _fail("", "the file is empty; expected a mapping with study, workloads, space and objectives")
    _check_keys(data, "", TOP_KEYS, {"study", "workloads", "objectives"})
    study = data["study"]
    if not isinstance(study, str) or not _STUDY_NAME.match(study):
        raise _fail("study", f"expected a name of letters, digits, '.', '_' or '-' (no paths), got {brief(study)}")
    workloads = data["workloads"]
    if not isinstance(workloads, list) or not workloads:
        raise _fail("workloads", "expected a non-empty list")
    wls, wl_sources = zip(*(_workload(w, f"workloads[{i}]", directory) for i, w in enumerate(workloads)))
    if len({w.name for w in wls}) != len(wls):
        raise _fail("workloads", "workload names repeat; give each a distinct name")
    space = _optional(data, "space", {})
    if not isinstance(space, dict) or not space:
        raise _fail("space", "expected a non-empty mapping of parameters")
    params = tuple(_param(str(k), v, f"space.{k}") for k, v in space.items())
    _check_training_values(params, wls)
    objectives = data["objectives"]
    if isinstance(objectives, str):
        objectives = [objectives]
    if not isinstance(objectives, list) or not objectives:
        raise _fail("objectives", "expected a non-empty list")
    for i, o in enumerate(objectives):
        if not isinstance(o, str) or o not in OBJECTIVES:
            raise _fail(f"objectives[{i}]", f"unknown objective {brief(o)}; choose from {', '.join(OBJECTIVES)}")
    if len(set(objectives)) != len(objectives):
        raise _fail("objectives", "objectives repeat")
    if "accuracy" in objectives and not any(w.trains for w in wls):
        raise _fail("objectives", "accuracy needs at least one workload with a dataset to train on")
    if not any(w.trains for w in wls) and any(p.target == "train" and p.name not in SHARED_FIELDS for p in params):
        raise _fail("space", "training parameters need a workload with a dataset")
    aggregate = data.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise _fail("aggregate", f"expected one of {', '.join(AGGREGATES)}, got {brief(aggregate)}")
    constraints = _optional(data, "constraints", [])
    if not isinstance(constraints, list):
        raise _fail("constraints", "expected a list like ['area <= 10', 'accuracy >= 90']")
    cons = tuple(_constraint(c, f"constraints[{i}]") for i, c in enumerate(constraints))
    sampler = data.get("sampler", {})
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    _check_keys(sampler, "sampler", {"name", "seed"})
    name = sampler.get("name", "auto")
    if name not in SAMPLERS:
        raise _fail("sampler.name", f"unknown sampler {brief(name)}; choose one of {', '.join(SAMPLERS)}")
    seed = int(_number(sampler.get("seed", data.get("seed", 0)), "sampler.seed", integer=True))
    if name == "grid":  # counted, never enumerated, before anything is written
        for p in params:
            if p.size is None:
                raise _fail(f"space.{p.name}", "the grid sampler needs a step for float parameters")
        points = math.prod(p.size for p in params)
        if points > MAX_GRID:
            raise _fail("sampler", f"the grid has {points} points (at most {MAX_GRID:,}); narrow the ranges or "
                                   "use another sampler")
    budget = _check_keys(_optional(data, "budget", {}), "budget", {"n_trials", "timeout"})
    n_trials = int(_number(budget.get("n_trials", 20), "budget.n_trials", integer=True))
    if n_trials < 1:
        raise _fail("budget.n_trials", f"must be >= 1, got {n_trials}")
    timeout = budget.get("timeout")
    timeout = None if timeout is None else _number(timeout, "budget.timeout")
    if timeout is not None and timeout <= 0:
        raise _fail("budget.timeout", f"must be > 0 seconds, got {timeout}")
    res = _check_keys(_optional(data, "resources", {}), "resources", {"cpus", "gpus", "max_concurrent"})
    cpus = _number(res.get("cpus", 1), "resources.cpus")
    gpus = _number(res.get("gpus", 0), "resources.gpus")
    concurrent = int(_number(res.get("max_concurrent", 0), "resources.max_concurrent", integer=True))
    if cpus <= 0 or gpus < 0 or concurrent < 0:
        raise _fail("resources", "cpus must be > 0, gpus and max_concurrent >= 0")
    base, arch = _arch(data.get("arch", "paper"), directory)
    for p in params:  # every processor value must be one the model accepts
        if p.target == "arch" or p.name in SHARED_FIELDS:
            for value in ([p.low, p.high] if p.kind != "categorical" else list(p.choices)):
                try:
                    hwmodel.with_fields(base, **{p.name: int(value) if p.kind == "int" else value})
                except hwmodel.ConfigError as exc:
                    raise _fail(f"space.{p.name}", str(exc)) from None
    storage = space_storage(data.get("storage"))
    pruning = parse_pruner(data.get("pruner"))
    if pruning.enabled:
        for i, w in enumerate(wls):
            if w.trains and TrainSpec.from_dict(w.train).validation_images == 0:
                raise _fail(f"workloads[{i}].train.validation_images", "the pruner judges trainings on their "
                                                                       "validation images: 0 leaves none")
    search = _search(data, params, wls)
    if search.mode == "nested" and pruning.enabled:
        raise _fail("pruner", "nested search trains each proposed network to the end (it is solved over every "
                              "processor); leave the pruner out, or use mode: flat")
    source = {**data, "workloads": list(wl_sources)}
    if arch != data.get("arch", "paper"):
        source["arch"] = arch
    return SearchSpace(study, tuple(wls), params, tuple(objectives), aggregate, cons, name, seed, n_trials, timeout,
                       cpus, gpus, concurrent, arch, storage, pruning, search, source=source)


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    try:
        text = read_text(path)
    except hwmodel.ConfigError as exc:
        raise UserError(f"{path}: no such search-space file" if not path.exists() else str(exc)) from None
    try:
        data = load_yaml(text, str(path))  # plain data only: a !!python/... tag is refused, never constructed
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            raise UserError(f"{path}{where}: YAML tag refused: {problem} (a search space is plain data; nothing "
                            "in it is run)") from None
        raise UserError(f"{path}{where}: not valid YAML ({problem})") from None
    try:
        return parse_space(data, path.parent)
    except hwmodel.ConfigError as exc:
        raise UserError(f"{path}: {exc}") from None
