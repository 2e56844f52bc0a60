"""Orders: what the caller asks for (:class:`OrderRequest` and its kinds, checked before
anything is encoded) and what the venue reports back (:class:`Order`, :class:`Fill`).

Above :mod:`securetrade.models.common`.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, StrictBool, model_validator

from .._checks import plain_decimal, shown
from ..errors import InvalidRequest
from .common import (
    Money,
    OrderStatus,
    OrderType,
    Price,
    Quantity,
    Side,
    TimeInForce,
    _Model,
    _positive,
    to_decimal,
)

__all__ = [
    "Fill",
    "LimitOrder",
    "MarketOrder",
    "OcoOrder",
    "Order",
    "OrderRequest",
    "StopLimitOrder",
    "StopLossOrder",
    "TakeProfitLimitOrder",
    "TakeProfitOrder",
    "replacing",
]


# A conservative grammar every supported venue accepts; venues narrow it further.
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,39}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")


class OrderRequest(_Model):
    """What the caller wants done. Use :class:`LimitOrder` or :class:`MarketOrder`."""

    _brief: ClassVar[tuple[str, ...]] = (
        "symbol",
        "side",
        "type",
        "quantity",
        "quote_quantity",
        "price",
        "time_in_force",
        "client_order_id",
    )

    symbol: str
    side: Side
    type: OrderType
    # Exactly one of the two: the base asset's quantity, or (MARKET orders alone) the
    # quote asset's amount to spend (a BUY) or to receive (a SELL): "buy 100 USDT of BTC".
    quantity: Quantity | None = None
    quote_quantity: Annotated[Decimal, _positive("quote_quantity")] | None = Field(
        default=None, description="a MARKET order sized in the quote asset"
    )
    price: Price | None = None
    time_in_force: TimeInForce | None = None
    client_order_id: str | None = Field(default=None, description="set by the idempotency layer")
    # Brokers with sessions (Alpaca): may it execute outside the regular session.
    extended_hours: bool = Field(default=False, description="trade outside regular hours")
    stop_price: Price | None = Field(default=None, description="the trigger of a conditional")
    post_only: StrictBool = Field(default=False, description="a LIMIT order that only makes")
    stop_limit_price: Price | None = Field(default=None, description="an OCO's stop-limit")
    # Set by amend alone (:func:`replacing`), never by a caller: the venue order id this
    # order replaces in one atomic request where the venue has one (Binance
    # order/cancelReplace). Not a field, so not in the fingerprint nor the constructor: a
    # key without the cancel scope cannot cancel an order by placing one.
    _replaces: str | None = PrivateAttr(default=None)

    @property
    def replaces(self) -> str | None:
        """The venue order id this order cancels as it is placed (amend), if any."""
        # Read from pydantic's private store directly: ``self._replaces`` is found only
        # after a failed attribute lookup (an AttributeError) and pydantic's __getattr__,
        # and this is read for every order sent.
        private = self.__pydantic_private__
        return None if private is None else private.get("_replaces")

    @model_validator(mode="before")
    @classmethod
    def _check_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            symbol = data.get("symbol")
            if isinstance(symbol, str) and not _SYMBOL_RE.fullmatch(symbol):
                raise InvalidRequest(f"symbol: {shown(symbol)} has characters no venue accepts")
            cid = data.get("client_order_id")
            if isinstance(cid, str) and not _CLIENT_ID_RE.fullmatch(cid):
                raise InvalidRequest(
                    f"client_order_id: {shown(cid)} must be 1-36 of A-Z a-z 0-9 _ -"
                )
            side = data.get("side")
            if isinstance(side, str):
                data = {**data, "side": side.upper()}
            kind = data.get("type", cls.model_fields["type"].default)
            data = _check_kind(kind, data)
        return data

    @property
    def notional(self) -> Decimal | None:
        """Quantity times limit price; a quote-quantity order's quote amount; ``None`` for
        a market order sized in the base asset (its value depends on the fill)."""
        # The fields from __dict__: each attribute read of a model goes through pydantic's
        # __getattr__ hook, a slow lookup, and this runs several times for every order.
        fields = self.__dict__
        quote, quantity, price = fields["quote_quantity"], fields["quantity"], fields["price"]
        if quote is not None:
            return quote  # type: ignore[no-any-return]
        if price is None or quantity is None:
            return None
        return quantity * price  # type: ignore[no-any-return]

    @property
    def base_quantity(self) -> Decimal:
        """The base quantity of an order sized in it. A quote-quantity order has none until
        it fills: asking is refused (callers that may see one check ``quote_quantity``)."""
        if self.quantity is None:
            raise InvalidRequest(
                f"this {self.type.value} order is sized by quote_quantity {self.quote_quantity}: "
                "its base quantity is known only once it fills"
            )
        return self.quantity

    def estimated_quantity(self, price: Decimal) -> Decimal:
        """The base quantity, or a quote-quantity order's estimate at ``price`` (quote
        amount / price): what the size limits judge before the fill decides it."""
        quote = self.quote_quantity
        if quote is None:
            return self.base_quantity
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise InvalidRequest(
                f"cannot value {self.symbol} at that price: give a positive finite Decimal"
            )
        return quote / price

    def fingerprint(self) -> str:
        """A canonical text of the parameters that define the intent (idempotency check).
        A stop price and post-only are appended only when set, so the fingerprint of
        every plain order is what it always was (journals written before keep matching)."""
        fields = self.__dict__  # one attribute read, not twelve (see notional)
        quantity, price, tif = fields["quantity"], fields["price"], fields["time_in_force"]
        parts = [
            fields["symbol"],
            fields["side"]._value_,  # _value_: .value is a Python property, this a slot read
            fields["type"]._value_,
            "" if quantity is None else _canonical(quantity),
            "" if price is None else _canonical(price),
            "" if tif is None else tif._value_,
        ]
        stop, stop_limit, quote = (
            fields["stop_price"],
            fields["stop_limit_price"],
            fields["quote_quantity"],
        )
        if stop is not None:
            parts.append("stop=" + _canonical(stop))
        if fields["post_only"]:
            parts.append("post_only")
        if stop_limit is not None:
            parts.append("stop_limit=" + _canonical(stop_limit))
        if fields["extended_hours"]:
            parts.append("extended_hours")
        if quote is not None:
            parts.append("quote=" + _canonical(quote))
        return "|".join(parts)


def replacing(order: OrderRequest, order_id: str) -> OrderRequest:
    """A copy of ``order`` that replaces the venue's order ``order_id`` as it is placed."""
    copy = order.model_copy()
    copy._replaces = order_id
    return copy


