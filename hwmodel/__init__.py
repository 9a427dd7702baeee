"""hwmodel: an analytical energy / latency / area model of a TTFS log-weight SNN processor.

numpy and pyyaml only. See docs/hwmodel.md for the dataflow and every constant's source.
"""

from hwmodel import spike_code
from hwmodel.arch import Arch, check_field, load_arch, presets, read_yaml, with_fields
from hwmodel.costs import CHIP_KINDS, KINDS, TERMS
from hwmodel.errors import ConfigError, brief
from hwmodel.fields import FIELDS
from hwmodel.files import inside, is_file, load_yaml, read_text
from hwmodel.report import Report, estimate, estimate_many, infeasible_reasons
from hwmodel.workload import BUILTINS, Layer, Workload, load_workload, overlay_spikes, parse_workload, read_document

__all__ = ["Arch", "BUILTINS", "CHIP_KINDS", "ConfigError", "FIELDS", "KINDS", "Layer", "Report", "TERMS", "Workload",
           "brief", "check_field", "estimate", "estimate_many", "infeasible_reasons", "inside", "is_file", "load_arch", "load_yaml", "load_workload",
           "overlay_spikes", "parse_workload", "presets", "read_document", "read_text", "read_yaml", "spike_code", "with_fields"]
