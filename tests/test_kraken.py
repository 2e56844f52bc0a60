"""Kraken spot: signing through prepare(), the error table, the rate-limit model, the ids,
and the simulator's Kraken checks (signature, nonces, deadline) over real TLS."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest

from securetrade import (
    AmbiguousOutcome,
    AuthenticationRejected,
    Client,
    DuplicateOrder,
    InsufficientFunds,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    OrderNotFound,
    RateLimited,
    RetryableError,
    Settings,
    TimestampRejected,
    VenueRejected,
)
from securetrade.keys import ApiKey, Scope
from securetrade.models import OrderStatus
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.sim import HttpsServer, KrakenLimits, Simulator
from securetrade.transport import HttpRequest, HttpResponse
from securetrade.venues import Endpoint, Op, Verdict, get_venue
from securetrade.venues.kraken import CLIENT_ORDER_ID, KRAKEN, KrakenSpot
from securetrade.venues.kraken.tables import API, ERRORS, ORDERS, PUBLIC, TIERS, rate_limits
from signing_vectors import VECTORS

ROOMY = [RateLimit(API, 1.0, 1000), RateLimit(ORDERS, 1.0, 1000), RateLimit(PUBLIC, 1.0, 1000)]
BUY = LimitOrder(symbol="XBTUSDT", side="BUY", quantity="0.01", price="60000.00")
FOK_BUY = LimitOrder(
    symbol="XBTUSDT", side="BUY", quantity="0.01", price="60000.00", time_in_force="FOK"
)


def _client(sim: Simulator, server: HttpsServer, key: ApiKey, **kwargs: Any) -> Client:
    kwargs.setdefault("limiter", RateLimiter(ROOMY))
    kwargs.setdefault("journal", ":memory:")
    return Client(key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, **kwargs)


# --- signing -------------------------------------------------------------------------------


def test_prepare_reproduces_the_documented_signature() -> None:
    """Kraken's AddOrder example: prepare() writes exactly that body and that API-Sign."""
    vector = VECTORS["kraken-addorder"]
    message = vector["message"]
    key = ApiKey("kraken", "k" * 56, vector["key"]["secret_b64"], scopes=[Scope.TRADE])
    fields = [tuple(p.split("=")) for p in message["postdata"].split("&")][1:]  # after nonce
    # The documented body has no deadline, so sign it as a plain private call.
    raw = Endpoint(Op.BALANCES, "POST", message["uri_path"], True, Scope.TRADE)
    request = KRAKEN.prepare(
        raw,
        fields,
        key_id=key.key_id,
        signer=KRAKEN.signer(key),
        timestamp_ms=0,
        nonce=int(message["nonce"]),
    )
    assert request.body.decode() == message["postdata"]
    headers = dict(request.headers)
    assert headers["API-Sign"] == vector["expected"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert vector["expected"] not in repr(request)  # redacted wherever it is printed


def test_orders_carry_a_deadline_and_refuse_what_kraken_cannot_do() -> None:
    key = ApiKey("kraken", "k" * 56, base64.b64encode(b"s" * 64).decode(), scopes=["trade"])
    params = KRAKEN.order_params(BUY, KRAKEN.client_order_id("acct", "x"))
    request = KRAKEN.prepare(
        KRAKEN.endpoints[Op.PLACE_ORDER],
        params,
        key_id=key.key_id,
        signer=KRAKEN.signer(key),
        timestamp_ms=1_700_000_000_900,
        nonce=7,
    )
    body = dict(parse_qsl(request.body.decode(), strict_parsing=True))
    assert body["nonce"] == "7"
    assert body["deadline"] == "2023-11-14T22:13:25Z"  # 1_700_000_005_900 ms, rounded down
    with pytest.raises(InvalidRequest, match="GTC and IOC"):
        KRAKEN.order_params(FOK_BUY, "a" * 32)
    with pytest.raises(InvalidRequest, match="needs a nonce"):
        KRAKEN.prepare(
            KRAKEN.endpoints[Op.BALANCES], [], key_id="k", signer=KRAKEN.signer(key),
            timestamp_ms=0,
        )  # fmt: skip
    with pytest.raises(InvalidRequest, match="HMAC"):
        KRAKEN.signer(ApiKey("kraken", "k", "x", kind="ed25519"))
    short = KrakenSpot()
    short.recv_window_ms = 1000
    with pytest.raises(InvalidRequest, match="2 to 60 s"):
        short.prepare(
            short.endpoints[Op.PLACE_ORDER], params, key_id="k", signer=KRAKEN.signer(key),
            timestamp_ms=0, nonce=1,
        )  # fmt: skip


def test_client_order_ids_are_short_uuids_per_account_and_key() -> None:
    a = KRAKEN.client_order_id("acct", "key-1")
    assert a == KRAKEN.client_order_id("acct", "key-1")
    assert len(a) == 32
    assert int(a, 16) >= 0
    assert CLIENT_ORDER_ID.fullmatch(a)
    assert a != KRAKEN.client_order_id("acct", "key-2")
    assert a != KRAKEN.client_order_id("other", "key-1")
    assert CLIENT_ORDER_ID.fullmatch("d15708c1-dbb6-465d-b77d-47258319cc90")
    assert CLIENT_ORDER_ID.fullmatch("my-order-18-chars!")
    assert not CLIENT_ORDER_ID.fullmatch("nineteen-characters")


# --- the error table --------------------------------------------------------------------------


def _answer(*errors: str, status: int = 200, result: Any = None) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps({"error": list(errors), "result": result}).encode())


