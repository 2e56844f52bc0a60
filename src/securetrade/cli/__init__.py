"""The ``securetrade`` command.

Each module of this package adds its own subcommands through ``register(commands)``,
so a new command is a new file, and none of them is imported by ``import securetrade``.
Modules whose name starts with ``_`` are helpers, not commands.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from ._guard import OneLineParser, run

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand of every module in this package."""
    from .. import __version__

    parser = OneLineParser(
        prog="securetrade",
        description="Secure client SDK for exchange and broker APIs.",
        epilog=(
            "Exit status: 0 done; 1 refused or failed, with one line on stderr that says what "
            "to do; 2 a usage error; 130 interrupted. `audit verify` and `keys check` add their "
            "own (see their --help)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"securetrade {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``securetrade`` console script and ``python -m securetrade``."""
    args = build_parser().parse_args(argv)
    prog = " ".join(
        ["securetrade", *(str(v) for k, v in vars(args).items() if k.endswith("command") and v)]
    )
    return run(args, prog)


if __name__ == "__main__":
    sys.exit(main())
