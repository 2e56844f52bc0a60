"""Flows over several orders at once, and the caller's own symbol on what comes back.

``cancel_all`` cancels every open order (of one symbol, or all) one by one through the
same cancel as :meth:`Reads.cancel_order` (so each is journaled and audited), without
engaging the kill switch: new orders stay allowed. ``named`` gives results back under the
name the caller asked with: ``BTC/USDT`` in, ``BTC/USDT`` out, at a venue that calls it
``XBTUSDT``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import OrderNotFound
from ..keys import Scope
from ..models import Order
from .effects import Flow
from .reads import Reads

__all__ = ["cancel_all", "named"]

T = TypeVar("T")


def cancel_all(core: Reads, symbol: str | None) -> Flow[list[Order]]:
    """Cancel every open order of ``symbol`` (every symbol when ``None``); the orders
    cancelled, as the venue reports them. One that fills or goes meanwhile is skipped."""
    core.key.require(Scope.CANCEL, symbol=None if symbol is None or "/" in symbol else symbol)
    listed = yield from core.open_orders(symbol)
    cancelled = []
    for order in listed:
        try:
            done = yield from core.cancel_order(order.symbol, order_id=order.order_id)
        except OrderNotFound:
            continue  # filled or cancelled meanwhile
        cancelled.append(done)
    yield from core.note("orders.cancel_all", symbol=symbol, orders=len(cancelled))
    return cancelled


def named(asked: str | None, flow: Flow[T]) -> Flow[T]:
    """Run ``flow``; its orders come back named ``asked`` when that is a unified symbol
    (``BASE/QUOTE``) the venue knows by another name."""
    result = yield from flow
    if asked is None or not isinstance(asked, str) or "/" not in asked:
        return result
    relabelled: Any = result
    if isinstance(result, Order):
        relabelled = _as(asked, result)
    elif isinstance(result, list):
        relabelled = [_as(asked, item) if isinstance(item, Order) else item for item in result]
    return relabelled  # type: ignore[no-any-return]


def _as(asked: str, order: Order) -> Order:
    if order.symbol == asked:
        return order
    return order.model_copy(update={"symbol": asked})
