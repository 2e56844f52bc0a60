"""The brokers' simulator dialects, asked directly (no SDK in between): the checks and the
error bodies each documents, the dedupe strength, the limits and their headers.

Sources: Alpaca's Trading API v2 reference (orders, errors with an 8-digit ``code`` and a
``message``; 40010001 on a reused ``client_order_id``, alpaca-py #260) and OANDA's v20 REST
reference (``orderRejectTransaction``, ``errorCode``/``errorMessage``,
``lastTransactionID`` on every answer), as summarised in the wave-2 research note.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from securetrade.sim.brokers import BrokerSimulator


@pytest.fixture
def alpaca() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("alpaca") as sim:
        yield sim


@pytest.fixture
def oanda() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("oanda") as sim:
        yield sim


def _alpaca(
    sim: BrokerSimulator,
    method: str,
    target: str,
    body: Any = None,
    key: Any = None,
    secret: str | None = None,
) -> tuple[int, Any, dict[str, str]]:
    key = key or sim.create_key()
    headers = {
        "apca-api-key-id": key.key_id,
        "apca-api-secret-key": secret if secret is not None else key.secret.expose().decode(),
    }
    raw = b"" if body is None else json.dumps(body).encode()
    answer = sim.handle(method, target, headers, raw)
    return answer.status, json.loads(answer.body) if answer.body else None, answer.headers


def _oanda(
    sim: BrokerSimulator, method: str, rest: str, body: Any = None, key: Any = None
) -> tuple[int, Any]:
    key = key or sim.create_key()
    headers = {"authorization": "Bearer " + key.secret.expose().decode()}
    raw = b"" if body is None else json.dumps(body).encode()
    answer = sim.handle(method, f"/v3/accounts/{key.key_id}{rest}", headers, raw)
    return answer.status, json.loads(answer.body)


ORDER = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}


def test_alpaca_refuses_unauthenticated_requests(alpaca: BrokerSimulator) -> None:
    status, body, _ = _alpaca(alpaca, "GET", "/v2/account", secret="wrong")
    assert (status, body["code"]) == (401, 40110000)


def test_alpaca_dedupe_is_strong_even_after_the_order_filled(alpaca: BrokerSimulator) -> None:
    key = alpaca.create_key()
    first, placed, _ = _alpaca(alpaca, "POST", "/v2/orders", {**ORDER, "client_order_id": "a"}, key)
    assert (first, placed["status"]) == (200, "filled")
    again, body, _ = _alpaca(alpaca, "POST", "/v2/orders", {**ORDER, "client_order_id": "a"}, key)
    assert (again, body["code"]) == (422, 40010001)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"color": "red"}, 42210000),  # an unknown field
        ({"qty": "1e400"}, 42210000),
        ({"qty": "0.5", "time_in_force": "gtc"}, 42210000),  # fractional: DAY only
        ({"type": "limit"}, 42210000),  # no limit_price
        ({"type": "stop"}, 42210000),  # no stop_price
        ({"qty": "100000"}, 42210000),  # over the engine's lot limit
        ({"qty": "5000"}, 40310000),  # more than the cash
        ({"extended_hours": True}, 42210000),  # only DAY limit orders
    ],
)
def test_alpaca_order_checks(alpaca: BrokerSimulator, change: dict[str, Any], code: int) -> None:
    status, body, _ = _alpaca(alpaca, "POST", "/v2/orders", {**ORDER, **change})
    assert body["code"] == code
    assert status == code // 100_000


def test_alpaca_counts_200_requests_a_minute_per_account(alpaca: BrokerSimulator) -> None:
    key = alpaca.create_key()
    statuses = [_alpaca(alpaca, "GET", "/v2/clock", key=key)[0] for _ in range(200)]
    assert set(statuses) == {200}
    status, body, headers = _alpaca(alpaca, "GET", "/v2/clock", key=key)
    assert (status, body["code"]) == (429, 42910000)
    assert int(headers["retry-after"]) >= 1
    other = alpaca.create_key()  # another account has its own window
    assert _alpaca(alpaca, "GET", "/v2/clock", key=other)[2]["x-ratelimit-limit"] == "200"


def test_alpaca_cancel_is_204_then_not_cancellable(alpaca: BrokerSimulator) -> None:
    key = alpaca.create_key()
    order = {**ORDER, "type": "limit", "limit_price": "10.00"}
    _, placed, _ = _alpaca(alpaca, "POST", "/v2/orders", order, key)
    status, body, _ = _alpaca(alpaca, "DELETE", f"/v2/orders/{placed['id']}", key=key)
    assert (status, body) == (204, None)
    status, body, _ = _alpaca(alpaca, "DELETE", f"/v2/orders/{placed['id']}", key=key)
    assert (status, body["code"]) == (422, 42210000)


def test_oanda_refuses_another_accounts_path(oanda: BrokerSimulator) -> None:
    mine, theirs = oanda.create_key(), oanda.create_key()
    headers = {"authorization": "Bearer " + mine.secret.expose().decode()}
    answer = oanda.handle("GET", f"/v3/accounts/{theirs.key_id}/summary", headers, b"")
    assert answer.status == 403
    answer = oanda.handle("GET", f"/v3/accounts/{mine.key_id}/summary", {}, b"")
    assert answer.status == 401


def test_oanda_dedupe_covers_pending_orders_only(oanda: BrokerSimulator) -> None:
    key = oanda.create_key()
    limit = {"type": "LIMIT", "instrument": "EUR_USD", "units": "100", "price": "1.00000",
             "clientExtensions": {"id": "c1"}}  # fmt: skip
    market = {"type": "MARKET", "instrument": "EUR_USD", "units": "-100",
              "clientExtensions": {"id": "c2"}}  # fmt: skip
    assert _oanda(oanda, "POST", "/orders", {"order": limit}, key)[0] == 201
    status, body = _oanda(oanda, "POST", "/orders", {"order": limit}, key)
    assert status == 400
    assert body["orderRejectTransaction"]["rejectReason"] == "CLIENT_ORDER_ID_ALREADY_EXISTS"
    first, filled = _oanda(oanda, "POST", "/orders", {"order": market}, key)
    assert "orderFillTransaction" in filled
    second, again = _oanda(oanda, "POST", "/orders", {"order": market}, key)
    assert (first, second) == (201, 201)  # filled, so not pending: the id is free again
    assert "orderFillTransaction" in again


def test_oanda_transactions_are_gap_free_and_every_answer_has_the_last_id(
    oanda: BrokerSimulator,
) -> None:
    key = oanda.create_key()
    order = {"type": "MARKET", "instrument": "USD_JPY", "units": "10"}
    for _ in range(3):
        _oanda(oanda, "POST", "/orders", {"order": order}, key)
    _, bad = _oanda(oanda, "POST", "/orders", {"order": {**order, "units": "1.5"}}, key)
    _, page = _oanda(oanda, "GET", "/transactions/sinceid?id=0", key=key)
    ids = [int(t["id"]) for t in page["transactions"]]
    assert ids == list(range(1, len(ids) + 1))
    assert page["lastTransactionID"] == str(ids[-1]) == bad["lastTransactionID"]
    assert page["transactions"][-1]["rejectReason"] == "UNITS_INVALID"


def test_oanda_fok_without_margin_is_a_201_with_a_cancel(oanda: BrokerSimulator) -> None:
    order = {"type": "MARKET", "instrument": "EUR_USD", "units": "90000000",
             "clientExtensions": {"id": "big"}}  # fmt: skip
    status, body = _oanda(oanda, "POST", "/orders", {"order": order})
    assert status == 201
    assert body["orderCancelTransaction"]["reason"] == "INSUFFICIENT_MARGIN"
    assert "orderFillTransaction" not in body
