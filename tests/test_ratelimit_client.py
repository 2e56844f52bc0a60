"""The limiter inside the client, against the simulator: weights the venue would count,
priorities, usage and metrics, and 8 processes sharing one IP budget through Redis.

The simulator enforces Binance's limits itself (fixed windows per IP and per account, 429
with Retry-After, then 418 for whoever keeps going); its own counters are the referee.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from securetrade import Client, LimitOrder, RateLimited
from securetrade.ratelimit import CostRule, RateLimiter, cost_of
from securetrade.sim import HttpsServer, SimLimits, Simulator
from securetrade.venues.base import Op
from securetrade.venues.binance import BINANCE

W = "REQUEST_WEIGHT"


# --- weights that depend on the parameters --------------------------------------------------------


def test_binance_weights_follow_the_parameters() -> None:
    open_orders = BINANCE.endpoints[Op.OPEN_ORDERS]
    assert cost_of(open_orders.cost, open_orders.cost_rules, [("symbol", "BTCUSDT")]) == {W: 6}
    assert cost_of(open_orders.cost, open_orders.cost_rules, []) == {W: 80}
    ticker = BINANCE.endpoints[Op.TICKER_PRICE]
    assert cost_of(ticker.cost, ticker.cost_rules, [("symbol", "BTCUSDT")]) == {W: 2}
    assert cost_of(ticker.cost, ticker.cost_rules, []) == {W: 4}


def test_weight_by_a_numeric_parameter() -> None:
    """Binance's order book weight by ``limit``: the first rule that applies wins."""
    rules = (
        CostRule("limit", {W: 5}, absent=True),  # the default limit is 100
        CostRule("limit", {W: 5}, up_to=100),
        CostRule("limit", {W: 25}, up_to=500),
        CostRule("limit", {W: 50}, up_to=1000),
    )
    base = {W: 250}
    weights = {
        limit: cost_of(base, rules, [("symbol", "BTCUSDT"), ("limit", limit)])[W]
        for limit in ("5", "100", "101", "500", "1000", "5000")
    }
    assert weights == {"5": 5, "100": 5, "101": 25, "500": 25, "1000": 50, "5000": 250}
    assert cost_of(base, rules, [("symbol", "BTCUSDT")]) == {W: 5}
    assert cost_of(base, rules, [("limit", "lots")]) == base  # not a number: the worst case


def test_our_weight_count_matches_the_venues() -> None:
    """After a mix of calls, including open orders for every symbol (80), our usage of the
    IP window equals what the simulator counted (it reports it in the next answer)."""
    sim = Simulator(limits=SimLimits(weight=6000, weight_seconds=86400))
    client = Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
    client.instruments()
    client.balances()
    client.open_orders("BTCUSDT")
    client.open_orders()
    client.server_time()
    (ours,) = [row.used for row in client.rate_limit_usage() if row.limit.kind == W]
    probe = sim.handle("GET", "/api/v3/time", {}, b"")  # weight 1, counted by the venue
    assert int(probe.headers["x-mbx-used-weight-1d"]) == ours + 1
    assert ours >= 20 + 3 + 20 + 6 + 80 + 1


