"""OANDA v20 as a native venue: the adapter against the simulator's OANDA dialect over
real TLS on loopback: signed units, the 201 that is a refusal, pending-only dedupe, a lost
201 resolved by client id, and a lost request that stays unknown (never resent)."""

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
    InsufficientFunds,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderNotFound,
    SecureTradeError,
    Settings,
    UnresolvedOrder,
)
from securetrade.core import IntentState, Journal, derive_client_order_id
from securetrade.keys import ApiKey, Environment
from securetrade.models import AssetClass, OrderStatus, Side, TimeInForce
from securetrade.sim import Fault, HttpsServer
from securetrade.sim.brokers import BrokerSimulator
from securetrade.venues import Op, Verdict
from securetrade.venues.base import capabilities_of
from securetrade.venues.oanda import OANDA, Oanda, signed_units
from securetrade.venues.oanda.tables import RATE_LIMITS, REST

FAST = Settings(settle_ms=300, resolve_timeout=1.5)
ORDERS = "/orders"


@pytest.fixture
def sim() -> Iterator[BrokerSimulator]:
    with BrokerSimulator("oanda") as simulator:
        yield simulator


@pytest.fixture
def server(sim: BrokerSimulator) -> HttpsServer:
    return sim.serve()


def _client(sim: BrokerSimulator, server: HttpsServer, **kwargs: Any) -> Client:
    key = kwargs.pop("key", None) or sim.create_key()
    kwargs.setdefault("journal", ":memory:")
    kwargs.setdefault("settings", FAST)
    return Client(key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, **kwargs)


def _posts(sim: BrokerSimulator) -> int:
    return sum(n for p, n in sim.dialect.stats.by_path.items() if p.startswith("POST "))


class _WithoutAccountRead(Oanda):
    """OANDA without the account read before each order: that read teaches the cursor, and
    this process must send its create knowing none (as after a restart)."""

    account_endpoint = None


def _post_fault(kind: str, sim: BrokerSimulator, key: ApiKey, **kwargs: Any) -> None:
    sim.faults.add(Fault(kind, "POST", f"/v3/accounts/{key.key_id}/orders", **kwargs))


def test_units_are_signed_from_side_and_quantity() -> None:
    assert signed_units(Side.BUY, Decimal(1000)) == "1000"
    assert signed_units(Side.SELL, Decimal(1000)) == "-1000"


