"""hwmodel: an analytical energy / latency / area model of a TTFS log-weight SNN processor.

numpy and pyyaml only. See docs/hwmodel.md for the dataflow and every constant's source.
"""

from hwmodel.arch import Arch, load_arch, presets, with_fields
from hwmodel.errors import ConfigError
from hwmodel.report import Report, estimate, estimate_many
from hwmodel.workload import Layer, Workload, load_workload, overlay_spikes

__all__ = ["Arch", "ConfigError", "Layer", "Report", "Workload", "estimate", "estimate_many", "load_arch",
           "load_workload", "overlay_spikes", "presets", "with_fields"]
