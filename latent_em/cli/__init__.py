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

__all__ = ["main", "CommandError"]

#: sub-command modules (each defines ``register(subparsers)``)
COMMANDS = ("demo", "fit", "predict", "compare")


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
