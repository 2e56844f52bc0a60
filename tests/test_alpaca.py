"""Alpaca Trading API v2 as a native venue: the adapter against the simulator's Alpaca
dialect over real TLS on loopback, with the faults a broker's create can meet."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oracle import judge
from securetrade import (
    Client,
    DuplicateOrder,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderRequest,
    OrderType,
    Policy,
    PolicyViolation,
    Settings,
    StopLimitOrder,
    StopLossOrder,
)
from securetrade.core import IntentState, Journal, derive_client_order_id
from securetrade.keys import ApiKey, Environment
from securetrade.models import OrderStatus, TimeInForce
from securetrade.sim import Fault, HttpsServer
from securetrade.sim.brokers import BrokerSimulator
from securetrade.venues import Op, get_venue
from securetrade.venues.alpaca import ALPACA
from securetrade.venues.alpaca.tables import API, RATE_LIMITS
from securetrade.venues.base import capabilities_of

POST = ("POST", "/v2/orders")
FAST = Settings(settle_ms=300, resolve_timeout=10.0)


@pytest.fixture
def sim() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("alpaca") as simulator:
        yield simulator


@pytest.fixture
def server(sim: BrokerSimulator) -> HttpsServer:
    return sim.serve()


def _client(sim: BrokerSimulator, server: HttpsServer, **kwargs: Any) -> Client:
    key = kwargs.pop("key", None) or sim.create_key()
    kwargs.setdefault("journal", ":memory:")
    kwargs.setdefault("settings", FAST)
    kwargs.setdefault("recv_window_ms", 300)
    return Client(key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, **kwargs)


def _posts(sim: BrokerSimulator) -> int:
    return sim.dialect.stats.by_path.get(" ".join(POST), 0)


def test_places_fractional_market_and_limit_orders_then_cancels_by_client_id(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    with _client(sim, server) as client:
        bought = client.place_order(
            MarketOrder(symbol="AAPL", side="BUY", quantity="0.5"), idempotency_key="m1"
        )
        assert bought.status is OrderStatus.FILLED
        assert bought.filled_quantity == Decimal("0.5")
        resting = client.place_order(
            LimitOrder(symbol="AAPL", side="BUY", quantity="3", price="100.00"),
            idempotency_key="l1",
        )
        assert resting.status is OrderStatus.NEW
        assert resting.time_in_force is TimeInForce.GTC
        assert [o.client_order_id for o in client.open_orders("AAPL")] == [resting.client_order_id]
        cancelled = client.cancel_order("AAPL", client_order_id=resting.client_order_id)
        assert cancelled.status is OrderStatus.CANCELED
        (usd,) = client.balances()
        assert usd.asset == "USD"
        assert usd.free < Decimal("100000")  # the half share was paid for
    bodies = sim.dialect.stats.bodies
    assert bodies[0]["qty"] == "0.5"
    assert bodies[0]["time_in_force"] == "day"  # a market order is for the day
    assert bodies[1]["time_in_force"] == "gtc"
    assert bodies[1]["limit_price"] == "100.00"
    assert all(isinstance(b["client_order_id"], str) for b in bodies)
    # The cancel by client id read the order, then deleted it by Alpaca's id: once.
    deletes = [p for p in sim.dialect.stats.by_path if p.startswith("DELETE /v2/orders/")]
    assert len(deletes) == 1


def test_client_order_id_is_the_journals_deterministic_id() -> None:
    assert ALPACA.client_order_id("acct", "k") == derive_client_order_id("alpaca", "acct", "k")
    assert ALPACA.owns_client_order_id(ALPACA.client_order_id("acct", "k"))


def test_capabilities_are_stocks_sessions_without_market_data() -> None:
    found = capabilities_of(get_venue("alpaca"))
    assert found.supports(TimeInForce.DAY)
    assert found.supports(TimeInForce.OPG)
    assert found.supports(Op.PLACE_ORDER)
    assert not found.supports(Op.TICKER)  # Alpaca's prices are on its data API, not here
    assert not found.supports("withdraw")


def test_paper_is_the_default_and_live_only_when_asked() -> None:
    paper = ApiKey("alpaca", "PKX", "secret-text", scopes=["read"])
    live = ApiKey("alpaca", "AKX", "secret-text", scopes=["read"], environment="live")
    assert paper.environment is Environment.PAPER
    assert ApiKey("binance", "b", "s").environment is Environment.LIVE  # unchanged
    # No connection is made here: only the host each key is bound to is read.
    with Client(paper, journal=":memory:", unsafe_disable_pinning=True) as client:
        assert client.core.base_url == "https://paper-api.alpaca.markets"
    with Client(live, journal=":memory:", unsafe_disable_pinning=True) as client:
        assert client.core.base_url == "https://api.alpaca.markets"


def test_key_headers_carry_the_secret_and_nothing_prints_it(sim: BrokerSimulator) -> None:
    key = sim.create_key()
    secret = key.secret.expose().decode()
    signer = ALPACA.signer(key)
    request = ALPACA.prepare(
        ALPACA.endpoints[Op.BALANCES], [], key_id=key.key_id, signer=signer, timestamp_ms=0
    )
    headers = dict(request.headers)
    assert headers["APCA-API-SECRET-KEY"] == secret
    assert headers["APCA-API-KEY-ID"] == key.key_id
    for shown in (repr(request), repr(signer), str(request)):
        assert secret not in shown
        assert key.key_id not in shown
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_rate_limit_table_is_200_a_minute_per_account() -> None:
    (limit,) = RATE_LIMITS
    assert (limit.kind, limit.seconds, limit.limit, limit.scope.value) == (
        API,
        60.0,
        200,
        "account",
    )
    assert all(e.cost == {API: 1} for e in ALPACA.endpoints.values())


def test_fractional_gtc_and_bad_extended_hours_are_refused_before_sending(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    with _client(sim, server) as client:
        with pytest.raises(InvalidRequest, match="DAY"):
            client.place_order(
                LimitOrder(symbol="AAPL", side="BUY", quantity="0.5", price="100"),
                idempotency_key="f1",
            )
        with pytest.raises(PolicyViolation) as refused:  # asked for, not allowed
            client.place_order(
                LimitOrder(
                    symbol="AAPL",
                    side="BUY",
                    quantity="1",
                    price="100",
                    time_in_force="DAY",
                    extended_hours=True,
                ),
                idempotency_key="f0",
            )
        assert refused.value.rule == "extended_hours"
    allowed = _client(sim, server, policy=Policy(extended_hours=True))
    with allowed, pytest.raises(InvalidRequest, match="extended-hours"):  # allowed, not GTC
        allowed.place_order(
            LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="100", extended_hours=True),
            idempotency_key="f2",
        )
    assert _posts(sim) == 0


def test_market_clock_refuses_regular_orders_while_closed(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path
) -> None:
    sim.dialect.market_open = False  # type: ignore[union-attr]
    journal = tmp_path / "j.sqlite3"
    allowed = Policy(extended_hours=True)
    with _client(sim, server, journal=journal, policy=allowed) as client:
        client.sync_clock()
        with pytest.raises(PolicyViolation) as refused:
            client.place_order(
                MarketOrder(symbol="AAPL", side="BUY", quantity="1"), idempotency_key="c1"
            )
        assert refused.value.rule == "market_hours"
        assert _posts(sim) == 0
        # Asked for and of the kind Alpaca takes outside the session: it goes.
        placed = client.place_order(
            LimitOrder(
                symbol="AAPL",
                side="BUY",
                quantity="1",
                price="100",
                time_in_force="DAY",
                extended_hours=True,
            ),
            idempotency_key="c2",
        )
        account = client.core.account
    assert placed.status is OrderStatus.NEW
    assert sim.dialect.stats.bodies[-1]["extended_hours"] is True
    j = Journal(journal)
    try:
        refused_intent = j.get(derive_client_order_id("alpaca", account, "c1"))
        assert refused_intent is not None
        assert refused_intent.state is IntentState.NOT_PLACED
    finally:
        j.close()


@pytest.mark.parametrize(
    "fault",
    [
        Fault("drop_response", "POST", "/v2/orders"),
        Fault("reset", "POST", "/v2/orders"),
        Fault("status_after", "POST", "/v2/orders", status=504),
        Fault("html_after", "POST", "/v2/orders"),
    ],
    ids=["lost-answer", "reset", "504-after-processing", "html-page"],
)
def test_a_create_that_landed_is_found_by_client_order_id_never_resent(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path, fault: Fault
) -> None:
    journal = tmp_path / "j.sqlite3"
    sim.faults.add(fault)
    with _client(sim, server, journal=journal) as client:
        order = client.place_order(
            LimitOrder(symbol="AAPL", side="BUY", quantity="2", price="100"),
            idempotency_key="x1",
        )
        account = client.core.account
    assert order.status is OrderStatus.NEW
    assert _posts(sim) == 1  # resolved by the lookup, not by sending again
    assert sim.dialect.stats.by_path.get("GET /v2/orders:by_client_order_id", 0) >= 1
    _assert_oracle(sim, journal, account, ["x1"])


def test_a_504_before_processing_is_resent_only_after_the_lookup(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path
) -> None:
    """Not processed: the lookup finds nothing past the deadline, so the same id goes again
    (safe: Alpaca would refuse it as a duplicate had the first landed)."""
    journal = tmp_path / "j.sqlite3"
    sim.faults.add(Fault("status", "POST", "/v2/orders", status=504))
    with _client(sim, server, journal=journal) as client:
        order = client.place_order(
            MarketOrder(symbol="SPY", side="BUY", quantity="1"), idempotency_key="r1"
        )
        account = client.core.account
    assert order.status is OrderStatus.FILLED
    assert _posts(sim) == 2
    assert sim.dialect.stats.by_path.get("GET /v2/orders:by_client_order_id", 0) >= 1
    _assert_oracle(sim, journal, account, ["r1"])


def test_a_duplicate_id_reply_adopts_the_order_after_checking_its_parameters(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    """An earlier attempt (a process that died before its journal knew) placed the order,
    which has filled since: the venue still answers 40010001 (strong dedupe), and the order
    found is adopted as ours only when its parameters are the intent's."""
    key = sim.create_key()
    with _client(sim, server, key=key) as client:
        cid = ALPACA.client_order_id(client.core.account, "d1")
        other = ALPACA.client_order_id(client.core.account, "d2")
        for client_id, quantity in ((cid, Decimal(2)), (other, Decimal(5))):
            placed = sim.market.place(
                sim.account_of(key.key_id),
                symbol="AAPL",
                side="BUY",
                type="MARKET",
                quantity=quantity,
                price=None,
                time_in_force=None,
                client_order_id=client_id,
            )
            assert placed.status == "FILLED"  # closed: not an open orphan recovery sees
        adopted = client.place_order(
            MarketOrder(symbol="AAPL", side="BUY", quantity="2"), idempotency_key="d1"
        )
        assert adopted.client_order_id == cid
        assert adopted.status is OrderStatus.FILLED
        with pytest.raises(DuplicateOrder, match="other parameters"):
            client.place_order(
                MarketOrder(symbol="AAPL", side="BUY", quantity="2"), idempotency_key="d2"
            )
    assert sim.dialect.stats.rejections.get(40010001) == 2
    assert len(sim.market.orders_with_client_id(cid)) == 1
    assert len(sim.market.orders_with_client_id(other)) == 1


