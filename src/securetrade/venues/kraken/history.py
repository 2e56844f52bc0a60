"""Kraken account history, paged by Kraken's own rules.

``TradesHistory`` and ``ClosedOrders`` answer 50 results a page, the most recent first,
with ``count`` (how many match) and ``ofs`` to page on; ``start`` is exclusive and ``end``
inclusive, in seconds; neither takes a pair (the pair is kept here). ``end`` is fixed for
the whole range, so what happens meanwhile cannot shift the offsets; the pages are read
from the oldest end (the first page only learns ``count``), so items come oldest first.

``DepositStatus`` and ``WithdrawStatus`` page with a cursor (``cursor=true``, then the
``next_cursor`` each page answers), newest first.

Cursors (opaque to the caller): ``o:<ofs>:<take>`` the offset of a page and how many of
its rows are still unread; ``c:<venue cursor>`` a transfer page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..._checks import shown
from ...errors import InvalidRequest
from ...models import AccountTrade, Order, Side, Transfer, TransferKind
from ..base import Op, Params
from .tables import asset_name

if TYPE_CHECKING:
    from ...core.history import Window

__all__ = ["history_params", "parse_history", "same_pair"]

PAGE = 50  # TradesHistory and ClosedOrders answer this many a page
_LISTS = {Op.TRADE_HISTORY: "trades", Op.ORDER_HISTORY: "closed"}
_TRANSFERS = {Op.DEPOSIT_HISTORY: "deposit", Op.WITHDRAWAL_HISTORY: "withdrawals"}


def history_params(made: Window, cursor: str | None) -> Params:
    """The body of one page of ``made`` from ``cursor`` (the nonce is added on sending)."""
    start, end = str(max(0, made.start_ms // 1000 - 1)), str(-(-made.end_ms // 1000))
    if made.op in _LISTS:
        offset = 0 if cursor is None else _offset(cursor)[0]
        params: Params = [("start", start), ("end", end), ("ofs", str(offset))]
        if made.op is Op.ORDER_HISTORY:
            params.append(("closetime", "open"))  # placed within the range, as at Binance
        return params
    if made.op in _TRANSFERS:
        params = [] if made.asset is None else [("asset", made.asset)]
        following = "true" if cursor is None else _venue_cursor(cursor)
        return [*params, ("start", start), ("end", end), ("cursor", following)]
    raise InvalidRequest(f"kraken does not offer {made.op.value}")


def parse_history(
    made: Window,
    cursor: str | None,
    payload: Any,
    order: Callable[[str, Mapping[str, Any]], Order],
    asset_name: Callable[[str], str],
) -> tuple[list[Any], str | None]:
    """The items of one page within the range, oldest first, and the next cursor."""
    if made.op in _TRANSFERS:
        return _transfers(made, payload, asset_name)
    entries = payload[_LISTS[made.op]]
    count = int(payload["count"])
    if not isinstance(entries, dict):
        raise TypeError("a page of history is a map of ids to entries")
    if cursor is None and count > PAGE:  # the first page told us how many: the oldest next
        offset = count - PAGE
        return [], f"o:{offset}:{PAGE}"
    offset, take = (0, len(entries)) if cursor is None else _offset(cursor)
    rows = list(entries.items())[:take]
    rows.reverse()  # newest first on the wire; oldest first here
    if made.op is Op.TRADE_HISTORY:
        items: list[Any] = [_trade(txid, entry) for txid, entry in rows]
        items = [t for t in items if _within(made, t.at)]
    else:
        items = [order(txid, entry) for txid, entry in rows]
        items = [o for o in items if o.created_at is None or _within(made, o.created_at)]
    if made.symbol is not None:  # named as the caller named it (TradesHistory: XXBTZUSD)
        symbol = made.symbol
        items = [
            i if i.symbol == symbol else i.model_copy(update={"symbol": symbol})
            for i in items
            if same_pair(i.symbol, symbol)
        ]
    if offset == 0:
        return items, None
    earlier = max(0, offset - PAGE)
    return items, f"o:{earlier}:{offset - earlier}"


def same_pair(one: str, other: str) -> bool:
    """Whether two Kraken names are one pair: ``XXBTZUSD`` (TradesHistory's) and
    ``XBTUSD`` (the altname) both read as BTC and USD."""
    return one == other or bool(_readings(one) & _readings(other))


def _readings(name: str) -> set[tuple[str, str]]:
    return {(asset_name(name[:i]), asset_name(name[i:])) for i in range(2, len(name) - 1)}


def _offset(cursor: str) -> tuple[int, int]:
    kind, offset, take = [*cursor.split(":"), "", ""][:3]
    if kind != "o" or not _count(offset) or not _count(take):
        raise InvalidRequest(f"not a Kraken history cursor: {shown(cursor)}")
    return int(offset), int(take)


def _venue_cursor(cursor: str) -> str:
    kind, _, value = cursor.partition(":")
    if kind != "c" or not value:
        raise InvalidRequest(f"not a Kraken history cursor: {shown(cursor)}")
    return value


def _within(made: Window, moment: datetime) -> bool:
    return made.start_ms <= int(moment.timestamp() * 1000) <= made.end_ms


def _moment(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def _trade(txid: str, entry: Mapping[str, Any]) -> AccountTrade:
    """One TradesHistory entry; Kraken reports every fee in the quote currency."""
    return AccountTrade(
        symbol=str(entry["pair"]),
        trade_id=txid,
        order_id=str(entry["ordertxid"]),
        side=Side.BUY if entry["type"] == "buy" else Side.SELL,
        price=entry["price"],
        quantity=entry["vol"],
        quote_quantity=entry.get("cost"),
        commission=entry.get("fee", "0"),
        maker=entry.get("maker"),
        at=_moment(entry["time"]),
    )


def _transfers(
    made: Window, payload: Any, asset_name: Callable[[str], str]
) -> tuple[list[Any], str | None]:
    """A cursor page (``{"deposit" | "withdrawals": [...], "next_cursor": ...}``) or, from
    a venue that ignores the cursor, the plain list (then there is no next page)."""
    deposit = made.op is Op.DEPOSIT_HISTORY
    if isinstance(payload, list):
        rows, following = payload, None
    else:
        rows, following = payload[_TRANSFERS[made.op]], payload.get("next_cursor")
    items = [
        Transfer(
            kind=TransferKind.DEPOSIT if deposit else TransferKind.WITHDRAWAL,
            transfer_id=str(row["refid"]),
            asset=asset_name(str(row["asset"])),
            amount=row["amount"],
            fee=row.get("fee") or "0",
            status=str(row.get("status", "")),
            at=_moment(row["time"]),
            address=row.get("info") or None,
            network=row.get("network") or row.get("method") or None,
            tx_id=row.get("txid") or None,
        )
        for row in rows
    ]
    items = [t for t in items if _within(made, t.at)]
    if not rows or not following:
        return items, None
    return items, f"c:{following}"


def _count(text: str) -> bool:
    """A cursor's number: decimal digits ``int()`` reads ('²' is a digit it refuses), at
    most 19 of them (4,300 would be a ValueError)."""
    return text.isdecimal() and len(text) < 20
