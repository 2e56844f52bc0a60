"""Account history through ccxt: one unified call a page, paged by the exchange's rules.

ccxt's own pagination (``paginate=True``) sends many requests inside one call, past our
rate limiter and our transport; here each page is one unified call (``fetch_my_trades``,
``fetch_orders``, ``fetch_deposits``, ``fetch_withdrawals``) whose exchange parameters
carry the cursor, so every page is one request the core limits, signs through ccxt and
reads like any other.

Paging is per exchange (``Profile.paging``):

* ``binance``: the native adapter's rules (:mod:`..binance.history`): 24-hour windows
  (``since``/``until``) until a row is found, then ``fromId``/``orderId``; transfers in
  90-day windows with ``offset``. Oldest first; transfers newest first.
* ``kraken``: the native adapter's rules (:mod:`..kraken.history`): ``ofs`` pages of 50,
  the venue's newest first, with ``count``; the first page learns the count and the rest
  are read from the oldest end, so items come oldest first. ccxt's reading drops ``count``
  and sorts each page by time, so the venue reads the count and the ids' order from the
  answer (:func:`kraken_page`). ``end`` is sent as Kraken's own parameter, in seconds and
  fixed for the whole range (ccxt passes ClosedOrders an ``until`` in milliseconds), so
  what closes meanwhile cannot shift the offsets. The pair is kept here (ccxt would filter
  a page after the fact, which breaks the page count). Transfers: the one list Kraken
  answers without a cursor (ccxt drops cursor pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..._checks import shown
from ...errors import InvalidRequest
from ...models import AccountTrade, Order, Side, Transfer, TransferKind
from ..base import Op, Params
from ..binance import history as binance

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["EXTRA", "KrakenPage", "history_params", "kraken_page", "parse_history"]

EXTRA = "x."  # a parameter name with this prefix goes to the exchange as it is
_KRAKEN_PAGE = 50
_METHODS = {
    Op.TRADE_HISTORY: "fetch_my_trades",
    Op.ORDER_HISTORY: "fetch_orders",
    Op.DEPOSIT_HISTORY: "fetch_deposits",
    Op.WITHDRAWAL_HISTORY: "fetch_withdrawals",
}


def method_of(op: Op) -> str:
    return _METHODS[op]


def history_params(paging: str | None, made: Window, cursor: str | None) -> Params:
    """``symbol`` (or ``code``), ``since``, ``limit`` and the exchange's own parameters
    (``x.``-prefixed) of one page."""
    if paging == "binance":
        return _binance_params(made, cursor)
    if paging == "kraken":
        return _kraken_params(made, cursor)
    raise InvalidRequest(f"history paging is not mapped for this exchange ({made.op.value})")


def _binance_params(made: Window, cursor: str | None) -> Params:
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        end, offset = binance.transfer_cursor(cursor, made)
        start = max(made.start_ms, end - binance.TRANSFER_SPAN_MS)
        head: Params = [] if made.asset is None else [("code", made.asset)]
        return [
            *head,
            ("since", str(start)),
            ("limit", str(binance.PAGE)),
            (EXTRA + "until", str(end)),
            (EXTRA + "offset", str(offset)),
        ]
    assert made.symbol is not None
    params: Params = [("symbol", made.symbol), ("limit", str(binance.PAGE))]
    kind, value = binance.split(cursor, made)
    if kind == "id":
        name = "fromId" if made.op is Op.TRADE_HISTORY else "orderId"
        return [*params, (EXTRA + name, str(value))]
    return [*params, ("since", str(value)), (EXTRA + "until", str(binance.day_end(value, made)))]


def _kraken_params(made: Window, cursor: str | None) -> Params:
    # Kraken's start is exclusive and in seconds: a second earlier, the rest kept here.
    since = str(max(0, made.start_ms - 1000))
    head: Params = []
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        head = [] if made.asset is None else [("code", made.asset)]
        return [*head, ("since", since), (EXTRA + "until", str(made.end_ms))]
    offset = 0 if cursor is None else _offset(cursor)[0]
    end = str(-(-made.end_ms // 1000))  # inclusive, whole seconds, rounded up
    params: Params = [("since", since), (EXTRA + "end", end), (EXTRA + "ofs", str(offset))]
    if made.op is Op.ORDER_HISTORY:
        params.append((EXTRA + "closetime", "open"))
    return params


def _offset(cursor: str) -> tuple[int, int]:
    """A Kraken page's cursor ``o:<ofs>:<take>``: its offset, and how many of its rows
    (the first, on the wire) are still unread."""
    kind, offset, take = [*cursor.split(":"), "", ""][:3]
    if kind != "o" or not _count(offset) or not _count(take):
        raise InvalidRequest(f"not a ccxt history cursor: {shown(cursor)}")
    return int(offset), int(take)


@dataclass(frozen=True, slots=True)
class KrakenPage:
    """A TradesHistory or ClosedOrders page as ccxt read it (``rows``), with what its
    reading drops: how many match the range (``count``) and the ids in the venue's own
    order, newest first (``ids``)."""

    rows: list[Any]
    count: int
    ids: tuple[str, ...]


def kraken_page(op: Op, rows: Any, body: bytes) -> KrakenPage:
    """``rows`` (ccxt's result) and the count and id order of the answer ``body``."""
    if isinstance(rows, (str, bytes, dict)):
        raise TypeError("a page of history is a list")
    result = json.loads(body)["result"]
    listed = result["trades" if op is Op.TRADE_HISTORY else "closed"]
    if not isinstance(listed, dict):
        raise TypeError("a Kraken page of history maps ids to entries")
    return KrakenPage(list(rows), int(result["count"]), tuple(str(k) for k in listed))


def parse_history(
    paging: str | None,
    made: Window,
    cursor: str | None,
    payload: Any,
    order: Callable[[Any], Order],
) -> tuple[list[Any], str | None]:
    """ccxt's unified structures of one page as our models, and the next cursor."""
    if paging == "kraken" and made.op in (Op.TRADE_HISTORY, Op.ORDER_HISTORY):
        return _kraken_page(made, cursor, payload, order)
    if isinstance(payload, (str, bytes, dict)):
        raise TypeError("a page of history is a list")
    rows = list(payload)
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        items: list[Any] = [_transfer(made.op, r) for r in rows]
        items = [t for t in items if _within(made, t.at)]
        if paging == "binance":
            return items, binance.next_transfer_cursor(made, cursor, len(rows))
        return items, None
    stamps = [(int(r["id"]), int(r["timestamp"])) for r in rows]
    return _kept(made, rows, order), binance.next_cursor(made, cursor, stamps)


def _kept(made: Window, rows: list[Any], order: Callable[[Any], Order]) -> list[Any]:
    """Trades or closed orders of ``rows`` within the range, of the asked pair."""
    if made.op is Op.TRADE_HISTORY:
        items: list[Any] = [t for t in map(_trade, rows) if _within(made, t.at)]
    else:  # closed orders only
        items = [o for o in map(order, rows) if _within(made, o.created_at) and not o.is_open]
    if made.symbol is not None:
        items = [i for i in items if i.symbol == made.symbol]
    return items


def _kraken_page(
    made: Window, cursor: str | None, payload: Any, order: Callable[[Any], Order]
) -> tuple[list[Any], str | None]:
    """One Kraken page, oldest first, and the next (older rows: a lower offset)."""
    if not isinstance(payload, KrakenPage):
        raise TypeError("a Kraken page of history comes with its count (kraken_page)")
    if cursor is None and payload.count > _KRAKEN_PAGE:  # the count told: the oldest next
        return [], f"o:{payload.count - _KRAKEN_PAGE}:{_KRAKEN_PAGE}"
    offset, take = (0, len(payload.ids)) if cursor is None else _offset(cursor)
    by_id = {str(row["id"]): row for row in payload.rows}
    # The first ``take`` on the wire are this page's unread rows; oldest first here. An
    # id ccxt left out (before ``since``) has no row.
    rows = [by_id[i] for i in reversed(payload.ids[:take]) if i in by_id]
    items = _kept(made, rows, order)
    if offset == 0:
        return items, None
    earlier = max(0, offset - _KRAKEN_PAGE)
    return items, f"o:{earlier}:{offset - earlier}"


def _within(made: Window, moment: datetime | None) -> bool:
    if moment is None:
        return True
    return made.start_ms <= int(moment.timestamp() * 1000) <= made.end_ms


def _moment(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _trade(row: Any) -> AccountTrade:
    fee = row.get("fee") or {}
    return AccountTrade(
        symbol=row["symbol"],
        trade_id=str(row["id"]),
        order_id=str(row["order"]),
        side=Side.BUY if row["side"] == "buy" else Side.SELL,
        price=_decimal(row["price"]),
        quantity=_decimal(row["amount"]),
        quote_quantity=_decimal(row.get("cost")),
        commission=_decimal(fee.get("cost")) or Decimal(0),
        commission_asset=fee.get("currency"),
        maker=None if row.get("takerOrMaker") is None else row["takerOrMaker"] == "maker",
        at=_moment(row["timestamp"]),
    )


def _transfer(op: Op, row: Any) -> Transfer:
    fee = row.get("fee") or {}
    return Transfer(
        kind=TransferKind.DEPOSIT if op is Op.DEPOSIT_HISTORY else TransferKind.WITHDRAWAL,
        transfer_id=str(row["id"]),
        asset=row["currency"],
        amount=_decimal(row["amount"]),
        fee=_decimal(fee.get("cost")) or Decimal(0),
        status=str(row.get("status") or ""),
        at=_moment(row["timestamp"]),
        address=row.get("address") or None,
        network=row.get("network") or None,
        tx_id=row.get("txid") or None,
    )


def _count(text: str) -> bool:
    """A cursor's number: decimal digits ``int()`` reads ('²' is a digit it refuses), at
    most 19 of them (4,300 would be a ValueError)."""
    return text.isdecimal() and len(text) < 20
