"""What a stream frame costs on its way to the consumer: the same reading as before, with
less work per frame (issue 22). Each test pins the result and, where it can, the work
that is no longer done."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from securetrade.errors import InvalidRequest
from securetrade.streams.kraken import KrakenStreams

_FRAMES: list[str | bytes] = [
    '{"channel":"executions","type":"update","data":[{"order_qty": 0.00100000, '
    '"last_price": 30000.10, "cum_qty": 1e-8, "trade_id": 5000}],"sequence":2}',
    '  {"channel": "heartbeat"}  ',
    '{"big": 123456789012345678901234567890.000000000000000001}',
    b'{"channel":"executions","data":[{"qty": 0.1}]}',
    '{"channel":"executions","data":[{"qty": 0.1}]}'.encode("utf-16"),
    "\ufeff{}",  # json.loads refuses a BOM in text: so does decode
    "not json",
    '{"a": 1} trailing',
    "",
    b"\xff\xfe\x00",
]


@pytest.mark.parametrize("text", _FRAMES)
def test_kraken_decode_reads_frames_as_json_loads_with_decimal_numbers(text: str | bytes) -> None:
    try:
        expected: Any = json.loads(text, parse_float=Decimal)
    except ValueError:
        expected = None
    assert KrakenStreams.decode(text) == expected


def test_kraken_decode_builds_no_json_decoder_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """``json.loads(text, parse_float=Decimal)`` makes a JSONDecoder (and its scanner) on
    every call: the dialect keeps one."""
    built = []
    original = json.JSONDecoder.__init__

    def counting(self: json.JSONDecoder, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(json.JSONDecoder, "__init__", counting)
    for _ in range(3):
        frame = KrakenStreams.decode('{"channel":"executions","data":[{"qty": 0.1}]}')
        assert frame == {"channel": "executions", "data": [{"qty": Decimal("0.1")}]}
    assert built == []


def test_kraken_decode_refuses_what_is_no_frame() -> None:
    with pytest.raises(InvalidRequest):
        KrakenStreams.decode(12)  # type: ignore[arg-type]


def _executions(sequence: int, *rows: dict[str, Any]) -> dict[str, Any]:
    return {"channel": "executions", "type": "update", "data": list(rows), "sequence": sequence}


def _whole(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "symbol": "BTC/USD", "side": "buy", "exec_type": "new",
            "order_qty": Decimal("1"), "cum_qty": Decimal(0), "order_status": "new",
            "cl_ord_id": f"c-{order_id}"}  # fmt: skip


def test_kraken_orders_last_fields_are_merged_and_the_least_recently_reported_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An update names only what changed: the order's other fields come from the last ones
    known; a trade's own fields are not kept for the next update; past the limit, the order
    reported least recently is forgotten (an update of it alone is then not whole)."""
    import securetrade.streams.kraken as kraken

    monkeypatch.setattr(kraken, "_KEEP_ORDERS", 2)
    dialect = KrakenStreams()
    dialect.parse(_executions(1, _whole("O1"), _whole("O2")))
    trade = {"order_id": "O1", "exec_type": "trade", "exec_id": "T1", "trade_id": 7,
             "last_qty": Decimal("0.4"), "last_price": Decimal("100.5"), "cost": Decimal(1),
             "fees": [{"asset": "USD", "qty": Decimal("0.01")}], "cum_qty": Decimal("0.4"),
             "order_status": "partially_filled"}  # fmt: skip
    (filled,) = dialect.parse(_executions(2, trade))  # O1 is now the most recent
    assert (filled.symbol, filled.client_order_id, filled.side) == ("BTC/USD", "c-O1", "BUY")
    assert (filled.trade_id, filled.last_quantity) == ("T1", Decimal("0.4"))
    assert filled.last_price == Decimal("100.5")
    assert filled.commission == Decimal("0.01")
    assert filled.status == "PARTIALLY_FILLED"
    dialect.parse(_executions(3, _whole("O3")))  # a third order: O2 is forgotten, not O1
    status = {"exec_type": "status", "order_status": "canceled"}
    (later,) = dialect.parse(_executions(4, {"order_id": "O1", **status}))
    assert (later.symbol, later.cumulative) == ("BTC/USD", Decimal("0.4"))
    assert later.status == "CANCELED"
    assert (later.trade_id, later.last_quantity, later.commission) == (None, 0, 0)
    assert dialect.parse(_executions(5, {"order_id": "O2", **status})) == []


@pytest.mark.parametrize(
    "value",
    [
        Decimal("0.001"),
        Decimal("-2"),
        Decimal("NaN"),
        Decimal("Infinity"),
        "1.5",
        3,
        "x",
        True,
        None,
        [1],
    ],
)
def test_kraken_numbers_read_as_to_decimal_reads_them(value: Any) -> None:
    from securetrade.models import to_decimal
    from securetrade.streams.kraken import _number

    try:
        expected: Any = to_decimal(value if isinstance(value, Decimal) else str(value), field="f")
    except InvalidRequest as exc:
        expected = str(exc)
    try:
        got: Any = _number(value, "f")
    except InvalidRequest as exc:
        got = str(exc)
    assert got == expected
    assert type(got) is type(expected)


