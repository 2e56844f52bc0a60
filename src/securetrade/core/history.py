"""Account history over a time range, one page per flow: the drivers page lazily.

A history call is a :class:`Window` (what, from when to when) and a cursor, which the venue
adapter alone understands (Binance's ``fromId`` or a 24-hour window, Kraken's ``ofs``): it
builds the request of one page from them and reads the answer into the page's items and
the cursor of the next (``None`` after the last). The drivers in ``client.py`` run one flow
per page and hand the items out as a generator, so a history of any length is held one
page at a time, and every page passes the rate limiter like any other request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from .._checks import LAST_SECOND, shown, whole
from ..errors import AmbiguousOutcome, InvalidRequest
from ..models import AccountTrade, Order, Transfer
from ..ratelimit import Priority
from ..venues.base import Op
from .effects import Flow
from .reads import Reads

__all__ = ["HISTORY_OPS", "Page", "Window", "page", "stalled", "window"]

T = TypeVar("T")

#: The last millisecond a moment may name (9999-12-31T23:59:59.999Z, where dates end).
LAST_MILLISECOND = LAST_SECOND * 1000 + 999

# What each history operation yields, and whether it names one symbol (else an asset).
HISTORY_OPS: dict[Op, tuple[type[Any], bool]] = {
    Op.TRADE_HISTORY: (AccountTrade, True),
    Op.ORDER_HISTORY: (Order, True),
    Op.DEPOSIT_HISTORY: (Transfer, False),
    Op.WITHDRAWAL_HISTORY: (Transfer, False),
}


@dataclass(frozen=True, slots=True)
class Window:
    """One history request: ``start_ms`` to ``end_ms`` inclusive, venue time.

    ``symbol`` is the venue's own name; ``asked`` the name the caller used (a unified
    ``BTC/USDT``), which the items carry back. ``end_ms`` is fixed when the window is made,
    so that what lands meanwhile cannot shift the venue's offsets under the pages."""

    op: Op
    symbol: str | None
    asked: str | None
    asset: str | None
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None  # the next page's, or None: this was the last


def checked(
    op: Op,
    symbol: str | None,
    asset: str | None,
    since: datetime | int | None,
    until: datetime | int | None,
) -> Window:
    """The caller's arguments, checked without I/O (the symbol is mapped later)."""
    _, per_symbol = HISTORY_OPS[op]
    if per_symbol and not isinstance(symbol, str):
        raise InvalidRequest(f"{op.value} needs a symbol (e.g. 'BTCUSDT' or 'BTC/USDT')")
    if asset is not None and (not isinstance(asset, str) or not asset.isalnum()):
        raise InvalidRequest(f"asset must be an asset code such as 'BTC', not {shown(asset)}")
    start = 0 if since is None else _milliseconds(since, "since")
    end = int(time.time() * 1000) if until is None else _milliseconds(until, "until")
    if end < start:
        raise InvalidRequest("until must not be before since")
    return Window(op, symbol, symbol, asset, start, end)


def window(
    core: Reads,
    op: Op,
    symbol: str | None,
    asset: str | None,
    since: datetime | int | None,
    until: datetime | int | None,
) -> Flow[Window]:
    """A checked window whose symbol is the venue's own: refused before any page is sent
    when the venue offers no such history or the key may not read it."""
    made = checked(op, symbol, asset, since, until)
    return (yield from resolved(core, made))


def offered(core: Reads, made: Window) -> Window:
    """``made``, if the venue offers its history at all (else refused, before any I/O)."""
    venue = core.venue
    if getattr(venue, "history_params", None) is None or made.op not in venue.endpoints:
        raise InvalidRequest(
            f"{venue.name} does not offer {made.op.value}; see client.capabilities"
        )
    return made


def resolved(core: Reads, made: Window) -> Flow[Window]:
    """``made`` with its symbol in the venue's own name, checked against the venue."""
    offered(core, made)
    venue = core.venue
    if made.symbol is None or made.asked != made.symbol:
        return made
    native = yield from core.native_symbol(made.symbol)
    venue.check_symbol(native)
    return replace(made, symbol=native)


def page(core: Reads, made: Window, cursor: str | None) -> Flow[Page[Any]]:
    """One page of ``made`` from ``cursor`` (``None``: the first)."""
    venue = core.venue
    params = venue.history_params(made, cursor)  # type: ignore[attr-defined]
    payload = yield from core._call(made.op, params, symbol=made.symbol, priority=Priority.BULK)
    items, following = venue.parse_history(made, cursor, payload)  # type: ignore[attr-defined]
    if made.asked is not None and made.asked != made.symbol:  # the caller's own name back
        items = [item.model_copy(update={"symbol": made.asked}) for item in items]
    return Page(items, following)


def stalled(venue: str, cursor: str | None, following: str | None) -> None:
    """Refuse a venue whose paging does not move on (the same cursor again): the drivers
    would otherwise ask for the same page forever."""
    if following is not None and following == cursor:
        raise AmbiguousOutcome(
            f"{venue} answered the same page twice; history paging stopped", venue=venue
        )


def _milliseconds(moment: datetime | int, name: str) -> int:
    """An aware datetime or milliseconds since the epoch, as milliseconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise InvalidRequest(f"{name} must be timezone-aware (e.g. tzinfo=timezone.utc)")
        return int(moment.timestamp() * 1000)
    try:  # a plain int within the dates there are: a 5,000-digit one has no str() to send
        return int.__int__(whole(name, moment, 0, LAST_MILLISECOND))
    except InvalidRequest:
        raise InvalidRequest(
            f"{name} must be an aware datetime or milliseconds since the epoch (0 to "
            f"{LAST_MILLISECOND}, the end of year 9999)"
        ) from None
