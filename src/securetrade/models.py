"""Typed requests and results. Money is :class:`~decimal.Decimal` from the caller to the wire.

A ``float`` given by a caller is read through its shortest ``repr`` (``0.1`` becomes
``Decimal("0.1")``, never ``0.1000000000000000055511151231257827``). NaN, infinities,
booleans and non-positive quantities are refused with :class:`~securetrade.errors.InvalidRequest`
before anything is encoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    model_validator,
)
from pydantic import ValidationError as _PydanticValidationError

from ._checks import Choice
from .errors import InvalidRequest
from .tables import Tabular

if TYPE_CHECKING:
    from typing_extensions import Self  # pydantic's own dependency; typing.Self is 3.11+

__all__ = [
    "CRYPTO_TIME_IN_FORCE",
    "INTERVALS",
    "AccountTrade",
    "AssetClass",
    "Balance",
    "BookLevel",
    "Candle",
    "Fill",
    "Instrument",
    "LimitOrder",
    "MarketOrder",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OcoOrder",
    "OrderBook",
    "OrderType",
    "PublicTrade",
    "Side",
    "StopLimitOrder",
    "StopLossOrder",
    "TakeProfitLimitOrder",
    "TakeProfitOrder",
    "Ticker",
    "TimeInForce",
    "Transfer",
    "TransferKind",
    "to_decimal",
]

# A conservative grammar every supported venue accepts; venues narrow it further.
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,39}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")


def to_decimal(value: Any, *, field: str = "value") -> Decimal:
    """Turn a caller's number into a finite Decimal, refusing what cannot be money."""
    if type(value) is str:  # the common case (venue answers): Decimal() strips blanks itself
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise InvalidRequest(f"{field}: {value!r} is not a decimal number") from None
    elif isinstance(value, bool):
        raise InvalidRequest(f"{field}: a boolean is not a number")
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))  # shortest repr, never the binary expansion
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidRequest(f"{field}: {value!r} is not a decimal number") from None
    else:
        raise InvalidRequest(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidRequest(f"{field}: {value!r} is not finite")
    return result


def _positive(field: str) -> Any:
    def check(value: Any) -> Decimal:
        result = to_decimal(value, field=field)
        if result <= 0:
            raise InvalidRequest(f"{field}: must be greater than zero, got {result}")
        return result

    return BeforeValidator(check)


class Side(str, Choice):
    """Buy or sell. Accepted in either case (``"buy"``); prints as its value (``BUY``)."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(str, Choice):
    """MARKET fills now at the best price available; LIMIT at ``price`` or better."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    # Conditional orders: rest unseen until the market reaches ``stop_price``, then become a
    # market order (STOP_LOSS, TAKE_PROFIT) or a limit order at ``price`` (the _LIMIT ones).
    # A stop-loss triggers on a move against the position (a sell at or below its stop, a
    # buy at or above it), a take-profit on a move in its favour.
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    # One-cancels-the-other: a limit order at ``price`` and a stop at ``stop_price`` (a
    # stop-limit at ``stop_limit_price`` if given) on one quantity; when one executes, the
    # venue cancels the other. A SELL's limit is above the market and its stop below; a
    # BUY's the other way round.
    OCO = "OCO"

    @property
    def is_conditional(self) -> bool:
        """Whether this is a type other than MARKET and LIMIT: a stop, a take-profit or an
        OCO, all of which carry a ``stop_price``."""
        return self not in (OrderType.MARKET, OrderType.LIMIT)

    @property
    def takes_price(self) -> bool:
        """Whether orders of this type carry a limit price (and so a time in force)."""
        return self in (
            OrderType.LIMIT,
            OrderType.STOP_LOSS_LIMIT,
            OrderType.TAKE_PROFIT_LIMIT,
            OrderType.OCO,
        )


class TimeInForce(str, Choice):
    """How long a LIMIT order stays: GTC until filled or cancelled, IOC fills what it can
    now and cancels the rest, FOK fills whole now or not at all."""

    GTC = "GTC"  # good till cancelled
    IOC = "IOC"  # immediate or cancel
    FOK = "FOK"  # fill or kill
    # Brokers' sessions (stocks, forex): the crypto exchanges offer none of these.
    DAY = "DAY"  # until the end of the trading day (Alpaca ``day``, OANDA ``GFD``)
    OPG = "OPG"  # in the opening auction only (Alpaca)
    CLS = "CLS"  # in the closing auction only (Alpaca)


#: What the crypto exchanges offer: their markets never close, so no day or auction orders.
CRYPTO_TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK})


