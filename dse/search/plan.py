"""``dse plan``: what a study will cost before it runs.

Trials come from the budget; distinct trainings at most from the grid of the training parameters (the
cache trains each network once); training hours from an epoch time measured here on the space's largest
network (a few timed steps on inputs of the dataset's shape), or given with ``--epoch-seconds``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from dse.data.splits import validation_size
from dse.search.cluster import fitting_nodes, resources_text
from dse.search.space import SearchSpace
from dse.train.spec import TrainSpec
from dse.util.errors import UserError

# training images per dataset (the standard splits; digits: dse's 80 % split of 1,797)
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "tiny-imagenet": 100_000, "digits": 1_437}
SHAPES = {"cifar10": (3, 32, 10), "cifar100": (3, 32, 100), "tiny-imagenet": (3, 64, 200), "digits": (1, 8, 10)}


@dataclass(frozen=True)
class _Shape:
    """What ``build_for`` reads of a dataset."""

    num_classes: int
    in_channels: int
    input_size: int


@dataclass(frozen=True)
class Plan:
    trials: int
    trainings: int  # distinct networks at most, over every training workload
    epochs_per_training: list[int]  # per training workload
    epoch_seconds: list[float]  # per training workload, the largest network of the space
    device: str

    @property
    def training_hours(self) -> float:
        per_network = sum(e * s for e, s in zip(self.epochs_per_training, self.epoch_seconds)) / 3600
        return per_network * self.trainings / max(1, len(self.epoch_seconds))


def distinct_trainings(space: SearchSpace) -> int:
    """Networks the study can train at most: the training grid per training workload, capped by the budget."""
    grid = 1
    for p in space.params:
        if p.target == "train":
            grid *= len(p.grid()) if p.kind != "float" or p.step is not None else math.inf
    per_workload = min(grid, space.n_trials)
    return int(per_workload) * sum(w.trains for w in space.workloads)


def _largest(space: SearchSpace, train: dict) -> dict:
    """The training fields of the costliest network the space can ask for (widest, longest window)."""
    out = dict(train)
    for p in space.params:
        if p.target == "train" and p.name in ("width", "time_window"):
            out[p.name] = max(p.grid()) if p.kind != "float" or p.step else p.high
    return out


def measure_epoch_seconds(train: dict, device: str = "auto", steps: int = 3) -> tuple[float, str]:
    """Seconds per training epoch of this network: the median of at least ``steps`` timed steps (a second
    of them for small networks) after three warm-up steps, times the steps of an epoch."""
    import torch
    import torch.nn.functional as F

    from dse.train.device import resolve_device
    from dse.train.spec import build_for

    spec = TrainSpec.from_dict(train, where="plan")
    channels, size, classes = SHAPES[spec.dataset]
    dev = resolve_device(device)
    model = build_for(spec, _Shape(classes, channels, size)).to(dev).train()  # the network dse train builds
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.rand(spec.batch_size, channels, size, size, device=dev)
    y = torch.randint(0, classes, (spec.batch_size,), device=dev)
    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: allocator, thread pools, kernels
        step()
    times, start = [], time.perf_counter()
    while len(times) < steps or (time.perf_counter() - start < 1.0 and len(times) < 100):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    elapsed = statistics.median(times)  # a shared machine's stalls do not count
    total = TRAIN_IMAGES[spec.dataset]
    images = spec.max_train_images or total - validation_size(spec.validation_images, total)
    return elapsed * math.ceil(images / spec.batch_size), str(dev)


def make_plan(space: SearchSpace, epoch_seconds: float | None = None, device: str = "auto") -> Plan:
    """Without ``epoch_seconds``, the epoch time is measured here, unless the trials ask for GPUs and this
    machine has none (a CPU's epoch says nothing about a GPU's): then the hours are left out."""
    import torch

    epochs, seconds, used = [], [], "given"
    if epoch_seconds is None and space.gpus_per_trial and device == "auto" and not torch.cuda.is_available():
        used = "no GPU here"
    for w in space.workloads:
        if not w.trains:
            continue
        train = _largest(space, w.train)
        spec = TrainSpec.from_dict(train, where=f"workload {w.name}")
        epochs.append(spec.epochs + (spec.finetune_epochs if spec.activation == "cat" else 0))
        if used == "no GPU here":
            continue
        if epoch_seconds is not None:
            seconds.append(epoch_seconds)
        elif spec.dataset not in SHAPES:
            raise UserError(f"workload {w.name}: dataset {spec.dataset!r} has no known size; pass --epoch-seconds")
        else:
            s, used = measure_epoch_seconds(train, device)
            seconds.append(s)
    return Plan(space.n_trials, distinct_trainings(space), epochs, seconds, used)


def report(space: SearchSpace, plan: Plan, nodes: list[dict[str, float]], where: str) -> list[str]:
    from dse.util.units import duration, sig3

    cpus, gpus = space.cpus_per_trial, space.gpus_per_trial
    hours = plan.training_hours
    lines = [f"study {space.study}: {plan.trials} trials; at most {plan.trainings} distinct trainings "
             f"({', '.join(str(e) for e in plan.epochs_per_training) or 0} epochs each), the other trials price "
             "cached networks in milliseconds"]
    if plan.epoch_seconds:
        measured = "given" if plan.device == "given" else f"measured on {plan.device}, largest network of the space"
        lines.append(f"epoch time {', '.join(duration(s) for s in plan.epoch_seconds)} ({measured}); training at "
                     f"most {duration(hours * 3600)} of trial time = {sig3(hours * cpus)} CPU-hours"
                     + (f" + {sig3(hours * gpus)} GPU-hours" if gpus else ""))
    elif plan.device == "no GPU here":
        lines.append("training hours: the trials ask for GPUs and this machine has none; time one epoch on a GPU "
                     "and pass --epoch-seconds")
    fit = fitting_nodes(cpus, gpus, nodes)
    at_once = sum(min(n.get("CPU", 0) // cpus, n.get("GPU", 0) // gpus if gpus else math.inf) for n in fit)
    max_conc = f", capped at {space.max_concurrent} by the space" if space.max_concurrent else ""
    lines.append(f"each trial asks {resources_text(cpus, gpus)}; {where}: {len(nodes)} node(s), "
                 + ", ".join(resources_text(n.get("CPU", 0), n.get("GPU", 0), bool(gpus)) for n in nodes)
                 + (f"; {len(fit)} can run a trial, {int(at_once)} trials at once{max_conc}" if fit else
                    "; NO node can run a trial: dse search would refuse this space here"))
    return lines
