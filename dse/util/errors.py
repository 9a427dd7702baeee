"""Errors that carry a one-line, user-facing message."""

from hwmodel import ConfigError


class UserError(ConfigError):
    """Bad input from the user (a search-space file, a dataset directory, a checkpoint, a flag).

    The command line prints ``error: <message>`` and exits with status 2, never a traceback.
    Subclasses ``hwmodel.ConfigError`` so one ``except`` catches both packages' input errors.
    """
