"""``venue="ccxt:binance"``: ccxt itself, under every securetrade layer, against the simulator
over real TLS on 127.0.0.1.

What is checked here is what is particular to the ccxt path: our client order ids reach
the venue, ccxt's exceptions land in our error tree, the pin is checked inside ccxt's own
HTTP stacks (sync and async) before any byte, ccxt can do no I/O by itself, secrets stay
out of its logs, and ``import securetrade`` does not import ccxt.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

ccxt = pytest.importorskip("ccxt")

from securetrade import AsyncClient, Client, Settings  # noqa: E402
from securetrade.errors import (  # noqa: E402
    AuthenticationRejected,
    InsufficientFunds,
    InvalidRequest,
    OrderNotFound,
    PinMismatch,
    RateLimited,
    UntrustedServer,
)
from securetrade.keys import ApiKey, Scope  # noqa: E402
from securetrade.models import LimitOrder, MarketOrder, OrderStatus  # noqa: E402
from securetrade.sim import HttpsServer, Simulator  # noqa: E402
from securetrade.sim.certs import make_certificates  # noqa: E402
from securetrade.venues import Op, Verdict, get_venue  # noqa: E402
from securetrade.venues.ccxt import CcxtVenue  # noqa: E402
from securetrade.venues.ccxt.codec import CcxtKey  # noqa: E402
from securetrade.venues.ccxt.errors import outcome_of  # noqa: E402

FAST = Settings(settle_ms=300, resolve_timeout=20.0)
BTC = "BTC/USDT"


def ccxt_key(sim: Simulator, **kwargs: Any) -> ApiKey:
    """A simulator key, labelled for the ccxt venue (same id and secret)."""
    made = sim.create_key(**kwargs)
    return ApiKey(
        "ccxt:binance",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


@pytest.fixture
def key(sim: Simulator) -> ApiKey:
    return ccxt_key(sim)


def pinned(server: HttpsServer) -> dict[str, Any]:
    """A pinned connection, and short request deadlines: a lost order is proven absent fast."""
    return {
        "base_url": server.base_url,
        "pins": server.pins,
        "cadata": server.ca_pem,
        "recv_window_ms": 500,
    }


def wrong_pins(server: HttpsServer) -> dict[str, Any]:
    """Trusts the server's CA, so only the pins are wrong."""
    other = make_certificates()
    return {**pinned(server), "pins": {server.host: [other.leaf_pin, other.ca_pin]}}


@pytest.fixture
def client(key: ApiKey, server: HttpsServer) -> Iterator[Client]:
    with Client(key, journal=":memory:", settings=FAST, **pinned(server)) as made:
        yield made


def sim_order(sim: Simulator, client_order_id: str) -> Any:
    """The simulator's own record of an order, by client order id."""
    with sim.market.lock:
        return [o for o in sim.market.orders.values() if o.client_order_id == client_order_id]


# --- the whole path -------------------------------------------------------------------------


