"""One supervisor per (venue, account): a user data stream the bot can trust.

The socket's frames go through a bounded queue to one processing task, which turns them
into events, drops what was already delivered (trade ids, order states), records each new
fill of ours in the journal's fills table, and fans the events out to the subscribers.
Whenever events may have been lost (the socket dropped or went mute, the queue overflowed,
an order's cumulative quantity jumped past the fills seen) it emits :class:`StreamGap`,
asks the venue over REST (open orders, and every fill of each order still in play), emits
what the socket missed, once, and then :class:`Resynced`. A periodic sweep does the same
quietly, so a lost last fill of an order is found too, with no later frame to reveal it.

An order no process sharing the journal placed, or a withdrawal this client did not make,
is :class:`UnknownActivity`: fed to the anomaly monitor before the event is handed on,
so its kill switch (shared, when it is a file or Redis) is engaged before the bot can act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .._checks import number, whole
from ..errors import InvalidRequest, OrderNotFound, SecureTradeError
from ..keys import ApiKey
from ..models import Fill, Order
from ..policy.anomaly import Activity, AnomalyMonitor
from ..signing import Signer
from .connection import Backoff, Connector
from .dialects import ExecutionReport, StreamDialect, Withdrawal
from .events import (
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamGap,
    UnknownActivity,
    WithdrawalEvent,
)

if TYPE_CHECKING:
    from ..core.journal import JournalStore

__all__ = ["Rest", "Subscription", "UserStream"]

log = logging.getLogger("securetrade.streams")

_RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}  # anything else is final
_KEEP_TRADES = 100_000  # trade ids remembered for deduplication


class Rest(Protocol):
    """What reconciliation asks of the venue (the client's own REST calls)."""

    async def open_orders(self) -> list[Order]: ...

    async def order(self, symbol: str, client_order_id: str, order_id: str | None) -> Order:
        """One order, by the venue's id when known (unambiguous), else by ours."""
        ...

    async def fills(self, symbol: str, client_order_id: str) -> list[Fill]: ...

    async def key_permissions(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class _Tracked:
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
        return self.status not in _RANK and self.delivered >= self.cumulative


@dataclass(frozen=True, slots=True)
class _Marker:
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Fatal:
    error: SecureTradeError


_END = object()


class Subscription:
    """An async iterator over the events of some kinds; :meth:`aclose` ends it."""

    def __init__(self, owner: UserStream, kinds: tuple[type, ...], size: int) -> None:
        self._owner = owner
        self.kinds = kinds
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        item = await self.queue.get()
        if item is _END:
            self.queue.put_nowait(_END)  # stays ended
            raise StopAsyncIteration
        if isinstance(item, _Fatal):
            self.queue.put_nowait(item)
            raise item.error
        return item

    async def aclose(self) -> None:
        self._owner.unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(_END)


@dataclass
class _Withdrawn:
    asset: str
    amount: Decimal
    at: float


@dataclass
class StreamOptions:
    """Tuning of one supervisor. ``stale_after``: seconds of silence before the venue is
    asked whether the data path still flows (``probe_timeout`` to answer). ``sweep_every``:
    seconds between quiet REST checks of the orders in play. ``queue_size``: frames held
    between the socket and the processing; beyond it, frames are dropped and a gap is
    reconciled. ``min_reconnect``: the least delay between dials (default: the venue's).
    ``key_check_every``: seconds between reads of the key's permissions at the venue (a
    change none of ours can make)."""

    stale_after: float = 30.0
    probe_timeout: float = 5.0
    sweep_every: float = 30.0
    queue_size: int = 1024
    min_reconnect: float | None = None
    max_reconnect: float = 30.0
    subscriber_queue: int = 10_000
    key_check_every: float = 60.0

    def __post_init__(self) -> None:
        number("key_check_every", self.key_check_every, above=0)
        number("stale_after", self.stale_after, above=0)
        number("probe_timeout", self.probe_timeout, least=0)
        number("sweep_every", self.sweep_every, above=0)
        number("max_reconnect", self.max_reconnect, above=0)
        if self.min_reconnect is not None:
            number("min_reconnect", self.min_reconnect, least=0)
        whole("queue_size", self.queue_size, 1)
        whole("subscriber_queue", self.subscriber_queue, 1)


class UserStream:
    """The account's order and fill stream, gap-free and exactly once."""

    def __init__(
        self,
        dialect: StreamDialect,
        *,
        url: str,
        context: ssl.SSLContext | None,
        credentials: Callable[[], tuple[ApiKey, Signer]],
        now_ms: Callable[[], int],
        rest: Rest,
        journal: JournalStore,
        monitor: AnomalyMonitor,
        options: StreamOptions | None = None,
    ) -> None:
        self.dialect = dialect
        self.venue = dialect.name
        self.options = options or StreamOptions()
        self._rest = rest
        self._journal = journal
        self.monitor = monitor
        self._credentials = credentials
        self._now_ms = now_ms
        floor = self.options.min_reconnect
        self._connector = Connector(
            url,
            context,
            on_frame=self._on_frame,
            on_gap=self._on_gap,
            on_fatal=self._on_fatal,
            auth=lambda: dialect.auth_frames(*self._credentials(), self._now_ms()),
            check_auth=dialect.check_auth_answer,
            probe=dialect.probe,
            backoff=Backoff(
                dialect.min_reconnect_delay if floor is None else floor,
                cap=self.options.max_reconnect,
            ),
            stale_after=self.options.stale_after,
            probe_timeout=self.options.probe_timeout,
            max_age=dialect.max_connection_age - 600.0,  # leave before the venue cuts
        )
        self._inbound: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.options.queue_size)
        self._overflowed = False
        self._subscribers: list[Subscription] = []
        self._orders: dict[str, _Tracked] = {}
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._placed: dict[str, str] = {}  # client order id -> symbol, placed by this process
        self._ours: set[str] = set()
        self._withdrawn: list[_Withdrawn] = []
        self._to_journal: list[tuple[str, Fill]] = []
        self._idle = False  # the processing task waits on an empty queue
        self._key_flags: dict[str, bool] | None = None  # the key's switches at the venue
        self._key_checks = True
        self._tasks: list[asyncio.Task[None]] = []
        self._resync_pending = False
        self.gaps = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start dialling and processing (once); returns when the first subscription is up
        or failed."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connector.run(), name="securetrade-stream-socket"),
            loop.create_task(self._process(), name="securetrade-stream-process"),
            loop.create_task(self._sweep(), name="securetrade-stream-sweep"),
            loop.create_task(self._key_watch(), name="securetrade-stream-keys"),
        ]
        waiter = loop.create_task(self._connector.connected.wait())
        await asyncio.wait([waiter, self._tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    @property
    def healthy(self) -> bool:
        """Connected, subscribed, and nothing waiting to be reconciled."""
        return self._connector.healthy and not self._resync_pending and not self._overflowed

    async def wait_healthy(self, timeout: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connector.connected.wait(), timeout)
        return self.healthy

    async def close(self) -> None:
        await self._connector.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for sub in list(self._subscribers):
            await sub.aclose()

    def subscribe(self, kinds: tuple[type, ...]) -> Subscription:
        sub = Subscription(self, kinds, self.options.subscriber_queue)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    # --- what this process did (so it is not taken for an intruder) --------------------

    def note_placed(self, symbol: str, client_order_id: str) -> None:
        self._placed[client_order_id] = symbol
        self._ours.add(client_order_id)

    def note_withdrawal(self, asset: str, amount: Decimal) -> None:
        self._withdrawn.append(_Withdrawn(asset, amount, time.monotonic()))

    # --- the socket's side ---------------------------------------------------------------

    def _on_frame(self, frame: Any) -> None:
        try:
            parsed = self.dialect.parse(frame)
        except (SecureTradeError, KeyError, TypeError, ValueError) as exc:
            log.warning("stream frame not understood (%s); reconciling", type(exc).__name__)
            parsed = [_Marker("sequence", "a frame could not be read")]  # type: ignore[list-item]
        for item in parsed:
            if (
                self._idle
                and not self._overflowed
                and isinstance(item, ExecutionReport)
                and self._inbound.empty()
                and self._fast(item)
            ):
                continue
            self._offer(item)

    def _offer(self, item: Any) -> None:
        if self._overflowed:
            try:
                self._inbound.put_nowait(_Marker("overflow", "the stream queue was full"))
                self._overflowed = False
            except asyncio.QueueFull:
                return  # dropped: the pending overflow gap covers it
        try:
            self._inbound.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True

    async def _on_gap(self, reason: str, detail: str) -> None:
        self._offer(_Marker(reason, detail))

    async def _on_fatal(self, error: SecureTradeError) -> None:
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(_Fatal(error))

    # --- processing ----------------------------------------------------------------------

    async def _process(self) -> None:
        while True:
            self._idle = True
            item = await self._inbound.get()
            self._idle = False
            try:
                if isinstance(item, _Marker):
                    if item.reason == "journal":
                        await self._journal_fills()
                    elif item.reason == "keys":
                        await self._check_key()
                    elif item.reason == "sweep":
                        await self._quiet_sweep()
                    else:
                        await self._gap(item.reason, item.detail)
                elif isinstance(item, ExecutionReport):
                    await self._execution(item)
                elif isinstance(item, Withdrawal):
                    await self._withdrawal(item)
            except SecureTradeError as exc:  # REST down during a reconciliation
                self._resync_pending = True
                log.warning("stream reconciliation failed (%s); retrying at the next sweep", exc)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # a bad answer
                self._resync_pending = True
                log.warning("stream event not understood (%s); reconciling", type(exc).__name__)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.options.sweep_every)
            if self._resync_pending:
                self._offer(_Marker("retry", "the last reconciliation failed"))
            elif self._placed or any(not t.settled for t in self._orders.values()):
                self._offer(_Marker("sweep"))

    async def _key_watch(self) -> None:
        while self._key_checks:
            self._offer(_Marker("keys"))
            await asyncio.sleep(self.options.key_check_every)

    async def _check_key(self) -> None:
        """Compare the key's switches at the venue with the last reading: the SDK never
        changes them, so any change (withdrawals enabled, IP restriction lifted) is
        someone else's."""
        if not self._key_checks:
            return
        try:
            payload = await self._rest.key_permissions()
        except InvalidRequest:  # the venue offers no such read: nothing to compare
            self._key_checks = False
            return
        except SecureTradeError as exc:  # the venue did not answer now: ask again later
            log.warning("stream key check failed (%s); asking again later", exc)
            return
        flags = {k: v for k, v in payload.items() if isinstance(v, bool)}
        before, self._key_flags = self._key_flags, flags
        if before is None:
            return
        changed = sorted(k for k in set(before) | set(flags) if before.get(k) != flags.get(k))
        if changed:
            detail = ", ".join(f"{k} {before.get(k)} -> {flags.get(k)}" for k in changed)
            await self._dispatch(
                [
                    UnknownActivity(
                        self.venue,
                        "key",
                        f"the key's permissions changed at the venue ({detail}); "
                        "no process of ours changes them",
                        at_ms=int(time.time() * 1000),
                        numbers={k: str(flags.get(k)) for k in changed},
                    )
                ]
            )

    async def _dispatch(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, UnknownActivity):
                self._alert(event)  # before anyone downstream sees it
            for sub in list(self._subscribers):
                if isinstance(event, sub.kinds):
                    await sub.queue.put(event)
        if self._to_journal:
            await asyncio.sleep(0)  # the consumers take their events first ...
            await self._journal_fills()  # ... then the fills go to the journal's table

    async def _journal_fills(self) -> None:
        rows, self._to_journal = self._to_journal, []
        journal = self._journal

        def write() -> None:
            for cid, fill in rows:
                journal.record_fills(cid, [fill])

        if getattr(journal, "blocking", False):
            await asyncio.to_thread(write)
        else:
            write()

    async def _gap(self, reason: str, detail: str) -> None:
        self.gaps += 1
        self._resync_pending = True
        await self._dispatch([StreamGap(self.venue, reason, detail)])
        recovered = await self._reconcile()
        self._resync_pending = False
        await self._dispatch([*recovered, Resynced(self.venue, len(recovered))])

    async def _quiet_sweep(self) -> None:
        recovered = await self._reconcile()
        if recovered:
            self.gaps += 1
            await self._dispatch(
                [
                    StreamGap(self.venue, "sweep", "REST shows events the socket did not"),
                    *recovered,
                    Resynced(self.venue, len(recovered)),
                ]
            )

    async def _execution(self, report: ExecutionReport) -> None:
        events: list[Any] = []
        tracked = await self._track(report.order_id, report.symbol, report.client_order_id,
                                    report.side, report.quantity, report.at_ms, events)  # fmt: skip
        now = self._execution_now(report, tracked, force=False)
        if now is None:  # an earlier fill of this order never came
            await self._dispatch(events)
            events = []
            await self._gap("sequence", f"order {report.order_id} skipped a fill")
            now = self._execution_now(report, tracked, force=True)
            assert now is not None
        await self._dispatch([*events, *now])

    def _execution_now(
        self, report: ExecutionReport, tracked: _Tracked, *, force: bool
    ) -> list[Any] | None:
        """The events of one report on a tracked order; ``None`` when it shows a gap
        (unless ``force``: after a reconciliation, what REST did not show is taken as is)."""
        events: list[Any] = []
        trade = report.trade_id
        if trade is not None and trade not in self._delivered:
            if not force and report.cumulative - report.last_quantity > tracked.delivered:
                return None
            fill = Fill(
                price=report.last_price,
                quantity=report.last_quantity,
                commission=report.commission,
                commission_asset=report.commission_asset,
                trade_id=trade,
            )
            events.append(
                self._deliver_fill(report.order_id, tracked, fill, report.at_ms, recovered=False)
            )
        update = self._update(
            report.order_id, tracked, report.status, report.cumulative, report.at_ms, False
        )
        if update is not None:
            events.append(update)
        if tracked.settled:
            self._placed.pop(tracked.client_order_id, None)
        return events

    def _fast(self, report: ExecutionReport) -> bool:
        """Handle a report in the socket's own task when nothing is queued before it and it
        needs no I/O but the (local) journal: one task switch less per event. False:
        the processing task takes it (a gap, a full subscriber, a networked journal)."""
        tracked = self._orders.get(report.order_id)
        events: list[Any] = []
        if tracked is None:
            if getattr(self._journal, "blocking", False):
                return False
            cid = report.client_order_id
            ours = cid in self._ours or bool(self._journal.known([cid]))
            if ours:
                self._ours.add(cid)
            tracked, unknown = self._new_tracked(
                report.order_id, report.symbol, cid, report.side, report.quantity,
                report.at_ms, ours,
            )  # fmt: skip
            if unknown is not None:
                events.append(unknown)
        trade = report.trade_id
        if (
            trade is not None
            and trade not in self._delivered
            and report.cumulative - report.last_quantity > tracked.delivered
        ):
            return False
        room = 2 + len(events)
        if any(sub.queue.maxsize - sub.queue.qsize() < room for sub in self._subscribers):
            return False
        self._orders.setdefault(report.order_id, tracked)
        now = self._execution_now(report, tracked, force=False)
        assert now is not None
        for event in [*events, *now]:
            if isinstance(event, UnknownActivity):
                self._alert(event)
            for sub in self._subscribers:
                if isinstance(event, sub.kinds):
                    sub.queue.put_nowait(event)
        if self._to_journal:
            self._offer(_Marker("journal"))  # written by the processing task, after this
        return True

    def _new_tracked(
        self,
        order_id: str,
        symbol: str,
        cid: str,
        side: str,
        quantity: Decimal,
        at_ms: int,
        ours: bool,
    ) -> tuple[_Tracked, UnknownActivity | None]:
        tracked = _Tracked(symbol, cid, side, ours, quantity)
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

    async def _track(
        self,
        order_id: str,
        symbol: str,
        cid: str,
        side: str,
        quantity: Decimal,
        at_ms: int,
        events: list[Any],
    ) -> _Tracked:
        tracked = self._orders.get(order_id)
        if tracked is None:
            ours = await self._is_ours(cid)
            tracked, unknown = self._new_tracked(order_id, symbol, cid, side, quantity, at_ms, ours)
            self._orders[order_id] = tracked
            if unknown is not None:
                events.append(unknown)
        return tracked

    async def _is_ours(self, cid: str) -> bool:
        if cid in self._ours:
            return True
        journal = self._journal
        if getattr(journal, "blocking", False):
            found = await asyncio.to_thread(journal.known, [cid])
        else:
            found = journal.known([cid])
        if found:
            self._ours.add(cid)
        return bool(found)

    def _deliver_fill(
        self, order_id: str, tracked: _Tracked, fill: Fill, at_ms: int, *, recovered: bool
    ) -> FillEvent:
        trade = fill.trade_id
        assert trade is not None
        self._delivered[trade] = None
        if len(self._delivered) > _KEEP_TRADES:
            self._delivered.popitem(last=False)
        tracked.delivered += fill.quantity
        if tracked.ours:  # the journal's fills table: once per trade id, whoever reports it
            self._to_journal.append((tracked.client_order_id, fill))
        return FillEvent(
            self.venue,
            tracked.symbol,
            order_id,
            tracked.client_order_id,
            trade,
            tracked.side,
            fill.price,
            fill.quantity,
            fill.commission,
            fill.commission_asset,
            at_ms,
            ours=tracked.ours,
            recovered=recovered,
        )

    def _update(
        self,
        order_id: str,
        tracked: _Tracked,
        status: str,
        cumulative: Decimal,
        at_ms: int,
        recovered: bool,
    ) -> OrderUpdate | None:
        """The order's new state, unless it is one already delivered or an older one
        arriving late (reordered or duplicated frames)."""
        progress = (cumulative, _RANK.get(status, 2))
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

    async def _withdrawal(self, item: Withdrawal) -> None:
        now = time.monotonic()
        self._withdrawn = [w for w in self._withdrawn if now - w.at < 3600]
        mine = next(
            (w for w in self._withdrawn if w.asset == item.asset and w.amount == item.amount), None
        )
        events: list[Any] = []
        if mine is not None:
            self._withdrawn.remove(mine)
        else:
            events.append(
                UnknownActivity(
                    self.venue,
                    "withdrawal",
                    f"{item.amount} {item.asset} left the account and this client asked for "
                    "no such withdrawal",
                    asset=item.asset,
                    amount=item.amount,
                    at_ms=item.at_ms,
                )
            )
        events.append(WithdrawalEvent(self.venue, item.asset, item.amount, item.at_ms))
        await self._dispatch(events)

    def _alert(self, event: UnknownActivity) -> None:
        self.monitor.observe(
            Activity(
                "unknown",
                time.time(),
                symbol=event.symbol or event.asset,
                quantity=event.amount,
                client_order_id=event.client_order_id,
                reason=event.kind,
            )
        )

    # --- reconciliation over REST -------------------------------------------------------

    async def _reconcile(self) -> list[Any]:
        """Everything REST knows that the socket did not deliver, each once."""
        # client order id -> (symbol, venue order id if known, the order if listed)
        candidates: dict[str, tuple[str, str | None, Order | None]] = {}
        for order in await self._rest.open_orders():
            candidates[order.client_order_id] = (order.symbol, order.order_id, order)
        for known_id, tracked in self._orders.items():
            if not tracked.settled:
                candidates.setdefault(tracked.client_order_id, (tracked.symbol, known_id, None))
        for cid, symbol in list(self._placed.items()):
            candidates.setdefault(cid, (symbol, None, None))
        events: list[Any] = []
        for cid, (symbol, order_id, listed) in candidates.items():
            try:
                order = listed or await self._rest.order(symbol, cid, order_id)
            except (OrderNotFound, InvalidRequest):
                # never reached the venue (refused before sending, or by the venue), or an
                # id the venue's lookups cannot take: nothing to recover for it
                self._placed.pop(cid, None)
                if order_id is not None and order_id in self._orders:
                    self._orders[order_id].unqueryable = True
                continue
            events.extend(await self._reconcile_order(cid, order))
        return events

    async def _reconcile_order(self, cid: str, order: Order) -> list[Any]:
        events: list[Any] = []
        at_ms = int(time.time() * 1000)
        tracked = await self._track(order.order_id, order.symbol, cid, order.side.value,
                                    order.quantity, at_ms, events)  # fmt: skip
        fills: list[Fill] = []
        if order.filled_quantity > 0:
            try:
                fills = await self._rest.fills(order.symbol, cid)
            except InvalidRequest:  # an id the venue's trade lookup cannot take (not ours)
                fills = []
        for fill in fills:
            if fill.trade_id is not None and fill.trade_id not in self._delivered:
                events.append(self._deliver_fill(order.order_id, tracked, fill, at_ms,
                                                 recovered=True))  # fmt: skip
        update = self._update(order.order_id, tracked, order.status.value,
                              order.filled_quantity, at_ms, True)  # fmt: skip
        if update is not None:
            events.append(update)
        if tracked.settled:
            self._placed.pop(cid, None)
        return events