def test_a_kraken_json_number_is_taken_as_decoded_without_another_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """decode reads JSON numbers as finite Decimals: one type check, not to_decimal's walk."""
    import securetrade.streams.kraken as kraken

    def refused(value: Any, *, field: str = "value") -> Decimal:
        raise AssertionError("to_decimal called for a decoded number")

    monkeypatch.setattr(kraken, "to_decimal", refused)
    assert kraken._number(Decimal("0.00100000"), "order_qty") == Decimal("0.001")


def test_a_kraken_trade_is_read_into_every_field_of_its_report() -> None:
    from securetrade.streams.dialects import ExecutionReport

    row = {**_whole("O9"), "exec_type": "trade", "exec_id": "T9", "trade_id": 3,
           "last_qty": Decimal("0.25"), "last_price": Decimal("101.5"), "cum_qty": Decimal("0.25"),
           "order_status": "partially_filled", "timestamp": "2026-12-07T21:00:00.123456Z",
           "fees": [{"asset": "USD", "qty": Decimal("0.01")},
                    {"asset": "USD", "qty": Decimal("0.002")}]}  # fmt: skip
    (report,) = KrakenStreams().parse(_executions(1, row))
    assert report == ExecutionReport(
        "BTC/USD", "O9", "c-O9", "BUY", "PARTIALLY_FILLED", "TRADE", Decimal(1),
        Decimal("0.25"), Decimal("0.25"), Decimal("101.5"), "T9", Decimal("0.012"), "USD",
        1796677200123,
    )  # fmt: skip


_MORE_FRAMES: list[str | bytes] = [
    *_FRAMES,
    '{"subscriptionId":0,"event":{"e":"executionReport","q":"0.001","t":5000}}',
    '{"a": 1}\n',  # a blank after the object: json.loads takes it
    '{"a": 1}{"b": 2}',  # two objects: json.loads refuses the second
    '{"a": [1, 2, {"b": null}], "c": "\\u00e9", "d": 1.5e3, "e": true}',
    '{"a": NaN, "b": Infinity}',
    '{"a": 1',
    '{"a": "\x01"}',  # a control character inside a string: refused (strict)
    "[1, 2]",
    '"text"',
    "{",
]


@pytest.mark.parametrize("text", _MORE_FRAMES)
def test_the_connectors_decode_reads_frames_as_json_loads(text: str | bytes) -> None:
    """The connector's decode calls json's C scanner directly for an object with no blank
    around it; whatever the frame, the result is json.loads' (None where it refuses)."""
    from securetrade.streams.connection import _decode

    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = None
    got = _decode(text)
    assert got == expected  # json's NaN is one float object: equal to itself here
    assert repr(got) == repr(expected)


def test_the_ledgers_events_are_the_frozen_events_the_constructors_build() -> None:
    """The ledger builds its events as unfrozen drafts turned into the event classes
    (events.draft_of): what comes out is the same event, frozen, equal and hashed alike."""
    import dataclasses

    from securetrade.streams.dialects import ExecutionReport
    from securetrade.streams.events import FillEvent, OrderUpdate
    from securetrade.streams.ledger import Ledger

    ledger = Ledger("binance")
    report = ExecutionReport(
        "BTCUSDT", "17", "cid-1", "BUY", "FILLED", "TRADE", Decimal("0.001"),
        Decimal("0.001"), Decimal("0.001"), Decimal("30000"), "5000", Decimal("0.03"),
        "USDT", 1765000000000,
    )  # fmt: skip
    tracked, unknown = ledger.new_tracked("17", "BTCUSDT", "cid-1", "BUY", Decimal("0.001"),
                                          1765000000000, True)  # fmt: skip
    assert unknown is None
    fill = ledger.fill_event(report, tracked)
    update = ledger.update_event(report, tracked)
    expected_fill = FillEvent(
        "binance", "BTCUSDT", "17", "cid-1", "5000", "BUY", Decimal("30000"),
        Decimal("0.001"), Decimal("0.03"), "USDT", 1765000000000, True, False,
    )  # fmt: skip
    expected_update = OrderUpdate(
        "binance", "BTCUSDT", "17", "cid-1", "BUY", "FILLED", Decimal("0.001"),
        Decimal("0.001"), 1765000000000, True, False,
    )  # fmt: skip
    for got, expected in ((fill, expected_fill), (update, expected_update)):
        assert type(got) is type(expected)
        assert got == expected
        assert hash(got) == hash(expected)
        assert repr(got) == repr(expected)
        assert dataclasses.asdict(got) == dataclasses.asdict(expected)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.venue = "other"  # type: ignore[misc]
        assert dataclasses.replace(got, recovered=True).recovered is True
