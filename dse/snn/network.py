"""The SNN as the processor holds it: a layer graph of plain data (tensors and ints), saved with ``torch.save``
and loadable with ``torch.load(..., weights_only=True)``; and what its ops mean to every reader of the graph
(both simulators, the spike statistics)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from dse.network.quant import SpikeCode
from dse.util.atomic import write_bytes
from dse.util.errors import UserError

FORMAT = "dse-snn/2"  # 2: a fire op may hold a per-channel threshold_scale
READABLE = ("dse-snn/1", FORMAT)


@dataclass
class SNNNetwork:
    """A TTFS SNN as the processor holds it: a layer graph. ``ops`` run in order, each on the previous op's
    output unless it names another (``input``: an earlier op's index); ``add`` sums the outputs of its
    ``inputs``, ``shortcut`` subsamples spikes and pads channels (dse.network.resnet). See docs/cat-snn.md."""

    code: SpikeCode
    weight_bits: int
    input_shape: tuple[int, int, int]
    ops: list[dict] = field(default_factory=list)

    def to_state(self) -> dict:
        c = self.code
        return {"format": FORMAT, "time_window": c.time_window, "steps_per_octave": c.steps_per_octave,
                "rounding": c.rounding, "weight_bits": self.weight_bits, "input_shape": list(self.input_shape),
                "ops": self.ops}

    @classmethod
    def from_state(cls, state: dict) -> SNNNetwork:
        if not isinstance(state, dict) or state.get("format") not in READABLE:
            raise UserError(f"not a {FORMAT} network (format={state.get('format') if isinstance(state, dict) else None!r})")
        code = SpikeCode(state["time_window"], state["steps_per_octave"], state["rounding"])
        return cls(code, state["weight_bits"], tuple(state["input_shape"]), list(state["ops"]))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(self.to_state(), buffer)
        write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> SNNNetwork:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt, truncated or unsafe pickles all end here
            raise UserError(f"{path}: not a loadable SNN file ({type(exc).__name__})") from None
        return cls.from_state(state)


def apply_weights(op: dict, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A conv or linear op's weighted sum of ``x`` with weights ``w`` (decoded by the caller), plus ``bias``."""
    if op["op"] == "conv":
        return F.conv2d(x, w, bias, op["stride"], op["padding"])
    return F.linear(x, w, bias)


def reread(net: SNNNetwork) -> set[int]:
    """Indices of the ops whose output a later op reads out of order (``input``, ``inputs``)."""
    out = {op["input"] for op in net.ops if "input" in op}
    return out | {j for op in net.ops if op["op"] == "add" for j in op["inputs"]}
