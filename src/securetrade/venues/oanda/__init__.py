"""OANDA v20 REST: forex through a broker, with the same guarantees as the exchanges.

How it differs from the crypto venues, and how the contract carries it:

* A bearer token (``Authorization: Bearer``, redacted everywhere) authenticates; the key
  id is the account id (``101-004-1435156-001``), which every account path holds.
  :meth:`Oanda.signer` is the one place that picks the request authentication.
* Practice is the default environment; live only for a key created with
  ``environment="live"``.
* Units are signed: a BUY of 1000 is ``"1000"``, a SELL ``"-1000"``, from the request's
  side and quantity. Instruments are ``EUR_USD``; ``pipLocation``, ``displayPrecision``
  and ``tradeUnitsPrecision`` give the pip, the tick and the unit step.
* ``clientExtensions.id`` carries our deterministic client order id. OANDA refuses a
  used one only while that order is PENDING (``CLIENT_ORDER_ID_ALREADY_EXISTS``), and a
  request carries no validity window: so "not found" never proves that a lost create will
  not land (``request_deadline = False``, no strong dedupe), and an unanswered create
  stays UNKNOWN rather than being sent again. A lost answer is resolved by the client id
  (``GET /orders/@{id}``, any state); a FILLED order is then read from its fill
  transaction (``GET /transactions/{fillingTransactionID}``: price and units).
* A 201 carrying ``orderCancelTransaction`` (a FOK that could not fill, for want of margin
  or liquidity) is a refusal, never a fill; the HTTP status alone decides nothing.
* FIFO and no-hedging accounts (US accounts, NFA rule 2-43(b): ``hedgingEnabled`` false)
  net positions: an order against an open position reduces it, oldest trade first. One
  that is larger than the position would close it *and* open the opposite one in the same
  order; it is refused before anything is sent (:class:`~securetrade.errors.
  HedgingNotAllowed`), from the account as read just before (``GET /v3/accounts/{id}``:
  ``hedgingEnabled`` and ``positions``). Close first, then open: two orders, each one
  the journal knows. A copy engine's per-leader sub-positions must net on such accounts.
* Every answer carries ``lastTransactionID``: the latest seen is kept per account
  (:meth:`Oanda.cursor`), and noted for each create as it is first sent. When
  ``@{clientID}`` does not find an order, the lookup goes on through the account's
  transactions since that cursor (``/transactions/sinceid``, page after page: gap-free),
  looking for the order's create or fill. It is absent only when the pages reach the
  account's ``lastTransactionID``; a page without one (or behind the cursor, or with a
  gap) cannot show that, and is no answer. The cursor is learned from any answer (a new
  process reads instruments and open orders before its first order); a create sent
  before any answer for its account was read is scanned from the first transaction.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..._checks import instance, shown, text
from ...core.store import derive_client_order_id, is_ours
from ...errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    HedgingNotAllowed,
    InvalidRequest,
    OrderNotFound,
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
from ...signing.presented import BearerToken, HeaderAuth
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
    check_order,
    check_params,
    check_prepare,
    read_json,
    reads_answer,
    refusal_not_known,
    unreadable,
    wire_decimal,
)
from ..times import parse_time
from .market_data import OandaMarketData
from .tables import ACCOUNT, BASE_URLS, DUPLICATE, ENDPOINTS, ERRORS, RATE_LIMITS

__all__ = ["OANDA", "Oanda", "signed_units"]

_SYMBOL = re.compile(r"[A-Z0-9]{2,10}_[A-Z0-9]{2,10}")
_ACCOUNT_ID = re.compile(r"[0-9]{3}-[0-9]{3}-[0-9]{1,12}-[0-9]{3}")
_ID = re.compile(r"[0-9]{1,20}")
_TIF = {
    TimeInForce.GTC: "GTC",
    TimeInForce.DAY: "GFD",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}
_TIF_BACK = {wire: tif for tif, wire in _TIF.items()}
_STATE = {
    "PENDING": OrderStatus.NEW,
    "TRIGGERED": OrderStatus.NEW,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELED,
}
_TXN = "~transaction"  # a lookup's follow-up: read the fill transaction by id (never sent)
_SINCE = "~since"  # a lookup's follow-up: scan the transactions after this id (never sent)
_REMEMBERED = 100_000  # creates whose starting cursor is kept (the latest)


def signed_units(side: Side, quantity: Decimal) -> str:
    """OANDA's units: positive buys, negative sells."""
    return wire_decimal(quantity if side is Side.BUY else -quantity)


