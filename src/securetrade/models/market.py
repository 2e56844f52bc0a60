"""Market data: an instrument's trading rules (which check an order before it is sent),
tickers, order books, candles and public trades.

Above :mod:`securetrade.models.orders` (an :class:`Instrument` checks an
:class:`~securetrade.models.OrderRequest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from pydantic import Field

from ..errors import InvalidRequest
from .common import AssetClass, Money, Side, _Model
from .orders import OrderRequest

__all__ = [
    "INTERVALS",
    "BookLevel",
    "Candle",
    "Instrument",
    "OrderBook",
    "PublicTrade",
    "Ticker",
]


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
        if not isinstance(order, OrderRequest):
            raise InvalidRequest("order must be an OrderRequest (LimitOrder, MarketOrder, ...)")
        # Both models' fields from __dict__: an attribute read of a model goes through
        # pydantic's __getattr__ hook, slowly, and this runs for every order.
        rules, asked = self.__dict__, order.__dict__
        if asked["symbol"] != rules["symbol"]:
            raise InvalidRequest(f"order for {order.symbol} checked against {self.symbol}")
        if not rules["trading"]:
            raise InvalidRequest(f"{self.symbol} is not trading")
        quantity = asked["quantity"]
        if quantity is None:
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
        _check_step("quantity", quantity, rules["step_size"])
        if quantity < rules["min_quantity"]:
            raise InvalidRequest(f"quantity {quantity} is below the minimum {self.min_quantity}")
        stop, price, tick = asked["stop_price"], asked["price"], rules["tick_size"]
        if stop is not None:
            _check_step("stop_price", stop, tick)
        if price is not None:
            _check_step("price", price, tick)
            notional = quantity * price
            if notional < rules["min_notional"]:
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