@pytest.mark.parametrize(
    ("text", "verdict", "kind"),
    [
        ("EOrder:Insufficient funds", Verdict.REJECTED, InsufficientFunds),
        ("EGeneral:Invalid arguments:volume", Verdict.REJECTED, VenueRejected),
        ("EOrder:Unknown order", Verdict.REJECTED, OrderNotFound),
        ("EOrder:Duplicate order", Verdict.REJECTED, DuplicateOrder),
        ("EAPI:Invalid signature", Verdict.REJECTED, AuthenticationRejected),
        ("EAPI:Invalid nonce", Verdict.RETRYABLE, TimestampRejected),
        ("EAPI:Rate limit exceeded", Verdict.RETRYABLE, RateLimited),
        ("EService:Unavailable", Verdict.RETRYABLE, RetryableError),
        ("EService:Deadline elapsed", Verdict.RETRYABLE, RetryableError),
        ("EGeneral:Internal error", Verdict.AMBIGUOUS, AmbiguousOutcome),
        ("EService:Something new", Verdict.AMBIGUOUS, AmbiguousOutcome),
        ("EOrder:Something new", Verdict.REJECTED, VenueRejected),
    ],
)
def test_error_strings_map_into_the_tree(text: str, verdict: Verdict, kind: type) -> None:
    outcome = KRAKEN.interpret(KRAKEN.endpoints[Op.PLACE_ORDER], _answer(text))
    assert outcome.verdict is verdict
    assert type(outcome.error) is kind
    assert outcome.error is not None
    assert outcome.error.code == text
    assert outcome.bad_nonce is (text == "EAPI:Invalid nonce")
    assert outcome.duplicate is (text == "EOrder:Duplicate order")


def test_every_table_entry_is_in_the_family_of_its_verdict() -> None:
    family = {
        Verdict.REJECTED: VenueRejected,
        Verdict.AMBIGUOUS: AmbiguousOutcome,
        Verdict.RETRYABLE: (RetryableError, AuthenticationRejected),  # a stale nonce
    }
    for text, (verdict, kind) in ERRORS.items():
        assert issubclass(kind, family[verdict]), text


def test_answers_that_are_not_kraken_answers() -> None:
    place = KRAKEN.endpoints[Op.PLACE_ORDER]
    gateway = KRAKEN.interpret(place, HttpResponse(502, {}, b"<html>bad gateway</html>"))
    assert gateway.verdict is Verdict.AMBIGUOUS
    lied = KRAKEN.interpret(place, _answer("EOrder:Insufficient funds", status=500))
    assert lied.verdict is Verdict.AMBIGUOUS  # a 5xx never proves a refusal
    warned = KRAKEN.interpret(place, _answer("WGeneral:Deprecated", result={"txid": ["O"]}))
    assert warned.verdict is Verdict.OK
    empty = KRAKEN.interpret(KRAKEN.endpoints[Op.GET_ORDER], _answer(result={}))
    assert isinstance(empty.error, OrderNotFound)
    limited = KRAKEN.interpret(place, _answer("EOrder:Rate limit exceeded"))
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after == limited.retry_after == 8.0


