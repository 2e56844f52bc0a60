"""One line on stderr and a non-zero exit for every failure of a command, never a traceback.

Typed errors already say what to do; the operating system's errors get the path and a
hint; anything else is named as a bug to report. Every line goes through the one
redaction policy, so a secret in an exception message is not printed either.
``SECURETRADE_DEBUG=1`` re-raises the unexpected ones for a developer.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "OneLineParser",
    "fail",
    "run",
    "say_error",
]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BUG = 1, 2, 130, 70


def say_error(prog: str, message: str) -> None:
    """``prog: message`` as one redacted line on stderr."""
    from ..transport.redaction import redact_text

    line = " ".join(f"{prog}: {message}".split())  # one line, whatever the message held
    print(redact_text(line), file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    """Refuse with a typed error the guard prints as one line (exit status 1)."""
    from ..errors import InvalidRequest

    raise InvalidRequest(message)


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors on one line that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        say_error(self.prog, f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    if where:
        return f"{where}: {what}; check the path and its permissions"
    return f"{what}; check the path, address or permissions given"


def run(args: argparse.Namespace, prog: str) -> int:
    """``args.run(args)``, with every failure turned into one line and an exit status."""
    from ..errors import SecureTradeError

    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        say_error(prog, "interrupted")
        return EXIT_INTERRUPTED
    except SecureTradeError as exc:
        say_error(prog, f"error: {exc}")
        return EXIT_FAILED
    except EOFError:
        say_error(prog, "error: input ended while a prompt waited; pass the value by flag")
        return EXIT_FAILED
    except OSError as exc:
        say_error(prog, f"error: {_os_message(exc)}")
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("SECURETRADE_DEBUG"):
            raise
        say_error(
            prog,
            f"internal error ({type(exc).__name__}: {exc}); please report it, with the "
            "traceback from SECURETRADE_DEBUG=1",
        )
        return EXIT_BUG
