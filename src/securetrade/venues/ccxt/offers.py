"""What a ccxt exchange offers through this venue, read from ccxt's own tables.

ccxt describes each exchange twice: ``has`` (which unified methods exist: ``fetchOHLCV``,
``createStopLossOrder``...) and ``features`` (which parameters a spot ``createOrder``
maps: ``stopLossPrice``, ``takeProfitPrice``, the post-only time in force). The venue's
endpoint table, order types and post-only flag come from them, so ``client.capabilities``
says what the exchange can do and anything else is refused before a byte is sent.

A conditional order is offered only where, besides ccxt's tables, the profile says the
exchange keeps trigger orders in its ordinary order book (``Profile.conditional``): the
journal finds an order by its client order id there, and an exchange that files trigger
orders elsewhere (OKX's algo orders, Bybit's stop orders) would leave an order placed
in doubt without a way to look it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...models import OrderType
from ..base import Endpoint, Op

__all__ = ["conditional_param", "offered_endpoints", "order_types", "takes_post_only"]

# Operations a venue may lack, each with the ccxt methods (``has`` keys) one of which it
# needs. The rest (time, markets, orders, balances) every exchange ccxt lists offers.
_NEEDS: dict[Op, tuple[str, ...]] = {
    Op.TICKER: ("fetchTicker",),
    Op.ORDER_BOOK: ("fetchOrderBook",),
    Op.CANDLES: ("fetchOHLCV",),
    Op.PUBLIC_TRADES: ("fetchTrades",),
    Op.WITHDRAW: ("withdraw",),
    Op.TRADE_HISTORY: ("fetchMyTrades",),
    Op.ORDER_HISTORY: ("fetchOrders", "fetchClosedOrders"),  # Kraken: closed ones
    Op.DEPOSIT_HISTORY: ("fetchDeposits",),
    Op.WITHDRAWAL_HISTORY: ("fetchWithdrawals",),
}

# Our conditional types, by the ccxt parameter that carries the trigger: ``stopLossPrice``
# and ``takeProfitPrice`` are ccxt's unified names (a market order with one becomes
# Binance's STOP_LOSS or Kraken's stop-loss; a limit order the _LIMIT variant).
_TRIGGERS: dict[OrderType, str] = {
    OrderType.STOP_LOSS: "stopLossPrice",
    OrderType.STOP_LOSS_LIMIT: "stopLossPrice",
    OrderType.TAKE_PROFIT: "takeProfitPrice",
    OrderType.TAKE_PROFIT_LIMIT: "takeProfitPrice",
}
# The ``has`` key that also vouches for each trigger parameter.
_HAS = {"stopLossPrice": "createStopLossOrder", "takeProfitPrice": "createTakeProfitOrder"}


def conditional_param(kind: OrderType) -> str | None:
    """ccxt's parameter for the trigger of an order of ``kind``; ``None``: not a trigger
    order this venue maps (MARKET, LIMIT, and OCO, which ccxt has no unified form for)."""
    return _TRIGGERS.get(kind)


def _yes(value: Any) -> bool:
    return value is True or value == "emulated"


def _spot_create(exchange: Any) -> Mapping[str, Any]:
    """``features['spot']['createOrder']``, or an empty map where ccxt has none."""
    features = getattr(exchange, "features", None)
    spot = features.get("spot") if isinstance(features, dict) else None
    create = spot.get("createOrder") if isinstance(spot, dict) else None
    return create if isinstance(create, dict) else {}


def offered_endpoints(exchange: Any, table: Mapping[Op, Endpoint]) -> dict[Op, Endpoint]:
    """``table`` without the operations ccxt says the exchange lacks."""
    has = exchange.has
    return {
        op: endpoint
        for op, endpoint in table.items()
        if op not in _NEEDS or any(_yes(has.get(name)) for name in _NEEDS[op])
    }


def order_types(exchange: Any, *, conditional: bool) -> frozenset[OrderType]:
    """MARKET and LIMIT, and each conditional type whose trigger parameter ccxt maps for
    the exchange's spot orders (``features``, else ``has``), where ``conditional``."""
    kinds = {OrderType.MARKET, OrderType.LIMIT}
    if not conditional:
        return frozenset(kinds)
    create, has = _spot_create(exchange), exchange.has
    for kind, param in _TRIGGERS.items():
        if _either(create.get(param), has.get(_HAS[param])):
            kinds.add(kind)
    return frozenset(kinds)


def takes_post_only(exchange: Any) -> bool:
    """Whether ccxt maps ``postOnly`` for the exchange's spot orders."""
    tif = _spot_create(exchange).get("timeInForce")
    feature = tif.get("PO") if isinstance(tif, dict) else None
    return _either(feature, exchange.has.get("createPostOnlyOrder"))


def _either(feature: Any, has: Any) -> bool:
    """Offered where either table says so and ``has`` does not say no: the tables are
    kept by hand and disagree (Kraken's ``has`` is silent on stop-loss orders its
    ``features`` map; Coinmate's ``has`` denies the post-only its ``features`` lists)."""
    return has is not False and (feature is True or _yes(has))
