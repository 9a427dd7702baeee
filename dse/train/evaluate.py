"""Measuring a trained network: its SNN once on every test image, its ANN on a sample checked bit for bit against
the SNN (everywhere when they differ), their accuracies and agreement, and the spike statistics."""

from __future__ import annotations

import time

import torch

from dse.data.batches import batches
from dse.data.dataset import Dataset
from dse.data.splits import subset
from dse.network.layers import PIXEL_FRACTION_BITS
from dse.network.registry import Network
from dse.snn.export import convert_relu, export_snn
from dse.snn.network import SNNNetwork
from dse.snn.statistics import spike_statistics
from dse.train.spec import TrainSpec
from dse.util.progress import bar, batch_count

ANN_CHECK_IMAGES = 256  # test images on which a CAT network's float64 ANN is run to check SNN = ANN


def agreement_text(metrics: dict, prefix: str = "") -> str:
    """``100.00% of 256 images``: the agreement with the number of images it was measured on, or that it was not
    measured. ``prefix``: ``val_`` for the validation images'."""
    value, images = metrics.get(prefix + "agreement"), metrics.get(prefix + "ann_images")
    if value is None or not images:
        return "not measured (the ANN ran on no image)"
    return f"{value:.2%} of {images:,} images"


def exact_kernels():
    """cuDNN may pick FFT or Winograd convolutions, and TF32 rounds float32 products: the exact paths run
    plain GEMM sums (a no-op on the CPU)."""
    return torch.backends.cudnn.flags(enabled=False, allow_tf32=False)


@torch.no_grad()
def ann_logits(model: Network, split, device, batch_size: int = 500) -> torch.Tensor:
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


def ann_predictions(model: Network, split, device, batch_size: int = 500) -> torch.Tensor:
    """Eval-mode predictions; a folded CAT network runs in float64, where it is exact."""
    return ann_logits(model, split, device, batch_size).argmax(1)


def evaluate_snn(net: SNNNetwork, split, device, meta: dict, batch_size: int = 500) -> tuple[torch.Tensor, dict]:
    """The closed-form SNN's output potentials (float64) on ``split`` and its spike statistics document."""
    outputs: list[torch.Tensor] = []
    with exact_kernels():
        doc = spike_statistics(net, bar(batches(split, batch_size), batch_count(len(split.labels), batch_size),
                                        "test SNN"), device=device, meta=meta, outputs=outputs)
    return torch.cat(outputs), doc


def snn_of(model: Network, spec: TrainSpec, data: Dataset) -> SNNNetwork:
    if spec.activation == "cat":
        return export_snn(model)
    calib = subset(data.train, 2000).images.float() / 2**PIXEL_FRACTION_BITS
    return convert_relu(model.cpu(), calib, weight_bits=spec.weight_bits, time_window=spec.time_window,
                        steps_per_octave=spec.steps_per_octave, rounding=spec.rounding)


def measure(model: Network, spec: TrainSpec, data: Dataset, device, name: str,
            check_images: int = ANN_CHECK_IMAGES, split=None) -> tuple[dict, dict, SNNNetwork]:
    """SNN and ANN accuracy on the test split (or ``split``), their agreement, and the spike statistics document.

    The SNN is evaluated once, on every test image. A CAT network's SNN computes its float64 ANN bit for bit
    by construction (tests/test_snn.py), so the ANN runs only on the first ``check_images`` test images
    (0: all) and their outputs are compared bit for bit; should any differ, the ANN runs on every image and
    the metrics say so. A ReLU network's SNN is another function (the naive conversion): its ANN (float32)
    always runs on every image.

    ``agreement`` is measured, never inferred: the fraction of the ``ann_images`` images the ANN ran on where
    the SNN predicts what the ANN predicts (None, not measured, when the ANN ran on no image). On a sample
    that matched bit for bit, ``ann_accuracy`` over all test images takes the SNN's prediction for the
    images the ANN did not run on (what the construction guarantees, checked on ``ann_images`` of them).
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
        ann = torch.cat([sample.argmax(1), snn[checked:]])  # beyond the sample: the SNN's, equal by construction
    else:
        ann = (sample if checked == len(labels) else ann_logits(model, test, device)).argmax(1)
        checked = len(labels)
    metrics = {"ann_accuracy": float((ann == labels).float().mean()), "snn_accuracy": float((snn == labels).float().mean()),
               "agreement": float((ann[:checked] == snn[:checked]).float().mean()) if checked else None,
               "test_images": len(labels), "ann_images": checked, "ann_equal_snn_bitwise": same,
               "eval_seconds": time.perf_counter() - t0}
    metrics["conversion_loss"] = metrics["ann_accuracy"] - metrics["snn_accuracy"]
    return metrics, doc, net
