"""Inputs an independent harness found escaping the error tree, and answers it found read
as "nothing was sent" although the order existed.

Every error a caller can catch is a ``SecureTradeError`` that says what to do; every answer
that cannot be read after a request was sent is ambiguous, and the idempotency layer then
asks the venue. Against the simulator over real TLS on 127.0.0.1, with its fault schedule.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import securetrade
from securetrade import (
    AmbiguousOutcome,
    Client,
    InvalidRequest,
    JournalError,
    LimitOrder,
    Order,
    OrderRequest,
    OrderStatus,
    PinSet,
    SecureTradeError,
    Settings,
    TimeInForce,
    VenueRejected,
)
from securetrade.core.journal import Journal
from securetrade.keys import ApiKey
from securetrade.models import Balance, Fill, MarketOrder
from securetrade.ratelimit import RateLimit, RateLimiter
from securetrade.record import AuditKey, AuditTrail
from securetrade.sim import HttpsServer, Simulator
from securetrade.transport import HttpResponse
from securetrade.venues import Op, Verdict
from securetrade.venues.binance import BINANCE
from securetrade.venues.kraken import KRAKEN
from securetrade.venues.kraken.tables import API, ORDERS, PUBLIC

FAST = Settings(settle_ms=300, resolve_timeout=20.0)


def _pinned(server: HttpsServer) -> dict[str, Any]:
    return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}


# --- journal paths that cannot hold a journal -----------------------------------------------


def _refused(path: Path | str) -> JournalError:
    with pytest.raises(JournalError) as info:
        Journal(path)
    error = info.value
    assert isinstance(error, SecureTradeError)
    assert "journal=" in str(error) or "securetrade" in str(error)  # it says what to do
    return error


def test_journal_error_is_a_securetrade_error_exported_at_the_top() -> None:
    assert securetrade.JournalError is JournalError
    assert securetrade.core.journal.JournalError is JournalError
    assert issubclass(JournalError, SecureTradeError)
    assert not issubclass(JournalError, RuntimeError)
    assert "JournalError" in securetrade.__all__
    assert "JournalError" in (securetrade.errors.__doc__ or "")


def test_journal_path_that_is_a_directory_raises_journal_error(tmp_path: Path) -> None:
    error = _refused(tmp_path)
    assert "is a directory" in str(error)
    assert str(tmp_path / "journal.sqlite3") in str(error)  # the path to pass instead


def test_journal_path_under_a_regular_file_raises_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "in-the-way"
    blocker.write_text("not a directory")
    error = _refused(blocker / "sub" / "journal.sqlite3")
    assert f"{blocker} is a file" in str(error)
    assert blocker.read_text() == "not a directory"


def test_journal_path_that_is_not_a_database_raises_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    text = "my trading notes, not a database\n" * 64
    path.write_text(text)
    error = _refused(path)
    assert "not an SQLite database" in str(error)
    assert path.read_text() == text  # left as it was


def test_journal_in_a_directory_no_one_can_write_raises_journal_error() -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs a Linux /proc, where no process can create a file")
    error = _refused("/proc/securetrade-journal.sqlite3")
    assert "writable" in str(error)


_READ_ONLY_CHILD = """
import sys
from securetrade import JournalError, Journal
try:
    Journal(sys.argv[1])
except JournalError as error:
    print(error)
    sys.exit(0)
sys.exit("no JournalError")
"""


def _without_root_overrides() -> None:
    """In the child before exec: drop the capabilities that let root ignore file modes."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_journal_in_a_read_only_directory_raises_journal_error(tmp_path: Path) -> None:
    """Root writes into read-only folders, so as root the attempt runs in a child that has
    lost the capabilities that allow it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not (hasattr(os, "geteuid") and os.geteuid() == 0):
            message = str(_refused(locked / "journal.sqlite3"))
        else:
            src = Path(securetrade.__file__).resolve().parents[1]
            child = subprocess.run(
                [sys.executable, "-c", _READ_ONLY_CHILD, str(locked / "journal.sqlite3")],
                preexec_fn=_without_root_overrides,
                env={**os.environ, "PYTHONPATH": str(src)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert child.returncode == 0, child.stderr
            message = child.stdout
        assert not (locked / "journal.sqlite3").exists()
    finally:
        locked.chmod(0o700)
    assert "writable" in message
    assert "journal=" in message or "securetrade" in message  # it says what to do


def test_audit_database_given_as_journal_is_refused_not_extended(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    trail = AuditTrail(path, AuditKey.generate())
    trail.close()
    before = _tables(path)
    error = _refused(path)
    assert "another program's SQLite database" in str(error)
    assert "records" in str(error)
    assert _tables(path) == before  # no journal tables were added to the audit trail


@pytest.mark.parametrize("version", [0, 3])
def test_foreign_sqlite_database_is_refused_as_journal(tmp_path: Path, version: int) -> None:
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    _refused(path)
    assert _tables(path) == {"customers"}


def test_journal_of_our_own_reopens(tmp_path: Path) -> None:
    """Control: the checks refuse other files, never a journal."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    Journal(path).close()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()  # an empty file is an empty database: it becomes a journal
    Journal(empty).close()


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


