"""The order path under attack: interleavings between the admission and the bytes leaving.

Each test forces one interleaving over real TLS to the simulator and reads the verdict
from the venue's side (the POSTs it received, the orders it holds) and the journal row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oracle import judge
from securetrade import AsyncClient, Client, MarketOrder, Policy, PolicyViolation
from securetrade.core import IntentState, Journal, Settings
from securetrade.core.journal import derive_client_order_id
from securetrade.errors import (
    InvalidRequest,
    PinMismatch,
    UntrustedServer,
)
from securetrade.keys import ApiKey
from securetrade.models import OrderRequest
from securetrade.policy import KillSwitch
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.brokers import BrokerSimulator
from securetrade.sim.certs import make_certificates
from securetrade.transport import (
    HttpRequest,
    HttpResponse,
    HttpTransport,
    PinSet,
    pinned_ssl_context,
)
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.tls import verified_ssl_context
from securetrade.venues import get_venue
from securetrade.venues.base import Op, Verdict
from securetrade.venues.ccxt.transport import CcxtAsyncTransport, CcxtSyncTransport

MARKET = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def _cid(account: str, key: str) -> str:
    return get_venue("binance").client_order_id(account, key)


def _shared_switch(tmp_path: Path) -> tuple[Policy, KillSwitch]:
    """A policy whose kill switch lives in a SQLite store, and a second switch over the
    same store: another process's handle on it."""
    store = str(tmp_path / "switch.sqlite3")
    return Policy(kill_switch=KillSwitch.from_url(store)), KillSwitch.from_url(store)


