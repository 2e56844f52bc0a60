"""Rows 3-4: whole orders over loopback TLS to the simulator, ours against raw httpx and ccxt.

The simulator runs in a child process (see ``_simserver``) so its threads do not take the
GIL from the client being measured; with two or more CPUs the client is held on one and
the server on another, as in the baseline. Orders are marketable LIMIT buys (0.001 BTC at
70 000, above the simulated price) that fill at once, so no order rests on the book and
the server's work per order stays flat.

The async row serves the simulator from one asyncio loop (``Simulator.serve_fast``): the
same exchange logic (signatures, matching, limits) behind a front end that is not the
bottleneck; the threaded front end tops out near 2,000 orders/s on two CPUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import importlib
import io
import json
import os
import pstats
import secrets
import select
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from securetrade.client import AsyncClient, Client
from securetrade.core import Journal, derive_client_order_id
from securetrade.keys import ApiKey, Environment, Scope
from securetrade.models import LimitOrder, OrderStatus
from securetrade.signing import HmacSha256Signer
from securetrade.transport.base import HttpRequest
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE, BinanceSpot

from ._report import Row, failed_row
from ._timing import Effort, percentile

__all__ = ["SimProcess", "async_row", "cpu_plan", "sync_row"]

TASKS = 50
_ENDPOINT = BINANCE.endpoints[Op.PLACE_ORDER]
_SYMBOL, _QUANTITY, _PRICE = "BTCUSDT", "0.001", "70000.00"


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPU the client and the simulator each get (None: leave scheduling alone)."""

    client: int | None
    server: int | None

    def describe(self) -> str:
        where = (
            "client and simulator not pinned"
            if self.client is None
            else f"client on CPU {self.client}, simulator on CPU {self.server}"
        )
        return where


