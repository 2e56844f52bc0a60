"""Kraken spot REST: nonce-signed private calls, ``cl_ord_id`` idempotency, string errors.

How it differs from Binance, and how the contract carries it:

* Freshness is a nonce, strictly increasing per API key (``Freshness.NONCE``): the core
  draws one per signed request from its :mod:`securetrade.nonce` source.
* ``API-Sign`` is HMAC-SHA512 over the URI path and SHA-256(nonce + body), keyed with the
  base64-decoded secret (:class:`~securetrade.signing.KrakenSigner`); the body is the exact
  form-encoded bytes sent.
* A request has no validity window of its own. ``AddOrder`` carries ``deadline`` (venue
  time plus ``recv_window_ms``, 2 to 60 s ahead), after which the matching engine refuses
  it: that is what lets the core prove a lost order can no longer execute.
* ``AddOrder`` and ``CancelOrder`` answer with an acknowledgement only (``order_acks``): the
  core reads the order back by ``cl_ord_id``.
* ``QueryOrders`` needs a ``txid``, so an order is looked up by ``cl_ord_id`` among
  ``OpenOrders``, then (a follow-up request) ``ClosedOrders``, both filtered by it. Open
  first: an order only moves from open to closed, so read in this order it cannot slip
  between the two reads. ``CancelOrder`` takes ``cl_ord_id`` itself.
* Errors are strings such as ``EOrder:Insufficient funds`` (``tables.ERRORS``).
* Symbols are Kraken's pair altnames (``XBTUSDT``); asset codes are read back in the
  common names (``XXBT`` and ``XBT`` as ``BTC``, ``ZUSD`` as ``USD``: :func:`asset_name`),
  in balances and instruments alike, so ``BTC/USDT`` finds ``XBTUSDT``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..._checks import instance, shown, text
from ...errors import (
    AmbiguousOutcome,
    InvalidRequest,
    OrderNotFound,
    RateLimited,
    VenueRejected,
)
from ...keys import ApiKey, Environment, KeyKind, Secret
from ...models import (
    Balance,
    BookLevel,
    Candle,
    Fill,
    Instrument,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
)
from ...ratelimit import RateLimit
from ...signing import KrakenSigner, Signer, encode_query
from ...transport.base import HttpRequest, HttpResponse
from ..base import (
    Endpoint,
    ErrorRule,
    Freshness,
    Op,
    Outcome,
    Params,
    Verdict,
    check_amount,
    check_answer,
    check_candles,
    check_cursor,
    check_intent,
    check_order,
    check_params,
    check_prepare,
    check_window,
    read_json,
    reads_answer,
    refusal_not_known,
    unreadable,
    wire_decimal,
    within,
)
from . import history, trades
from .otp import refine_signature_refusal
from .tables import CLIENT_ORDER_ID, ENDPOINTS, ERRORS, RATE_PAUSES, asset_name, rate_limits

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["CLIENT_ORDER_ID", "ENDPOINTS", "ERRORS", "KRAKEN", "KrakenSpot", "asset_name"]

_SYMBOL = re.compile(r"[A-Z0-9]{2,16}(?:\.[A-Z0-9]{1,4})?")
_STATUS = {
    "pending": OrderStatus.NEW,
    "open": OrderStatus.NEW,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
}
_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}  # Kraken spot has no FOK
_MIN_DEADLINE_MS = 2000  # AddOrder's deadline must be 2 to 60 s ahead
_MAX_DEADLINE_MS = 60_000
_CID_PREFIX = "5e"  # marks the ids this SDK derives (hex, so the id stays a short UUID)
_OWN_CID = re.compile(_CID_PREFIX + "[0-9a-f]{30}").fullmatch
# Which list a lookup by ``cl_ord_id`` reads. Never sent: ``prepare`` turns it into a path.
_AMONG = "~among"
# OHLC ``interval`` in minutes, for the intervals of models.INTERVALS Kraken offers.
_OHLC_INTERVALS = {
    "1m": "1",
    "5m": "5",
    "15m": "15",
    "30m": "30",
    "1h": "60",
    "4h": "240",
    "1d": "1440",
    "1w": "10080",
    "2w": "21600",
}
_DEPTH_MAX = 500  # Depth ``count``
_TRADES_MAX = 1000  # Trades ``count``
_LISTS = {"open": "/0/private/OpenOrders", "closed": "/0/private/ClosedOrders"}


class KrakenSpot:
    """The Kraken spot venue adapter. ``tier`` selects the account's rate-limit table."""

    name = "kraken"
    endpoints: Mapping[Op, Endpoint] = ENDPOINTS
    errors: Mapping[str, ErrorRule] = ERRORS
    base_urls: Mapping[Environment, str] = {Environment.LIVE: "https://api.kraken.com"}
    freshness = Freshness.NONCE
    recv_window_ms = 5000
    order_acks = frozenset({Op.PLACE_ORDER, Op.CANCEL_ORDER})
    time_in_force = frozenset(_TIF)  # GTC and IOC: Kraken spot has no FOK
    # Kraken spot has no one-cancels-the-other order: refused before any I/O.
    order_types = frozenset(t for t in OrderType if t is not OrderType.OCO)
    post_only = True  # oflags=post
    quote_quantity = frozenset({Side.BUY})  # oflags=viqc: market buys only

    def __init__(self, tier: str = "starter") -> None:
        self.tier = tier
        self.rate_limits: Sequence[RateLimit] = rate_limits(tier)

    def __repr__(self) -> str:
        return f"KrakenSpot(tier={self.tier!r})"

    def check_symbol(self, symbol: str) -> None:
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequest(
                f"symbol {shown(symbol)} is not a Kraken pair name (its altname, e.g. XBTUSDT)"
            )

    def signer(self, key: ApiKey) -> Signer:
        """Kraken keys are HMAC-SHA512 with a base64 secret; a 2FA key brings its OTP."""
        instance("key", key, ApiKey, optional=False)
        if key.kind is not KeyKind.HMAC:
            raise InvalidRequest(f"Kraken spot keys are HMAC keys, not {key.kind.value}")
        return KrakenSigner(key.secret, otp=key.otp)

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        """32 lowercase hex (a short UUID, Kraken's fastest ``cl_ord_id`` form), from the
        venue, account and idempotency key, so every host derives the same one."""
        check_intent(account, idempotency_key)
        material = f"{self.name}\x00{account}\x00{idempotency_key}".encode()
        return _CID_PREFIX + hashlib.sha256(material).hexdigest()[:30]

    def owns_client_order_id(self, client_order_id: str) -> bool:
        if type(client_order_id) is not str:
            text("client_order_id", client_order_id)
        return _OWN_CID(client_order_id) is not None

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
        if not endpoint.signed:
            encoded = encode_query(params)
            return HttpRequest(endpoint.method, endpoint.path + ("?" + encoded if encoded else ""))
        if not isinstance(signer, KrakenSigner):
            raise InvalidRequest(f"{endpoint.op.value} needs a Kraken signing key")
        if nonce is None:
            raise InvalidRequest(f"{endpoint.op.value} needs a nonce")
        path = endpoint.path
        if endpoint.op is Op.PLACE_ORDER:
            params = [*params, ("deadline", self._deadline(timestamp_ms))]
        elif endpoint.op is Op.GET_ORDER:
            path, params = _lookup(params)
        elif endpoint.op is Op.TRADES:
            path, params = trades.trades_request(params)
        fields = [("nonce", str(nonce)), *params]
        if signer.otp is not None:  # 2FA key: the code is part of the signed body
            fields.append(("otp", signer.otp.code(timestamp_ms / 1000)))
        body = encode_query(fields).encode("ascii")
        headers = (
            ("API-Key", key_id),
            ("API-Sign", signer.sign_request(path, nonce, body)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        )
        return HttpRequest("POST", path, headers, body)

    def _deadline(self, timestamp_ms: int) -> str:
        """RFC 3339, whole seconds rounded down: never later than the core assumes."""
        window = self.recv_window_ms
        if not _MIN_DEADLINE_MS <= window <= _MAX_DEADLINE_MS:
            raise InvalidRequest("Kraken accepts order deadlines 2 to 60 s ahead: recv_window_ms")
        moment = datetime.fromtimestamp((timestamp_ms + window) // 1000, tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        check_order(order, client_order_id)
        if not CLIENT_ORDER_ID.fullmatch(client_order_id):
            raise InvalidRequest(f"{shown(client_order_id)} is not a Kraken cl_ord_id")
        params: Params = [
            ("pair", order.symbol),
            ("type", order.side.value.lower()),
            ("ordertype", order.type.value.lower().replace("_", "-")),
        ]
        if order.quote_quantity is not None:  # a market buy: viqc, volume in the quote
            params += [("volume", wire_decimal(order.quote_quantity)), ("oflags", "viqc")]
        else:
            params.append(("volume", wire_decimal(order.base_quantity)))
        if order.stop_price is not None:  # Kraken: price is the trigger, price2 the limit
            params.append(("price", wire_decimal(order.stop_price)))
            if order.price is not None:
                params.append(("price2", wire_decimal(order.price)))
        elif order.price is not None:
            params.append(("price", wire_decimal(order.price)))
        if order.post_only:
            params.append(("oflags", "post"))
        if order.time_in_force is not None:
            tif = _TIF.get(order.time_in_force)
            if tif is None:
                raise InvalidRequest(
                    f"Kraken spot offers GTC and IOC, not {order.time_in_force.value}"
                )
            params.append(("timeinforce", tif))
        params.append(("cl_ord_id", client_order_id))
        return params

    def open_orders_params(self, symbol: str | None) -> Params:
        return []  # OpenOrders takes no pair: the core filters by symbol

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        """``txid`` for QueryOrders (and CancelOrder); ``cl_ord_id`` alone, which a lookup
        sends to OpenOrders (then ClosedOrders) and a cancel to CancelOrder."""
        if order_id is not None:
            text("order_id", order_id)
        if client_order_id is not None:
            text("client_order_id", client_order_id)
        if order_id is not None:
            return [("txid", order_id)]
        if client_order_id is not None:
            if not CLIENT_ORDER_ID.fullmatch(client_order_id):
                raise InvalidRequest(f"{shown(client_order_id)} is not a Kraken cl_ord_id")
            return [("cl_ord_id", client_order_id)]
        raise InvalidRequest("give order_id or client_order_id")

    def trades_params(self, symbol: str, order_id: str) -> Params:
        """An order's trades: first its trade ids (QueryOrders with ``trades``), then the
        trades themselves (QueryTrades, follow-up requests of 20 ids each)."""
        return [("txid", order_id), ("trades", "true")]

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        """``address`` is the name of a withdrawal key set up in the Kraken account."""
        check_amount(amount)
        return [("asset", asset), ("key", address), ("amount", wire_decimal(amount))]

    # --- responses ----------------------------------------------------------------------

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        check_answer(endpoint, response)
        payload = read_json(response.body)
        status = response.status
        errors = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(errors, list):
            text = f"HTTP {status}: not a Kraken answer"
            if 200 <= status < 300:  # delivered and "done", but unreadable: may have executed
                return unreadable(endpoint, status, self.name, "not a Kraken answer")
            if status >= 500 or status in (0, 408):
                return Outcome(Verdict.AMBIGUOUS, None, AmbiguousOutcome(text, venue=self.name))
            if status == 429:
                limited = RateLimited(text, venue=self.name, retry_after=1.0)
                return Outcome(Verdict.RETRYABLE, None, limited, retry_after=1.0)
            error = VenueRejected(text, venue=self.name)
            return refusal_not_known(endpoint, status, self.name, error)
        failures = [str(e) for e in errors if str(e).startswith("E")]  # "W..." are warnings
        result = payload.get("result")
        if not failures and 200 <= status < 300:
            if endpoint.op is Op.GET_ORDER:
                if not isinstance(result, dict):  # no result: that is not "not found"
                    return unreadable(endpoint, status, self.name, "a lookup without a result")
                return self._found(result)
            return Outcome(Verdict.OK, result)
        if not failures:
            failures = [f"HTTP {status}"]
        return self._failure(failures, status)

    def interpret_asked(
        self, endpoint: Endpoint, params: Params, response: HttpResponse, *, key_id: str
    ) -> Outcome:
        """:meth:`interpret`; for an order's trades, also the next step of the chain
        QueryOrders -> QueryTrades (20 ids a request): see :mod:`.trades`."""
        check_answer(endpoint, response)
        check_params(params)
        outcome = self.interpret(endpoint, response)
        if endpoint.op is not Op.TRADES or outcome.verdict is not Verdict.OK:
            return outcome
        return trades.trades_step(self.name, dict(params), outcome.payload)

    @reads_answer
    def parse_trades(self, payload: Any) -> list[Fill]:
        """The trades of the chain's last answer as fills: see :mod:`.trades`."""
        return trades.parse_trades(payload)

    @reads_answer
    def parse_ws_token(self, payload: Any) -> Secret:
        """GetWebSocketsToken: the token, wrapped before anything else touches it."""
        return Secret(str(payload["token"]))

    def _found(self, result: Any) -> Outcome:
        """A lookup's answer: QueryOrders ``{txid: order}``, OpenOrders ``{"open": {...}}``
        (none: ask ClosedOrders next) or ClosedOrders ``{"closed": {...}, "count": n}``."""
        listed = _listed(result)
        if listed is not None:
            among, entries = listed
            if not isinstance(entries, dict):
                unreadable = AmbiguousOutcome(f"{among} orders: not a map", venue=self.name)
                return Outcome(Verdict.AMBIGUOUS, None, unreadable)
            ids = {e.get("cl_ord_id") for e in entries.values() if isinstance(e, dict)}
            if len(ids) > 1:  # the filter was not applied: which one is ours is unknown
                mixed = AmbiguousOutcome(
                    f"{among} orders: the cl_ord_id filter was ignored", venue=self.name
                )
                return Outcome(Verdict.AMBIGUOUS, None, mixed)
            if entries:
                return Outcome(Verdict.OK, result)
            if among == "open":
                return Outcome(Verdict.OK, None, follow_up=[(_AMONG, "closed")])
        elif result:
            return Outcome(Verdict.OK, result)
        absent = OrderNotFound("no such order", venue=self.name)
        return Outcome(Verdict.REJECTED, result, absent)

    def _failure(self, failures: list[str], status: int) -> Outcome:
        first = failures[0]
        rule, verdict, kind = _rule(first)
        if status >= 500 and verdict is Verdict.REJECTED:
            verdict, kind = Verdict.AMBIGUOUS, AmbiguousOutcome  # the gateway may have lied
        text = "; ".join(failures)[:300]
        pause = RATE_PAUSES.get(rule) if rule is not None else None
        if kind is RateLimited:
            error = RateLimited(text, venue=self.name, code=first, retry_after=pause)
        else:
            error = kind(text, venue=self.name, code=first)
        return Outcome(
            verdict,
            None,
            error,
            bad_nonce=rule == "EAPI:Invalid nonce",
            duplicate=rule == "EOrder:Duplicate order",
            retry_after=pause,
        )

    def refine_outcome(self, outcome: Outcome, key: ApiKey) -> Outcome:
        """``EAPI:Invalid signature`` is also Kraken's answer to a missing or wrong OTP:
        on a key with 2FA configured it becomes :class:`InvalidOTP`; on one without, the
        message says to check whether the key has 2FA at Kraken (see :mod:`.otp`)."""
        instance("outcome", outcome, Outcome, optional=False)
        instance("key", key, ApiKey, optional=False)
        return refine_signature_refusal(outcome, key, self.name)

    @reads_answer
    def parse_order(self, payload: Any) -> Order:
        """One order from a QueryOrders result (``{txid: order}``) or a lookup among open
        or closed orders (``{"open": {txid: order}}``, ``{"closed": {...}, "count": n}``);
        the most recently opened, should a closed order and a later one share the id."""
        listed = _listed(payload)
        if listed is not None:
            payload = listed[1]
        if not isinstance(payload, dict) or not payload:
            raise OrderNotFound("no such order", venue=self.name)
        txid, entry = max(payload.items(), key=lambda item: float(item[1].get("opentm", 0)))
        return self._order(txid, entry)

    @reads_answer
    def parse_orders(self, payload: Any) -> list[Order]:
        """Orders from an OpenOrders result (``{"open": {txid: order}}``)."""
        entries = payload.get("open", {}) if isinstance(payload, dict) else {}
        return [self._order(txid, entry) for txid, entry in entries.items()]

    def _order(self, txid: str, entry: Mapping[str, Any]) -> Order:
        descr = entry.get("descr", {})
        order_type = OrderType(str(descr["ordertype"]).upper().replace("-", "_"))
        quantity = Decimal(str(entry["vol"]))
        filled = Decimal(str(entry.get("vol_exec", "0")))
        asked = None
        if "viqc" in str(entry.get("oflags", "")).split(","):
            # The volume is the quote amount asked; the base quantity is what executed.
            asked, quantity = quantity, filled
        status = _STATUS[str(entry["status"])]
        if status is OrderStatus.NEW and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        elif status is OrderStatus.FILLED and filled < quantity:
            status = OrderStatus.EXPIRED  # closed before filling in full (an IOC remainder)
        opened = entry.get("opentm")
        limit = descr.get("price")
        stop = None
        if order_type.is_conditional:  # price is the trigger; price2 the limit, if any
            stop, limit = limit, descr.get("price2")
        return Order(
            venue=self.name,
            symbol=str(descr["pair"]),
            order_id=txid,
            client_order_id=str(entry.get("cl_ord_id") or ""),
            side=str(descr["type"]).upper(),
            type=order_type,
            status=status,
            quantity=quantity,
            price=limit if order_type.takes_price else None,
            stop_price=stop,
            filled_quantity=filled,
            quote_quantity=entry.get("cost", "0"),
            time_in_force=TimeInForce(entry.get("timeinforce", "GTC"))
            if order_type.takes_price
            else None,
            created_at=None if not opened else datetime.fromtimestamp(opened, tz=timezone.utc),
            quote_order_quantity=asked,
        )

    @reads_answer
    def parse_balances(self, payload: Any) -> list[Balance]:
        """BalanceEx: ``{asset: {"balance": total, "hold_trade": held by open orders}}``."""
        result = []
        for asset, row in sorted(payload.items()):
            total = Decimal(str(row.get("balance", "0")))
            held = Decimal(str(row.get("hold_trade", "0")))
            free = _plain(max(total - held, Decimal(0)))
            result.append(Balance(asset=asset_name(asset), free=free, locked=_plain(held)))
        return sorted(result, key=lambda b: b.asset)

    @reads_answer
    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        """AssetPairs, keyed by altname: tick from ``tick_size`` (else ``pair_decimals``),
        step from ``lot_decimals``, minimums from ``ordermin`` and ``costmin``, the quote
        amount's increment from ``cost_decimals``."""
        result = {}
        for pair in payload.values():
            tick = pair.get("tick_size") or _step(int(pair["pair_decimals"]))
            result[pair["altname"]] = Instrument(
                symbol=pair["altname"],
                base_asset=asset_name(pair["base"]),
                quote_asset=asset_name(pair["quote"]),
                tick_size=tick,
                step_size=_step(int(pair["lot_decimals"])),
                min_quantity=pair.get("ordermin", "0"),
                min_notional=pair.get("costmin", "0"),
                trading=pair.get("status", "online") == "online",
                quote_step=_step(int(pair["cost_decimals"])) if "cost_decimals" in pair else 0,
            )
        return result

    # --- account history (venues/kraken/history.py) ----------------------------------------

    def history_params(self, made: Window, cursor: str | None) -> Params:
        """One page of trades, closed orders, deposits or withdrawals: see :mod:`.history`."""
        check_window(made)
        cursor = check_cursor(cursor)
        return history.history_params(made, cursor)

    @reads_answer
    def parse_history(
        self, made: Window, cursor: str | None, payload: Any
    ) -> tuple[list[Any], str | None]:
        """One page of ``TradesHistory``, ``ClosedOrders`` or a transfer status as our
        models, within the call's range, and the cursor of the next page (``None``: the
        last)."""
        return history.parse_history(made, cursor, payload, self._order, asset_name)

    # --- market data ----------------------------------------------------------------------

    intervals: Mapping[str, str] = _OHLC_INTERVALS

    def ticker_params(self, symbol: str) -> Params:
        """Parameters for Kraken's public Ticker endpoint."""
        return [("pair", symbol)]

    def order_book_params(self, symbol: str, depth: int) -> Params:
        """``Depth``: ``count`` 1 to 500 levels a side."""
        within("depth", depth, _DEPTH_MAX)
        return [("pair", symbol), ("count", str(depth))]

    def candles_params(
        self, symbol: str, interval: str, since_ms: int | None, limit: int | None
    ) -> Params:
        """``OHLC``: up to 720 of the most recent frames, later than ``since`` (seconds,
        exclusive: one second earlier is sent so that a frame opening at it is included).
        Kraken takes no count; the core keeps ``limit`` of them."""
        check_candles(interval, since_ms)
        wire = self.intervals.get(interval)
        if wire is None:
            raise InvalidRequest(
                f"Kraken offers the intervals {', '.join(self.intervals)}; not {shown(interval)}"
            )
        params: Params = [("pair", symbol), ("interval", wire)]
        if since_ms is not None:
            params.append(("since", str(max(0, since_ms // 1000 - 1))))
        return params

    def public_trades_params(self, symbol: str, limit: int | None) -> Params:
        """``Trades``: the most recent ``count`` (1 to 1000) trades."""
        params: Params = [("pair", symbol)]
        if limit is not None:
            within("limit", limit, _TRADES_MAX)
            params.append(("count", str(limit)))
        return params

    @reads_answer
    def parse_ticker(self, payload: Any, symbol: str) -> Ticker:
        """``Ticker`` of one pair: ``a``/``b`` [price, whole lot volume, lot volume], ``c``
        [last, volume], ``v``/``l``/``h`` [today, last 24 h], ``o`` today's open."""
        entry = _only(payload)
        return Ticker(
            symbol=symbol,
            last=entry["c"][0],
            bid=entry["b"][0],
            ask=entry["a"][0],
            bid_quantity=entry["b"][2],
            ask_quantity=entry["a"][2],
            open=entry["o"],
            high=entry["h"][1],
            low=entry["l"][1],
            volume=entry["v"][1],
        )

    @reads_answer
    def parse_order_book(self, payload: Any, symbol: str) -> OrderBook:
        """``Depth``: ``{pair: {"bids": [[price, volume, time]], "asks": [...]}}``."""
        entry = _only(payload)
        return OrderBook(
            symbol=symbol,
            bids=tuple(BookLevel(price=row[0], quantity=row[1]) for row in entry["bids"]),
            asks=tuple(BookLevel(price=row[0], quantity=row[1]) for row in entry["asks"]),
        )

    @reads_answer
    def parse_candles(self, payload: Any, symbol: str, interval: str) -> list[Candle]:
        """``OHLC`` rows: time (s), open, high, low, close, vwap, volume, count."""
        return [
            Candle(
                symbol=symbol,
                interval=interval,
                opened_at=datetime.fromtimestamp(int(row[0]), tz=timezone.utc),
                open=row[1],
                high=row[2],
                low=row[3],
                close=row[4],
                volume=row[6],
                trades=int(row[7]),
            )
            for row in _only(payload)
        ]

    @reads_answer
    def parse_public_trades(self, payload: Any, symbol: str) -> list[PublicTrade]:
        """``Trades`` rows: price, volume, time (s), b/s, m/l, misc, trade id; oldest first."""
        return [
            PublicTrade(
                symbol=symbol,
                trade_id=str(row[6]),
                price=row[0],
                quantity=row[1],
                at=datetime.fromtimestamp(float(row[2]), tz=timezone.utc),
                side=Side.BUY if row[3] == "b" else Side.SELL,
            )
            for row in _only(payload)
        ]

    @reads_answer
    def parse_price(self, payload: Any) -> Decimal:
        """Ticker: the last trade price, ``c[0]``, of the one pair asked for."""
        try:
            (entry,) = payload.values()
            return Decimal(str(entry["c"][0]))
        except (ValueError, KeyError, IndexError, TypeError, InvalidOperation):
            raise VenueRejected("the ticker answer holds no last price", venue=self.name) from None

    @reads_answer
    def parse_server_time(self, payload: Any) -> int:
        """``unixtime`` is whole seconds: take the middle of that second (error ±500 ms)."""
        return int(payload["unixtime"]) * 1000 + 500

    @reads_answer
    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        return []  # Kraken does not publish its counters; ``tables.TIERS`` holds them

    @reads_answer
    def parse_withdrawal(self, payload: Any) -> str:
        return str(payload["refid"])


KRAKEN = KrakenSpot()


def _rule(text: str) -> tuple[str | None, Verdict, type[Any]]:
    """The longest listed prefix of ``text`` and its rule, else the category's default."""
    best = None
    for prefix in ERRORS:
        if (text == prefix or text.startswith(prefix + ":")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    if best is not None:
        verdict, kind = ERRORS[best]
        return best, verdict, kind
    if text.startswith(("EService:", "EDatabase:")) or text.startswith("HTTP 5"):
        return None, Verdict.AMBIGUOUS, AmbiguousOutcome
    return None, Verdict.REJECTED, VenueRejected


def _lookup(params: Params) -> tuple[str, Params]:
    """Where a lookup goes: QueryOrders by ``txid`` (Kraken refuses it without one), else
    the list named by the ``_AMONG`` marker (open orders unless told), filtered by
    ``cl_ord_id``. The marker itself is not sent."""
    among = dict(params).get(_AMONG, "open")
    rest = [(name, value) for name, value in params if name != _AMONG]
    if any(name == "txid" for name, _ in rest):
        return ENDPOINTS[Op.GET_ORDER].path, rest
    if among not in _LISTS or not any(name == "cl_ord_id" for name, _ in rest):
        raise InvalidRequest("a Kraken order lookup needs a txid or a cl_ord_id")
    return _LISTS[among], rest


def _listed(result: Any) -> tuple[str, Any] | None:
    """``("open" | "closed", entries)`` for an OpenOrders or ClosedOrders answer, else
    ``None`` (a QueryOrders answer is keyed by txids, which are never these words)."""
    if isinstance(result, dict):
        for among in _LISTS:
            if among in result:
                return among, result[among]
    return None


def _plain(value: Decimal) -> Decimal:
    """The same amount without the padding of Kraken's ten decimals: ``0E-10`` reads as
    ``0`` and ``1.5000000000`` as ``1.5`` (a whole number keeps its digits: ``100``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _only(result: Any) -> Any:
    """The one pair's entry of a market-data answer keyed by pair (Kraken names the key as
    it likes: ``XXBTZUSD`` for ``XBTUSD``), beside its ``last`` cursor."""
    entries = [v for k, v in result.items() if k != "last"]
    if len(entries) != 1:
        raise ValueError(f"expected one pair in the answer, got {len(entries)}")
    return entries[0]


def _step(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)