def test_orders_round_trip_through_ccxt(client: Client, sim: Simulator) -> None:
    instruments = client.instruments()
    assert instruments[BTC].tick_size == Decimal("0.01")  # exchangeInfo read by ccxt
    placed = client.place_order(
        LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000.10"),
        idempotency_key="round-trip",
    )
    assert placed.venue == "ccxt:binance"
    assert placed.status is OrderStatus.NEW
    assert placed.price == Decimal("60000.1")
    assert isinstance(placed.quantity, Decimal)
    assert client.get_order(BTC, client_order_id=placed.client_order_id).order_id == (
        placed.order_id
    )
    assert [o.order_id for o in client.open_orders(BTC)] == [placed.order_id]
    canceled = client.cancel_order(BTC, client_order_id=placed.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert client.open_orders(BTC) == []

    sold = client.place_order(MarketOrder(symbol=BTC, side="SELL", quantity="0.01"))
    assert sold.status is OrderStatus.FILLED
    assert sold.fills
    assert sum(f.quantity for f in sold.fills) == Decimal("0.01")
    balances = {b.asset: b for b in client.balances()}
    assert balances["BTC"].free == Decimal("1.99")  # exact: Decimal end to end


def test_our_client_order_id_reaches_the_venue(client: Client, sim: Simulator) -> None:
    placed = client.place_order(
        LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000"),
        idempotency_key="cid",
    )
    expected = client.venue.client_order_id(client.core.key.key_id, "cid")
    assert placed.client_order_id == expected
    assert [o.client_order_id for o in sim_order(sim, expected)] == [expected]
    assert not expected.startswith("x-")  # not ccxt's broker prefix plus a random id


def test_same_key_twice_places_once(client: Client, sim: Simulator) -> None:
    order = LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000")
    first = client.place_order(order, idempotency_key="again")
    second = client.place_order(order, idempotency_key="again")
    assert first.order_id == second.order_id
    assert len(sim_order(sim, first.client_order_id)) == 1


def test_async_client_through_ccxt(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    async def main() -> list[Any]:
        async with AsyncClient(key, journal=":memory:", settings=FAST, **pinned(server)) as c:
            await c.instruments()  # once, rather than once per task
            return list(
                await asyncio.gather(
                    *(
                        c.place_order(
                            LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000"),
                            idempotency_key=f"task-{i}",
                        )
                        for i in range(20)
                    )
                )
            )

    orders = asyncio.run(main())
    assert len({o.client_order_id for o in orders}) == 20
    assert all(len(sim_order(sim, o.client_order_id)) == 1 for o in orders)


# --- ambiguous outcomes are resolved by client order id ---------------------------------------


@pytest.mark.parametrize("fault", ["drop_response", "status_after", "drop_request", "status"])
def test_faults_never_double_an_order(client: Client, sim: Simulator, fault: str) -> None:
    client.instruments()
    sim.faults.inject(fault, method="POST", path="/api/v3/order", status=503)
    placed = client.place_order(
        LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000"),
        idempotency_key=f"fault-{fault}",
    )
    assert len(sim_order(sim, placed.client_order_id)) == 1
    assert sim.dialect.stats.by_path.get("GET /api/v3/order", 0) >= 1  # asked, not guessed


def test_rejections_are_typed(client: Client, sim: Simulator) -> None:
    with pytest.raises(InsufficientFunds):
        client.place_order(LimitOrder(symbol=BTC, side="SELL", quantity="5", price="60000"))
    with pytest.raises(OrderNotFound):
        client.get_order(BTC, client_order_id="st" + "0" * 30)


def test_unknown_key_is_an_authentication_rejection(sim: Simulator, server: HttpsServer) -> None:
    stranger = ApiKey("ccxt:binance", "a" * 64, "b" * 64, scopes=[Scope.READ])
    with (
        Client(stranger, journal=":memory:", settings=FAST, **pinned(server)) as c,
        pytest.raises(AuthenticationRejected),
    ):
        c.balances()


def test_rate_limit_answer_is_retryable(client: Client, sim: Simulator) -> None:
    client.instruments()
    sim.faults.inject("rate_limit", method="GET", path="/api/v3/account", seconds=1)
    assert client.balances()  # waited out the 429's Retry-After, then asked again
    assert sim.dialect.stats.by_path["GET /api/v3/account"] == 2


def test_ccxt_exceptions_map_to_three_outcomes() -> None:
    """ccxt's own exception classes, as its handle_errors raises them for an answer."""
    cases = [
        (ccxt.InsufficientFunds("x"), 400, Verdict.REJECTED, InsufficientFunds),
        (ccxt.OrderNotFound("x"), 400, Verdict.REJECTED, OrderNotFound),
        (ccxt.AuthenticationError("x"), 401, Verdict.REJECTED, AuthenticationRejected),
        (ccxt.RateLimitExceeded("x"), 429, Verdict.RETRYABLE, RateLimited),
        (ccxt.DDoSProtection("x"), 418, Verdict.RETRYABLE, RateLimited),
        (ccxt.RequestTimeout("x"), 400, Verdict.AMBIGUOUS, None),
        (ccxt.ExchangeNotAvailable("x"), 503, Verdict.AMBIGUOUS, None),
        (ccxt.ExchangeNotAvailable("x"), 404, Verdict.REJECTED, None),
        (ccxt.ExchangeError("x"), 500, Verdict.AMBIGUOUS, None),
        (ccxt.InvalidOrder("x"), 400, Verdict.REJECTED, None),
    ]
    for exc, status, verdict, kind in cases:
        outcome = outcome_of(exc, status, {"Retry-After": "3"}, b"{}", "ccxt:test")
        assert outcome.verdict is verdict, (exc, status)
        if kind is not None:
            assert isinstance(outcome.error, kind)
    dup = outcome_of(ccxt.InvalidOrder("binance Duplicate order sent."), 400, {}, b"", "v")
    assert dup.duplicate
    assert outcome_of(ccxt.InvalidNonce("x"), 400, {}, b"", "v").clock_skew
    assert (
        outcome_of(ccxt.RateLimitExceeded("x"), 429, {"retry-after": "3"}, b"", "v").retry_after
        == 3
    )


# --- pinning inside ccxt's HTTP stacks ------------------------------------------------------


def assert_nothing_sent(server: HttpsServer, sim: Simulator) -> None:
    deadline = time.monotonic() + 5.0
    while sum(server.handshakes) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # a client that did write a request would have it counted by now
    assert sum(server.handshakes) == 1, "one handshake, and no retry"
    assert server.bytes_received == 0
    assert sim.dialect.stats.requests == 0


def test_sync_pin_failure_sends_nothing(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    with Client(key, journal=":memory:", settings=FAST, **wrong_pins(server)) as c:
        assert type(c._transport).__name__ == "CcxtSyncTransport"
        with pytest.raises(PinMismatch):
            c.server_time()
    assert_nothing_sent(server, sim)


def test_async_pin_failure_sends_nothing(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    async def main() -> None:
        async with AsyncClient(key, journal=":memory:", settings=FAST, **wrong_pins(server)) as c:
            assert type(c._transport).__name__ == "CcxtAsyncTransport"
            with pytest.raises(PinMismatch):
                await c.server_time()

    asyncio.run(main())
    assert_nothing_sent(server, sim)


def test_untrusted_certificate_is_refused(key: ApiKey, server: HttpsServer, sim: Simulator) -> None:
    other = make_certificates()
    options = {**pinned(server), "cadata": other.ca_pem}  # the server's CA is not trusted
    with (
        Client(key, journal=":memory:", settings=FAST, **options) as c,
        pytest.raises(UntrustedServer),
    ):
        c.server_time()
    assert server.bytes_received == 0


@pytest.fixture
def hostile_tls_env(server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's CA offered through SSL_CERT_FILE, and a TLS key log asked for."""
    ca = tmp_path / "ca.pem"
    ca.write_text(server.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    key_log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(key_log))
    return key_log


def _key_log_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_ccxt_sync_ignores_ssl_cert_file_and_sslkeylogfile(
    key: ApiKey, server: HttpsServer, hostile_tls_env: Path
) -> None:
    options = {k: v for k, v in pinned(server).items() if k != "cadata"}
    with (
        Client(key, journal=":memory:", settings=FAST, **options) as c,
        pytest.raises(UntrustedServer),
    ):
        c.server_time()  # the CA is only in the environment
    assert server.bytes_received == 0
    with Client(
        key,
        base_url=server.base_url,
        cadata=server.ca_pem,
        journal=":memory:",
        settings=FAST,
        unsafe_disable_pinning=True,
    ) as c:
        assert c.server_time() > 0
    assert _key_log_lines(hostile_tls_env) == []


def test_ccxt_async_ignores_ssl_cert_file_and_sslkeylogfile(
    key: ApiKey, server: HttpsServer, hostile_tls_env: Path
) -> None:
    options = {k: v for k, v in pinned(server).items() if k != "cadata"}

    async def main() -> None:
        async with AsyncClient(key, journal=":memory:", settings=FAST, **options) as c:
            with pytest.raises(UntrustedServer):
                await c.server_time()
        async with AsyncClient(
            key,
            base_url=server.base_url,
            cadata=server.ca_pem,
            journal=":memory:",
            settings=FAST,
            unsafe_disable_pinning=True,
        ) as c:
            assert await c.server_time() > 0

    asyncio.run(main())
    assert _key_log_lines(hostile_tls_env) == []


def test_the_pinned_session_is_ccxts_own(client: Client, server: HttpsServer) -> None:
    exchange = client.venue.codec.exchange  # type: ignore[attr-defined]
    adapter = exchange.session.get_adapter(server.base_url)
    assert type(adapter).__name__ == "PinnedAdapter"
    assert exchange.session.trust_env is False
    client.server_time()
    assert server.bytes_received > 0


# --- ccxt does no I/O of its own, and holds no secret -----------------------------------------


def test_ccxt_cannot_send_by_itself(client: Client, server: HttpsServer) -> None:
    exchange = client.venue.codec.exchange  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="outside securetrade"):
        exchange.fetch_time()
    assert server.bytes_received == 0


def test_secrets_stay_out_of_ccxt(
    client: Client, key: ApiKey, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = client.venue.codec.exchange  # type: ignore[attr-defined]
    exchange.verbose = True  # a user turning ccxt's verbose log on
    caplog.set_level(logging.DEBUG)
    client.place_order(LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000"))
    exchange.log(
        "fetch Request:",
        "GET",
        "https://x/api?timestamp=1&signature=abcdef",
        {"X-MBX-APIKEY": key.key_id},
    )
    secret = key.secret.expose().decode()
    assert exchange.secret == ""
    assert exchange.apiKey == ""
    text = caplog.text
    assert secret not in text
    assert key.key_id not in text
    assert "abcdef" not in text
    assert secret not in repr(client.venue)
    assert secret not in repr(client.core._signer_of(key))


def test_ccxt_signs_exactly_the_bytes_sent(client: Client, key: ApiKey) -> None:
    """Cross-check: ccxt's signature over the body it built equals our own HMAC of it."""
    client.instruments()
    venue = client.venue
    order = LimitOrder(symbol=BTC, side="BUY", quantity="0.001", price="60000")
    params = venue.order_params(order, "st" + "1" * 30)
    signer = venue.signer(key)
    assert isinstance(signer, CcxtKey)
    request = venue.prepare(
        venue.endpoints[Op.PLACE_ORDER],
        params,
        key_id=key.key_id,
        signer=signer,
        timestamp_ms=1_700_000_000_000,
    )
    body = request.body.decode()
    payload, _, signature = body.rpartition("&signature=")
    assert signer.sign(payload.encode()) == signature
    fields = dict(parse_qsl(payload))
    assert fields["timestamp"] == "1700000000000"  # our venue-time clock, not ccxt's
    assert fields["newClientOrderId"] == "st" + "1" * 30
    assert fields["quantity"] == "0.001"
    assert fields["price"] == "60000"


# --- bad input, limits, lazy import ---------------------------------------------------------


def test_bad_input_is_refused_before_sending(client: Client, server: HttpsServer) -> None:
    client.instruments()
    client.sync_clock()
    before = server.bytes_received
    with pytest.raises(InvalidRequest):
        client.get_order("BTCUSDT&price=0", client_order_id="x")
    with pytest.raises(InvalidRequest):
        client.get_order("NOPE/USDT", client_order_id="x")  # ccxt: no such market
    assert server.bytes_received == before
    with pytest.raises(InvalidRequest):
        CcxtVenue("no-such-exchange")
    with pytest.raises(InvalidRequest):
        get_venue("ccxt:no-such-exchange")


def test_rate_limits_come_from_ccxt(client: Client) -> None:
    client.instruments()
    venue = client.venue
    (limit,) = venue.rate_limits
    assert limit.limit == 200_000  # binance: rateLimit 50 ms, so 200 units per 10 s
    assert limit.seconds == 10.0
    endpoint = venue.endpoints[Op.OPEN_ORDERS]
    one = venue.request_cost(endpoint, venue.open_orders_params(BTC))  # type: ignore[attr-defined]
    every = venue.request_cost(endpoint, venue.open_orders_params(None))  # type: ignore[attr-defined]
    assert every["CCXT_COST"] > one["CCXT_COST"]  # ccxt's noSymbol cost


def test_import_securetrade_does_not_import_ccxt() -> None:
    code = (
        "import sys\n"
        "import securetrade\n"
        "from securetrade import ApiKey, Client\n"
        "key = ApiKey('binance', 'k' * 64, 's' * 64)\n"
        "Client(key, unsafe_disable_pinning=True, journal=':memory:').close()\n"
        "assert 'ccxt' not in sys.modules, 'ccxt imported'\n"
        "from securetrade.venues import get_venue\n"
        "get_venue('ccxt:binance')\n"
        "assert 'ccxt' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
