"""ccxt's unified structures read into our models: orders, balances, markets, market data.

ccxt has already parsed the exchange's answer (its numbers as text, since the codec sets
``number = str``); what is left is to carry those fields into our models as ``Decimal``,
and to tell our order type from however ccxt reports it. The venue's ``parse_*`` methods
call these (under ``reads_answer``, which makes a malformed answer ambiguous).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ...errors import InvalidRequest
from ...models import (
    Balance,
    BookLevel,
    Candle,
    Fill,
    Instrument,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
)

__all__ = [
    "balances",
    "candles",
    "instruments",
    "order",
    "order_book",
    "orders",
    "price",
    "public_trades",
    "server_time",
    "ticker",
]

_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "canceling": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TIF = {t.value: t for t in TimeInForce}


def order(venue: str, payload: Any) -> Order:
    """A unified order as an :class:`Order` of ``venue`` (one read already, by the
    venue's ``interpret``, is returned as it is)."""
    if isinstance(payload, Order):  # read already, by interpret()
        return payload
    status = payload.get("status")
    filled = _decimal(payload.get("filled")) or Decimal(0)
    if status == "open" or status is None:
        state = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    else:
        state = _STATUS.get(status, OrderStatus.NEW)
    order_type, stop = _order_type(payload)
    price = _decimal(payload.get("price"))
    stamp = payload.get("timestamp")
    fills = tuple(
        Fill(
            price=_decimal(t.get("price")) or Decimal(0),
            quantity=_decimal(t.get("amount")) or Decimal(0),
            commission=_decimal((t.get("fee") or {}).get("cost")) or Decimal(0),
            commission_asset=(t.get("fee") or {}).get("currency"),
            trade_id=None if t.get("id") is None else str(t["id"]),
        )
        for t in payload.get("trades") or ()
    )
    return Order(
        venue=venue,
        symbol=payload["symbol"],
        order_id=str(payload["id"]),
        client_order_id=_client_order_id(payload),
        side=str(payload["side"]).upper(),
        type=order_type,
        status=state,
        # ccxt reads a Kraken viqc order's quote volume as its amount: the base
        # quantity of such an order is what executed.
        quantity=filled
        if _viqc(payload.get("info"))
        else _decimal(payload.get("amount")) or Decimal(0),
        price=price if order_type.takes_price and price else None,
        stop_price=stop,
        filled_quantity=filled,
        quote_quantity=_decimal(payload.get("cost")) or Decimal(0),
        time_in_force=_TIF.get(payload.get("timeInForce") or "")
        if order_type.takes_price
        else None,
        created_at=None
        if stamp is None
        else datetime.fromtimestamp(int(stamp) / 1000, tz=timezone.utc),
        fills=fills,
        quote_order_quantity=_asked_quote(payload.get("info")),
    )


def orders(venue: str, payload: Any) -> list[Order]:
    """A list of unified orders."""
    if isinstance(payload, (str, bytes, dict)):  # iterable, yet not a list of orders
        raise TypeError("not a list of orders")
    return [order(venue, item) for item in payload]


def balances(payload: Any) -> list[Balance]:
    """ccxt's unified balance (``free`` and ``used`` per asset)."""
    free = payload.get("free") or {}
    used = payload.get("used") or {}
    return [
        Balance(
            asset=asset,
            free=_decimal(free.get(asset)) or Decimal(0),
            locked=_decimal(used.get(asset)) or Decimal(0),
        )
        for asset in sorted(set(free) | set(used))
    ]


def instruments(payload: Any, mode: int) -> dict[str, Instrument]:
    """ccxt's market list, its precision read in the exchange's ``precisionMode``."""
    from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

    result: dict[str, Instrument] = {}
    for market in payload:
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        result[market["symbol"]] = Instrument(
            symbol=market["symbol"],
            base_asset=market["base"],
            quote_asset=market["quote"],
            tick_size=_step(precision.get("price"), mode, TICK_SIZE, DECIMAL_PLACES),
            step_size=_step(precision.get("amount"), mode, TICK_SIZE, DECIMAL_PLACES),
            min_quantity=_decimal((limits.get("amount") or {}).get("min")) or Decimal(0),
            min_notional=_decimal((limits.get("cost") or {}).get("min")) or Decimal(0),
            trading=market.get("active") is not False,
            # ccxt truncates a cost to this (cost_to_precision; Binance's quoteOrderQty
            # to the price's): an amount off it is refused, never silently cut.
            quote_step=_step(
                precision.get("cost") or precision.get("price"), mode, TICK_SIZE, DECIMAL_PLACES
            ),
        )
    return result


def server_time(payload: Any) -> int:
    """``fetch_time``'s milliseconds."""
    if isinstance(payload, bool) or not isinstance(payload, (int, str)):
        raise TypeError(f"a server time is milliseconds, got {type(payload).__name__}")
    # A subclass's own int() or repr (in int()'s ValueError) must not run: its value only.
    return int(str.__str__(payload) if isinstance(payload, str) else int.__index__(payload))


def price(venue: str, payload: Any) -> Decimal:
    """A ticker's last price (else its close)."""
    price = _decimal(payload.get("last")) or _decimal(payload.get("close"))
    if price is None:
        raise InvalidRequest(f"{venue}: the ticker carries no last price")
    return price


def ticker(payload: Any, symbol: str) -> Ticker:
    """ccxt's unified ticker (``last``, ``bid``, ``ask``, ``baseVolume``...)."""
    last = _decimal(payload.get("last")) or _decimal(payload.get("close"))
    if last is None:
        raise ValueError("the ticker carries no last price")
    stamp = payload.get("timestamp")
    return Ticker(
        symbol=symbol,
        last=last,
        bid=_decimal(payload.get("bid")),
        ask=_decimal(payload.get("ask")),
        bid_quantity=_decimal(payload.get("bidVolume")),
        ask_quantity=_decimal(payload.get("askVolume")),
        open=_decimal(payload.get("open")),
        high=_decimal(payload.get("high")),
        low=_decimal(payload.get("low")),
        volume=_decimal(payload.get("baseVolume")),
        quote_volume=_decimal(payload.get("quoteVolume")),
        at=None if stamp is None else _moment(stamp),
    )


def order_book(payload: Any, symbol: str) -> OrderBook:
    """ccxt's unified book: ``[price, amount]`` rows, best first."""
    stamp = payload.get("timestamp")
    nonce = payload.get("nonce")
    return OrderBook(
        symbol=symbol,
        bids=tuple(_level(row) for row in payload["bids"]),
        asks=tuple(_level(row) for row in payload["asks"]),
        at=None if stamp is None else _moment(stamp),
        sequence=None if nonce is None else int(nonce),
    )


def candles(payload: Any, symbol: str, interval: str) -> list[Candle]:
    """ccxt's OHLCV rows: ``[ms, open, high, low, close, volume]``."""
    if isinstance(payload, (str, bytes, dict)):
        raise TypeError("not a list of candles")
    return [
        Candle(
            symbol=symbol,
            interval=interval,
            opened_at=_moment(row[0]),
            open=_decimal(row[1]),
            high=_decimal(row[2]),
            low=_decimal(row[3]),
            close=_decimal(row[4]),
            volume=_decimal(row[5]) or Decimal(0),
        )
        for row in payload
    ]


def public_trades(payload: Any, symbol: str) -> list[PublicTrade]:
    """ccxt's unified trades, oldest first."""
    if isinstance(payload, (str, bytes, dict)):
        raise TypeError("not a list of trades")
    return [
        PublicTrade(
            symbol=symbol,
            trade_id=None if t.get("id") is None else str(t["id"]),
            price=_decimal(t["price"]),
            quantity=_decimal(t["amount"]),
            at=_moment(t["timestamp"]),
            side=_SIDES.get(str(t.get("side"))),
        )
        for t in payload
    ]


_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


# ccxt's order types as exchanges name them (Binance's STOP_LOSS_LIMIT lower-cased,
# Kraken's stop-loss-limit), once dashes and spaces are underscores.
_CONDITIONAL = {
    t.value.lower(): t for t in OrderType if t.is_conditional and t is not OrderType.OCO
}


def _order_type(payload: Any) -> tuple[OrderType, Decimal | None]:
    """Our type of a unified order, and its trigger. ccxt reports a Binance stop as a
    ``limit`` or ``market`` order with ``triggerPrice`` (its own type, STOP_LOSS_LIMIT,
    stays in ``info``), and a Kraken one with ``stopLossPrice`` or ``takeProfitPrice``.
    A bare ``triggerPrice`` is a stop-loss, as ccxt's Binance reads one when placing."""
    kind = _type_name(payload.get("type"))
    info = payload.get("info")
    raw = _type_name(info.get("type")) if isinstance(info, dict) else ""
    loss = _decimal(payload.get("stopLossPrice")) or None
    profit = _decimal(payload.get("takeProfitPrice")) or None
    trigger = loss or profit or _decimal(payload.get("triggerPrice")) or None
    for name in (kind, raw):
        if name in _CONDITIONAL:
            return _CONDITIONAL[name], trigger
    limit = kind not in ("market", "")
    if loss is None and profit is None and trigger is not None:
        loss = trigger
    if loss is not None:
        return (OrderType.STOP_LOSS_LIMIT if limit else OrderType.STOP_LOSS), loss
    if profit is not None:
        return (OrderType.TAKE_PROFIT_LIMIT if limit else OrderType.TAKE_PROFIT), profit
    return (OrderType.LIMIT if kind != "market" else OrderType.MARKET), None


def _type_name(value: Any) -> str:
    """An order type as ``stop_loss_limit``, however the exchange or ccxt spells it."""
    return str(value or "").lower().replace("-", "_").replace(" ", "_")


def _client_order_id(payload: Any) -> str:
    """The order's own client order id. A Binance cancel answers the cancel's id in
    ``clientOrderId`` and the order's in ``origClientOrderId``, and ccxt reads the first."""
    info = payload.get("info")
    original = info.get("origClientOrderId") if isinstance(info, dict) else None
    return str(original or payload.get("clientOrderId") or "")


def _moment(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def _level(row: Any) -> BookLevel:
    return BookLevel(price=_decimal(row[0]), quantity=_decimal(row[1]))


def _decimal(value: Any) -> Decimal | None:
    """A unified number (text, since the codec sets ``number = str``) as a Decimal."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))  # a float ccxt produced outside parse_number
    return Decimal(str(value))


def _step(value: Any, mode: int, tick_size: int, decimal_places: int) -> Decimal:
    """A price or amount increment from ccxt's precision, whatever its precision mode."""
    number = _decimal(value)
    if number is None:
        return Decimal(0)
    if mode == tick_size:
        return number
    if mode == decimal_places:
        return Decimal(1).scaleb(-int(number))
    return Decimal(0)  # significant digits: no fixed increment to check against


def _asked_quote(info: Any) -> Decimal | None:
    """The quote amount a quote-quantity order asked for, from the exchange's own answer
    (ccxt's unified order has no field for it): Binance ``origQuoteOrderQty`` (zero for an
    order sized in the base asset), Kraken ``vol`` on an order with the ``viqc`` flag."""
    if not isinstance(info, dict):
        return None
    asked = _decimal(info.get("origQuoteOrderQty"))
    if asked:
        return asked
    if _viqc(info):
        return _decimal(info.get("vol"))
    return None


def _viqc(info: Any) -> bool:
    """A Kraken order whose volume is in the quote currency (``oflags`` has ``viqc``)."""
    return isinstance(info, dict) and "viqc" in str(info.get("oflags") or "").split(",")