# --- rate limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_window_never_lets_the_decaying_counter_overflow(tier: str) -> None:
    """Admit greedily whatever the sliding window allows, on a 50 ms grid for 10 minutes,
    and replay it on Kraken's counter: it never exceeds its maximum, and the long-run rate
    is the counter's decay rate."""
    (maximum, decay), _ = TIERS[tier]
    (window, *_) = rate_limits(tier)
    assert (window.kind, window.limit) == (API, maximum)
    admitted: list[float] = []
    level, last, peak = 0.0, 0.0, 0.0
    for step in range(12_000):
        now = step * 0.05
        recent = [t for t in admitted if t > now - window.seconds]
        if len(recent) < window.limit:
            admitted.append(now)
            level = max(0.0, level - (now - last) * decay) + 1
            last = now
            peak = max(peak, level)
    assert peak <= maximum
    assert len(admitted) / 600 == pytest.approx(decay, rel=0.1)


def test_the_counters_refuse_and_the_client_reports_it(sim: Simulator, server: HttpsServer) -> None:
    sim.kraken.limits = KrakenLimits(api_max=2, api_decay=0.001)
    key = sim.create_key(venue="kraken")
    with _client(sim, server, key, settings=Settings(max_attempts=1)) as client:
        client.balances()
        client.balances()
        with pytest.raises(RateLimited) as caught:
            client.balances()
    assert caught.value.code == "EAPI:Rate limit exceeded"
    assert caught.value.retry_after == 3.0


# --- the simulator's Kraken checks, over TLS -------------------------------------------------


def _signed(key: ApiKey, op: Op, params: list[tuple[str, str]], nonce: int, ts: int) -> HttpRequest:
    return KRAKEN.prepare(
        KRAKEN.endpoints[op], params, key_id=key.key_id, signer=KRAKEN.signer(key),
        timestamp_ms=ts, nonce=nonce,
    )  # fmt: skip


def _send(sim: Simulator, request: HttpRequest, body: bytes | None = None) -> list[str]:
    headers = {k.lower(): v for k, v in request.headers}
    answer = sim.handle(request.method, request.target, headers, body or request.body)
    return list(json.loads(answer.body)["error"])


def test_signature_nonce_and_deadline_are_checked(sim: Simulator) -> None:
    key = sim.create_key(venue="kraken")
    now = sim.kraken.now_ms()
    good = _signed(key, Op.BALANCES, [], 1000, now)
    assert _send(sim, good, good.body + b"&x=1") == ["EAPI:Invalid signature"]
    assert _send(sim, good) == []
    assert _send(sim, good) == ["EAPI:Invalid nonce"]  # a replay
    assert _send(sim, _signed(key, Op.BALANCES, [], 999, now)) == ["EAPI:Invalid nonce"]
    assert sim.kraken.last_nonce(key.key_id) == 1000
    stranger = ApiKey("kraken", "unknown", key.secret, scopes=["read"])
    assert _send(sim, _signed(stranger, Op.BALANCES, [], 5000, now)) == ["EAPI:Invalid key"]
    order = KRAKEN.order_params(BUY, KRAKEN.client_order_id(key.key_id, "late"))
    late = _signed(key, Op.PLACE_ORDER, order, 1001, now - 10_000)
    assert _send(sim, late) == ["EService:Deadline elapsed"]
    assert sim.market.orders_with_client_id(KRAKEN.client_order_id(key.key_id, "late")) == []
    assert _send(sim, _signed(key, Op.PLACE_ORDER, order, 1002, now)) == []


def test_a_nonce_window_tolerates_reordering_but_not_replays(sim: Simulator) -> None:
    sim.kraken.nonce_window = 100
    key = sim.create_key(venue="kraken")
    now = sim.kraken.now_ms()
    assert _send(sim, _signed(key, Op.BALANCES, [], 1050, now)) == []
    assert _send(sim, _signed(key, Op.BALANCES, [], 1010, now)) == []  # late, inside
    assert _send(sim, _signed(key, Op.BALANCES, [], 1010, now)) == ["EAPI:Invalid nonce"]
    assert _send(sim, _signed(key, Op.BALANCES, [], 900, now)) == ["EAPI:Invalid nonce"]


