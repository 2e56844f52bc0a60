"""Resolution under attack: a lookup whose answer is not the venue's never proves an order
absent (issue #16: at most one order per idempotency key, whatever fails).

After an ambiguous send the order path asks the venue about the client order id; only the
venue's own readable "no such order" (after the attempt's deadline) lets it record
NOT_PLACED and send again. Each test drops the create's answer over real TLS to the
simulator, then spoils the lookups, and reads the verdict at the venue (its book, the
creates it received) and in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oracle import judge
from securetrade import AsyncClient, Client, MarketOrder
from securetrade.core import IntentState, Journal, Settings
from securetrade.errors import OrderNotFound, UnresolvedOrder
from securetrade.keys import ApiKey
from securetrade.models import OrderRequest
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.brokers import BrokerSimulator
from securetrade.sim.certs import make_certificates
from securetrade.transport import HttpResponse
from securetrade.venues import get_venue
from securetrade.venues.base import Op, Verdict
from securetrade.venues.ccxt.venue import COST

# The deadline (recv window + settle) passes long before resolution gives up: a lookup
# read as "not found" would conclude NOT_PLACED and send the order again.
FAST = Settings(settle_ms=100, resolve_timeout=2.5)
KRAKEN_FAST = Settings(settle_ms=100, resolve_timeout=4.0)  # Kraken's least window is 2 s
FUNDS = {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)}
VENUES = ["binance", "kraken", "alpaca", "oanda", "ccxt", "ccxt-kraken"]
KEY = "lookup"


class _Venue:
    """A simulator of one venue serving over TLS, a key, a market order, the path of its
    create and the venue name client order ids are derived with."""

    def __init__(self, venue: str, stack: contextlib.ExitStack) -> None:
        self.venue = venue
        self.sim: Any
        self.named = venue
        self.kraken = venue in ("kraken", "ccxt-kraken")
        if venue in ("alpaca", "oanda"):
            self.sim = stack.enter_context(BrokerSimulator(venue))
            self.key = self.sim.create_key()
            account = self.key.key_id
            self.create = "/v2/orders" if venue == "alpaca" else f"/v3/accounts/{account}/orders"
            symbol, quantity = ("AAPL", "1") if venue == "alpaca" else ("EUR_USD", "1000")
            self.order: OrderRequest = MarketOrder(symbol=symbol, side="BUY", quantity=quantity)
            return
        self.sim = stack.enter_context(Simulator(kraken_limits=None))
        if self.kraken:
            self.key = self.sim.create_key(venue="kraken", balances=FUNDS)
            self.order = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
            self.create = "/0/private/AddOrder"
            if venue == "ccxt-kraken":
                self.named = "ccxt:kraken"
                self.key = self._relabelled(self.key)
                self.order = MarketOrder(symbol="ETH/USDT", side="BUY", quantity="0.01")
            return
        made = self.sim.create_key()
        self.create = "/api/v3/order"
        if venue == "binance":
            self.key = made
            self.order = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")
            return
        self.named = "ccxt:binance"
        self.key = self._relabelled(made)
        self.order = MarketOrder(symbol="BTC/USDT", side="BUY", quantity="0.001")

    def _relabelled(self, made: ApiKey) -> ApiKey:
        """The same key, labelled for the ccxt venue."""
        return ApiKey(
            self.named,
            made.key_id,
            made.secret,
            scopes=made.scopes,
            kind=made.kind,
            environment=made.environment,
        )

    def lookups(self, cid: str) -> list[tuple[str, str]]:
        """Every request by which the venue is asked about ``cid``."""
        if self.kraken:  # among open orders, then closed ones
            return [("POST", "/0/private/OpenOrders"), ("POST", "/0/private/ClosedOrders")]
        if self.venue == "alpaca":
            return [("GET", "/v2/orders:by_client_order_id")]
        if self.venue == "oanda":  # by client id, then the account's transactions
            account = self.key.key_id
            return [
                ("GET", f"/v3/accounts/{account}/orders/@{cid}"),
                ("GET", f"/v3/accounts/{account}/transactions/sinceid"),
            ]
        return [("GET", "/api/v3/order")]

    def creates(self) -> int:
        """How many creates the venue received."""
        dialect = self.sim.kraken if self.kraken else self.sim.dialect
        return int(dialect.stats.by_path.get(f"POST {self.create}", 0))

    def client(self, server: HttpsServer, journal: Journal) -> Client:
        extra: dict[str, Any] = {}
        if self.venue == "ccxt-kraken":  # room in the limiter: ccxt paces Kraken's reads
            extra["limiter"] = RateLimiter([RateLimit(COST, 1.0, 1_000_000)])
        return Client(
            self.key,
            journal=journal,
            settings=KRAKEN_FAST if self.kraken else FAST,
            recv_window_ms=2000 if self.kraken else 300,  # Kraken's least is 2 s
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
            **extra,
        )


def _one_order_adopted(at: _Venue, client: Client, journal: Journal, cid: str) -> None:
    """Once the venue can be read again, the same key finds and adopts its one order."""
    placed = client.place_order(at.order, idempotency_key=KEY)
    assert placed.client_order_id == cid
    assert [o.status for o in at.sim.market.orders_with_client_id(cid)] == ["FILLED"]
    assert at.creates() == 1
    intent = journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.FILLED
    if not at.kraken:  # (the oracle reads Binance's and the brokers' accounts)
        verdict = judge(at.sim, journal, client.core.account, [KEY], venue=at.named)
        assert verdict.ok, verdict


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("blocked_after", 404),  # an HTML page with the status
        ("blocked_after", 403),
        ("blocked_after", 410),
        ("html_after", 200),
        ("empty_after", 404),  # the status, no body
        ("garbled_after", 200),  # the venue's JSON cut short
    ],
)
@pytest.mark.parametrize("venue", VENUES)
def test_an_unreadable_answer_to_the_lookups_never_proves_the_order_absent(
    tmp_path: Path, venue: str, fault: str, status: int
) -> None:
    """The create executes and its answer is lost; every lookup is then answered by a
    CDN's or firewall's HTML page with ``status``, a bare status, or JSON cut short. A
    404 page was read at Alpaca (and OANDA) as the venue's "no such order", a 200 page by
    ccxt's Kraken as no orders: after the deadline the intent went NOT_PLACED and the
    order was sent again. Now such an answer is none: the intent stays unresolved
    (UNKNOWN), the venue received one create, and once the faults stop the same key adopts
    it."""
    with contextlib.ExitStack() as stack:
        at = _Venue(venue, stack)
        server = at.sim.serve()
        journal = Journal(tmp_path / "journal.sqlite3")
        stack.callback(journal.close)
        with at.client(server, journal) as client:
            client.recover()  # (reads the open orders: before the lookups are spoiled)
            cid = client.core.venue.client_order_id(client.core.account, KEY)
            at.sim.faults.inject("drop_response", method="POST", path=at.create)
            for method, path in at.lookups(cid):
                at.sim.faults.inject(fault, method=method, path=path, status=status, times=100_000)
            with pytest.raises(UnresolvedOrder):
                client.place_order(at.order, idempotency_key=KEY)
            assert ("drop_response", "POST", at.create) in at.sim.faults.fired
            assert any(kind.endswith("_after") for kind, _, _ in at.sim.faults.fired)
            assert at.creates() == 1  # never sent again
            assert len(at.sim.market.orders_with_client_id(cid)) == 1
            intent = journal.get(cid)
            assert intent is not None
            assert intent.state is IntentState.UNKNOWN
            at.sim.faults.clear()
            _one_order_adopted(at, client, journal, cid)


@pytest.mark.parametrize("venue", VENUES)
def test_a_lookup_refused_on_this_side_leaves_the_order_unresolved(
    tmp_path: Path, venue: str
) -> None:
    """The create executes and its answer is lost; the lookup's connection then meets a
    server with a chain of somebody else's (no pinned key, a CA not trusted here). That
    refusal ("no request byte was sent") reached the caller as if the order had not been
    sent, the row left SENDING with an order at the venue. Now the caller gets
    UnresolvedOrder, the row is UNKNOWN, and once the venue's own chain is back the same
    key adopts its one order."""
    with contextlib.ExitStack() as stack:
        at = _Venue(venue, stack)
        server = at.sim.serve()
        journal = Journal(tmp_path / "journal.sqlite3")
        stack.callback(journal.close)
        other = make_certificates()
        with at.client(server, journal) as client:
            client.recover()  # (reads the open orders: before the lookups are spoiled)
            cid = client.core.venue.client_order_id(client.core.account, KEY)
            at.sim.faults.inject("drop_response", method="POST", path=at.create)

            def intercept(name: str) -> None:
                if name == "after_response":  # the create's answer was lost: now ask
                    server.impersonate(other)
                    server.drop_connections()

            client.core.checkpoint = intercept  # type: ignore[method-assign]
            with pytest.raises(UnresolvedOrder) as raised:
                client.place_order(at.order, idempotency_key=KEY)
            assert "nothing was sent" not in str(raised.value)
            assert at.creates() == 1
            assert len(at.sim.market.orders_with_client_id(cid)) == 1
            intent = journal.get(cid)
            assert intent is not None
            assert intent.state is IntentState.UNKNOWN
            client.core.checkpoint = lambda name: None  # type: ignore[method-assign]
            server.impersonate(server.certificates)
            server.drop_connections()
            _one_order_adopted(at, client, journal, cid)


_PAGE = b"<html><body><h1>Not Found</h1></body></html>"


@pytest.mark.parametrize("venue", ["binance", "kraken", "alpaca", "oanda"])
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, _PAGE),
        (404, b""),
        (404, b'{"code": -20'),  # JSON cut short
        (404, b"[]"),
        (404, b'{"message": "Not Found"}'),  # a gateway's JSON, no venue error
        (410, _PAGE),
        (400, b"garbage"),
        (200, _PAGE),
        (200, b""),
        (200, b'{"orderId": 1'),
    ],
)
def test_only_the_venues_own_answer_says_an_order_does_not_exist(
    venue: str, status: int, body: bytes
) -> None:
    """An answer to a lookup that is not the venue's readable error is never
    :class:`OrderNotFound`: at worst a refusal or ambiguous, which resolution asks again."""
    adapter = get_venue(venue)
    lookup = adapter.endpoints[Op.GET_ORDER]
    outcome = adapter.interpret(lookup, HttpResponse(status, {}, body))
    assert outcome.verdict is not Verdict.OK
    assert not isinstance(outcome.error, OrderNotFound), outcome.error


@pytest.mark.parametrize(
    ("venue", "body"),
    [
        ("binance", b'{"code": -2013, "msg": "Order does not exist."}'),
        ("alpaca", b'{"code": 40410000, "message": "order not found"}'),
        ("oanda", b'{"errorCode": "ORDER_DOESNT_EXIST", "errorMessage": "Order not found"}'),
    ],
)
def test_the_venues_own_not_found_still_proves_absence(venue: str, body: bytes) -> None:
    """The venue's readable "no such order" is still read as such (else no lookup could
    ever prove an order absent, and every lost create would stay unresolved)."""
    adapter = get_venue(venue)
    outcome = adapter.interpret(adapter.endpoints[Op.GET_ORDER], HttpResponse(404, {}, body))
    assert outcome.verdict is Verdict.REJECTED
    assert isinstance(outcome.error, OrderNotFound)


@pytest.mark.parametrize("body", [_PAGE, b"", b'{"code": -20'])
def test_ccxt_not_found_from_a_page_that_is_not_the_venues_is_no_answer(body: bytes) -> None:
    """ccxt may raise its OrderNotFound from a body it could not read as the venue's
    answer (a match on the page's text, or the status alone): that is no "not found".
    From the venue's JSON it still is."""
    import ccxt

    from securetrade.venues.ccxt.errors import outcome_of

    guessed = outcome_of(ccxt.OrderNotFound("Order does not exist."), 404, {}, body, "ccxt:binance")
    assert not isinstance(guessed.error, OrderNotFound)
    said = b'{"code": -2013, "msg": "Order does not exist."}'
    read = outcome_of(ccxt.OrderNotFound("Order does not exist."), 400, {}, said, "ccxt:binance")
    assert read.verdict is Verdict.REJECTED
    assert isinstance(read.error, OrderNotFound)


def test_a_lookup_refused_on_this_side_leaves_the_order_unresolved_async(
    tmp_path: Path,
) -> None:
    """The same through AsyncClient's driver: the lookup's refusal goes into the flow,
    which leaves the intent UNKNOWN and raises UnresolvedOrder."""
    with contextlib.ExitStack() as stack:
        at = _Venue("binance", stack)
        server = at.sim.serve()
        journal = Journal(tmp_path / "journal.sqlite3")
        stack.callback(journal.close)
        other = make_certificates()

        def intercept(name: str) -> None:
            if name == "after_response":  # the create's answer was lost: now ask
                server.impersonate(other)
                server.drop_connections()

        async def place() -> str:
            client = AsyncClient(
                at.key,
                journal=journal,
                settings=FAST,
                recv_window_ms=300,
                base_url=server.base_url,
                pins=server.pins,
                cadata=server.ca_pem,
            )
            try:
                await client.recover()
                cid = client.core.venue.client_order_id(client.core.account, KEY)
                at.sim.faults.inject("drop_response", method="POST", path=at.create)
                client.core.checkpoint = intercept  # type: ignore[method-assign]
                with pytest.raises(UnresolvedOrder):
                    await client.place_order(at.order, idempotency_key=KEY)
            finally:
                await client.aclose()
            return cid

        cid = asyncio.run(place())
        assert at.creates() == 1
        assert len(at.sim.market.orders_with_client_id(cid)) == 1
        intent = journal.get(cid)
        assert intent is not None
        assert intent.state is IntentState.UNKNOWN


@pytest.mark.parametrize("body", [_PAGE, b"", b'{"code": 422'])
def test_alpaca_a_422_page_to_a_cancel_is_not_a_closed_order(body: bytes) -> None:
    """Alpaca answers a cancel of an order no longer open with a JSON 422; a 422 page in
    front of it (or half an answer) says nothing of the order, so it is not
    :class:`OrderNotFound`, which an amend reads as "gone meanwhile"."""
    alpaca = get_venue("alpaca")
    cancel = alpaca.endpoints[Op.CANCEL_ORDER]
    outcome = alpaca.interpret(cancel, HttpResponse(422, {}, body))
    assert not isinstance(outcome.error, OrderNotFound)
    said = b'{"code": 42210000, "message": "order is not cancelable"}'
    assert isinstance(alpaca.interpret(cancel, HttpResponse(422, {}, said)).error, OrderNotFound)


def test_a_lookup_held_back_by_a_long_venue_pause_leaves_the_order_unresolved(
    tmp_path: Path,
) -> None:
    """A proxy forwards the create, which executes, then answers 429 with a minute's
    Retry-After (read as ambiguous, ``ambiguous_rate_limits``). The lookup that must
    resolve it is held back by that pause, longer than ``max_rate_wait``: the caller was
    given RateLimited, a retryable error ("certainly not executed"), with the row SENDING
    and the order at the venue. Now it gets UnresolvedOrder and the row is UNKNOWN."""
    with contextlib.ExitStack() as stack:
        at = _Venue("binance", stack)
        server = at.sim.serve()
        journal = Journal(tmp_path / "journal.sqlite3")
        stack.callback(journal.close)
        settings = Settings(
            settle_ms=100, resolve_timeout=2.5, ambiguous_rate_limits=True, max_rate_wait=1.0
        )
        with Client(
            at.key,
            journal=journal,
            settings=settings,
            recv_window_ms=300,
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
        ) as client:
            client.recover()
            cid = client.core.venue.client_order_id(client.core.account, KEY)
            at.sim.faults.inject("rate_limit_after", method="POST", path=at.create, seconds=60)
            with pytest.raises(UnresolvedOrder):
                client.place_order(at.order, idempotency_key=KEY)
        assert at.sim.faults.fired == [("rate_limit_after", "POST", at.create)]
        assert at.creates() == 1
        assert len(at.sim.market.orders_with_client_id(cid)) == 1
        intent = journal.get(cid)
        assert intent is not None
        assert intent.state is IntentState.UNKNOWN
