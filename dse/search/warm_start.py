"""Warm start across the network grid (``search.warm_start``).

A network for (weight bits, T) starts from the nearest network in the cache that was trained from
scratch with every other training setting equal (same dataset, model, width, epochs, data and code),
and only fine-tunes it, batch norm folded, for ``finetune_epochs``. Nearest: the fewest weight bits
apart plus the fewest octaves of T apart; ties go to more bits, then longer T. With no such network
in the cache, the network trains from scratch and becomes a starting point for the others.

A warm-started network is another network: its cache key holds the key of the one it started from
(``cache.cache_key(..., warm=)``), so which networks were in the cache when it trained is part of what
it is, and a study's record says it (``warm_from``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from dse.search.cache import code_version, data_fingerprint, lookup, train_cached
from dse.search.space import SearchSpace
from dse.train.pipeline import TrainResult
from dse.train.spec import TrainSpec

VARIED = ("weight_bits", "time_window")  # what a warm start may change; everything else must match


def nearest(spec: TrainSpec, cache_dir: Path, fingerprint: str) -> str | None:
    """The key of the cached from-scratch network to start ``spec`` from, or None."""
    same = {k: v for k, v in spec.to_dict().items() if k not in VARIED}
    best = None
    for meta in sorted(Path(cache_dir).glob("*/spec.json")):
        try:
            doc = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        other = doc.get("spec") or {}
        if doc.get("warm") or doc.get("data") != fingerprint or doc.get("code") != code_version() or \
                {k: v for k, v in other.items() if k not in VARIED} != same or \
                not (meta.parent / "checkpoint.pt").is_file():
            continue
        bits, window = other["weight_bits"], other["time_window"]
        if (bits, window) == (spec.weight_bits, spec.time_window):
            continue
        rank = (abs(bits - spec.weight_bits) + abs(math.log2(window / spec.time_window)), -bits, -window)
        if best is None or rank < best[0]:
            best = (rank, meta.parent.name)
    return None if best is None else best[1]


def fine_tune_spec(spec: TrainSpec, epochs: int) -> TrainSpec:
    """What a warm-started network trains: no epoch with batch norm, ``epochs`` of fine-tuning folded."""
    return dataclasses.replace(spec, epochs=0, pretrain_epochs=0, finetune_epochs=epochs)


def train_network(space: SearchSpace, spec: TrainSpec, cache_dir: Path, data_dir=None, device: str = "auto",
                  threads: int | None = None, on_epoch=None) -> tuple[TrainResult, bool]:
    """(result, was cached): ``spec``'s network, warm-started when the space asks for it and it can be."""
    warm = space.search.warm_start
    if warm is None or spec.activation != "cat" or not spec.log_weights:
        return train_cached(spec, cache_dir, data_dir, device, threads, on_epoch=on_epoch)
    fingerprint = data_fingerprint(spec, data_dir)
    hit = lookup(spec, cache_dir, fingerprint)  # trained from scratch already: that one is better
    if hit is not None:
        return hit, True
    source = nearest(spec, cache_dir, fingerprint)
    if source is None:
        return train_cached(spec, cache_dir, data_dir, device, threads, on_epoch=on_epoch, fingerprint=fingerprint)
    return train_cached(fine_tune_spec(spec, warm.finetune_epochs), cache_dir, data_dir, device, threads,
                        on_epoch=on_epoch, warm=source, fingerprint=fingerprint)
