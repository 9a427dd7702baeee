"""Argument types for the command lines: a bad flag is refused by argparse, as one line, before any work.

Each returns the converted value or raises ``argparse.ArgumentTypeError``, which argparse reports as
``argument --flag: <message>`` (exit status 2).
"""

from __future__ import annotations

import argparse
import math


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1)


def count(text: str) -> int:
    """An integer >= 0 (0 means 'no limit' where the flag says so)."""
    return _int(text, 0)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def address(text: str) -> str:
    """A Ray address: ``HOST:PORT``, ``auto`` or ``ray://HOST:PORT``; an empty one would silently mean local."""
    host, _, port = text.rpartition(":")
    if text != "auto" and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, auto or ray://..., got {text!r}")
    return text


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``: a device torch knows and this machine has."""
    if text in ("auto", "cpu"):
        return text  # no torch import for the defaults
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= available:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {available} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device dse runs on (auto, cpu, cuda, cuda:N, mps)")
    return text