def test_a_client_over_tls_round_trip(sim: Simulator, server: HttpsServer) -> None:
    key = sim.create_key(venue="kraken", balances={"USDT": Decimal(1000), "BTC": Decimal(1)})
    with _client(sim, server, key) as client:
        _round_trip(sim, client)


def _round_trip(sim: Simulator, client: Client) -> None:
    assert client.venue is get_venue("kraken")
    assert abs(client.server_time() - sim.kraken.now_ms()) < 2000
    rules = client.instruments()["XBTUSDT"]
    assert (rules.tick_size, rules.step_size, rules.min_notional) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal(5),
    )
    assert (rules.base_asset, rules.quote_asset) == ("BTC", "USDT")  # not XXBT
    with pytest.raises(InsufficientFunds):
        client.place_order(BUY.model_copy(update={"quantity": Decimal("0.1")}))
    with pytest.raises(InvalidRequest, match="GTC and IOC"):
        client.place_order(FOK_BUY)
    assert sim.kraken.stats.by_path["POST /0/private/AddOrder"] == 1  # FOK never left
    with pytest.raises(InvalidRequest, match="does not offer key_permissions"):
        client.key_permissions()


# --- looking orders up by cl_ord_id: OpenOrders, then ClosedOrders; never QueryOrders -----

QUERY, OPEN, CLOSED = (
    f"POST /0/private/{m}" for m in ("QueryOrders", "OpenOrders", "ClosedOrders")
)
ETH_BUY = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
FUNDS = {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)}


def _sent(sim: Simulator, *routes: str) -> tuple[int, ...]:
    return tuple(sim.kraken.stats.by_path.get(route, 0) for route in routes)


def test_the_simulator_refuses_query_orders_without_txid_by_default(sim: Simulator) -> None:
    """As Kraken's API reference says: QueryOrders needs a txid, cl_ord_id only narrows."""
    assert sim.kraken.query_needs_txid
    key = sim.create_key(venue="kraken")
    # Signed as a plain private call to QueryOrders: our GET_ORDER would never send this.
    raw = Endpoint(Op.BALANCES, "POST", "/0/private/QueryOrders", True, Scope.READ)
    lookup = [("cl_ord_id", KRAKEN.client_order_id("acct", "x"))]
    request = KRAKEN.prepare(
        raw, lookup, key_id=key.key_id, signer=KRAKEN.signer(key), timestamp_ms=0, nonce=1
    )
    assert _send(sim, request) == ["EGeneral:Invalid arguments:txid"]


def test_an_open_order_is_found_among_open_orders_in_one_request(
    sim: Simulator, server: HttpsServer
) -> None:
    key = sim.create_key(venue="kraken", balances=FUNDS)
    with _client(sim, server, key) as client:
        placed = client.place_order(BUY)
        assert placed.status is OrderStatus.NEW
        before = _sent(sim, OPEN, CLOSED)
        found = client.get_order("XBTUSDT", client_order_id=placed.client_order_id)
    assert (found.order_id, found.status) == (placed.order_id, OrderStatus.NEW)
    assert _sent(sim, OPEN, CLOSED) == (before[0] + 1, before[1])
    assert sim.kraken.stats.last_params["OpenOrders"]["cl_ord_id"] == placed.client_order_id
    assert set(sim.kraken.stats.last_params["OpenOrders"]) == {"nonce", "cl_ord_id"}
    assert _sent(sim, QUERY) == (0,)


