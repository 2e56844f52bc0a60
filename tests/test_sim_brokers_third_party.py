"""Third-party clients as judges of the brokers' simulator dialects (as
tests/test_sim_conformance.py does for Binance and Kraken).

alpaca-py (Alpaca's official SDK) reads every answer into its pydantic models, so the
simulator's clock, account and order shapes must be the ones Alpaca's SDK expects, and
its refusal must carry the code alpaca-py reports. oandapyV20 routes each endpoint by
OANDA's paths and raises on the statuses OANDA documents. Both talk to the simulator over
HTTPS on 127.0.0.1, trusting the test's CA in their own requests session only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securetrade.sim.brokers import BrokerSimulator

alpaca_trading = pytest.importorskip("alpaca.trading.client")
alpaca_requests = pytest.importorskip("alpaca.trading.requests")
alpaca_enums = pytest.importorskip("alpaca.trading.enums")
alpaca_errors = pytest.importorskip("alpaca.common.exceptions")
oanda_api = pytest.importorskip("oandapyV20")
oanda_core = pytest.importorskip("oandapyV20.oandapyV20")
oanda_orders = pytest.importorskip("oandapyV20.endpoints.orders")
oanda_accounts = pytest.importorskip("oandapyV20.endpoints.accounts")
oanda_transactions = pytest.importorskip("oandapyV20.endpoints.transactions")
oanda_errors = pytest.importorskip("oandapyV20.exceptions")


def _served(venue: str, tmp_path: Path) -> Iterator[tuple[BrokerSimulator, Any, Path]]:
    with BrokerSimulator(venue) as sim:
        server = sim.serve()
        ca = tmp_path / "ca.pem"
        ca.write_text(server.ca_pem)
        yield sim, server, ca


@pytest.fixture
def alpaca(tmp_path: Path) -> Iterator[tuple[BrokerSimulator, Any]]:
    for sim, server, ca in _served("alpaca", tmp_path):
        key = sim.create_key()
        client = alpaca_trading.TradingClient(
            key.key_id, key.secret.expose().decode(), url_override=server.base_url
        )
        client._session.verify = str(ca)  # this session alone trusts the test's CA
        client._session.trust_env = False
        yield sim, client


def test_alpaca_py_reads_the_clock_account_and_orders(alpaca: tuple[Any, Any]) -> None:
    sim, client = alpaca
    enums, requests = alpaca_enums, alpaca_requests
    clock = client.get_clock()
    assert clock.is_open is True
    assert clock.next_close > clock.timestamp
    account = client.get_account()
    assert account.currency == "USD"
    bought = client.submit_order(
        requests.MarketOrderRequest(
            symbol="AAPL",
            qty=0.5,
            side=enums.OrderSide.BUY,
            time_in_force=enums.TimeInForce.DAY,
            client_order_id="judge-1",
        )
    )
    assert bought.status == enums.OrderStatus.FILLED
    assert bought.filled_qty == "0.5"
    resting = client.submit_order(
        requests.LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=enums.OrderSide.BUY,
            time_in_force=enums.TimeInForce.GTC,
            limit_price=100,
            client_order_id="judge-2",
        )
    )
    stop = client.submit_order(
        requests.StopOrderRequest(
            symbol="AAPL",
            qty=1,
            side=enums.OrderSide.BUY,
            time_in_force=enums.TimeInForce.GTC,
            stop_price=900,
            client_order_id="judge-3",
        )
    )
    assert stop.type == enums.OrderType.STOP
    assert client.get_order_by_client_id("judge-2").id == resting.id
    listed = client.get_orders(requests.GetOrdersRequest(status=enums.QueryOrderStatus.OPEN))
    assert {o.client_order_id for o in listed} == {"judge-2", "judge-3"}
    client.cancel_order_by_id(resting.id)
    assert client.get_order_by_id(resting.id).status == enums.OrderStatus.CANCELED
    with pytest.raises(alpaca_errors.APIError) as duplicate:
        client.submit_order(
            requests.MarketOrderRequest(
                symbol="AAPL",
                qty=1,
                side=enums.OrderSide.BUY,
                time_in_force=enums.TimeInForce.DAY,
                client_order_id="judge-1",
            )
        )
    assert duplicate.value.code == 40010001
    assert sim.dialect.stats.rejections == {40010001: 1}


@pytest.fixture
def oanda(tmp_path: Path) -> Iterator[tuple[BrokerSimulator, Any, str]]:
    for sim, server, ca in _served("oanda", tmp_path):
        key = sim.create_key()
        # oandapyV20 names its hosts in a table: the simulator is one more environment.
        environments = oanda_core.TRADING_ENVIRONMENTS
        environments["simulator"] = {"api": server.base_url, "stream": server.base_url}
        try:
            api = oanda_api.API(
                access_token=key.secret.expose().decode(),
                environment="simulator",
                request_params={"verify": str(ca)},
            )
            api.client.trust_env = False
            yield sim, api, key.key_id
        finally:
            del environments["simulator"]


def test_oandapyv20_routes_orders_lookups_and_transactions(oanda: tuple[Any, Any, str]) -> None:
    _, api, account = oanda
    orders = oanda_orders
    summary = api.request(oanda_accounts.AccountSummary(account))
    assert summary["account"]["currency"] == "USD"
    sold = api.request(
        orders.OrderCreate(
            account,
            data={"order": {"type": "MARKET", "instrument": "EUR_USD", "units": "-100"}},
        )
    )
    assert sold["orderFillTransaction"]["units"] == "-100"
    limit = {
        "type": "LIMIT",
        "instrument": "EUR_USD",
        "units": "100",
        "price": "1.00000",
        "clientExtensions": {"id": "judge-1"},
    }
    api.request(orders.OrderCreate(account, data={"order": limit}))
    with pytest.raises(oanda_errors.V20Error) as duplicate:
        api.request(orders.OrderCreate(account, data={"order": limit}))
    assert duplicate.value.code == 400
    assert json.loads(duplicate.value.msg)["errorCode"] == "CLIENT_ORDER_ID_ALREADY_EXISTS"
    found = api.request(orders.OrderDetails(account, "@judge-1"))
    assert found["order"]["state"] == "PENDING"
    assert [o["id"] for o in api.request(orders.OrdersPending(account))["orders"]] == [
        found["order"]["id"]
    ]
    api.request(orders.OrderCancel(account, "@judge-1"))
    page = api.request(oanda_transactions.TransactionsSinceID(account, params={"id": 0}))
    kinds = [t["type"] for t in page["transactions"]]
    assert kinds == [
        "MARKET_ORDER",
        "ORDER_FILL",
        "LIMIT_ORDER",
        "LIMIT_ORDER_REJECT",
        "ORDER_CANCEL",
    ]
    assert page["lastTransactionID"] == "5"