class Oanda(OandaMarketData):
    """The OANDA v20 adapter (forex and CFDs through one account per key)."""

    name = "oanda"
    endpoints: Mapping[Op, Endpoint] = ENDPOINTS
    errors: Mapping[str, ErrorRule] = ERRORS
    base_urls: Mapping[Environment, str] = BASE_URLS
    rate_limits: Sequence[RateLimit] = RATE_LIMITS
    freshness = Freshness.TIMESTAMP  # nothing is stamped; the price time is the clock
    recv_window_ms = 5000
    request_deadline = False  # a held request executes whenever it arrives
    dedupe = "pending"  # a used client id is refused only while its order is PENDING
    order_acks = frozenset({Op.CANCEL_ORDER})
    order_types = frozenset({OrderType.MARKET, OrderType.LIMIT})
    time_in_force = frozenset(_TIF)
    # Read before each order, for check_account to apply the account's rules.
    account_endpoint: Endpoint | None = ACCOUNT

    def __init__(self) -> None:
        self._cursors: dict[str, int] = {}  # account -> highest lastTransactionID seen
        # client order id -> the account's cursor when its create was first sent: where a
        # scan of the account's transactions for it starts (kept for the latest creates).
        self._sent_after: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "Oanda()"

    def cursor(self, account: str) -> int:
        """The highest ``lastTransactionID`` an answer for ``account`` carried (0 before)."""
        text("account", account)
        with self._lock:
            return self._cursors.get(account, 0)

    def check_symbol(self, symbol: str) -> None:
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequest(
                f"symbol {shown(symbol)} is not an OANDA instrument (e.g. EUR_USD)"
            )

    def signer(self, key: ApiKey) -> Signer:
        """The request authentication for ``key``: the one place that chooses it. An
        OANDA personal access token (kind HMAC: a secret text) is a bearer token."""
        instance("key", key, ApiKey, optional=False)
        if key.kind is not KeyKind.HMAC:
            raise InvalidRequest(f"OANDA keys are a token (kind 'hmac'), not {key.kind.value}")
        return BearerToken(key.secret)

    def client_order_id(self, account: str, idempotency_key: str) -> str:
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
        if not _ACCOUNT_ID.fullmatch(key_id):
            raise InvalidRequest(
                f"an OANDA key id is its account id (e.g. 101-004-1435156-001), not {shown(key_id)}"
            )
        fields = dict(params)
        path = endpoint.path.replace("{account}", key_id)
        method = endpoint.method
        body = b""
        op = endpoint.op
        if op is Op.PLACE_ORDER:
            body = encode_json({"order": _order_body(params)})
            self._remember(key_id, fields.get("clientExtensions.id"))
        elif op is Op.CANDLES:
            instrument = fields.get("instrument", "")
            self.check_symbol(instrument)
            path = path.replace("{instrument}", instrument)
            rest = [(k, v) for k, v in params if k != "instrument"]
            path += "?" + encode_query(rest)
        elif op is Op.GET_ORDER and _SINCE in fields and "order_id" not in fields:
            if not _ID.fullmatch(fields[_SINCE]) and fields[_SINCE] != "0":
                raise InvalidRequest("an OANDA transaction id is a number")
            base = endpoint.path.replace("{account}", key_id).removesuffix("/orders")
            path = base + "/transactions/sinceid?" + encode_query([("id", fields[_SINCE])])
        elif op in (Op.GET_ORDER, Op.CANCEL_ORDER):
            path += "/" + _specifier(fields)
            if op is Op.CANCEL_ORDER:
                path += "/cancel"
            elif _TXN in fields:
                if not _ID.fullmatch(fields[_TXN]):
                    raise InvalidRequest("an OANDA transaction id is a number")
                path = endpoint.path.replace("{account}", key_id).replace(
                    "/orders", "/transactions/" + fields[_TXN]
                )
        elif op in (Op.SERVER_TIME, Op.TICKER_PRICE, Op.TICKER, Op.ORDER_BOOK):
            instrument = fields.get("instrument", "EUR_USD")
            self.check_symbol(instrument)
            path += "?" + encode_query([("instruments", instrument)])
        if not isinstance(signer, HeaderAuth):  # what signer() chose: the bearer token
            raise InvalidRequest(f"{op.value} needs an OANDA token")
        headers = (*signer.headers(key_id), ("Accept-Datetime-Format", "RFC3339"))
        if body:
            headers = (*headers, ("Content-Type", "application/json"))
        return HttpRequest(method, path, headers, body)

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params:
        check_order(order, client_order_id)
        if not is_ours(client_order_id) and not 1 <= len(client_order_id) <= 128:
            raise InvalidRequest("an OANDA client id is 1 to 128 characters")
        if order.extended_hours:
            raise InvalidRequest("OANDA trades forex around the week: extended_hours is moot")
        if order.type is OrderType.MARKET:
            tif = "FOK"  # a market order fills in full now, or is cancelled
        else:
            assert order.time_in_force is not None  # a LIMIT order always has one (GTC)
            wire = _TIF.get(order.time_in_force)
            if wire is None:
                raise InvalidRequest(
                    f"OANDA offers GTC, DAY, IOC and FOK, not {order.time_in_force.value}"
                )
            tif = wire
        params: Params = [
            ("type", order.type.value),
            ("instrument", order.symbol),
            ("units", signed_units(order.side, order.base_quantity)),
            ("timeInForce", tif),
            ("positionFill", "DEFAULT"),
        ]
        if order.price is not None:
            params.append(("price", wire_decimal(order.price)))
        params.append(("clientExtensions.id", client_order_id))
        return params

    def open_orders_params(self, symbol: str | None) -> Params:
        return []  # pendingOrders takes no filter: the core filters by symbol

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params:
        if order_id is not None:
            text("order_id", order_id)
        if client_order_id is not None:
            text("client_order_id", client_order_id)
        if order_id is not None:
            if not _ID.fullmatch(order_id):
                raise InvalidRequest(f"{shown(order_id)} is not an OANDA order id (a number)")
            return [("order_id", order_id)]
        if client_order_id is not None:
            if not 1 <= len(client_order_id) <= 128 or not client_order_id.isprintable():
                raise InvalidRequest(f"{shown(client_order_id)} is not an OANDA client id")
            return [("client_order_id", client_order_id)]
        raise InvalidRequest("give order_id or client_order_id")

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params:
        raise InvalidRequest("OANDA's v20 API moves no money out: withdraw at OANDA")

    # --- responses ----------------------------------------------------------------------

    def interpret_asked(
        self, endpoint: Endpoint, params: Params, response: HttpResponse, *, key_id: str
    ) -> Outcome:
        """:meth:`interpret`, plus the account's cursor, and the lookup by client id
        carried on, gap-free, through the account's transactions since the create was sent:
        the create or the fill of the order asked about is found there even when
        ``@{clientID}`` does not answer for it."""
        check_answer(endpoint, response)
        check_params(params)
        payload = read_json(response.body)
        if isinstance(payload, dict):
            self._advance(key_id, payload.get("lastTransactionID"))
        fields = dict(params)
        cid = fields.get("client_order_id")
        if endpoint.op is not Op.GET_ORDER or cid is None or "order_id" in fields:
            return self.interpret(endpoint, response)
        if _SINCE in fields and 200 <= response.status < 300:
            return self._scanned(endpoint, response.status, payload, cid, fields[_SINCE])
        outcome = self.interpret(endpoint, response)
        if _SINCE not in fields and isinstance(outcome.error, OrderNotFound):
            with self._lock:
                start = self._sent_after.get((key_id, cid), 0)
            return Outcome(Verdict.OK, None, follow_up=[(_SINCE, str(start))])
        return outcome

    def _scanned(
        self, endpoint: Endpoint, status: int, payload: Any, cid: str, since: str
    ) -> Outcome:
        """One page of ``/transactions/sinceid`` (the transactions after ``since``): the fill
        of ``cid`` (found), its create alone (read the order by its id), more pages to read,
        or none of it (not found). "Not found" only from a page that provably reaches the
        account's last transaction (its ``lastTransactionID``), gap-free from ``since``:
        a page that does not say how far the account reaches, or that skips or overshoots,
        may leave out the very transaction asked about, and "not found" lets the order
        be sent again. Such a page is no answer (ambiguous)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("transactions"), list):
            return unreadable(endpoint, status, self.name, "not a transaction list")
        if not _ID.fullmatch(since):
            return unreadable(endpoint, status, self.name, "no transaction to scan from")
        created = None
        start = last = int(since)
        gapless = True  # each id the one after the previous, from ``since`` on
        for txn in payload["transactions"]:
            if not isinstance(txn, dict) or not _ID.fullmatch(str(txn.get("id"))):
                return unreadable(endpoint, status, self.name, "a transaction without an id")
            number = int(txn["id"])
            gapless = gapless and number == last + 1
            last = max(last, number)
            extensions = txn.get("clientExtensions")
            named = extensions.get("id") if isinstance(extensions, dict) else None
            ours = cid in (named, txn.get("clientOrderID"))
            kind = str(txn.get("type"))
            if not ours or kind.endswith("_REJECT"):
                continue  # a refused create (our own resend's duplicate, say) made nothing
            if kind == "ORDER_FILL":
                return Outcome(Verdict.OK, {"transaction": txn})
            if kind.endswith("_ORDER"):
                created = str(txn["id"])  # the order's id is its create's transaction id
        if created is not None:
            return Outcome(Verdict.OK, None, follow_up=[("order_id", created)])
        newest = payload.get("lastTransactionID")
        if not isinstance(newest, str) or not _ID.fullmatch(newest):
            return unreadable(endpoint, status, self.name, "no lastTransactionID: how far?")
        reach = int(newest)
        if not gapless or last > reach:
            return unreadable(endpoint, status, self.name, f"transactions not gap-free to {reach}")
        if reach < start:  # a replica behind the transaction the scan started from
            return unreadable(endpoint, status, self.name, f"lastTransactionID {reach} < {start}")
        if last < reach:
            if last == start:  # an empty page, yet later transactions exist
                return unreadable(endpoint, status, self.name, f"no transaction after {start}")
            return Outcome(Verdict.OK, None, follow_up=[(_SINCE, str(last))])
        absent = OrderNotFound("no order and no transaction with this client id", venue=self.name)
        return Outcome(Verdict.REJECTED, payload, absent)

    def _remember(self, account: str, cid: str | None) -> None:
        """Where a scan for ``cid`` starts: the account's cursor before its first send."""
        if cid is None:
            return
        with self._lock:
            if (account, cid) not in self._sent_after:
                self._sent_after[(account, cid)] = self._cursors.get(account, 0)
                while len(self._sent_after) > _REMEMBERED:
                    self._sent_after.popitem(last=False)

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome:
        check_answer(endpoint, response)
        payload = read_json(response.body)
        status = response.status
        if 200 <= status < 300:
            if not isinstance(payload, dict):
                return unreadable(endpoint, status, self.name, "not a JSON object")
            if endpoint.op is Op.PLACE_ORDER:
                return self._created(endpoint, status, payload)
            if endpoint.op is Op.GET_ORDER and isinstance(payload.get("order"), dict):
                found = payload["order"]
                filling = found.get("fillingTransactionID")
                if found.get("state") == "FILLED" and filling is not None:
                    return Outcome(Verdict.OK, payload, follow_up=[(_TXN, str(filling))])
            return Outcome(Verdict.OK, payload)
        fields = payload if isinstance(payload, dict) else {}
        code = fields.get("errorCode")
        rejected = fields.get("orderRejectTransaction")
        if code is None and isinstance(rejected, dict):
            code = rejected.get("rejectReason")
        text = str(fields.get("errorMessage") or code or f"HTTP {status}")[:300]
        if status == 429:
            limited = RateLimited(text, venue=self.name, code=code, retry_after=1.0)
            return Outcome(Verdict.RETRYABLE, payload, limited, retry_after=1.0)
        if status >= 500 or status in (0, 408):
            return Outcome(
                Verdict.AMBIGUOUS, payload, AmbiguousOutcome(text, venue=self.name, code=code)
            )
        rule = ERRORS.get(str(code)) if code is not None else None
        if rule is None and status in (401, 403) and isinstance(fields.get("errorMessage"), str):
            rule = (Verdict.REJECTED, AuthenticationRejected)  # OANDA's own refusal of the token
        if rule is None and isinstance(rejected, dict):
            rule = (Verdict.REJECTED, VenueRejected)  # OANDA recorded the create as rejected
        if rule is None:  # no listed code: a page from in front of OANDA, or a new code
            # Never "not found", even as a 404: only OANDA's own errorCode says that.
            refused = AuthenticationRejected if status in (401, 403) else VenueRejected
            error = refused(text, venue=self.name, code=code)
            return refusal_not_known(endpoint, status, self.name, error, payload)
        verdict, kind = rule
        if status in (401, 403):
            kind = AuthenticationRejected
        return Outcome(
            verdict, payload, kind(text, venue=self.name, code=code), duplicate=code == DUPLICATE
        )

    def _created(self, endpoint: Endpoint, status: int, payload: dict[str, Any]) -> Outcome:
        """A 201: filled, resting, or created and cancelled at once (a refusal)."""
        created = payload.get("orderCreateTransaction")
        if not isinstance(created, dict):
            return unreadable(endpoint, status, self.name, "no orderCreateTransaction")
        cancelled = payload.get("orderCancelTransaction")
        if isinstance(cancelled, dict):
            if isinstance(payload.get("orderFillTransaction"), dict):
                # Filled and cancelled in one answer (a partial FOK): which stands is not
                # for the status to say. Read the order back.
                return unreadable(endpoint, status, self.name, "both a fill and a cancel")
            reason = str(cancelled.get("reason") or "cancelled")
            rule = ERRORS.get(reason, (Verdict.REJECTED, VenueRejected))
            error = rule[1](
                f"OANDA created and cancelled the order at once: {reason}; nothing filled",
                venue=self.name,
                code=reason,
            )
            return Outcome(Verdict.REJECTED, payload, error)
        return Outcome(Verdict.OK, payload)

    def _advance(self, account: str, last: Any) -> None:
        if isinstance(last, str) and _ID.fullmatch(last):
            with self._lock:
                self._cursors[account] = max(self._cursors.get(account, 0), int(last))

    @reads_answer
    def parse_order(self, payload: Any) -> Order:
        """An order from a create's 201 (its create and fill transactions), a lookup
        (``order``), or a FILLED order's fill transaction (``transaction``)."""
        if "orderCreateTransaction" in payload:
            created = payload["orderCreateTransaction"]
            fill = payload.get("orderFillTransaction")
            return self._from_transactions(created, fill)
        if "transaction" in payload:
            fill = payload["transaction"]
            return self._from_transactions(None, fill)
        return self._order(payload["order"])

    def _from_transactions(self, created: Any, fill: Any) -> Order:
        source = created if created is not None else fill
        units = Decimal(str(source["units"]))
        kind = str(source.get("type") if created is not None else fill.get("reason"))
        order_type = OrderType.LIMIT if kind.startswith("LIMIT") else OrderType.MARKET
        filled = abs(Decimal(str(fill["units"]))) if fill else Decimal(0)
        price = created.get("price") if created is not None else None
        cid = (source.get("clientExtensions") or {}).get("id") or source.get("clientOrderID")
        tif = _TIF_BACK.get(str(created.get("timeInForce"))) if created is not None else None
        order_id = source["id"] if created is not None else fill["orderID"]
        return Order(
            venue=self.name,
            symbol=str(source["instrument"]),
            order_id=str(order_id),
            client_order_id=str(cid or ""),
            side=Side.BUY if units > 0 else Side.SELL,
            type=order_type,
            status=OrderStatus.FILLED if filled >= abs(units) else OrderStatus.NEW,
            quantity=abs(units),
            price=price if order_type is OrderType.LIMIT else None,
            filled_quantity=filled,
            quote_quantity=filled * Decimal(str(fill["price"])) if fill else Decimal(0),
            time_in_force=tif if order_type is OrderType.LIMIT else None,
            created_at=parse_time(source["time"]) if source.get("time") else None,
        )

    def _order(self, entry: Mapping[str, Any]) -> Order:
        units = Decimal(str(entry["units"]))
        order_type = OrderType.LIMIT if entry["type"] == "LIMIT" else OrderType.MARKET
        status = _STATE[str(entry["state"])]
        filled = abs(units) if status is OrderStatus.FILLED else Decimal(0)
        return Order(
            venue=self.name,
            symbol=str(entry["instrument"]),
            order_id=str(entry["id"]),
            client_order_id=str((entry.get("clientExtensions") or {}).get("id") or ""),
            side=Side.BUY if units > 0 else Side.SELL,
            type=order_type,
            status=status,
            quantity=abs(units),
            price=entry.get("price") if order_type is OrderType.LIMIT else None,
            filled_quantity=filled,
            time_in_force=_TIF_BACK.get(str(entry.get("timeInForce")))
            if order_type is OrderType.LIMIT
            else None,
            created_at=parse_time(entry["createTime"]) if entry.get("createTime") else None,
        )

    @reads_answer
    def parse_orders(self, payload: Any) -> list[Order]:
        return [self._order(entry) for entry in payload["orders"]]

    def check_account(self, order: OrderRequest, payload: Any) -> None:
        """The account's rules, applied locally before anything is sent: on a netting
        (FIFO, no-hedging) account, refuse an order that would close the open position of
        its instrument and open the opposite one."""
        instance("order", order, OrderRequest, optional=False)
        hedging, net = self._position(payload, order.symbol)
        if hedging or net == 0:
            return
        quantity = order.base_quantity  # OANDA takes no quote-sized order (capabilities)
        units = quantity if order.side is Side.BUY else -quantity
        if (units > 0) == (net > 0) or abs(units) <= abs(net):
            return  # it adds to the position, or reduces or closes it
        held = "long" if net > 0 else "short"
        raise HedgingNotAllowed(
            f"this OANDA account does not allow hedging (FIFO, hedgingEnabled=false): a "
            f"{order.side.value} of {quantity} {order.symbol} against the open {held} "
            f"position of {abs(net)} would close it and open the opposite one; nothing was "
            f"sent. Close the position first (a {order.side.value} of {abs(net)}), then "
            f"place the remaining {abs(units) - abs(net)} as a new order",
            rule="no_hedging",
            venue=self.name,
        )

    @reads_answer
    def _position(self, payload: Any, symbol: str) -> tuple[bool, Decimal]:
        """(hedging allowed, net units of ``symbol``) from ``GET /v3/accounts/{id}``."""
        account = payload["account"]
        hedging = account["hedgingEnabled"]
        if not isinstance(hedging, bool):
            raise TypeError("hedgingEnabled is not a boolean")
        net = Decimal(0)
        for position in account.get("positions") or ():
            if position["instrument"] == symbol:
                net += Decimal(str(position["long"]["units"]))
                net += Decimal(str(position["short"]["units"]))  # negative or zero
        return hedging, net

    @reads_answer
    def parse_balances(self, payload: Any) -> list[Balance]:
        """The account summary: its balance, of which margin in use is held."""
        account = payload["account"]
        balance = Decimal(str(account["balance"]))
        available = Decimal(str(account.get("marginAvailable", balance)))
        free = max(min(available, balance), Decimal(0))
        return [Balance(asset=str(account["currency"]), free=free, locked=balance - free)]

    @reads_answer
    def parse_instruments(self, payload: Any) -> dict[str, Instrument]:
        result = {}
        for entry in payload["instruments"]:
            name = str(entry["name"])
            base, _, quote = name.partition("_")
            step = Decimal(1).scaleb(-int(entry.get("tradeUnitsPrecision", 0)))
            result[name] = Instrument(
                symbol=name,
                base_asset=base,
                quote_asset=quote,
                tick_size=Decimal(1).scaleb(-int(entry["displayPrecision"])),
                step_size=step,
                min_quantity=entry.get("minimumTradeSize") or step,
                asset_class=AssetClass.FOREX
                if entry.get("type") == "CURRENCY"
                else AssetClass.US_EQUITY,
                pip_location=int(entry["pipLocation"]),
            )
        return result

    @reads_answer
    def parse_server_time(self, payload: Any) -> int:
        """The ``time`` of the pricing answer: venue time."""
        return int(parse_time(payload["time"]).timestamp() * 1000)

    @reads_answer
    def parse_rate_limits(self, payload: Any) -> list[RateLimit]:
        return []  # OANDA publishes its limits in prose only: the table holds them

    @reads_answer
    def parse_withdrawal(self, payload: Any) -> str:
        raise VenueRejected("OANDA's v20 API moves no money out", venue=self.name)


OANDA = Oanda()


def _specifier(fields: Mapping[str, str]) -> str:
    """OANDA's OrderSpecifier: the order id, or the client id after ``@``."""
    order_id = fields.get("order_id")
    if order_id is not None:
        return order_id
    cid = fields.get("client_order_id")
    if cid is None:
        raise InvalidRequest("an OANDA order lookup needs an order id or a client id")
    return "@" + encode_query([("", cid)])[1:]


def _order_body(params: Params) -> dict[str, Any]:
    """The ``order`` object: ``clientExtensions.id`` nested, the rest as given (strings)."""
    body: dict[str, Any] = {}
    for name, value in params:
        if name == "clientExtensions.id":
            body["clientExtensions"] = {"id": value}
        else:
            body[name] = value
    return body