@pytest.mark.parametrize(
    "arguments",
    [
        {"path": None},
        {"path": 42},
        {"synchronous": "OFF"},
        {"retention": "7d"},
        {"retention": float("nan")},
        {"tombstone_ttl": -1},
    ],
    ids=["path-none", "path-int", "synchronous", "retention-text", "retention-nan", "ttl"],
)
def test_journal_arguments_it_cannot_use_raise_invalid_request(
    tmp_path: Path, arguments: dict[str, Any]
) -> None:
    arguments = {"path": tmp_path / "j.sqlite3", **arguments}
    with pytest.raises(InvalidRequest):
        Journal(**arguments)


def test_client_with_an_unusable_journal_sends_nothing(
    tmp_path: Path, sim: Simulator, server: HttpsServer, key: ApiKey
) -> None:
    path = tmp_path / "audit.sqlite3"
    AuditTrail(path, AuditKey.generate()).close()
    with pytest.raises(JournalError):
        Client(key, journal=path, **_pinned(server))
    assert server.bytes_received == 0
    assert sim.dialect.stats.requests == 0


# --- the Redis journal's arguments -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"url": "http://127.0.0.1:6379"},
        {"url": "redis://127.0.0.1:6379", "retention": 0},
        {"url": "redis://127.0.0.1:6379", "loss_horizon": float("inf")},
        {"url": "redis://127.0.0.1:6379", "loss_window_ms": -1},
        {"url": "redis://127.0.0.1:6379", "prefix": ""},
    ],
    ids=["no-url", "scheme", "retention", "horizon", "window", "prefix"],
)
def test_redis_journal_arguments_it_cannot_use_raise_invalid_request(
    arguments: dict[str, Any],
) -> None:
    pytest.importorskip("redis")
    from securetrade.core.redis_journal import RedisJournal

    with pytest.raises(InvalidRequest):
        RedisJournal(**arguments)


def test_redis_journal_without_a_server_raises_journal_error() -> None:
    pytest.importorskip("redis")
    from securetrade.core.redis_journal import RedisJournal

    with pytest.raises(JournalError, match="check that it runs") as info:
        RedisJournal(f"redis://:hunter2@127.0.0.1:{_closed_port()}/0")
    assert "hunter2" not in str(info.value)  # the URL's password stays out of the message


# --- pins of the wrong shape ----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    ["list", "string", "host-to-string", "host-to-none", "pin-not-text", "host-not-text"],
)
def test_pins_of_the_wrong_shape_raise_invalid_request(
    server: HttpsServer, key: ApiKey, shape: str
) -> None:
    host, (one, two) = next(iter(server.pins.items()))
    pins: Any = {
        "list": [one, two],
        "string": one,
        "host-to-string": {host: one},
        "host-to-none": {host: None},
        "pin-not-text": {host: [one, 7]},
        "host-not-text": {7: [one, two]},
    }[shape]
    with pytest.raises(InvalidRequest, match="pins"):
        PinSet(pins)
    with pytest.raises(InvalidRequest, match="pins"):
        Client(key, base_url=server.base_url, pins=pins, cadata=server.ca_pem, journal=":memory:")
    assert server.bytes_received == 0


def test_pinset_coerce_keeps_a_pinset_and_builds_one_from_a_mapping(server: HttpsServer) -> None:
    built = PinSet.coerce(server.pins)
    assert PinSet.coerce(built) is built
    host = next(iter(server.pins))
    assert built.pins_for(host) == frozenset(server.pins[host])


# --- pydantic's own errors and unchecked copies ----------------------------------------------

