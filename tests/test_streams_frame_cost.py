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