def test_a_filled_order_is_found_among_closed_orders_in_two_signed_requests(
    sim: Simulator, server: HttpsServer
) -> None:
    key = sim.create_key(venue="kraken", balances=FUNDS)
    with _client(sim, server, key) as client:
        placed = client.place_order(ETH_BUY)  # read back: open orders, then closed ones
        assert placed.status is OrderStatus.FILLED
        before = _sent(sim, OPEN, CLOSED)
        found = client.get_order("ETHUSDT", client_order_id=placed.client_order_id)
    assert (found.order_id, found.status) == (placed.order_id, OrderStatus.FILLED)
    assert found.filled_quantity == Decimal("0.01")
    assert _sent(sim, OPEN, CLOSED) == (before[0] + 1, before[1] + 1)
    opened = sim.kraken.stats.last_params["OpenOrders"]
    closed = sim.kraken.stats.last_params["ClosedOrders"]
    assert opened["cl_ord_id"] == closed["cl_ord_id"] == placed.client_order_id
    assert set(closed) == {"nonce", "cl_ord_id"}  # the routing marker never leaves
    assert int(closed["nonce"]) > int(opened["nonce"])  # each request signed with its own
    assert _sent(sim, QUERY) == (0,)


def test_an_absent_order_is_not_found_after_both_lists(sim: Simulator, server: HttpsServer) -> None:
    key = sim.create_key(venue="kraken", balances=FUNDS)
    with _client(sim, server, key) as client:
        client.place_order(ETH_BUY)  # a closed order of another id is not ours
        before = _sent(sim, OPEN, CLOSED)
        with pytest.raises(OrderNotFound):
            client.get_order("ETHUSDT", client_order_id=KRAKEN.client_order_id("a", "absent"))
    assert _sent(sim, OPEN, CLOSED) == (before[0] + 1, before[1] + 1)


def test_lookups_by_txid_use_query_orders_and_none_goes_without_txid(
    sim: Simulator, server: HttpsServer
) -> None:
    key = sim.create_key(venue="kraken", balances=FUNDS)
    with _client(sim, server, key) as client:
        resting = client.place_order(BUY)
        filled = client.place_order(ETH_BUY)
        for order in (resting, filled):
            by_txid = client.get_order(order.symbol, order_id=order.order_id)
            assert by_txid.client_order_id == order.client_order_id
            assert sim.kraken.stats.last_params["QueryOrders"]["txid"] == order.order_id
        assert _sent(sim, QUERY) == (2,)  # the two lookups by txid, nothing else
        canceled = client.cancel_order("XBTUSDT", client_order_id=resting.client_order_id)
        assert canceled.status is OrderStatus.CANCELED  # read back among closed orders
        cancel = sim.kraken.stats.last_params["CancelOrder"]
        assert (cancel["cl_ord_id"], "txid" in cancel) == (resting.client_order_id, False)
        with pytest.raises(OrderNotFound):  # EOrder:Unknown order: no longer open
            client.cancel_order("XBTUSDT", client_order_id=resting.client_order_id)
        with pytest.raises(InvalidRequest, match="not a Kraken cl_ord_id"):
            client.get_order("XBTUSDT", client_order_id="has space")
    assert _sent(sim, QUERY) == (2,)
    assert "EGeneral:Invalid arguments:txid" not in sim.kraken.stats.rejections


def test_a_lost_order_answer_is_resolved_among_closed_orders(
    sim: Simulator, server: HttpsServer
) -> None:
    """AddOrder executed but its answer was lost: the core resolves the order by cl_ord_id,
    which on Kraken means OpenOrders then ClosedOrders, and settles it once."""
    key = sim.create_key(venue="kraken", balances=FUNDS)
    sim.faults.inject("drop_response", method="POST", path="/0/private/AddOrder")
    with _client(sim, server, key) as client:
        placed = client.place_order(ETH_BUY)
    assert sim.faults.fired == [("drop_response", "POST", "/0/private/AddOrder")]
    assert placed.status is OrderStatus.FILLED
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    assert _sent(sim, QUERY) == (0,)
    assert _sent(sim, CLOSED)[0] >= 1


def _result(result: Any) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps({"error": [], "result": result}).encode())


