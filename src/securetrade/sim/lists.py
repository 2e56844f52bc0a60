"""The simulator's Binance order lists: ``POST /api/v3/orderList/oco``.

Two legs on one quantity, placed together under the market's lock (both or neither):
the limit leg a ``LIMIT_MAKER`` (above the market for a SELL, below for a BUY), the other
a ``STOP_LOSS`` or ``STOP_LOSS_LIMIT`` on the far side. When one executes, triggers or is
cancelled, the engine closes the other (``Market.link``). Binance's checks: a leg type it
does not take for the side (-1106 style: refused), prices on the wrong side of the
market (-2010 "The relationship of the prices for the orders is not correct."), and two
orders on the account's order count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from .binance_wire import _ApiError, _order_json, _required
from .dialect import SimKey
from .engine import FeeSchedule, Market
from .records import SimOrder

__all__ = ["oco"]

_STOPS = {"STOP_LOSS": "MARKET", "STOP_LOSS_LIMIT": "LIMIT"}


class BinanceDialect(Protocol):
    """What an order list needs of the Binance dialect (``sim.binance``, above this module):
    its market and fees, its symbol and number checks, its order count and refusals."""

    market: Market
    fees: FeeSchedule | None

    def _symbol(self, symbol: str) -> str: ...

    def _decimal(self, params: Mapping[str, str], name: str) -> Decimal: ...

    def _count_order(self, key: SimKey) -> None: ...

    def _guard(self, action: Callable[[], SimOrder]) -> SimOrder: ...


def oco(dialect: BinanceDialect, key: SimKey, params: dict[str, str]) -> dict[str, Any]:
    """Place both legs of an OCO for ``key`` from Binance's parameters, or neither."""
    if not key.can_trade:
        raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    market = dialect.market
    symbol = dialect._symbol(_required(params, "symbol"))
    side = _required(params, "side")
    if side not in ("BUY", "SELL"):
        raise _ApiError(400, -1117, "Invalid side.")
    quantity = dialect._decimal(params, "quantity")
    limit_leg, stop_leg = ("above", "below") if side == "SELL" else ("below", "above")
    if params.get(f"{limit_leg}Type") != "LIMIT_MAKER":
        raise _ApiError(400, -1116, "Invalid orderType.")
    stop_type = params.get(f"{stop_leg}Type", "")
    if stop_type not in _STOPS:
        raise _ApiError(400, -1116, "Invalid orderType.")
    price = dialect._decimal(params, f"{limit_leg}Price")
    stop = dialect._decimal(params, f"{stop_leg}StopPrice")
    stop_limit = None
    tif = None
    if stop_type == "STOP_LOSS_LIMIT":
        stop_limit = dialect._decimal(params, f"{stop_leg}Price")
        tif = _required(params, f"{stop_leg}TimeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise _ApiError(400, -1115, "Invalid timeInForce.")
    with market.lock:
        now = market.price(symbol)
        if (side == "SELL" and not price > now > stop) or (
            side == "BUY" and not price < now < stop
        ):
            raise _ApiError(
                400, -2010, "The relationship of the prices for the orders is not correct."
            )
        dialect._count_order(key)
        dialect._count_order(key)
        limit = _place(
            dialect,
            key,
            symbol=symbol,
            side=side,
            type="LIMIT",
            quantity=quantity,
            price=price,
            time_in_force="GTC",
            client_order_id=params.get(f"{limit_leg}ClientOrderId") or "",
            post_only="reject",
        )
        limit.display_type = "LIMIT_MAKER"
        try:
            guard = _place(
                dialect,
                key,
                symbol=symbol,
                side=side,
                type=_STOPS[stop_type],
                quantity=quantity,
                price=stop_limit,
                time_in_force=tif,
                client_order_id=params.get(f"{stop_leg}ClientOrderId") or "",
                stop_price=stop,
                stop_kind="loss",
            )
        except _ApiError:
            market.cancel(key.account, symbol, order_id=limit.order_id, client_order_id=None)
            raise
        guard.display_type = stop_type
        market.link(limit, guard)
    legs = (limit, guard) if limit_leg == "below" else (guard, limit)
    return {
        "orderListId": limit.list_id,
        "contingencyType": "OCO",
        "listStatusType": "EXEC_STARTED",
        "listOrderStatus": "EXECUTING",
        "listClientOrderId": params.get("listClientOrderId") or f"list{limit.list_id}",
        "transactionTime": limit.created_ms,
        "symbol": symbol,
        "orders": [
            {"symbol": symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
            for o in legs
        ],
        "orderReports": [_order_json(o) for o in legs],
    }


def _place(dialect: BinanceDialect, key: SimKey, **order: Any) -> SimOrder:
    """One leg, with the dialect's refusals (duplicate id, filters, funds) as its errors."""
    order["client_order_id"] = order["client_order_id"] or f"sim{time.time_ns()}"
    return dialect._guard(lambda: dialect.market.place(key.account, fees=dialect.fees, **order))
