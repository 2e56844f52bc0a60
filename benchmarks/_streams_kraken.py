"""Kraken stream latency: from the simulator writing a fill's ``executions`` message to the
consumer holding it, ours against a bare ``websockets`` client on the same frames.

``kraken_stream_latency_vs_websockets``: our ``AsyncClient.watch_fills()`` on Kraken
(pinned TLS, numbers read as Decimal, sequence check, order state merged, dedupe, journal
the fill, fan out) against a bare client on the same pinned context that sends the same
token subscription and decodes each message with ``json.loads(parse_float=Decimal)``.
ccxt.pro is not compared: its Kraken spot streams speak WebSocket API v1, which the
simulator does not serve. Each side's latency runs from the moment its own copy of the
message was written (one process, one ``perf_counter_ns`` clock).
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
    """Subscribed when this returns; the returned task reads until ``count`` fills."""
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

    return asyncio.create_task(read()), socket.close


async def _measure(count: int) -> tuple[list[float], list[float]]:
    from securetrade.client import AsyncClient
    from securetrade.models import LimitOrder
    from securetrade.ratelimit import RateLimiter
    from securetrade.sim import Simulator
    from securetrade.sim.kraken import _order_number
    from securetrade.streams import FillEvent, StreamOptions

    with (
        Simulator(kraken_limits=None) as sim,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp,
    ):
        server = sim.serve()
        ws = sim.serve_kraken_ws(server)
        key = sim.create_key(venue="kraken", balances={"USDT": Decimal("10000000")})
        options = StreamOptions(sweep_every=3600.0, stale_after=60.0)
        client = AsyncClient(
            key,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=str(Path(tmp) / "journal.db"),
            limiter=RateLimiter.in_memory([]),  # placing the orders is not what is timed
        )
        async with client:
            orders = [
                await client.place_order(
                    LimitOrder(symbol="BTC/USDT", side="BUY", quantity="0.001", price="30000")
                )
                for _ in range(count)
            ]
            ours: dict[str, int] = {}
            peer: dict[str, int] = {}
            peer_task, peer_close = await _bare_peer(ws, await client.ws_token(), peer, count)
            stream = client.watch_fills(stream_url=ws.user_url, options=options)

            async def consume_ours() -> None:
                async for event in stream:
                    if isinstance(event, FillEvent):
                        ours[event.trade_id] = time.perf_counter_ns()
                    if len(ours) >= count:
                        return

            ours_task = asyncio.create_task(consume_ours())
            while len(ws.send_times()) < 2:  # ours subscribed too
                await asyncio.sleep(0.01)

            def trade() -> None:  # the counterparties, paced, from another thread
                for order in orders:
                    number = _order_number(order.order_id)
                    if number is not None:
                        sim.market.trade(number, Decimal("0.001"))
                    time.sleep(0.002)

            threading.Thread(target=trade, daemon=True).start()
            await asyncio.wait_for(asyncio.gather(ours_task, peer_task), 120)
            sent_peer, sent_ours = ws.send_times()[:2]
            await peer_close()
    common = [t for t in sent_ours if t in ours and t in peer and t in sent_peer]
    return (
        [(ours[t] - sent_ours[t]) / 1000 for t in common],
        [(peer[t] - sent_peer[t]) / 1000 for t in common],
    )
