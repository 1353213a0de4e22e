"""The ``latent-em`` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module
list below is the registry. Errors a user can fix go to stderr with exit code 2 and no
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._common import CommandError

__all__ = ["main", "CommandError", "DefaultsHelpFormatter"]

#: sub-command modules (each defines ``register(subparsers)``)
COMMANDS = ("demo", "fit", "predict", "compare")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default (unless the help text already says it, or
    the option is a plain switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is argparse.SUPPRESS
            or action.nargs == 0  # a switch (--no-plot, --header, ...)
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latent-em",
        description="Fit latent-variable models by EM and cross-check them with PyMC.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"latent-em {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latent-em`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CommandError, ValueError, TypeError, FileNotFoundError, OSError) as exc:
        sys.stderr.write(f"latent-em {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
