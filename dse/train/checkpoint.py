"""A trained network on disk: written atomically, read back safely (tensors only: a file that would build Python
objects is refused, never run), and rebuilt from the spec it records."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from dse.data.dataset import Dataset
from dse.data.registry import load_dataset
from dse.network.fold import fold_batchnorm, folded_into
from dse.network.registry import Network
from dse.train.spec import TrainSpec, build_for
from dse.util.atomic import write_bytes
from dse.util.errors import UserError

CHECKPOINT_FORMAT = "dse-checkpoint/1"


def save_checkpoint(model: Network, spec: TrainSpec, path: Path) -> None:
    state = {"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(), "folded": model.folded,
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def safe_load(path: str | Path, what: str = "checkpoint"):
    """``torch.load`` with ``weights_only=True``: tensors and plain data only. A pickle that would build
    Python objects (and so could run code) is refused, never executed; every failure is one line."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, foreign or unsafe: all refused the same way
        detail = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line), None)
        if detail:  # the unpickler met a class or function to import: it would construct objects, maybe run code
            raise UserError(f"{path}: refused: the file asks to load Python objects, not only tensors ({detail})") \
                from None
        raise UserError(f"{path}: not a loadable {what} (corrupt, truncated or not a torch file: "
                        f"{type(exc).__name__})") from None


def load_checkpoint(path: str | Path, data: Dataset | None = None, data_dir=None) -> tuple[Network, TrainSpec, Dataset]:
    """Load a checkpoint safely (``safe_load``); rebuilds the model from its spec."""
    state = safe_load(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a dse checkpoint (no format {CHECKPOINT_FORMAT!r}: a bare state_dict or "
                        "another tool's file does not say which network to build)")
    for key, kind in (("spec", dict), ("folded", bool), ("state_dict", dict)):
        if not isinstance(state.get(key), kind):
            raise UserError(f"{path}: {key}: missing or not a {kind.__name__} (a damaged dse checkpoint)")
    spec = TrainSpec.from_record(state["spec"], where=f"{path}: spec")
    data = data or load_dataset(spec.dataset, data_dir, coarse_labels=spec.coarse_labels)
    try:
        model = build_for(spec, data)
        if state["folded"]:
            fold_batchnorm(model, into=folded_into(state["state_dict"]))
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, ValueError, TypeError):  # missing, extra or mis-shaped tensors
        raise UserError(f"{path}: weights do not match a {spec.model} network for {spec.dataset}") from None
    return model.eval(), spec, data
