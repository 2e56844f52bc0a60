"""``venue="ccxt:kraken"``: ccxt's Kraken under every securetrade layer, against the
simulator's Kraken dialect over real TLS on 127.0.0.1.

The behavioural suite (tests/behaviour) checks that a bot sees the same behaviour as on
every other transport. What is checked here is how it holds on this path, on the wire:

* our client order ids are short UUIDs, Kraken's hex ``cl_ord_id`` form, and recovery
  recognises them;
* an order is found by ``cl_ord_id`` through OpenOrders, then ClosedOrders (Kraken's
  QueryOrders needs a txid; ccxt's ``fetch_order`` would send the id as ``userref``);
* AddOrder carries a ``deadline``, so a lost order provably cannot execute later;
* ccxt signs with exactly the nonce the core drew from its source;
* a duplicate ``cl_ord_id`` is adopted, and a cancel names the order by ``cl_ord_id``.

The simulator runs with ``query_needs_txid=True`` throughout: QueryOrders by ``cl_ord_id``
alone is refused, as Kraken's API reference says it is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from securetrade import AsyncClient, Client, Settings
from securetrade.errors import InvalidRequest, OrderNotFound, PinMismatch
from securetrade.keys import ApiKey
from securetrade.models import LimitOrder, MarketOrder, OrderStatus
from securetrade.nonce import MemoryNonceSource
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.certs import make_certificates
from securetrade.venues.base import Endpoint, Op
from securetrade.venues.ccxt import CcxtVenue
from securetrade.venues.ccxt.profiles import kraken_deadline
from securetrade.venues.ccxt.venue import COST
from securetrade.venues.kraken import KRAKEN
from securetrade.venues.kraken.tables import CLIENT_ORDER_ID

FAST = Settings(settle_ms=300, resolve_timeout=20.0)
BTC, ETH = "BTC/USDT", "ETH/USDT"
OPEN, CLOSED, QUERY = (
    "POST /0/private/OpenOrders",
    "POST /0/private/ClosedOrders",
    "POST /0/private/QueryOrders",
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # Kraken's call counters off (kraken_limits=None): these clients lift the limiter that
    # would keep a starter-tier key inside them (options() below); the counters are
    # tested in tests/test_kraken.py and tests/test_sim_conformance.py.
    with Simulator(kraken_limits=None) as simulator:
        simulator.kraken.query_needs_txid = True  # as Kraken's API reference states
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


@pytest.fixture
def key(sim: Simulator) -> ApiKey:
    made = sim.create_key(venue="kraken")
    return ApiKey(
        "ccxt:kraken",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )


def options(server: HttpsServer, **extra: Any) -> dict[str, Any]:
    """Pinned TLS to the simulator; room in the limiter (ccxt paces Kraken at one private
    read per 3 s, which tests/test_ratelimit*.py has no need to wait for here)."""
    return {
        "base_url": server.base_url,
        "pins": server.pins,
        "cadata": server.ca_pem,
        "journal": ":memory:",
        "settings": FAST,
        "recv_window_ms": 2000,
        "limiter": RateLimiter([RateLimit(COST, 1.0, 1_000_000)]),
        **extra,
    }


@pytest.fixture
def client(key: ApiKey, server: HttpsServer) -> Iterator[Client]:
    with Client(key, **options(server)) as made:
        yield made


def sent(sim: Simulator, route: str) -> int:
    return sim.kraken.stats.by_path.get(route, 0)


def test_client_order_ids_are_kraken_short_uuids() -> None:
    venue = CcxtVenue("kraken")
    cid = venue.client_order_id("account", "rebalance-1")
    assert CLIENT_ORDER_ID.fullmatch(cid)
    assert len(cid) == 32
    assert set(cid) <= set("0123456789abcdef")  # the short-UUID form, not free text
    assert cid == venue.client_order_id("account", "rebalance-1")  # same intent, same id
    assert cid != venue.client_order_id("account", "rebalance-2")
    assert venue.owns_client_order_id(cid)
    assert KRAKEN.owns_client_order_id(cid)  # the native venue's marker: one SDK, one shape
    assert not venue.owns_client_order_id("st" + cid[2:])
    assert not venue.owns_client_order_id(cid.upper())
    assert not venue.owns_client_order_id("0" * 32)
    # Other exchanges keep the core's ids.
    assert CcxtVenue("binance").client_order_id("account", "rebalance-1").startswith("st")


def test_open_order_is_found_among_open_orders(client: Client, sim: Simulator) -> None:
    placed = client.place_order(LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000"))
    assert placed.status is OrderStatus.NEW
    before = sent(sim, OPEN), sent(sim, CLOSED)
    found = client.get_order(BTC, client_order_id=placed.client_order_id)
    assert found.order_id == placed.order_id
    assert (sent(sim, OPEN), sent(sim, CLOSED)) == (before[0] + 1, before[1])
    assert sim.kraken.stats.last_params["OpenOrders"]["cl_ord_id"] == placed.client_order_id
    assert sent(sim, QUERY) == 0


def test_closed_order_is_found_among_closed_orders(client: Client, sim: Simulator) -> None:
    placed = client.place_order(MarketOrder(symbol=ETH, side="BUY", quantity="0.01"))
    assert placed.status is OrderStatus.FILLED  # read back: open orders, then closed ones
    before = sent(sim, OPEN), sent(sim, CLOSED)
    found = client.get_order(ETH, client_order_id=placed.client_order_id)
    assert (found.order_id, found.status) == (placed.order_id, OrderStatus.FILLED)
    assert (sent(sim, OPEN), sent(sim, CLOSED)) == (before[0] + 1, before[1] + 1)
    assert sim.kraken.stats.last_params["ClosedOrders"]["cl_ord_id"] == placed.client_order_id
    assert sent(sim, QUERY) == 0
    with pytest.raises(OrderNotFound):
        client.get_order(ETH, client_order_id="5e" + "0" * 30)


def test_closed_orders_beyond_the_first_page_are_found(client: Client, sim: Simulator) -> None:
    """ClosedOrders answers 50 at a time; a filter by cl_ord_id reaches past the first page."""
    first = client.place_order(MarketOrder(symbol=ETH, side="BUY", quantity="0.01"))
    for _ in range(55):
        client.place_order(MarketOrder(symbol=ETH, side="BUY", quantity="0.01"))
    found = client.get_order(ETH, client_order_id=first.client_order_id)
    assert found.order_id == first.order_id


def test_add_order_carries_a_deadline_and_our_cl_ord_id(client: Client, sim: Simulator) -> None:
    placed = client.place_order(LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000"))
    sent_params = sim.kraken.stats.last_params["AddOrder"]
    assert sent_params["cl_ord_id"] == placed.client_order_id
    deadline = datetime.fromisoformat(sent_params["deadline"].replace("Z", "+00:00"))
    ahead = deadline.timestamp() - sim.kraken.now_ms() / 1000
    assert -1.0 < ahead <= 2.0  # recv_window_ms=2000, whole seconds rounded down


def test_deadline_bounds_are_kraken_s() -> None:
    name, value = kraken_deadline(1_700_000_000_999, 2000)
    assert (name, value) == ("deadline", "2023-11-14T22:13:22Z")
    for window in (1999, 60_001):
        with pytest.raises(InvalidRequest, match="2 to 60 s"):
            kraken_deadline(1_700_000_000_000, window)


def test_ccxt_signs_with_the_core_nonce(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    """ccxt's Kraken asks for a nonce above its own last one; it must get the core's, as
    drawn. A source far below ccxt's millisecond clock shows any substitution."""
    low = MemoryNonceSource(time_ns=lambda: 1_000_000_000)  # "now" is nonce 1000
    with Client(key, nonces=low, **options(server)) as client:
        client.balances()
        client.place_order(LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000"))
        last = sim.kraken.last_nonce(key.key_id)
        assert 1000 <= last < 1100
        assert low.next(key.key_id) == last + 1  # every nonce sent came from the source


def test_duplicate_cl_ord_id_is_adopted(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    """A second host, with a journal that never saw the first order and no recovery pass,
    sends the same intent: Kraken refuses the open duplicate, the client adopts it."""
    order = LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000")
    with Client(key, **options(server)) as first:
        placed = first.place_order(order, idempotency_key="same-intent")
    quiet = Settings(settle_ms=300, resolve_timeout=20.0, recover_on_start=False)
    with Client(key, **options(server, settings=quiet)) as second:
        again = second.place_order(order, idempotency_key="same-intent")
    assert again.order_id == placed.order_id
    assert sim.kraken.stats.rejections.get("EOrder:Duplicate order") == 1
    assert sent(sim, "POST /0/private/AddOrder") == 2
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1


def test_cancel_names_the_order_by_cl_ord_id(client: Client, sim: Simulator) -> None:
    placed = client.place_order(LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000"))
    canceled = client.cancel_order(BTC, client_order_id=placed.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    cancel = sim.kraken.stats.last_params["CancelOrder"]
    assert cancel["cl_ord_id"] == placed.client_order_id
    assert "txid" not in cancel
    with pytest.raises(OrderNotFound):  # EOrder:Unknown order, read by ccxt's cancel_order
        client.cancel_order(BTC, client_order_id=placed.client_order_id)


def test_async_client_finds_orders_by_cl_ord_id(
    key: ApiKey, server: HttpsServer, sim: Simulator
) -> None:
    """ccxt's aiohttp stack, pinned, and the same two-step lookup."""

    async def run() -> Any:
        async with AsyncClient(key, **options(server)) as client:
            market = await client.place_order(MarketOrder(symbol=ETH, side="BUY", quantity="0.01"))
            limit = await client.place_order(
                LimitOrder(symbol=BTC, side="BUY", quantity="0.01", price="60000")
            )
            return market, limit

    market, limit = asyncio.run(run())
    assert (market.status, limit.status) == (OrderStatus.FILLED, OrderStatus.NEW)
    assert sent(sim, CLOSED) >= 1
    assert sent(sim, QUERY) == 0


def test_wrong_pin_sends_nothing(key: ApiKey, server: HttpsServer) -> None:
    other = make_certificates()
    wrong = {server.host: [other.leaf_pin, other.ca_pin]}
    with Client(key, **options(server, pins=wrong)) as client:
        started = time.monotonic()
        with pytest.raises(PinMismatch):
            client.balances()
        assert time.monotonic() - started < 10  # refused, never retried to a timeout
    assert server.bytes_received == 0


def test_ccxt_fetch_order_cannot_look_up_by_client_order_id() -> None:
    """Why the venue does not use ccxt's fetch_order for a lookup by client order id: it
    sends the id as ``userref`` (an integer field) with no txid, and no ``cl_ord_id``."""
    exchange = ccxt.kraken()
    request: dict[str, Any] = {}

    def capture(path: str, api: Any = "public", method: str = "GET", params: Any = None,
                config: Any = None) -> Any:  # fmt: skip
        request.update(params or {})
        raise ccxt.ExchangeError("captured")

    exchange.request = capture
    exchange.markets = {}  # no market list needed to build this request
    cid = CcxtVenue("kraken").client_order_id("account", "key")
    with pytest.raises(ccxt.ExchangeError, match="captured"):
        exchange.fetch_order(None, BTC, {"clientOrderId": cid})
    assert request.get("userref") == cid
    assert request.get("txid") is None
    assert "cl_ord_id" not in request


def _private(sim: Simulator, key: ApiKey, path: str, params: list[tuple[str, str]]) -> Any:
    """One signed Kraken request straight to the dialect (the native venue's signer)."""
    native = ApiKey("kraken", key.key_id, key.secret, scopes=key.scopes)
    endpoint = Endpoint(Op.OPEN_ORDERS, "POST", path, True, None)
    request = KRAKEN.prepare(
        endpoint, params, key_id=key.key_id, signer=KRAKEN.signer(native),
        timestamp_ms=sim.kraken.now_ms(), nonce=time.time_ns() // 1000,
    )  # fmt: skip
    headers = {k.lower(): v for k, v in request.headers}
    return json.loads(sim.handle(request.method, request.target, headers, request.body).body)


def test_simulated_closed_orders_page_and_query_orders_needs_a_txid(
    key: ApiKey, sim: Simulator
) -> None:
    account = sim.kraken.keys[key.key_id].account

    def closed_market_order(n: int) -> Any:
        return sim.market.place(
            account,
            symbol="ETHUSDT",
            side="BUY",
            type="MARKET",
            quantity=Decimal("0.01"),
            price=None,
            time_in_force=None,
            client_order_id=f"{n:032x}",
        )

    placed = [closed_market_order(n) for n in range(55)]
    first = _private(sim, key, "/0/private/ClosedOrders", [])["result"]
    assert first["count"] == 55
    assert len(first["closed"]) == 50
    newest = [entry["cl_ord_id"] for entry in first["closed"].values()][:2]
    assert newest == [f"{54:032x}", f"{53:032x}"]  # the most recently closed first
    rest = _private(sim, key, "/0/private/ClosedOrders", [("ofs", "50")])["result"]
    assert len(rest["closed"]) == 5
    one = _private(sim, key, "/0/private/ClosedOrders", [("cl_ord_id", placed[0].client_order_id)])
    assert [e["cl_ord_id"] for e in one["result"]["closed"].values()] == [f"{0:032x}"]
    refused = _private(sim, key, "/0/private/QueryOrders", [("cl_ord_id", f"{0:032x}")])
    assert refused["error"] == ["EGeneral:Invalid arguments:txid"]
