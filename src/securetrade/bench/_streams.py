"""Stream latency: from the simulator writing a fill's frame to the consumer holding it.

Two consumers watch the same account on the same simulator WebSocket server at once: our
``AsyncClient.watch_fills()`` (pinned TLS, parse to Decimal, dedupe, journal the fill, fan
out) and a bare ``websockets`` client on the same pinned context that sends the same
signed subscription and does ``json.loads`` on each frame. Each fill's frame goes to both
connections; each side's latency runs from the moment its own copy was written (same
process, one ``perf_counter_ns`` clock). Ratio: our p50 over the bare client's p50.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

from ._report import Row, failed_row
from ._timing import Effort, percentile

__all__ = ["stream_rows"]

_FILLS = {"full": 400, "quick": 100, "smoke": 10}
_NAME = "stream_latency_vs_websockets"
_UNIT = "µs p50"


def stream_rows(effort: Effort) -> list[Row]:
    try:
        ours, bare = asyncio.run(_measure(_FILLS.get(effort.label, 400)))
    except Exception as exc:  # a row that cannot run is reported, never a crash
        return [failed_row(_NAME, _UNIT, f"{type(exc).__name__}: {exc}")]
    return [
        Row(
            _NAME,
            percentile(ours, 0.5),
            percentile(bare, 0.5),
            _UNIT,
            peer_name="bare websockets client",
            note=(
                f"p99 {percentile(ours, 0.99):.0f} vs {percentile(bare, 0.99):.0f} µs "
                f"(ratio {percentile(ours, 0.99) / percentile(bare, 0.99):.2f}); "
                f"{len(ours)} fills"
            ),
        )
    ]


async def _measure(count: int) -> tuple[list[float], list[float]]:
    from websockets.asyncio.client import connect

    from ..client import AsyncClient
    from ..models import LimitOrder
    from ..signing import signer_for
    from ..sim import Simulator
    from ..streams import FillEvent, StreamOptions
    from ..streams.dialects import BinanceStreams

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp:
        server = sim.serve()
        ws = sim.serve_ws(server)
        key = sim.create_key(balances={"USDT": Decimal("10000000"), "BTC": Decimal("0")})
        options = StreamOptions(sweep_every=3600.0, stale_after=60.0)
        client = AsyncClient(
            key,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=str(Path(tmp) / "journal.db"),
        )
        async with client:
            orders = [
                await client.place_order(
                    LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000")
                )
                for _ in range(count)
            ]
            ours: dict[str, int] = {}
            bare: dict[str, int] = {}
            first = asyncio.Event()

            async def consume_ours() -> None:
                async for event in stream:
                    if isinstance(event, FillEvent):
                        ours[event.trade_id] = time.perf_counter_ns()
                        if len(ours) >= count:
                            return

            socket = await connect(
                ws.user_url, ssl=client._stream_tls(), proxy=None, compression=None
            )
            subscribe = BinanceStreams().auth_frames(key, signer_for(key), int(time.time() * 1000))
            await socket.send(subscribe[0])
            await socket.recv()  # the subscription's answer

            async def consume_bare() -> None:
                first.set()
                async for text in socket:
                    frame = json.loads(text)
                    event = frame.get("event") or {}
                    if event.get("x") == "TRADE":
                        bare[str(event["t"])] = time.perf_counter_ns()
                        if len(bare) >= count:
                            return

            bare_task = asyncio.create_task(consume_bare())
            await first.wait()
            # ours subscribes second: send_times()[0] is the bare client's, [1] ours
            stream = client.watch_fills(stream_url=ws.user_url, options=options)
            tasks = [asyncio.create_task(consume_ours()), bare_task]
            hub = client._stream_hub
            while hub is None or hub.user is None or not hub.user.healthy:
                await asyncio.sleep(0.01)
                hub = client._stream_hub
            done = threading.Event()

            def trade() -> None:  # the counterparties, paced, from another thread
                for order in orders:
                    sim.market.trade(int(order.order_id), Decimal("0.001"))
                    time.sleep(0.002)
                done.set()

            threading.Thread(target=trade, daemon=True).start()
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            sent_bare, sent_ours = ws.send_times()[:2]
            await socket.close()
    common = [t for t in sent_ours if t in ours and t in bare and t in sent_bare]
    return (
        [(ours[t] - sent_ours[t]) / 1000 for t in common],
        [(bare[t] - sent_bare[t]) / 1000 for t in common],
    )
