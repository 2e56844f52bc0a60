"""The simulator checks what Binance checks; the client copes with each answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from securetrade import (
    AuthenticationRejected,
    Client,
    IpBanned,
    MarketOrder,
    OrderStatus,
    RateLimited,
    Settings,
)
from securetrade.signing import encode_query
from securetrade.sim import SimLimits, Simulator
from securetrade.sim.binance import SimResponse


def _signed(
    sim: Simulator,
    key_id: str,
    secret: bytes,
    params: list[tuple[str, str]],
    *,
    method: str = "GET",
    path: str = "/api/v3/account",
    timestamp: int | None = None,
    tamper: bool = False,
) -> SimResponse:
    params = [*params, ("timestamp", str(timestamp or sim.dialect.now_ms()))]
    query = encode_query(params)
    signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    if tamper:
        query = query.replace("timestamp=", "timestamp=1", 1)
    target = f"{path}?{query}&signature={signature}"
    return sim.handle(method, target, {"x-mbx-apikey": key_id}, b"")


def _code(response: SimResponse) -> int:
    return int(json.loads(response.body)["code"])


@pytest.fixture
def creds(sim: Simulator) -> tuple[str, bytes]:
    key = sim.create_key()
    return key.key_id, key.secret.expose()


def test_valid_request_accepted(sim: Simulator, creds: tuple[str, bytes]) -> None:
    response = _signed(sim, *creds, [])
    assert response.status == 200
    assert "x-mbx-used-weight-1m" in response.headers


def test_bad_signature_is_1022(sim: Simulator, creds: tuple[str, bytes]) -> None:
    response = _signed(sim, *creds, [], tamper=True)
    assert (response.status, _code(response)) == (400, -1022)


def test_unknown_and_missing_keys(sim: Simulator, creds: tuple[str, bytes]) -> None:
    _, secret = creds
    assert _code(_signed(sim, "not-a-key", secret, [])) == -2015
    missing = sim.handle("GET", "/api/v3/account?timestamp=1&signature=00", {}, b"")
    assert _code(missing) == -2014


def test_stale_and_future_timestamps_are_1021(sim: Simulator, creds: tuple[str, bytes]) -> None:
    now = sim.dialect.now_ms()
    stale = _signed(sim, *creds, [("recvWindow", "1000")], timestamp=now - 1500)
    assert _code(stale) == -1021
    ahead = _signed(sim, *creds, [], timestamp=now + 1500)
    assert _code(ahead) == -1021
    inside = _signed(sim, *creds, [("recvWindow", "1000")], timestamp=now - 500)
    assert inside.status == 200


def test_duplicate_parameters_refused(sim: Simulator, creds: tuple[str, bytes]) -> None:
    response = _signed(sim, *creds, [("symbol", "BTCUSDT"), ("symbol", "ETHUSDT")])
    assert _code(response) == -1101


def test_duplicate_open_client_order_id_is_2010(sim: Simulator, creds: tuple[str, bytes]) -> None:
    params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "60000"),
        ("newClientOrderId", "same-id"),
    ]
    first = _signed(sim, *creds, params, method="POST", path="/api/v3/order")
    assert first.status == 200
    second = _signed(sim, *creds, params, method="POST", path="/api/v3/order")
    assert (second.status, _code(second)) == (400, -2010)
    assert b"Duplicate" in second.body


def test_signature_in_body_for_post(sim: Simulator, creds: tuple[str, bytes]) -> None:
    """Binance signs query string + body; the simulator accepts the form body as sent."""
    key_id, secret = creds
    body = encode_query(
        [
            ("symbol", "ETHUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.01"),
            ("timestamp", str(sim.dialect.now_ms())),
        ]
    )
    signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    response = sim.handle(
        "POST",
        "/api/v3/order",
        {"x-mbx-apikey": key_id},
        f"{body}&signature={signature}".encode(),
    )
    assert response.status == 200
    assert json.loads(response.body)["status"] == "FILLED"


def test_429_then_418_for_a_client_that_keeps_going() -> None:
    sim = Simulator(limits=SimLimits(weight=5, weight_seconds=60, ban_seconds=30))
    statuses = [sim.handle("GET", "/api/v3/time", {}, b"", "10.0.0.9").status for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert statuses[5] == 429
    assert statuses[6:] == [418, 418]
    banned = sim.handle("GET", "/api/v3/time", {}, b"", "10.0.0.9")
    assert int(banned.headers["retry-after"]) > 0
    other_ip = sim.handle("GET", "/api/v3/time", {}, b"", "10.0.0.10")
    assert other_ip.status == 200


def test_client_pauses_on_429_and_never_earns_a_ban(sim: Simulator) -> None:
    """Weight spent by someone else on our IP: the client learns from the 429 and waits."""
    sim.dialect.limits = SimLimits(weight=60, weight_seconds=2)
    client = Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
    client.server_time()
    for _ in range(55):  # another process on the same IP eats the budget
        sim.handle("GET", "/api/v3/time", {}, b"")
    started = time.monotonic()
    for _ in range(40):
        client.server_time()
    assert sim.dialect.stats.status_418 == 0
    assert time.monotonic() - started > 0.5  # it had to wait for the window to turn


def test_client_reports_a_long_ban_instead_of_waiting() -> None:
    sim = Simulator(limits=SimLimits(weight=3, weight_seconds=60, ban_seconds=600))
    client = Client(
        sim.create_key(),
        transport=sim.transport(),
        journal=":memory:",
        settings=Settings(max_rate_wait=1.0),
    )
    for _ in range(3):
        sim.handle("GET", "/api/v3/time", {}, b"")
    with pytest.raises(RateLimited) as excinfo:
        client.server_time()
    assert excinfo.value.retry_after is not None
    assert excinfo.value.retry_after > 1
    sim.handle("GET", "/api/v3/time", {}, b"")  # someone ignores the 429 on our IP
    with pytest.raises(RateLimited):
        client.server_time()
    assert isinstance(excinfo.value, RateLimited)
    assert not isinstance(excinfo.value, IpBanned)


def test_clock_jump_is_resynced_and_the_order_resent_once(sim: Simulator) -> None:
    client = Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
    client.instruments()
    client.balances()  # signed: the client measures the venue clock here
    sim.dialect.clock_offset_ms = 20_000  # the venue's clock jumps after we synced
    order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    assert order.status is OrderStatus.FILLED
    assert sim.dialect.stats.rejections.get(-1021) == 1
    assert len(sim.market.orders_with_client_id(order.client_order_id)) == 1
    assert abs(client.core.clock.offset_ms - 20_000) < 1000


def test_bad_key_is_an_authentication_rejection(sim: Simulator) -> None:
    good = sim.create_key()
    from securetrade import ApiKey

    forged = ApiKey("binance", good.key_id, "f" * 64, scopes=good.scopes)
    client = Client(forged, transport=sim.transport(), journal=":memory:")
    with pytest.raises(AuthenticationRejected) as excinfo:
        client.balances()
    assert excinfo.value.code == -1022


def test_deterministic_fills(sim: Simulator) -> None:
    """The same requests give the same prices: a run can be replayed exactly."""

    def run() -> list[Decimal | None]:
        with Simulator() as fresh:
            client = Client(fresh.create_key(), transport=fresh.transport(), journal=":memory:")
            return [
                client.place_order(
                    MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")
                ).average_price
                for _ in range(5)
            ]

    first, second = run(), run()
    assert first == second
    assert len(set(first)) > 1  # and the price does move


def test_fault_schedule_counts_down(sim: Simulator, creds: tuple[str, bytes]) -> None:
    sim.faults.inject("status", method="GET", path="/api/v3/time", times=2, status=502)
    responses: list[Any] = [sim.handle("GET", "/api/v3/time", {}, b"") for _ in range(3)]
    assert [r.status for r in responses] == [502, 502, 200]


def test_a_strip_after_fault_names_the_field_it_drops_and_only_it_does() -> None:
    """A strip_after without ``field`` would strip nothing (a test that cannot fail), and
    a ``field`` on another kind would be silently ignored: both are refused."""
    from securetrade import InvalidRequest
    from securetrade.sim import Fault

    with pytest.raises(InvalidRequest, match="field"):
        Fault("strip_after", "GET", "/v3/x")
    with pytest.raises(InvalidRequest, match="field"):
        Fault("status", field="lastTransactionID")
    with pytest.raises(InvalidRequest, match="field"):
        Fault("strip_after", field="")
    assert Fault("strip_after", field="lastTransactionID").field == "lastTransactionID"