def test_places_market_and_limit_orders_with_signed_units(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    sim.dialect.hedging_enabled = True  # type: ignore[union-attr]  # the BUY outsizes the short
    with _client(sim, server) as client:
        sold = client.place_order(
            MarketOrder(symbol="EUR_USD", side="SELL", quantity="1000"), idempotency_key="s1"
        )
        assert sold.status is OrderStatus.FILLED
        assert sold.side is Side.SELL
        assert sold.signed_quantity == Decimal(-1000)
        assert sold.filled_quantity == Decimal(1000)
        assert sold.average_price is not None
        assert sold.average_price > Decimal("1")
        resting = client.place_order(
            LimitOrder(
                symbol="EUR_USD", side="BUY", quantity="2000", price="1.00000", time_in_force="DAY"
            ),
            idempotency_key="l1",
        )
        assert resting.status is OrderStatus.NEW
        assert resting.time_in_force is TimeInForce.DAY
        assert [o.order_id for o in client.open_orders("EUR_USD")] == [resting.order_id]
        cancelled = client.cancel_order("EUR_USD", client_order_id=resting.client_order_id)
        assert cancelled.status is OrderStatus.CANCELED
        # A FILLED order read back comes with its fill (price and units).
        again = client.get_order("EUR_USD", client_order_id=sold.client_order_id)
        assert again.quote_quantity == sold.quote_quantity
        instrument = client.instruments()["EUR_USD"]
    first, second = sim.dialect.stats.bodies[:2]
    assert first["units"] == "-1000"
    assert first["timeInForce"] == "FOK"
    assert first["clientExtensions"] == {"id": sold.client_order_id}
    assert second["units"] == "2000"
    assert second["timeInForce"] == "GFD"
    assert second["price"] == "1.00000"
    assert instrument.asset_class is AssetClass.FOREX
    assert instrument.pip_location == -4
    assert instrument.step_size == Decimal(1)  # whole units


def test_fractional_units_and_sub_tick_prices_are_refused_before_sending(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    with _client(sim, server) as client:
        with pytest.raises(InvalidRequest):
            client.place_order(
                MarketOrder(symbol="EUR_USD", side="BUY", quantity="10.5"), idempotency_key="u1"
            )
        with pytest.raises(InvalidRequest):
            client.place_order(
                LimitOrder(symbol="EUR_USD", side="BUY", quantity="10", price="1.000001"),
                idempotency_key="u2",
            )
    assert _posts(sim) == 0


def test_a_201_with_a_cancel_transaction_is_a_refusal_not_a_fill(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    with _client(sim, server, journal=journal) as client:
        with pytest.raises(InsufficientFunds, match="INSUFFICIENT_MARGIN"):
            client.place_order(
                MarketOrder(symbol="EUR_USD", side="BUY", quantity="90000000"),
                idempotency_key="big",
            )
        account = client.core.account
    j = Journal(journal)
    try:
        intent = j.get(derive_client_order_id("oanda", account, "big"))
        assert intent is not None
        assert intent.state is IntentState.REJECTED
    finally:
        j.close()
    assert _posts(sim) == 1


def test_a_lost_201_is_resolved_by_client_id_and_never_resent(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    key = sim.create_key()
    _post_fault("drop_response", sim, key)
    with _client(sim, server, key=key, journal=journal) as client:
        order = client.place_order(
            MarketOrder(symbol="EUR_USD", side="BUY", quantity="100"), idempotency_key="lost"
        )
        account = client.core.account
    assert order.status is OrderStatus.FILLED
    assert order.quote_quantity > 0  # read from the fill transaction
    assert _posts(sim) == 1
    lookups = [p for p in sim.dialect.stats.by_path if "/orders/%40" in p or "/orders/@" in p]
    assert lookups
    assert any("/transactions/" in p for p in sim.dialect.stats.by_path)
    _assert_oracle(sim, journal, account, ["lost"])


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("drop_request", {}),
        ("status", {"status": 503}),
    ],
    ids=["lost-request", "503-unprocessed"],
)
def test_an_unanswered_create_stays_unknown_and_is_not_resent(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path, kind: str, extra: dict[str, Any]
) -> None:
    """No deadline and no lasting dedupe: "not found" proves nothing, so the intent is
    kept UNKNOWN (UnresolvedOrder), never sent again by itself."""
    journal = tmp_path / "j.sqlite3"
    key = sim.create_key()
    _post_fault(kind, sim, key, **extra)
    with _client(sim, server, key=key, journal=journal) as client:
        with pytest.raises(UnresolvedOrder):
            client.place_order(
                MarketOrder(symbol="EUR_USD", side="BUY", quantity="100"), idempotency_key="u"
            )
        account = client.core.account
    assert _posts(sim) == 1
    cid = derive_client_order_id("oanda", account, "u")
    assert sim.market.orders_with_client_id(cid) == []
    j = Journal(journal)
    try:
        intent = j.get(cid)
        assert intent is not None
        assert intent.state is IntentState.UNKNOWN
        verdict = judge(sim, j, account, ["u"], venue="oanda")  # type: ignore[arg-type]
    finally:
        j.close()
    assert not verdict.duplicates
    assert not verdict.lost
    assert verdict.unknown == ["u"]


def test_a_pending_duplicate_is_adopted_after_checking_its_parameters(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    key = sim.create_key()
    with _client(sim, server, key=key, settings=Settings(recover_on_start=False)) as client:
        cid = OANDA.client_order_id(client.core.account, "p1")
        sim.market.place(
            sim.account_of(key.key_id),
            symbol="EUR_USD",
            side="BUY",
            type="LIMIT",
            quantity=Decimal(500),
            price=Decimal("1.00000"),
            time_in_force="GTC",
            client_order_id=cid,
        )
        adopted = client.place_order(
            LimitOrder(symbol="EUR_USD", side="BUY", quantity="500", price="1.00000"),
            idempotency_key="p1",
        )
    assert adopted.client_order_id == cid
    assert adopted.status is OrderStatus.NEW
    assert sim.dialect.stats.rejections.get("CLIENT_ORDER_ID_ALREADY_EXISTS") == 1
    assert len(sim.market.orders_with_client_id(cid)) == 1


def test_market_data_ticker_book_and_candles(sim: BrokerSimulator, server: HttpsServer) -> None:
    with _client(sim, server) as client:
        ticker = client.ticker("EUR_USD")
        book = client.order_book("EUR_USD", 2)
        bars = client.candles("EUR_USD", "1m", limit=3)
        assert client.capabilities.supports(Op.CANDLES)
    assert ticker.bid is not None
    assert ticker.ask is not None
    assert ticker.bid < ticker.ask
    assert book.bids[0].price == ticker.bid
    assert len(bars) == 3
    assert all(isinstance(b.close, Decimal) for b in bars)


def test_bearer_token_is_sent_and_never_shown(sim: BrokerSimulator) -> None:
    key = sim.create_key()
    token = key.secret.expose().decode()
    signer = OANDA.signer(key)
    request = OANDA.prepare(
        OANDA.endpoints[Op.BALANCES], [], key_id=key.key_id, signer=signer, timestamp_ms=0
    )
    assert dict(request.headers)["Authorization"] == "Bearer " + token
    assert request.target == f"/v3/accounts/{key.key_id}/summary"
    for shown in (repr(request), repr(signer)):
        assert token not in shown
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_practice_is_the_default_and_live_only_when_asked() -> None:
    practice = ApiKey("oanda", "101-004-1435156-001", "token-text", scopes=["read"])
    live = ApiKey("oanda", "001-001-1435156-001", "token-text", environment="live")
    assert practice.environment is Environment.PAPER
    with Client(practice, journal=":memory:", unsafe_disable_pinning=True) as client:
        assert client.core.base_url == "https://api-fxpractice.oanda.com"
    with Client(live, journal=":memory:", unsafe_disable_pinning=True) as client:
        assert client.core.base_url == "https://api-fxtrade.oanda.com"


def test_capabilities_and_limits() -> None:
    caps = capabilities_of(OANDA)
    assert caps.supports(TimeInForce.DAY)
    assert not caps.supports(TimeInForce.OPG)
    assert caps.supports("1h")
    (limit,) = RATE_LIMITS
    assert (limit.kind, limit.seconds, limit.limit) == (REST, 1.0, 120)


def test_the_cursor_follows_last_transaction_id(sim: BrokerSimulator, server: HttpsServer) -> None:
    with _client(sim, server) as client:
        client.place_order(
            MarketOrder(symbol="USD_JPY", side="BUY", quantity="10"), idempotency_key="c"
        )
        assert OANDA.cursor(client.core.account) >= 2


@pytest.mark.parametrize("page", [1000, 2], ids=["one-page", "paged"])
def test_a_lost_201_is_found_in_the_transactions_when_the_client_id_lookup_is_blind(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path, page: int
) -> None:
    """If ``@{clientID}`` answers for PENDING orders only (the research note's reading),
    a filled market order whose 201 was lost is found by its fill transaction, scanned
    gap-free (page after page) from the cursor noted when the create was sent: here a
    process that knew no cursor for the account, so from its first transaction."""
    sim.dialect.lookup_pending_only = True  # type: ignore[union-attr]
    sim.dialect.transactions_page = page  # type: ignore[union-attr]
    journal = tmp_path / "j.sqlite3"
    key = sim.create_key()
    with (
        _client(sim, server, key=key, journal=journal, venue=_WithoutAccountRead()) as fresh,
        _client(sim, server, key=key, journal=journal) as other,
    ):
        fresh.instruments()  # its first reads: its cursor is 0, the account has no history
        fresh.recover()
        for n in range(3):  # another process's history: 6 transactions it never saw
            other.place_order(
                MarketOrder(symbol="EUR_USD", side="BUY", quantity="10"), idempotency_key=f"h{n}"
            )
        _post_fault("drop_response", sim, key)
        order = fresh.place_order(
            MarketOrder(symbol="EUR_USD", side="SELL", quantity="30"), idempotency_key="scan"
        )
        account = fresh.core.account
    assert order.status is OrderStatus.FILLED
    assert order.side is Side.SELL
    assert order.quote_quantity > 0
    assert _posts(sim) == 4  # never resent
    scans = sum(n for p, n in sim.dialect.stats.by_path.items() if "/transactions/sinceid" in p)
    assert scans == (4 if page == 2 else 1)  # pages of 2: (1,2) (3,4) (5,6) (7=create, 8=fill)
    _assert_oracle(sim, journal, account, ["h0", "h1", "h2", "scan"])


def test_a_lost_201_of_a_cancelled_fok_is_known_from_its_create_transaction(
    sim: BrokerSimulator, server: HttpsServer, tmp_path: Path
) -> None:
    """Created and cancelled at once (too little margin), the answer lost: the scan finds
    the create, the order read by its id is CANCELLED with nothing filled: known."""
    sim.dialect.lookup_pending_only = True  # type: ignore[union-attr]
    journal = tmp_path / "j.sqlite3"
    key = sim.create_key()
    _post_fault("drop_response", sim, key)
    with _client(sim, server, key=key, journal=journal) as client:
        order = client.place_order(
            MarketOrder(symbol="EUR_USD", side="BUY", quantity="90000000"), idempotency_key="fok"
        )
        account = client.core.account
    assert order.status is OrderStatus.CANCELED
    assert order.filled_quantity == 0
    assert _posts(sim) == 1
    j = Journal(journal)
    try:
        intent = j.get(derive_client_order_id("oanda", account, "fok"))
        assert intent is not None
        assert intent.state is IntentState.CANCELED
    finally:
        j.close()


def _assert_oracle(sim: BrokerSimulator, journal: Path, account: str, keys: list[str]) -> None:
    j = Journal(journal)
    try:
        verdict = judge(sim, j, account, keys, venue="oanda")  # type: ignore[arg-type]
    finally:
        j.close()
    assert verdict.ok, verdict
    assert verdict.orders == len(keys)


def test_a_scan_page_of_the_wrong_shape_is_ambiguous_never_a_crash() -> None:
    """Whatever a transactions page holds, the scan answers with an outcome."""
    from securetrade.transport.base import HttpResponse

    endpoint = OANDA.endpoints[Op.GET_ORDER]
    asked = [("client_order_id", "st" + "1" * 30), ("~since", "0")]
    for body in (
        b'{"transactions": [{"id": "1", "clientExtensions": "x", "type": "ORDER_FILL"}]}',
        b'{"transactions": [{"id": "x"}]}',
        b'{"transactions": "none"}',
        b"[]",
    ):
        outcome = OANDA.interpret_asked(
            endpoint, asked, HttpResponse(200, {}, body), key_id="101-004-1-001"
        )
        assert outcome.verdict is not Verdict.OK or outcome.follow_up is not None
        if outcome.verdict is not Verdict.OK:
            assert outcome.error is not None


def test_a_transaction_page_that_does_not_say_how_far_it_reaches_proves_nothing(
    sim: BrokerSimulator, server: HttpsServer
) -> None:
    """``@{clientID}`` answers for PENDING orders only, so a filled order is looked for in
    the account's transactions, two a page; each page comes without ``lastTransactionID``
    (a replica or a proxy dropped it), so nobody can tell whether more follow. The first
    page, without ours, was read as "no such order" (a caller would send it again); now
    it is no answer, and once the pages are whole again the order is found, filled."""
    sim.dialect.lookup_pending_only = True  # type: ignore[union-attr]
    sim.dialect.transactions_page = 2  # type: ignore[union-attr]
    key = sim.create_key()
    with _client(sim, server, key=key) as trader:
        for n in range(2):  # history first: the first page holds none of ours
            trader.place_order(
                MarketOrder(symbol="EUR_USD", side="BUY", quantity="10"), idempotency_key=f"h{n}"
            )
        placed = trader.place_order(
            MarketOrder(symbol="EUR_USD", side="SELL", quantity="20"), idempotency_key="ours"
        )
    since = f"/v3/accounts/{key.key_id}/transactions/sinceid"
    sim.faults.inject("strip_after", method="GET", path=since, field="lastTransactionID", times=99)
    # Another process (an adapter of its own: it knows no cursor) asks by client id.
    with _client(sim, server, key=key, venue=Oanda()) as reader:
        with pytest.raises(SecureTradeError) as raised:
            reader.get_order("EUR_USD", client_order_id=placed.client_order_id)
        assert not isinstance(raised.value, OrderNotFound), raised.value
        assert ("strip_after", "GET", since) in sim.faults.fired
        sim.faults.clear()
        found = reader.get_order("EUR_USD", client_order_id=placed.client_order_id)
    assert (found.order_id, found.status) == (placed.order_id, OrderStatus.FILLED)


@pytest.mark.parametrize(
    ("since", "body"),
    [
        ("0", b'{"transactions": []}'),  # no lastTransactionID: how far it reaches is unknown
        ("0", b'{"transactions": [{"id": "1", "type": "MARKET_ORDER"}]}'),
        ("0", b'{"transactions": [], "lastTransactionID": "x"}'),
        ("5", b'{"transactions": [], "lastTransactionID": "3"}'),  # behind our cursor
        ("5", b'{"transactions": [], "lastTransactionID": "7"}'),  # empty, yet more exist
        ("0", b'{"transactions": [{"id": "2", "type": "MARKET_ORDER"}], "lastTransactionID": "2"}'),
        ("2", b'{"transactions": [{"id": "3", "type": "MARKET_ORDER"}], "lastTransactionID": "2"}'),
    ],
    ids=["no-last", "list-no-last", "bad-last", "behind", "empty-more", "gap", "beyond-last"],
)
def test_a_scan_page_that_cannot_be_complete_is_no_answer(since: str, body: bytes) -> None:
    """Only a page that provably reaches the account's last transaction, gap-free from
    where the scan started, says the client id is nowhere: anything else is ambiguous."""
    from securetrade.transport.base import HttpResponse

    asked = [("client_order_id", "st" + "1" * 30), ("~since", since)]
    outcome = Oanda().interpret_asked(
        OANDA.endpoints[Op.GET_ORDER], asked, HttpResponse(200, {}, body), key_id="101-004-1-001"
    )
    assert outcome.verdict is Verdict.AMBIGUOUS
    assert not isinstance(outcome.error, OrderNotFound)


@pytest.mark.parametrize(
    "body",
    [
        b'{"transactions": [], "lastTransactionID": "5"}',
        b'{"transactions": [{"id": "6", "type": "MARKET_ORDER"}, {"id": "7", "type": "ORDER_FILL"}]'
        b', "lastTransactionID": "7"}',
    ],
)
def test_a_complete_scan_without_the_client_id_still_proves_it_absent(body: bytes) -> None:
    """A page that reaches the account's last transaction from where the scan started,
    without the client id, is still "no such order" (else no lost create could ever be
    proven absent)."""
    from securetrade.transport.base import HttpResponse

    asked = [("client_order_id", "st" + "1" * 30), ("~since", "5")]
    outcome = Oanda().interpret_asked(
        OANDA.endpoints[Op.GET_ORDER], asked, HttpResponse(200, {}, body), key_id="101-004-1-001"
    )
    assert outcome.verdict is Verdict.REJECTED
    assert isinstance(outcome.error, OrderNotFound)