def cpu_plan(pin: bool) -> CpuPlan:
    """Client on the first allowed CPU, simulator on the last, when there are two."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return CpuPlan(None, None)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return CpuPlan(None, None)
    return CpuPlan(cpus[0], cpus[-1])


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class SimProcess:
    """Parent's handle on the ``_simserver`` child: start, talk over pipes, stop."""

    def __init__(
        self,
        keys: int,
        cpu: int | None,
        *,
        fast: bool = False,
        timeout: float = 60.0,
        kraken: int = 0,
    ) -> None:
        self._argv = [sys.executable, "-m", "benchmarks._simserver", str(keys)]
        if cpu is not None:
            self._argv += ["--cpu", str(cpu)]
        if fast:
            self._argv.append("--fast")
        if kraken:
            self._argv += ["--kraken", str(kraken)]
        self._timeout = timeout
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.hello: dict[str, Any] = {}

    def __enter__(self) -> SimProcess:
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._process = subprocess.Popen(  # noqa: S603 our own interpreter and module
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        try:
            self.hello = self._read()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _read(self) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], self._timeout)
        line = process.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"simulator process did not answer: {self._errors()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _errors(self) -> str:
        if self._stderr is None:
            return "?"
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].strip() or "(no stderr)"

    def command(self, name: str) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write(name + "\n")
        process.stdin.flush()
        return self._read()

    def posted(self) -> int:
        """Orders the server has been sent so far."""
        return int(self.command("stats")["posted"])

    @property
    def base_url(self) -> str:
        return str(self.hello["base_url"])

    @property
    def ca_pem(self) -> str:
        return str(self.hello["ca_pem"])

    @property
    def pins(self) -> dict[str, list[str]]:
        return {str(h): [str(p) for p in v] for h, v in self.hello["pins"].items()}

    def api_key(self, index: int, venue: str = "binance") -> ApiKey:
        keys = self.hello["keys"] if venue == "binance" else self.hello[f"{venue}_keys"]
        key_id, secret = keys[index]
        return ApiKey(
            venue,
            key_id,
            secret,
            scopes=(Scope.READ, Scope.TRADE, Scope.CANCEL),
            environment=Environment.SIMULATED,
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()


def _order() -> LimitOrder:
    return LimitOrder(symbol=_SYMBOL, side="BUY", quantity=_QUANTITY, price=_PRICE)


def _raw_request(
    venue: BinanceSpot, key: ApiKey, signer: HmacSha256Signer, tag: str
) -> HttpRequest:
    """The request our client would send for one order, built and signed outside any timing."""
    cid = derive_client_order_id(venue.name, key.key_id, tag)
    return venue.prepare(
        _ENDPOINT,
        venue.order_params(_order(), cid),
        key_id=key.key_id,
        signer=signer,
        timestamp_ms=int(time.time() * 1000),
    )


def _top_costs(profile: cProfile.Profile, title: str, lines: int = 25) -> str:
    out = io.StringIO()
    out.write(f"--- profile: {title} (top {lines} by own time) ---\n")
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(lines)
    out.write(f"--- profile: {title} (top {lines} by cumulative time) ---\n")
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


# --- row 3: one order at a time ------------------------------------------------------------

#: A filled Binance order's answer as the simulator sends it, for the parser's cost alone.
_ORDER_BODY = (
    b'{"symbol":"BTCUSDT","orderId":1234567,"orderListId":-1,"clientOrderId":"st-0f1e2d3c4b5a'
    b'69788796a5b4c3d2e1f0","transactTime":1718000000000,"price":"0.00000000","origQty":"0.00100'
    b'000","executedQty":"0.00100000","cummulativeQuoteQty":"60.00000000","status":"FILLED","time'
    b'InForce":"GTC","type":"MARKET","side":"BUY","workingTime":1718000000000,"selfTradePrevent'
    b'ionMode":"EXPIRE_MAKER","fills":[{"price":"60000.00000000","qty":"0.00100000","commission"'
    b':"0.00000000","commissionAsset":"BNB","tradeId":42}]}'
)
_ORDER_REPLY = (
    b"HTTP/1.1 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11\r\n"
    b"Date: Mon, 10 Jun 2024 06:13:20 GMT\r\nContent-Type: application/json\r\n"
    b"X-MBX-USED-WEIGHT-1M: 3\r\nX-MBX-ORDER-COUNT-10S: 1\r\nX-MBX-ORDER-COUNT-1D: 1\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_ORDER_BODY), _ORDER_BODY)
)


def parser_cost_us(rounds: int = 5, per_round: int = 2000) -> float:
    """Median µs the shared HTTP layer (httptools) spends reading one order's answer."""
    from securetrade.transport.wire import ResponseReader

    timings = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(per_round):
            reader = ResponseReader()
            reader.feed(_ORDER_REPLY)
        timings.append((time.perf_counter_ns() - start) / 1000 / per_round)
    return statistics.median(timings)


def sync_row(effort: Effort, plan: CpuPlan, profiles: list[str] | None = None) -> Row:
    """``order_sync_vs_raw_httpx``: place_order through every layer vs a bare POST, p50 µs.

    A third side, the same client with its journal in memory, runs interleaved too: the
    difference to ours is what the durable journal costs per order.
    """
    with (
        _pinned(plan.client),
        SimProcess(3, plan.server) as server,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp,
    ):
        raw_key = server.api_key(1)
        journal = Journal(Path(tmp) / "journal.sqlite3", synchronous="FULL")
        client = Client(
            server.api_key(0),
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=journal,
        )
        in_memory = Client(
            server.api_key(2),
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            journal=":memory:",
        )
        raw = httpx.Client(
            base_url=server.base_url,
            verify=ssl.create_default_context(cadata=server.ca_pem),
            trust_env=False,
        )
        order = _order()
        signer = HmacSha256Signer(raw_key.secret)
        run = secrets.token_hex(4)
        not_filled = raw_errors = 0

        def place(which: Client, tag: str) -> float:
            nonlocal not_filled
            start = time.perf_counter_ns()
            placed = which.place_order(order, idempotency_key=f"sync-{run}-{tag}")
            elapsed = (time.perf_counter_ns() - start) / 1000
            not_filled += placed.status is not OrderStatus.FILLED
            return elapsed

        def raw_once(tag: str) -> float:
            nonlocal raw_errors
            request = _raw_request(BINANCE, raw_key, signer, f"raw-{run}-{tag}")
            start = time.perf_counter_ns()
            response = raw.request(
                request.method, request.target, headers=list(request.headers), content=request.body
            )
            elapsed = (time.perf_counter_ns() - start) / 1000
            raw_errors += response.status_code != 200
            return elapsed

        samples: dict[str, list[float]] = {"ours": [], "raw": [], "memory": []}
        try:
            for i in range(effort.warmup_orders):  # clock sync, exchangeInfo, TLS handshakes
                place(client, f"warm{i}")
                raw_once(f"warm{i}")
                place(in_memory, f"warm{i}")
            not_filled = raw_errors = 0
            before = server.posted()
            for i in range(effort.sync_orders):
                samples["ours"].append(place(client, str(i)))
                samples["raw"].append(raw_once(str(i)))
                samples["memory"].append(place(in_memory, str(i)))
            posted = server.posted() - before
            if profiles is not None:
                profile = cProfile.Profile()
                profile.enable()
                for i in range(min(100, effort.sync_orders)):
                    place(client, f"prof{i}")
                profile.disable()
                profiles.append(_top_costs(profile, "sync place_order"))
        finally:
            client.close()
            in_memory.close()
            raw.close()
            journal.close()

    p50 = {side: statistics.median(values) for side, values in samples.items()}
    p90 = {side: percentile(values, 0.9) for side, values in samples.items()}
    problems = []
    if posted != 3 * effort.sync_orders:
        problems.append(f"server saw {posted} POSTs for {3 * effort.sync_orders} orders")
    if not_filled or raw_errors:
        problems.append(f"{not_filled} of ours not filled, {raw_errors} raw non-200")
    return Row(
        "order_sync_vs_raw_httpx",
        p50["ours"],
        p50["raw"],
        "µs p50",
        peer_name="raw httpx.Client",
        note=(
            f"{effort.sync_orders} orders per side, interleaved, after {effort.warmup_orders} "
            f"warm-up; p90 ours {p90['ours']:,.0f} / raw {p90['raw']:,.0f} µs; journal: SQLite "
            f"file, synchronous=FULL. Same client with journal=':memory:': p50 "
            f"{p50['memory']:,.0f} µs ({p50['memory'] / p50['raw']:.2f}x raw), so the durable "
            f"journal costs ~{p50['ours'] - p50['memory']:,.0f} µs/order; reading the answer "
            f"(httptools) costs {parser_cost_us():.1f} µs/response; {plan.describe()}; "
            + ("; ".join(problems) if problems else "server counted exactly one POST per order")
        ),
    )


# --- row 4: 50 concurrent tasks -------------------------------------------------------------


def ccxt_binance(ccxt_async: Any, server: SimProcess, key: ApiKey, cafile: str) -> Any:
    """A ccxt async Binance exchange object for ``key``, aimed at the simulator process and
    trusting its CA; no rate limiter of ccxt's own (ours runs, so the peer's must not)."""
    exchange = ccxt_async.binance(
        {
            "apiKey": key.key_id,
            "secret": key.secret.expose().decode("ascii"),
            "enableRateLimit": False,
            "cafile": cafile,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    _point_ccxt_at(exchange, server.base_url)
    return exchange


def _point_ccxt_at(exchange: Any, base_url: str) -> None:
    """Rewrite every ccxt API root to the simulator, keeping the paths."""
    target = urlsplit(base_url)
    api = exchange.urls["api"]
    for name, url in list(api.items()):
        if isinstance(url, str):
            parts = urlsplit(url)
            api[name] = urlunsplit((target.scheme, target.netloc, parts.path, "", ""))


async def _round(worker: Callable[[int, int], Awaitable[None]], per_task: int) -> float:
    """Orders per second for one round: TASKS tasks, each placing ``per_task`` in turn."""

    async def task(index: int) -> None:
        for j in range(per_task):
            await worker(index, j)

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(task(i) for i in range(TASKS)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    for outcome in outcomes:  # every task has ended: nothing is left running on a failure
        if isinstance(outcome, BaseException):
            raise outcome
    return TASKS * per_task / elapsed


@dataclass(slots=True)
class _Side:
    """One contender in the async row: how it places an order, and what it measured."""

    name: str
    worker: Callable[[int, int], Awaitable[None]] | None = None
    rates: list[float] | None = None
    failure: str | None = None
    wrong_posts: int = 0


async def _async_main(
    server: SimProcess, effort: Effort, cafile: str, tmp: str, profiles: list[str] | None
) -> tuple[_Side, _Side, _Side]:
    order = _order()
    run = secrets.token_hex(4)
    journal = Journal(Path(tmp) / "async-journal.sqlite3", synchronous="FULL")
    ours_client = AsyncClient(
        server.api_key(0),
        base_url=server.base_url,
        pins=server.pins,
        cadata=server.ca_pem,
        journal=journal,
    )
    ours, peer, floor = _Side("ours"), _Side("ccxt"), _Side("aiohttp")
    round_no = 0

    async def ours_worker(task: int, j: int) -> None:
        placed = await ours_client.place_order(
            order, idempotency_key=f"async-{run}-{round_no}-{task}-{j}"
        )
        if placed.status is not OrderStatus.FILLED:
            raise RuntimeError(f"our order ended {placed.status.value}")

    ours.worker = ours_worker

    exchange: Any = None
    try:
        ccxt_async = importlib.import_module("ccxt.async_support")
        exchange = ccxt_binance(ccxt_async, server, server.api_key(1), cafile)

        async def ccxt_worker(task: int, j: int) -> None:
            placed = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 70000.0)
            if placed.get("status") != "closed":
                raise RuntimeError(f"ccxt order ended {placed.get('status')!r}")

        peer.worker = ccxt_worker
    except ImportError as exc:
        peer.failure = f"ccxt.async_support is not installed ({exc})"

    session: Any = None
    try:
        aiohttp = importlib.import_module("aiohttp")
        floor_key = server.api_key(2)
        floor_signer = HmacSha256Signer(floor_key.secret)
        floor_venue = BinanceSpot()
        floor_venue.recv_window_ms = 60_000  # requests are built before the round starts
        ssl_context = ssl.create_default_context(cadata=server.ca_pem)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context, limit=100))
        prebuilt: dict[tuple[int, int], HttpRequest] = {}
        url = server.base_url + _ENDPOINT.path

        async def floor_worker(task: int, j: int) -> None:
            request = prebuilt.pop((task, j))
            async with session.post(url, data=request.body, headers=dict(request.headers)) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"raw aiohttp got HTTP {r.status}")

        def prepare_floor(per_task: int) -> None:
            for task in range(TASKS):
                for j in range(per_task):
                    tag = f"floor-{run}-{round_no}-{task}-{j}"
                    prebuilt[task, j] = _raw_request(floor_venue, floor_key, floor_signer, tag)

        floor.worker = floor_worker
    except ImportError as exc:
        floor.failure = f"aiohttp is not installed ({exc})"

    async def play(side: _Side, per_task: int, timed: bool) -> None:
        nonlocal round_no
        if side.worker is None or side.failure is not None:
            return
        round_no += 1
        if side is floor:
            prepare_floor(per_task)
        before = server.posted()
        try:
            rate = await _round(side.worker, per_task)
        except Exception as exc:  # a contender that fails is reported, not fatal
            side.failure = f"{type(exc).__name__}: {exc}"[:300]
            return
        if server.posted() - before != TASKS * per_task:
            side.wrong_posts += 1
        if timed:
            side.rates = [*(side.rates or []), rate]

    try:
        await ours_client.place_order(order, idempotency_key=f"async-{run}-first")
        if peer.worker is not None:
            try:
                await exchange.load_markets()
            except Exception as exc:  # reported as the reason for n/a
                peer.failure = f"load_markets: {type(exc).__name__}: {exc}"[:300]
        sides = (ours, peer, floor)
        for side in sides:  # warm-up: open 50 connections each, fill lazy caches
            await play(side, 1, timed=False)
        for _ in range(effort.async_rounds):
            for side in sides:
                await play(side, effort.async_per_task, timed=True)
        if profiles is not None and ours.failure is None:
            profile = cProfile.Profile()
            profile.enable()
            await play(ours, effort.async_per_task, timed=False)
            profile.disable()
            profiles.append(_top_costs(profile, f"async place_order, {TASKS} tasks"))
    finally:
        await ours_client.aclose()
        journal.close()
        if exchange is not None:
            await exchange.close()
        if session is not None:
            await session.close()
    return ours, peer, floor


