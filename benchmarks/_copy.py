"""Copy-trading rows: one leader event fanned out to N followers, against the same orders
placed directly through one ``AsyncClient`` and against a ccxt async fan-out (one
exchange object per follower, ``asyncio.gather``), and the memory each follower costs.

Every side places N orders at the same simulator process over loopback TLS, with a durable
journal on our sides. The copy side's first event reads each follower's balances (a
platform does that once per follower); it is a warm-up, not timed.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import secrets
import statistics
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

from securetrade.client import AsyncClient
from securetrade.core import Journal
from securetrade.models import Side

from ._orders import CpuPlan, SimProcess, _order, _pinned, ccxt_binance
from ._report import Row, failed_row
from ._timing import Effort

__all__ = ["copy_rows"]

_FOLLOWERS = {"full": 1000, "quick": 200, "smoke": 10}
_ROUNDS = {"full": 3, "quick": 2, "smoke": 1}


def copy_rows(effort: Effort, plan: CpuPlan) -> list[Row]:
    n = _FOLLOWERS.get(effort.label, 1000)
    rounds = _ROUNDS.get(effort.label, 3)
    with (
        _pinned(plan.client),
        SimProcess(n + 1, plan.server, fast=True, timeout=600) as server,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-copy-") as tmp,
    ):
        cafile = Path(tmp) / "ca.pem"
        cafile.write_text(server.ca_pem, encoding="ascii")
        figures = asyncio.run(_measure(server, n, rounds, tmp, str(cafile)))
    return _rows(figures, n, rounds, plan)


async def _measure(
    server: SimProcess, n: int, rounds: int, tmp: str, cafile: str
) -> dict[str, Any]:
    from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode

    figures: dict[str, Any] = {"direct": [], "copy": [], "ccxt": [], "p50": [], "p99": []}
    order = _order()
    run = secrets.token_hex(4)
    connect: dict[str, dict[str, Any]] = {
        "binance": {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
    }
    direct = AsyncClient(
        server.api_key(0),
        journal=Journal(Path(tmp) / "direct.sqlite3", synchronous="FULL"),
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
    )
    await asyncio.gather(
        *(direct.place_order(order, idempotency_key=f"warm-{run}-{i}") for i in range(50))
    )
    engine = CopyEngine(
        secret=secrets.token_bytes(32),
        connect=connect,
        journal=Journal(Path(tmp) / "copy.sqlite3", synchronous="FULL"),
    )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        engine.add(
            Follower(
                f"f{i}",
                server.api_key(i + 1),
                Sizing(SizingMode.FIXED_QUANTITY, Decimal("0.001")),
                slippage_bps=Decimal(0),  # the order's price is far above the market
                ttl_ms=600_000,
            )
        )
    gc.collect()
    figures["ours_bytes"] = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    price = order.price

    def event(tag: str) -> LeaderEvent:
        return LeaderEvent(
            f"{run}-{tag}", "BTCUSDT", Side.BUY, Decimal("0.001"), price, int(time.time() * 1000)
        )

    warm = await engine.copy(event("warm"))
    figures["warm_counts"] = warm.counts
    exchanges = await _ccxt_exchanges(server, n, cafile, figures)

    amount = float(price)

    async def ccxt_round() -> float | None:
        started = time.perf_counter()
        try:
            orders = (e.create_order("BTC/USDT", "limit", "buy", 0.001, amount) for e in exchanges)
            await asyncio.gather(*orders)
        except Exception as exc:  # ccxt's own errors: its row fails, the others stand
            figures["ccxt_failure"] = f"ccxt fan-out failed: {type(exc).__name__}: {exc}"
            return None
        return time.perf_counter() - started

    if exchanges:
        await ccxt_round()  # untimed, as our warm event: 1,000 TLS handshakes, lazy caches
    for r in range(rounds):
        _clean_slate()
        started = time.perf_counter()
        await asyncio.gather(
            *(direct.place_order(order, idempotency_key=f"d-{run}-{r}-{i}") for i in range(n))
        )
        figures["direct"].append(time.perf_counter() - started)
        _clean_slate()
        report = await engine.copy(event(f"round-{r}"))
        figures["copy"].append(report.seconds)
        figures["counts"] = report.counts
        figures["p50"].append(report.latency_ms(0.5))
        figures["p99"].append(report.latency_ms(0.99))
        if exchanges and "ccxt_failure" not in figures:
            _clean_slate()
            took = await ccxt_round()
            if took is not None:
                figures["ccxt"].append(took)
    # ccxt's close() sleeps timeout_on_exit (250 ms) after closing: one at a time, 1,000 of
    # them would take four minutes.
    await asyncio.gather(*(exchange.close() for exchange in exchanges))
    await engine.aclose()
    await direct.aclose()
    return figures


def _clean_slate() -> None:
    """Start a timed round from a full collection. The 1,000 ccxt objects make the heap
    large enough that one full collection takes about 0.3 s here: without this, whichever
    side's round happened to trigger one paid for everyone's objects, and the medians
    moved by half."""
    gc.collect()


async def _ccxt_exchanges(
    server: SimProcess, n: int, cafile: str, figures: dict[str, Any]
) -> list[Any]:
    """One ccxt exchange object per follower, markets loaded once and shared (as a careful
    platform would: loading them per object would cost N requests)."""
    try:
        ccxt_async = importlib.import_module("ccxt.async_support")
    except ImportError as exc:
        figures["ccxt_failure"] = f"ccxt.async_support is not installed ({exc})"
        return []
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    exchanges = []
    for i in range(n):
        exchange = ccxt_binance(ccxt_async, server, server.api_key(i + 1), cafile)
        exchanges.append(exchange)
    gc.collect()
    figures["ccxt_bytes"] = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    await exchanges[0].load_markets()
    for exchange in exchanges[1:]:
        exchange.set_markets(exchanges[0].markets, exchanges[0].currencies)
    return exchanges


def _rows(figures: dict[str, Any], n: int, rounds: int, plan: CpuPlan) -> list[Row]:
    copy_s = statistics.median(figures["copy"]) if figures["copy"] else None
    direct_s = statistics.median(figures["direct"]) if figures["direct"] else None
    ccxt_s = statistics.median(figures["ccxt"]) if figures["ccxt"] else None
    p50 = [x for x in figures["p50"] if x is not None]
    p99 = [x for x in figures["p99"] if x is not None]
    note = (
        f"{n} followers, one order each, median of {rounds} rounds per side; outcomes "
        f"{figures.get('counts')}; fan-out latency p50 "
        f"{statistics.median(p50) if p50 else float('nan'):.0f} ms, p99 "
        f"{statistics.median(p99) if p99 else float('nan'):.0f} ms; journal durable "
        f"(synchronous=FULL); {plan.describe()}"
    )
    rows = []
    if copy_s is None or direct_s is None:
        return [failed_row("copy_fanout_1000_vs_direct", "s", "the copy side did not run")]
    rows.append(Row("copy_fanout_1000_vs_direct", copy_s, direct_s, "s",
                    peer_name=f"{n} orders through one AsyncClient", note=note))  # fmt: skip
    if ccxt_s is None:
        rows.append(failed_row("copy_fanout_1000_vs_ccxt", "s",
                               figures.get("ccxt_failure", "ccxt did not run")))  # fmt: skip
    else:
        rows.append(Row("copy_fanout_1000_vs_ccxt", copy_s, ccxt_s, "s",
                        peer_name=f"ccxt async, {n} exchange objects, gather",
                        note="ccxt markets loaded once and shared by every object"))  # fmt: skip
    ours_kib = figures["ours_bytes"] / 1024
    ccxt_bytes = figures.get("ccxt_bytes")
    rows.append(
        Row(
            "copy_memory_per_follower_vs_ccxt",
            ours_kib,
            None if ccxt_bytes is None else ccxt_bytes / 1024,
            "KiB",
            peer_name="one ccxt async exchange object (markets shared)",
            note="tracemalloc of adding followers to a CopyEngine (its AsyncClient, policy, "
            "key ring) against building ccxt exchange objects, per object",
            reason=None if ccxt_bytes is not None else figures.get("ccxt_failure"),
        )
    )
    return rows
