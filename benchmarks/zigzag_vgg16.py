"""Time ZigZag (zigzag-dse) on the 13 VGG-16 / CIFAR-10 conv layers; prints one JSON line.

Run with an interpreter that has ``zigzag-dse`` (``pip install '.[zigzag]'``, ideally in its own venv:
it pulls onnx, sympy, networkx, seaborn). ``hwmodel_throughput.py --zigzag-python PY`` calls this.
ZigZag prices a dense 8-bit-activation accelerator (its eyeriss-like example) and searches temporal
mappings per layer, so the comparison is of cost-model speed on the same layer shapes, not of energies.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time

VGG16_CONV = [(3, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16), (128, 256, 8), (256, 256, 8), (256, 256, 8),
              (256, 512, 4), (512, 512, 4), (512, 512, 4), (512, 512, 2), (512, 512, 2), (512, 512, 2)]


def main() -> None:
    import yaml
    import zigzag
    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.CRITICAL)
    os.environ["TQDM_DISABLE"] = "1"
    inputs = os.path.join(os.path.dirname(zigzag.__file__), "inputs")
    layers = [{"id": i, "name": f"conv{i}", "operator_type": "Conv",
               "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
               "dimension_relations": ["ix=1*ox+1*fx", "iy=1*oy+1*fy"],
               "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"], "loop_sizes": [1, k, c, s, s, 3, 3],
               "operand_precision": {"W": 5, "I": 8, "O": 16, "O_final": 8}, "operand_source": {"I": max(i - 1, 0)},
               "padding": [[1, 1], [1, 1]], "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [s + 2, s + 2]}
              for i, (c, k, s) in enumerate(VGG16_CONV)]
    with tempfile.TemporaryDirectory() as tmp:
        workload = os.path.join(tmp, "vgg16.yaml")
        with open(workload, "w") as handle:
            yaml.safe_dump(layers, handle, sort_keys=False)
        start = time.perf_counter()
        energy, latency, _ = get_hardware_performance_zigzag(
            workload=workload, accelerator=os.path.join(inputs, "hardware", "eyeriss_like.yaml"),
            mapping=os.path.join(inputs, "mapping", "default.yaml"), opt="energy",
            dump_folder=os.path.join(tmp, "out"), pickle_filename=os.path.join(tmp, "out", "cmes.pickle"))
        seconds = time.perf_counter() - start
    print(json.dumps({"zigzag_version": getattr(zigzag, "__version__", "?"), "layers": len(layers),
                      "seconds": seconds, "energy_pj": float(energy), "latency_cycles": float(latency)}))


if __name__ == "__main__":
    sys.exit(main())
