"""Binance account history, paged by Binance's own rules.

``myTrades`` and ``allOrders`` answer at most 1000 rows; a ``startTime``/``endTime`` pair
may span at most 24 hours, and cannot be combined with ``fromId`` (``myTrades``); an id
(``fromId``, ``orderId``) pages onward from itself with no time limit. So a range is read
by walking 24-hour windows until one holds a row, then by id from the last row on, until
a row lies past the end of the range or a page comes back short: oldest first.

Deposits (``capital/deposit/hisrec``) and withdrawals (``capital/withdraw/history``) take
windows of at most 90 days and an ``offset`` within one; they answer newest first, so the
windows are walked from the end of the range back to its start: newest first throughout.

Cursors (opaque to the caller): ``t:<ms>`` a time window from there, ``id:<n>`` onward
from an id, ``w:<end ms>:<offset>`` a transfer window and the offset within it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..._checks import shown
from ...errors import InvalidRequest
from ...models import AccountTrade, Order, Side, Transfer, TransferKind
from ..base import Op, Params

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = [
    "day_end",
    "history_params",
    "next_cursor",
    "next_transfer_cursor",
    "parse_history",
    "split",
    "transfer_cursor",
]

PAGE = 1000  # rows per page, the most each endpoint answers
DAY_MS = 24 * 3600 * 1000  # the longest startTime..endTime of myTrades and allOrders
TRANSFER_SPAN_MS = 90 * DAY_MS - 1  # ...and of the deposit and withdrawal histories
_ID_PARAM = {Op.TRADE_HISTORY: "fromId", Op.ORDER_HISTORY: "orderId"}
# Binance's deposit statuses (0 pending, 6 credited but cannot withdraw, 7 wrong deposit,
# 8 waiting user confirm, 1 success, 2 rejected) and withdrawal statuses (0 email sent,
# 2 awaiting approval, 3 rejected, 4 processing, 6 completed).
_DEPOSIT_STATUS = {
    0: "pending",
    1: "success",
    2: "rejected",
    6: "credited",
    7: "wrong",
    8: "confirm",
}
_WITHDRAW_STATUS = {0: "email_sent", 2: "awaiting", 3: "rejected", 4: "processing", 6: "completed"}


def history_params(made: Window, cursor: str | None) -> Params:
    """The query of one page of ``made`` from ``cursor``."""
    if made.op in _ID_PARAM:
        assert made.symbol is not None
        params: Params = [("symbol", made.symbol)]
        kind, value = split(cursor, made)
        if kind == "id":
            params.append((_ID_PARAM[made.op], str(value)))
        else:
            params += [("startTime", str(value)), ("endTime", str(day_end(value, made)))]
        return [*params, ("limit", str(PAGE))]
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        end, offset = transfer_cursor(cursor, made)
        params = [] if made.asset is None else [("coin", made.asset)]
        return [
            *params,
            ("startTime", str(max(made.start_ms, end - TRANSFER_SPAN_MS))),
            ("endTime", str(end)),
            ("offset", str(offset)),
            ("limit", str(PAGE)),
        ]
    raise InvalidRequest(f"binance does not offer {made.op.value}")


def parse_history(
    made: Window, cursor: str | None, payload: Any, order: Callable[[Any], Order]
) -> tuple[list[Any], str | None]:
    """The items of one page within the range, and the cursor of the next."""
    if not isinstance(payload, list):
        raise TypeError("history pages are lists")
    if made.op in (Op.DEPOSIT_HISTORY, Op.WITHDRAWAL_HISTORY):
        return _transfers(made, cursor, payload)
    if made.op is Op.TRADE_HISTORY:
        rows: list[tuple[int, int, Any]] = [
            (int(r["id"]), int(r["time"]), _trade(r)) for r in payload
        ]
    else:
        rows = [(int(r["orderId"]), int(r["time"]), order(r)) for r in payload]
    items = [item for _, at, item in rows if made.start_ms <= at <= made.end_ms]
    if made.op is Op.ORDER_HISTORY:
        items = [o for o in items if not o.is_open]  # closed orders only
    return items, next_cursor(made, cursor, [(i, at) for i, at, _ in rows])


def next_cursor(made: Window, cursor: str | None, rows: list[tuple[int, int]]) -> str | None:
    """The cursor after a page of ``rows`` (id, time in ms), read from ``cursor``: onward
    by id once a row is found, the next day while none is, none past the end."""
    kind, value = split(cursor, made)
    past_end = any(at > made.end_ms for _, at in rows)
    if rows and not past_end and (kind == "t" or len(rows) >= PAGE):
        return f"id:{max(i for i, _ in rows) + 1}"  # onward by id from here
    if not rows and kind == "t" and value + DAY_MS <= made.end_ms:
        return f"t:{value + DAY_MS}"  # an empty day: the next one
    return None


def split(cursor: str | None, made: Window) -> tuple[str, int]:
    """``("t", ms)`` or ``("id", n)``. The first page of a range from the very beginning
    reads by id from 0 (every trade or order there is); else the first day of it."""
    if cursor is None:
        return ("id", 0) if made.start_ms == 0 else ("t", made.start_ms)
    kind, _, value = cursor.partition(":")
    if kind not in ("t", "id") or not _count(value):
        raise InvalidRequest(f"not a Binance history cursor: {shown(cursor)}")
    return kind, int(value)


def day_end(start: int, made: Window) -> int:
    return min(start + DAY_MS - 1, made.end_ms)


def transfer_cursor(cursor: str | None, made: Window) -> tuple[int, int]:
    """The window (by its end: it spans 90 days back from there, or to the start of the
    range) and the offset of a transfer page: the newest window first."""
    if cursor is None:
        return made.end_ms, 0
    kind, end, offset = [*cursor.split(":"), "", ""][:3]
    if kind != "w" or not _count(end) or not _count(offset):
        raise InvalidRequest(f"not a Binance history cursor: {shown(cursor)}")
    return int(end), int(offset)


def _transfers(
    made: Window, cursor: str | None, payload: list[Any]
) -> tuple[list[Any], str | None]:
    deposit = made.op is Op.DEPOSIT_HISTORY
    items = [_deposit(r) if deposit else _withdrawal(r) for r in payload]
    items = [t for t in items if made.start_ms <= _ms(t.at) <= made.end_ms]
    return items, next_transfer_cursor(made, cursor, len(payload))


def next_transfer_cursor(made: Window, cursor: str | None, rows: int) -> str | None:
    """After a transfer page of ``rows`` rows: the same window further on, else the
    window before it, else none."""
    end, offset = transfer_cursor(cursor, made)
    if rows >= PAGE:
        return f"w:{end}:{offset + rows}"
    start = max(made.start_ms, end - TRANSFER_SPAN_MS)
    if start > made.start_ms:  # the window before this one
        return f"w:{start - 1}:0"
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _moment(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def _trade(row: Any) -> AccountTrade:
    return AccountTrade(
        symbol=row["symbol"],
        trade_id=str(row["id"]),
        order_id=str(row["orderId"]),
        side=Side.BUY if row["isBuyer"] else Side.SELL,
        price=row["price"],
        quantity=row["qty"],
        quote_quantity=row.get("quoteQty"),
        commission=row.get("commission", "0"),
        commission_asset=row.get("commissionAsset"),
        maker=bool(row["isMaker"]),
        at=_moment(row["time"]),
    )


def _deposit(row: Any) -> Transfer:
    status = row.get("status")
    return Transfer(
        kind=TransferKind.DEPOSIT,
        transfer_id=str(row["id"]),
        asset=row["coin"],
        amount=row["amount"],
        status=_DEPOSIT_STATUS.get(status, str(status)),
        at=_moment(row["insertTime"]),
        address=row.get("address") or None,
        network=row.get("network") or None,
        tx_id=row.get("txId") or None,
    )


def _withdrawal(row: Any) -> Transfer:
    """``applyTime`` is UTC text (``2019-10-12 11:12:02``), unlike every other time."""
    status = row.get("status")
    applied = datetime.strptime(str(row["applyTime"]), "%Y-%m-%d %H:%M:%S")
    return Transfer(
        kind=TransferKind.WITHDRAWAL,
        transfer_id=str(row["id"]),
        asset=row["coin"],
        amount=row["amount"],
        fee=Decimal(str(row.get("transactionFee", "0"))),
        status=_WITHDRAW_STATUS.get(status, str(status)),
        at=applied.replace(tzinfo=timezone.utc),
        address=row.get("address") or None,
        network=row.get("network") or None,
        tx_id=row.get("txId") or None,
    )


def _count(text: str) -> bool:
    """A cursor's number: decimal digits ``int()`` reads ('²' is a digit it refuses), at
    most 19 of them (4,300 would be a ValueError)."""
    return text.isdecimal() and len(text) < 20
