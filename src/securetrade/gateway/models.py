"""Strict models for the common inbound messages: a leader's signal, a follower's order, a
webhook. The gateway validates a body against its route's model only after the sender is
authenticated, in scope and within its limits, so an anonymous caller never reaches a parser.

Every model forbids unknown fields, is frozen, and takes money as strings (a JSON number
would have passed through a float): ``Decimal`` s are bounded, finite and of limited
precision. Sides, order types and times in force are closed enumerations; a symbol must
follow its venue's grammar (:data:`SYMBOL_GRAMMAR`).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .._checks import Choice

__all__ = [
    "SYMBOL_GRAMMAR",
    "FollowerOrder",
    "LeaderSignal",
    "OrderType",
    "Side",
    "TimeInForce",
    "Webhook",
]

# Symbols as each venue spells them on the wire.
SYMBOL_GRAMMAR: dict[str, re.Pattern[str]] = {
    "binance": re.compile(r"[A-Z0-9]{2,20}"),  # BTCUSDT
    "kraken": re.compile(r"[A-Z0-9]{2,10}/[A-Z0-9]{2,10}"),  # XBT/USD (WebSocket v2 style)
    "coinbase": re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}"),  # BTC-USD
    "okx": re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}(-SWAP)?"),  # BTC-USDT, BTC-USDT-SWAP
    "alpaca": re.compile(r"[A-Z]{1,5}([./][A-Z]{1,5})?"),  # AAPL, BRK.B, BTC/USD
    "oanda": re.compile(r"[A-Z]{3}_[A-Z]{3}"),  # EUR_USD
}


class Side(str, Choice):
    """A signal's side, lowercase on the wire (``"buy"``, ``"sell"``)."""

    BUY = "buy"
    SELL = "sell"


class OrderType(str, Choice):
    """A signal's order type, lowercase on the wire (``"market"``, ``"limit"``)."""

    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(str, Choice):
    """A signal's time in force, lowercase on the wire (``"gtc"``, ``"ioc"``, ``"fok"``)."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


def _decimal_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('amounts are strings, such as "0.01"')
    return value


_Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(gt=0, le=Decimal("1e12"), max_digits=30, decimal_places=12, allow_inf_nan=False),
]
_Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
_Strict = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class _Trade(BaseModel):
    model_config = _Strict

    venue: Annotated[str, Field(pattern=r"^[a-z]{2,16}$")]
    symbol: Annotated[str, Field(min_length=1, max_length=32)]
    side: Side
    type: OrderType
    quantity: _Amount
    price: _Amount | None = None
    time_in_force: TimeInForce = TimeInForce.GTC

    @model_validator(mode="after")
    def _consistent(self) -> _Trade:
        grammar = SYMBOL_GRAMMAR.get(self.venue)
        if grammar is None:
            raise ValueError("unknown venue")
        if not grammar.fullmatch(self.symbol):
            raise ValueError("symbol does not follow the venue's grammar")
        if (self.type is OrderType.LIMIT) != (self.price is not None):
            raise ValueError("a limit order needs a price; a market order takes none")
        return self


class LeaderSignal(_Trade):
    """A leader's trade, to be copied by their followers (``signal_id`` is the leader's own
    id for it: the copy engine uses it for exactly-once fan-out)."""

    signal_id: _Ident
    leader: _Ident
    issued_at: datetime


class FollowerOrder(_Trade):
    """An order a follower's bot asks the platform to place on its account."""

    client_order_id: _Ident
    account: _Ident


class Webhook(BaseModel):
    """A platform event: an id (for dedupe), a type from a dotted grammar, and a small,
    shallow payload of strings (amounts included)."""

    model_config = _Strict

    id: _Ident
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){0,3}$")]
    created_at: datetime
    data: Annotated[dict[_Ident, Annotated[str, Field(max_length=256)]], Field(max_length=32)]
