"""ccxt's exceptions, sorted into our three outcomes.

ccxt raises its exceptions from the answer it was given (``handle_errors`` and the HTTP
status table), so every exception here comes with a response in hand: the request was
delivered. What remains to decide is whether the venue said no (*rejected*), certainly did
not act (*retryable*), or may have acted (*ambiguous*). Failures before or during the
exchange of bytes never reach this table: the transport reports them (pin failures as
:class:`~securetrade.errors.PinMismatch`, connections never made as not sent, anything
after the first byte as ambiguous).

The rules are checked in order, most specific first; the first ccxt class that the
exception is an instance of decides.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    DuplicateOrder,
    InsufficientFunds,
    IpBanned,
    OrderNotFound,
    RateLimited,
    SecureTradeError,
    TimestampRejected,
    VenueRejected,
)
from ...transport.redaction import redact_query
from ..base import ErrorRule, Outcome, Verdict

__all__ = ["ERRORS", "outcome_of"]

# ccxt class name -> what it means for an order that was delivered.
ERRORS: dict[str, ErrorRule] = {
    "DuplicateOrderId": (Verdict.REJECTED, DuplicateOrder),
    "OrderNotFound": (Verdict.REJECTED, OrderNotFound),
    "InsufficientFunds": (Verdict.REJECTED, InsufficientFunds),
    "InvalidNonce": (Verdict.RETRYABLE, TimestampRejected),  # stale timestamp or nonce
    "AuthenticationError": (Verdict.REJECTED, AuthenticationRejected),
    "DDoSProtection": (Verdict.RETRYABLE, RateLimited),
    "RateLimitExceeded": (Verdict.RETRYABLE, RateLimited),
    "RequestTimeout": (Verdict.AMBIGUOUS, AmbiguousOutcome),  # e.g. Binance -1007
    "ExchangeNotAvailable": (Verdict.AMBIGUOUS, AmbiguousOutcome),  # 5xx; 4xx: see below
    "CancelPending": (Verdict.AMBIGUOUS, AmbiguousOutcome),
    "InvalidOrder": (Verdict.REJECTED, VenueRejected),
    "BadRequest": (Verdict.REJECTED, VenueRejected),
    "ArgumentsRequired": (Verdict.REJECTED, VenueRejected),
    "OperationRejected": (Verdict.REJECTED, VenueRejected),
    "InvalidAddress": (Verdict.REJECTED, VenueRejected),
    "NotSupported": (Verdict.REJECTED, VenueRejected),
    "OperationFailed": (Verdict.AMBIGUOUS, AmbiguousOutcome),  # NetworkError, BadResponse
    "ExchangeError": (Verdict.REJECTED, VenueRejected),  # the generic "no"; 5xx: see below
}


def outcome_of(
    exc: BaseException,
    status: int,
    headers: Any,
    body: bytes,
    venue: str,
    *,
    creates: bool = False,
) -> Outcome:
    """The :class:`Outcome` of an answer ccxt turned into ``exc``. ``creates``: the answer
    is to an order's create, which only a venue error known to mean "not placed" may
    conclude REJECTED (see :func:`~securetrade.venues.base.refusal_not_known`)."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    verdict, kind = next(
        (ERRORS[name] for name in names if name in ERRORS),
        (Verdict.AMBIGUOUS, AmbiguousOutcome),  # ccxt could not read a delivered answer
    )
    text = redact_query(str(exc))[:300]
    # ccxt files some exchanges' duplicate-id refusals as plain refusals (Binance's
    # "Duplicate order sent.", Kraken's "EOrder:Duplicate order"): the text tells. A wrong
    # guess costs one lookup by client order id, never an order.
    duplicate = kind is DuplicateOrder or (kind is VenueRejected and "duplicate" in text.lower())
    if duplicate:
        kind = DuplicateOrder
    if 200 <= status < 300 and verdict is not Verdict.AMBIGUOUS and not _is_json(body):
        # "Done", with a body ccxt could not parse and guessed from (a proxy's page, half an
        # answer): the request was delivered and may have executed; the venue is asked.
        verdict, kind = Verdict.AMBIGUOUS, AmbiguousOutcome
    elif status >= 500 and verdict is Verdict.REJECTED:
        verdict, kind = Verdict.AMBIGUOUS, AmbiguousOutcome  # a server failing may have acted
    elif status < 500 and "ExchangeNotAvailable" in names and status >= 400:
        # ccxt files unknown 4xx answers (400, 403, 404) as "not available": a refusal of
        # a read or a cancel; for a create, whoever answered may have passed it on first.
        verdict, kind = (
            (Verdict.AMBIGUOUS, AmbiguousOutcome) if creates else (Verdict.REJECTED, VenueRejected)
        )
    elif (
        creates
        and 400 <= status < 500
        and verdict is Verdict.REJECTED
        and (not _is_json(body) or type(exc).__name__ == "ExchangeError")
    ):
        # A create refused by a page that is not the venue's (ccxt guessed from the
        # status), or by ccxt's generic "no" for a code it does not know: not proof.
        verdict, kind = Verdict.AMBIGUOUS, AmbiguousOutcome
    elif kind is OrderNotFound and not _is_json(body):
        # "No such order" guessed from a page that is not the venue's answer (ccxt's match
        # on its text, or the status alone): it says nothing of the order, and a lookup
        # read as "not found" lets the order path send the order again.
        verdict, kind = Verdict.REJECTED, VenueRejected
    retry_after = _seconds(_header(headers, "retry-after"))
    code = _venue_code(body)
    error: SecureTradeError
    if kind is RateLimited:
        error = (IpBanned if status == 418 else RateLimited)(
            text, venue=venue, code=code, retry_after=retry_after
        )
    else:
        error = kind(text, venue=venue, code=code)
    return Outcome(
        verdict,
        None,
        error,
        clock_skew="InvalidNonce" in names,
        duplicate=duplicate,
        retry_after=retry_after,
    )


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _venue_code(body: bytes) -> int | str | None:
    """The venue's own error code, where its answer carries one in a common place."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict):
        for name in ("code", "retCode", "error_code"):
            value = payload.get(name)
            if isinstance(value, (int, str)) and value not in (0, "0", ""):
                return value
        errors = payload.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], str):
            return errors[0]
    return None
