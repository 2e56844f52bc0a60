"""Flows over several orders at once, and the caller's own symbol on what comes back.

``cancel_all`` cancels every open order (of one symbol, or all) one by one through the
same cancel as :meth:`Reads.cancel_order` (so each is journaled and audited), without
engaging the kill switch: new orders stay allowed. ``amend`` replaces an open order by a
journaled cancel-then-place. ``named`` gives results back under the name the caller asked
with: ``BTC/USDT`` in, ``BTC/USDT`` out, at a venue that calls it ``XBTUSDT``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InvalidRequest, OrderNotFound, OrderStillOpen
from ..keys import Scope
from ..models import Order, OrderRequest, OrderStatus, replacing, to_decimal
from .effects import Flow
from .reads import Reads

if TYPE_CHECKING:
    from .orders import Core

__all__ = ["amend", "cancel_all", "named", "replacement_key"]

T = TypeVar("T")


def cancel_all(core: Reads, symbol: str | None) -> Flow[list[Order]]:
    """Cancel every open order of ``symbol`` (every symbol when ``None``); the orders
    cancelled, as the venue reports them. One that fills or goes meanwhile is skipped."""
    if symbol is not None and not isinstance(symbol, str):
        raise InvalidRequest("symbol must be text such as 'BTCUSDT' or 'BTC/USDT', or None")
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


def replacement_key(client_order_id: str) -> str:
    """The idempotency key of the order that replaces ``client_order_id``: one per order
    replaced, whoever amends it, however often the amend is retried."""
    return f"amend:{client_order_id}"


def amend(
    core: Core,
    symbol: str,
    *,
    order_id: str | None,
    client_order_id: str | None,
    quantity: Decimal | str | int | None,
    price: Decimal | str | int | None,
    stop_price: Decimal | str | int | None,
) -> Flow[Order]:
    """Replace an open order with the same order at a new quantity, price or stop price:
    in one atomic request where the venue has one (Binance ``order/cancelReplace``), else
    cancel it, then place the replacement; never both live at once.

    The replacement's idempotency key derives from the replaced order's client order id
    (:func:`replacement_key`), so it is placed at most once whatever happens: an amend
    killed between the cancel and the place, run again, cancels nothing (the order is
    gone) and places the replacement once; two amends of one order with different
    changes place one replacement, and the second is refused (its fingerprint differs).
    An order that filled before its cancel is not replaced: :class:`OrderNotFound`. One
    that partly filled, then was cancelled, is replaced at the quantity asked for (or its
    original quantity), not at what was left unfilled: say the remainder if that is meant.
    A cancel answered "no such order" while the order still reads open (a lagging venue,
    or a replica behind) places nothing: :class:`OrderStillOpen`, and the same amend may
    be run again later (the replacement's key is still unused).
    """
    if not isinstance(symbol, str):
        raise InvalidRequest("symbol must be text such as 'BTCUSDT' or 'BTC/USDT'")
    for name, given in (("order_id", order_id), ("client_order_id", client_order_id)):
        if given is not None and not isinstance(given, str):
            raise InvalidRequest(f"{name} must be text, as the venue reported it")
    if quantity is None and price is None and stop_price is None:
        raise InvalidRequest("amend needs a new quantity, price or stop_price")
    old = yield from core.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
    changes: dict[str, Any] = {}
    for name, value in (("quantity", quantity), ("price", price), ("stop_price", stop_price)):
        if value is not None:
            changes[name] = to_decimal(value, field=name)
    replacement = OrderRequest(
        symbol=old.symbol,
        side=old.side,
        type=old.type,
        quantity=changes.get("quantity", old.quantity),
        price=changes.get("price", old.price),
        time_in_force=old.time_in_force,
        stop_price=changes.get("stop_price", old.stop_price),
    )
    yield from core.vet(replacement)  # every local check, before the live order is touched
    # Read before the cancel: a cancel's answer may name the cancel's own id instead
    # (Binance's clientOrderId, which ccxt reads), and the key must be the order's.
    key = replacement_key(old.client_order_id)
    core.key.require(Scope.CANCEL, symbol=old.symbol)  # the atomic path cancels too
    if old.is_open and getattr(core.venue, "atomic_replace", False):
        # One request cancels the old order and places this one, or does neither.
        atomic = replacing(replacement, old.order_id)
        placed: Order = yield from core.place_order(atomic, key)
        yield from core.get_order(old.symbol, order_id=old.order_id)  # its journal row too
        yield from core.note("order.amended", replaced=old.order_id, atomic=True)
        return placed
    if old.is_open:
        try:
            old = yield from core.cancel_order(old.symbol, order_id=old.order_id)
        except OrderNotFound:  # gone meanwhile: filled, or cancelled by an earlier attempt
            old = yield from core.get_order(old.symbol, order_id=old.order_id)
            if old.is_open:  # ... or not: a venue (or its replica) lagging behind itself
                raise OrderStillOpen(
                    f"order {old.order_id} still reads {old.status.value} although its cancel"
                    " was answered 'no such order'; nothing was placed: amend again later"
                    " (the replacement's idempotency key is still unused)",
                    venue=core.venue.name,
                ) from None
    core.checkpoint("amend_after_cancel")
    if old.status is OrderStatus.FILLED:
        raise OrderNotFound(
            f"order {old.order_id} filled before it could be amended; nothing was placed",
            venue=core.venue.name,
        )
    placed = yield from core.place_order(replacement, key)
    yield from core.note(
        "order.amended", replaced=old.order_id, client_order_id=placed.client_order_id
    )
    return placed


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
