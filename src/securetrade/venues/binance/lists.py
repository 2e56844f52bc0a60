"""Binance order lists: the OCO (``POST /api/v3/orderList/oco``) as one order intent.

The core journals one client order id per intent. An OCO's limit leg carries it
(``belowClientOrderId`` or ``aboveClientOrderId``, whichever leg is the limit one), so
looking the intent up by client order id finds the limit leg, a resend is refused as a
duplicate while the list is open, and the leg read back is the order the client reports
(its type OCO: a ``LIMIT_MAKER`` in an order list). The stop leg and the list take the
same id with a suffix (``-s``, ``-l``), within Binance's 36 characters.
"""

from __future__ import annotations

from typing import Any

from ..._checks import shown
from ...errors import InvalidRequest
from ...models import OrderRequest, Side
from ..base import Params, wire_decimal

__all__ = ["OCO_PATH", "limit_leg", "oco_params"]

OCO_PATH = "/api/v3/orderList/oco"


def oco_params(order: OrderRequest, client_order_id: str) -> Params:
    """A SELL's limit leg is above the market (``above*``) and its stop below; a BUY's
    the other way round. The limit leg is a ``LIMIT_MAKER``; the stop leg a
    ``STOP_LOSS_LIMIT`` at ``stop_limit_price``, or a ``STOP_LOSS``."""
    if order.price is None or order.stop_price is None:
        raise InvalidRequest("an OCO needs its limit price and its stop_price")
    if len(client_order_id) > 34:
        raise InvalidRequest(f"{shown(client_order_id)} leaves no room for the OCO legs' suffixes")
    limit_side, stop_side = ("above", "below") if order.side is Side.SELL else ("below", "above")
    params: Params = [
        ("symbol", order.symbol),
        ("side", order.side.value),
        ("quantity", wire_decimal(order.base_quantity)),
        ("listClientOrderId", f"{client_order_id}-l"),
        (f"{limit_side}Type", "LIMIT_MAKER"),
        (f"{limit_side}Price", wire_decimal(order.price)),
        (f"{limit_side}ClientOrderId", client_order_id),
    ]
    if order.stop_limit_price is not None:
        params += [
            (f"{stop_side}Type", "STOP_LOSS_LIMIT"),
            (f"{stop_side}StopPrice", wire_decimal(order.stop_price)),
            (f"{stop_side}Price", wire_decimal(order.stop_limit_price)),
            (f"{stop_side}TimeInForce", tif.value if (tif := order.time_in_force) else "GTC"),
        ]
    else:
        params += [
            (f"{stop_side}Type", "STOP_LOSS"),
            (f"{stop_side}StopPrice", wire_decimal(order.stop_price)),
        ]
    params += [
        (f"{stop_side}ClientOrderId", f"{client_order_id}-s"),
        ("newOrderRespType", "FULL"),
    ]
    return params


def limit_leg(payload: Any) -> Any:
    """The limit leg's report from an order list answer (``orderReports``); any other
    answer as it is. An answer without one is left for the shape check to refuse."""
    reports = payload.get("orderReports") if isinstance(payload, dict) else None
    if not isinstance(reports, list):
        return payload
    for report in reports:
        if isinstance(report, dict) and report.get("type") == "LIMIT_MAKER":
            return report
    return payload
