"""Stream latency: from the simulator writing a fill's frame to the consumer holding it.

Two consumers watch the same account on the same simulator WebSocket server, taking turns
(one connected at a time, so neither's latency holds the other's parsing):

* ``stream_latency_vs_websockets``: our ``AsyncClient.watch_fills()`` (pinned TLS, parse
  to Decimal, dedupe, journal the fill, fan out) against a bare ``websockets`` client on
  the same pinned context that sends the same signed subscription and ``json.loads`` each
  frame;
* ``stream_latency_vs_ccxtpro``: our ``watch_orders()`` against ccxt.pro's
  ``watch_orders()`` (ccxt.pro subscribes with the same ``userDataStream.subscribe.signature``
  on the WebSocket API URL, which can be pointed at the simulator, trusting its CA).

Each side's latency runs from the moment its frame was written (same process, one
``perf_counter_ns`` clock). Ratios: ours over the peer's, at p50 (the row) and p99 (the
note). Every order is filled by one trade, so a trade id names one order's update.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._report import Row, failed_row
from ._timing import Effort, percentile

__all__ = ["stream_rows"]

_FILLS = {"full": 400, "quick": 100, "smoke": 10}
_UNIT = "µs p50"
_PEERS = {
    "stream_latency_vs_websockets": "bare websockets client",
    "stream_latency_vs_ccxtpro": "ccxt.pro watch_orders",
}


def stream_rows(effort: Effort, wanted: set[str] | None = None) -> list[Row]:
    rows = []
    for name, peer_name in _PEERS.items():
        if wanted is not None and name not in wanted:
            continue
        try:
            ours, peer = asyncio.run(_measure(name, _FILLS.get(effort.label, 400)))
        except Exception as exc:  # a row that cannot run is reported, never a crash
            rows.append(failed_row(name, _UNIT, f"{type(exc).__name__}: {exc}"))
            continue
        p99_ours, p99_peer = percentile(ours, 0.99), percentile(peer, 0.99)
        rows.append(
            Row(
                name,
                percentile(ours, 0.5),
                percentile(peer, 0.5),
                _UNIT,
                peer_name=peer_name,
                note=(
                    f"p99 {p99_ours:.0f} vs {p99_peer:.0f} µs (ratio {p99_ours / p99_peer:.2f}); "
                    f"{len(ours)} fills"
                ),
            )
        )
    return rows


Reader = tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Awaitable[None]]]


async def _bare_peer(sim: Any, ws: Any, key: Any, seen: dict[str, int], count: int) -> Reader:
    """A bare websockets client: subscribed when this returns; the coroutine reads."""
    from websockets.asyncio.client import connect

    from securetrade.signing import signer_for
    from securetrade.streams.dialects import BinanceStreams
    from securetrade.transport.tls import PinSet, pinned_ssl_context

    context = pinned_ssl_context(PinSet(ws.pins), cadata=ws.ca_pem)
    socket = await connect(ws.user_url, ssl=context, proxy=None, compression=None)
    frames = BinanceStreams().auth_frames(key, signer_for(key), int(time.time() * 1000))
    await socket.send(frames[0])
    await socket.recv()  # the subscription's answer

    async def read() -> None:
        async for text in socket:
            event = json.loads(text).get("event") or {}
            if event.get("x") == "TRADE":
                seen[str(event["t"])] = time.perf_counter_ns()
                if len(seen) >= count:
                    return

    return read, socket.close


async def _ccxtpro_peer(sim: Any, ws: Any, key: Any, seen: dict[str, int], count: int) -> Reader:
    """ccxt.pro's binance ``watch_orders``, aimed at the simulator (REST and WebSocket API)."""
    import ccxt.pro as pro

    from ._orders import _point_ccxt_at

    folder = tempfile.mkdtemp(prefix="securetrade-bench-ccxtpro-")
    cafile = str(Path(folder) / "ca.pem")
    Path(cafile).write_text(ws.ca_pem, encoding="ascii")
    exchange = pro.binance(
        {
            "apiKey": key.key_id,
            "secret": key.secret.expose().decode("ascii"),
            "cafile": cafile,
            "enableRateLimit": False,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    _point_ccxt_at(exchange, sim_base_url(sim))
    exchange.urls["api"]["ws"]["ws-api"]["spot"] = ws.user_url
    await exchange.load_markets()
    pending = asyncio.ensure_future(exchange.watch_orders("BTC/USDT"))
    while not ws.send_times():  # subscribed
        await asyncio.sleep(0.01)

    async def read() -> None:
        nonlocal pending
        while len(seen) < count:
            orders = await pending
            now = time.perf_counter_ns()
            pending = asyncio.ensure_future(exchange.watch_orders("BTC/USDT"))
            for order in orders:
                if order["status"] == "closed":
                    seen.setdefault(_trade_of(sim, order["id"]), now)

    async def close() -> None:
        pending.cancel()
        await exchange.close()

    return read, close


def sim_base_url(sim: Any) -> str:
    return str(sim._servers[0].base_url)


def _trade_of(sim: Any, order_id: str) -> str:
    return str(sim.market.orders[int(order_id)].fills[0][2])


async def _measure(name: str, count: int) -> tuple[list[float], list[float]]:
    """Latencies in µs, ours and the peer's, from phases that take turns (ours, the peer's,
    ours, the peer's): one consumer connected at a time, so neither pays for the other's
    work on the shared event loop (side by side, each frame's latency held the other
    library's parsing of its own copy)."""
    from securetrade.client import AsyncClient
    from securetrade.models import LimitOrder
    from securetrade.sim import Simulator

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp:
        server = sim.serve()
        ws = sim.serve_ws(server)
        key = sim.create_key(balances={"USDT": Decimal("10000000"), "BTC": Decimal("0")})
        settings: dict[str, Any] = {
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
            "journal": str(Path(tmp) / "journal.db"),
        }
        phases = 4
        per_phase = max(1, count // phases)
        async with AsyncClient(key, **settings) as client:
            orders = [
                await client.place_order(
                    LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000")
                )
                for _ in range(per_phase * phases)
            ]
        ours: list[float] = []
        peer: list[float] = []
        for phase in range(phases):
            batch = orders[phase * per_phase : (phase + 1) * per_phase]
            if phase % 2 == 0:
                ours += await _our_phase(name, sim, ws, key, settings, batch)
            else:
                peer += await _peer_phase(name, sim, ws, key, batch)
    return ours, peer


def _trade_paced(sim: Any, batch: list[Any]) -> threading.Thread:
    """The counterparties fill each order of ``batch``, paced, from another thread."""

    def trade() -> None:
        for order in batch:
            sim.market.trade(int(order.order_id), Decimal("0.001"))
            time.sleep(0.002)

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    return thread


async def _wait_subscribed(ws: Any) -> None:
    while not ws.send_times():
        await asyncio.sleep(0.01)


def _latencies(sent: dict[str, int], seen: dict[str, int]) -> list[float]:
    return [(seen[t] - sent[t]) / 1000 for t in seen if t in sent]


async def _our_phase(
    name: str, sim: Any, ws: Any, key: Any, settings: dict[str, Any], batch: list[Any]
) -> list[float]:
    from securetrade.client import AsyncClient
    from securetrade.streams import FillEvent, OrderUpdate, StreamOptions

    options = StreamOptions(sweep_every=3600.0, stale_after=60.0)
    seen: dict[str, int] = {}
    async with AsyncClient(key, **settings) as client:
        fills = name == "stream_latency_vs_websockets"
        watch = client.watch_fills if fills else client.watch_orders
        stream = watch(stream_url=ws.user_url, options=options)

        async def consume() -> None:
            async for event in stream:
                if isinstance(event, FillEvent):
                    seen[event.trade_id] = time.perf_counter_ns()
                elif isinstance(event, OrderUpdate) and event.status == "FILLED":
                    seen[_trade_of(sim, event.order_id)] = time.perf_counter_ns()
                if len(seen) >= len(batch):
                    return

        task = asyncio.create_task(consume())
        await _wait_subscribed(ws)
        thread = _trade_paced(sim, batch)
        await asyncio.wait_for(task, 120)
        sent = ws.send_times()[0]
    thread.join()
    while ws.send_times():  # the server has seen us leave
        await asyncio.sleep(0.01)
    return _latencies(sent, seen)


async def _peer_phase(name: str, sim: Any, ws: Any, key: Any, batch: list[Any]) -> list[float]:
    seen: dict[str, int] = {}
    make = _bare_peer if name == "stream_latency_vs_websockets" else _ccxtpro_peer
    read, close = await make(sim, ws, key, seen, len(batch))  # subscribed when it returns
    try:
        task = asyncio.create_task(read())
        thread = _trade_paced(sim, batch)
        await asyncio.wait_for(task, 120)
        sent = ws.send_times()[0]
    finally:
        await close()
    thread.join()
    while ws.send_times():  # the server has seen the peer leave
        await asyncio.sleep(0.01)
    return _latencies(sent, seen)
