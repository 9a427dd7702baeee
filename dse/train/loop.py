"""The training loop: phases of epochs, a resumable state after every epoch, an optional accuracy curve.

A CAT training runs up to three phases: ``pretrain`` (ReLU and float weights, when
``pretrain_epochs`` > 0), ``train`` (CAT with batch norm), then ``finetune`` (batch norm folded,
lower learning rate). Each phase has its own optimizer and schedule. After every epoch the whole
state (weights, optimizer, schedule, the data-order generator, the curve) is written atomically, so
a process killed at any point resumes from its last finished epoch and ends bit for bit where an
uninterrupted run of the same seed ends.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dse.data.batches import augment, batches
from dse.data.splits import subset
from dse.network.fold import fold_batchnorm, folded_into
from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.registry import Network
from dse.train.checkpoint import safe_load
from dse.util.atomic import write_bytes
from dse.util.errors import UserError

STATE_FORMAT = "dse-train-state/1"
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float


def phases(spec) -> list[Phase]:
    if spec.activation != "cat":
        return [Phase("train", spec.epochs, spec.lr)]
    # after full-precision pre-training CAT only adapts: a fifth of the peak rate keeps what was learnt
    cat_lr = spec.lr * (0.2 if spec.pretrain_epochs else 1.0)
    return [p for p in (Phase("pretrain", spec.pretrain_epochs, spec.lr),
                        Phase("train", spec.epochs - spec.pretrain_epochs, cat_lr),
                        Phase("finetune", spec.finetune_epochs, spec.lr * 0.1)) if p.epochs]


def _optimizer(model: Network, spec, phase: Phase, steps_per_epoch: int):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=phase.lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                          nesterov=spec.momentum > 0)
    steps = phase.epochs * steps_per_epoch
    if spec.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=phase.lr, total_steps=steps)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return opt, sched


@torch.no_grad()
def accuracy(model: Network, split, device, batch_size: int = 500) -> float:
    """Eval-mode float32 accuracy (the monitoring curve; the exact figures: ``dse.train.evaluate.measure``)."""
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in batches(split, batch_size):
        out = model(x.to(device).float() / 2**PIXEL_FRACTION_BITS)
        correct += int((out.argmax(1).cpu() == y).sum())
    model.train(was_training)
    return correct / max(len(split.labels), 1)


class TrainState:
    """Where a training stands: completed (phase, epoch), the curve and the stage accuracies so far."""

    def __init__(self, spec):
        self.spec = spec
        self.phase = 0  # index into phases(spec)
        self.epoch = 0  # epochs finished within that phase
        self.curve: list[dict] = []  # one row per finished epoch
        self.stages: dict[str, float] = {}
        self.seconds = 0.0

    def save(self, path: Path, model: Network, opt, sched, gen: torch.Generator) -> None:
        doc = {"format": STATE_FORMAT, "spec": self.spec.to_dict(), "phase": self.phase, "epoch": self.epoch,
               "folded": model.folded, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "opt": opt.state_dict() if opt else None, "sched": sched.state_dict() if sched else None,
               "gen": gen.get_state(), "curve": self.curve, "stages": self.stages, "seconds": self.seconds}
        buffer = io.BytesIO()
        torch.save(doc, buffer)
        write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, spec):
        doc = safe_load(path, "training state")
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise UserError(f"{path}: not a dse training state; delete it to start the training afresh")
        if type(spec).from_record(doc["spec"], f"{path}: spec") != spec:
            raise UserError(f"{path}: holds a training of another spec; use another output directory or delete it")
        state = cls(spec)
        state.phase, state.epoch, state.curve = doc["phase"], doc["epoch"], doc["curve"]
        state.stages, state.seconds = doc["stages"], doc["seconds"]
        return state, doc


def run(model: Network, train, spec, device, out: Path, *, monitor=None, validation=None, on_epoch=None,
        progress: bool = True, log=print) -> TrainState:
    """Train ``model`` in place through every phase of ``spec``, resuming from ``out/train_state.pt``.

    ``monitor``: a split whose eval-mode accuracy is recorded after every epoch and at the stages of a
    CAT training (before folding, right after it): for reporting only, never for decisions.
    ``validation``: a split held out of the training data; its eval-mode accuracy is each curve row's
    ``val_accuracy``, what decisions (pruning) may use. ``on_epoch(n, row)`` is called after the n-th
    epoch's state is saved (so whatever it raises stops a training that resumes there), and, on resume,
    for every epoch already done.
    """
    path = out / STATE_FILE
    plan = phases(spec)
    steps_per_epoch = math.ceil(len(train.labels) / spec.batch_size)
    gen = torch.Generator().manual_seed(spec.seed)
    state, saved = TrainState(spec), None
    if path.exists():
        state, saved = TrainState.load(path, spec)
        if saved["folded"]:
            fold_batchnorm(model.eval(), into=folded_into(saved["model"]))
        model.load_state_dict(saved["model"])
        gen.set_state(saved["gen"])
        done = sum(p.epochs for p in plan[:state.phase]) + state.epoch
        log(f"resumed from {path} after epoch {done} of {sum(p.epochs for p in plan)}")
        for n, row in enumerate(state.curve if on_epoch is not None else (), 1):
            on_epoch(n, row)
    for index in range(state.phase, len(plan)):
        phase = plan[index]
        if phase.name == "finetune" and not model.folded:
            _fold(model, spec, state, monitor, device, _calibration(train, spec, device))
        model.set_pretraining(phase.name == "pretrain")
        opt, sched = _optimizer(model, spec, phase, steps_per_epoch)
        if saved is not None and saved["opt"] is not None and index == state.phase and state.epoch:
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
        first = state.epoch if index == state.phase else 0
        for epoch in range(first, phase.epochs):
            t0 = time.perf_counter()
            _epoch(model, train, spec, device, gen, opt, sched, progress, f"{phase.name} {epoch + 1}/{phase.epochs}")
            row = {"phase": phase.name, "epoch": epoch + 1, "seconds": time.perf_counter() - t0}
            state.seconds += row["seconds"]
            if monitor is not None:
                row["accuracy"] = accuracy(model, monitor, device)
            if validation is not None:
                row["val_accuracy"] = accuracy(model, validation, device)
            state.curve.append(row)
            state.phase, state.epoch = index, epoch + 1
            state.save(path, model, opt, sched, gen)
            if on_epoch is not None:
                on_epoch(len(state.curve), row)
        state.phase, state.epoch = index + 1, 0
    model.set_pretraining(False)
    if spec.activation == "cat" and not model.folded:  # no fine-tune phase: fold anyway, the SNN has no BN
        _fold(model, spec, state, monitor, device, _calibration(train, spec, device))
    model.eval()
    return state


CALIBRATION_IMAGES = 512  # training images whose mean potentials the corrected fold restores


def _calibration(train, spec, device) -> torch.Tensor | None:
    if spec.fold == "plain":
        return None
    return subset(train, CALIBRATION_IMAGES).images.to(device).float() / 2**PIXEL_FRACTION_BITS


def _fold(model: Network, spec, state: TrainState, monitor, device, calibration: torch.Tensor | None) -> None:
    if monitor is not None:
        state.stages["before_fold"] = accuracy(model, monitor, device)
    fold_batchnorm(model.eval(), calibration, into="thresholds" if spec.fold == "thresholds" else "weights")
    if monitor is not None:
        state.stages["after_fold"] = accuracy(model, monitor, device)


def _epoch(model, data, spec, device, gen, opt, sched, progress: bool, label: str) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=math.ceil(len(data.labels) / spec.batch_size), desc=label, unit="batch", leave=False)
    model.train()
    for x, y in batches(data, spec.batch_size, shuffle=True, generator=gen):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if spec.augment and x.shape[-1] >= 16:  # crops would erase 8x8 digits
            x = augment(x, gen, pad=x.shape[-1] // 8)
        loss = F.cross_entropy(model(x.float() / 2**PIXEL_FRACTION_BITS), y, label_smoothing=spec.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update()
            if bar.n % 20 == 0:  # .item() waits for the device: not on every step
                bar.set_postfix(loss=f"{loss.item():.3f}")
    if not torch.isfinite(loss):
        raise UserError(f"{label}: training diverged (loss {loss.item()}); lower train.lr")
    if bar is not None:
        bar.close()
