"""What a simulation records: per layer, the events in and spikes out, spike-time histograms, the work done."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch


@dataclass
class SpikeRecord:
    """Per weight layer: events arriving; per fire op: spikes emitted and their step histogram (batch totals)."""

    input_events: list[float] = field(default_factory=list)
    output_spikes: list[float] = field(default_factory=list)
    histograms: list[torch.Tensor] = field(default_factory=list)
    spike_times: list[torch.Tensor] = field(default_factory=list)  # per fire op, kept when asked
    overflows: int = 0
    peaks: list[int] = field(default_factory=list)  # event simulation, per weight layer: largest |accumulator|
    images: int = 0
    certified: int = 0  # neurons whose potential float32 gave (exact by the group bound, or within an error bound)
    refined: int = 0  # those recomputed in float64 because the error bound straddled a threshold
    work: Counter = field(default_factory=Counter)  # closed form: multiply-adds by precision, values gathered
    shortcut_events: list[float] = field(default_factory=list)  # per add: shortcut spikes accumulated


def record_fire(record: SpikeRecord, times: torch.Tensor, T: int, keep_times: bool) -> float:
    """Append the spike count and step histogram of one fire op; returns the spike count."""
    counts = torch.bincount(times.flatten(), minlength=T + 1)  # one pass; bin T counts the silent neurons
    histogram = counts[:T].cpu()
    record.histograms.append(histogram)
    record.output_spikes.append(float(histogram.sum()))
    if keep_times:
        record.spike_times.append(times.long())
    return record.output_spikes[-1]
