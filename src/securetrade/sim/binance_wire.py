"""The simulator's Binance wire shapes that more than one of its modules sends: the error
body, a mandatory parameter, a number as text and an order as JSON.

Below both ``binance`` (the dialect) and ``lists`` (its order lists), so that neither
imports the other for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .dialect import Refusal
from .records import SimOrder

__all__ = ["_ApiError", "_order_json", "_required", "_text"]


class _ApiError(Refusal):
    """Binance's error: ``{"code": ..., "msg": ...}``, counted by its code."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, {"code": code, "msg": message}, code, headers)


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _ApiError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _text(value: Decimal) -> str:
    return format(value, "f")


def _order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": order.client_order_id,
        "price": _text(order.price or Decimal(0)),
        "origQty": _text(order.quantity),
        "executedQty": _text(order.filled),
        "cummulativeQuoteQty": _text(order.quote_filled),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.display_type or order.type,
        "side": order.side,
        "stopPrice": _text(order.stop_price) if order.stop_price is not None else "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": True,
        "workingTime": order.created_ms,
        "origQuoteOrderQty": _text(order.quote_order_qty or Decimal(0)),
        "selfTradePreventionMode": "NONE",
    }