def test_the_same_idempotency_key_never_sends_twice(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    with _client(sim, server) as client:
        order = LimitOrder(symbol="AAPL", side="SELL", quantity="1", price="500")
        first = client.place_order(order, idempotency_key="same")
        again = client.place_order(order, idempotency_key="same")
    assert first.order_id == again.order_id
    assert _posts(sim) == 1


def test_wrong_secret_is_an_authentication_error(sim: BrokerSimulator, server: HttpsServer) -> None:
    from securetrade import AuthenticationRejected

    real = sim.create_key()
    forged = ApiKey(
        "alpaca", real.key_id, "not-the-secret", scopes=real.scopes, environment="simulated"
    )
    with _client(sim, server, key=forged) as client, pytest.raises(AuthenticationRejected):
        client.balances()


def _assert_oracle(sim: BrokerSimulator, journal: Path, account: str, keys: list[str]) -> None:
    j = Journal(journal)
    try:
        verdict = judge(sim, j, account, keys, venue="alpaca")  # type: ignore[arg-type]
    finally:
        j.close()
    assert verdict.ok, verdict
    assert verdict.orders == len(keys)


def test_stop_and_stop_limit_orders(sim: BrokerSimulator, server: HttpsServer) -> None:
    """A stop buy above the market waits (open, cancellable); one below it triggers and
    fills at market; a stop-limit rests as a limit order once triggered."""
    with _client(sim, server) as client:
        waiting = client.place_order(
            StopLossOrder(symbol="AAPL", side="BUY", quantity="1", stop_price="900.00"),
            idempotency_key="s1",
        )
        assert waiting.type is OrderType.STOP_LOSS
        assert waiting.status is OrderStatus.NEW
        assert waiting.stop_price == Decimal("900.00")
        assert waiting.client_order_id in {o.client_order_id for o in client.open_orders()}
        assert client.cancel_order("AAPL", order_id=waiting.order_id).status is (
            OrderStatus.CANCELED
        )
        client.place_order(
            StopLossOrder(symbol="AAPL", side="BUY", quantity="1", stop_price="1.00"),
            idempotency_key="s2",
        )
        fired = client.get_order(
            "AAPL", client_order_id=client.venue.client_order_id(client.core.account, "s2")
        )
        assert fired.status is OrderStatus.FILLED
        assert fired.type is OrderType.STOP_LOSS
        limited = client.place_order(
            StopLimitOrder(
                symbol="AAPL", side="BUY", quantity="1", stop_price="1.00", price="2.00"
            ),
            idempotency_key="s3",
        )
        assert limited.time_in_force is TimeInForce.GTC
        again = client.get_order("AAPL", order_id=limited.order_id)
        assert again.status is OrderStatus.NEW  # triggered, resting at 2.00
        assert again.price == Decimal("2.00")
        assert len(sim.market.orders_with_client_id(limited.client_order_id)) == 1
    assert [b["type"] for b in sim.dialect.stats.bodies] == ["stop", "stop", "stop_limit"]
    assert sim.dialect.stats.bodies[2]["stop_price"] == "1.00"


def test_stop_orders_need_a_stop_price_and_crypto_venues_refuse_them() -> None:
    with pytest.raises(InvalidRequest):
        OrderRequest(symbol="AAPL", side="BUY", type="STOP_LOSS", quantity="1")
    with pytest.raises(InvalidRequest):
        LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="1", stop_price="2")
    plain = LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="1")
    stop = StopLimitOrder(symbol="AAPL", side="BUY", quantity="1", price="1", stop_price="2")
    assert "stop=" not in plain.fingerprint()  # older intents keep their fingerprint
    assert stop.fingerprint().endswith("stop=2")
    assert not capabilities_of(ALPACA).supports(OrderType.OCO)  # Alpaca: stops, no OCO here
    assert capabilities_of(ALPACA).supports(OrderType.STOP_LOSS_LIMIT)


