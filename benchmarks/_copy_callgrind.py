"""CPU per follower order, counted in instructions by valgrind's callgrind (not a bench row).

Wall figures of the copy fan-out move by 3x on a machine shared with other jobs; the
instructions the client process executes move far less (up to 20% between runs at a load
average of 20: group commits, event-loop turns and collections still follow timing, so
compare several runs). This runs the fan-out (and, for the
peer, the same orders placed directly through one ``AsyncClient``) inside
``valgrind --tool=callgrind``, the simulator in its own process outside valgrind, and
differences runs: a process doing ``rounds`` fan-outs of ``n`` orders against one doing
``rounds + extra`` of them leaves the cost of ``extra * n`` orders, with the imports, the
set-up and the warm-up (balances read once per follower) cancelled out.

Run from the worktree root::

    PYTHONPATH=$PWD/src python -m benchmarks._copy_callgrind [--n 200] [--extra 2]

It prints instructions per order for each side and their ratio. One run takes minutes
(valgrind runs Python some 50x slower): it is a profiling aid, run by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["main"]


async def _work(mode: str, n: int, rounds: int, tmp: str) -> None:
    """Inside valgrind: set up, warm up, then ``rounds`` fan-outs (or direct batches)."""
    from securetrade.client import AsyncClient
    from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode
    from securetrade.core import Journal
    from securetrade.models import Side

    from ._orders import SimProcess, _order

    order = _order()
    with SimProcess(n + 1, None, fast=True, timeout=600) as server:
        options: dict[str, Any] = {
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
        }
        journal = Journal(Path(tmp) / f"{mode}.sqlite3", synchronous="FULL")
        if mode == "direct":
            client = AsyncClient(server.api_key(0), journal=journal, **options)
            for r in range(rounds + 1):  # round 0 warms up
                await asyncio.gather(
                    *(client.place_order(order, idempotency_key=f"d-{r}-{i}") for i in range(n))
                )
            await client.aclose()
            return
        engine = CopyEngine(secret=secrets.token_bytes(32), connect={"binance": options},
                            journal=journal)  # fmt: skip
        for i in range(n):
            engine.add(
                Follower(
                    f"f{i}",
                    server.api_key(i + 1),
                    Sizing(SizingMode.FIXED_QUANTITY, order.base_quantity),
                    slippage_bps=Decimal(0),
                    ttl_ms=600_000,
                )
            )
        for r in range(rounds + 1):
            event = LeaderEvent(f"e{r}", order.symbol, Side.BUY, order.base_quantity, order.price,
                                int(time.time() * 1000))  # fmt: skip
            report = await engine.copy(event)
            if report.counts != {"placed": n}:
                raise SystemExit(f"fan-out {r}: {report.counts}")
        await engine.aclose()


def _instructions(mode: str, n: int, rounds: int, out: Path) -> int:
    """Run one measured process under callgrind; the total instructions it executed."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks._copy_callgrind",
        "--inside",
        mode,
        str(n),
        str(rounds),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"{mode} n={n} rounds={rounds} failed:\n{done.stderr[-3000:]}")
    match = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str]) -> int:
    """Measure both sides and print instructions per order (JSON, then a summary line)."""
    if argv[:1] == ["--inside"]:
        mode, n, rounds = argv[1], int(argv[2]), int(argv[3])
        with tempfile.TemporaryDirectory(prefix="securetrade-callgrind-") as tmp:
            asyncio.run(_work(mode, n, rounds, tmp))
        return 0
    parser = argparse.ArgumentParser(prog="benchmarks._copy_callgrind")
    parser.add_argument("--n", type=int, default=200, help="orders per fan-out")
    parser.add_argument("--extra", type=int, default=2, help="fan-outs differenced")
    parser.add_argument("--out", default=tempfile.gettempdir(), help="callgrind files here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    figures: dict[str, Any] = {"n": args.n, "extra": args.extra}
    for mode in ("direct", "copy"):
        low = _instructions(mode, args.n, 1, out / f"callgrind.{mode}.1.{os.getpid()}")
        high = _instructions(
            mode, args.n, 1 + args.extra, out / f"callgrind.{mode}.{1 + args.extra}.{os.getpid()}"
        )
        figures[mode] = {
            "low": low,
            "high": high,
            "per_order": (high - low) / (args.extra * args.n),
        }
    figures["ratio"] = figures["copy"]["per_order"] / figures["direct"]["per_order"]
    print(json.dumps(figures))
    print(
        f"per order: copy {figures['copy']['per_order']:,.0f} instructions, direct "
        f"{figures['direct']['per_order']:,.0f}: {figures['ratio']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
