"""Kraken stream latency: from the simulator writing a fill's ``executions`` message to the
consumer holding it, ours against a bare ``websockets`` client on the same frames. The two
take turns (ours, the peer's, ours, the peer's; one connected at a time), as the Binance
rows do: side by side on one event loop, each frame's latency held the other consumer's
work on its own copy.

``kraken_stream_latency_vs_websockets``: our ``AsyncClient.watch_fills()`` on Kraken
(pinned TLS, numbers read as Decimal, sequence check, order state merged, dedupe, journal
the fill, fan out) against a bare client on the same pinned context that sends the same
token subscription and decodes each message with ``json.loads(parse_float=Decimal)``.
ccxt.pro is not compared: its Kraken spot streams speak WebSocket API v1, which the
simulator does not serve. Each side's latency runs from the moment its copy of the message
was written (one process, one ``perf_counter_ns`` clock).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._report import Row, failed_row
from ._timing import Effort, percentile

__all__ = ["kraken_stream_rows"]

NAME = "kraken_stream_latency_vs_websockets"
_FILLS = {"full": 400, "quick": 100, "smoke": 10}
_UNIT = "µs p50"


def kraken_stream_rows(effort: Effort) -> list[Row]:
    try:
        ours, peer = asyncio.run(_measure(_FILLS.get(effort.label, 400)))
    except Exception as exc:  # a row that cannot run is reported, never a crash
        return [failed_row(NAME, _UNIT, f"{type(exc).__name__}: {exc}")]
    p99_ours, p99_peer = percentile(ours, 0.99), percentile(peer, 0.99)
    return [
        Row(
            NAME,
            percentile(ours, 0.5),
            percentile(peer, 0.5),
            _UNIT,
            peer_name="bare websockets client",
            note=(
                f"p99 {p99_ours:.0f} vs {p99_peer:.0f} µs (ratio {p99_ours / p99_peer:.2f}); "
                f"{len(ours)} fills"
            ),
        )
    ]


async def _bare_peer(ws: Any, token: Any, seen: dict[str, int], count: int) -> Any:
    """Subscribed when this returns; the returned coroutine reads until ``count`` fills."""
    from websockets.asyncio.client import connect

    from securetrade.transport.tls import PinSet, pinned_ssl_context

    context = pinned_ssl_context(PinSet(ws.pins), cadata=ws.ca_pem)
    socket = await connect(ws.user_url, ssl=context, proxy=None, compression=None)
    params = {"channel": "executions", "token": token.expose().decode("ascii")}
    await socket.send(json.dumps({"method": "subscribe", "params": params, "req_id": 1}))
    await socket.recv()  # the subscription's answer

    async def read() -> None:
        async for text in socket:
            message = json.loads(text, parse_float=Decimal)
            for row in message.get("data") or ():
                if isinstance(row, dict) and row.get("exec_type") == "trade":
                    seen[str(row["exec_id"])] = time.perf_counter_ns()
            if len(seen) >= count:
                return

    return read, socket.close


async def _measure(count: int) -> tuple[list[float], list[float]]:
    """Latencies in µs, ours and the peer's, from phases that take turns (ours, the peer's,
    ours, the peer's) as the Binance rows do: one consumer connected at a time, so neither
    pays for the other's work on the shared event loop."""
    from securetrade.client import AsyncClient
    from securetrade.models import LimitOrder
    from securetrade.ratelimit import RateLimiter
    from securetrade.sim import Simulator

    with (
        Simulator(kraken_limits=None) as sim,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp,
    ):
        server = sim.serve()
        ws = sim.serve_kraken_ws(server)
        key = sim.create_key(venue="kraken", balances={"USDT": Decimal("10000000")})
        settings: dict[str, Any] = {
            "base_url": server.base_url,
            "pins": server.pins,
            "cadata": server.ca_pem,
            "journal": str(Path(tmp) / "journal.db"),
            "limiter": RateLimiter.in_memory([]),  # placing the orders is not what is timed
        }
        phases = 4
        per_phase = max(1, count // phases)
        async with AsyncClient(key, **settings) as client:
            orders = [
                await client.place_order(
                    LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.001", price="30000")
                )
                for _ in range(per_phase * phases)
            ]
        ours: list[float] = []
        peer: list[float] = []
        for phase in range(phases):
            batch = orders[phase * per_phase : (phase + 1) * per_phase]
            if phase % 2 == 0:
                ours += await _our_phase(sim, ws, key, settings, batch)
            else:
                peer += await _peer_phase(sim, ws, key, settings, batch)
    return ours, peer


def _trade_paced(sim: Any, batch: list[Any]) -> threading.Thread:
    """The counterparties fill each order of ``batch``, paced, from another thread."""
    from securetrade.sim.kraken import _order_number

    def trade() -> None:
        for order in batch:
            number = _order_number(order.order_id)
            if number is not None:
                sim.market.trade(number, Decimal("0.001"))
            time.sleep(0.002)

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    return thread


async def _subscribed(ws: Any) -> None:
    """The consumer is subscribed, and the snapshot of the open orders it was sent (to
    either side alike) has had its time to be read before the first fill."""
    while not ws.send_times():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def _left(ws: Any) -> None:
    while ws.send_times():  # the server has seen the consumer leave
        await asyncio.sleep(0.01)


def _latencies(sent: dict[str, int], seen: dict[str, int]) -> list[float]:
    return [(seen[t] - sent[t]) / 1000 for t in seen if t in sent]


async def _our_phase(
    sim: Any, ws: Any, key: Any, settings: dict[str, Any], batch: list[Any]
) -> list[float]:
    from securetrade.client import AsyncClient
    from securetrade.streams import FillEvent, StreamOptions

    options = StreamOptions(sweep_every=3600.0, stale_after=60.0)
    seen: dict[str, int] = {}
    async with AsyncClient(key, **settings) as client:
        stream = client.watch_fills(stream_url=ws.user_url, options=options)

        async def consume() -> None:
            async for event in stream:
                if isinstance(event, FillEvent):
                    seen[event.trade_id] = time.perf_counter_ns()
                if len(seen) >= len(batch):
                    return

        task = asyncio.create_task(consume())
        await _subscribed(ws)
        thread = _trade_paced(sim, batch)
        await asyncio.wait_for(task, 120)
        sent = ws.send_times()[0]
    thread.join()
    await _left(ws)
    return _latencies(sent, seen)


async def _peer_phase(
    sim: Any, ws: Any, key: Any, settings: dict[str, Any], batch: list[Any]
) -> list[float]:
    from securetrade.client import AsyncClient

    seen: dict[str, int] = {}
    async with AsyncClient(key, **settings) as client:  # only for the token
        token = await client.ws_token()
    read, close = await _bare_peer(ws, token, seen, len(batch))  # subscribed when it returns
    try:
        task = asyncio.create_task(read())
        await _subscribed(ws)
        thread = _trade_paced(sim, batch)
        await asyncio.wait_for(task, 120)
        sent = ws.send_times()[0]
    finally:
        await close()
    thread.join()
    await _left(ws)
    return _latencies(sent, seen)
