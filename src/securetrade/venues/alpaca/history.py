"""Alpaca's executions as account history: ``GET /v2/account/activities/FILL``.

Alpaca lists no trades per order; its account activities list every execution of the
account (``type`` ``fill`` or ``partial_fill``) with the ``order_id``, the execution's
``price`` and ``qty``, and ``cum_qty``, the order's filled quantity after it. Pages hold
at most 100 (``page_size``), oldest first with ``direction=asc``, and the next page starts
after the ``page_token`` given (the last activity's id). ``after`` and ``until`` bound the
range; activities name no symbol filter, so other symbols are dropped here.

An execution's trade id is ``<order id>@<cum_qty>``: the point it brought its order to,
which the ``trade_updates`` stream shows too (see :mod:`securetrade.streams.alpaca`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ...errors import InvalidRequest
from ...models import AccountTrade, Side
from ..base import Op, Params
from ..times import parse_time

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["PAGE", "history_params", "parse_history", "trade_id"]

PAGE = 100  # Alpaca's largest page of activities


def trade_id(order_id: str, cumulative: Decimal) -> str:
    """The identity of the execution that brought ``order_id`` to ``cumulative`` filled."""
    return f"{order_id}@{format(cumulative.normalize(), 'f')}"


def _stamp(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def history_params(made: Window, cursor: str | None) -> Params:
    """One page of the account's fills within ``made``, from ``cursor`` (an activity id)."""
    if made.op is not Op.TRADE_HISTORY:
        raise InvalidRequest(f"alpaca does not offer {made.op.value}")
    params: Params = [
        ("direction", "asc"),
        ("page_size", str(PAGE)),
        ("after", _stamp(max(0, made.start_ms - 1))),
        ("until", _stamp(made.end_ms + 1)),
    ]
    if cursor is not None:
        params.append(("page_token", cursor))
    return params


def parse_history(
    made: Window, cursor: str | None, payload: Any
) -> tuple[list[AccountTrade], str | None]:
    """The page's executions in ``made``'s symbol, oldest first, and the next cursor."""
    if not isinstance(payload, list):
        raise TypeError("a page of activities is a list")
    items: list[AccountTrade] = []
    for entry in payload:
        if entry.get("activity_type", "FILL") != "FILL" or entry["symbol"] != made.symbol:
            continue
        at = parse_time(entry["transaction_time"])
        if not made.start_ms <= int(at.timestamp() * 1000) <= made.end_ms:
            continue
        quantity = Decimal(str(entry["qty"]))
        price = Decimal(str(entry["price"]))
        items.append(
            AccountTrade(
                symbol=str(entry["symbol"]),
                trade_id=trade_id(str(entry["order_id"]), Decimal(str(entry["cum_qty"]))),
                order_id=str(entry["order_id"]),
                side=Side.BUY if entry["side"] == "buy" else Side.SELL,
                price=price,
                quantity=quantity,
                quote_quantity=price * quantity,
                at=at,
            )
        )
    following = str(payload[-1]["id"]) if len(payload) >= PAGE else None
    return items, following
