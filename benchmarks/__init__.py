"""Side-by-side benchmarks of securetrade against ccxt and raw recipes (DESIGN.md section 4).

Run ``python -m benchmarks [--quick] [--json PATH] [--only ROW]`` (or ``nox -s bench``) from
the repository root. Every row measures ours and its peer in the same run, because only
such ratios are stable on a shared machine. It lives outside the ``securetrade`` package,
so the wheel does not ship it; ccxt, aiohttp and the simulator are loaded only when a row
needs them.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see :mod:`benchmarks.cli`."""
    from .cli import main as run

    return run(argv)
