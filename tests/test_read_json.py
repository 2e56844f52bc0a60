"""read_json: a venue's answer reads as json.loads reads it, whichever parser read it.

read_json asks pydantic-core's parser first (fewer instructions per answer) and json for
what that parser refuses; these pin that nothing readable became unreadable, and that
every value comes out as json.loads makes it (floats, huge integers, NaN, duplicate keys).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securetrade.transport.base import HttpResponse
from securetrade.venues.base import Op, Verdict, read_json
from securetrade.venues.binance import BINANCE

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "1e999", "0.1", "\u00e9", "\U0001d11e"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (NaN equal to NaN, -0.0 not to 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and repr(a) == repr(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(_values, st.booleans())
def test_every_document_reads_as_json_loads_reads_it(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    assert _same(read_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2, "b": -0.0, "c": 123456789012345678901234567890}',
        b"[NaN, Infinity, -Infinity, 1e400, 0.1e-400, 5e-324, 1.7976931348623157e308]",
        b' {"price": "70000.00", "qty": 0.1} \n',
    ],
)
def test_numbers_and_duplicate_keys_read_as_json_reads_them(body: bytes) -> None:
    assert _same(read_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"msg": "\\ud800 lone surrogate escape"}',  # pydantic-core refuses it
        b"[" * 400 + b"]" * 400,  # deeper than pydantic-core's limit, within json's
        '{"code": -2010, "msg": "utf-16"}'.encode("utf-16"),  # json detects the encoding
        b'\xef\xbb\xbf{"bom": true}',  # a UTF-8 byte order mark
    ],
)
def test_what_pydantic_core_refuses_is_still_read_by_json(body: bytes) -> None:
    """Without json's second look these answers would read as not JSON (and a 4xx venue
    error as an unknown one): the fallback keeps them readable as before."""
    assert read_json(body) is not None
    assert _same(read_json(body), json.loads(body))


@pytest.mark.parametrize("body", [b"", b"not json", b"[1] trailing", b"[" * 100_000, b'"\xff"'])
def test_what_neither_reads_is_no_answer(body: bytes) -> None:
    assert read_json(body) is None
    outcome = BINANCE.interpret(BINANCE.endpoints[Op.PLACE_ORDER], HttpResponse(200, {}, body))
    assert outcome.verdict is Verdict.AMBIGUOUS