def test_request_authentication_is_chosen_in_signer_alone() -> None:
    """prepare() sends whatever headers the chosen authentication gives: an OAuth bearer
    token returned by ``signer()`` would be sent as is, with no other change."""
    from securetrade.keys import Secret
    from securetrade.signing.presented import BearerToken

    token = "oauth-" + "t" * 24
    request = ALPACA.prepare(
        ALPACA.endpoints[Op.BALANCES],
        [],
        key_id="ignored",
        signer=BearerToken(Secret(token)),
        timestamp_ms=0,
    )
    assert dict(request.headers) == {"Authorization": "Bearer " + token}
    assert token not in repr(request)
    with pytest.raises(InvalidRequest):
        ALPACA.prepare(ALPACA.endpoints[Op.BALANCES], [], key_id="k", signer=None, timestamp_ms=0)


def test_a_duplicate_with_another_limit_price_is_not_adopted(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    key = sim.create_key()
    with _client(sim, server, key=key) as client:
        cid = ALPACA.client_order_id(client.core.account, "p1")
        placed = sim.market.place(
            sim.account_of(key.key_id),
            symbol="AAPL",
            side="BUY",
            type="LIMIT",
            quantity=Decimal(1),
            price=Decimal("101.00"),
            time_in_force="GTC",
            client_order_id=cid,
        )
        sim.market.cancel(placed.account, None, order_id=placed.order_id, client_order_id=None)
        with pytest.raises(DuplicateOrder, match="other parameters"):
            client.place_order(
                LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="100.00"),
                idempotency_key="p1",
            )