def test_kill_switch_engaged_before_a_retry_stops_the_resend(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """Attempt 1 is refused with 429 (not executed, so it is resent). Between that answer
    and the resend, another process engages the shared kill switch: the resend must not
    leave. One POST, no order, the row NOT_PLACED."""
    policy, elsewhere = _shared_switch(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(
        sim.create_key(),
        journal=journal,
        policy=policy,
        settings=Settings(max_rate_wait=5.0),
        **tls_options(server),
    )
    client.recover()
    sim.faults.inject("rate_limit", method="POST", path="/api/v3/order", seconds=0.2)

    def engage(name: str) -> None:
        if name == "after_response":
            elsewhere.engage("risk desk: stop everything")

    client.core.checkpoint = engage  # type: ignore[method-assign]
    try:
        with pytest.raises(PolicyViolation) as refused:
            client.place_order(MARKET, idempotency_key="retry-ks")
    finally:
        client.close()
    assert refused.value.rule == "kill_switch"
    assert _posts(sim) == 1
    cid = _cid(client.core.account, "retry-ks")
    assert sim.market.orders_with_client_id(cid) == []
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 2)
    journal.close()


def test_kill_switch_engaged_before_a_retry_stops_the_resend_on_the_async_client(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """The same interleaving through the asyncio driver (its journal writes and the
    kill switch read go through worker threads)."""
    policy, elsewhere = _shared_switch(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    sim.faults.inject("rate_limit", method="POST", path="/api/v3/order", seconds=0.2)

    def engage(name: str) -> None:
        if name == "after_response":
            elsewhere.engage("risk desk: stop everything")

    async def run() -> str:
        async with AsyncClient(
            sim.create_key(),
            journal=journal,
            policy=policy,
            settings=Settings(max_rate_wait=5.0),
            **tls_options(server),
        ) as client:
            await client.recover()
            client.core.checkpoint = engage  # type: ignore[method-assign]
            with pytest.raises(PolicyViolation):
                await client.place_order(MARKET, idempotency_key="retry-ks-async")
            return _cid(client.core.account, "retry-ks-async")

    cid = asyncio.run(run())
    assert _posts(sim) == 1
    assert sim.market.orders_with_client_id(cid) == []
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 2)
    journal.close()


def test_kill_switch_engaged_while_the_limiter_holds_the_order_stops_the_send(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """The limiter makes an admitted order wait (its claim is written PENDING first);
    the switch is engaged during that wait. When the limiter lets it go, it must not be
    sent: the attempt is recorded, then found stopped, NOT_PLACED."""
    policy, elsewhere = _shared_switch(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(sim.create_key(), journal=journal, policy=policy, **tls_options(server))
    client.recover()
    client.place_order(MARKET, idempotency_key="warm")  # instruments and clock read
    before = _posts(sim)

    def engage(name: str) -> None:
        if name == "after_claim_commit":
            elsewhere.engage("risk desk: stop everything")

    client.core.checkpoint = engage  # type: ignore[method-assign]
    client.core.limiter.observe(429, {"retry-after": "1"})  # the next request waits 1 s
    try:
        with pytest.raises(PolicyViolation):
            client.place_order(MARKET, idempotency_key="held-ks")
    finally:
        client.close()
    assert _posts(sim) == before
    cid = _cid(client.core.account, "held-ks")
    intent = journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.NOT_PLACED
    journal.close()


@pytest.mark.parametrize("status", [301, 302, 303, 304, 307, 308])
def test_a_redirect_after_the_order_executed_is_never_a_rejection(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path, status: int
) -> None:
    """The venue executes the order, then something in front of it answers with a 3xx.
    A 304 (its body dropped, as HTTP says) used to be read as a plain refusal: the
    FILLED order was journaled REJECTED and the caller told VenueRejected. No redirect
    is followed and none is an answer: the venue is asked, and the order is adopted."""
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(sim.create_key(), journal=journal, **tls_options(server))
    client.recover()
    sim.faults.inject("status_after", method="POST", path="/api/v3/order", status=status)
    try:
        placed = client.place_order(MARKET, idempotency_key=f"redirect-{status}")
    finally:
        client.close()
    assert _posts(sim) == 1
    held = sim.market.orders_with_client_id(placed.client_order_id)
    assert [o.order_id for o in held] == [int(placed.order_id)]
    intent = journal.get(placed.client_order_id)
    assert intent is not None
    assert intent.state is IntentState.FILLED
    journal.close()


def test_a_redirect_before_the_order_executed_is_resent_once_proven_absent(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """The 3xx came before the venue saw the order: asked, the venue does not hold it
    after its deadline, so it is sent again (same client order id) and placed once."""
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(sim.create_key(), journal=journal, **tls_options(server))
    client.recover()
    sim.faults.inject("status", method="POST", path="/api/v3/order", status=304)
    try:
        placed = client.place_order(MARKET, idempotency_key="redirect-early")
    finally:
        client.close()
    assert _posts(sim) == 2
    held = sim.market.orders_with_client_id(placed.client_order_id)
    assert [o.order_id for o in held] == [int(placed.order_id)]
    journal.close()


@pytest.mark.parametrize(
    "reference",
    [
        {"client_order_id": "abc\r\nX-Injected: 1"},
        {"client_order_id": "a" * 100_000},
        {"client_order_id": "tab\there"},
        {"client_order_id": ""},
        {"order_id": "1\r\nX: y"},
        {"order_id": 12345},
    ],
    ids=["cid-crlf", "cid-huge", "cid-tab", "cid-empty", "oid-crlf", "oid-int"],
)
@pytest.mark.parametrize("call", ["cancel_order", "get_order"])
def test_an_order_reference_that_is_no_reference_is_refused_before_sending(
    sim: Simulator,
    server: HttpsServer,
    tls_options: Any,
    call: str,
    reference: dict[str, Any],
) -> None:
    """A client order id with CR/LF, a tab or 100,000 characters went to the venue
    (url-encoded) and came back as "unknown order" or HTTP 414; now InvalidRequest, and
    no request about it reaches the venue."""
    client = Client(sim.create_key(), journal=":memory:", **tls_options(server))
    try:
        client.ticker("BTCUSDT")  # the client's own reads first: the venue is reachable
        before = dict(sim.dialect.stats.by_path)
        with pytest.raises(InvalidRequest):
            getattr(client, call)("BTCUSDT", **reference)
        after = dict(sim.dialect.stats.by_path)
    finally:
        client.close()
    assert after == before


# --- a refusal on this side after the attempt went on record (issue #16) --------------------


class _Refusal:
    """Turns a venue that the client reached into one its next connection is refused
    by, on this side, once the order's attempt is on record (checkpoint
    ``after_attempt_commit``): a server presenting a chain without a pinned key (``pin``),
    one from a CA the client does not trust (``ca``), or the client's own context weakened
    after the transport took it (``context``, a key log file set). The server drops its
    connections at that moment, so the attempt needs a new one, with a new handshake."""

    def __init__(self, server: HttpsServer, how: str, tmp_path: Path) -> None:
        self.server, self.how, self.tmp_path = server, how, tmp_path
        self.other = make_certificates()
        self.context = pinned_ssl_context(
            PinSet(server.pins), cadata=server.ca_pem + self.other.ca_pem
        )
        self.expected: type[Exception] = {
            "pin": PinMismatch,
            "ca": UntrustedServer,
            "context": InvalidRequest,
        }[how]
        self.received: int | None = None  # the venue's byte count when the attempt was recorded

    def options(self, *, asynchronous: bool, ccxt: bool = False) -> dict[str, Any]:
        base_url = self.server.base_url
        if self.how == "ca":  # trusts the venue's CA only
            return {"base_url": base_url, "pins": self.server.pins, "cadata": self.server.ca_pem}
        if ccxt:  # the venue opens ccxt's own stack: both CAs trusted, the venue's pins
            assert self.how == "pin"
            cadata = self.server.ca_pem + self.other.ca_pem
            return {"base_url": base_url, "pins": self.server.pins, "cadata": cadata}
        make = AsyncHttpTransport if asynchronous else HttpTransport
        return {"base_url": base_url, "transport": make(base_url, self.context)}

    def __call__(self, name: str) -> None:
        if name != "after_attempt_commit" or self.received is not None:
            return
        self.received = self.server.bytes_received
        if self.how == "context":
            self.context.keylog_filename = str(self.tmp_path / "keys.log")
        else:
            self.server.impersonate(self.other)
        self.server.drop_connections()


def _nothing_arrived(sim: Simulator, refusal: _Refusal) -> None:
    """The venue's side: its arrival log has no order, and not one byte came after the
    attempt was recorded."""
    assert [a for a in sim.dialect.stats.arrivals if a[1] == "POST"] == []
    assert refusal.received is not None
    assert refusal.server.bytes_received == refusal.received


@pytest.mark.parametrize("how", ["pin", "ca", "context"])
def test_a_refusal_on_this_side_after_the_attempt_is_recorded_is_not_placed(
    sim: Simulator, server: HttpsServer, tmp_path: Path, how: str
) -> None:
    """The claim and attempt 1 are durable (SENDING), then the transport refuses the
    connection here: a pin mismatch, a certificate from another CA, or a context that
    was weakened. No byte reached the venue, so the row must end NOT_PLACED (it was left
    SENDING, for recovery to ask the venue about an order it never saw), and the caller
    gets the typed error."""
    refusal = _Refusal(server, how, tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(sim.create_key(), journal=journal, **refusal.options(asynchronous=False))
    client.recover()
    client.core.checkpoint = refusal  # type: ignore[method-assign]
    try:
        with pytest.raises(refusal.expected):
            client.place_order(MARKET, idempotency_key=f"refused-{how}")
    finally:
        client.close()
    _nothing_arrived(sim, refusal)
    cid = _cid(client.core.account, f"refused-{how}")
    assert sim.market.orders_with_client_id(cid) == []
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 1)
    assert journal.unresolved(client.core.account) == []
    journal.close()


@pytest.mark.parametrize("how", ["pin", "ca", "context"])
def test_a_refusal_on_this_side_after_the_attempt_is_recorded_on_the_async_client(
    sim: Simulator, server: HttpsServer, tmp_path: Path, how: str
) -> None:
    """The same on the AsyncClient (its journal writes grouped): NOT_PLACED, nothing
    arrived."""
    refusal = _Refusal(server, how, tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")

    async def main() -> str:
        client = AsyncClient(
            sim.create_key(), journal=journal, **refusal.options(asynchronous=True)
        )
        try:
            await client.recover()
            client.core.checkpoint = refusal  # type: ignore[method-assign]
            with pytest.raises(refusal.expected):
                await client.place_order(MARKET, idempotency_key=f"refused-{how}")
        finally:
            await client.aclose()
        return _cid(client.core.account, f"refused-{how}")

    cid = asyncio.run(main())
    _nothing_arrived(sim, refusal)
    assert sim.market.orders_with_client_id(cid) == []
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 1)
    journal.close()


def test_a_refusal_raised_after_the_answer_came_stays_ambiguous(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """A refusal of ours raised once the request is out (here: reading the answer) proves
    nothing about the venue. The order was executed: the row must not be NOT_PLACED
    (the key would then place it twice); it stays unresolved, and recovery finds it."""
    journal = Journal(tmp_path / "journal.sqlite3")
    client = Client(sim.create_key(), journal=journal, **tls_options(server))
    client.recover()
    venue = client.core.venue
    interpret = venue.interpret

    def refuse_the_order(endpoint: Any, response: Any) -> Any:
        if endpoint.op is Op.PLACE_ORDER:
            raise InvalidRequest("this answer was refused on our side")
        return interpret(endpoint, response)

    venue.interpret = refuse_the_order  # type: ignore[method-assign]
    try:
        with pytest.raises(InvalidRequest):
            client.place_order(MARKET, idempotency_key="late-refusal")
        venue.interpret = interpret  # type: ignore[method-assign]
        cid = _cid(client.core.account, "late-refusal")
        intent = journal.get(cid)
        assert intent is not None
        assert intent.state is IntentState.SENDING
        assert _posts(sim) == 1
        client.recover()
    finally:
        venue.interpret = interpret  # type: ignore[method-assign]
        client.close()
    held = sim.market.orders_with_client_id(cid)
    assert len(held) == 1
    intent = journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.FILLED
    journal.close()


# --- the ccxt transports check the TLS context as the others do -------------------------------


def _pinned_to(server: HttpsServer) -> ssl.SSLContext:
    return pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)


def _weakened(server: HttpsServer, weakness: str) -> ssl.SSLContext:
    """A context a transport must not take: without verification, with its pin check
    unhooked, made outside securetrade, allowing TLS older than 1.2, logging its keys."""
    if weakness == "foreign":
        return ssl.create_default_context(cadata=server.ca_pem)
    context = _pinned_to(server)
    _weaken(context, weakness)
    return context


def _weaken(context: ssl.SSLContext, weakness: str) -> None:
    if weakness == "unverified":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif weakness == "unhooked":
        context.sslsocket_class = ssl.SSLSocket
        context.sslobject_class = ssl.SSLObject
    elif weakness == "old-tls":
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    else:
        assert weakness == "keylog"
        context.keylog_filename = os.devnull


class _Ccxt:
    """A ccxt transport behind one blocking surface: the sync one on a ccxt exchange
    object's own requests session, the async one on its own loop."""

    def __init__(self, kind: str, context: Any) -> None:
        import ccxt

        self.loop: asyncio.AbstractEventLoop | None = None
        self.session = ccxt.binance().session
        if kind == "sync":
            self.transport: Any = CcxtSyncTransport(self.session, context)
        else:
            self.transport = CcxtAsyncTransport(context)
            self.loop = asyncio.new_event_loop()

    def send(self, request: HttpRequest) -> Any:
        if self.loop is None:
            return self.transport.send(request)
        return self.loop.run_until_complete(self.transport.send(request))

    def close(self) -> None:
        if self.loop is None:
            self.transport.close()
            return
        self.loop.run_until_complete(self.transport.aclose())
        self.loop.close()


@pytest.mark.parametrize("weakness", ["unverified", "unhooked", "foreign", "old-tls", "keylog"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_weak_context_is_refused_by_the_ccxt_transports_when_built(
    sim: Simulator, server: HttpsServer, kind: str, weakness: str
) -> None:
    """Built directly, a ccxt transport took any SSL context (one without verification
    then carried a signed order to whoever answered); now refused as the native and httpx
    transports refuse it, and ccxt's session is left as it was."""
    import ccxt

    session = ccxt.binance().session
    adapter = session.get_adapter("https://venue.example")
    context = _weakened(server, weakness)
    build: Any = (
        (lambda: CcxtSyncTransport(session, context))
        if kind == "sync"
        else (lambda: CcxtAsyncTransport(context))
    )
    with pytest.raises(InvalidRequest):
        build()
    assert session.get_adapter("https://venue.example") is adapter
    assert server.handshakes == (0, 0)


@pytest.mark.parametrize("weakness", ["unverified", "unhooked", "old-tls", "keylog"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_context_weakened_after_the_ccxt_transport_was_built_sends_nothing(
    sim: Simulator, server: HttpsServer, kind: str, weakness: str
) -> None:
    """The context is checked again before each request: weakened after the transport
    took it, and the venue's connections dropped so that a new one would be made with
    it, no request leaves (the venue's arrival log has none)."""
    context = _pinned_to(server)
    transport = _Ccxt(kind, context)
    time_request = HttpRequest("GET", server.base_url + "/api/v3/time")
    try:
        assert transport.send(time_request).status == 200
        server.drop_connections()
        _weaken(context, weakness)
        before = (list(sim.dialect.stats.arrivals), server.bytes_received)
        with pytest.raises(InvalidRequest):
            transport.send(time_request)
        assert (list(sim.dialect.stats.arrivals), server.bytes_received) == before
    finally:
        transport.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_securetrade_contexts_pinned_or_verified_are_taken_by_the_ccxt_transports(
    sim: Simulator, server: HttpsServer, kind: str
) -> None:
    """Control: the contexts securetrade makes pass the check and carry requests."""
    time_request = HttpRequest("GET", server.base_url + "/api/v3/time")
    for context in (_pinned_to(server), verified_ssl_context(cadata=server.ca_pem)):
        transport = _Ccxt(kind, context)
        try:
            assert transport.send(time_request).status == 200
        finally:
            transport.close()


# --- a 4xx page after the order was sent (issue #16) ----------------------------------------

FAST = Settings(settle_ms=300, resolve_timeout=20.0)
FUNDS = {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)}


def _venue_setup(
    venue: str, stack: contextlib.ExitStack
) -> tuple[Any, ApiKey, OrderRequest, str, str]:
    """A simulator of ``venue`` serving over TLS, a key, a market order, its create's path
    and the venue name client order ids are derived with."""
    if venue in ("alpaca", "oanda"):
        broker = stack.enter_context(BrokerSimulator(venue))
        key = broker.create_key()
        path = "/v2/orders" if venue == "alpaca" else f"/v3/accounts/{key.key_id}/orders"
        symbol, quantity = ("AAPL", "1") if venue == "alpaca" else ("EUR_USD", "1000")
        return broker, key, MarketOrder(symbol=symbol, side="BUY", quantity=quantity), path, venue
    sim = stack.enter_context(Simulator())
    if venue == "kraken":
        key = sim.create_key(venue="kraken", balances=FUNDS)
        order = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
        return sim, key, order, "/0/private/AddOrder", venue
    made = sim.create_key()
    if venue == "binance":
        return sim, made, MARKET, "/api/v3/order", venue
    key = ApiKey(  # the same key, labelled for the ccxt venue
        "ccxt:binance",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )
    order = MarketOrder(symbol="BTC/USDT", side="BUY", quantity="0.001")
    return sim, key, order, "/api/v3/order", "ccxt:binance"


@pytest.mark.parametrize("status", [400, 403, 404])
@pytest.mark.parametrize("venue", ["binance", "kraken", "alpaca", "oanda", "ccxt"])
def test_a_4xx_page_after_the_order_executed_is_never_a_rejection(
    tmp_path: Path, venue: str, status: int
) -> None:
    """The venue executes the order, then a CDN or firewall in front of it answers with
    a 4xx HTML page. That page names no venue error: it was read as a refusal, and the
    FILLED order journaled REJECTED (the caller told VenueRejected, free to place it
    again). Now ambiguous: the venue is asked, and the journal ends as the venue's book
    says (the oracle, read from the simulator)."""
    with contextlib.ExitStack() as stack:
        sim, key, order, path, named = _venue_setup(venue, stack)
        server = sim.serve()
        journal = Journal(tmp_path / "journal.sqlite3")
        stack.callback(journal.close)
        sim.faults.inject("blocked_after", method="POST", path=path, status=status)
        with Client(
            key,
            journal=journal,
            settings=FAST,
            recv_window_ms=None if venue == "kraken" else 300,  # Kraken's least is 2 s
            base_url=server.base_url,
            pins=server.pins,
            cadata=server.ca_pem,
        ) as client:
            placed = client.place_order(order, idempotency_key="blocked")
            account = client.core.account
        assert sim.faults.fired == [("blocked_after", "POST", path)]
        held = sim.market.orders_with_client_id(placed.client_order_id)
        assert [o.status for o in held] == ["FILLED"]  # the venue's book: one order, filled
        intent = journal.get(placed.client_order_id)
        assert intent is not None
        assert intent.state is IntentState.FILLED  # the journal says what the venue says
        if venue != "kraken":  # (the oracle reads Binance's and the brokers' accounts)
            verdict = judge(sim, journal, account, ["blocked"], venue=named)
            assert verdict.ok, verdict


def test_only_a_create_refused_with_a_known_code_is_rejected() -> None:
    """Read by the venue's table: a listed code that means "not placed" is a refusal; a
    code the table does not know, or no venue error at all, proves nothing for a create
    (ambiguous: asked about). A read refused so stays a refusal."""
    binance = get_venue("binance")
    create = binance.endpoints[Op.PLACE_ORDER]
    lookup = binance.endpoints[Op.GET_ORDER]

    def answer(status: int, body: bytes) -> HttpResponse:
        return HttpResponse(status, {}, body)

    known = answer(400, b'{"code": -2010, "msg": "Account has insufficient balance"}')
    malformed = answer(400, b'{"code": -1104, "msg": "Not all sent parameters were read"}')
    unknown = answer(400, b'{"code": -2099, "msg": "something new"}')
    page = answer(403, b"<html><body>Request blocked</body></html>")
    assert binance.interpret(create, known).verdict is Verdict.REJECTED
    assert binance.interpret(create, malformed).verdict is Verdict.REJECTED  # 11xx: request
    assert binance.interpret(create, unknown).verdict is Verdict.AMBIGUOUS
    assert binance.interpret(create, page).verdict is Verdict.AMBIGUOUS
    assert binance.interpret(lookup, unknown).verdict is Verdict.REJECTED
    assert binance.interpret(lookup, page).verdict is Verdict.REJECTED


def test_an_oanda_create_refused_with_a_reject_transaction_is_rejected() -> None:
    """OANDA records a refused create as an orderRejectTransaction: whatever its reason,
    that is the venue saying "not placed". The same 400 without it proves nothing."""
    oanda = get_venue("oanda")
    create = oanda.endpoints[Op.PLACE_ORDER]
    recorded = HttpResponse(
        400,
        {},
        b'{"orderRejectTransaction": {"type": "MARKET_ORDER_REJECT", "rejectReason": '
        b'"UNITS_MINIMUM_NOT_MET"}, "errorCode": "UNITS_MINIMUM_NOT_MET", '
        b'"errorMessage": "The units specified is less than the minimum"}',
    )
    bare = HttpResponse(400, {}, b"<html><body>Bad Request</body></html>")
    assert oanda.interpret(create, recorded).verdict is Verdict.REJECTED
    assert oanda.interpret(create, bare).verdict is Verdict.AMBIGUOUS


@pytest.mark.parametrize("how", ["pin", "ca"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_refusal_after_the_attempt_is_recorded_through_ccxt_is_not_placed(
    sim: Simulator, server: HttpsServer, tmp_path: Path, how: str, asynchronous: bool
) -> None:
    """The same through ccxt's own HTTP stacks (requests, aiohttp): the handshake of the
    order's connection is refused here, nothing arrives, the row ends NOT_PLACED."""
    refusal = _Refusal(server, how, tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    made = sim.create_key()
    key = ApiKey(
        "ccxt:binance",
        made.key_id,
        made.secret,
        scopes=made.scopes,
        kind=made.kind,
        environment=made.environment,
    )
    options = refusal.options(asynchronous=asynchronous, ccxt=True)
    order = MarketOrder(symbol="BTC/USDT", side="BUY", quantity="0.001")

    async def place_async() -> str:
        client = AsyncClient(key, journal=journal, **options)
        try:
            await client.recover()
            # aiohttp learns of a dropped connection only when its loop runs: dropped here,
            # else the order may go out on the dead one (a write that fails is ambiguous).
            server.drop_connections()
            await asyncio.sleep(0.2)
            client.core.checkpoint = refusal  # type: ignore[method-assign]
            with pytest.raises(refusal.expected):
                await client.place_order(order, idempotency_key="ccxt-refused")
        finally:
            await client.aclose()
        return client.core.account

    if asynchronous:
        account = asyncio.run(place_async())
    else:
        client = Client(key, journal=journal, **options)
        try:
            client.recover()
            client.core.checkpoint = refusal  # type: ignore[method-assign]
            with pytest.raises(refusal.expected):
                client.place_order(order, idempotency_key="ccxt-refused")
        finally:
            client.close()
        account = client.core.account
    _nothing_arrived(sim, refusal)
    cid = derive_client_order_id("ccxt:binance", account, "ccxt-refused")
    assert sim.market.orders_with_client_id(cid) == []
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 1)
    journal.close()
