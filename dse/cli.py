"""The ``dse`` command: one sub-command per module, errors as one line and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from hwmodel.errors import ConfigError

# sub-command -> module defining ``register(subparsers)``; each registered parser sets ``func``.
_COMMAND_MODULES = ("dse.train_cli", "dse.search.cli")


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: results written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
