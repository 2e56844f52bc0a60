"""Fuzz targets: arbitrary bytes in, only securetrade's typed errors out.

One target per attack surface that reads data we do not control:

* :func:`encoders`: the canonical query and JSON encoders. Whatever the caller passes,
  the result decodes to exactly the given fields, or the call raises InvalidRequest.
* :func:`parsers`: the Binance and Kraken answer readers (``interpret`` and the
  ``parse_*`` functions). A venue, a proxy or an attacker in front of one may answer
  anything; the reader returns an outcome or raises a SecureTradeError, never a KeyError.
* :func:`verifier`: the inbound-message verifier. Anyone can send it anything; it
  accepts a valid message or raises InboundRejected.

Both the hypothesis property tests (``test_fuzz_properties.py``, in every test run) and the
atheris harnesses (``fuzz_*.py``, run locally) drive these same functions, so the contract
is written once. A target raises :class:`UntypedError` when the code under test breaks the
contract; any other exception escaping a target is a bug in the code under test as well.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from securetrade.errors import InboundRejected, InvalidRequest, SecureTradeError
from securetrade.keys import Secret
from securetrade.signing.encoding import encode_json, encode_query
from securetrade.transport.base import HttpResponse
from securetrade.venues.alpaca import Alpaca
from securetrade.venues.base import Outcome, Verdict
from securetrade.venues.binance import BINANCE
from securetrade.venues.kraken import KrakenSpot
from securetrade.venues.oanda import Oanda
from securetrade.verify import InboundKey, MemoryReplayStore, MessageSigner, Verifier

__all__ = ["TARGETS", "UntypedError", "encoders", "parse_payload", "parsers", "verifier"]

KRAKEN = KrakenSpot()
ALPACA, OANDA = Alpaca(), Oanda()  # the brokers (their own objects: no shared state)
VENUES = (BINANCE, KRAKEN, ALPACA, OANDA)
# OANDA reads a lookup's answer against what it asked: by client id, and a scan of the
# account's transactions from a cursor.
_ASKED = (
    [("client_order_id", "st" + "0" * 30)],
    [("client_order_id", "st" + "0" * 30), ("~since", "0")],
    [("order_id", "7")],
)


class UntypedError(AssertionError):
    """The code under test let something other than its typed errors escape."""


def _split(data: bytes, parts: int) -> list[bytes]:
    """``data`` cut at NUL bytes into exactly ``parts`` pieces (padded with b"")."""
    pieces = data.split(b"\x00", parts - 1)
    return pieces + [b""] * (parts - len(pieces))


def _text(raw: bytes) -> str:
    """Bytes as text, keeping invalid UTF-8 as lone surrogates (which encoders must refuse)."""
    return raw.decode("utf-8", "surrogateescape")


def _only(allowed: tuple[type[BaseException], ...], call: Callable[[], Any]) -> Any:
    """Run ``call``; an exception outside ``allowed`` becomes UntypedError."""
    try:
        return call()
    except allowed:
        return None
    except Exception as exc:
        raise UntypedError(f"{type(exc).__name__}: {exc!r}"[:500]) from exc


# --- encoders ------------------------------------------------------------------------------


def encoders(data: bytes) -> None:
    """Query pairs and JSON fields from ``data``: exact round trip or InvalidRequest."""
    pieces = [_text(p) for p in data.split(b"\x00")]
    pairs = list(zip(pieces[::2], pieces[1::2], strict=False))
    query = _only((InvalidRequest,), lambda: encode_query(pairs))
    if query is not None:
        decoded = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        if decoded != pairs:
            raise UntypedError(f"query {query!r} decodes to {decoded!r}, not {pairs!r}")
    fields = {key: Decimal(len(value)) if key[:1] == "#" else value for key, value in pairs}
    check_json(fields)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return
    if isinstance(document, dict):
        check_json(document)


def check_json(fields: dict[str, Any]) -> None:
    """encode_json of ``fields`` reads back as the same fields (money as text), or refuses."""
    body = _only((InvalidRequest,), lambda: encode_json(fields))
    if body is None:
        return
    if json.loads(body) != _as_sent(fields):
        raise UntypedError(f"{body!r} does not read back as {fields!r}")


def _as_sent(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _as_sent(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_sent(v) for v in value]
    return value


# --- venue answers -------------------------------------------------------------------------


def parsers(data: bytes) -> None:
    """``data`` as an HTTP answer to every endpoint of each venue.

    Layout: two bytes of status (big-endian, modulo 600), then Retry-After and body
    separated by the first NUL byte.
    """
    status = int.from_bytes(data[:2].ljust(2, b"\x00"), "big") % 600
    retry_after, body = _split(data[2:], 2)
    headers = {"retry-after": _text(retry_after)} if retry_after else {}
    response = HttpResponse(status, headers, body)
    for venue in VENUES:
        for endpoint in venue.endpoints.values():
            outcome = _only((), lambda e=endpoint, v=venue: v.interpret(e, response))
            _check_outcome(outcome)
    for endpoint in OANDA.endpoints.values():
        for asked in _ASKED:
            outcome = _only(
                (),
                lambda e=endpoint, a=asked: OANDA.interpret_asked(
                    e, a, response, key_id="101-004-1-001"
                ),
            )
            _check_outcome(outcome)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return
    parse_payload(payload)


def _check_outcome(outcome: Outcome) -> None:
    if outcome.verdict is not Verdict.OK and not isinstance(outcome.error, SecureTradeError):
        raise UntypedError(f"a {outcome.verdict.value} outcome without a typed error")
    wait = outcome.retry_after
    if wait is not None and not (math.isfinite(wait) and wait >= 0):
        raise UntypedError(f"retry_after {wait!r} is not a usable pause")


PARSERS = (
    "parse_order",
    "parse_orders",
    "parse_balances",
    "parse_instruments",
    "parse_server_time",
    "parse_price",
    "parse_rate_limits",
    "parse_withdrawal",
)


def parse_payload(payload: Any) -> None:
    """Every parser of each venue on one decoded payload: a result or a SecureTradeError."""
    for venue in VENUES:
        for name in PARSERS:
            parse = getattr(venue, name)
            result = _only((SecureTradeError,), lambda p=parse: p(payload))
            if isinstance(result, Decimal) and not result.is_finite():
                raise UntypedError(f"{venue.name}.{name} returned {result!r}")


# --- inbound verifier ----------------------------------------------------------------------

_SECRET = Secret(secrets.token_bytes(32))  # fresh per run: nothing to leak or to scan
_KEY_ID = "fuzz-sender"
_NOW_MS = 1_700_000_000_000
_SIGNER = MessageSigner(_KEY_ID, _SECRET, now_ms=lambda: _NOW_MS)
_INBOUND = InboundKey.hmac(_KEY_ID, _SECRET, name="fuzz")


def verifier(data: bytes) -> None:
    """A message built from ``data`` (raw, or validly signed then altered): rejected or valid.

    The first byte picks how: odd means take method, target, headers and body from the
    data as they are; even means sign a message properly, then replace one part with data.
    """
    mode = data[:1]
    method, target, name, value, body = (_text(p) for p in _split(data[1:], 5))
    check = Verifier([_INBOUND], replay=MemoryReplayStore(), now_ms=lambda: _NOW_MS)
    if mode and mode[0] % 2:
        headers = [(name, value), ("X-ST-Key", _KEY_ID), ("x-st-timestamp", str(_NOW_MS))]
        _only(
            (InboundRejected,),
            lambda: check.verify(method, target, headers, body.encode("utf-8", "surrogateescape")),
        )
        return
    signed = _SIGNER.headers("POST", "/signal", b"{}", nonce="n" * 16 + "fuzz")
    part = mode[0] % 6 if mode else 0
    message = ["POST", "/signal", dict(signed), b"{}"]
    keys = sorted(signed)
    if part == 0:
        message[0] = method
    elif part == 1:
        message[1] = target
    elif part == 5:
        message[3] = body.encode("utf-8", "surrogateescape")
    else:
        message[2][keys[part % len(keys)]] = value  # type: ignore[index]
    accepted = _only(
        (InboundRejected,),
        lambda: check.verify(message[0], message[1], message[2], message[3]),  # type: ignore[arg-type]
    )
    sent_headers = {k: v.strip() for k, v in message[2].items()}  # type: ignore[union-attr]
    changed = [message[0], message[1], sent_headers, message[3]] != [
        "POST",
        "/signal",
        signed,
        b"{}",
    ]
    if accepted is not None and changed:
        raise UntypedError(f"an altered message was accepted: {message!r}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "encoders": encoders,
    "parsers": parsers,
    "verifier": verifier,
}
