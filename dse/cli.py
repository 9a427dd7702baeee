"""The ``dse`` command: one sub-command per module, errors as one line and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hwmodel import ConfigError

# sub-command -> module defining ``register(subparsers)``; each registered parser sets ``func``.
_COMMAND_MODULES = ("dse.train.cli", "dse.search.cli")


class _Parser(argparse.ArgumentParser):
    """Bad flags are one line and exit status 2, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dse", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _storage_failure(exc: BaseException | None) -> str | None:
    """Why a study-database write failed (disk full, locked, gone: the database rolled it back), or None
    if ``exc`` is not a storage failure. Optuna wraps SQLAlchemy's error, which wraps the driver's."""
    while exc is not None:
        if type(exc).__module__.startswith("sqlalchemy"):
            return str(getattr(exc, "orig", None) or exc).splitlines()[0]
        exc = exc.__cause__
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`| head`): nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return 0
    except OSError as exc:  # disk full, permission denied: files already written stay valid (atomic writes)
        print(f"error: {exc.filename or 'I/O'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        reason = _storage_failure(exc)
        if reason is None:
            raise  # a bug: keep its traceback
        print(f"error: study storage: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(getattr(args, "interrupted", "interrupted: results written so far are kept"), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
