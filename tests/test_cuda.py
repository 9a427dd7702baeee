"""The CUDA path: quantizers, training, export and both simulators on a GPU give what the CPU gives.

Skipped where no GPU is present (CI, these 2-core machines); run on a GPU machine with
``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch

from dse.network.quant import SpikeCode, _cat_floor_pow2, _fused_kernels, cat_reference, log_decode, log_encode
from dse.snn.closed_form import simulate_closed_form
from dse.snn.events import simulate_events
from dse.snn.network import SNNNetwork
from dse.train.checkpoint import load_checkpoint
from dse.train.evaluate import ann_predictions
from dse.train.pipeline import train_and_evaluate
from dse.train.spec import TrainSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
GPU = torch.device("cuda")


def _values(n: int, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 2.0 ** torch.randint(-12, 4, (n,), generator=g)
    edges = torch.tensor([2.0 ** -e for e in range(12)], dtype=torch.float64)  # exact powers and their neighbours
    return torch.cat([x, edges, torch.nextafter(edges, torch.zeros_like(edges))]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cat_quantizer_on_the_gpu_equals_the_cpu_bit_for_bit(dtype) -> None:
    x = _values(200_000, dtype)
    theta, lowest = torch.tensor(1.0, dtype=dtype), torch.tensor(2.0**-7, dtype=dtype)
    cpu = _cat_floor_pow2(x, theta, lowest)
    assert torch.equal(_cat_floor_pow2(x.to(GPU), theta.to(GPU), lowest.to(GPU)).cpu(), cpu)
    for code in (SpikeCode(8), SpikeCode(16, 2, "round")):
        assert torch.equal(cat_reference(x.to(GPU), 1.0, code).cpu(), cat_reference(x, 1.0, code))


def test_fused_cat_kernels_compile_for_the_gpu_and_equal_eager() -> None:
    x = _values(100_000, torch.float32).to(GPU)
    theta = torch.tensor(1.0, device=GPU)
    forward, backward, backward_x = _fused_kernels()
    assert torch.equal(forward(x, theta, theta / 128), _cat_floor_pow2(x, theta, theta / 128))
    grad = torch.randn_like(x)
    from dse.network.quant import _cat_grads

    (gx, gt), (ex, et) = backward(grad, x, theta), _cat_grads(grad, x, theta)
    assert torch.equal(gx, ex) and torch.equal(backward_x(grad, x, theta), ex)
    assert torch.allclose(gt, et, rtol=1e-4)  # a sum: its order may differ between the kernels


def test_log_weights_on_the_gpu_equal_the_cpu() -> None:
    w = torch.randn(4096, dtype=torch.float64)
    assert torch.equal(log_encode(w.to(GPU), 5, 0).cpu(), log_encode(w, 5, 0))
    codes = log_encode(w, 5, 0)
    assert torch.equal(log_decode(codes.to(GPU), 0).cpu(), log_decode(codes, 0))


def test_a_network_trained_on_the_gpu_converts_exactly_and_simulates_as_on_the_cpu(tmp_path) -> None:
    spec = TrainSpec(dataset="digits", model="tiny_vgg", epochs=6, batch_size=64, theta="fixed")
    r = train_and_evaluate(spec, tmp_path, device="cuda", progress=False, monitor=360)
    assert r.metrics["device"] == "cuda" and r.metrics["device_name"]
    assert r.ann_accuracy > 0.8 and r.agreement == 1.0 and r.snn_accuracy == r.ann_accuracy
    model, _, data = load_checkpoint(r.checkpoint)
    # the exact float64 ANN gives the same predictions on either device
    assert torch.equal(ann_predictions(model.to(GPU), data.test, GPU), ann_predictions(model.cpu(), data.test, "cpu"))
    net = SNNNetwork.load(r.snn)
    x = data.test.images
    cpu_logits, cpu_rec = simulate_closed_form(net, x)
    gpu_logits, gpu_rec = simulate_closed_form(net, x.to(GPU))
    assert torch.equal(gpu_logits.cpu(), cpu_logits)  # dyadic sums: exact in any order
    assert [float(v) for v in gpu_rec.output_spikes] == [float(v) for v in cpu_rec.output_spikes]
    events, rec = simulate_events(net, x[:120].to(GPU))
    assert torch.equal(events.cpu(), cpu_logits[:120]) and rec.overflows == 0
