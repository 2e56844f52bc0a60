"""CPU time per order, user and system, of ours and of ccxt async in the async row's setup.

Run from the worktree root, so that ``benchmarks`` and ``src`` are this tree's:

    PYTHONPATH=$PWD/src python tools/cpu_async_orders.py [rounds] [orders per task]

Callgrind (``cg_async_orders.py``, ``cg_ccxt_orders.py``) counts user-space instructions
only: not the kernel's work (the journal's WAL writes and ``fdatasync``, the flush
thread's wake-ups, the context switches around them), nor how fast the instructions run.
The ``async_throughput_vs_ccxt`` row, with both clients CPU-bound on one core, follows
their CPU time instead; this measures it as the row does: the client on the first
allowed CPU and the simulator (``SimProcess(fast=True)``) on the last, 50 tasks per
side, the sides' rounds alternated so that the machine's drift lands on both. Per order:
user and system CPU time of this process (every thread), wall time, voluntary and
involuntary context switches, and for ours the journal flushes (``fdatasync`` rounds).
Wall figures are noisy on a shared machine; the CPU figures much less so.
"""

import asyncio
import os
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, os.getcwd())

import ccxt.async_support as ccxt_async

from benchmarks._orders import SimProcess, _order, _pinned, ccxt_binance, cpu_plan
from securetrade import AsyncClient, OrderStatus
from securetrade.core import Journal

TASKS = 50
_FIELDS = ("user", "sys", "wall", "vcsw", "ivcsw", "flushes")


def _now(flushes: int) -> tuple[float, ...]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (
        usage.ru_utime,
        usage.ru_stime,
        time.perf_counter(),
        usage.ru_nvcsw,
        usage.ru_nivcsw,
        flushes,
    )


async def main(rounds: int, per_task: int, server: SimProcess, tmp: str) -> None:
    cafile = Path(tmp) / "ca.pem"
    cafile.write_text(server.ca_pem, encoding="ascii")
    journal = Journal(Path(tmp) / "j.sqlite3", synchronous="FULL")
    flushed = [0]
    flush = journal.flush

    def counted_flush() -> None:
        flushed[0] += 1
        flush()

    journal.flush = counted_flush  # type: ignore[method-assign]
    client = AsyncClient(
        server.api_key(0),
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=journal,
    )
    exchange = ccxt_binance(ccxt_async, server, server.api_key(1), str(cafile))
    order, run = _order(), secrets.token_hex(4)

    async def ours(tag: str) -> None:
        async def task(i: int) -> None:
            for j in range(per_task):
                placed = await client.place_order(order, idempotency_key=f"{run}-{tag}-{i}-{j}")
                if placed.status is not OrderStatus.FILLED:
                    raise RuntimeError(f"our order ended {placed.status.value}")

        await asyncio.gather(*(task(i) for i in range(TASKS)))

    async def ccxt(tag: str) -> None:
        async def task(i: int) -> None:
            for _ in range(per_task):
                placed = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 70000.0)
                if placed.get("status") != "closed":
                    raise RuntimeError(f"ccxt order ended {placed.get('status')!r}")

        await asyncio.gather(*(task(i) for i in range(TASKS)))

    sides: dict[str, Callable[[str], Awaitable[None]]] = {"ours": ours, "ccxt": ccxt}
    totals = {name: [0.0] * len(_FIELDS) for name in sides}
    try:
        await exchange.load_markets()
        for name, side in sides.items():  # warm-up: connections, caches, clock
            await side(f"{name}-warm")
        for r in range(rounds):
            for name, side in sides.items():
                before = _now(flushed[0])
                await side(f"{name}-{r}")
                after = _now(flushed[0])
                for k, (a, b) in enumerate(zip(before, after, strict=True)):
                    totals[name][k] += b - a
    finally:
        await exchange.close()
        await client.aclose()
        journal.close()
    orders = rounds * per_task * TASKS
    cpu = {}
    for name, values in totals.items():
        user, system, wall, vcsw, ivcsw, flushes = (v / orders for v in values)
        cpu[name] = user + system
        print(
            f"{name:5} user {user * 1e6:4.0f} µs  sys {system * 1e6:3.0f} µs  "
            f"cpu {cpu[name] * 1e6:4.0f} µs  wall {wall * 1e6:4.0f} µs ({1 / wall:,.0f}/s)  "
            f"switches {vcsw:.2f} voluntary {ivcsw:.2f} involuntary  flushes {flushes:.3f}"
        )
    wall_ratio = totals["ccxt"][2] / totals["ours"][2]
    print(
        f"{orders} orders a side: ccxt's CPU per order over ours {cpu['ccxt'] / cpu['ours']:.2f}x, "
        f"their wall times {wall_ratio:.2f}x"
    )


if __name__ == "__main__":
    plan = cpu_plan(True)
    with (
        _pinned(plan.client),
        SimProcess(3, plan.server, fast=True, timeout=300) as sim,
        tempfile.TemporaryDirectory() as directory,
    ):
        asyncio.run(
            main(
                int(sys.argv[1]) if len(sys.argv) > 1 else 8,
                int(sys.argv[2]) if len(sys.argv) > 2 else 10,
                sim,
                directory,
            )
        )