# --- priorities, usage and metrics through the client ---------------------------------------------


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_a_cancel_goes_through_while_market_data_waits() -> None:
    """Fill the bulk share with market data; the next market-data call must wait (here: it
    is refused, the wait being far beyond max_rate_wait), yet a cancel passes at once."""
    sim = Simulator(limits=SimLimits(weight=400, weight_seconds=3600))
    reader = InMemoryMetricReader()
    limiter = RateLimiter(meter_provider=MeterProvider(metric_readers=[reader]))
    client = Client(
        sim.create_key(), transport=sim.transport(), journal=":memory:", limiter=limiter
    )
    resting = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000.00")
    )
    (weight,) = [row for row in client.rate_limit_usage() if row.limit.kind == W]
    assert (weight.limit.limit, weight.capacity) == (400, 360)  # published figure, 10 % margin
    bulk_ceiling = int(weight.capacity * 0.7)
    while weight.used + 20 <= bulk_ceiling:
        client.instruments(refresh=True)  # market data: exchangeInfo, weight 20
        (weight,) = [row for row in client.rate_limit_usage() if row.limit.kind == W]
    with pytest.raises(RateLimited):
        client.instruments(refresh=True)  # would wait about an hour for its share
    canceled = client.cancel_order("BTCUSDT", client_order_id=resting.client_order_id)
    assert canceled.status.value == "CANCELED"
    assert sim.dialect.stats.status_429 == sim.dialect.stats.status_418 == 0

    waits = {
        p.attributes["priority"]: p.value
        for p in metric_points(reader, "securetrade.ratelimit.waits")
    }
    assert waits.get("bulk", 0) >= 1
    assert "cancel" not in waits
    assert "order" not in waits
    usage = {
        (p.attributes["kind"], p.attributes["scope"]): p.value
        for p in metric_points(reader, "securetrade.ratelimit.usage")
    }
    (now,) = [row for row in client.rate_limit_usage() if row.limit.kind == W]
    assert usage[(W, "ip")] == now.used
    assert usage[("ORDERS", "account")] == 1
    capacity = {
        (p.attributes["kind"], p.attributes["window_seconds"]): p.value
        for p in metric_points(reader, "securetrade.ratelimit.capacity")
    }
    assert capacity[(W, 3600.0)] == 360


def test_usage_is_per_scope_and_names_no_key(sim: Simulator) -> None:
    key = sim.create_key()
    client = Client(key, transport=sim.transport(), journal=":memory:")
    before = client.rate_limit_usage()
    assert {(row.limit.kind, row.limit.scope.value) for row in before} == {
        (W, "ip"),
        ("ORDERS", "account"),
    }
    assert all(row.used == 0 for row in before)
    client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000"))
    after = {(row.limit.kind, row.limit.seconds): row for row in client.rate_limit_usage()}
    assert after[("ORDERS", 10.0)].used == 1
    assert after[(W, 60.0)].used > 1
    assert key.key_id not in repr(client.rate_limit_usage())


# --- 8 processes, one IP, one Redis ---------------------------------------------------------------

_SIM_WORKER = r"""
import json, sys, time
from securetrade import ApiKey, Client, LimitOrder
from securetrade.ratelimit import RateLimiter

cfg = json.loads(sys.stdin.readline())
key = ApiKey("binance", cfg["key_id"], cfg["secret"], scopes=["read", "trade", "cancel"],
             environment="simulated")
limiter = RateLimiter.redis(cfg["redis"], namespace=cfg["namespace"], account="one-account")
client = Client(key, base_url=cfg["base_url"], pins=cfg["pins"], cadata=cfg["ca"],
                journal=":memory:", limiter=limiter)
client.instruments()  # learn the published limits before the start line
client.recover()  # reconcile the journal: open orders of every symbol, weight 80
print("ready", flush=True)
sys.stdin.readline()
done = 0
while done < cfg["rounds"]:
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000.00"),
        idempotency_key=f"{cfg['name']}-{done}",
    )
    client.cancel_order("BTCUSDT", client_order_id=order.client_order_id)
    if done % 3 == 0:
        client.server_time()
        client.open_orders("BTCUSDT")
        client.balances()
    if done % 6 == 0:
        client.instruments(refresh=True)
        client.open_orders()
    done += 1
client.close()
limiter.close()
print(json.dumps({"rounds": done}), flush=True)
"""


