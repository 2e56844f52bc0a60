"""The embedded copy engine: one leader event, every follower, each order at most once.

For each event the engine records it in its outbox, then runs one task per follower:
plan the copy (:func:`~.plan.plan`, pure), place it through that follower's own
``AsyncClient`` (every protective layer applies per follower: its key's scopes, its
policy, its journal rows, its rate-limit windows), and record the outcome. Tasks never
cancel each other: one follower's error, hang or quarantine is that follower's alone.

The followers of one venue share what is the same for all of them: one connection pool
(the platform's egress), one rate limiter (each follower's account windows, and the
egress IP's windows, which a 418 pauses for everyone on it at once), the venue's
instruments and clock, the journal and its group commits. So a fan-out to a thousand
followers costs about what a thousand orders from one client cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._checks import flag, safe_repr, text, texts, whole
from ..client import AsyncClient
from ..core import Journal, JournalStore
from ..errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidRequest,
    LocalRefusal,
    OverPermissionedKey,
    PolicyViolation,
    RetryableError,
    SecureTradeError,
    TimestampRejected,
    VenueRejected,
)
from ..keys import Secret
from ..models import Instrument, Order, Side
from ..progress import bar
from ..ratelimit import RateLimiter
from ..record import AuditLog
from ._egress import Lane, Lanes
from ._seat import (
    Bound,
    Reads,
    Seat,
    book,
    breaks,
    decided_from,
    decided_now,
    divergence,
    follower_state,
    net,
    view,
)
from .breaker import Breaker, BreakerSettings

if TYPE_CHECKING:
    from ..privacy import Privacy
from .model import CopyIntent, Follower, LeaderEvent, Movement, Skip
from .outbox import Outbox, Outcome
from .plan import CopyKeys, EventKeys, Terms
from .reconcile import Divergence, LeaderSnapshot, ReconcileReport, reconcile_plan
from .report import EventReport

__all__ = ["CopyEngine"]

log = logging.getLogger("securetrade.copy")


class CopyEngine:
    """Mirrors leader events onto followers.

    ``secret`` keys the followers' idempotency keys (keep it as stable as the journal: a
    new secret makes new keys); ``connect`` gives, per venue name, the ``AsyncClient``
    options that reach it (``base_url``, ``pins``, ``cadata``, ``timeout``...);
    ``journal`` is the one order journal of every follower (a path or a store);
    ``outbox`` where events and outcomes are kept, so a crash resumes a fan-out;
    ``limiters`` a shared ``RateLimiter`` per venue (default: one in memory per venue),
    or for a venue with ``egress_ips`` one per address (``{ip: RateLimiter(ip=ip,
    backend=shared)}``; default: in memory, one backend);
    ``max_tasks`` bounds the followers in flight at once, ``per_account`` those of one
    venue account (several followers may trade one account) and ``per_egress`` those
    behind one egress IP (a venue's connect options may name their ``egress``: venues
    reached through one NAT address share it; by default each venue is its own; None:
    ``max_tasks``). A venue's connect options may instead list ``egress_ips``, addresses
    of this host to send from: each has its own connection pool, per-IP weight windows
    and pause, shared by the followers placed on it (see :mod:`._egress`). Requests on
    the wire are bounded by the connection pool in any case; a bound below the fan-out
    splits it in waves, and the journal then commits each wave on its own (measured: 46
    journal hand-offs to a thread instead of 1 for 1,000 followers at a bound of 256);
    ``breaker`` when a follower's repeated failures open its circuit breaker.
    """

    def __init__(
        self,
        *,
        secret: Secret | bytes | str,
        connect: Mapping[str, Mapping[str, Any]],
        journal: str | Path | JournalStore,
        outbox: str | Path = ":memory:",
        limiters: Mapping[str, RateLimiter | Mapping[str, RateLimiter]] | None = None,
        audit: AuditLog | None = None,
        max_tasks: int = 4096,
        per_account: int = 4,
        per_egress: int | None = None,
        breaker: BreakerSettings | None = None,
        privacy: Privacy | None = None,
    ) -> None:
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        if len(self._secret.expose()) < 16:
            raise InvalidRequest("the copy engine's secret must be at least 16 bytes")
        self._keys = CopyKeys(self._secret)  # keyed once: per event, per follower, no re-keying
        self._lanes = Lanes(connect, limiters)
        tasks = whole("max_tasks", max_tasks, 1)
        self._per_account = whole("per_account", per_account, 1)
        self._per_egress = whole("per_egress", tasks if per_egress is None else per_egress, 1)
        self._bounds: dict[str, Bound] = {}
        if breaker is not None and not isinstance(breaker, BreakerSettings):
            raise InvalidRequest("breaker takes a BreakerSettings")
        self._breaker = breaker or BreakerSettings()
        self._journal: JournalStore = (
            Journal(journal) if isinstance(journal, (str, Path)) else journal
        )
        self._outbox = Outbox(outbox)
        self.audit = audit or AuditLog()
        self._slots = Bound(tasks)  # every follower in flight
        self._seats: dict[str, Seat] = {}
        if privacy is not None and not callable(getattr(privacy, "erase", None)):
            raise InvalidRequest("privacy must be a securetrade.privacy.Privacy (or None)")
        self.privacy = privacy
        self.erasures: dict[str, dict[str, Any]] = {}  # subject_ref -> erasure certificate
        # (venue, leader symbol) -> when the leader's latest close there happened (epoch
        # ms), as received by this engine: an open from before it is not copied any more.
        self._closed_at: dict[tuple[str, str], int] = {}

    # --- followers ---------------------------------------------------------------------------

    def add(self, follower: Follower) -> None:
        """Register ``follower`` (its client is built here; nothing is sent)."""
        if not isinstance(follower, Follower):
            raise InvalidRequest("add() takes a Follower")
        if follower.id in self._seats:
            raise InvalidRequest(f"follower {follower.id!r} is already registered")
        lane = self._lanes.assign(follower)
        self._seats[follower.id] = self._seat(follower, self._client_for(follower, lane), lane)

    async def onboard(self, follower: Follower) -> None:
        """Check ``follower``'s key at the venue before it copies anything: a key that can
        withdraw, or more than it declares, is refused (:class:`OverPermissionedKey`)."""
        if not isinstance(follower, Follower):
            raise InvalidRequest("onboard() takes a Follower")
        lane = self._lanes.assign(follower)
        client = self._client_for(follower, lane)
        try:
            await client.check_key(refuse=True)
        except SecureTradeError:
            self.audit.emit("copy.onboarding_refused", follower=follower.id)
            raise
        if follower.id in self._seats:
            raise InvalidRequest(f"follower {follower.id!r} is already registered")
        self._seats[follower.id] = self._seat(follower, client, lane)
        self.audit.emit("copy.onboarded", follower=follower.id)

    def _who(self, follower_id: str) -> str:
        """How logs name a follower: its keyed pseudonym when privacy is configured."""
        if self.privacy is None:
            return follower_id
        return self.privacy.personal.keys.subject_ref(follower_id)

    async def offboard(
        self, follower_id: str, *, erase: bool | None = None, reason: str = ""
    ) -> list[Order]:
        """Cancel the follower's open copies and forget it. Returns the cancelled orders.

        With ``privacy`` configured (or ``erase=True``) the follower's personal data is then
        erased (:meth:`securetrade.privacy.Privacy.erase`); the certificate is kept in
        :attr:`erasures` under its ``subject_ref``. ``erase=False`` keeps it (a follower
        who leaves copying but stays a client)."""
        text("follower_id", follower_id)
        if erase is not None:
            flag("erase", erase)
        if erase and self.privacy is None:
            raise InvalidRequest("offboard(erase=True) needs CopyEngine(privacy=Privacy(...))")
        seat = self._seats.pop(follower_id, None)
        if seat is None:
            raise InvalidRequest(f"no follower {follower_id!r}")
        self._lanes.unseat(follower_id)
        # A fan-out in flight may be placing this follower's copy: wait for it, so nothing
        # is placed for the follower once this returns (its later turns see it gone).
        async with seat.lock:
            pass
        cancelled = []
        for outcome in self._outbox.history(follower_id):
            if outcome.status != "placed" or outcome.client_order_id is None:
                continue
            intent = self._journal.get(outcome.client_order_id)
            if intent is None or intent.state.value != "ACKED":
                continue
            try:
                cancelled.append(
                    await seat.client.cancel_order(
                        intent.symbol, client_order_id=outcome.client_order_id
                    )
                )
            except SecureTradeError as exc:
                log.warning(
                    "offboarding %s: cancel failed (%s)", self._who(follower_id), type(exc).__name__
                )
        self.audit.emit("copy.offboarded", follower=follower_id, cancelled=len(cancelled))
        if self.privacy is not None and erase is not False:
            certificate = self.privacy.erase(follower_id, reason=reason)
            self.erasures[certificate["subject_ref"]] = certificate
        return cancelled

    @property
    def followers(self) -> list[Follower]:
        """The followers added so far, quarantined ones included."""
        return [seat.follower for seat in self._seats.values()]

    @property
    def quarantined(self) -> dict[str, str]:
        """Follower id -> why it is quarantined (it copies nothing until released)."""
        return {fid: s.quarantined for fid, s in self._seats.items() if s.quarantined}

    def release(self, follower_id: str) -> None:
        """Lift a follower's quarantine (after its key was fixed)."""
        seat = self._seats.get(text("follower_id", follower_id))
        if seat is None:
            raise InvalidRequest(f"no follower {follower_id!r}: add() it first")
        seat.quarantined = None

    @property
    def breakers(self) -> dict[str, str]:
        """Follower id -> its breaker's state, for the followers whose breaker is not closed."""
        return {f: s.breaker.state for f, s in self._seats.items() if s.breaker.state != "closed"}

    @property
    def concurrency_peaks(self) -> dict[str, int]:
        """The most followers each bound (``account:<venue>:<account>``,
        ``egress:<name>``) held in flight at once so far."""
        return {name: bound.peak for name, bound in self._bounds.items()}

    @property
    def egress(self) -> dict[str, str]:
        """Follower id -> the egress its orders leave through: one of its venue's
        ``egress_ips``, or the venue's ``egress`` name (by default the venue's)."""
        return {fid: self._lanes.egress(lane) for fid, lane in self._lanes.of.items()}

    def limiter(self, follower_id: str) -> RateLimiter:
        """The rate limiter ``follower_id``'s orders draw on (its egress IP's)."""
        lane = self._lanes.of.get(text("follower_id", follower_id))
        if lane is None:
            raise InvalidRequest(f"no follower {follower_id!r}")
        return self._lanes.limiter(lane)

    def _seat(self, follower: Follower, client: AsyncClient, lane: Lane) -> Seat:
        account = self._bound(f"account:{follower.venue}:{follower.account}", self._per_account)
        egress = self._bound(f"egress:{self._lanes.egress(lane)}", self._per_egress)
        for bound in (self._slots, account, egress):
            bound.join()
        self._lanes.seat(follower, lane)
        return Seat(follower, client, Breaker(self._breaker), account, egress)

    def _bound(self, name: str, size: int) -> Bound:
        bound = self._bounds.get(name)
        if bound is None:
            bound = self._bounds[name] = Bound(size)
        return bound

    # --- events --------------------------------------------------------------------------------

    async def copy(self, event: LeaderEvent) -> EventReport:
        """Copy ``event`` to every follower; each follower's outcome is in the report.

        Safe to call again with the same event (a redelivery, a replay, another host):
        followers already concluded are left alone, and the others' orders are placed at
        most once through their idempotency keys.
        """
        if not isinstance(event, LeaderEvent):
            raise InvalidRequest("copy() takes a LeaderEvent")
        started = time.monotonic()
        self._outbox.receive(event)
        known = self._outbox.outcomes(event.id)
        where = (event.venue, event.symbol)
        closed_at = self._closed_at.get(where)
        if event.movement is Movement.CLOSE and (closed_at is None or event.at_ms > closed_at):
            self._closed_at[where] = event.at_ms
        seats = list(self._seats.values())
        reads: Reads = {}  # each venue's instruments, read once for this event
        shown = bar(total=len(seats), desc=f"copy {event.id}", unit="follower")
        keys = self._keys.event(event.id)
        terms: Terms = {}  # the open's terms, worked out once per sizing and cap
        follows = [
            self._follow(seat, event, known, started, reads, closed_at, keys, terms)
            for seat in seats
        ]
        if shown is not None:
            follows = [_ticking(follow, shown) for follow in follows]
        try:
            results = await asyncio.gather(*follows, return_exceptions=True)
        finally:
            if shown is not None:
                shown.close()
        outcomes: list[Outcome] = []
        for seat, result in zip(seats, results, strict=True):
            if isinstance(result, BaseException):  # a defect of ours: never silently lost
                log.error("copy %s to %s failed: %r", event.id, self._who(seat.follower.id), result)
                result = Outcome(event.id, seat.follower.id, 0, "unresolved", repr(result))
            outcomes.append(result)
        # A follower offboarded during the fan-out is forgotten (and maybe erased): its
        # outcome is in the report, not written back into the outbox.
        self._outbox.record(
            [o for o in outcomes if o.status != "unresolved" and o.follower_id in self._seats]
        )
        report = EventReport(event, tuple(outcomes), time.monotonic() - started)
        if report.complete:
            self._outbox.done(event.id)
        self.audit.emit("copy.event", event=event.id, **report.counts)
        return report

    async def resume(self) -> list[EventReport]:
        """Finish every event a crash (or an unresolved follower) left open."""
        return [await self.copy(event) for event in self._outbox.pending()]

    def history(self, follower_id: str) -> list[Outcome]:
        """Every recorded outcome for ``follower_id``, oldest first."""
        return self._outbox.history(text("follower_id", follower_id))

    # --- reconciliation ------------------------------------------------------------------------

    async def reconcile(
        self,
        snapshot: LeaderSnapshot,
        followers: Iterable[str] | None = None,
        *,
        apply: bool = False,
    ) -> ReconcileReport:
        """Compare each follower (all, or the ids in ``followers``) with ``snapshot`` and
        propose, or with ``apply=True`` place, what brings it back in line (see
        :mod:`.reconcile`). A follower's manual close is recorded as an override and never
        reopened. Applying first resumes the events a crash left open, so their orders
        count; without ``apply``, a follower still unresolved in one is reported as such.
        Reconciling the same snapshot again places nothing new (the keys are derived from
        the snapshot's id), nor does a later one once the follower is in line."""
        if not isinstance(snapshot, LeaderSnapshot):
            raise InvalidRequest("reconcile() takes a LeaderSnapshot")
        flag("apply", apply)
        if followers is None:
            seats = list(self._seats.values())
        elif isinstance(followers, str):
            raise InvalidRequest("reconcile() takes a list of follower ids, not one string")
        else:
            followers = texts("followers", followers)
            unknown = [f for f in followers if f not in self._seats]
            if unknown:
                raise InvalidRequest(f"no follower {unknown[0]!r}: add() it first")
            seats = [self._seats[f] for f in followers]
        if apply:
            await self.resume()
        open_for: set[str] = set()
        for event in self._outbox.pending():
            concluded = {fid for fid, _ in self._outbox.outcomes(event.id)}
            open_for.update(f for f in self._seats if f not in concluded)
        overrides = self._outbox.overrides()
        results = await asyncio.gather(
            *(self._reconcile_one(seat, snapshot, overrides, open_for, apply) for seat in seats),
            return_exceptions=True,
        )
        divergences: list[Divergence] = []
        for seat, result in zip(seats, results, strict=True):
            if isinstance(result, BaseException):  # a defect of ours: reported, not lost
                log.error("reconciling %s failed: %r", seat.follower.id, result)
                result = [divergence(seat, "skip", f"error:{type(result).__name__}")]
            divergences.extend(result)
        report = ReconcileReport(snapshot, tuple(divergences), apply)
        self.audit.emit(
            "copy.reconciled",
            snapshot=snapshot.id,
            applied=apply,
            clamped=len(report.clamped),  # long-only followers kept from going below zero
            **report.counts,
        )
        return report

    async def _reconcile_one(
        self,
        seat: Seat,
        snapshot: LeaderSnapshot,
        overrides: Mapping[tuple[str, str], tuple[bool, Decimal]],
        open_for: set[str],
        apply: bool,
    ) -> list[Divergence]:
        follower = seat.follower
        async with self._slots, seat.lock:
            if seat.quarantined:
                return [divergence(seat, "skip", "quarantined")]
            if follower.id in open_for:  # its events first (a closed breaker's reason)
                blocked = "unresolved" if seat.breaker.state == "closed" else "circuit_open"
                return [divergence(seat, "skip", blocked)]
            if not seat.breaker.allow():
                return [divergence(seat, "skip", "circuit_open")]
            async with seat.account, seat.egress:
                try:
                    instruments = await seat.client.instruments()
                    balances = {b.asset: b for b in await seat.client.balances()}
                    copied, opened = await self._copied(seat)
                except SecureTradeError as exc:
                    if breaks(exc):
                        seat.breaker.failed()
                    return [divergence(seat, "skip", type(exc).__name__)]
                seat.breaker.succeeded()
                seat.balances = {asset: b.free for asset, b in balances.items()}
                found = []
                for leader_symbol in snapshot.positions:
                    mapped = follower.symbols.get(leader_symbol)
                    if mapped is None and follower.venue == snapshot.venue:
                        mapped = leader_symbol
                    rules = instruments.get(mapped) if mapped is not None else None
                    try:
                        pending = await self._pending(seat, rules, opened)
                    except SecureTradeError as exc:
                        found.append(divergence(seat, "skip", type(exc).__name__))
                        continue
                    symbol = mapped or leader_symbol
                    active, written_off = overrides.get((follower.id, symbol), (False, Decimal(0)))
                    seen = view(snapshot, leader_symbol, rules, balances, copied, pending, active)
                    if written_off:  # closed by hand earlier: no longer the copier's
                        seen = replace(seen, copied=seen.copied - written_off)
                    verdict = reconcile_plan(
                        snapshot, follower, leader_symbol, symbol, seen, secret=self._secret
                    )
                    gap = seen.copied - seen.held
                    found.append(await self._settle(seat, verdict, apply, gap))
                return found

    async def _settle(self, seat: Seat, found: Divergence, apply: bool, gap: Decimal) -> Divergence:
        """Record an override (``gap``: what the follower closed by hand) or a cleared
        one; place a correction when applying."""
        fid = seat.follower.id
        if found.action == "override":
            if self._outbox.override(fid, found.symbol, found.reason, gap):
                self.audit.emit("copy.manual_override", follower=fid, symbol=found.symbol)
        elif found.reason == "override_cleared":
            self._outbox.clear_override(fid, found.symbol)
        elif found.action == "place" and apply and found.intent is not None:
            # A correction is made because the kept balances drifted from the venue's
            # (a hand trade): read them anew rather than book onto them.
            outcome = await self._place(seat, found.intent, time.monotonic())
            seat.balances = None
            if outcome.status != "unresolved":
                self._outbox.record([outcome])
            detail = f"{outcome.status}:{outcome.reason}" if outcome.reason else outcome.status
            return replace(found, outcome=detail)
        return found

    async def _copied(self, seat: Seat) -> tuple[dict[str, Decimal], list[Order]]:
        """The net base each symbol's copy orders filled (fees in the base asset taken
        off), as the journal recorded their final answers, and those still open."""
        journal = self._journal
        copied: dict[str, Decimal] = {}
        opened: list[Order] = []
        for outcome in self._outbox.history(seat.follower.id):
            if outcome.status != "placed" or outcome.client_order_id is None:
                continue
            cid = outcome.client_order_id
            intent = (
                await asyncio.to_thread(journal.get, cid) if journal.blocking else journal.get(cid)
            )
            if intent is None or intent.order_json is None:
                continue
            order = Order.model_validate_json(intent.order_json)
            copied[order.symbol] = copied.get(order.symbol, Decimal(0)) + net(seat, order)
            if order.is_open:
                opened.append(order)
        return copied, opened

    async def _pending(self, seat: Seat, rules: Instrument | None, opened: list[Order]) -> Decimal:
        """The signed quantity the follower's copy orders in ``rules``' symbol still have
        open, as the venue says (asked only when the journal knows of an open one)."""
        if rules is None or not any(o.symbol == rules.symbol for o in opened):
            return Decimal(0)
        ours = {o.client_order_id for o in opened}
        live = await seat.client.open_orders(rules.symbol)
        return sum(
            (
                (o.quantity - o.filled_quantity) * (1 if o.side is Side.BUY else -1)
                for o in live
                if o.client_order_id in ours
            ),
            Decimal(0),
        )

    async def _follow(
        self,
        seat: Seat,
        event: LeaderEvent,
        known: dict[tuple[str, int], Outcome],
        started: float,
        reads: Reads,
        closed_at: int | None,
        keys: EventKeys,
        terms: Terms,
    ) -> Outcome:
        """One follower's copy of ``event``: within its bounds and under its lock, read
        what the plan needs, decide (:func:`~.plan.decide`, as :func:`~.plan.plan`
        does) and place its one leg.

        Written flat, the bounds and the lock entered by hand rather than by ``async
        with``: a fan-out holds a thousand of these across the venue's answer, and each
        object one holds there (a bound ``__aexit__``, the plan's state) is young garbage
        the collector walks at every pass and that brings its next full collection nearer.
        """
        follower = seat.follower
        if known and (follower.id, 0) in known:
            return known[(follower.id, 0)]
        slots, lock = self._slots, seat.lock
        if slots.slots is not None:
            await slots.slots.acquire()
        slots.enter()
        try:
            await lock.acquire()
            try:
                if self._seats.get(follower.id) is not seat:  # offboarded while it waited
                    return Outcome(event.id, follower.id, 0, "skipped", "offboarded")
                if not seat.quarantined and not seat.breaker.allow():
                    return Outcome(event.id, follower.id, 0, "skipped", "circuit_open")
                failures = seat.breaker.failures
                account, egress = seat.account, seat.egress
                if account.slots is not None:
                    await account.slots.acquire()
                account.enter()
                try:
                    if egress.slots is not None:
                        await egress.slots.acquire()
                    egress.enter()
                    try:
                        try:
                            lane = self._lanes.of[follower.id]
                            decided = decided_now(seat, event, lane, reads, closed_at, terms)
                            if decided is None:  # the lane's instruments or balances to read
                                state = await follower_state(seat, event, lane, reads, closed_at)
                                decided = decided_from(state, event, follower, terms)
                                del state  # not held while the order is out
                        except SecureTradeError as exc:
                            return self._failed(seat, event, 0, exc)
                        if isinstance(decided, Skip):
                            reason = decided.reason.value
                            outcome = Outcome(event.id, follower.id, 0, "skipped", reason)
                        else:
                            # Only the order and its key are held across the venue's answer:
                            # no state, intent, list or second coroutine per follower.
                            key = keys.key(follower.id, 0)
                            try:
                                placed = await seat.client.place_order(decided, idempotency_key=key)
                            except SecureTradeError as exc:
                                outcome = self._failed(seat, event, 0, exc)
                            else:
                                outcome = self._placed(seat, event.id, 0, placed, started)
                    finally:
                        egress.leave()
                finally:
                    account.leave()
                if seat.breaker.failures <= failures:  # the venue answered: failures end
                    seat.breaker.succeeded()
                return outcome
            finally:
                lock.release()
        finally:
            slots.leave()

    async def _place(self, seat: Seat, item: CopyIntent, started: float) -> Outcome:
        """Place one leg (see :meth:`_placed`)."""
        try:
            order = await seat.client.place_order(item.order, idempotency_key=item.idempotency_key)
        except SecureTradeError as exc:
            return self._failed(seat, item, item.leg, exc)
        return self._placed(seat, item.event_id, item.leg, order, started)

    def _placed(self, seat: Seat, event_id: str, leg: int, order: Order, started: float) -> Outcome:
        """A leg the venue took. Only an order this call sent is booked into the seat's
        balances (they were read before it went out, so its fill is not in them). A replayed
        answer (a redelivery, the same event racing itself, another worker on the journal
        taking over) may be counted already, by the call that sent it or by a balance read
        made after its fill: the balances are read again before the follower's next copy."""
        if order.replayed:
            seat.balances = None
        else:
            book(seat, order)
        latency = (time.monotonic() - started) * 1000
        follower_id = seat.follower.id
        # The trade record that ties the order to the person: with a privacy-enabled trail
        # the follower is sealed under its trade_record key and kept for the legal period.
        self.audit.record(  # the fields as a dict: not packed into keywords, per follower
            "copy.placed",
            {
                "follower": follower_id,
                "event": event_id,
                "leg": leg,
                "client_order_id": order.client_order_id,
            },
        )
        return Outcome(
            event_id,
            follower_id,
            leg,
            "placed",
            order.status.value,
            order.client_order_id,
            order.order_id,
            latency,
        )

    def _failed(
        self, seat: Seat, about: LeaderEvent | CopyIntent, leg: int, exc: SecureTradeError
    ) -> Outcome:
        """An error, sorted by what it means for this follower and for the event."""
        event_id = about.id if isinstance(about, LeaderEvent) else about.event_id
        follower_id = seat.follower.id
        if breaks(exc) and seat.breaker.failed():
            log.warning("follower %s: circuit breaker open (%s)", follower_id, type(exc).__name__)
            self.audit.emit("copy.circuit_open", follower=follower_id, reason=type(exc).__name__)
        if isinstance(exc, TimestampRejected):
            # Our clock or a slow way to the venue, not the follower's key: not placed, and
            # resume() sends it again under the same idempotency key once the clock is synced.
            return Outcome(event_id, follower_id, leg, "unresolved", type(exc).__name__)
        if isinstance(exc, (AuthenticationRejected, OverPermissionedKey)):
            seat.quarantined = f"{type(exc).__name__}: {exc.message}"
            log.warning("follower %s quarantined: %s", self._who(follower_id), seat.quarantined)
            self.audit.emit("copy.quarantined", follower=follower_id, reason=type(exc).__name__)
            return Outcome(event_id, follower_id, leg, "quarantined", type(exc).__name__)
        if isinstance(exc, InsufficientFunds):
            seat.balances = None  # read them again before the next copy
            return Outcome(event_id, follower_id, leg, "skipped", "balance")
        if isinstance(exc, PolicyViolation):
            return Outcome(event_id, follower_id, leg, "skipped", f"risk_limit:{exc.rule}")
        if isinstance(exc, (AmbiguousOutcome, RetryableError)):
            # Not concluded: the event stays open, and resume() asks again under the same
            # idempotency key (the journal finds the order if it went out).
            return Outcome(event_id, follower_id, leg, "unresolved", type(exc).__name__)
        if isinstance(exc, IdempotencyKeyMismatch):  # planned differently, nothing stored
            return Outcome(event_id, follower_id, leg, "unresolved", type(exc).__name__)
        if isinstance(exc, (VenueRejected, LocalRefusal)):
            return Outcome(event_id, follower_id, leg, "failed", f"{type(exc).__name__}")
        return Outcome(event_id, follower_id, leg, "unresolved", type(exc).__name__)

    # --- clients -------------------------------------------------------------------------------

    def _client_for(self, follower: Follower, lane: Lane) -> AsyncClient:
        return self._lanes.client(follower, lane, self._journal, self.audit)

    async def aclose(self) -> None:
        """Close the connection pools and the outbox (the journal is the caller's)."""
        await self._lanes.aclose()
        self._outbox.close()

    async def __aenter__(self) -> CopyEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @safe_repr
    def __repr__(self) -> str:
        return f"CopyEngine(followers={len(self._seats)}, quarantined={len(self.quarantined)})"


_T = TypeVar("_T")


async def _ticking(work: Awaitable[_T], shown: Any) -> _T:
    """``work``, ticking the fan-out's progress bar when it finishes (either way)."""
    try:
        return await work
    finally:
        shown.update(1)
