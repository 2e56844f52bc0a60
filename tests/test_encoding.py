"""Canonical encodings: whatever text is put in whatever field, the venue decodes exactly the
fields we meant, or the input is refused with InvalidRequest before anything is signed.

The venue side is modelled by strict standard decoders: form/query text is split on ``&``
and ``=`` and percent-decoded as UTF-8 (what Java's URLDecoder and Go's url.ParseQuery do);
JSON is decoded as strict UTF-8 JSON with duplicate keys treated as an error.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from securetrade.errors import InvalidRequest
from securetrade.signing import encode_json, encode_query, with_query
from securetrade.signing.encoding import escape

# Any code point, lone surrogates included, plus a dense mix of the characters that could
# split a parameter, end a string or confuse a decoder.
_NASTY = [*"&=+%#?;/ \t\r\n\x00\"\\{}[]:,'", "\ud800", "\udfff", "é", "\uff11", "\N{ROCKET}"]
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.text(st.sampled_from(_NASTY)),
    st.lists(st.sampled_from([*_NASTY, "a", "1", "%2", "%41", "\\u0041"]), min_size=1).map("".join),
)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


_BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(st.sampled_from(_BASE64_ALPHABET)),
        st.text(st.sampled_from([*_BASE64_ALPHABET, ".", "_", "~", "-"])),
        st.text(
            st.sampled_from([*_BASE64_ALPHABET, *(c for c in _NASTY if not _has_surrogate(c))])
        ),
    )
)
@example("q83vEjRWeJA+/w==")  # a base64 signature's three escapes
@example("0.001")  # unreserved, not alphanumeric
@example("ab+c.d")  # base64 and unreserved mixed: neither fast path
def test_escape_is_quote_on_every_fast_path(text: str) -> None:
    assert escape(text) == quote(text, safe="")


# --- query / form ---------------------------------------------------------------------------------


def venue_parse_query(text: str) -> list[tuple[str, str]]:
    """How a venue reads a query or form body: strict UTF-8 percent-decoding."""
    if not text:
        return []
    return parse_qsl(
        text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict"
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(hostile_text.filter(bool), hostile_text), max_size=6))
@example([("symbol", "BTCUSDT&price=0"), ("side", "BUY")])
@example([("a", "\ud800")])
@example([("\udfff", "x")])
def test_query_decodes_to_exactly_the_given_pairs_or_refuses(
    pairs: list[tuple[str, str]],
) -> None:
    must_refuse = any(_has_surrogate(k) or _has_surrogate(v) for k, v in pairs)
    try:
        encoded = encode_query(pairs)
    except InvalidRequest:
        assert must_refuse
        return
    assert not must_refuse
    assert encoded.isascii()
    assert re.fullmatch(r"[A-Za-z0-9._~%=&-]*", encoded)
    assert venue_parse_query(encoded) == pairs


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}", fullmatch=True),
    st.lists(st.tuples(hostile_text.filter(bool), hostile_text), max_size=4),
)
def test_signed_path_keeps_the_path_and_the_pairs(path: str, pairs: list[tuple[str, str]]) -> None:
    """OKX and KuCoin sign ``path?query``: a value can neither extend the path nor the query."""
    try:
        target = with_query(path, pairs)
    except InvalidRequest:
        assert any(_has_surrogate(k) or _has_surrogate(v) for k, v in pairs)
        return
    parts = urlsplit(target)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("", "", path, "")
    assert venue_parse_query(parts.query) == pairs


def test_query_refuses_non_strings() -> None:
    with pytest.raises(InvalidRequest):
        encode_query([("quantity", Decimal("1"))])  # type: ignore[list-item]
    with pytest.raises(InvalidRequest):  # bytes answer isalnum() too: still not text
        encode_query([("symbol", b"BTCUSDT")])  # type: ignore[list-item]


def test_letters_and_digits_beyond_ascii_are_percent_encoded() -> None:
    """The letters-and-digits shortcut is for ASCII alone: a fullwidth digit or an accented
    letter is a letter or digit to Python, but must travel percent-encoded."""
    assert encode_query([("a", "BTC1"), ("b", "\uff11"), ("c", "caf\u00e9")]) == (
        "a=BTC1&b=%EF%BC%91&c=caf%C3%A9"
    )


# --- JSON -----------------------------------------------------------------------------------------


def venue_parse_json(body: bytes) -> Any:
    """How a venue reads a JSON body: strict UTF-8, strict JSON, no duplicate keys."""

    def no_duplicates(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        assert len(keys) == len(set(keys)), "duplicate key on the wire"
        return dict(items)

    return json.loads(body.decode("utf-8", errors="strict"), object_pairs_hook=no_duplicates)


scalars = st.one_of(
    hostile_text,
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)
    ),
    max_leaves=12,
)


def _intended(value: Any) -> Any:
    """What the venue should decode for ``value``: Decimals become their plain text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _intended(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_intended(v) for v in value]
    return value


def _any_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _has_surrogate(value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _any_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_any_surrogate(v) for v in value)
    return False


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(hostile_text, values, max_size=6))
@example({"instId": 'BTC-USDT","sz":"1000'})
@example({"clOrdId": "\ud800"})
@example({"px": Decimal("1E+3"), "sz": Decimal("0.00000001")})
def test_json_decodes_to_exactly_the_given_fields_or_refuses(fields: dict[str, Any]) -> None:
    try:
        body = encode_json(fields)
    except InvalidRequest:
        assert _any_surrogate(fields)
        return
    assert not _any_surrogate(fields)
    assert body.isascii()
    assert not re.search(rb"[\x00-\x1f\x7f]", body)  # controls only as \u escapes
    decoded = venue_parse_json(body)
    assert decoded == _intended(fields)
    assert list(decoded) == list(fields)  # the caller's key order is the wire order


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_json_money_is_plain_text_that_reads_back_exactly(amount: Decimal) -> None:
    text = venue_parse_json(encode_json({"px": amount}))["px"]
    assert isinstance(text, str)
    assert "E" not in text.upper()
    assert Decimal(text) == amount


@pytest.mark.parametrize(
    "fields",
    [
        [("sz", "1"), ("sz", "2")],
        {"px": 1.5},
        {"px": Decimal("NaN")},
        {"px": Decimal("Infinity")},
        {"nested": {"x": object()}},
        {"nested": [{"a": 1.0}]},
        [(1, "x")],
    ],
)
def test_json_refuses_what_it_cannot_send_faithfully(fields: Any) -> None:
    with pytest.raises(InvalidRequest):
        encode_json(fields)


def test_json_is_compact_and_ordered() -> None:
    """The exact bytes matter: the signature covers them (OKX, KuCoin, Bybit)."""
    body = encode_json([("instId", "BTC-USDT"), ("lever", "5"), ("mgnMode", "isolated")])
    assert body == b'{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'
    assert encode_json({"s": "é\N{ROCKET}"}) == b'{"s":"\\u00e9\\ud83d\\ude80"}'