@pytest.mark.timeout(180)
def test_8_processes_sharing_an_ip_through_redis_never_see_429_or_418(redis_url: str) -> None:
    """Binance's limits scaled down (800 weight per IP and 20 orders per account, per 2 s):
    8 bots on one IP, one account, each sure it could use the whole budget on its own.

    Each bot makes a fixed set of calls (about 270 weight and 6 orders), so together they
    ask for several windows' worth whatever the machine's speed: the limiter must pace
    them across windows, and the simulator must never have to say 429 or 418.
    """
    limits = SimLimits(weight=800, weight_seconds=2, orders=20, orders_seconds=2)
    with Simulator(limits=limits) as sim:
        server: HttpsServer = sim.serve()
        namespace = f"sim8-{uuid.uuid4().hex[:12]}"
        workers = []
        for index in range(8):
            key = sim.create_key(account="one-account")
            config = {
                "name": f"bot{index}",
                "key_id": key.key_id,
                "secret": key.secret.expose().decode(),  # a throwaway key of this run
                "redis": redis_url,
                "namespace": namespace,
                "base_url": server.base_url,
                "pins": server.pins,
                "ca": server.ca_pem,
                "rounds": 6,
            }
            worker = subprocess.Popen(
                [sys.executable, "-c", _SIM_WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(config) + "\n")
            worker.stdin.flush()
            workers.append(worker)
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = worker.stdout.readline().strip()
                assert line == "ready", worker.communicate(timeout=30)[1][-2000:]
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            for worker in workers:
                out, err = worker.communicate(timeout=150)
                assert worker.returncode == 0, err[-3000:]
                assert json.loads(out)["rounds"] == 6
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                worker.communicate()  # reaps it and closes its pipes
        stats = sim.dialect.stats
        assert stats.status_429 == 0
        assert stats.status_418 == 0
        # The budget really was contended: together they spent several windows' worth.
        assert stats.weight > 2 * limits.weight
        assert stats.by_path["POST /api/v3/order"] > 2 * limits.orders


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_shared_limiter_is_called_off_the_event_loop(
    sim: Simulator, tmp_path: Any, request: pytest.FixtureRequest, backend: str
) -> None:
    """SQLite and Redis windows wait on a file or the network: the async client makes
    those calls in a worker thread, so its event loop keeps serving other orders."""
    import asyncio
    import threading

    from securetrade import AsyncClient
    from securetrade.ratelimit.backend import Backend

    shared: Backend
    if backend == "sqlite":
        from securetrade.ratelimit.sqlite import SQLiteBackend

        shared = SQLiteBackend(tmp_path / "limits.sqlite3")
    else:
        from securetrade.ratelimit.redis import RedisBackend

        shared = RedisBackend(request.getfixturevalue("redis_url"))
    # Admissions, and landings with the venue's usage headers: every call a request makes.
    callers: dict[str, set[int]] = {"acquire": set(), "reconcile": set()}
    real_admit, real_land = shared.admit, shared.land

    def admit(plan: Any) -> tuple[float, Any]:
        callers["acquire"].add(threading.get_ident())
        return real_admit(plan)

    def land(admission: Any, reports: Any = ()) -> None:
        callers["reconcile"].add(threading.get_ident())
        real_land(admission, reports)

    shared.admit = admit  # type: ignore[method-assign]
    shared.land = land  # type: ignore[method-assign]
    limiter = RateLimiter(backend=shared, namespace=f"offloop-{uuid.uuid4().hex}")
    assert limiter.blocking
    order = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="90000")

    async def run() -> list[Any]:
        async with AsyncClient(
            sim.create_key(), transport=sim.async_transport(), journal=":memory:", limiter=limiter
        ) as client:
            return await asyncio.gather(
                *(client.place_order(order, idempotency_key=f"k-{i}") for i in range(10))
            )

    placed = asyncio.run(run())
    assert len(placed) == 10
    loop_thread = threading.main_thread().ident
    assert callers["acquire"]
    assert callers["reconcile"]
    assert loop_thread not in callers["acquire"] | callers["reconcile"]
    assert not RateLimiter.in_memory().blocking
    limiter.close()
