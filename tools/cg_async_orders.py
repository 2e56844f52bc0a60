"""Instructions per order on the async order path, for callgrind (issue 16's measure).

Run from the worktree root, so that ``benchmarks`` and ``src`` are this tree's:

    PYTHONPATH=$PWD/src valgrind --tool=callgrind --instr-atstart=no \
        python tools/cg_async_orders.py 500

Counting is switched on only around the measured rounds (after three warm-up rounds of
50), so the total ``I refs`` divided by N is the cost of one order through every layer:
AsyncClient, durable SQLite journal (synchronous=FULL), group commit, the simulator in
its own process over loopback TLS.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())

from benchmarks._orders import SimProcess, _order
from securetrade import AsyncClient
from securetrade.core import Journal


def _callgrind(flag: str) -> None:
    subprocess.run(  # noqa: S603 - valgrind's own control tool, our pid
        ["callgrind_control", "-i", flag, str(os.getpid())],  # noqa: S607
        capture_output=True,
    )


async def main(n: int) -> None:
    with (
        SimProcess(3, None, fast=True, timeout=300) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        journal = Journal(Path(tmp) / "j.sqlite3", synchronous="FULL")
        client = AsyncClient(
            server.api_key(0),
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=journal,
        )
        order, run = _order(), secrets.token_hex(4)

        async def round_of_50(tag: str) -> None:
            await asyncio.gather(
                *(client.place_order(order, idempotency_key=f"{run}-{tag}-{i}") for i in range(50))
            )

        for w in range(3):
            await round_of_50(f"w{w}")
        _callgrind("on")
        for b in range(n // 50):
            await round_of_50(f"m{b}")
        _callgrind("off")
        await client.aclose()
        journal.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
