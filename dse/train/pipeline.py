"""Train a CAT (or full-precision ReLU) network, export it to the SNN and measure both.

``train_and_evaluate`` is what ``dse train`` and each search trial run. For a CAT network:
train with batch norm, fold the batch norms, fine-tune the folded network, then evaluate the
ANN (in float64, where it is exact) and the exported SNN on the test set. For a ReLU network the
SNN is the naive conversion (``convert_relu``), so its conversion loss is measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dse.data.registry import load_dataset
from dse.data.splits import hold_out, subset
from dse.network.fold import fold_batchnorm, folded_into
from dse.snn.statistics import write_spike_statistics
from dse.train import loop
from dse.train.checkpoint import safe_load, save_checkpoint
from dse.train.device import device_name, resolve_device
from dse.train.evaluate import ANN_CHECK_IMAGES, measure
from dse.train.spec import TrainSpec, build_for
from dse.util.atomic import write_text
from dse.util.errors import UserError

FUSE_MIN_STEPS = 1000  # below this, torch.compile's warm-up costs more than fusing saves
VALIDATION_SPIKES = "spikes-validation.json"  # the held-out training images' activity: what a search prices


@dataclass(frozen=True)
class TrainResult:
    ann_accuracy: float
    snn_accuracy: float
    agreement: float | None  # fraction of the ANN's images (metrics' ann_images) where the SNN predicts what it
    #                          predicts; None where not measured (no SNN, or the ANN ran on no image)
    checkpoint: Path
    snn: Path
    spike_stats: Path
    metrics: dict


def train_and_evaluate(spec: TrainSpec, out_dir: str | Path, data_dir: str | Path | None = None, device: str = "auto",
                       threads: int | None = None, progress: bool = True, fuse: bool | None = None,
                       monitor: int = 0, on_epoch=None, init: Path | None = None,
                       ann_images: int = ANN_CHECK_IMAGES) -> TrainResult:
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

    ``ann_images``: the test images on which a CAT network's float64 ANN is run and checked against the SNN
    (``measure``'s ``check_images``; 0: all of them), and as many validation images; ``agreement`` and
    ``val_agreement`` are measured on those only (``ann_images``, ``val_ann_images``).
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
    metrics, doc, net = measure(model, spec, data, dev, name, check_images=ann_images)
    val_doc = None
    if validation is not None:
        val, val_doc, _ = measure(model, spec, data, dev, name, check_images=ann_images, split=validation)
        metrics.update({f"val_{k}": v for k, v in val.items()
                        if k in ("ann_accuracy", "snn_accuracy", "agreement", "ann_images", "eval_seconds")})
    metrics["validation_images"] = 0 if validation is None else len(validation.labels)
    metrics.update(spec=spec.to_dict(), train_seconds=state.seconds, train_images=len(train.labels),
                   device=str(dev), device_name=device_name(dev), torch=torch.__version__, curve=state.curve,
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
                       metrics.get("agreement"), ckpt, snn_path, stats, metrics)
