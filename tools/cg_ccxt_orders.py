"""Instructions per order for ccxt async ``create_order``, for callgrind: the peer of
``tools/cg_async_orders.py`` in the ``async_throughput_vs_ccxt`` row.

Run from the worktree root, so that ``benchmarks`` and ``src`` are this tree's:

    PYTHONPATH=$PWD/src valgrind --tool=callgrind --instr-atstart=no \
        python tools/cg_ccxt_orders.py 500

The same simulator process (``SimProcess(fast=True)``), the same ccxt exchange object the
benchmark row builds (``ccxt_binance``: no ccxt rate limiter, the simulator's CA), 50
concurrent tasks each placing one marketable LIMIT buy per round. Counting is switched on
only around the measured rounds (after ``load_markets`` and three warm-up rounds of 50),
so the total ``I refs`` divided by N is ccxt's client cost of one order.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())

import ccxt.async_support as ccxt_async

from benchmarks._orders import SimProcess, ccxt_binance


def _callgrind(flag: str) -> None:
    command = ["callgrind_control", "-i", flag, str(os.getpid())]  # valgrind's own tool
    subprocess.run(command, capture_output=True, check=False)  # noqa: S603


async def main(n: int) -> None:
    with (
        SimProcess(3, None, fast=True, timeout=300) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cafile = Path(tmp) / "ca.pem"
        cafile.write_text(server.ca_pem, encoding="ascii")
        exchange = ccxt_binance(ccxt_async, server, server.api_key(1), str(cafile))
        try:
            await exchange.load_markets()

            async def one() -> None:
                placed = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 70000.0)
                if placed.get("status") != "closed":
                    raise RuntimeError(f"ccxt order ended {placed.get('status')!r}")

            async def round_of_50() -> None:
                await asyncio.gather(*(one() for _ in range(50)))

            for _ in range(3):
                await round_of_50()
            _callgrind("on")
            for _ in range(n // 50):
                await round_of_50()
            _callgrind("off")
        finally:
            await exchange.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
