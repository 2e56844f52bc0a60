"""The contract a venue adapter fulfils: mostly tables, plus encode and parse functions.

The core never knows which venue it drives. It asks the adapter for the endpoint of an
operation (method, path, whether it is signed, the scope it needs, its rate-limit cost),
for the exact request to send, and for the meaning of the answer: one of :class:`Verdict`.

What an adapter provides, and where the core uses it:

=====================  ===================================================================
``endpoints``          :class:`Endpoint` per :class:`Op`: method, path, signed, scope, cost
``errors``             venue error code or text -> (:class:`Verdict`, exception type)
``rate_limits``        the published limits, in :class:`~securetrade.ratelimit.RateLimit`
``base_urls``          one URL per :class:`~securetrade.keys.Environment`
``freshness``          how a signed request proves it is fresh: a timestamp inside
                       ``recv_window_ms`` of venue time, or a per-key increasing nonce
``signer()``           the signer for a key (the secret is parsed once, there)
``prepare()``          the exact bytes to send, signed (the encoder)
``interpret()``        what an answer means: an :class:`Outcome`
``client_order_id()``  our deterministic id, in the venue's client-order-id grammar
``order_acks``         operations answered by an acknowledgement only: the core reads the
                       order back by client order id
``interpret_asked()``  optional, in place of ``interpret()``: the answer read against the
                       parameters asked and the key id (OANDA's lookup scans an account's
                       transactions for the client order id it asked about)
``request_deadline``   optional, default True: a request stamped T can no longer execute
                       after T + ``recv_window_ms``; False makes "not found" unprovable
``dedupe``             optional: ``"strong"`` when the venue refuses a used client order id
                       forever (then a resend is safe without a deadline)
``refine_outcome()``   optional: ``(outcome, key) -> outcome``, what an answer means for
                       the key that signed it (Kraken: a bad signature on a 2FA key is
                       :class:`~securetrade.errors.InvalidOTP`)
``trades_params()``    optional, with ``parse_trades()`` and the ``TRADES`` endpoint: an
                       order's executions, each with its trade id
``parse_*()``          venue payloads into :mod:`securetrade.models`
``ticker_params()``    optional, each with its ``parse_*`` and endpoint: market data
                       (``order_book_params``, ``candles_params``,
                       ``public_trades_params``; ``intervals`` maps the candle intervals
                       of :data:`~securetrade.models.INTERVALS` the venue offers)
``parse_ws_token()``   optional, with the ``WS_TOKEN`` endpoint: the token that opens the
                       account's private WebSocket, as a :class:`~securetrade.keys.Secret`
``history_params()``   optional, with ``parse_history()`` and the ``*_HISTORY`` endpoints:
                       one page of account history and the cursor of the next
                       (:mod:`securetrade.core.history`)
=====================  ===================================================================

Third parties register an adapter under the entry point group ``securetrade.venues``; see
``docs/venues.md``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from pydantic_core import from_json as _from_json

from .._checks import Choice, is_text, plain_decimal, shown, text
from ..errors import AmbiguousOutcome, InvalidRequest, SecureTradeError
from ..keys import ApiKey, Environment, Scope
from ..models import (
    CRYPTO_TIME_IN_FORCE,
    Balance,
    Instrument,
    Order,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
)
from ..ratelimit import CostRule, RateLimit
from ..signing import Signer
from ..transport.base import HttpRequest, HttpResponse

__all__ = [
    "Capabilities",
    "Endpoint",
    "ErrorRule",
    "Freshness",
    "Op",
    "Outcome",
    "Params",
    "Venue",
    "Verdict",
    "capabilities_of",
    "check_amount",
    "check_answer",
    "check_candles",
    "check_intent",
    "check_order",
    "check_params",
    "check_prepare",
    "check_window",
    "read_json",
    "reads_answer",
    "refusal_not_known",
    "unreadable",
    "wire_decimal",
    "within",
]

Params = list[tuple[str, str]]


class Op(str, Choice):
    """The operations every venue maps to its endpoints."""

    SERVER_TIME = "server_time"
    INSTRUMENTS = "instruments"
    TICKER_PRICE = "ticker_price"  # last price of one symbol: the policy's reference price
    PLACE_ORDER = "place_order"
    CANCEL_ORDER = "cancel_order"
    GET_ORDER = "get_order"
    OPEN_ORDERS = "open_orders"
    BALANCES = "balances"
    WITHDRAW = "withdraw"
    KEY_PERMISSIONS = "key_permissions"
    TRADES = "trades"  # an order's executions (fills), each with the venue's trade id
    # Market data: public, unsigned, no key needed.
    TICKER = "ticker"  # best bid and ask, last price, the day's range and volume
    ORDER_BOOK = "order_book"  # a snapshot of the book to a depth
    CANDLES = "candles"  # OHLCV bars of an interval
    PUBLIC_TRADES = "public_trades"  # the public tape: everyone's trades
    # Account history over a time range, paged by the venue's own rules.
    TRADE_HISTORY = "trade_history"  # this account's executions
    ORDER_HISTORY = "order_history"  # this account's orders, closed ones included
    DEPOSIT_HISTORY = "deposit_history"
    WITHDRAWAL_HISTORY = "withdrawal_history"
    # A short-lived token that opens the account's private WebSocket (an operation's name).
    WS_TOKEN = "ws_token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of a venue's endpoint table."""

    op: Op
    method: str
    path: str
    signed: bool
    scope: Scope | None
    cost: Mapping[str, int] = field(default_factory=dict)
    # Costs that depend on the parameters (first that applies wins; else ``cost``).
    cost_rules: tuple[CostRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a venue can do, as this SDK drives it: a bot (or the copy engine) checks here
    before it tries, rather than learning from a refusal."""

    venue: str
    operations: frozenset[Op]
    order_types: frozenset[OrderType]
    time_in_force: frozenset[TimeInForce]
    intervals: tuple[str, ...] = ()  # candle intervals (models.INTERVALS) the venue offers
    post_only: bool = False  # limit orders that are refused or cancelled rather than take
    # The sides on which MARKET orders may be sized in the quote asset (quote_quantity):
    # both at Binance and Alpaca, BUY alone at Kraken (``viqc``), none at OANDA.
    quote_quantity: frozenset[Side] = frozenset()

    def supports(self, what: Op | OrderType | TimeInForce | str) -> bool:
        """``supports("ticker")``, ``supports(Op.CANDLES)``, ``supports(OrderType.LIMIT)``,
        ``supports(TimeInForce.FOK)``, ``supports("1h")`` (a candle interval),
        ``supports("quote_quantity")`` (on some side: see :attr:`quote_quantity`)."""
        if isinstance(what, Op):
            return what in self.operations
        if isinstance(what, OrderType):
            return what in self.order_types
        if isinstance(what, TimeInForce):
            return what in self.time_in_force
        if isinstance(what, str):
            return (
                what in {op.value for op in self.operations}
                or what in {t.value for t in self.order_types}
                or what in {t.value for t in self.time_in_force}
                or (Op.CANDLES in self.operations and what in self.intervals)
                or (what == "post_only" and self.post_only)
                or (what == "quote_quantity" and bool(self.quote_quantity))
            )
        return False


# Operations the core can run only if the adapter also provides these methods.
_NEEDS = {
    Op.TRADES: "trades_params",
    Op.KEY_PERMISSIONS: "parse_key_permissions",
    Op.TICKER: "ticker_params",
    Op.ORDER_BOOK: "order_book_params",
    Op.CANDLES: "candles_params",
    Op.PUBLIC_TRADES: "public_trades_params",
    Op.TRADE_HISTORY: "history_params",
    Op.ORDER_HISTORY: "history_params",
    Op.DEPOSIT_HISTORY: "history_params",
    Op.WITHDRAWAL_HISTORY: "history_params",
    Op.WS_TOKEN: "parse_ws_token",
}


def capabilities_of(venue: Venue) -> Capabilities:
    """A venue's capabilities, read from its tables: the operations its endpoint table has
    (and whose methods it provides), ``order_types`` and ``time_in_force`` where it declares
    them (else MARKET and LIMIT, and GTC, IOC and FOK), its candle ``intervals``, and
    whether it takes post-only orders (``post_only = True``), and the sides on which it takes
    quote-quantity market orders (``quote_quantity``, a set of :class:`Side`)."""
    operations = frozenset(
        op
        for op in venue.endpoints
        if _NEEDS.get(op) is None or callable(getattr(venue, _NEEDS[op], None))
    )
    # An adapter that does not declare its order types takes market and limit orders only:
    # the conditional ones need parameters (a stop price) it may not send.
    order_types = getattr(venue, "order_types", None) or _BASIC_TYPES
    time_in_force = getattr(venue, "time_in_force", None) or CRYPTO_TIME_IN_FORCE
    intervals = tuple(getattr(venue, "intervals", None) or ()) if Op.CANDLES in operations else ()
    return Capabilities(
        venue.name,
        operations,
        frozenset(order_types),
        frozenset(time_in_force),
        intervals,
        post_only=getattr(venue, "post_only", False) is True,
        quote_quantity=frozenset(getattr(venue, "quote_quantity", None) or ()),
    )


_BASIC_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})


class Freshness(str, Choice):
    """How a venue tells a fresh signed request from a replayed or delayed one."""

    TIMESTAMP = "timestamp"  # venue-time timestamp, accepted within a receive window
    NONCE = "nonce"  # an integer that must exceed the last one seen for the key


class Verdict(str, Choice):
    """The meaning of an answer for the money: the core acts on this, never on codes."""

    OK = "ok"
    REJECTED = "rejected"  # the venue said no: certainly not executed
    RETRYABLE = "retryable"  # certainly not executed; may work if resent
    AMBIGUOUS = "ambiguous"  # may have executed; ask the venue before anything else


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response means. ``error`` is set unless the verdict is OK."""

    verdict: Verdict
    payload: Any = None
    error: SecureTradeError | None = None
    clock_skew: bool = False  # the venue refused our timestamp: resync, then resend
    bad_nonce: bool = False  # the venue refused our nonce as not increasing: resend
    duplicate: bool = False  # the venue already holds this client order id
    retry_after: float | None = None
    # OK so far, but the operation takes one more request, whose answer decides: the same
    # parameters, these replacing the same-named ones (Kraken looks an order up by
    # cl_ord_id among open, then closed orders; so does ccxt's Kraken).
    follow_up: Params | None = None


ErrorRule = tuple[Verdict, type[SecureTradeError]]


class _Named(Protocol):
    name: str


_V = TypeVar("_V", bound=_Named)
_P = ParamSpec("_P")
_R = TypeVar("_R")


# Decimal to wire text: plain notation, never an exponent (``1E-5`` is refused by venues
# that read ``0.00001``).
wire_decimal = plain_decimal


def within(name: str, value: int, most: int) -> None:
    """Refuse, before anything is sent, a count outside the venue's range ``1..most``."""
    if type(value) is not int or not 1 <= value <= most:  # an int subclass writes its own str
        raise InvalidRequest(f"{name} must be a whole number from 1 to {most}, got {shown(value)}")


def read_json(body: bytes) -> Any:
    """A venue's answer as JSON, or ``None`` when it is empty, not JSON, or a nesting bomb:
    ``interpret`` then sorts it by status alone."""
    if not body:
        return None
    try:
        # pydantic-core's parser: the same values as json.loads on every document both
        # read, for under half the instructions (one answer per order). It refuses some
        # that json reads (a lone surrogate escape, nesting past its limit, UTF-16): json
        # has the last word on those, so what is readable does not change.
        return _from_json(body)
    except ValueError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def unreadable(endpoint: Endpoint, status: int, venue: str, what: str) -> Outcome:
    """The outcome of a delivered answer that cannot be read: ambiguous, always.

    The request was sent, so it may have executed whatever the answer looks like (a 200
    with half a body, a proxy's HTML page): the core asks the venue, never assumes that
    nothing happened."""
    error = AmbiguousOutcome(
        f"{endpoint.op.value}: unreadable answer (HTTP {status}: {what}); it may have "
        "executed, so the venue is asked",
        venue=venue,
    )
    return Outcome(Verdict.AMBIGUOUS, None, error)


def refusal_not_known(
    endpoint: Endpoint, status: int, venue: str, error: SecureTradeError, payload: Any = None
) -> Outcome:
    """The outcome of a 4xx answer that names no error this venue's table knows: a body
    that is not the venue's error (a CDN's or firewall's 403 or 404 page, a 400 that
    cannot be read), or an error code not listed.

    For a read or a cancel that is a refusal (``error``), and never
    :class:`~securetrade.errors.OrderNotFound`, whatever the status: only the venue's own
    listed error says that an order does not exist, and a lookup read as "not found" lets
    the order path send the order again (a CDN's 404 page would make a second order).
    For an order's create it proves nothing: whoever answered may have passed the order on
    first, so it is ambiguous and the core asks the venue. Only a venue error whose code is
    known to mean "not placed" may conclude REJECTED."""
    if endpoint.op is not Op.PLACE_ORDER:
        return Outcome(Verdict.REJECTED, payload, error)
    ambiguous = AmbiguousOutcome(
        f"{endpoint.op.value}: HTTP {status} with no venue error known to mean not placed "
        f"({str(error)[:200]}); it may have executed, so the venue is asked",
        venue=venue,
        code=error.code,
    )
    return Outcome(Verdict.AMBIGUOUS, payload, ambiguous)


#: Why each check below is spelled out with ``type(...) is``: ``prepare``, ``interpret``
#: and ``order_params`` run for every order, and a failed test builds its message only then.


def check_params(params: Any) -> None:
    """Refuse parameters that are not a list of ``(name, value)`` texts (``Params``): a
    caller building them by hand got a TypeError from the encoder before."""
    if type(params) is list:
        try:  # unpacking is the cheapest test of a pair; a wrong one is the refusal below
            for pair in params:
                name, value = pair
                if type(pair) is not tuple or type(name) is not str or type(value) is not str:
                    break
            else:
                return
        except (TypeError, ValueError):
            pass
    raise InvalidRequest(
        "params must be a list of (name, value) pairs of text, as the venue's *_params() give"
    )


def check_prepare(
    endpoint: Any, params: Any, key_id: Any, signer: Any, timestamp_ms: Any, nonce: Any
) -> None:
    """The arguments of :meth:`Venue.prepare`, refused before anything is encoded or signed."""
    if type(endpoint) is not Endpoint and not isinstance(endpoint, Endpoint):
        raise InvalidRequest("endpoint must be an Endpoint from the venue's endpoints table")
    check_params(params)
    if type(key_id) is not str or not key_id.isprintable():
        raise InvalidRequest("key_id must be printable text (the API key's id)")
    if signer is not None and not callable(getattr(signer, "sign", None)):
        raise InvalidRequest("signer must be a Signer (the venue's signer(key)) or None")
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms < 1 << 63:
        raise InvalidRequest("timestamp_ms must be venue time: whole epoch milliseconds")
    if nonce is not None and (type(nonce) is not int or not 0 <= nonce < 1 << 63):
        raise InvalidRequest("nonce must be a whole number from 0 (or None)")


def check_answer(endpoint: Any, response: Any) -> None:
    """The arguments of :meth:`Venue.interpret`: an endpoint and the response to it."""
    if type(endpoint) is not Endpoint and not isinstance(endpoint, Endpoint):
        raise InvalidRequest("endpoint must be an Endpoint from the venue's endpoints table")
    if type(response) is not HttpResponse and not isinstance(response, HttpResponse):
        raise InvalidRequest("response must be the HttpResponse the transport returned")


def check_order(order: Any, client_order_id: Any) -> None:
    """The arguments of :meth:`Venue.order_params`: an order model and an id of text."""
    if not isinstance(order, OrderRequest):
        raise InvalidRequest("order must be an OrderRequest (LimitOrder, MarketOrder, ...)")
    if type(client_order_id) is not str or not client_order_id.isprintable() or not client_order_id:
        text("client_order_id", client_order_id)


def check_intent(account: Any, idempotency_key: Any) -> None:
    """The arguments of :meth:`Venue.client_order_id`: two printable texts (None or a list
    would be hashed as its text and give a stable id to an intent nobody named)."""
    if not (
        type(account) is str
        and type(idempotency_key) is str
        and account.isprintable()
        and idempotency_key.isprintable()
        and account
        and idempotency_key
    ):
        text("account", account)
        text("idempotency_key", idempotency_key)


def check_candles(interval: Any, since_ms: Any) -> None:
    """The interval (a name such as ``1m``) and the optional start of a candles request."""
    if type(interval) is not str:
        raise InvalidRequest("interval must be text such as '1m' (see models.INTERVALS)")
    if since_ms is not None and (type(since_ms) is not int or not 0 <= since_ms < 1 << 63):
        raise InvalidRequest("since_ms must be whole epoch milliseconds from 0 (or None)")


def check_amount(amount: Any) -> Decimal:
    """A withdrawal's amount: a positive finite Decimal (money is never a float)."""
    if type(amount) is not Decimal or not amount.is_finite() or amount <= 0:
        raise InvalidRequest("amount must be a positive finite Decimal, such as Decimal('0.5')")
    return amount


def check_window(made: Any) -> Any:
    """A history window (:class:`securetrade.core.history.Window`, built by the history
    pager; a layer above, so it is known here by its fields)."""
    if (
        not isinstance(getattr(made, "op", None), Op)
        or type(getattr(made, "start_ms", None)) is not int
        or type(getattr(made, "end_ms", None)) is not int
    ):
        raise InvalidRequest("made must be a history Window (securetrade.core.history)")
    return made


def check_cursor(cursor: Any) -> str | None:
    """A history page's cursor: None (the first page) or the text a page answered with,
    as a plain ``str`` (a number, bytes or an object was an AttributeError inside)."""
    if cursor is None:
        return None
    if type(cursor) is str and cursor.isprintable() and cursor:
        return cursor
    if is_text(cursor):
        return str.__str__(cursor)
    raise InvalidRequest("cursor must be None or the cursor a page of history answered")


def reads_answer(parse: Callable[Concatenate[_V, _P], _R]) -> Callable[Concatenate[_V, _P], _R]:
    """Mark a ``parse_*`` method: an answer of the wrong shape becomes AmbiguousOutcome.

    So does a price (the only Decimal a parser returns) that is not a positive finite
    number: NaN and Infinity, which JSON parsers accept and Decimal keeps, zero or less.

    A venue, a proxy or anyone in front of one may answer anything. Reading it must end in
    one of our errors, never a KeyError from deep inside a parser; and since the request
    behind the answer may have executed, the error is ambiguous (ask the venue again), not
    a local refusal. Typed errors a parser raises on purpose pass through unchanged.
    """

    @functools.wraps(parse)
    def read(venue: _V, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            result = parse(venue, *args, **kwargs)
            if isinstance(result, Decimal) and not (result.is_finite() and result > 0):
                raise ValueError("not a positive finite number")  # no price
            return result
        except SecureTradeError as exc:
            if not isinstance(exc, InvalidRequest):
                raise
            failure: Exception = exc
        except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            failure = exc
        except RecursionError as exc:  # a nesting bomb, not an answer
            failure = exc
        raise AmbiguousOutcome(
            f"unreadable answer from the venue ({parse.__name__}: {type(failure).__name__})",
            venue=venue.name,
        ) from None

    return read


class Venue(Protocol):
    """A venue adapter. ``venues/binance`` (timestamps) and ``venues/kraken`` (nonces) are
    the reference implementations; ``docs/venues.md`` walks through writing one."""

    name: str
    endpoints: Mapping[Op, Endpoint]
    errors: Mapping[Any, ErrorRule]
    rate_limits: Sequence[RateLimit]
    base_urls: Mapping[Environment, str]
    freshness: Freshness
    recv_window_ms: int  # how long a request stays executable at the venue after we stamp it
    order_acks: frozenset[Op]

    def check_symbol(self, symbol: str) -> None:
        """Raise :class:`~securetrade.errors.InvalidRequest` unless the venue could list it."""

    def signer(self, key: ApiKey) -> Signer:
        """The signer for ``key``; refuse key kinds the venue does not accept."""

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        """The same id for the same intent on any host, in the venue's grammar."""

    def owns_client_order_id(self, client_order_id: str) -> bool:
        """True when the id has the shape :meth:`client_order_id` gives: recovery reports
        open orders with such an id and no journal entry as orphans."""

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
        """The request exactly as it will be written. ``timestamp_ms`` is venue time;
        ``nonce`` is given when ``freshness`` is NONCE and the endpoint is signed."""

    def open_orders_params(self, symbol: str | None) -> Params:
        """Query parameters listing open orders, for one symbol or all."""

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        """What an answer means for the money (:class:`Outcome`): OK, rejected, retryable or
        ambiguous."""

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        """The venue's parameters for ``order`` under ``client_order_id``, in wire order."""

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        """Query parameters for one order, by the venue's id or the client order id."""

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        """The venue's parameters for a withdrawal to an allowlisted address."""

    def parse_order(self, payload: Any) -> Order:
        """One order from the venue's answer."""

    def parse_orders(self, payload: Any) -> list[Order]:
        """A list of orders from the venue's answer."""

    def parse_balances(self, payload: Any) -> list[Balance]:
        """Balances from the venue's account answer."""

    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        """Trading rules per symbol from the venue's instruments answer."""

    def parse_server_time(self, payload: Any) -> int:
        """The venue's time in epoch milliseconds."""

    def parse_price(self, payload: Any) -> Decimal:
        """The last price from the venue's ticker answer."""

    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        """The rate limits the venue publishes (empty if it publishes none)."""

    def parse_withdrawal(self, payload: Any) -> str:
        """The withdrawal id from the venue's answer."""
