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
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._checks import function, instance, is_text, seconds, text
from ..errors import (
    AuthenticationRejected,
    InvalidRequest,
    OrderNotFound,
    ScopeError,
    SecureTradeError,
)
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
from .ledger import Ledger, Tracked
from .lines import LineConnector
from .options import Fatal, Marker, Rest, StreamOptions, Subscription, check_stream

if TYPE_CHECKING:
    from ..core.store import JournalStore

__all__ = ["Rest", "StreamOptions", "Subscription", "UserStream"]

log = logging.getLogger("securetrade.streams")
_PRELOAD_WAIT = 5.0  # seconds the start waits for the open orders' journal lookup
_JOURNAL = Marker("journal")


@dataclass
class _Withdrawn:
    asset: str
    amount: Decimal
    at: float


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
        unify: Callable[[str], str] | None = None,
        rest_url: str | None = None,
    ) -> None:
        """``rest_url``: the venue's REST base, where a line stream's missed transactions
        are read (OANDA's ``sinceid``)."""
        check_stream(dialect, url, context, options)
        for name, value in (("credentials", credentials), ("now_ms", now_ms)):
            function(name, value)
        function("unify", unify, optional=True)
        if not callable(getattr(rest, "open_orders", None)):
            raise InvalidRequest("rest must answer the stream's REST questions (see streams.Rest)")
        instance("monitor", monitor, AnomalyMonitor, optional=False)
        if not callable(getattr(journal, "known", None)):  # what it asks (and records fills)
            raise InvalidRequest("journal must be the client's order journal (a JournalStore)")
        if rest_url is not None and not (is_text(rest_url) and rest_url.startswith("https://")):
            raise InvalidRequest("rest_url must be the venue's https:// REST base (or None)")
        self.dialect = dialect
        self._unify = unify or (lambda symbol: symbol)
        self.venue = dialect.name
        self.options = options or StreamOptions()
        self._rest = rest
        self._journal = journal
        # its calls wait on the network (Redis): made off the loop, never on the frame's path
        self._journal_blocking = bool(getattr(journal, "blocking", False))
        self.monitor = monitor
        self._credentials = credentials
        self._now_ms = now_ms
        floor = self.options.min_reconnect
        backoff = Backoff(
            dialect.min_reconnect_delay if floor is None else floor,
            cap=self.options.max_reconnect,
        )
        self._connector: Connector | LineConnector
        if getattr(dialect, "transport", "websocket") == "http":  # OANDA: a line stream
            replay = getattr(dialect, "replay_url", None)
            self._connector = LineConnector(
                url,
                context,
                on_frame=self._on_frame,
                on_gap=self._on_gap,
                on_fatal=self._on_fatal,
                headers=lambda: dialect.headers(*self._credentials()),  # type: ignore[attr-defined]
                ids=dialect.ids,  # type: ignore[attr-defined]
                replay_url=None
                if rest_url is None or replay is None
                else replay(rest_url).replace("{account}", credentials()[0].key_id),
                backoff=backoff,
                stale_after=self.options.stale_after,
                max_age=dialect.max_connection_age - 600.0,
            )
        else:
            self._connector = Connector(
                url,
                context,
                on_frame=self._on_frame,
                on_gap=self._on_gap,
                on_fatal=self._on_fatal,
                auth=self._token_frames
                if getattr(dialect, "needs_token", False)
                else lambda: dialect.auth_frames(*self._credentials(), self._now_ms()),
                check_auth=dialect.check_auth_answer,
                probe=dialect.probe,
                backoff=backoff,
                stale_after=self.options.stale_after,
                probe_timeout=self.options.probe_timeout,
                max_age=dialect.max_connection_age - 600.0,  # leave before the venue cuts
                decode=getattr(dialect, "decode", None),
                redact=getattr(dialect, "redact", None),
                # the venue's waits after a refusal (Alpaca's 406), unless the caller set
                # its own min_reconnect
                refusal_floor=getattr(dialect, "refusal_floor", None) if floor is None else None,
            )
        self._inbound: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.options.queue_size)
        self._overflowed = False
        self._subscribers: list[Subscription] = []
        # the subscriptions taking each kind the socket's callback delivers, kept with
        # _subscribers (not looked up per event)
        self._fill_subs: tuple[Subscription, ...] = ()
        self._update_subs: tuple[Subscription, ...] = ()
        self._unknown_subs: tuple[Subscription, ...] = ()
        # reports the socket's callback handed on whose ledger moves wait for _settle
        self._unsettled: list[tuple[ExecutionReport, Tracked, bool]] = []
        self._settle_soon = False  # _settle_later is called once the consumers have run
        self.ledger = Ledger(self.venue)
        self._placed: dict[str, str] = {}  # client order id -> symbol: ours, swept until settled
        self._ours: set[str] = set()
        self._withdrawn: list[_Withdrawn] = []
        self._idle = False  # the processing task waits on an empty queue
        self._key_flags: dict[str, bool] | None = None  # the key's switches at the venue
        self._key_checks = True
        self._tasks: list[asyncio.Task[None]] = []
        self._resync_pending = False
        self.gaps = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start dialling and processing (once), after looking the open orders up in the
        journal (:meth:`_preload`); returns when the first subscription is up or failed."""
        if self._tasks:
            return
        # before dialling, so its REST answer is not read while the first frames wait
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._preload(), _PRELOAD_WAIT)
        if self._tasks:  # started meanwhile by another subscriber
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
        """Wait up to ``timeout`` seconds for a connection; then whether the stream is
        :attr:`healthy`."""
        seconds("timeout", timeout, least=0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connector.connected.wait(), timeout)
        return self.healthy

    async def close(self) -> None:
        """Stop the socket and the background tasks, and end every subscription."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await self._connector.stop()
        if tasks:  # a REST call being cancelled must not hold the client's close for ever
            await asyncio.wait(tasks, timeout=5.0)
        for sub in list(self._subscribers):
            await sub.aclose()

    def subscribe(self, kinds: tuple[type, ...]) -> Subscription:
        """A new subscription to the events of the given types, each in a bounded queue of its
        own."""
        if not (isinstance(kinds, tuple) and kinds and all(isinstance(k, type) for k in kinds)):
            raise InvalidRequest("kinds must be a tuple of event classes, such as (OrderUpdate,)")
        sub = Subscription(self, kinds, self.options.subscriber_queue)
        self._subscribers.append(sub)
        self._route()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub`` (its ``aclose`` calls this)."""
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            self._route()

    def _route(self) -> None:
        subs = self._subscribers
        self._fill_subs = tuple(s for s in subs if issubclass(FillEvent, s.kinds))
        self._update_subs = tuple(s for s in subs if issubclass(OrderUpdate, s.kinds))
        self._unknown_subs = tuple(s for s in subs if issubclass(UnknownActivity, s.kinds))

    # --- what this process did (so it is not taken for an intruder) --------------------

    def note_placed(self, symbol: str, client_order_id: str) -> None:
        """Record an order this process is placing, so its events are ours and a lost answer is
        swept over REST."""
        text("symbol", symbol)
        text("client_order_id", client_order_id)
        self._placed[client_order_id] = symbol
        self._ours.add(client_order_id)

    def resync(self, reason: str = "requested") -> None:
        """Reconcile over REST now (a ``StreamGap`` with ``reason``, then ``Resynced``), as
        after a gap: for a caller that has its own reason to doubt the stream."""
        text("reason", reason)
        self._offer(Marker(reason, "a reconciliation was asked for"))

    def note_withdrawal(self, asset: str, amount: Decimal) -> None:
        """Record a withdrawal this process made, so the venue's report of it (matched within an
        hour) is not taken for an intruder's."""
        text("asset", asset)
        if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
            raise InvalidRequest("amount must be a positive, finite Decimal")
        self._withdrawn.append(_Withdrawn(asset, amount, time.monotonic()))

    # --- the socket's side ---------------------------------------------------------------

    async def _token_frames(self) -> list[str]:
        """A fresh token over REST, then the dialect's subscription with it (every connect).
        A venue that cannot answer now is a failed connection attempt, retried after the
        backoff; a refusal (the key, its scope) ends the stream."""
        try:
            token = await self._rest.ws_token()
        except (AuthenticationRejected, ScopeError, InvalidRequest):
            raise
        except SecureTradeError as exc:
            raise ConnectionError(f"no WebSocket token now ({type(exc).__name__})") from None
        frames: list[str] = self.dialect.token_frames(token)  # type: ignore[attr-defined]
        return frames

    def _on_frame(self, frame: Any) -> None:
        if self._unsettled:  # a frame right behind the last one, before its settling
            self._settle()
        try:
            parsed = self.dialect.parse(frame)
        except (SecureTradeError, KeyError, TypeError, ValueError) as exc:
            log.warning("stream frame not understood (%s); reconciling", type(exc).__name__)
            parsed = [Marker("sequence", "a frame could not be read")]
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
                self._inbound.put_nowait(Marker("overflow", "the stream queue was full"))
                self._overflowed = False
            except asyncio.QueueFull:
                return  # dropped: the pending overflow gap covers it
        try:
            self._inbound.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True

    async def _on_gap(self, reason: str, detail: str) -> None:
        self._offer(Marker(reason, detail))

    async def _on_fatal(self, error: SecureTradeError) -> None:
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(Fatal(error))

    # --- processing ----------------------------------------------------------------------

    async def _process(self) -> None:
        while True:
            self._idle = True
            item = await self._inbound.get()
            self._idle = False
            self._settle()  # the ledger as the consumers' events left it
            try:
                if isinstance(item, Marker):
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
            self._settle()
            if self._resync_pending:
                self._offer(Marker("retry", "the last reconciliation failed"))
            elif self._placed or any(not t.settled for t in self.ledger.orders.values()):
                self._offer(Marker("sweep"))

    async def _key_watch(self) -> None:
        await self._connector.connected.wait()  # the first reading once the stream is up
        while self._key_checks:
            self._offer(Marker("keys"))
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
        if self.ledger.to_journal:
            await asyncio.sleep(0)  # the consumers take their events first ...
            await self._journal_fills()  # ... then the fills go to the journal's table

    async def _journal_fills(self) -> None:
        rows = self.ledger.take_journal()
        journal = self._journal

        def write() -> None:
            for cid, fill in rows:
                journal.record_fills(cid, [fill])

        if self._journal_blocking:
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
        now = self.ledger.execution_now(report, tracked, force=False)
        if now is None:  # an earlier fill of this order never came
            await self._dispatch(events)
            events = []
            await self._gap("sequence", f"order {report.order_id} skipped a fill")
            now = self.ledger.execution_now(report, tracked, force=True)
            assert now is not None
        if tracked.settled:
            self._placed.pop(tracked.client_order_id, None)
        await self._dispatch([*events, *now])

    def _fast(self, report: ExecutionReport) -> bool:
        """Handle a report in the socket's own task when nothing is queued before it and it
        needs no I/O but the (local) journal: one task switch less per event. False:
        the processing task takes it (a gap, a full subscriber, a networked journal).

        Deliver first, book after: what the report brings is read off the ledger without
        changing it, only the events some subscriber takes are built and handed on, and
        the ledger's moves wait in ``_unsettled`` for :meth:`_settle_later`, called after
        the consumers just woken have run. Whatever reads the ledger settles first (the
        next frame, the processing task, the sweep), so nothing is delivered twice."""
        ledger = self.ledger
        tracked = ledger.orders.get(report.order_id)
        unknown: UnknownActivity | None = None
        if tracked is None:
            if self._journal_blocking:
                return False
            cid = report.client_order_id
            ours = cid in self._ours or bool(self._journal.known([cid]))
            if ours:
                self._ours.add(cid)
            tracked, unknown = ledger.new_tracked(
                report.order_id, report.symbol, cid, report.side, report.quantity,
                report.at_ms, ours,
            )  # fmt: skip
        try:
            news = ledger.news(report, tracked, force=False)
        except InvalidRequest:  # amounts no fill can have: refused where every report is,
            return False  # in the processing task, which reconciles (the stream goes on)
        if news is None:  # an earlier fill of this order never came
            return False
        room = 3 if unknown is not None else 2
        for sub in self._subscribers:
            queue = sub.queue
            if queue.maxsize - queue.qsize() < room:
                return False
        fill, forward = news
        if unknown is not None:
            self._alert(unknown)  # before anyone downstream sees it
            for sub in self._unknown_subs:
                sub.queue.put_nowait(unknown)
        if fill and self._fill_subs:
            event: Any = ledger.fill_event(report, tracked)
            for sub in self._fill_subs:
                sub.queue.put_nowait(event)
        if forward and self._update_subs:
            event = ledger.update_event(report, tracked)
            for sub in self._update_subs:
                sub.queue.put_nowait(event)
        self._unsettled.append((report, tracked, fill))
        if not self._settle_soon:  # called after the consumers woken above
            self._settle_soon = True
            asyncio.get_running_loop().call_soon(self._settle_later)
        return True

    def _settle(self) -> None:
        """Make the ledger moves of the reports :meth:`_fast` handed on."""
        if not self._unsettled:
            return
        pending, self._unsettled = self._unsettled, []
        ledger = self.ledger
        for report, tracked, fill in pending:
            ledger.orders.setdefault(report.order_id, tracked)
            ledger.record(report, tracked, fill)
            if tracked.settled:
                self._placed.pop(tracked.client_order_id, None)

    def _settle_later(self) -> None:
        """The ledger's moves and the journal's write, once the consumers have had their
        events (the write by the processing task)."""
        self._settle_soon = False
        self._settle()
        if self.ledger.to_journal:
            self._offer(_JOURNAL)

    async def _track(
        self,
        order_id: str,
        symbol: str,
        cid: str,
        side: str,
        quantity: Decimal,
        at_ms: int,
        events: list[Any],
    ) -> Tracked:
        tracked = self.ledger.orders.get(order_id)
        if tracked is None:
            ours = await self._is_ours(cid)
            tracked, unknown = self.ledger.new_tracked(
                order_id, symbol, cid, side, quantity, at_ms, ours
            )
            self.ledger.orders[order_id] = tracked
            if unknown is not None:
                events.append(unknown)
        return tracked

    async def _is_ours(self, cid: str) -> bool:
        if cid in self._ours:
            return True
        return bool(await self._known([cid]))

    async def _known(self, cids: list[str]) -> set[str]:
        """Which of ``cids`` the journal has (placed by a process sharing it), remembered."""
        journal = self._journal
        if self._journal_blocking:
            found = await asyncio.to_thread(journal.known, cids)
        else:
            found = journal.known(cids)
        self._ours.update(found)
        return found

    async def _preload(self) -> None:
        """Look the account's open orders up in the journal at start, in one query: the
        first report of an order placed before this stream began (a restart, another
        client on the journal) then finds it in memory instead of asking the journal on
        the frame's path. Only an optimisation: a failure leaves the per-order lookup."""
        try:
            orders = await self._rest.open_orders()
        except SecureTradeError as exc:
            log.info("stream preload skipped (%s)", type(exc).__name__)
            return
        cids = [o.client_order_id for o in orders if o.client_order_id]
        unknown = [cid for cid in cids if cid not in self._ours]
        if unknown:
            await self._known(unknown)
        for order in orders:  # swept like this process's own: a fill before the socket is
            cid = order.client_order_id  # up is then delivered (recovered), not lost
            if cid and cid in self._ours:
                self._placed.setdefault(cid, self._unify(order.symbol))

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
        events: list[Any] = []
        replay = getattr(self._connector, "replay", None)
        if replay is not None:  # a numbered stream: what was missed, read back in order
            for frame in await replay():
                for item in self.dialect.parse(frame):
                    if isinstance(item, ExecutionReport):
                        events.extend(await self._replayed(item))
        # client order id (the venue's id for an order placed without one, as on Kraken's
        # web UI) -> (client order id, symbol, venue order id if known, the order if listed)
        candidates: dict[str, tuple[str, str, str | None, Order | None]] = {}
        for order in await self._rest.open_orders():
            symbol = self._unify(order.symbol)
            cid = order.client_order_id
            candidates[cid or order.order_id] = (cid, symbol, order.order_id, order)
        for known_id, tracked in self.ledger.orders.items():
            if not tracked.settled:
                cid = tracked.client_order_id
                candidates.setdefault(cid or known_id, (cid, tracked.symbol, known_id, None))
        for cid, symbol in list(self._placed.items()):
            candidates.setdefault(cid, (cid, symbol, None, None))
        for cid, symbol, order_id, listed in candidates.values():
            try:
                order = listed or await self._rest.order(symbol, cid, order_id)
            except (OrderNotFound, InvalidRequest):
                # never reached the venue (refused before sending, or by the venue), or an
                # id the venue's lookups cannot take: nothing to recover for it
                self._placed.pop(cid, None)
                if order_id is not None and order_id in self.ledger.orders:
                    self.ledger.orders[order_id].unqueryable = True
                continue
            events.extend(await self._reconcile_order(cid, order))
        return events

    async def _replayed(self, report: ExecutionReport) -> list[Any]:
        """The events of one report read back over REST (marked recovered), each once."""
        events: list[Any] = []
        tracked = await self._track(report.order_id, report.symbol, report.client_order_id,
                                    report.side, report.quantity, report.at_ms, events)  # fmt: skip
        now = self.ledger.execution_now(report, tracked, force=True) or []
        if tracked.settled:
            self._placed.pop(tracked.client_order_id, None)
        return [*events, *(dataclasses.replace(e, recovered=True) for e in now)]

    async def _history_fills(self, order: Order) -> list[Fill]:
        """The order's executions from the account's trade history, where the venue keeps
        one but no per-order list (Alpaca's FILL activities)."""
        if not getattr(self.dialect, "fills_in_history", False):
            return []
        since = 0 if order.created_at is None else int(order.created_at.timestamp() * 1000)
        try:
            trades = await self._rest.my_trades(order.symbol, max(0, since - 1000))
        except InvalidRequest:
            return []
        return [
            Fill(
                price=t.price,
                quantity=t.quantity,
                commission=t.commission,
                commission_asset=t.commission_asset,
                trade_id=t.trade_id,
            )
            for t in trades
            if t.order_id == order.order_id
        ]

    async def _reconcile_order(self, cid: str, order: Order) -> list[Any]:
        events: list[Any] = []
        at_ms = int(time.time() * 1000)
        tracked = await self._track(order.order_id, self._unify(order.symbol), cid,
                                    order.side.value, order.quantity, at_ms, events)  # fmt: skip
        fills: list[Fill] = []
        if order.filled_quantity > tracked.delivered:
            try:
                fills = await self._rest.fills(order.symbol, cid)
            except InvalidRequest:  # no trade list per order here, or an id it cannot take
                fills = await self._history_fills(order)
        for fill in fills:
            if fill.trade_id is not None and fill.trade_id not in self.ledger.delivered:
                events.append(self.ledger.deliver_fill(order.order_id, tracked, fill, at_ms,
                                                 recovered=True))  # fmt: skip
        update = self.ledger.update(order.order_id, tracked, order.status.value,
                              order.filled_quantity, at_ms, True)  # fmt: skip
        if update is not None:
            events.append(update)
        if tracked.settled:
            self._placed.pop(cid, None)
        return events
