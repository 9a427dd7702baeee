"""hwmodel throughput: scalar ``estimate`` and vectorized ``estimate_many`` on VGG-16 / CIFAR-10, one core.

Targets (issue 2): a scalar estimate under 1 ms; at least 100,000 vectorized estimates per second.
Run: ``OMP_NUM_THREADS=1 python benchmarks/hwmodel_throughput.py`` (best of several repeats; the
machine is shared, so the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core, before numpy loads a BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import hwmodel  # noqa: E402
from _timing import LoadCheck, add_load_option  # noqa: E402


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=int, default=100_000)
    parser.add_argument("--scalar", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zigzag-python", help="an interpreter with zigzag-dse installed (optional comparison)")
    add_load_option(parser)
    args = parser.parse_args()
    load = LoadCheck(args.allow_load)

    arch = hwmodel.load_arch("paper")
    wl = hwmodel.load_workload("vgg16-cifar10")
    hwmodel.estimate(arch, wl)   # warm the per-workload table cache

    scalar_s = best(lambda: [hwmodel.estimate(arch, wl) for _ in range(args.scalar)], args.repeats) / args.scalar

    rng = np.random.default_rng(0)
    n = args.configs
    fields = {"pe_rows": rng.integers(1, 65, n), "pe_cols": rng.integers(1, 65, n),
              "weight_sram_kib": rng.uniform(32, 4096, n), "vmem_sram_kib": rng.uniform(16, 1024, n),
              "spike_sram_kib": rng.uniform(8, 512, n), "time_window": rng.integers(2, 17, n),
              "weight_bits": rng.integers(2, 9, n), "accumulator_bits": rng.integers(8, 25, n) + 24,
              "clock_mhz": rng.uniform(50, 800, n), "sram_cell": rng.choice(["lstp", "hp"], n)}
    many_all = best(lambda: hwmodel.estimate_many(arch, wl, **fields), args.repeats)
    few = {"pe_rows": fields["pe_rows"], "weight_sram_kib": fields["weight_sram_kib"]}
    many_few = best(lambda: hwmodel.estimate_many(arch, wl, **few), args.repeats)
    feasible = hwmodel.estimate_many(arch, wl, **fields)["feasible"].mean()

    print(f"hwmodel throughput, VGG-16 / CIFAR-10 ({len(wl.layers)} layers), {platform.processor() or platform.machine()},"
          f" numpy {np.__version__}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, best of {args.repeats}")
    print(f"scalar estimate():          {scalar_s * 1e3:8.3f} ms per estimate  = {1 / scalar_s:>12,.0f} /s"
          f"   (target < 1 ms: {'met' if scalar_s < 1e-3 else 'NOT met'})")
    for label, seconds in [("estimate_many, 10 fields:", many_all), ("estimate_many, 2 fields: ", many_few)]:
        rate = n / seconds
        print(f"{label}   {seconds:8.3f} s for {n:,} configs = {rate:>12,.0f} /s"
              f"   (target >= 100,000/s: {'met' if rate >= 1e5 else 'NOT met'}; {rate * scalar_s:,.0f}x scalar)")
    print(f"feasible fraction of the random 10-field configs: {feasible:.3f}")
    zigzag_python = args.zigzag_python or (sys.executable if importlib.util.find_spec("zigzag") else None)
    if zigzag_python:
        compare_zigzag(zigzag_python, wl, arch, args.repeats)
    else:
        print("zigzag-dse: not installed here (pip install '.[zigzag]' or pass --zigzag-python); comparison skipped")
    print(f"Python-level numpy/builtin calls per scalar estimate (cProfile count, load-independent): "
          f"{numpy_calls(lambda: hwmodel.estimate(arch, wl)):.0f}")
    print("\n".join(load.lines()))


def numpy_calls(fn, repeats: int = 20) -> float:
    """Calls into numpy's Python layer and into builtins per ``fn()`` (ufunc operators are invisible to cProfile)."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(repeats):
        fn()
    profile.disable()
    stats = pstats.Stats(profile).stats
    return sum(calls for (path, _, _), (calls, *_rest) in stats.items() if "numpy" in path or path == "~") / repeats


def compare_zigzag(python: str, wl, arch, repeats: int) -> None:
    """Same 13 VGG-16 conv layers (hwmodel also prices the 5 pools): one estimate vs one ZigZag run."""
    script = Path(__file__).with_name("zigzag_vgg16.py")
    proc = subprocess.run([python, str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"zigzag-dse: failed to run ({tail}); comparison skipped")
        return
    zz = json.loads(proc.stdout.strip().splitlines()[-1])
    conv = hwmodel.workload.parse_workload(
        {"schema": "snn-workload/1", "name": "vgg16-conv", "first_layer_input": "pixels",
         "default_input_firing": wl.default_input_firing,
         "layers": [{"name": layer.name, "type": layer.type, "in_shape": list(layer.in_shape), "kernel": layer.kernel}
                    | ({"out_channels": layer.out_shape[0], "padding": 1} if layer.type == "conv" else {})
                    for layer in wl.layers if layer.type != "linear"]}, "vgg16-conv")
    hwmodel.estimate(arch, conv)
    ours = best(lambda: [hwmodel.estimate(arch, conv) for _ in range(100)], repeats) / 100
    print(f"zigzag-dse {zz['zigzag_version']} (eyeriss-like example, LOMA mapping search), same {zz['layers']} conv "
          f"layers: {zz['seconds']:.2f} s per network vs hwmodel {ours * 1e3:.3f} ms: {zz['seconds'] / ours:,.0f}x")


if __name__ == "__main__":
    main()
