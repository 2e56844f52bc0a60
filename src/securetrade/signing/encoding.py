"""Canonical encoders: the exact bytes a venue will decode into exactly the given fields.

Two wire forms cover every signed dialect we speak:

* **query / form** (:func:`encode_query`): Binance query and form bodies, Kraken form
  bodies, the query strings OKX, KuCoin and Bybit sign on GET. Every key and value is
  percent-encoded (UTF-8) unless it consists only of RFC 3986 unreserved characters, so
  no value can introduce a ``&``, ``=`` or ``+`` of its own.
* **JSON** (:func:`encode_json`): OKX, KuCoin, Bybit, Coinbase and Kraken JSON bodies.
  Compact, ASCII-only (``\\uXXXX`` escapes), keys in the caller's order, money as strings.

Text a venue could decode differently from us (a lone UTF-16 surrogate, which Go and Java
decoders replace) is refused with :class:`~securetrade.errors.InvalidRequest`, as are
floats (money is Decimal) and duplicate keys. Nothing is sent for refused input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from .._checks import plain_decimal, shown
from ..errors import InvalidRequest

__all__ = ["encode_json", "encode_query", "escape", "is_plain", "with_query"]

_PLAIN = re.compile(r"[A-Za-z0-9._~-]*").fullmatch
_SURROGATE = re.compile("[\ud800-\udfff]").search
# Base64 text (Ed25519 and RSA signatures) needs only three escapes; replace() is ~20x
# faster than quote() on it, and this runs once per signed request. Its alphabet:
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


# The unreserved characters: text made of these alone goes out as it is.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"


def is_plain(text: str) -> bool:
    """True when ``text`` needs no percent-encoding."""
    if not isinstance(text, str):
        raise InvalidRequest("is_plain takes text (a str)")
    return _PLAIN(text) is not None


def escape(text: str) -> str:
    """``text`` percent-encoded for a query string (unreserved characters stay as they are)."""
    # ASCII letters and digits alone (symbols, sides, timestamps): two flag checks in C,
    # a tenth of the tests below.
    if text.isascii():
        if text.isalnum():
            return text
        # Base64 (Ed25519 and RSA signatures, once per signed request) first: one C pass
        # of bytes.translate tells it, where str.strip and a regex took two; its letters
        # and digits stay as they are, so replacing the other three is the whole escape.
        raw = text.encode("ascii")
        if not raw.translate(None, _BASE64_BYTES):
            return text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        if not raw.translate(None, _UNRESERVED_BYTES):
            return text
    return quote(text, safe="")


# Parameter names come from a venue's small fixed vocabulary: their "name=" prefixes are
# remembered (bounded: a caller's own names beyond it are encoded each time).
_NAMES: dict[str, str] = {}
_NAMES_MAX = 512


def _prefix(name: str) -> str:
    known = _NAMES.get(name)
    if known is None:
        known = escape(name) + "="
        if len(_NAMES) < _NAMES_MAX and type(name) is str:
            _NAMES[name] = known
    return known


# The unreserved characters as bytes: what bytes.translate deletes to tell, in one C call
# over all the values of a query, that none needs percent-encoding.
_UNRESERVED_BYTES = _UNRESERVED.encode("ascii")


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """``k=v&k=v`` with percent-encoding applied only where a character needs it."""
    try:
        names = _NAMES
        if type(pairs) is list:  # a signed order's ten values, all plain: one test for all
            values = "".join([v for _, v in pairs])
            if values.isascii() and not values.encode("ascii").translate(None, _UNRESERVED_BYTES):
                return "&".join([(names.get(k) or _prefix(k)) + v for k, v in pairs])
        # escape()'s own first test inline: most values are letters and digits alone, and
        # a call per value is most of what encoding them costs.
        return "&".join(
            [
                (names.get(k) or _prefix(k)) + (v if v.isascii() and v.isalnum() else escape(v))
                for k, v in pairs
            ]
        )
    except UnicodeEncodeError:
        raise InvalidRequest("a parameter holds a lone surrogate, which is not text") from None
    except (TypeError, AttributeError, ValueError):
        raise InvalidRequest("query parameters must be (name, value) pairs of strings") from None


def with_query(path: str, pairs: Iterable[tuple[str, str]]) -> str:
    """``path?query`` (or ``path`` alone when there are no pairs): the signed request path."""
    if type(path) is not str:  # formatted below: any object would pass as its text
        raise InvalidRequest("path must be the request path as a str, such as /api/v3/order")
    query = encode_query(pairs)
    return f"{path}?{query}" if query else path


def _wire(value: Any, where: str) -> Any:
    """The JSON-safe form of one value, or InvalidRequest."""
    if isinstance(value, str):
        if _SURROGATE(value):
            raise InvalidRequest(f"{where} holds a lone surrogate, which is not text")
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidRequest(f"{where} is not a finite number")
        return plain_decimal(value)
    if isinstance(value, float):
        raise InvalidRequest(f"{where} is a float; money and sizes travel as Decimal or str")
    if isinstance(value, Mapping):
        return _object(value.items(), where)
    if isinstance(value, (list, tuple)):
        return [_wire(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidRequest(f"{where} has type {type(value).__name__}, which JSON cannot carry")


def _object(items: Iterable[tuple[Any, Any]], where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str):
            raise InvalidRequest(f"{where} has a non-string key")
        if _SURROGATE(key):
            raise InvalidRequest(f"{where} has a key with a lone surrogate")
        if key in result:
            raise InvalidRequest(f"{where} repeats the key {shown(key)}")
        result[key] = _wire(value, f"{where}.{key}")
    return result


def encode_json(fields: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> bytes:
    """The JSON body to send and sign: compact, ASCII, keys in the given order.

    Values may be str, int, bool, None, Decimal (sent as plain-notation text), and lists or
    mappings of those. Decoding the result with any conforming JSON parser gives exactly
    the given fields.
    """
    if not isinstance(fields, Mapping) and (
        isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable)
    ):
        raise InvalidRequest("body fields must be a mapping or a list of (name, value) pairs")
    items = fields.items() if isinstance(fields, Mapping) else fields
    try:
        body = _object(items, "body")
    except InvalidRequest:
        raise
    except (TypeError, ValueError):  # an item that is not a (name, value) pair
        raise InvalidRequest(
            "body fields must be a mapping or a list of (name, value) pairs"
        ) from None
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
