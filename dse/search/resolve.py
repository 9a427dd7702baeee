"""The one place that decides what a trial trains and which processor prices it.

``resolve(space, params, workload)`` gives a workload's (TrainSpec, processor) pair for a trial's
parameters. Trial, sweep, show and export all call it, so they never disagree. The fields a network
and its processor share (T, weight bits, k: every field the TrainSpec and the Arch both have) are
set by the network, never listed by hand: where the processor the space describes differs, the
processor is adapted to the network and the change is reported (``adapted``), not applied silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import hwmodel
from dse.search.space import ARCH_FIELDS, SHARED_FIELDS, TRAIN_FIELDS, SearchSpace, StudyWorkload
from dse.train.spec import TrainSpec


@dataclass(frozen=True)
class Resolved:
    spec: TrainSpec | None  # None: a fixed hwmodel workload, nothing to train
    arch: hwmodel.Arch  # the processor that prices this workload's network
    adapted: dict  # field -> {"processor": the space's value, "network": the value used}


def design(space: SearchSpace, params: dict) -> hwmodel.Arch:
    """The processor a trial's parameters describe: the space's base with every processor field set."""
    return hwmodel.with_fields(hwmodel.load_arch(space.arch), **{k: v for k, v in params.items() if k in ARCH_FIELDS})


def network_fields(workload: StudyWorkload, spec: TrainSpec | None) -> dict:
    """The shared fields a workload's network fixes: its TrainSpec's, or a spike file's ``snn`` metadata."""
    if spec is not None:
        return {k: getattr(spec, k) for k in sorted(SHARED_FIELDS)}
    doc = workload.hwmodel_workload
    meta = (doc.get("snn") or {}) if isinstance(doc, dict) else {}
    return {k: meta[k] for k in sorted(SHARED_FIELDS) if k in meta}


def resolve(space: SearchSpace, params: dict, workload: StudyWorkload) -> Resolved:
    arch = design(space, params)
    spec = None
    if workload.trains:
        train = {k: v for k, v in params.items() if k in TRAIN_FIELDS}
        spec = TrainSpec.from_dict({**workload.train, **train}, where=f"workload {workload.name}")
    network = network_fields(workload, spec)
    adapted = {k: {"processor": getattr(arch, k), "network": v} for k, v in network.items() if getattr(arch, k) != v}
    if adapted:
        arch = hwmodel.with_fields(arch, **{k: v["network"] for k, v in adapted.items()})
    return Resolved(spec, arch, adapted)


def describe(space: SearchSpace, params: dict) -> dict:
    """Every workload's resolved pair as plain data (``dse show``, ``pareto.json``)."""
    out = {}
    for w in space.workloads:
        r = resolve(space, params, w)
        out[w.name] = {"train": None if r.spec is None else r.spec.to_dict(),
                       "arch": dataclasses.asdict(r.arch), "adapted": r.adapted}
    return out
