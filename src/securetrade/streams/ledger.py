"""What a stream has delivered, per order and per trade id: the deduplication, with no I/O.

A fill is delivered once per venue trade id; an order update only when it moves the order
forward (more filled, or a later status), so duplicated and late frames are dropped. A
new fill of ours is queued for the journal's fills table (``to_journal``, its numbers as
reported), written by the supervisor after the consumers have the event: the journal's
:class:`Fill` (a validated model) is built then too, off the path from the frame to the
consumer. :meth:`Ledger.execution_now` is :meth:`~Ledger.news` (what a report brings,
read without changing anything), the events, then :meth:`~Ledger.record` (the ledger's
moves): the socket's callback uses the parts apart, to build only the events some
subscriber takes and to book after the consumers have theirs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._drafts import draft_of
from ..errors import InvalidRequest
from ..models import Fill
from .dialects import ExecutionReport
from .events import FillEvent, OrderUpdate, UnknownActivity

__all__ = ["Ledger", "Tracked"]

RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}  # anything else is final
KEEP_TRADES = 100_000  # trade ids remembered for deduplication
_ZERO = Decimal(0)
# Events are built unfrozen, then made what they are (see draft_of): once per frame.
_FillDraft = draft_of(FillEvent)
_UpdateDraft = draft_of(OrderUpdate)
#: a fill waiting for the journal: client order id, trade id, price, quantity, commission, asset
JournalRow = tuple[str, str, Decimal, Decimal, Decimal, str | None]


@dataclass(slots=True)
class Tracked:
    """What was delivered of one order."""

    symbol: str
    client_order_id: str
    side: str
    ours: bool
    quantity: Decimal = Decimal(0)
    delivered: Decimal = Decimal(0)  # sum of the fills delivered
    cumulative: Decimal = Decimal(0)  # filled, as last reported
    status: str = "NEW"
    progress: tuple[Decimal, int] = (Decimal(-1), -1)
    unqueryable: bool = False  # REST cannot look it up: sweeps stop asking

    @property
    def settled(self) -> bool:
        if self.unqueryable:
            return True
        return self.status not in RANK and self.delivered >= self.cumulative


class Ledger:
    """The delivered state of one account's stream."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.orders: dict[str, Tracked] = {}
        self.delivered: OrderedDict[str, None] = OrderedDict()
        self.to_journal: list[JournalRow] = []

    def execution_now(
        self,
        report: ExecutionReport,
        tracked: Tracked,
        *,
        force: bool,
    ) -> list[Any] | None:
        """The events of one report on a tracked order; ``None`` when it shows a gap
        (unless ``force``: after a reconciliation, what REST did not show is taken as is)."""
        news = self.news(report, tracked, force=force)
        if news is None:
            return None
        fill, forward = news
        events: list[Any] = []
        if fill:
            events.append(self.fill_event(report, tracked))
        if forward:
            events.append(self.update_event(report, tracked))
        self.record(report, tracked, fill)
        return events

    def news(
        self, report: ExecutionReport, tracked: Tracked, *, force: bool
    ) -> tuple[bool, bool] | None:
        """What ``report`` brings, changing nothing: (a fill not delivered yet, the order
        moving forward); ``None`` when it shows a gap (unless ``force``). A new fill's
        amounts are checked here, before any event of it exists."""
        trade = report.trade_id
        fill = False
        if (
            trade is not None
            and trade not in self.delivered
            and report.cumulative > tracked.delivered  # else a recovered fill covered it
        ):
            if not force and report.cumulative - report.last_quantity > tracked.delivered:
                return None
            _check_amounts(report, trade)
            fill = True
        return fill, (report.cumulative, RANK.get(report.status, 2)) > tracked.progress

    def record(self, report: ExecutionReport, tracked: Tracked, fill: bool) -> None:
        """Move the ledger past ``report``, whose :meth:`news` were ``fill``: its trade
        delivered (and queued for the journal), the order's state forward."""
        if fill:
            assert report.trade_id is not None
            self._record_fill(
                tracked, report.trade_id, report.last_price, report.last_quantity,
                report.commission, report.commission_asset,
            )  # fmt: skip
        _advance(tracked, report.status, report.cumulative)

    def fill_event(self, report: ExecutionReport, tracked: Tracked) -> FillEvent:
        """The event of the fill in ``report`` (its :meth:`news` said there is one)."""
        assert report.trade_id is not None
        event = _FillDraft(
            self.venue, tracked.symbol, report.order_id, tracked.client_order_id,
            report.trade_id, tracked.side, report.last_price, report.last_quantity,
            report.commission, report.commission_asset, report.at_ms, tracked.ours, False,
        )  # fmt: skip
        event.__class__ = FillEvent
        return event  # type: ignore[no-any-return]

    def update_event(self, report: ExecutionReport, tracked: Tracked) -> OrderUpdate:
        """The order's state in ``report`` (its :meth:`news` said it moves forward)."""
        return self._update(
            report.order_id, tracked, report.status, report.cumulative, report.at_ms, False
        )

    def new_tracked(
        self,
        order_id: str,
        symbol: str,
        cid: str,
        side: str,
        quantity: Decimal,
        at_ms: int,
        ours: bool,
    ) -> tuple[Tracked, UnknownActivity | None]:
        tracked = Tracked(symbol, cid, side, ours, quantity)
        if ours:
            return tracked, None
        return tracked, UnknownActivity(
            self.venue,
            "order",
            f"order {order_id} ({side} {quantity} {symbol}) was placed by no process "
            "sharing this journal",
            symbol=symbol,
            order_id=order_id,
            client_order_id=cid,
            amount=quantity,
            at_ms=at_ms,
        )

    def deliver_fill(
        self, order_id: str, tracked: Tracked, fill: Fill, at_ms: int, *, recovered: bool
    ) -> FillEvent:
        """The event of a fill read over REST (already a checked :class:`Fill`)."""
        trade = fill.trade_id
        assert trade is not None
        event = FillEvent(
            self.venue, tracked.symbol, order_id, tracked.client_order_id, trade,
            tracked.side, fill.price, fill.quantity, fill.commission, fill.commission_asset,
            at_ms, tracked.ours, recovered,
        )  # fmt: skip
        self._record_fill(
            tracked, trade, fill.price, fill.quantity, fill.commission, fill.commission_asset
        )
        return event

    def _record_fill(
        self,
        tracked: Tracked,
        trade: str,
        price: Decimal,
        quantity: Decimal,
        commission: Decimal,
        commission_asset: str | None,
    ) -> None:
        delivered = self.delivered
        delivered[trade] = None
        if len(delivered) > KEEP_TRADES:
            delivered.popitem(last=False)
        tracked.delivered += quantity
        if tracked.ours:  # the journal's fills table: once per trade id, whoever reports it
            self.to_journal.append(
                (tracked.client_order_id, trade, price, quantity, commission, commission_asset)
            )

    def take_journal(self) -> list[tuple[str, Fill]]:
        """The fills waiting for the journal's table (client order id, fill), now emptied."""
        rows, self.to_journal = self.to_journal, []
        return [
            (cid, Fill(price=price, quantity=quantity, commission=commission,
                       commission_asset=asset, trade_id=trade))
            for cid, trade, price, quantity, commission, asset in rows
        ]  # fmt: skip

    def update(
        self,
        order_id: str,
        tracked: Tracked,
        status: str,
        cumulative: Decimal,
        at_ms: int,
        recovered: bool,
    ) -> OrderUpdate | None:
        """The order's new state, unless it is one already delivered or an older one
        arriving late (reordered or duplicated frames)."""
        if not _advance(tracked, status, cumulative):
            return None
        return self._update(order_id, tracked, status, cumulative, at_ms, recovered)

    def _update(
        self,
        order_id: str,
        tracked: Tracked,
        status: str,
        cumulative: Decimal,
        at_ms: int,
        recovered: bool,
    ) -> OrderUpdate:
        event = _UpdateDraft(
            self.venue, tracked.symbol, order_id, tracked.client_order_id, tracked.side,
            status, tracked.quantity, cumulative, at_ms, tracked.ours, recovered,
        )  # fmt: skip
        event.__class__ = OrderUpdate
        return event  # type: ignore[no-any-return]


def _advance(tracked: Tracked, status: str, cumulative: Decimal) -> bool:
    """Move ``tracked`` to (``status``, ``cumulative``) if that is forward; whether it was."""
    progress = (cumulative, RANK.get(status, 2))
    if progress <= tracked.progress:
        return False
    tracked.progress = progress
    tracked.status = status
    if cumulative > tracked.cumulative:
        tracked.cumulative = cumulative
    return True


def _check_amounts(report: ExecutionReport, trade: str) -> None:
    """What :class:`Fill` would refuse in a reported execution, checked before its event is
    handed on (the Fill itself is built when the journal is written): the dialects read
    every number with ``to_decimal`` (finite), so a negative amount and a commission asset
    that is not text are what is left to refuse."""
    asset = report.commission_asset
    if (
        report.last_price < _ZERO  # Decimal to Decimal: no int to convert per comparison
        or report.last_quantity < _ZERO
        or report.commission < _ZERO
        or (asset is not None and type(asset) is not str)
    ):
        raise InvalidRequest(
            f"{report.order_id}: trade {trade} was reported with a negative price, quantity "
            "or commission, or a commission asset that is not text; the venue's report "
            "cannot be used (reconcile over REST)"
        )
