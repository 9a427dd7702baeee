"""Errors that carry a one-line, user-facing message."""


class ConfigError(ValueError):
    """A processor config, workload or spike file is malformed.

    The message names the offending field (``arch.pe_rows: must be >= 1, got 0``) and is
    printed as-is by the command line, which then exits with status 2.
    """
