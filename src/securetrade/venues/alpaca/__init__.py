"""Alpaca Trading API v2: US stocks through a broker, with the same guarantees as the
exchanges.

How it differs from the crypto venues, and how the contract carries it:

* Nothing is signed. The key id and secret travel in ``APCA-API-KEY-ID`` and
  ``APCA-API-SECRET-KEY`` on every request (both redacted everywhere), or, for an
  :class:`~securetrade.oauth.OAuthKey`, an OAuth access token travels as ``Authorization:
  Bearer`` (Alpaca Connect). :meth:`Alpaca.signer` is the one place that picks which.
* Paper trading is the default: :data:`tables.BASE_URLS` has the paper host for
  ``Environment.PAPER`` and the live host only for a key created with
  ``environment="live"``.
* A request carries no validity window (``request_deadline = False``), but Alpaca refuses a
  used ``client_order_id`` forever, also after the first order closed (``dedupe =
  "strong"``, error 40010001). So a lost create is resolved by
  ``GET /v2/orders:by_client_order_id``, and a resend after "not found" is safe: if the
  first attempt lands after all, the resend is refused as a duplicate, and the order found
  is adopted once its parameters are checked against the intent. A create is never
  resent on a 5xx, 504 or a timeout without that lookup (alpaca-py resends on 504).
* The market clock (``/v2/clock``) is the venue's time source; its ``is_open``,
  ``next_open`` and ``next_close`` are kept, and an order outside the regular session is
  refused before it is sent, unless it asks for ``extended_hours`` and is of the kind
  Alpaca takes there (LIMIT, DAY).
* Quantities may be fractional (nine decimals) on fractionable assets, as DAY orders.
* Market, limit, stop and stop-limit orders (:class:`~securetrade.models.StopLossOrder`,
  :class:`~securetrade.models.StopLimitOrder`: ``stop_price`` on the wire).
* Cancelling needs Alpaca's order id: a cancel by client order id first reads the order
  (a follow-up request), then deletes it; the answer is an acknowledgement (HTTP 204), so
  the core reads the order back.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..._checks import instance, shown, text
from ...core.store import derive_client_order_id, is_ours
from ...errors import (
    AmbiguousOutcome,
    InvalidRequest,
    OrderNotFound,
    PolicyViolation,
    RateLimited,
    VenueRejected,
)
from ...keys import ApiKey, Environment, KeyKind
from ...models import (
    AssetClass,
    Balance,
    Instrument,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from ...ratelimit import RateLimit
from ...signing import Signer, encode_json, encode_query
from ...signing.presented import HeaderAuth, KeyHeaders
from ...transport.base import HttpRequest, HttpResponse
from ..base import (
    Endpoint,
    ErrorRule,
    Freshness,
    Op,
    Outcome,
    Params,
    Verdict,
    check_answer,
    check_cursor,
    check_order,
    check_prepare,
    check_window,
    read_json,
    reads_answer,
    refusal_not_known,
    unreadable,
    wire_decimal,
)
from ..times import parse_time
from . import history
from .tables import BASE_URLS, DUPLICATE, ENDPOINTS, ERRORS, RATE_LIMITS

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["ALPACA", "Alpaca", "MarketSession", "parse_time"]

# Equities (AAPL, BRK.B) and Alpaca's crypto pairs (BTC/USD).
_SYMBOL = re.compile(r"[A-Z][A-Z0-9]{0,9}(?:\.[A-Z]{1,2})?|[A-Z0-9]{2,10}/[A-Z]{3,5}")
_TIF = {
    TimeInForce.DAY: "day",
    TimeInForce.GTC: "gtc",
    TimeInForce.IOC: "ioc",
    TimeInForce.FOK: "fok",
    TimeInForce.OPG: "opg",
    TimeInForce.CLS: "cls",
}
_TIF_BACK = {wire: tif for tif, wire in _TIF.items()}
_TYPES = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP_LOSS: "stop",  # Alpaca's stop: market once the price trades through it
    OrderType.STOP_LOSS_LIMIT: "stop_limit",
}
_TYPES_BACK = {wire: kind for kind, wire in _TYPES.items()}
_LIMITED = frozenset({OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT})  # those with a limit price
_PLAIN = frozenset({OrderType.MARKET, OrderType.LIMIT})  # those without a stop price
_STATUS = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW,
    "held": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "pending_cancel": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW,
    "stopped": OrderStatus.NEW,
    "suspended": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}
# The header names (their values are redacted: transport/redaction.py), not secrets.
_KEY_HEADER, _SECRET_HEADER = "APCA-API-KEY-ID", "APCA-API-SECRET-KEY"
_FRACTION_STEP = Decimal("0.000000001")  # nine decimals
_ORDER_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


@dataclass(frozen=True, slots=True)
class MarketSession:
    """What ``/v2/clock`` said, and when (venue ms): enough to tell, later, whether the
    regular session is open, without asking again until the next boundary has passed."""

    is_open: bool
    next_open_ms: int
    next_close_ms: int
    at_ms: int
    offset_ms: int  # venue time minus local time when it was read

    def open_at(self, venue_ms: int) -> bool | None:
        """True or False when the reading tells; None once it is too old to tell."""
        if self.is_open:
            return True if venue_ms < self.next_close_ms else None
        if venue_ms < self.next_open_ms:
            return False
        return True if venue_ms < self.next_close_ms else None


class Alpaca:
    """The Alpaca Trading API v2 adapter (US equities)."""

    name = "alpaca"
    endpoints: Mapping[Op, Endpoint] = ENDPOINTS
    errors: Mapping[int, ErrorRule] = ERRORS
    base_urls: Mapping[Environment, str] = BASE_URLS
    rate_limits: Sequence[RateLimit] = RATE_LIMITS
    freshness = Freshness.TIMESTAMP  # the clock is read (market hours); nothing is stamped
    recv_window_ms = 5000
    request_deadline = False  # a held request executes whenever it arrives
    dedupe = "strong"  # a used client_order_id is refused forever: a resend is safe
    takes_oauth = True  # an OAuthKey's bearer token instead of the key headers
    order_acks = frozenset({Op.CANCEL_ORDER})
    order_types = frozenset(_TYPES)
    time_in_force = frozenset(_TIF)
    quote_quantity = frozenset(Side)  # ``notional`` market orders, DAY only, either side

    def __init__(self) -> None:
        self._session: MarketSession | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "Alpaca()"

    # --- identity and authentication ----------------------------------------------------

    def check_symbol(self, symbol: str) -> None:
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequest(
                f"symbol {shown(symbol)} is not an Alpaca symbol (a ticker such as AAPL or BRK.B)"
            )

    def signer(self, key: ApiKey) -> Signer:
        """The request authentication for ``key``: the one place that chooses it.

        An Alpaca API key (kind HMAC: a key id and a secret text) is presented in the
        ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers; an OAuth key's access token
        as ``Authorization: Bearer`` (refreshed by the request pipeline)."""
        instance("key", key, ApiKey, optional=False)
        source = getattr(key, "source", None)  # an OAuthKey's TokenSource
        if source is not None:
            from ...oauth.session import BearerSigner

            return BearerSigner(source)
        if key.kind is not KeyKind.HMAC:
            raise InvalidRequest(
                f"Alpaca keys are a key id and a secret (kind 'hmac'), not {key.kind.value}"
            )
        return KeyHeaders(key.secret, id_header=_KEY_HEADER, secret_header=_SECRET_HEADER)

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        """The journal's deterministic id (32 characters; Alpaca allows 128)."""
        return derive_client_order_id(self.name, account, idempotency_key)

    def owns_client_order_id(self, client_order_id: str) -> bool:
        return is_ours(client_order_id)

    # --- requests -----------------------------------------------------------------------

    def prepare(
        self,
        endpoint: Endpoint,
        params: Params,
        *,
        key_id: str,
        signer: Signer | None,
        timestamp_ms: int,
        nonce: int | None = None,
    ) -> HttpRequest:
        check_prepare(endpoint, params, key_id, signer, timestamp_ms, nonce)
        method, path = endpoint.method, endpoint.path
        body = b""
        fields = dict(params)
        if endpoint.op is Op.PLACE_ORDER:
            body = encode_json(_order_body(params))
        elif endpoint.op in (Op.GET_ORDER, Op.CANCEL_ORDER):
            order_id = fields.get("order_id")
            if order_id is not None:
                if not _ORDER_ID.fullmatch(order_id):
                    raise InvalidRequest(f"{shown(order_id)} is not an Alpaca order id")
                path = f"/v2/orders/{order_id}"
            elif "client_order_id" in fields:
                method = "GET"  # a cancel by client id reads the order first
                path = "/v2/orders:by_client_order_id?" + encode_query(
                    [("client_order_id", fields["client_order_id"])]
                )
            else:
                raise InvalidRequest("an Alpaca order lookup needs an order id or a client id")
        elif endpoint.op is Op.INSTRUMENTS:
            path = path + "?" + encode_query([("status", "active"), *params])
        elif params:
            path = path + "?" + encode_query(params)
        headers: tuple[tuple[str, str], ...] = ()
        if endpoint.signed:
            if not isinstance(signer, HeaderAuth):  # what signer() chose: headers or bearer
                raise InvalidRequest(f"{endpoint.op.value} needs an Alpaca key")
            headers = signer.headers(key_id)
        if body:
            headers = (*headers, ("Content-Type", "application/json"))
        return HttpRequest(method, path, headers, body)

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        """The order as Alpaca's JSON fields (``prepare`` types them); refused here, before
        anything is sent, when Alpaca could not take it or the market is closed to it."""
        check_order(order, client_order_id)
        if not 1 <= len(client_order_id) <= 128:
            raise InvalidRequest("Alpaca client_order_id is 1 to 128 characters")
        tif = order.time_in_force or TimeInForce.DAY  # a market order: for the day
        if order.quote_quantity is not None:
            return self._notional_params(order, client_order_id)
        quantity = order.base_quantity
        fractional = quantity != quantity.to_integral_value()
        if fractional and tif is not TimeInForce.DAY:
            raise InvalidRequest(
                "Alpaca takes fractional quantities on DAY orders only: pass "
                "time_in_force='DAY' or a whole number of shares"
            )
        extended = order.extended_hours
        if extended and (order.type is not OrderType.LIMIT or tif is not TimeInForce.DAY):
            raise InvalidRequest(
                "Alpaca takes extended-hours orders as LIMIT orders with time_in_force DAY"
            )
        if not extended and tif not in (TimeInForce.OPG, TimeInForce.CLS):
            self._require_open_market()
        params: Params = [
            ("symbol", order.symbol),
            ("qty", wire_decimal(quantity)),
            ("side", order.side.value.lower()),
            ("type", _TYPES[order.type]),
            ("time_in_force", _TIF[tif]),
        ]
        if order.price is not None:
            params.append(("limit_price", wire_decimal(order.price)))
        if order.stop_price is not None:
            params.append(("stop_price", wire_decimal(order.stop_price)))
        if extended:
            params.append(("extended_hours", "true"))
        params.append(("client_order_id", client_order_id))
        return params

    def _notional_params(self, order: OrderRequest, client_order_id: str) -> Params:
        """A quote-quantity order as Alpaca's ``notional``: a MARKET order for the day (the
        only kind Alpaca sizes in dollars), in the regular session. Whole cents are checked
        with the instrument's rules (``quote_step``), before this."""
        notional = order.quote_quantity
        if notional is None or order.type is not OrderType.MARKET or order.extended_hours:
            raise InvalidRequest(
                "Alpaca takes notional (quote_quantity) orders as MARKET orders with "
                "time_in_force DAY, in the regular session"
            )
        self._require_open_market()
        return [
            ("symbol", order.symbol),
            ("notional", wire_decimal(notional)),
            ("side", order.side.value.lower()),
            ("type", _TYPES[order.type]),
            ("time_in_force", _TIF[TimeInForce.DAY]),
            ("client_order_id", client_order_id),
        ]

    def _require_open_market(self) -> None:
        """Refuse an order for the regular session while it is closed (policy rule
        ``market_hours``), from the last reading of the market clock."""
        session = self._session
        if session is None:
            raise PolicyViolation(
                "Alpaca's market clock has not been read yet: call client.sync_clock() "
                "before placing an order",
                rule="market_hours",
                venue=self.name,
            )
        now = int(time.time() * 1000) + session.offset_ms
        is_open = session.open_at(now)
        if is_open is None:
            raise PolicyViolation(
                "Alpaca's market clock reading is out of date (a session boundary has "
                "passed since): call client.sync_clock(), then place the order again",
                rule="market_hours",
                venue=self.name,
            )
        if not is_open:
            raise PolicyViolation(
                "the US stock market is closed (regular session); nothing was sent. Place "
                "it when the market opens, or as a LIMIT DAY order with extended_hours=True",
                rule="market_hours",
                venue=self.name,
            )

    def open_orders_params(self, symbol: str | None) -> Params:
        params: Params = [("status", "open"), ("limit", "500")]
        if symbol is not None:
            params.append(("symbols", symbol))
        return params

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        if order_id is not None:
            text("order_id", order_id)
        if client_order_id is not None:
            text("client_order_id", client_order_id)
        if order_id is not None:
            return [("order_id", order_id)]
        if client_order_id is not None:
            if not 1 <= len(client_order_id) <= 128 or not client_order_id.isprintable():
                raise InvalidRequest(f"{shown(client_order_id)} is not an Alpaca client_order_id")
            return [("client_order_id", client_order_id)]
        raise InvalidRequest("give order_id or client_order_id")

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        raise InvalidRequest("Alpaca's Trading API moves no money out: withdraw at Alpaca")

    # --- responses ----------------------------------------------------------------------

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        check_answer(endpoint, response)
        payload = read_json(response.body)
        status = response.status
        if 200 <= status < 300:
            if endpoint.op is Op.CANCEL_ORDER:
                return self._cancelled(endpoint, status, payload)
            if payload is None:
                return unreadable(endpoint, status, self.name, "not JSON")
            shape = dict if endpoint.op in _OBJECTS else list
            if not isinstance(payload, shape):
                return unreadable(endpoint, status, self.name, "not the expected shape")
            return Outcome(Verdict.OK, payload)
        code = payload.get("code") if isinstance(payload, dict) else None
        message = payload.get("message") if isinstance(payload, dict) else None
        text = str(message or f"HTTP {status}")[:300]
        retry_after = _seconds(response.headers.get("retry-after"))
        if status == 429 or code == 42910000:
            limited = RateLimited(text, venue=self.name, code=code, retry_after=retry_after)
            return Outcome(Verdict.RETRYABLE, payload, limited, retry_after=retry_after)
        if status >= 500 or status in (0, 408):
            # 500, 502, 503 and 504 alike: the create may have been taken.
            ambiguous = AmbiguousOutcome(text, venue=self.name, code=code)
            return Outcome(Verdict.AMBIGUOUS, payload, ambiguous)
        rule = ERRORS.get(code) if isinstance(code, int) else None
        if endpoint.op is Op.CANCEL_ORDER and status == 422 and isinstance(payload, dict):
            rule = (Verdict.REJECTED, OrderNotFound)  # Alpaca's "not cancelable": not open
        elif rule is None:  # no listed code: a page from in front of Alpaca, or a new code
            # Never "not found", even as a 404: only Alpaca's own 40410000 says that.
            error = VenueRejected(text, venue=self.name, code=code)
            return refusal_not_known(endpoint, status, self.name, error, payload)
        verdict, kind = rule
        return Outcome(
            verdict,
            payload,
            kind(text, venue=self.name, code=code),
            duplicate=code == DUPLICATE,
            retry_after=retry_after,
        )

    def _cancelled(self, endpoint: Endpoint, status: int, payload: Any) -> Outcome:
        """A cancel's answer: 204 (accepted: the core reads the order back), or the order
        read by client id, whose id the follow-up DELETE names."""
        if payload is None:
            return Outcome(Verdict.OK, None)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            return unreadable(endpoint, status, self.name, "not an order")
        state = _STATUS.get(str(payload.get("status")))
        if state is not None and not state.is_open:
            closed = OrderNotFound(
                f"the order is {payload.get('status')}, no longer open", venue=self.name
            )
            return Outcome(Verdict.REJECTED, payload, closed)
        return Outcome(Verdict.OK, payload, follow_up=[("order_id", payload["id"])])

    @reads_answer
    def parse_order(self, payload: Any) -> Order:
        order_type = _TYPES_BACK[str(payload.get("type") or payload["order_type"])]
        quantity = payload.get("qty")
        filled = Decimal(str(payload.get("filled_qty") or "0"))
        notional = payload.get("notional")
        if quantity is None:  # a notional order: its quantity is what filled
            quantity = filled
        average = payload.get("filled_avg_price")
        status = _STATUS[str(payload["status"])]
        tif = _TIF_BACK.get(str(payload.get("time_in_force")))
        return Order(
            venue=self.name,
            symbol=str(payload["symbol"]),
            order_id=str(payload["id"]),
            client_order_id=str(payload.get("client_order_id") or ""),
            side=str(payload["side"]).upper(),
            type=order_type,
            status=status,
            quantity=Decimal(str(quantity)),
            price=payload.get("limit_price") if order_type in _LIMITED else None,
            filled_quantity=filled,
            quote_quantity=filled * Decimal(str(average)) if average else Decimal(0),
            time_in_force=tif if order_type in _LIMITED else None,
            created_at=parse_time(payload["created_at"]) if payload.get("created_at") else None,
            stop_price=payload.get("stop_price") if order_type not in _PLAIN else None,
            quote_order_quantity=None if notional is None else Decimal(str(notional)),
        )

    @reads_answer
    def parse_orders(self, payload: Any) -> list[Order]:
        return [self.parse_order(item) for item in payload]

    @reads_answer
    def parse_balances(self, payload: Any) -> list[Balance]:
        """``/v2/account``: cash in the account's currency, less what open buys hold."""
        cash = Decimal(str(payload["cash"]))
        spendable = Decimal(str(payload.get("non_marginable_buying_power") or cash))
        free = max(min(spendable, cash), Decimal(0))
        locked = max(cash - free, Decimal(0))
        return [Balance(asset=str(payload.get("currency") or "USD"), free=free, locked=locked)]

    @reads_answer
    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        """``/v2/assets``: fractionable assets trade in steps of 1e-9 shares, the others in
        whole shares; prices in cents (``price_increment`` where Alpaca gives one)."""
        result = {}
        for asset in payload:
            symbol = str(asset["symbol"])
            crypto = asset.get("class") == "crypto"
            step = asset.get("min_trade_increment") or (
                _FRACTION_STEP if asset.get("fractionable") else Decimal(1)
            )
            base, _, quote = symbol.partition("/")
            result[symbol] = Instrument(
                symbol=symbol,
                base_asset=base,
                quote_asset=quote or "USD",
                tick_size=asset.get("price_increment") or Decimal("0.01"),
                step_size=step,
                min_quantity=asset.get("min_order_size") or step,
                trading=bool(asset.get("tradable")) and asset.get("status") == "active",
                asset_class=AssetClass.CRYPTO if crypto else AssetClass.US_EQUITY,
                quote_step=Decimal("0.01"),  # a notional is in whole cents
            )
        return result

    @reads_answer
    def parse_server_time(self, payload: Any) -> int:
        """``/v2/clock``: venue time; the session it reports is kept for market hours."""
        at = _ms(parse_time(payload["timestamp"]))
        session = MarketSession(
            is_open=bool(payload["is_open"]),
            next_open_ms=_ms(parse_time(payload["next_open"])),
            next_close_ms=_ms(parse_time(payload["next_close"])),
            at_ms=at,
            offset_ms=at - int(time.time() * 1000),
        )
        with self._lock:
            if self._session is None or session.at_ms >= self._session.at_ms:
                self._session = session
        return at

    @property
    def session(self) -> MarketSession | None:
        """The last reading of the market clock (None before the first)."""
        return self._session

    @reads_answer
    def parse_price(self, payload: Any) -> Decimal:
        raise VenueRejected("Alpaca prices come from its market data API", venue=self.name)

    @reads_answer
    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        return []  # the table's 200 a minute; Alpaca's headers are not read yet

    @reads_answer
    def parse_withdrawal(self, payload: Any) -> str:
        raise VenueRejected("Alpaca's Trading API moves no money out", venue=self.name)

    # --- account history (venues/alpaca/history.py) -----------------------------------------

    def history_params(self, made: Window, cursor: str | None) -> Params:
        """One page of the account's fills (``my_trades``): see :mod:`.history`."""
        check_window(made)
        cursor = check_cursor(cursor)
        return history.history_params(made, cursor)

    @reads_answer
    def parse_history(
        self, made: Window, cursor: str | None, payload: Any
    ) -> tuple[list[Any], str | None]:
        """One page of FILL activities as :class:`~securetrade.models.AccountTrade`, and the
        cursor of the next page (``None``: the last)."""
        return history.parse_history(made, cursor, payload)


ALPACA = Alpaca()

_OBJECTS = frozenset({Op.SERVER_TIME, Op.PLACE_ORDER, Op.GET_ORDER, Op.BALANCES})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _order_body(params: Params) -> list[tuple[str, Any]]:
    """Alpaca's JSON: numbers as strings (Decimal-safe), ``extended_hours`` a boolean."""
    return [
        (name, value == "true" if name == "extended_hours" else value) for name, value in params
    ]


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds; None for anything that is not a usable pause."""
    try:
        seconds = None if value is None else float(value)
    except ValueError:
        return None
    return None if seconds is None or not math.isfinite(seconds) else max(0.0, seconds)