@pytest.mark.parametrize("venue", ["alpaca", "oanda"])
def test_broker_simulator_opening_balances_are_checked_as_the_exchange_simulators_are(
    venue: str,
) -> None:
    """Whole numbers open the account as Decimals; a float, a negative amount or a mapping
    that is no dict is refused with InvalidRequest before any key or account is made."""
    from securetrade import InvalidRequest
    from securetrade.sim import Simulator

    with BrokerSimulator(venue) as simulator:
        before = dict(simulator.market.accounts)
        for bad in ({"USD": 1000.5}, {"USD": Decimal(-1)}, [("USD", 1)], {7: Decimal(1)}):
            with pytest.raises(InvalidRequest, match="balances must map each asset"):
                simulator.create_key(balances=bad)  # type: ignore[arg-type]
        assert simulator.market.accounts == before
        key = simulator.create_key(balances={"USD": 1000})  # type: ignore[dict-item]
        account = simulator.market.accounts[simulator.account_of(key.key_id)]
        assert account.balances["USD"][0] == Decimal(1000)
    with Simulator() as exchange:
        exchange.create_key(balances={"USDT": 250})  # type: ignore[dict-item]
        with pytest.raises(InvalidRequest, match="balances must map each asset"):
            exchange.create_key(balances={"USDT": 0.1})  # type: ignore[dict-item]