class AssetClass(str, Choice):
    """What an instrument trades, which decides its sessions and its quantity rules."""

    CRYPTO = "CRYPTO"  # around the clock; quantity in the base asset
    US_EQUITY = "US_EQUITY"  # exchange sessions and a market clock; shares, maybe fractional
    FOREX = "FOREX"  # the week round, Sunday to Friday; whole units, signed at OANDA


class OrderStatus(str, Choice):
    """Where an order stands at the venue. NEW and PARTIALLY_FILLED are open (see
    :attr:`is_open`); the others are final. ``print(order.status)`` shows the value."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """NEW and PARTIALLY_FILLED are open: the order may still fill."""
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class _Model(Tabular, BaseModel):
    """Base: immutable, no unknown fields, and our own error type on bad input.

    Every way pydantic offers to make one (the constructor, ``model_validate``, its JSON
    and strings forms, ``model_copy(update=...)``) checks the values the same way and
    raises :class:`~securetrade.errors.InvalidRequest`, never pydantic's own error: a copy
    cannot hold what the constructor refuses, such as a quantity of -5 or a NaN price.
    (``model_construct`` stays pydantic's unchecked path for trusted data.)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, defer_build=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except _PydanticValidationError as exc:
            raise InvalidRequest(_summarise(type(self).__name__, exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    @classmethod
    def model_validate_strings(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_strings(obj, **kwargs)
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, with ``update`` checked as the constructor checks it.

        One field of a model without model-wide validators (the core's ``idempotency_key``
        on every order) is checked alone, for well under a microsecond; otherwise the copy
        is validated whole, as a new model, so that a rule across fields (a LIMIT order's
        time in force) sees the result and never an intermediate state.
        """
        copy = super().model_copy(deep=True) if deep else self.__copy__()
        if not update:
            return copy
        cls = type(self)
        try:
            if len(update) == 1 and not cls.__pydantic_decorators__.model_validators:
                for name, value in update.items():
                    cls.__pydantic_validator__.validate_assignment(copy, name, value)
                return copy
            return cls.__pydantic_validator__.validate_python({**copy.__dict__, **update})  # type: ignore[no-any-return]
        except _PydanticValidationError as exc:
            raise _refusal(cls.__name__, exc) from None


def _refusal(model: str, exc: _PydanticValidationError) -> InvalidRequest:
    """Pydantic's error as ours. Validation runs our ``__init__``, whose own refusal comes
    back wrapped: that one is returned as it is."""
    errors = exc.errors(include_url=False, include_input=False)
    if len(errors) == 1 and not errors[0]["loc"]:
        inner = errors[0].get("ctx", {}).get("error")
        if isinstance(inner, InvalidRequest):
            return inner
    return InvalidRequest(_summarise(model, exc))


def _summarise(model: str, exc: _PydanticValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        message = str(err.get("ctx", {}).get("error", err["msg"]))
        if where and not message.startswith(f"{where}: "):
            message = f"{where}: {message}"
        problems.append(message)
    return f"invalid {model}: " + "; ".join(problems)


Quantity = Annotated[Decimal, _positive("quantity")]
Price = Annotated[Decimal, _positive("price")]


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
        return self._replaces

    @model_validator(mode="before")
    @classmethod
    def _check_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            symbol = data.get("symbol")
            if isinstance(symbol, str) and not _SYMBOL_RE.fullmatch(symbol):
                raise InvalidRequest(f"symbol: {symbol!r} has characters no venue accepts")
            cid = data.get("client_order_id")
            if isinstance(cid, str) and not _CLIENT_ID_RE.fullmatch(cid):
                raise InvalidRequest(f"client_order_id: {cid!r} must be 1-36 of A-Z a-z 0-9 _ -")
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
        if self.quote_quantity is not None:
            return self.quote_quantity
        if self.price is None or self.quantity is None:
            return None
        return self.quantity * self.price

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
        if price <= 0:
            raise InvalidRequest(f"cannot value {self.symbol} at a price of {price}")
        return quote / price

    def fingerprint(self) -> str:
        """A canonical text of the parameters that define the intent (idempotency check).
        A stop price and post-only are appended only when set, so the fingerprint of
        every plain order is what it always was (journals written before keep matching)."""
        parts = [
            self.symbol,
            self.side._value_,  # _value_: .value is a Python property, this a slot read
            self.type._value_,
            "" if self.quantity is None else _canonical(self.quantity),
            "" if self.price is None else _canonical(self.price),
            "" if self.time_in_force is None else self.time_in_force._value_,
        ]
        if self.stop_price is not None:
            parts.append("stop=" + _canonical(self.stop_price))
        if self.post_only:
            parts.append("post_only")
        if self.stop_limit_price is not None:
            parts.append("stop_limit=" + _canonical(self.stop_limit_price))
        if self.extended_hours:
            parts.append("extended_hours")
        if self.quote_quantity is not None:
            parts.append("quote=" + _canonical(self.quote_quantity))
        return "|".join(parts)


def replacing(order: OrderRequest, order_id: str) -> OrderRequest:
    """A copy of ``order`` that replaces the venue's order ``order_id`` as it is placed."""
    copy = order.model_copy()
    copy._replaces = order_id
    return copy


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
    normal = value.normalize()
    return format(normal, "f")


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


# Amounts the venue reports: finite and not negative, checked by pydantic's own decimal
# validator (the caller's input, Quantity and Price, goes through to_decimal for its
# messages). Same answers as to_decimal on every input: a bool, NaN or "0x10" is refused.
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class Fill(_Model):
    """One execution of (part of) an order."""

    price: Money
    quantity: Money
    commission: Money = Decimal(0)
    commission_asset: str | None = None
    trade_id: str | None = None


class Order(_Model):
    """An order as the venue reports it."""

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


class Balance(_Model):
    """Holdings of one asset."""

    asset: str
    free: Money
    locked: Money = Decimal(0)

    @property
    def total(self) -> Decimal:
        """``free`` plus ``locked``: everything held in this asset."""
        return self.free + self.locked


class Instrument(_Model):
    """Trading rules of one symbol, as the venue publishes them."""

    _brief: ClassVar[tuple[str, ...]] = (
        "symbol",
        "tick_size",
        "step_size",
        "min_quantity",
        "min_notional",
        "trading",
    )

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Money
    step_size: Money
    min_quantity: Money = Decimal(0)
    min_notional: Money = Decimal(0)
    trading: bool = True
    asset_class: AssetClass = AssetClass.CRYPTO
    # Forex: the decimal place of one pip (-4 for EUR_USD, -2 for USD_JPY); None elsewhere.
    pip_location: int | None = None
    # The increment of a quote-quantity order's amount (Binance quoteAssetPrecision, Kraken
    # cost_decimals, Alpaca's cents); 0 where the venue publishes none.
    quote_step: Money = Field(default=Decimal(0), description="a quote amount's increment")

    def check(self, order: OrderRequest) -> None:
        """Raise :class:`InvalidRequest` unless ``order`` fits these rules. Sends nothing."""
        if order.symbol != self.symbol:
            raise InvalidRequest(f"order for {order.symbol} checked against {self.symbol}")
        if not self.trading:
            raise InvalidRequest(f"{self.symbol} is not trading")
        if order.quantity is None:
            # Sized in the quote asset: the venue works out a base quantity on its step
            # from the book; the amount itself must reach the minimum notional.
            quote = order.notional
            if quote is not None:
                _check_step("quote_quantity", quote, self.quote_step)
                if quote < self.min_notional:
                    raise InvalidRequest(
                        f"quote_quantity {quote} is below the minimum notional "
                        f"{self.min_notional} of {self.symbol}"
                    )
            return
        _check_step("quantity", order.quantity, self.step_size)
        if order.quantity < self.min_quantity:
            raise InvalidRequest(
                f"quantity {order.quantity} is below the minimum {self.min_quantity}"
            )
        if order.stop_price is not None:
            _check_step("stop_price", order.stop_price, self.tick_size)
        if order.price is not None:
            _check_step("price", order.price, self.tick_size)
            notional = order.quantity * order.price
            if notional < self.min_notional:
                raise InvalidRequest(
                    f"notional {notional} is below the minimum {self.min_notional}"
                )


def _check_step(field: str, value: Decimal, step: Decimal) -> None:
    try:
        off_step = step > 0 and value % step != 0
    except InvalidOperation:  # the quotient needs more digits than the context holds
        raise InvalidRequest(f"{field} {value} is out of range for step {step}") from None
    if off_step:
        places = max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]
        raise InvalidRequest(
            f"{field} {value} has more decimals than the instrument allows "
            f"(step {format(step.normalize(), 'f')}, at most {places} decimal places)"
        )


# --- market data ---------------------------------------------------------------------------

#: Candle intervals every venue is asked in, as ccxt and most charting tools name them, with
#: their length in seconds. A venue maps the ones it offers to its own names; asking a venue
#: for one it does not offer is refused before anything is sent.
INTERVALS: Mapping[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
    "2w": 1209600,
}


class Ticker(_Model):
    """The market in one symbol now: best bid and ask, last trade, and the day's range.

    Fields a venue does not report are ``None`` (a zero would be a price)."""

    _brief: ClassVar[tuple[str, ...]] = ("symbol", "last", "bid", "ask", "at")

    symbol: str
    last: Money
    bid: Money | None = None
    ask: Money | None = None
    bid_quantity: Money | None = None
    ask_quantity: Money | None = None
    open: Money | None = None
    high: Money | None = None
    low: Money | None = None
    volume: Money | None = Field(default=None, description="base asset traded, last 24 h")
    quote_volume: Money | None = None
    at: datetime | None = None

    @property
    def spread(self) -> Decimal | None:
        """Ask minus bid, or ``None`` when either side is unknown."""
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid


class BookLevel(_Model):
    """One price level of an order book: the quantity resting at ``price``."""

    price: Money
    quantity: Money


class OrderBook(_Model):
    """A snapshot of the book: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    bids: tuple[BookLevel, ...] = ()
    asks: tuple[BookLevel, ...] = ()
    at: datetime | None = None
    sequence: int | None = Field(default=None, description="the venue's update id, if any")

    @property
    def best_bid(self) -> BookLevel | None:
        """The highest bid, or ``None`` when the bid side is empty."""
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> BookLevel | None:
        """The lowest ask, or ``None`` when the ask side is empty."""
        return self.asks[0] if self.asks else None


class Candle(_Model):
    """One OHLCV bar of ``interval`` opening at ``opened_at``; the last bar of an answer may
    still be forming."""

    _brief: ClassVar[tuple[str, ...]] = (
        "symbol",
        "interval",
        "opened_at",
        "open",
        "high",
        "low",
        "close",
        "volume",
    )

    symbol: str
    interval: str
    opened_at: datetime
    open: Money
    high: Money
    low: Money
    close: Money
    volume: Money = Field(description="base asset traded in the bar")
    quote_volume: Money | None = None
    trades: int | None = None


class PublicTrade(_Model):
    """One trade on the venue's public tape (anyone's, not only this account's)."""

    symbol: str
    trade_id: str | None
    price: Money
    quantity: Money
    at: datetime
    side: Side | None = Field(default=None, description="the taker's side, when reported")


# --- account history -----------------------------------------------------------------------


class AccountTrade(_Model):
    """One execution of this account's orders, as the venue's trade history lists it."""

    symbol: str
    trade_id: str
    order_id: str
    side: Side
    price: Money
    quantity: Money
    quote_quantity: Money | None = None
    commission: Money = Decimal(0)
    commission_asset: str | None = None
    maker: bool | None = None
    at: datetime


class TransferKind(str, Choice):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"


class Transfer(_Model):
    """One deposit into or withdrawal out of the account."""

    kind: TransferKind
    transfer_id: str
    asset: str
    amount: Money
    fee: Money = Decimal(0)
    status: str = Field(description="the venue's own status word or code, as text")
    at: datetime
    address: str | None = None
    network: str | None = None
    tx_id: str | None = Field(default=None, description="the chain's transaction id")