ORDER = Order(
    venue="binance",
    symbol="BTCUSDT",
    order_id="1",
    client_order_id="c1",
    side="BUY",
    type="LIMIT",
    status="NEW",
    quantity="0.5",
    price="60000",
    fills=(Fill(price="60000", quantity="0.1", trade_id="t1"),),
)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Order.model_validate({"venue": "binance"}),
        lambda: Order.model_validate([1, 2]),
        lambda: Order.model_validate_json("{not json"),
        lambda: LimitOrder.model_validate({"symbol": "BTCUSDT", "side": "BUY"}),
        lambda: Balance.model_validate_strings({"asset": "BTC", "free": "-1"}),
        lambda: Order.model_validate({**ORDER.model_dump(), "fills": [{"price": "-1"}]}),
    ],
    ids=["missing", "not-a-dict", "json", "limit-order", "strings", "nested"],
)
def test_model_validate_raises_invalid_request_not_pydantics_error(make: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        make()
    assert "invalid " in str(info.value)
    assert "invalid Order: invalid Order" not in str(info.value)


@pytest.mark.parametrize(
    ("model", "update"),
    [
        (ORDER, {"quantity": Decimal(-5)}),
        (ORDER, {"price": Decimal("NaN")}),
        (ORDER, {"side": "HOLD"}),
        (ORDER, {"quantity": Decimal(-5), "idempotency_key": "k"}),
        (ORDER, {"no_such_field": 1}),
        (LimitOrder(symbol="BTCUSDT", side="BUY", quantity=1, price=1), {"quantity": -5}),
        (LimitOrder(symbol="BTCUSDT", side="BUY", quantity=1, price=1), {"price": float("nan")}),
        (
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity=1, price=1),
            {"symbol": "BTCUSDT&price=0"},
        ),
        (Fill(price=1, quantity=1), {"commission": Decimal("-Infinity")}),
    ],
    ids=[
        "order-quantity",
        "order-price",
        "order-side",
        "two-fields",
        "unknown-field",
        "limit-quantity",
        "limit-price",
        "limit-symbol",
        "fill-commission",
    ],
)
def test_model_copy_cannot_make_an_invalid_model(model: Any, update: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        model.model_copy(update=update)


def test_model_copy_of_valid_updates_still_copies() -> None:
    keyed = ORDER.model_copy(update={"idempotency_key": "rebalance-1"})
    assert keyed.idempotency_key == "rebalance-1"
    assert ORDER.idempotency_key is None
    assert keyed.model_copy(update={"idempotency_key": None}) == ORDER
    two = ORDER.model_copy(update={"status": OrderStatus.FILLED, "filled_quantity": "0.5"})
    assert two.filled_quantity == Decimal("0.5")
    assert ORDER.model_copy() == ORDER
    assert ORDER.model_copy(deep=True) == ORDER


@pytest.mark.parametrize("value", [5, ["k"], Decimal(1), {"k": 1}])
def test_model_copy_of_a_text_field_refuses_what_is_no_str(value: Any) -> None:
    """A str is stored as it is (nothing about it could be refused); anything else is
    still asked of pydantic, and refused with our error."""
    with pytest.raises(InvalidRequest):
        ORDER.model_copy(update={"idempotency_key": value})


def test_model_copy_of_a_text_field_makes_what_the_constructor_makes() -> None:
    keyed = ORDER.model_copy(update={"idempotency_key": "k-1"})
    made = Order(**{**ORDER.model_dump(), "idempotency_key": "k-1"})
    assert keyed == made
    assert keyed.model_dump_json() == made.model_dump_json()
    assert keyed.model_fields_set == ORDER.model_fields_set | {"idempotency_key"}
    assert "idempotency_key" not in ORDER.model_fields_set
    # Only fields a plain str is valid for: never one a validator or constraint checks.
    assert {"idempotency_key", "client_order_id", "symbol"} <= Order._any_text
    assert "quantity" not in Order._any_text


# --- a LIMIT order without a time in force --------------------------------------------------


def test_limit_order_without_time_in_force_is_placed_as_gtc(
    sim: Simulator, server: HttpsServer, key: ApiKey
) -> None:
    orders = [
        OrderRequest(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01", price="60000"),
        LimitOrder(
            symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000", time_in_force=None
        ),
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000").model_copy(
            update={"time_in_force": None, "quantity": "0.02"}
        ),
    ]
    with Client(key, journal=":memory:", **_pinned(server)) as client:
        for n, order in enumerate(orders):
            placed = client.place_order(order, idempotency_key=f"no-tif-{n}")  # was -1102
            assert order.time_in_force is TimeInForce.GTC
            assert placed.status is OrderStatus.NEW
            assert placed.time_in_force is TimeInForce.GTC
    assert -1102 not in sim.dialect.stats.rejections


def test_simulator_refuses_a_limit_order_without_time_in_force_as_binance_does(
    sim: Simulator, key: ApiKey
) -> None:
    """The control for the test above: the venue side does refuse one (-1102)."""
    request = BINANCE.prepare(
        BINANCE.endpoints[Op.PLACE_ORDER],
        [
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("quantity", "0.01"),
            ("price", "60000"),
            ("newClientOrderId", "no-tif"),
        ],
        key_id=key.key_id,
        signer=BINANCE.signer(key),
        timestamp_ms=sim.dialect.now_ms(),
    )
    headers = {name.lower(): value for name, value in request.headers}
    answer = sim.handle(request.method, request.target, headers, request.body)
    assert answer.status == 400
    assert json.loads(answer.body)["code"] == -1102


def test_market_order_with_time_in_force_is_refused_locally() -> None:
    with pytest.raises(InvalidRequest, match="time_in_force"):
        OrderRequest(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", time_in_force="GTC"
        )
    assert MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.01").time_in_force is None


# --- an unreadable 200 to an order that was placed ------------------------------------------

_ROOMY_KRAKEN = [
    RateLimit(API, 1.0, 1000),
    RateLimit(ORDERS, 1.0, 1000),
    RateLimit(PUBLIC, 1.0, 1000),
]


def _venue_client(sim: Simulator, server: HttpsServer, venue: str) -> tuple[Client, str, str]:
    """A pinned client of ``venue`` on the simulator, the symbol it trades, and the path
    its orders are posted to."""
    options: dict[str, Any] = {"journal": ":memory:", "settings": FAST, **_pinned(server)}
    if venue in ("binance", "ccxt:binance"):
        made = sim.create_key()
        symbol, path, options["recv_window_ms"] = "BTCUSDT", "/api/v3/order", 500
    else:
        made = sim.create_key(venue="kraken", balances={"USDT": Decimal(100_000)})
        symbol, path, options["recv_window_ms"] = "XBTUSDT", "/0/private/AddOrder", 2000
        options["limiter"] = RateLimiter(_ROOMY_KRAKEN)
    if venue.startswith("ccxt:"):
        from securetrade.venues.ccxt.venue import COST

        made = ApiKey(
            venue,
            made.key_id,
            made.secret,
            scopes=made.scopes,
            kind=made.kind,
            environment=made.environment,
        )
        symbol = "BTC/USDT"
        options["limiter"] = RateLimiter([RateLimit(COST, 1.0, 1_000_000)])
    return Client(made, **options), symbol, path


_NEEDS_CCXT = pytest.mark.skipif(importlib.util.find_spec("ccxt") is None, reason="needs ccxt")
VENUES = [
    "binance",
    "kraken",
    pytest.param("ccxt:binance", marks=_NEEDS_CCXT),
    pytest.param("ccxt:kraken", marks=_NEEDS_CCXT),
]


@pytest.mark.parametrize("kind", ["garbled_after", "html_after"])
@pytest.mark.parametrize("venue", VENUES)
def test_unreadable_200_to_a_placed_order_is_resolved_never_refused(
    sim: Simulator, server: HttpsServer, venue: str, kind: str
) -> None:
    """Before: ccxt:binance raised InvalidRequest ("nothing was sent"), Kraken raised
    VenueRejected ("certainly not executed") and Binance an AmbiguousOutcome the layer did
    not resolve, each while the order rested at the venue."""
    client, symbol, path = _venue_client(sim, server, venue)
    with client:
        client.instruments()
        sim.faults.inject(kind, method="POST", path=path)
        placed = client.place_order(
            LimitOrder(symbol=symbol, side="BUY", quantity="0.01", price="60000"),
            idempotency_key=f"unreadable-{kind}",
        )
        assert sim.faults.fired == [(kind, "POST", path)]
        assert placed.status is OrderStatus.NEW
        with sim.market.lock:
            held = [o for o in sim.market.orders.values() if o.client_order_id]
        assert [o.client_order_id for o in held] == [placed.client_order_id]  # exactly one
        assert client.unresolved() == []


def test_unreadable_200_to_an_order_lookup_is_read_again(
    sim: Simulator, server: HttpsServer
) -> None:
    """The answer lost, then the lookup's answer garbled: the lookup is asked again."""
    client, symbol, path = _venue_client(sim, server, "binance")
    with client:
        sim.faults.inject("drop_response", method="POST", path=path)
        sim.faults.inject("garbled_after", method="GET", path=path)
        placed = client.place_order(
            LimitOrder(symbol=symbol, side="BUY", quantity="0.01", price="60000"),
            idempotency_key="lookup-garbled",
        )
        assert ("garbled_after", "GET", path) in sim.faults.fired
        assert placed.status is OrderStatus.NEW
        assert len(sim.market.orders) == 1


@pytest.mark.parametrize("body", [b"<html><body>OK</body></html>", b'{"orderId": 1, "sym', b""])
@pytest.mark.parametrize("venue", [BINANCE, KRAKEN], ids=["binance", "kraken"])
def test_unreadable_200_answer_is_ambiguous_for_every_order_operation(
    venue: Any, body: bytes
) -> None:
    for op in (Op.PLACE_ORDER, Op.GET_ORDER):
        outcome = venue.interpret(venue.endpoints[op], HttpResponse(200, (), body))
        assert outcome.verdict is Verdict.AMBIGUOUS, (op, body)
        assert isinstance(outcome.error, AmbiguousOutcome)


def test_binance_order_answer_of_another_shape_is_ambiguous() -> None:
    for payload in (b"{}", b"[]", b'{"symbol": "BTCUSDT"}'):
        endpoint = BINANCE.endpoints[Op.PLACE_ORDER]
        outcome = BINANCE.interpret(endpoint, HttpResponse(200, (), payload))
        assert outcome.verdict is Verdict.AMBIGUOUS
    listed = BINANCE.interpret(BINANCE.endpoints[Op.OPEN_ORDERS], HttpResponse(200, (), b"{}"))
    assert listed.verdict is Verdict.AMBIGUOUS


def test_kraken_lookup_without_a_result_is_ambiguous_not_order_not_found() -> None:
    outcome = KRAKEN.interpret(
        KRAKEN.endpoints[Op.GET_ORDER], HttpResponse(200, (), b'{"error":[]}')
    )
    assert outcome.verdict is Verdict.AMBIGUOUS


# --- ccxt: readings of garbage ---------------------------------------------------------------


def test_ccxt_parse_server_time_of_garbage_is_ambiguous_not_a_type_error() -> None:
    pytest.importorskip("ccxt")
    from securetrade.venues.ccxt import CcxtVenue

    venue = CcxtVenue("binance")
    for payload in (None, {"serverTime": 1}, [1], "soon", True):
        with pytest.raises(AmbiguousOutcome):
            venue.parse_server_time(payload)
    assert venue.parse_server_time(1_700_000_000_000) == 1_700_000_000_000


def test_ccxt_parse_order_of_an_order_of_nones_is_ambiguous_not_invalid_request() -> None:
    pytest.importorskip("ccxt")
    from securetrade.venues.ccxt import CcxtVenue

    venue = CcxtVenue("binance")
    nones = {"id": None, "symbol": "BTC/USDT", "side": None, "status": None, "amount": None}
    for payload in (nones, None, "<html>", {"symbol": "BTC/USDT"}):
        with pytest.raises(AmbiguousOutcome):
            venue.parse_order(payload)
    for payload in ("<html>", {"open": []}, None):
        with pytest.raises(AmbiguousOutcome):
            venue.parse_orders(payload)


def test_ccxt_refusal_read_from_an_unparseable_200_is_ambiguous() -> None:
    ccxt = pytest.importorskip("ccxt")
    from securetrade.venues.ccxt.errors import outcome_of

    guessed = outcome_of(ccxt.InvalidOrder("Invalid order"), 200, {}, b"<html>Invalid order", "x")
    assert guessed.verdict is Verdict.AMBIGUOUS
    said = outcome_of(ccxt.InvalidOrder("Invalid order"), 200, {}, b'{"error":["EOrder"]}', "x")
    assert said.verdict is Verdict.REJECTED  # a readable refusal stays a refusal
    assert isinstance(said.error, VenueRejected)


def test_binance_order_types_read_back_as_placed_and_garbage_is_ambiguous() -> None:
    from securetrade.models import OrderType
    from securetrade.venues.binance import BinanceSpot

    venue = BinanceSpot()
    base = {"symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "c-1",
            "price": "100", "stopPrice": "90", "origQty": "1", "executedQty": "0",
            "status": "NEW", "timeInForce": "GTC", "side": "BUY"}  # fmt: skip
    for kind in OrderType:
        assert venue.parse_order({**base, "type": kind.value}).type is kind
    assert venue.parse_order({**base, "type": "LIMIT_MAKER"}).type is OrderType.LIMIT
    oco_leg = {**base, "type": "LIMIT_MAKER", "orderListId": 7}
    assert venue.parse_order(oco_leg).type is OrderType.OCO
    for garbage in ("FOO", ["LIMIT"], None, 5, ""):
        with pytest.raises(AmbiguousOutcome):
            venue.parse_order({**base, "type": garbage})
