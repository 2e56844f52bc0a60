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
* ``kraken``: ``ofs`` pages of 50 from the newest (ccxt does not pass Kraken's ``count``
  on, which reading from the oldest end needs), so items come newest first; the pair is
  kept here (ccxt would filter a page after the fact, which breaks the page count).
  Transfers: the one list Kraken answers without a cursor (ccxt drops cursor pages).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ...errors import InvalidRequest
from ...models import AccountTrade, Order, Side, Transfer, TransferKind
from ..base import Op, Params
from ..binance import history as binance

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["EXTRA", "history_params", "parse_history"]

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
    offset = _offset(cursor)
    params: Params = [("since", since), (EXTRA + "until", str(made.end_ms))]
    params.append((EXTRA + "ofs", str(offset)))
    if made.op is Op.ORDER_HISTORY:
        params.append((EXTRA + "closetime", "open"))
    return params


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    kind, _, value = cursor.partition(":")
    if kind != "ofs" or not value.isdigit():
        raise InvalidRequest(f"not a ccxt history cursor: {cursor!r}")
    return int(value)


def parse_history(
    paging: str | None,
    made: Window,
    cursor: str | None,
    payload: Any,
    order: Callable[[Any], Order],
) -> tuple[list[Any], str | None]:
    """ccxt's unified structures of one page as our models, and the next cursor."""
    if isinstance(payload, (str, bytes, dict)):
        raise TypeError("a page of history is a list")
    rows = list(payload)
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        items: list[Any] = [_transfer(made.op, r) for r in rows]
        items = [t for t in items if _within(made, t.at)]
        if paging == "binance":
            return items, binance.next_transfer_cursor(made, cursor, len(rows))
        return items, None
    stamps = [(int(r["id"]) if paging == "binance" else 0, int(r["timestamp"])) for r in rows]
    if made.op is Op.TRADE_HISTORY:
        items = [t for t in map(_trade, rows) if _within(made, t.at)]
    else:  # closed orders only
        items = [o for o in map(order, rows) if _within(made, o.created_at) and not o.is_open]
    kept = items
    if made.symbol is not None:
        kept = [i for i in kept if i.symbol == made.symbol]
    if paging == "binance":
        return kept, binance.next_cursor(made, cursor, stamps)
    # ccxt sorts each page oldest first; the pages come newest first: so do their items
    kept.sort(key=lambda i: i.at if made.op is Op.TRADE_HISTORY else i.created_at, reverse=True)
    if len(rows) < _KRAKEN_PAGE:
        return kept, None
    return kept, f"ofs:{_offset(cursor) + len(rows)}"


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