def async_row(effort: Effort, plan: CpuPlan, profiles: list[str] | None = None) -> Row:
    """``async_throughput_vs_ccxt``: orders/s with 50 concurrent tasks, every layer on."""
    name, unit = "async_throughput_vs_ccxt", "orders/s"
    with (
        _pinned(plan.client),
        SimProcess(3, plan.server, fast=True) as server,
        tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp,
    ):
        cafile = Path(tmp) / "ca.pem"
        cafile.write_text(server.ca_pem, encoding="ascii")
        ours, peer, floor = asyncio.run(_async_main(server, effort, str(cafile), tmp, profiles))

    def rate(side: _Side) -> float | None:
        return None if side.failure is not None or not side.rates else statistics.median(side.rates)

    orders = TASKS * effort.async_per_task
    parts = [
        f"median of {effort.async_rounds} rounds per side of {TASKS} tasks x "
        f"{effort.async_per_task} orders ({orders}/round), sides alternated"
    ]
    floor_rate, peer_rate = rate(floor), rate(peer)
    if floor_rate is not None:
        parts.append(
            "server: the simulator on one asyncio loop (Simulator.serve_fast); its ceiling "
            f"(raw aiohttp, 50 tasks, prebuilt signed requests): "
            f"{floor_rate:,.0f} orders/s"
        )
        if peer_rate is not None and 1.5 * peer_rate > 0.9 * floor_rate:
            parts.append(
                f"the server is near the bottleneck: 1.5x ccxt = {1.5 * peer_rate:,.0f} "
                "is beyond 90% of what it can serve, so the target cannot be shown here"
            )
    elif floor.failure:
        parts.append(f"server ceiling not measured: {floor.failure}")
    bad = [s.name for s in (ours, peer, floor) if s.wrong_posts]
    parts.append(
        f"server POST count != orders in rounds of: {', '.join(bad)}"
        if bad
        else "server counted exactly one POST per order"
    )
    parts.append(plan.describe())
    note = "; ".join(parts)
    ours_rate = rate(ours)
    if ours_rate is None:
        return failed_row(name, unit, f"ours failed: {ours.failure}", higher_is_better=True)
    if peer_rate is None:
        return Row(
            name,
            ours_rate,
            None,
            unit,
            higher_is_better=True,
            peer_name="ccxt async",
            reason=f"ccxt could not be measured: {peer.failure}",
            note=note,
        )
    # Each round of ours is followed by one of ccxt: the ratio is the median of those
    # pairs, so that the machine's drift between rounds (it moves whole rounds by 2x on
    # this VM) cancels out instead of landing on one side's median.
    pairs = [o / c for o, c in zip(ours.rates or [], peer.rates or [], strict=True)]
    ratio = statistics.median(pairs)
    note = (
        f"ratio: median of {len(pairs)} per-round ratios, ours over the ccxt round run right "
        f"after it ({min(pairs):.2f} to {max(pairs):.2f}); the ratio of the median rates is "
        f"{ours_rate / peer_rate:.2f}; {note}"
    )
    return Row(
        name,
        ours_rate,
        peer_rate,
        unit,
        higher_is_better=True,
        peer_name="ccxt async",
        note=note,
        ratio=ratio,
    )
