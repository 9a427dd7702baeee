"""Errors that carry a one-line, user-facing message."""


class ConfigError(ValueError):
    """A processor config, workload or spike file is malformed.

    The message names the offending field (``arch.pe_rows: must be >= 1, got 0``) and is
    printed as-is by the command line, which then exits with status 2.
    """


def did_you_mean(key: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    import difflib

    close = difflib.get_close_matches(str(key), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def brief(value) -> str:
    """``repr(value)``, shortened: an error line quotes the bad value, not a 400-digit integer. Bounded
    work too: a huge list or mapping is abbreviated while it is written, never written out in full."""
    import reprlib

    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"  # str() would refuse it
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 200, 200, 10_000
    text = short.repr(value) if isinstance(value, (list, dict, tuple, set, str)) else repr(value)
    return text if len(text) <= 200 else text[:60] + f"... ({len(text)} characters)"
