"""``CcxtVenue``: any exchange ccxt supports, as a venue adapter under every securetrade layer.

Each operation of the core maps to one ccxt unified method. The adapter hands the core
the request that method would send, signed by ccxt (see :mod:`.codec`), and reads the
answer back through the same method, so ccxt's knowledge of the exchange (parameters,
signing, error codes, parsing) is used whole while our layers decide what is sent,
when, to which host, and what an answer means for the money.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..._checks import flag, instance, shown, text
from ...core.store import derive_client_order_id, is_ours
from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    InvalidRequest,
    OrderNotFound,
    SecureTradeError,
)
from ...keys import ApiKey, Environment, Scope
from ...models import (
    CRYPTO_TIME_IN_FORCE,
    INTERVALS,
    Balance,
    Candle,
    Instrument,
    Order,
    OrderBook,
    OrderRequest,
    OrderType,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
)
from ...ratelimit import RateLimit
from ...signing import Signer
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
    check_order,
    check_params,
    check_prepare,
    check_window,
    read_json,
    reads_answer,
    unreadable,
    wire_decimal,
    within,
)
from . import history, offers, reading
from .codec import CcxtKey, CcxtResponse, Codec, UnifiedCall, milli_cost
from .errors import ERRORS, outcome_of
from .profiles import DEFAULT, PROFILES

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["COST", "CcxtVenue"]

log = logging.getLogger("securetrade.ccxt")

# The limiter's unit for ccxt venues: thousandths of ccxt's cost unit (one ``rateLimit``
# interval per unit), so fractional costs count exactly.
COST = "CCXT_COST"
_WINDOW_SECONDS = 10.0

_ENDPOINTS = {
    e.op: e
    for e in (
        Endpoint(Op.SERVER_TIME, "GET", "fetch_time", False, None, {COST: 1000}),
        Endpoint(Op.INSTRUMENTS, "GET", "fetch_markets", False, None, {COST: 1000}),
        Endpoint(Op.TICKER_PRICE, "GET", "fetch_ticker", False, None, {COST: 1000}),
        Endpoint(Op.TICKER, "GET", "fetch_ticker", False, None, {COST: 1000}),
        Endpoint(Op.ORDER_BOOK, "GET", "fetch_order_book", False, None, {COST: 1000}),
        Endpoint(Op.CANDLES, "GET", "fetch_ohlcv", False, None, {COST: 1000}),
        Endpoint(Op.PUBLIC_TRADES, "GET", "fetch_trades", False, None, {COST: 1000}),
        Endpoint(Op.PLACE_ORDER, "POST", "create_order", True, Scope.TRADE, {COST: 1000}),
        Endpoint(Op.CANCEL_ORDER, "DELETE", "cancel_order", True, Scope.CANCEL, {COST: 1000}),
        Endpoint(Op.GET_ORDER, "GET", "fetch_order", True, Scope.READ, {COST: 1000}),
        Endpoint(Op.OPEN_ORDERS, "GET", "fetch_open_orders", True, Scope.READ, {COST: 1000}),
        Endpoint(Op.BALANCES, "GET", "fetch_balance", True, Scope.READ, {COST: 1000}),
        Endpoint(Op.WITHDRAW, "POST", "withdraw", True, Scope.WITHDRAW, {COST: 1000}),
        Endpoint(Op.KEY_PERMISSIONS, "GET", "(none)", True, Scope.READ, {COST: 1000}),
    )
}

# Offered where the exchange's paging is mapped (Profile.paging; venues/ccxt/history.py).
_HISTORY_ENDPOINTS = {
    op: Endpoint(op, "GET", history.method_of(op), True, Scope.READ, {COST: 1000})
    for op in (Op.TRADE_HISTORY, Op.ORDER_HISTORY, Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY)
}

# A unified symbol: BASE/QUOTE, with :SETTLE and an expiry/strike suffix for derivatives.
_SYMBOL = re.compile(r"[A-Za-z0-9._]{1,32}/[A-Za-z0-9._]{1,32}(?::[A-Za-z0-9._-]{1,48})?")

# Answers read into orders by interpret(), so that an unreadable one is an ambiguous
# outcome the core resolves (a lookup, a read again). A cancel's answer is read by
# parse_order later, which makes an unreadable one ambiguous too: a cancel sent again would
# only be answered "unknown order".
_ORDER_ANSWERS = frozenset({Op.PLACE_ORDER, Op.GET_ORDER})
# Answers that can tell that an order does not exist. ccxt reads a 2xx page that is not
# JSON without a word for some exchanges (its Kraken makes no orders of it, an empty list):
# such an answer is unreadable, never "not found", which would let the order be sent again.
_LOOKUPS = frozenset({Op.GET_ORDER, Op.OPEN_ORDERS, Op.TRADES})
# Where a lookup by client order id among listed orders reads (``among``): unified methods.
_AMONG = {"open": "fetch_open_orders", "closed": "fetch_closed_orders"}


class CcxtVenue:
    """The venue ``ccxt:<exchange id>``: the exchange as ccxt knows it, under our layers.

    ``options`` are passed to the ccxt exchange (they override this adapter's defaults for
    the exchange). A client binds its own copy (:meth:`bind`), with its own exchange
    object; given a ``base_url``, every ccxt API root points at it.
    """

    errors: Mapping[Any, ErrorRule] = ERRORS
    recv_window_ms = 5000

    def __init__(
        self,
        exchange_id: str,
        *,
        options: Mapping[str, Any] | None = None,
        urls: Mapping[str, str] | None = None,
        sandbox: bool = False,
    ) -> None:
        import ccxt

        if exchange_id not in ccxt.exchanges:
            raise InvalidRequest(f"ccxt has no exchange {shown(exchange_id)} (see ccxt.exchanges)")
        profile = PROFILES.get(exchange_id, DEFAULT)
        self.exchange_id = exchange_id
        self.name = f"ccxt:{exchange_id}"
        self.freshness = profile.freshness
        self.order_acks = profile.order_acks
        self._profile = profile
        self._endpoints: Mapping[Op, Endpoint] | None = None  # ccxt's tables, read once
        self._order_types: frozenset[OrderType] | None = None
        self._post_only: bool | None = None
        self._options = {**profile.options, **(options or {})}
        self._sandbox = sandbox
        self._urls = dict(urls) if urls else None
        self._codec: Codec | None = None
        self._costs: dict[tuple[Op, tuple[str, ...]], Mapping[str, int]] = {}

    def __repr__(self) -> str:
        return f"CcxtVenue({self.exchange_id!r})"

    def __copy__(self) -> CcxtVenue:
        clone = CcxtVenue.__new__(CcxtVenue)
        clone.__dict__.update(self.__dict__)  # shares the codec: one exchange object
        return clone

    # --- per client -----------------------------------------------------------------------

    def bind(self, environment: Environment, *, base_url: str | None = None) -> CcxtVenue:
        """This venue for one client, with its own exchange object: ccxt's sandbox URLs
        for a testnet key, or ``base_url`` for every API root."""
        if environment is Environment.SIMULATED and base_url is None:
            raise InvalidRequest(f"{self.name}: a simulated key needs base_url=")
        if base_url is not None:
            base_url = text("base_url", base_url)
        return CcxtVenue(
            self.exchange_id,
            options=self._options,
            urls={"*": base_url} if base_url else self._urls,
            sandbox=environment is Environment.TESTNET,
        )

    def open_transport(
        self,
        context: Any,
        *,
        asynchronous: bool,
        timeout: float,
        proxy: str | None,
        unsafe_allow_plain_http: bool,
    ) -> Any:
        """The transport of a client of this venue: ccxt's own HTTP stack, pinned."""
        from .transport import CcxtAsyncTransport, CcxtSyncTransport

        if flag("asynchronous", asynchronous):
            return CcxtAsyncTransport(
                context,
                timeout=timeout,
                proxy=proxy,
                unsafe_allow_plain_http=unsafe_allow_plain_http,
            )
        return CcxtSyncTransport(
            self.codec.exchange.session,
            context,
            timeout=timeout,
            proxy=proxy,
            unsafe_allow_plain_http=unsafe_allow_plain_http,
        )

    @property
    def codec(self) -> Codec:
        """The ccxt exchange object behind this venue, built at first use."""
        if self._codec is None:
            codec = Codec(
                self.exchange_id,
                options=self._options,
                urls=self._urls,
                otp_field=self._profile.otp,
            )
            if self._sandbox:
                codec.exchange.set_sandbox_mode(True)
            self._codec = codec
        return self._codec

    # --- the tables ----------------------------------------------------------------------

    @property
    def endpoints(self) -> Mapping[Op, Endpoint]:
        """The operations ccxt's ``has`` table says the exchange offers (history where
        its paging is mapped, Profile.paging): what ``client.capabilities`` lists."""
        if self._endpoints is None:
            table = _ENDPOINTS
            if self._profile.paging is not None:
                table = {**_ENDPOINTS, **_HISTORY_ENDPOINTS}
            self._endpoints = offers.offered_endpoints(self.codec.exchange, table)
        return self._endpoints

    @property
    def order_types(self) -> frozenset[OrderType]:
        """MARKET and LIMIT, and the stop-loss and take-profit kinds where ccxt maps their
        trigger for the exchange and its profile vouches for looking them up (offers.py).
        No OCO: ccxt has no unified form of one."""
        if self._order_types is None:  # read once: every order is checked against it
            exchange = self.codec.exchange
            self._order_types = offers.order_types(exchange, conditional=self._profile.conditional)
        return self._order_types

    @property
    def post_only(self) -> bool:
        """Whether ccxt maps its unified ``postOnly`` for the exchange's spot orders."""
        if self._post_only is None:
            self._post_only = offers.takes_post_only(self.codec.exchange)
        return self._post_only

    @property
    def quote_quantity(self) -> frozenset[Side]:
        """The sides on which the exchange takes market orders sized in the quote currency,
        as ccxt says (``has['createMarketBuyOrderWithCost']`` and the sell one): both at
        Binance, buys alone at Kraken (``viqc``)."""
        has = self.codec.exchange.has or {}
        return frozenset(
            side
            for side, name in (
                (Side.BUY, "createMarketBuyOrderWithCost"),
                (Side.SELL, "createMarketSellOrderWithCost"),
            )
            if has.get(name) is True
        )

    @property
    def rate_limits(self) -> Sequence[RateLimit]:
        """ccxt's pacing as a limit: one cost unit per ``rateLimit`` ms, over a window long
        enough for ccxt's costliest requests (Binance's all-symbol open orders cost 16)."""
        per_window = _WINDOW_SECONDS * 1000.0 / self.codec.rate_limit_ms
        return (RateLimit(COST, _WINDOW_SECONDS, max(1, int(per_window * 1000))),)

    @property
    def base_urls(self) -> Mapping[Environment, str]:
        """The exchange's API root per environment, as ccxt lists it."""
        urls = self.codec.exchange.urls
        found: dict[Environment, str] = {}
        pairs = ((Environment.LIVE, urls.get("api")), (Environment.TESTNET, urls.get("test")))
        for environment, table in pairs:
            first = next(iter(table.values()), None) if isinstance(table, dict) else table
            if isinstance(first, str):
                found[environment] = first
        return found

    needs_instruments = True  # ccxt builds requests from its market list: load it first

    def request_cost(self, endpoint: Endpoint, params: Params) -> Mapping[str, int]:
        """What ccxt charges for this request, in thousandths of its cost unit."""
        instance("endpoint", endpoint, Endpoint, optional=False)
        check_params(params)
        if endpoint.op is Op.KEY_PERMISSIONS:
            return endpoint.cost
        shape = (endpoint.op, tuple(sorted(name for name, value in params if value)))
        cost = self._costs.get(shape)
        if cost is None:
            call = self._call(endpoint.op, params)
            refused: SecureTradeError | None = None
            try:
                units = self.codec.cost_of(call, signed=endpoint.signed)
            except InvalidRequest:
                raise
            except Exception as exc:
                refused = _refusal(self.name, exc)
            if refused is not None:  # raised outside the except: no ccxt frame in its context
                raise refused
            cost = {COST: milli_cost(units)}
            self._costs[shape] = cost
        return cost

    # --- the contract ----------------------------------------------------------------------

    def check_symbol(self, symbol: str) -> None:
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequest(
                f"symbol {shown(symbol)} is not a ccxt unified symbol (BASE/QUOTE, e.g. BTC/USDT)"
            )

    def signer(self, key: ApiKey) -> Signer:
        """The key as ccxt's ``sign()`` reads it, lent one call at a time."""
        instance("key", key, ApiKey, optional=False)
        if key.venue != self.name:
            raise InvalidRequest(f"key is for {key.venue!r}, venue is {self.name!r}")
        if key.otp is not None and self._profile.otp is None:
            raise InvalidRequest(
                f"{self.name} takes no one-time password with an API key; build the key "
                "without otp= (ccxt:kraken is the ccxt venue that takes one)"
            )
        return CcxtKey(key)

    def client_order_id(self, account: str, idempotency_key: str) -> str:
        """The core's derived id, or its 30 hex digits behind the exchange's hex marker
        where the exchange's grammar is hex (Kraken)."""
        derived = derive_client_order_id(self.name, account, idempotency_key)
        marker = self._profile.id_marker
        return derived if marker is None else marker + derived[2:]

    def owns_client_order_id(self, client_order_id: str) -> bool:
        if self._profile.id_marker is None:
            return is_ours(client_order_id)
        return self._profile.owns_hex_id(client_order_id)

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
        call = self._call(endpoint.op, params)
        deadline = self._profile.deadline
        if endpoint.op is Op.PLACE_ORDER and deadline is not None:
            name, value = deadline(timestamp_ms, self.recv_window_ms)
            call = replace(call, params={**call.params, name: value})
        if endpoint.signed and not isinstance(signer, CcxtKey):
            raise InvalidRequest(f"{self.name}: signed requests need the venue's own signer")
        option = self._profile.recv_window_option
        codec = self.codec
        if option is not None:
            codec.exchange.options[option] = self.recv_window_ms
        refused: SecureTradeError  # set by the except below; raised after it
        try:
            return codec.build(
                call,
                signer=signer if isinstance(signer, CcxtKey) else None,
                now_ms=timestamp_ms,
                nonce=nonce,
            )
        except InvalidRequest:
            raise
        except Exception as exc:  # ccxt refused the arguments: nothing was sent
            refused = _refusal(self.name, exc)
        raise refused  # outside the except: ccxt's frames (signing included) stay behind

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        """What a delivered answer means. Every failure to read it is ambiguous, since the
        request was sent: ccxt's reading, a second request ccxt wants while reading (which
        we never send), and an order answer that does not become an :class:`Order`."""
        check_answer(endpoint, response)
        if not isinstance(response, CcxtResponse):
            return unreadable(
                endpoint,
                response.status,
                self.name,
                "it did not come through the ccxt transport; build the client without "
                "transport= so that this venue opens its own",
            )
        import ccxt

        if (
            endpoint.op in _LOOKUPS
            and 200 <= response.status < 300
            and read_json(response.body) is None
        ):
            return unreadable(endpoint, response.status, self.name, "not JSON")
        try:
            result = self.codec.read(response)
        except ccxt.BaseError as exc:
            outcome = outcome_of(
                exc,
                response.status,
                response.headers,
                response.body,
                self.name,
                creates=endpoint.op is Op.PLACE_ORDER,
            )
            if outcome.clock_skew and self.freshness is Freshness.NONCE:
                outcome = replace(outcome, clock_skew=False, bad_nonce=True)
            return outcome
        except Exception as exc:  # ccxt could not read an answer that was delivered
            log.debug("ccxt could not read a %s answer", endpoint.op.value, exc_info=True)
            return unreadable(endpoint, response.status, self.name, type(exc).__name__)
        op = endpoint.op
        if op is Op.INSTRUMENTS:
            self.codec.run_pure(lambda exchange: exchange.set_markets(result))
        if self._profile.paging == "kraken" and op in (Op.TRADE_HISTORY, Op.ORDER_HISTORY):
            try:  # what ccxt's reading drops: the count, the venue's order (history.py)
                return Outcome(Verdict.OK, history.kraken_page(op, result, response.body))
            except (ValueError, TypeError, KeyError) as exc:
                return unreadable(endpoint, response.status, self.name, type(exc).__name__)
        if op is Op.GET_ORDER and response.request is not None:
            call = response.request.call
            if call.method in _AMONG.values():
                outcome = self._found_in_list(call, result)
                if outcome.verdict is Verdict.OK and outcome.payload is not None:
                    return self._as_orders(endpoint, response.status, outcome.payload)
                return outcome
        if (op in _ORDER_ANSWERS and op not in self.order_acks) or op is Op.OPEN_ORDERS:
            return self._as_orders(endpoint, response.status, result)
        return Outcome(Verdict.OK, result)

    def refine_outcome(self, outcome: Outcome, key: ApiKey) -> Outcome:
        """On an exchange whose keys take a one-time password (Kraken), a refused
        signature on a 2FA key is :class:`~securetrade.errors.InvalidOTP` with a hint, as
        the native adapter reads it (:mod:`..kraken.otp`)."""
        instance("outcome", outcome, Outcome, optional=False)
        instance("key", key, ApiKey, optional=False)
        if self._profile.otp is None:
            return outcome
        from ..kraken.otp import BAD_SIGNATURE, refine_signature_refusal

        error = outcome.error
        if (
            isinstance(error, SecureTradeError)
            and error.code == BAD_SIGNATURE
            and not isinstance(error, AuthenticationRejected)
        ):  # ccxt files it as a plain ExchangeError: it is the key that was refused
            error = AuthenticationRejected(error.message, venue=self.name, code=error.code)
            outcome = replace(outcome, verdict=Verdict.REJECTED, error=error)
        return refine_signature_refusal(outcome, key, self.name)

    def _as_orders(self, endpoint: Endpoint, status: int, result: Any) -> Outcome:
        """An answer the core reads as orders, read now: what ccxt made of a garbled or
        HTML answer (an order of Nones) is then ambiguous here, and the core asks the
        venue, rather than refused later by the model as if nothing had been sent."""
        try:
            if endpoint.op is Op.OPEN_ORDERS:
                return Outcome(Verdict.OK, self.parse_orders(result))
            return Outcome(Verdict.OK, self.parse_order(result))
        except AmbiguousOutcome as exc:
            return unreadable(endpoint, status, self.name, exc.message)

    def _found_in_list(self, call: UnifiedCall, orders: Any) -> Outcome:
        """A lookup by client order id among listed orders: open ones first, then closed
        ones (a follow-up request). Open first, since an order only moves from open to
        closed: read in this order, an order that exists is seen in one of the two."""
        cid = call.params["clientOrderId"]
        if not isinstance(orders, list):  # ccxt lists orders; anything else is unreadable
            unreadable = AmbiguousOutcome(f"{call.method}: not a list of orders", venue=self.name)
            return Outcome(Verdict.AMBIGUOUS, None, unreadable)
        found = [o for o in orders if isinstance(o, dict) and o.get("clientOrderId") == cid]
        if found:  # the newest, should a closed order and a later one share the id
            return Outcome(Verdict.OK, max(found, key=lambda o: int(o.get("timestamp") or 0)))
        if call.method == "fetch_open_orders":
            symbol = str(call.args[0])
            return Outcome(
                Verdict.OK,
                None,
                follow_up=[("symbol", symbol), ("clientOrderId", cid), ("among", "closed")],
            )
        absent = OrderNotFound(f"no order with client order id {cid}", venue=self.name)
        return Outcome(Verdict.REJECTED, None, absent)

    # --- unified calls from our parameters -------------------------------------------------

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        """ccxt's ``create_order`` arguments. A stop-loss or take-profit is a market or
        limit order with ccxt's unified trigger (``stopLossPrice``, ``takeProfitPrice``),
        which ccxt makes Binance's STOP_LOSS... or Kraken's stop-loss... order."""
        check_order(order, client_order_id)
        if order.type not in self.order_types:
            raise InvalidRequest(
                f"{self.name} takes no {order.type.value} orders; see client.capabilities"
            )
        trigger = offers.conditional_param(order.type)
        # A quote-quantity order goes as ccxt's own createMarketOrderWithCost sends it:
        # create_order with the cost as the amount and in params['cost'].
        size = order.quote_quantity if order.quote_quantity is not None else order.base_quantity
        params: Params = [
            ("symbol", order.symbol),
            ("type", "limit" if order.type.takes_price else "market"),
            ("side", order.side.value.lower()),
            ("amount", wire_decimal(size)),
            ("price", "" if order.price is None else wire_decimal(order.price)),
            # A post-only order is a maker order whatever its time in force: ccxt makes it
            # Binance's LIMIT_MAKER, which refuses one (-1106).
            (
                "timeInForce",
                "" if order.time_in_force is None or order.post_only else order.time_in_force.value,
            ),
            ("clientOrderId", client_order_id),
        ]
        if order.post_only:  # ccxt's unified flag: LIMIT_MAKER at Binance, oflags at Kraken
            params.append(("postOnly", "true"))
        if order.quote_quantity is not None:  # quoteOrderQty at Binance, viqc at Kraken
            params.append(("cost", wire_decimal(order.quote_quantity)))
        if trigger is not None and order.stop_price is not None:
            params.append((trigger, wire_decimal(order.stop_price)))
        return params

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        if order_id is not None:
            return [("symbol", symbol), ("id", order_id)]
        if client_order_id is not None:
            params = [("symbol", symbol), ("clientOrderId", client_order_id)]
            if self._profile.lookup_in_lists:
                params.append(("among", "open"))  # then "closed": see _found_in_list
            return params
        raise InvalidRequest("give order_id or client_order_id")

    def open_orders_params(self, symbol: str | None) -> Params:
        return [] if symbol is None else [("symbol", symbol)]

    # --- market data -------------------------------------------------------------------------

    @property
    def intervals(self) -> Mapping[str, str]:
        """Our candle intervals that ccxt offers for this exchange (its ``timeframes``)."""
        offered = self.codec.exchange.timeframes or {}
        return {name: name for name in INTERVALS if name in offered}

    @property
    def time_in_force(self) -> frozenset[TimeInForce]:
        """The times in force the exchange offers (Kraken spot has no FOK)."""
        if self.exchange_id == "kraken":
            return frozenset({TimeInForce.GTC, TimeInForce.IOC})
        return CRYPTO_TIME_IN_FORCE

    def ticker_params(self, symbol: str) -> Params:
        """Parameters for ccxt's ``fetch_ticker``."""
        return [("symbol", symbol)]

    def order_book_params(self, symbol: str, depth: int) -> Params:
        """Parameters for ccxt's ``fetch_order_book``."""
        within("depth", depth, 5000)  # the exchange may allow fewer: it says so, then
        return [("symbol", symbol), ("limit", str(depth))]

    def candles_params(
        self, symbol: str, interval: str, since_ms: int | None, limit: int | None
    ) -> Params:
        """Parameters for ccxt's ``fetch_ohlcv``; refuses an interval it lacks."""
        check_candles(interval, since_ms)
        if interval not in self.intervals:
            raise InvalidRequest(
                f"{self.name} offers the intervals {', '.join(self.intervals)}; "
                f"not {shown(interval)}"
            )
        params: Params = [("symbol", symbol), ("timeframe", interval)]
        if since_ms is not None:
            params.append(("since", str(since_ms)))
        if limit is not None:
            within("limit", limit, 1000)
            params.append(("limit", str(limit)))
        return params

    def public_trades_params(self, symbol: str, limit: int | None) -> Params:
        """Parameters for ccxt's ``fetch_trades``."""
        params: Params = [("symbol", symbol)]
        if limit is not None:
            within("limit", limit, 1000)
            params.append(("limit", str(limit)))
        return params

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        check_amount(amount)
        if network is not None:
            network = text("network", network, empty=True)
        params: Params = [("code", asset), ("amount", wire_decimal(amount)), ("address", address)]
        if network:
            params.append(("network", network))
        return params

    # --- account history (venues/ccxt/history.py) -------------------------------------------

    def history_params(self, made: Window, cursor: str | None) -> Params:
        """One page of history as a unified call's arguments: see :mod:`.history`."""
        check_window(made)
        cursor = check_cursor(cursor)
        return history.history_params(self._profile.paging, made, cursor)

    @reads_answer
    def parse_history(
        self, made: Window, cursor: str | None, payload: Any
    ) -> tuple[list[Any], str | None]:
        """One page of ccxt's unified trades, orders or transfers as our models, within the
        call's range, and the cursor of the next page (``None``: the last)."""
        return history.parse_history(self._profile.paging, made, cursor, payload, self.parse_order)

    def _history_call(self, op: Op, p: Mapping[str, str]) -> UnifiedCall:
        """A page of history: the exchange's own parameters (``x.``) passed on as given."""
        extra = {k[len(history.EXTRA) :]: v for k, v in p.items() if k.startswith(history.EXTRA)}
        since, limit = _count(p, "since"), _count(p, "limit")
        if op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
            return UnifiedCall(history.method_of(op), (p.get("code"), since, limit), extra)
        method = history.method_of(op)
        if self._profile.paging == "kraken" and op is Op.ORDER_HISTORY:
            method = "fetch_closed_orders"  # Kraken lists closed orders, not all of them
        return UnifiedCall(method, (p.get("symbol"), since, limit), extra)

    def _call(self, op: Op, params: Params) -> UnifiedCall:
        p = {name: value for name, value in params if value != ""}
        if op in _HISTORY_ENDPOINTS:
            return self._history_call(op, p)
        if op is Op.SERVER_TIME:
            return UnifiedCall("fetch_time")
        if op is Op.INSTRUMENTS:
            return UnifiedCall("fetch_markets")
        if op in (Op.TICKER_PRICE, Op.TICKER):
            return UnifiedCall("fetch_ticker", (_required(p, "symbol"),))
        if op is Op.ORDER_BOOK:
            return UnifiedCall("fetch_order_book", (_required(p, "symbol"), _count(p, "limit")))
        if op is Op.CANDLES:
            bars = (_required(p, "symbol"), p.get("timeframe", "1m"))
            return UnifiedCall("fetch_ohlcv", (*bars, _count(p, "since"), _count(p, "limit")))
        if op is Op.PUBLIC_TRADES:
            return UnifiedCall("fetch_trades", (_required(p, "symbol"), None, _count(p, "limit")))
        if op is Op.PLACE_ORDER:
            extra: dict[str, Any] = {"clientOrderId": _required(p, "clientOrderId")}
            if "timeInForce" in p:
                extra["timeInForce"] = p["timeInForce"]
            if p.get("postOnly") == "true":
                extra["postOnly"] = True
            if "cost" in p:
                extra["cost"] = p["cost"]
            for trigger in ("stopLossPrice", "takeProfitPrice"):
                if trigger in p:
                    extra[trigger] = p[trigger]
            args = (p["symbol"], p["type"], p["side"], p["amount"], p.get("price"))
            return UnifiedCall("create_order", args, extra)
        if op is Op.GET_ORDER and "among" in p:
            method = _AMONG.get(p["among"])
            if method is None:
                raise InvalidRequest(f"{self.name}: orders are listed open or closed")
            extra = {"clientOrderId": _required(p, "clientOrderId")}
            return UnifiedCall(method, (_required(p, "symbol"),), extra)
        if op in (Op.GET_ORDER, Op.CANCEL_ORDER):
            method = "fetch_order" if op is Op.GET_ORDER else "cancel_order"
            extra = {"clientOrderId": p["clientOrderId"]} if "clientOrderId" in p else {}
            return UnifiedCall(method, (p.get("id"), _required(p, "symbol")), extra)
        if op is Op.OPEN_ORDERS:
            return UnifiedCall("fetch_open_orders", (p.get("symbol"),))
        if op is Op.BALANCES:
            return UnifiedCall("fetch_balance")
        if op is Op.WITHDRAW:
            extra = {"network": p["network"]} if "network" in p else {}
            return UnifiedCall("withdraw", (p["code"], p["amount"], p["address"], None), extra)
        raise InvalidRequest(f"{self.name}: ccxt has no unified method for {op.value}")

    # --- unified structures into our models ------------------------------------------------

    @reads_answer
    def parse_order(self, payload: Any) -> Order:
        return reading.order(self.name, payload)

    @reads_answer
    def parse_orders(self, payload: Any) -> list[Order]:
        return reading.orders(self.name, payload)

    @reads_answer
    def parse_balances(self, payload: Any) -> list[Balance]:
        return reading.balances(payload)

    @reads_answer
    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        return reading.instruments(payload, self.codec.exchange.precisionMode)

    @reads_answer
    def parse_server_time(self, payload: Any) -> int:
        return reading.server_time(payload)

    @reads_answer
    def parse_price(self, payload: Any) -> Decimal:
        return reading.price(self.name, payload)

    @reads_answer
    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        return []  # ccxt's market list carries none; ``rate_limits`` holds ccxt's pacing

    @reads_answer
    def parse_withdrawal(self, payload: Any) -> str:
        return str(payload["id"])

    @reads_answer
    def parse_ticker(self, payload: Any, symbol: str) -> Ticker:
        """ccxt's unified ticker (``last``, ``bid``, ``ask``, ``baseVolume``...)."""
        return reading.ticker(payload, symbol)

    @reads_answer
    def parse_order_book(self, payload: Any, symbol: str) -> OrderBook:
        """ccxt's unified book: ``[price, amount]`` rows, best first."""
        return reading.order_book(payload, symbol)

    @reads_answer
    def parse_candles(self, payload: Any, symbol: str, interval: str) -> list[Candle]:
        """ccxt's OHLCV rows: ``[ms, open, high, low, close, volume]``."""
        return reading.candles(payload, symbol, interval)

    @reads_answer
    def parse_public_trades(self, payload: Any, symbol: str) -> list[PublicTrade]:
        """ccxt's unified trades, oldest first."""
        return reading.public_trades(payload, symbol)


def _count(params: Mapping[str, str], name: str) -> int | None:
    """A whole-number argument of a unified method, or ``None`` when not given."""
    value = params.get(name)
    return None if value is None else int(value)


def _required(params: Mapping[str, str], name: str) -> str:
    try:
        return params[name]
    except KeyError:
        raise InvalidRequest(f"{name} is required") from None


def _refusal(venue: str, exc: BaseException) -> SecureTradeError:
    """ccxt refused to build a request: a local refusal, since nothing was sent."""
    from ...transport.redaction import redact_query

    return InvalidRequest(f"{venue}: {type(exc).__name__}: {redact_query(str(exc))[:300]}")
