"""Instructions per fill on our side only, from a frame's text to the consumer's ``async for``:
no socket, no TLS, no websockets framing (``tools/cg_stream_frames.py`` counts those too).

Frames as the simulator writes them are handed to the connector's ``_received`` (what the
websockets protocol callback calls), one fill at a time; the processing task, the
journal's write and the consumer run as in a real stream. Deterministic, so small savings
show. Run from the worktree root:

    PYTHONPATH=$PWD/src valgrind --tool=callgrind --instr-atstart=no \
        python tools/cg_stream_replay.py kraken 500

``kraken``: each fill is two frames (the trade, then the order's ``filled`` update, as the
venue sends them); ``binance``: one ``executionReport``. ``--orders`` watches orders
instead of fills. ``--direct``: the frames go through the websockets connection's
``process_event`` (``_DirectConnection``, as a read of both frames together delivers
them) instead of straight to ``_received``. Without valgrind it prints µs per fill and
from handing the first frame over to the consumer (sanity checks only).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, os.getcwd())

WARM = 50


def _callgrind(flag: str) -> None:
    command = ["callgrind_control", "-i", flag, str(os.getpid())]
    subprocess.run(command, capture_output=True)  # noqa: S603 (valgrind's own tool)


def kraken_frames(n: int) -> list[list[str]]:
    from securetrade.sim.kraken import _trade_txid, _txid
    from securetrade.sim.kraken_ws import _dumps

    fills = []
    sequence = 1
    for i in range(n):
        base = {
            "order_id": _txid(1000 + i),
            "symbol": "BTC/USDT",
            "side": "buy",
            "order_type": "limit",
            "order_qty": Decimal("0.00100000"),
            "cum_qty": Decimal("0.00100000"),
            "timestamp": "2026-12-07T21:00:00.123456Z",
            "cl_ord_id": f"cid-{i}",
            "limit_price": Decimal("30000.00"),
        }
        trade = {
            "exec_type": "trade",
            **base,
            "order_status": "partially_filled",
            "exec_id": _trade_txid(5000 + i),
            "trade_id": 5000 + i,
            "last_qty": Decimal("0.00100000"),
            "last_price": Decimal("30000.00"),
            "cost": Decimal("30.00"),
            "fees": [{"asset": "USDT", "qty": Decimal("0.03")}],
            "liquidity_ind": "m",
        }
        filled = {"exec_type": "filled", **base, "order_status": "filled"}
        frames = []
        for row in (trade, filled):
            sequence += 1
            frames.append(
                f'{{"channel":"executions","type":"update","data":{_dumps([row])},'
                f'"sequence":{sequence}}}'
            )
        fills.append(frames)
    return fills


def binance_frames(n: int) -> list[list[str]]:
    fills = []
    for i in range(n):
        event = {
            "e": "executionReport", "E": 1765000000000, "s": "BTCUSDT", "c": f"cid-{i}",
            "C": "", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.001", "p": "30000",
            "x": "TRADE", "X": "FILLED", "i": 1000 + i, "l": "0.001", "z": "0.001",
            "L": "30000", "n": "0.000001", "N": "BTC", "T": 1765000000000, "t": 5000 + i,
        }  # fmt: skip
        fills.append([json.dumps({"subscriptionId": 0, "event": event})])
    return fills


class _Rest:
    async def open_orders(self) -> list[Any]:
        return []


def _direct(received: Any) -> Any:
    """``received`` behind a websockets client connection's ``process_event``, as the
    connector sets it up (a transport that writes nothing)."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.uri import parse_uri

    from securetrade.streams.connection import _DirectConnection

    class Transport(asyncio.Transport):
        def pause_reading(self) -> None: ...

        def resume_reading(self) -> None: ...

        def write(self, data: Any) -> None: ...

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

        def set_write_buffer_limits(self, high: Any = None, low: Any = None) -> None: ...

    connection = _DirectConnection(ClientProtocol(parse_uri("wss://127.0.0.1:9/v2")))
    connection.connection_made(Transport())
    connection.sink = received

    def process(text: str) -> None:
        connection.process_event(Frame(Opcode.TEXT, text.encode()))

    return process


async def main(venue: str, n: int, orders: bool, direct: bool = False) -> None:
    from securetrade.core import Journal
    from securetrade.policy.anomaly import AnomalyMonitor
    from securetrade.streams import FillEvent, OrderUpdate
    from securetrade.streams.dialects import BinanceStreams
    from securetrade.streams.kraken import KrakenStreams
    from securetrade.streams.supervisor import UserStream

    fills = (kraken_frames if venue == "kraken" else binance_frames)(WARM + n)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j.db")
        dialect: Any = KrakenStreams() if venue == "kraken" else BinanceStreams()
        user = UserStream(
            dialect,
            url="wss://127.0.0.1:9/v2",
            context=None,
            credentials=lambda: cast(Any, None),
            now_ms=lambda: 0,
            rest=cast(Any, _Rest()),
            journal=journal,
            monitor=AnomalyMonitor([]),
        )
        user._ours.update(f"cid-{i}" for i in range(WARM + n))
        sub = user.subscribe((OrderUpdate,) if orders else (FillEvent,))
        process = asyncio.get_running_loop().create_task(user._process())
        received = user._connector._received  # type: ignore[union-attr]
        if direct:
            received = _direct(received)

        async def iterate() -> AsyncIterator[Any]:  # as the driver's watch_user wraps it
            async for event in sub:
                yield event

        got: list[int] = []
        arrived = asyncio.Event()

        async def consume() -> None:
            async for event in iterate():
                if isinstance(event, FillEvent) or (
                    isinstance(event, OrderUpdate) and event.status == "FILLED"
                ):
                    got.append(time.perf_counter_ns())
                    arrived.set()

        consumer = asyncio.get_running_loop().create_task(consume())
        await asyncio.sleep(0)

        handed: list[int] = []

        async def one(frames: list[str]) -> None:
            arrived.clear()
            handed.append(time.perf_counter_ns())
            for text in frames:
                received(text)
            await arrived.wait()
            for _ in range(4):  # the booking, the journal's write
                await asyncio.sleep(0)

        for frames in fills[:WARM]:
            await one(frames)
        _callgrind("on")
        start = time.perf_counter()
        for frames in fills[WARM:]:
            await one(frames)
        elapsed = time.perf_counter() - start
        _callgrind("off")
        consumer.cancel()
        process.cancel()
        journal.close()
    path = sorted((g - h) / 1000 for g, h in zip(got[WARM:], handed[WARM:], strict=True))
    print(
        f"{venue}: {n} fills, {elapsed / n * 1e6:.1f} µs per fill, from the first frame "
        f"handed over to the consumer p50 {path[len(path) // 2]:.1f} µs (wall, noisy)"
    )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(
        main(
            args[0],
            int(args[1]) if len(args) > 1 else 500,
            "--orders" in sys.argv,
            "--direct" in sys.argv,
        )
    )
