"""Quote-quantity market orders ("buy 100 USDT of BTC") on every venue that has them, over
the simulator's TLS servers: the venue's own book shows the base quantity it worked out,
the journal adopts a lost answer on the quote amount, and venues without them refuse
before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import TERMINAL, judge
from securetrade import (
    AsyncClient,
    Client,
    DuplicateOrder,
    IdempotencyKeyMismatch,
    InvalidRequest,
    MarketOrder,
    Policy,
    ScopeError,
    Settings,
)
from securetrade.core import Journal
from securetrade.keys import ApiKey
from securetrade.models import Order, OrderRequest, Side
from securetrade.sim import Fault, HttpsServer, Simulator
from securetrade.sim.brokers import BrokerSimulator
from securetrade.sim.engine import Market, SimInstrument, SimRejection

FAST = Settings(settle_ms=300, resolve_timeout=10.0)
SPEND = Decimal("100")


def _tls(server: HttpsServer, **extra: Any) -> dict[str, Any]:
    extra.setdefault("journal", ":memory:")
    extra.setdefault("settings", FAST)
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem, **extra}


def _posts(stats: Any) -> int:
    return sum(n for route, n in stats.by_path.items() if route.startswith("POST "))


def _buy(symbol: str, amount: Decimal = SPEND, side: str = "BUY") -> MarketOrder:
    return MarketOrder(symbol=symbol, side=side, quote_quantity=amount)


def _check_fill(order: Order, book: Any, amount: Decimal, step: Decimal) -> None:
    """The venue's book: a base quantity on the step, worth at most the amount (a buy
    never spends more than asked) and within one step of it."""
    assert book.quote_order_qty == amount
    assert book.filled == book.quantity > 0
    assert book.quantity % step == 0
    price = book.quote_filled / book.filled
    assert book.quote_filled <= amount
    assert amount - book.quote_filled < step * price
    assert order.quote_order_quantity == amount
    assert order.filled_quantity == book.filled


# --- the model ------------------------------------------------------------------------------


def test_exactly_one_size_and_only_on_market_orders() -> None:
    order = _buy("BTCUSDT")
    assert order.quantity is None
    assert order.notional == SPEND
    with pytest.raises(InvalidRequest, match="not both"):
        MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1", quote_quantity="100")
    with pytest.raises(InvalidRequest, match="quote_quantity"):
        MarketOrder(symbol="BTCUSDT", side="BUY")
    with pytest.raises(InvalidRequest, match="only a MARKET order"):
        OrderRequest(symbol="BTCUSDT", side="BUY", type="LIMIT", price="1", quote_quantity="100")
    with pytest.raises(InvalidRequest, match="greater than zero"):
        _buy("BTCUSDT", Decimal("-5"))
    with pytest.raises(InvalidRequest):
        MarketOrder(symbol="BTCUSDT", side="BUY", quote_quantity=float("nan"))
    with pytest.raises(InvalidRequest, match="once it fills"):
        _ = order.base_quantity


def test_fingerprint_tells_quote_from_base_and_keeps_plain_orders() -> None:
    plain = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="100")
    assert plain.fingerprint() == "BTCUSDT|BUY|MARKET|100||"
    assert _buy("BTCUSDT").fingerprint() == "BTCUSDT|BUY|MARKET||||quote=100"
    assert _buy("BTCUSDT", Decimal("100.0")).fingerprint() == _buy("BTCUSDT").fingerprint()


def test_policy_values_the_quote_amount_and_sizes_it_conservatively() -> None:
    order = _buy("BTCUSDT", Decimal("1000"))
    # Notional limits read the amount itself: no reference price needed.
    assert Policy(max_notional="999").evaluate(order).rule == "max_notional"
    assert Policy(max_notional="1000").evaluate(order).allowed
    assert not Policy(max_notional="1000").needs_reference(order)
    # max_quantity sizes it at the reference price less the price band: 1000 / (100 * 0.8).
    assert Policy(max_quantity="12.5", price_band="0.2").needs_reference(order)
    assert Policy(max_quantity="12.5", price_band="0.2").evaluate(order, reference=Decimal(100))
    denied = Policy(max_quantity="12.4", price_band="0.2").evaluate(order, reference=Decimal(100))
    assert denied.rule == "max_quantity"
    assert "estimated quantity 12.5" in denied.reason
    # Without a band, at the reference price itself; without a price, no order.
    assert Policy(max_quantity="10").evaluate(order, reference=Decimal(100))
    assert Policy(max_quantity="9.9").evaluate(order, reference=Decimal(100)).rule == (
        "max_quantity"
    )
    assert Policy(max_quantity="10").evaluate(order).rule == "reference_price"


# --- Binance: quoteOrderQty ------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture
def server(sim: Simulator) -> HttpsServer:
    return sim.serve()


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_binance_fills_the_quote_amount_on_the_step(
    sim: Simulator, server: HttpsServer, side: str
) -> None:
    with Client(sim.create_key(), **_tls(server)) as client:
        assert client.capabilities.quote_quantity == frozenset(Side)
        placed = client.place_order(_buy("BTCUSDT", side=side), idempotency_key=f"q-{side}")
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["BTCUSDT"].step_size)


@pytest.mark.parametrize(
    ("venue", "symbol", "path"),
    [
        ("binance", "ETHUSDT", "/api/v3/order"),
        ("kraken", "ETHUSDT", "/0/private/AddOrder"),
    ],
)
def test_lost_answer_to_a_quote_create_is_found_not_resent(
    sim: Simulator, server: HttpsServer, tmp_path: Path, venue: str, symbol: str, path: str
) -> None:
    """Fault matrix row 2 for a quote-quantity create: executed, the answer lost. The
    journal finds the order by its client id, checks it asks for the same quote amount,
    and keeps it: one order at the venue, nothing lost, nothing sent twice."""
    journal = tmp_path / "journal.sqlite3"
    key = sim.create_key(venue=venue)
    with Client(key, **_tls(server, journal=journal, recv_window_ms=2000)) as client:
        client.recover()
        sim.faults.inject("drop_response", method="POST", path=path)
        placed = client.place_order(_buy(symbol), idempotency_key="lost")
        account = client.core.account
        again = client.place_order(_buy(symbol), idempotency_key="lost")  # a replay
    assert sim.faults.fired
    assert again.order_id == placed.order_id
    stats = sim.kraken.stats if venue == "kraken" else sim.dialect.stats
    assert stats.by_path[f"POST {path}"] == 1
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["ETHUSDT"].step_size)
    j = Journal(journal)
    try:
        intent = j.get(placed.client_order_id)
        if venue == "binance":  # the oracle reads Binance's accounts
            verdict = judge(sim, j, account, ["lost"])
            assert verdict.ok, verdict
            assert verdict.orders == 1
    finally:
        j.close()
    assert intent is not None
    assert intent.state in TERMINAL  # known: no intent left unknown


def test_reused_key_with_another_amount_is_refused_before_sending(
    sim: Simulator, server: HttpsServer
) -> None:
    with Client(sim.create_key(), **_tls(server)) as client:
        client.place_order(_buy("BTCUSDT"), idempotency_key="k")
        with pytest.raises(IdempotencyKeyMismatch, match="another order"):
            client.place_order(_buy("BTCUSDT", Decimal("90")), idempotency_key="k")
        with pytest.raises(IdempotencyKeyMismatch, match="another order"):
            client.place_order(
                MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"), idempotency_key="k"
            )
    assert sim.dialect.stats.by_path["POST /api/v3/order"] == 1


def test_quote_step_min_notional_and_key_limits_refuse_before_sending(
    sim: Simulator, server: HttpsServer
) -> None:
    made = sim.create_key()
    small = ApiKey(
        "binance", made.key_id, made.secret, scopes=made.scopes, max_quantity=Decimal("0.001")
    )
    with Client(small, **_tls(server)) as client:
        rules = client.instruments()["BTCUSDT"]
        assert rules.quote_step == Decimal("0.00000001")  # quoteAssetPrecision 8
        with pytest.raises(InvalidRequest, match="below the minimum notional"):
            client.place_order(_buy("BTCUSDT", rules.min_notional / 2), idempotency_key="tiny")
        with pytest.raises(InvalidRequest, match="at most 8 decimal places"):
            client.place_order(_buy("BTCUSDT", Decimal("100.123456789")), idempotency_key="fine")
        # 100 USDT is ~0.0015 BTC at the simulator's ~65,000: over the key's 0.001.
        with pytest.raises(ScopeError, match="exceeds the key's limit"):
            client.place_order(_buy("BTCUSDT"), idempotency_key="big")
    assert "POST /api/v3/order" not in sim.dialect.stats.by_path


# --- Kraken: oflags=viqc, market buys only ---------------------------------------------------


def test_kraken_buys_with_viqc_and_refuses_a_quote_sell(
    sim: Simulator, server: HttpsServer
) -> None:
    with Client(sim.create_key(venue="kraken"), **_tls(server)) as client:
        assert client.capabilities.quote_quantity == frozenset({Side.BUY})
        assert client.capabilities.supports("quote_quantity")
        placed = client.place_order(_buy("XBTUSDT"), idempotency_key="kq")
        found = client.get_order("XBTUSDT", client_order_id=placed.client_order_id)
        with pytest.raises(InvalidRequest, match="no quote_quantity SELL orders"):
            client.place_order(_buy("XBTUSDT", side="SELL"), idempotency_key="ks")
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["BTCUSDT"].step_size)
    assert found.quote_order_quantity == SPEND
    assert found.quantity == book.filled
    assert sim.kraken.stats.by_path["POST /0/private/AddOrder"] == 1


# --- Alpaca: notional, DAY market orders -----------------------------------------------------


@pytest.fixture
def alpaca() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("alpaca") as simulator:
        yield simulator


def test_alpaca_sends_notional_for_the_day(alpaca: BrokerSimulator) -> None:
    server = alpaca.serve()
    with Client(alpaca.create_key(), **_tls(server, recv_window_ms=300)) as client:
        assert client.capabilities.quote_quantity == frozenset(Side)
        placed = client.place_order(_buy("AAPL", Decimal("250.50")), idempotency_key="n1")
    body = alpaca.dialect.stats.bodies[-1]
    assert body["notional"] == "250.50"
    assert "qty" not in body
    assert body["time_in_force"] == "day"
    (book,) = alpaca.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, Decimal("250.50"), alpaca.market.instruments["AAPL"].step_size)
    assert len(alpaca.dialect.stats.bodies) == 1


def test_alpaca_duplicate_id_is_adopted_on_the_notional_alone(
    alpaca: BrokerSimulator, tmp_path: Path
) -> None:
    """Two journals, one key: Alpaca refuses the reused client id (422 40010001) and the
    second journal adopts the first order only if it asks for the same dollars."""
    server = alpaca.serve()
    key = alpaca.create_key()
    no_recovery = Settings(settle_ms=300, resolve_timeout=10.0, recover_on_start=False)

    def second(order: MarketOrder, name: str) -> Any:
        options = _tls(server, journal=tmp_path / name, settings=no_recovery, recv_window_ms=300)
        with Client(key, **options) as client:
            return client.place_order(order, idempotency_key="same")

    first = second(_buy("AAPL"), "a.sqlite3")
    assert second(_buy("AAPL", Decimal("100.00")), "b.sqlite3").order_id == first.order_id
    with pytest.raises(DuplicateOrder):
        second(_buy("AAPL", Decimal("90")), "c.sqlite3")
    with pytest.raises(DuplicateOrder):
        second(MarketOrder(symbol="AAPL", side="BUY", quantity="1"), "d.sqlite3")
    assert len(alpaca.market.orders_with_client_id(first.client_order_id)) == 1


@pytest.mark.parametrize(
    ("kind", "options"),
    [("drop_response", {}), ("reset", {}), ("status_after", {"status": 504})],
    ids=["drop_response", "reset", "504"],
)
def test_alpaca_lost_answer_to_a_notional_create_is_found(
    alpaca: BrokerSimulator, tmp_path: Path, kind: str, options: dict[str, Any]
) -> None:
    """Executed, then no readable answer: never resent blindly (Alpaca's strong dedupe
    would refuse it anyway), found by client id, one order at the venue."""
    server = alpaca.serve()
    key = alpaca.create_key()
    journal = tmp_path / "journal.sqlite3"
    alpaca.faults.add(Fault(kind, "POST", "/v2/orders", **options))
    with Client(key, **_tls(server, journal=journal, recv_window_ms=300)) as client:
        placed = client.place_order(_buy("SPY"), idempotency_key="lost")
        account = client.core.account
    assert alpaca.faults.fired
    (book,) = alpaca.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, alpaca.market.instruments["SPY"].step_size)
    j = Journal(journal)
    try:
        verdict = judge(alpaca, j, account, ["lost"], venue="alpaca")  # type: ignore[arg-type]
    finally:
        j.close()
    assert verdict.ok, verdict
    assert verdict.orders == 1


# --- OANDA: no such order ---------------------------------------------------------------------


def test_oanda_refuses_quote_quantity_and_sends_nothing() -> None:
    with BrokerSimulator("oanda") as oanda:
        server = oanda.serve()
        with Client(oanda.create_key(), **_tls(server)) as client:
            assert not client.capabilities.supports("quote_quantity")
            with pytest.raises(InvalidRequest, match="no quote_quantity BUY orders"):
                client.place_order(_buy("EUR_USD"), idempotency_key="fx")
        assert not any(p.startswith("POST ") for p in oanda.dialect.stats.by_path)


# --- ccxt: create_order with params['cost'], where ccxt says the exchange has it ---------------


def _ccxt_key(sim: Simulator, exchange: str) -> ApiKey:
    made = sim.create_key(venue=exchange)
    return ApiKey(
        f"ccxt:{exchange}",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )


def test_ccxt_binance_places_a_cost_order(sim: Simulator, server: HttpsServer) -> None:
    pytest.importorskip("ccxt")
    with Client(_ccxt_key(sim, "binance"), **_tls(server, recv_window_ms=2000)) as client:
        assert client.capabilities.quote_quantity == frozenset(Side)
        placed = client.place_order(_buy("BTC/USDT"), idempotency_key="cb")
        # ccxt would cut the amount to the price's precision: refused instead, unsent.
        with pytest.raises(InvalidRequest, match="decimal places"):
            client.place_order(_buy("BTC/USDT", Decimal("100.001")), idempotency_key="cut")
    assert sim.dialect.stats.by_path["POST /api/v3/order"] == 1
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["BTCUSDT"].step_size)


def test_ccxt_kraken_buys_with_cost_and_refuses_a_cost_sell(
    sim: Simulator, server: HttpsServer
) -> None:
    pytest.importorskip("ccxt")
    from securetrade.ratelimit import RateLimit, RateLimiter
    from securetrade.venues.ccxt.venue import COST

    roomy = RateLimiter([RateLimit(COST, 1.0, 1_000_000)])
    key = _ccxt_key(sim, "kraken")
    with Client(key, **_tls(server, recv_window_ms=2000, limiter=roomy)) as client:
        assert client.capabilities.quote_quantity == frozenset({Side.BUY})
        placed = client.place_order(_buy("BTC/USDT"), idempotency_key="ck")
        with pytest.raises(InvalidRequest, match="no quote_quantity SELL orders"):
            client.place_order(_buy("BTC/USDT", side="SELL"), idempotency_key="cs")
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["BTCUSDT"].step_size)
    assert sim.kraken.stats.by_path["POST /0/private/AddOrder"] == 1


def test_alpaca_refuses_a_notional_beyond_cents_of_any_size_before_sending(
    alpaca: BrokerSimulator,
) -> None:
    server = alpaca.serve()
    with Client(alpaca.create_key(), **_tls(server, recv_window_ms=300)) as client:
        for amount in ("1.001", "1" * 30 + ".001"):
            with pytest.raises(InvalidRequest, match=r"at most 2 decimal places|out of range"):
                client.place_order(_buy("AAPL", Decimal(amount)), idempotency_key=amount[-8:])
        assert alpaca.dialect.stats.bodies == []
        placed = client.place_order(_buy("AAPL", Decimal("20.500")), idempotency_key="ok")
    assert alpaca.dialect.stats.bodies[0]["notional"] == "20.500"
    assert placed.quote_order_quantity == Decimal("20.5")


# --- the simulator's arithmetic, and the async client ------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    amount=st.decimals(min_value=Decimal("10"), max_value=Decimal("50000"), places=2),
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
    side=st.sampled_from(["BUY", "SELL"]),
)
def test_engine_quantity_is_on_the_step_and_never_over_the_amount(
    amount: Decimal, price: Decimal, side: str
) -> None:
    step = Decimal("0.0001")
    inst = SimInstrument("XY", "X", "Y", Decimal("0.01"), step, step, Decimal("1"), price)
    market = Market([inst])
    market.open_account("a", {"X": Decimal("1e9"), "Y": Decimal("1e12")})
    market.set_price("XY", price)
    size = amount / price

    def place() -> Any:
        return market.place(
            "a", symbol="XY", side=side, type="MARKET", quantity=Decimal(0), price=None,
            time_in_force=None, client_order_id="c", quote_quantity=amount,
        )  # fmt: skip

    if size < step or size >= inst.max_quantity + step:  # the venue's lot size says no
        with pytest.raises(SimRejection, match="LOT_SIZE"):
            place()
        return
    order = place()
    assert order.quote_order_qty == amount
    assert order.filled == order.quantity
    assert order.quantity % step == 0
    assert order.quote_filled <= amount < order.quote_filled + step * price


def test_async_client_places_a_quote_order(sim: Simulator, server: HttpsServer) -> None:
    async def run() -> Order:
        async with AsyncClient(sim.create_key(), **_tls(server)) as client:
            return await client.place_order(_buy("ETHUSDT"), idempotency_key="aq")

    placed = asyncio.run(run())
    (book,) = sim.market.orders_with_client_id(placed.client_order_id)
    _check_fill(placed, book, SPEND, sim.market.instruments["ETHUSDT"].step_size)
