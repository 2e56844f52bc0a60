"""What a stream has delivered, per order and per trade id: the deduplication, with no I/O.

A fill is delivered once per venue trade id; an order update only when it moves the order
forward (more filled, or a later status), so duplicated and late frames are dropped. A
new fill of ours is queued for the journal's fills table (``to_journal``), written by the
supervisor after the consumers have the event: the journal's :class:`Fill` (a validated
model) is built then too, off the path from the frame to the consumer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..errors import InvalidRequest
from ..models import Fill
from .dialects import ExecutionReport
from .events import FillEvent, OrderUpdate, UnknownActivity

__all__ = ["Ledger", "Tracked"]

RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}  # anything else is final
KEEP_TRADES = 100_000  # trade ids remembered for deduplication


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
        self.to_journal: list[tuple[str, FillEvent]] = []

    def execution_now(
        self, report: ExecutionReport, tracked: Tracked, *, force: bool
    ) -> list[Any] | None:
        """The events of one report on a tracked order; ``None`` when it shows a gap
        (unless ``force``: after a reconciliation, what REST did not show is taken as is)."""
        events: list[Any] = []
        trade = report.trade_id
        if (
            trade is not None
            and trade not in self.delivered
            and report.cumulative > tracked.delivered  # else a recovered fill covered it
        ):
            if not force and report.cumulative - report.last_quantity > tracked.delivered:
                return None
            _check_amounts(report, trade)
            amounts = (report.last_price, report.last_quantity, report.commission)
            fill = self._deliver(
                report.order_id, tracked, trade, *amounts, report.commission_asset,
                report.at_ms, recovered=False,
            )  # fmt: skip
            events.append(fill)
        update = self.update(
            report.order_id, tracked, report.status, report.cumulative, report.at_ms, False
        )
        if update is not None:
            events.append(update)
        return events

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
        return self._deliver(
            order_id, tracked, trade, fill.price, fill.quantity, fill.commission,
            fill.commission_asset, at_ms, recovered=recovered,
        )  # fmt: skip

    def _deliver(
        self,
        order_id: str,
        tracked: Tracked,
        trade: str,
        price: Decimal,
        quantity: Decimal,
        commission: Decimal,
        commission_asset: str | None,
        at_ms: int,
        *,
        recovered: bool,
    ) -> FillEvent:
        self.delivered[trade] = None
        if len(self.delivered) > KEEP_TRADES:
            self.delivered.popitem(last=False)
        tracked.delivered += quantity
        event = FillEvent(
            self.venue, tracked.symbol, order_id, tracked.client_order_id, trade,
            tracked.side, price, quantity, commission, commission_asset, at_ms,
            ours=tracked.ours, recovered=recovered,
        )  # fmt: skip
        if tracked.ours:  # the journal's fills table: once per trade id, whoever reports it
            self.to_journal.append((tracked.client_order_id, event))
        return event

    def take_journal(self) -> list[tuple[str, Fill]]:
        """The fills waiting for the journal's table (client order id, fill), now emptied."""
        rows, self.to_journal = self.to_journal, []
        return [
            (cid, Fill(price=e.price, quantity=e.quantity, commission=e.commission,
                       commission_asset=e.commission_asset, trade_id=e.trade_id))
            for cid, e in rows
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
        progress = (cumulative, RANK.get(status, 2))
        if progress <= tracked.progress:
            return None
        tracked.progress = progress
        tracked.status = status
        tracked.cumulative = max(tracked.cumulative, cumulative)
        return OrderUpdate(
            self.venue,
            tracked.symbol,
            order_id,
            tracked.client_order_id,
            tracked.side,
            status,
            tracked.quantity,
            cumulative,
            at_ms,
            ours=tracked.ours,
            recovered=recovered,
        )


def _check_amounts(report: ExecutionReport, trade: str) -> None:
    """What :class:`Fill` would refuse in a reported execution, checked before its event is
    handed on (the Fill itself is built when the journal is written): the dialects read
    every number with ``to_decimal`` (finite), so a negative amount and a commission asset
    that is not text are what is left to refuse."""
    asset = report.commission_asset
    if (
        report.last_price < 0
        or report.last_quantity < 0
        or report.commission < 0
        or (asset is not None and type(asset) is not str)
    ):
        raise InvalidRequest(
            f"{report.order_id}: trade {trade} was reported with a negative price, quantity "
            "or commission, or a commission asset that is not text; the venue's report "
            "cannot be used (reconcile over REST)"
        )
