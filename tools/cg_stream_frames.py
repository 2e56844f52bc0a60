"""Instructions per fill on a user stream's consumer side, for callgrind (issue 22's measure).

The simulator (HTTPS and its WebSocket streams) runs in a child process, not under
valgrind, so what is counted is only the consumer's process: TLS, the websockets library's
framing, and then either our ``watch_fills``/``watch_orders`` (parse, dedupe, journal,
fan out) or a peer (a bare websockets client that ``json.loads`` each frame; ccxt.pro's
``watch_orders``). Every order is filled by one trade, paced by the child; counting is
switched on after a warm-up of 20 fills and off once the last fill reached the consumer,
so ``I refs`` divided by N is one fill's cost (on Kraken a fill is two frames: the trade
and the order's ``filled`` update, as the venue sends them). Run from the worktree root:

    PYTHONPATH=$PWD/src valgrind --tool=callgrind --instr-atstart=no \
        python tools/cg_stream_frames.py ours kraken 200

Sides: ``ours`` (``--orders`` for watch_orders), ``bare``, ``ccxtpro`` (Binance only).
Without valgrind it prints the send-to-consumer latencies (p50, p90), a sanity check:
the child does not share the consumer's GIL here, unlike the benchmark's in-process
simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())

WARM = 20


# --- the child: the simulator --------------------------------------------------------------


def serve(venue: str) -> None:
    from securetrade.sim import SimLimits, Simulator
    from securetrade.sim.kraken_rules import _order_number

    balances = {"USDT": Decimal(10) ** 9, "BTC": Decimal(0)}
    limits = SimLimits(weight=10**12, orders=10**12)
    with Simulator(limits=limits, kraken_limits=None) as sim:
        server = sim.serve()
        ws = sim.serve_kraken_ws(server) if venue == "kraken" else sim.serve_ws(server)
        key = sim.create_key(venue=venue, balances=balances)
        hello = {
            "base_url": server.base_url,
            "pins": server.pins,
            "ca_pem": server.ca_pem,
            "user_url": ws.user_url,
            "key": [key.key_id, key.secret.expose().decode("ascii")],
        }
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "subscribed":
                print(json.dumps(len(ws.send_times())), flush=True)
            elif command == "sent":
                print(json.dumps(ws.send_times()), flush=True)
            elif command == "trade":
                pace = float(args[0]) / 1000
                numbers = [_order_number(a) if venue == "kraken" else int(a) for a in args[1:]]

                def trade(numbers: list[int | None] = numbers, pace: float = pace) -> None:
                    for number in numbers:
                        if number is not None:
                            sim.market.trade(number, Decimal("0.001"))
                        time.sleep(pace)

                threading.Thread(target=trade, daemon=True).start()
                print(json.dumps("started"), flush=True)


# --- the parent: the consumer being counted -----------------------------------------------


class Child:
    def __init__(self, venue: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 our own interpreter and file
            [sys.executable, __file__, "--serve", venue],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        self.hello = self.ask(None)

    def ask(self, command: str | None) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


PROFILE: Any = None


def _callgrind(flag: str) -> None:
    if "--profile" in sys.argv:  # cProfile over the same window instead, for attribution
        global PROFILE
        import cProfile
        import pstats

        if flag == "on":
            PROFILE = cProfile.Profile()
            PROFILE.enable()
        else:
            PROFILE.disable()
            stats = pstats.Stats(PROFILE)
            stats.sort_stats("tottime").print_stats(35)
            stats.sort_stats("cumulative").print_stats(45)
        return
    command = ["callgrind_control", "-i", flag, str(os.getpid())]
    subprocess.run(command, capture_output=True)  # noqa: S603 (valgrind's own tool)


async def main(side: str, venue: str, n: int, pace_ms: float, orders_kind: bool) -> None:
    from securetrade import AsyncClient
    from securetrade.keys import ApiKey, Environment, Scope
    from securetrade.models import LimitOrder
    from securetrade.ratelimit import RateLimiter
    from securetrade.streams import FillEvent, OrderUpdate, StreamOptions

    child = Child(venue)
    hello = child.hello
    key_id, secret = hello["key"]
    key = ApiKey(
        venue,
        key_id,
        secret,
        scopes=(Scope.READ, Scope.TRADE, Scope.CANCEL),
        environment=Environment.SIMULATED,
    )
    pins = {str(h): [str(p) for p in v] for h, v in hello["pins"].items()}
    symbol = "BTC/USDT" if venue == "kraken" else "BTCUSDT"
    seen: dict[str, int] = {}
    target = [0]
    reached = asyncio.Event()
    order_of_trade: dict[str, str] = {}

    def saw(trade: str) -> None:
        seen[trade] = time.perf_counter_ns()
        if len(seen) >= target[0]:
            reached.set()

    with tempfile.TemporaryDirectory() as tmp:
        client = AsyncClient(
            key,
            base_url=hello["base_url"],
            pins=pins,
            cadata=hello["ca_pem"],
            journal=str(Path(tmp) / "journal.db"),
            limiter=RateLimiter.in_memory([]),
        )
        async with client:
            placed = [
                await client.place_order(
                    LimitOrder(symbol=symbol, side="BUY", quantity="0.001", price="30000")
                )
                for _ in range(WARM + n)
            ]
            close: Any = None
            if side == "ours":
                options = StreamOptions(sweep_every=3600.0, stale_after=60.0)
                watch = client.watch_orders if orders_kind else client.watch_fills
                stream = watch(stream_url=hello["user_url"], options=options)

                async def consume() -> None:
                    async for event in stream:
                        if isinstance(event, FillEvent):
                            saw(event.trade_id)
                        elif isinstance(event, OrderUpdate) and event.status == "FILLED":
                            saw(event.order_id)

                task = asyncio.create_task(consume())
            elif side == "bare":
                task, close = await _bare(venue, hello, key, client, saw)
            else:
                task, close = await _ccxtpro(hello, key, saw)
            while child.ask("subscribed") < 1:
                await asyncio.sleep(0.05)

            async def fills(batch: list[Any], count: int) -> None:
                target[0] = count
                reached.clear()
                ids = " ".join(str(o.order_id) for o in batch)
                child.ask(f"trade {pace_ms} {ids}")
                await asyncio.wait_for(reached.wait(), 600)

            await fills(placed[:WARM], WARM)
            _callgrind("on")
            await fills(placed[WARM:], WARM + n)
            _callgrind("off")
            sent = child.ask("sent")[0]
            task.cancel()
            if close is not None:
                await close()
    child.close()
    del order_of_trade
    if side == "ours" and orders_kind:  # keyed by order id: the sender's keys are trade ids
        return
    lat = sorted((seen[t] - sent[t]) / 1000 for t in list(seen)[WARM:] if t in sent)
    if lat:
        p50, p90 = lat[len(lat) // 2], lat[int(len(lat) * 0.9)]
        print(f"{side} {venue}: {len(lat)} fills, latency p50 {p50:.0f} µs, p90 {p90:.0f} µs")


async def _bare(venue: str, hello: Any, key: Any, client: Any, saw: Any) -> tuple[Any, Any]:
    from websockets.asyncio.client import connect

    from securetrade.signing import signer_for
    from securetrade.streams.dialects import BinanceStreams
    from securetrade.transport.tls import PinSet, pinned_ssl_context

    pins = {str(h): [str(p) for p in v] for h, v in hello["pins"].items()}
    context = pinned_ssl_context(PinSet(pins), cadata=hello["ca_pem"])
    socket = await connect(hello["user_url"], ssl=context, proxy=None, compression=None)
    if venue == "kraken":
        token = await client.ws_token()
        params = {"channel": "executions", "token": token.expose().decode("ascii")}
        await socket.send(json.dumps({"method": "subscribe", "params": params, "req_id": 1}))
    else:
        frames = BinanceStreams().auth_frames(key, signer_for(key), int(time.time() * 1000))
        await socket.send(frames[0])
    await socket.recv()

    async def read_kraken() -> None:
        async for text in socket:
            message = json.loads(text, parse_float=Decimal)
            for row in message.get("data") or ():
                if isinstance(row, dict) and row.get("exec_type") == "trade":
                    saw(str(row["exec_id"]))

    async def read_binance() -> None:
        async for text in socket:
            event = json.loads(text).get("event") or {}
            if event.get("x") == "TRADE":
                saw(str(event["t"]))

    reader = read_kraken if venue == "kraken" else read_binance
    return asyncio.create_task(reader()), socket.close


async def _ccxtpro(hello: Any, key: Any, saw: Any) -> tuple[Any, Any]:
    import ccxt.pro as pro

    from benchmarks._orders import _point_ccxt_at

    folder = tempfile.mkdtemp(prefix="cg-ccxtpro-")
    cafile = str(Path(folder) / "ca.pem")
    Path(cafile).write_text(hello["ca_pem"], encoding="ascii")
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
    _point_ccxt_at(exchange, hello["base_url"])
    exchange.urls["api"]["ws"]["ws-api"]["spot"] = hello["user_url"]
    await exchange.load_markets()

    async def read() -> None:
        while True:
            orders = await exchange.watch_orders("BTC/USDT")
            for order in orders:
                if order["status"] == "closed":
                    trades = order.get("trades") or []
                    saw(str(trades[0]["id"]) if trades else str(order["id"]))

    async def close() -> None:
        await exchange.close()

    return asyncio.create_task(read()), close


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        pace = next((float(a[7:]) for a in sys.argv if a.startswith("--pace=")), 50.0)
        asyncio.run(
            main(
                args[0],
                args[1],
                int(args[2]) if len(args) > 2 else 200,
                pace,
                "--orders" in sys.argv,
            )
        )