def test_lookup_answers_of_each_shape() -> None:
    lookup = KRAKEN.endpoints[Op.GET_ORDER]
    entry = {
        "cl_ord_id": "5e" + "1" * 30, "status": "closed", "opentm": 1.5, "vol": "0.01",
        "vol_exec": "0.01", "cost": "30.00",
        "descr": {"pair": "ETHUSDT", "type": "buy", "ordertype": "market", "price": "0"},
    }  # fmt: skip
    first = KRAKEN.interpret(lookup, _result({"open": {}}))
    assert (first.verdict, first.follow_up) == (Verdict.OK, [("~among", "closed")])
    assert KRAKEN.interpret(lookup, _result({"open": {"OA": entry}})).follow_up is None
    closed = KRAKEN.interpret(lookup, _result({"closed": {"OA": entry}, "count": 1}))
    assert closed.verdict is Verdict.OK
    order = KRAKEN.parse_order(closed.payload)
    assert (order.order_id, order.status, order.quote_quantity) == (
        "OA",
        OrderStatus.FILLED,
        Decimal("30.00"),
    )
    assert KRAKEN.parse_order({"open": {"OA": entry}}).order_id == "OA"
    absent = KRAKEN.interpret(lookup, _result({"closed": {}, "count": 0}))
    assert (absent.verdict, type(absent.error)) == (Verdict.REJECTED, OrderNotFound)
    nothing = KRAKEN.interpret(lookup, _result({}))  # QueryOrders by txid: no such order
    assert (nothing.verdict, type(nothing.error)) == (Verdict.REJECTED, OrderNotFound)
    # A venue that ignored the filter lists other ids: which order is ours is unknown.
    other = {**entry, "cl_ord_id": "5e" + "2" * 30}
    mixed = KRAKEN.interpret(lookup, _result({"open": {"OA": entry, "OB": other}}))
    assert (mixed.verdict, type(mixed.error)) == (Verdict.AMBIGUOUS, AmbiguousOutcome)
    odd = KRAKEN.interpret(lookup, _result({"closed": ["OA"], "count": 1}))
    assert odd.verdict is Verdict.AMBIGUOUS


def test_prepare_routes_lookups_and_never_sends_the_marker() -> None:
    key = ApiKey("kraken", "k" * 56, base64.b64encode(b"s" * 64).decode(), scopes=["read"])
    lookup = KRAKEN.endpoints[Op.GET_ORDER]
    cid = KRAKEN.client_order_id("acct", "x")

    def target(params: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
        request = KRAKEN.prepare(
            lookup, params, key_id=key.key_id, signer=KRAKEN.signer(key), timestamp_ms=0,
            nonce=7,
        )  # fmt: skip
        return request.target, dict(parse_qsl(request.body.decode()))

    assert target([("txid", "OABCDE-FGHIJ-KLMNOP")])[0] == "/0/private/QueryOrders"
    assert target(KRAKEN.order_lookup_params("XBTUSDT", client_order_id=cid)) == (
        "/0/private/OpenOrders",
        {"nonce": "7", "cl_ord_id": cid},
    )
    assert target([("cl_ord_id", cid), ("~among", "closed")]) == (
        "/0/private/ClosedOrders",
        {"nonce": "7", "cl_ord_id": cid},
    )
    with pytest.raises(InvalidRequest):
        target([])  # neither id: refused before anything is signed


def test_kraken_counters_are_scoped_as_kraken_counts_them() -> None:
    """The call counter is per key, the add/cancel counter per key and pair: a full
    counter in one pair does not hold back orders in another, nor another key's calls."""
    from securetrade.ratelimit import LimitScope, RateLimiter
    from securetrade.ratelimit.model import Caller, Priority
    from securetrade.venues.kraken.tables import API, ORDERS, rate_limits

    limits = rate_limits("starter")
    assert [limit.scope for limit in limits] == [
        LimitScope.API_KEY,
        LimitScope.PAIR,
        LimitScope.IP,
    ]
    limiter = RateLimiter.in_memory(limits, shares={Priority.CANCEL: 1.0})
    alice, bob = Caller.of("alice-key"), Caller.of("bob-key")
    order_cost = {ORDERS: 1}
    while limiter.reserve(order_cost, Priority.CANCEL, symbol="XBTUSD", caller=alice) == 0.0:
        pass
    assert limiter.reserve(order_cost, Priority.CANCEL, symbol="XBTUSD", caller=alice) > 0.0
    assert limiter.reserve(order_cost, Priority.CANCEL, symbol="ETHUSD", caller=alice) == 0.0
    call_cost = {API: 1}
    while limiter.reserve(call_cost, Priority.CANCEL, caller=alice) == 0.0:
        pass
    assert limiter.reserve(call_cost, Priority.CANCEL, caller=bob) == 0.0