def as_replayed(order: Order, replayed: bool = True) -> Order:
    """A copy of ``order`` marked as an earlier call's answer (see :attr:`Order.replayed`)."""
    copy = order.model_copy()
    copy._replayed = replayed
    return copy


def as_json(order: Order) -> str:
    """``order.model_dump_json()``, the text the journal keeps of an answer: pydantic's
    serializer called directly (its Python wrapper relays fifteen keywords per call)."""
    return type(order).__pydantic_serializer__.to_json(order).decode()


def _check_kind(kind: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The fields each order type takes: a price and time in force for the limit kinds
    (GTC unless told), a stop price for the conditional ones, post-only on LIMIT alone."""
    try:
        kind = OrderType(kind)
    except ValueError:
        return data  # the field's own validation refuses it
    if kind.takes_price and data.get("time_in_force") is None:
        # A limit order without a time in force is refused by Binance (-1102) and
        # means GTC elsewhere: it is GTC, here, in the fingerprint and on the wire.
        data = {**data, "time_in_force": TimeInForce.GTC}
    elif not kind.takes_price and data.get("time_in_force") is not None:
        raise InvalidRequest(
            f"time_in_force: a {kind.value} order takes none (it applies to limit orders)"
        )
    if kind.takes_price and data.get("price") is None:
        raise InvalidRequest(f"price: a {kind.value} order needs a limit price")
    if not kind.takes_price and data.get("price") is not None:
        raise InvalidRequest(f"price: a {kind.value} order takes no limit price")
    if kind.is_conditional and data.get("stop_price") is None:
        raise InvalidRequest(f"stop_price: a {kind.value} order needs its trigger price")
    if not kind.is_conditional and data.get("stop_price") is not None:
        raise InvalidRequest(f"stop_price: a {kind.value} order has no trigger")
    if data.get("post_only") and kind is not OrderType.LIMIT:
        raise InvalidRequest("post_only: only a LIMIT order can be post-only")
    if data.get("stop_limit_price") is not None and kind is not OrderType.OCO:
        raise InvalidRequest("stop_limit_price: only an OCO order has one (its stop leg's)")
    if kind is OrderType.OCO:
        _check_oco(data)
    _check_size(kind, data)
    return data


def _check_size(kind: OrderType, data: dict[str, Any]) -> None:
    """Exactly one size: a base ``quantity``, or a MARKET order's ``quote_quantity``."""
    quote = data.get("quote_quantity") is not None
    base = data.get("quantity") is not None
    if quote and kind is not OrderType.MARKET:
        raise InvalidRequest(
            f"quote_quantity: only a MARKET order can be sized in the quote asset, not a "
            f"{kind.value} one; give its quantity"
        )
    if quote and base:
        raise InvalidRequest(
            "give either quantity (base asset) or quote_quantity (quote asset), not both"
        )
    if not quote and not base:
        hint = " (or quote_quantity, the quote asset to spend)" if kind is OrderType.MARKET else ""
        raise InvalidRequest(f"quantity: a {kind.value} order needs a quantity{hint}")


def _check_oco(data: dict[str, Any]) -> None:
    """An OCO's legs on the right sides: a SELL's limit above its stop (take the profit
    above, cut the loss below), a BUY's below it; the stop-limit beyond its trigger."""
    try:
        side = Side(str(data.get("side")))
        price = to_decimal(data.get("price"), field="price")
        stop = to_decimal(data.get("stop_price"), field="stop_price")
    except (InvalidRequest, ValueError):
        return  # the fields' own validation says what is wrong
    if (side is Side.SELL and price <= stop) or (side is Side.BUY and price >= stop):
        where = "above" if side is Side.SELL else "below"
        raise InvalidRequest(
            f"an OCO {side.value}'s limit price must be {where} its stop_price "
            f"(got price {price}, stop_price {stop})"
        )


def _canonical(value: Decimal) -> str:
    return plain_decimal(value.normalize())


class LimitOrder(OrderRequest):
    """Buy or sell ``quantity`` at ``price`` or better. Time in force defaults to GTC
    (good till cancelled), also when given as ``None``, as it does for any LIMIT
    :class:`OrderRequest`: venues either require one (Binance) or assume GTC."""

    type: Literal[OrderType.LIMIT] = OrderType.LIMIT
    price: Price
    time_in_force: TimeInForce | None = TimeInForce.GTC


class MarketOrder(OrderRequest):
    """Buy or sell ``quantity`` at the best price available now; or, given
    ``quote_quantity`` instead, spend (BUY) or receive (SELL) that much of the quote asset:
    ``MarketOrder(symbol="BTCUSDT", side="BUY", quote_quantity=Decimal("100"))`` buys 100
    USDT's worth of BTC, the venue working out the base quantity from the book."""

    type: Literal[OrderType.MARKET] = OrderType.MARKET
    price: None = None
    time_in_force: None = None


class StopLossOrder(OrderRequest):
    """A market order sent once the price reaches ``stop_price`` against the position: a
    SELL when it falls to the stop, a BUY when it rises to it."""

    type: Literal[OrderType.STOP_LOSS] = OrderType.STOP_LOSS
    stop_price: Price
    price: None = None
    time_in_force: None = None


class StopLimitOrder(OrderRequest):
    """A limit order at ``price`` placed once the price reaches ``stop_price`` against
    the position (Binance ``STOP_LOSS_LIMIT``, Kraken ``stop-loss-limit``)."""

    type: Literal[OrderType.STOP_LOSS_LIMIT] = OrderType.STOP_LOSS_LIMIT
    stop_price: Price
    price: Price
    time_in_force: TimeInForce | None = TimeInForce.GTC


class TakeProfitOrder(OrderRequest):
    """A market order sent once the price reaches ``stop_price`` in the position's favour:
    a SELL when it rises to it, a BUY when it falls to it."""

    type: Literal[OrderType.TAKE_PROFIT] = OrderType.TAKE_PROFIT
    stop_price: Price
    price: None = None
    time_in_force: None = None


class OcoOrder(OrderRequest):
    """One-cancels-the-other (Binance ``orderList/oco``): a limit order at ``price`` and
    a stop at ``stop_price`` (a stop-limit at ``stop_limit_price``, else a stop-market) on
    one ``quantity``; when one executes, the venue cancels the other. For a SELL, the
    limit is the take-profit above the market and the stop the stop-loss below it.

    The order the client reports is the limit leg (its client order id is the intent's);
    cancelling it cancels both legs."""

    type: Literal[OrderType.OCO] = OrderType.OCO
    price: Price
    stop_price: Price
    stop_limit_price: Price | None = None
    time_in_force: TimeInForce | None = TimeInForce.GTC


class TakeProfitLimitOrder(OrderRequest):
    """A limit order at ``price`` placed once the price reaches ``stop_price`` in the
    position's favour."""

    type: Literal[OrderType.TAKE_PROFIT_LIMIT] = OrderType.TAKE_PROFIT_LIMIT
    stop_price: Price
    price: Price
    time_in_force: TimeInForce | None = TimeInForce.GTC


class Fill(_Model):
    """One execution of (part of) an order."""

    price: Money
    quantity: Money
    commission: Money = Decimal(0)
    commission_asset: str | None = None
    trade_id: str | None = None


class Order(_Model):
    """An order as the venue reports it.

    :attr:`replayed` tells how ``place_order`` came by it; it is not part of what the
    order is, so two reports of one order are equal (and hash alike) whatever it says.
    """

    _brief: ClassVar[tuple[str, ...]] = (
        "symbol",
        "side",
        "type",
        "status",
        "quantity",
        "price",
        "filled_quantity",
        "order_id",
        "client_order_id",
    )

    venue: str
    symbol: str
    order_id: str
    client_order_id: str
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Money
    price: Money | None = None
    filled_quantity: Money = Decimal(0)
    quote_quantity: Money = Decimal(0)
    time_in_force: TimeInForce | None = None
    created_at: datetime | None = None
    fills: tuple[Fill, ...] = ()
    stop_price: Money | None = Field(default=None, description="a conditional's trigger")
    idempotency_key: str | None = Field(default=None, description="the key this order answers")
    # A quote-quantity order's asked amount (Binance origQuoteOrderQty, Alpaca notional);
    # ``quantity`` is then what the venue worked out, or filled, in the base asset.
    quote_order_quantity: Money | None = Field(
        default=None, description="the quote amount a quote-quantity order asked for"
    )

    # Set by the idempotency layer alone (:func:`as_replayed`): not a field, so not in the
    # journal's JSON, the constructor or the hash. Pickled with the order, as it was said.
    _replayed: bool = PrivateAttr(default=False)

    @property
    def replayed(self) -> bool:
        """True when ``place_order`` did not send this order itself: an earlier call's
        answer under the same idempotency key, read back from the journal or found at the
        venue after that call's send. False when this call's own send placed it. Whoever
        keeps positions from the answers (the copy engine) books only the False ones: a
        replayed answer is one an earlier call may have counted already."""
        # Read from pydantic's store of private attributes, as ``self._replayed`` does by
        # way of BaseModel.__getattr__ at ~2 us: the copy engine asks once per follower.
        private = self.__pydantic_private__
        return bool(private.get("_replayed", False)) if private else False

    def __eq__(self, other: object) -> bool:
        """The same order, however it reached the caller (``replayed`` aside)."""
        if isinstance(other, Order) and other._replayed is not self._replayed:
            other = as_replayed(other, self._replayed)
        return super().__eq__(other)

    # Frozen: pydantic gives the class its hash of the fields (the __eq__ above unset it).

    @property
    def is_open(self) -> bool:
        """Whether the order may still fill (NEW or PARTIALLY_FILLED)."""
        return self.status.is_open

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity signed by side, as OANDA writes units: a sell is negative."""
        return self.quantity if self.side is Side.BUY else -self.quantity

    @property
    def average_price(self) -> Decimal | None:
        """Quantity-weighted fill price, or ``None`` while nothing has filled."""
        filled = sum((f.quantity for f in self.fills), Decimal(0))
        if filled:
            return sum((f.price * f.quantity for f in self.fills), Decimal(0)) / filled
        if self.filled_quantity:
            return self.quote_quantity / self.filled_quantity
        return None
