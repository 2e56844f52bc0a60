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
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._checks import whole
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
    VenueRejected,
)
from ..keys import KeyRing, Secret
from ..models import Order, Side
from ..progress import bar
from ..ratelimit import RateLimiter
from ..record import AuditLog

if TYPE_CHECKING:
    from ..privacy import Privacy
from .model import CopyIntent, Follower, LeaderEvent, Skip
from .outbox import Outbox, Outcome
from .plan import FollowerState, follower_symbol, plan
from .report import EventReport

__all__ = ["CopyEngine"]

log = logging.getLogger("securetrade.copy")


@dataclass
class _Seat:
    """One follower in the engine: its client, what it holds, whether it is quarantined."""

    follower: Follower
    client: AsyncClient
    balances: dict[str, Decimal] | None = None  # read once, then kept by our own fills
    quarantined: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one event at a time per follower


class CopyEngine:
    """Mirrors leader events onto followers.

    ``secret`` keys the followers' idempotency keys (keep it as stable as the journal: a
    new secret makes new keys); ``connect`` gives, per venue name, the ``AsyncClient``
    options that reach it (``base_url``, ``pins``, ``cadata``, ``timeout``...);
    ``journal`` is the one order journal of every follower (a path or a store);
    ``outbox`` where events and outcomes are kept, so a crash resumes a fan-out;
    ``limiters`` a shared ``RateLimiter`` per venue (default: one in memory per venue);
    ``max_tasks`` bounds the followers in flight at once.
    """

    def __init__(
        self,
        *,
        secret: Secret | bytes | str,
        connect: Mapping[str, Mapping[str, Any]],
        journal: str | Path | JournalStore,
        outbox: str | Path = ":memory:",
        limiters: Mapping[str, RateLimiter] | None = None,
        audit: AuditLog | None = None,
        max_tasks: int = 512,
        privacy: Privacy | None = None,
    ) -> None:
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        if len(self._secret.expose()) < 16:
            raise InvalidRequest("the copy engine's secret must be at least 16 bytes")
        if not isinstance(connect, Mapping) or not connect:
            raise InvalidRequest("connect maps each venue name to its AsyncClient options")
        self._connect = {name: dict(options) for name, options in connect.items()}
        self._journal: JournalStore = (
            Journal(journal) if isinstance(journal, (str, Path)) else journal
        )
        self._outbox = Outbox(outbox)
        self._limiters: dict[str, RateLimiter] = dict(limiters or {})
        self.audit = audit or AuditLog()
        self._slots = asyncio.Semaphore(whole("max_tasks", max_tasks, 1))
        self._seats: dict[str, _Seat] = {}
        self._venue_leads: dict[str, AsyncClient] = {}  # the client each venue shares through
        if privacy is not None and not callable(getattr(privacy, "erase", None)):
            raise InvalidRequest("privacy must be a securetrade.privacy.Privacy (or None)")
        self.privacy = privacy
        self.erasures: dict[str, dict[str, Any]] = {}  # subject_ref -> erasure certificate

    # --- followers ---------------------------------------------------------------------------

    def add(self, follower: Follower) -> None:
        """Register ``follower`` (its client is built here; nothing is sent)."""
        if not isinstance(follower, Follower):
            raise InvalidRequest("add() takes a Follower")
        if follower.id in self._seats:
            raise InvalidRequest(f"follower {follower.id!r} is already registered")
        self._seats[follower.id] = _Seat(follower, self._client_for(follower))

    async def onboard(self, follower: Follower) -> None:
        """Check ``follower``'s key at the venue before it copies anything: a key that can
        withdraw, or more than it declares, is refused (:class:`OverPermissionedKey`)."""
        client = self._client_for(follower)
        try:
            await client.check_key(refuse=True)
        except SecureTradeError:
            self.audit.emit("copy.onboarding_refused", follower=follower.id)
            raise
        if follower.id in self._seats:
            raise InvalidRequest(f"follower {follower.id!r} is already registered")
        self._seats[follower.id] = _Seat(follower, client)
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
        if erase and self.privacy is None:
            raise InvalidRequest("offboard(erase=True) needs CopyEngine(privacy=Privacy(...))")
        seat = self._seats.pop(follower_id, None)
        if seat is None:
            raise InvalidRequest(f"no follower {follower_id!r}")
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
        self._seats[follower_id].quarantined = None

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
        seats = list(self._seats.values())
        shown = bar(total=len(seats), desc=f"copy {event.id}", unit="follower")
        follows = [self._follow(seat, event, known, started) for seat in seats]
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
                result = [Outcome(event.id, seat.follower.id, 0, "unresolved", repr(result))]
            outcomes.extend(result)
        self._outbox.record([o for o in outcomes if o.status != "unresolved"])
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
        return self._outbox.history(follower_id)

    async def _follow(
        self,
        seat: _Seat,
        event: LeaderEvent,
        known: dict[tuple[str, int], Outcome],
        started: float,
    ) -> list[Outcome]:
        follower = seat.follower
        if (follower.id, 0) in known:
            return [known[(follower.id, 0)]]
        async with self._slots, seat.lock:
            try:
                state = await self._state(seat, event)
            except SecureTradeError as exc:
                return [self._failed(seat, event, 0, exc)]
            outcomes = []
            for item in plan(event, follower, state, secret=self._secret):
                if isinstance(item, Skip):
                    outcomes.append(Outcome(event.id, follower.id, 0, "skipped", item.reason.value))
                else:
                    outcomes.append(await self._place(seat, item, started))
            return outcomes

    async def _place(self, seat: _Seat, item: CopyIntent, started: float) -> Outcome:
        try:
            order = await seat.client.place_order(item.order, idempotency_key=item.idempotency_key)
        except SecureTradeError as exc:
            return self._failed(seat, item, item.leg, exc)
        self._book(seat, order)
        latency = (time.monotonic() - started) * 1000
        # The trade record that ties the order to the person: with a privacy-enabled trail
        # the follower is sealed under its trade_record key and kept for the legal period.
        self.audit.emit(
            "copy.placed",
            follower=item.follower_id,
            event=item.event_id,
            leg=item.leg,
            client_order_id=order.client_order_id,
        )
        return Outcome(
            item.event_id,
            item.follower_id,
            item.leg,
            "placed",
            order.status.value,
            order.client_order_id,
            order.order_id,
            latency,
        )

    async def _stored(self, seat: _Seat, item: CopyIntent) -> Order | None:
        """The order the journal holds for this leg's idempotency key, if any."""
        core = seat.client.core
        cid = core.venue.client_order_id(core.account, item.idempotency_key)
        journal = self._journal
        intent = await asyncio.to_thread(journal.get, cid) if journal.blocking else journal.get(cid)
        if intent is None or intent.order_json is None:
            return None
        return core.stored(intent.order_json, item.idempotency_key)

    def _failed(
        self, seat: _Seat, about: LeaderEvent | CopyIntent, leg: int, exc: SecureTradeError
    ) -> Outcome:
        """An error, sorted by what it means for this follower and for the event."""
        event_id = about.id if isinstance(about, LeaderEvent) else about.event_id
        follower_id = seat.follower.id
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

    # --- what the plan needs --------------------------------------------------------------

    async def _state(self, seat: _Seat, event: LeaderEvent) -> FollowerState:
        follower, client = seat.follower, seat.client
        now_ms = int(time.time() * 1000)
        if seat.quarantined:
            return FollowerState(None, now_ms, quarantined=True)
        symbol = follower_symbol(event, follower)
        instruments = await client.instruments()
        rules = instruments.get(symbol) if symbol is not None else None
        if rules is None:
            return FollowerState(None, now_ms)
        if seat.balances is None:
            seat.balances = {b.asset: b.free for b in await client.balances()}
        base = seat.balances.get(rules.base_asset, Decimal(0))
        quote = seat.balances.get(rules.quote_asset, Decimal(0))
        return FollowerState(
            rules,
            now_ms,
            position=base,
            equity=quote + base * event.price,
            quote_free=quote,
            base_free=base,
        )

    def _book(self, seat: _Seat, order: Order) -> None:
        """Keep the follower's balances current from its own fills (no read per event)."""
        balances = seat.balances
        if balances is None or order.filled_quantity <= 0:
            return
        rules = seat.client.core.market.instruments.get(order.symbol)
        if rules is None:
            seat.balances = None
            return
        sign = 1 if order.side is Side.BUY else -1
        base, quote = rules.base_asset, rules.quote_asset
        balances[base] = balances.get(base, Decimal(0)) + sign * order.filled_quantity
        balances[quote] = balances.get(quote, Decimal(0)) - sign * order.quote_quantity
        for fill in order.fills:
            if fill.commission and fill.commission_asset:
                asset = fill.commission_asset
                balances[asset] = balances.get(asset, Decimal(0)) - fill.commission

    # --- clients -------------------------------------------------------------------------------

    def _client_for(self, follower: Follower) -> AsyncClient:
        venue = follower.venue
        options = self._connect.get(venue)
        if options is None:
            raise InvalidRequest(f"no connect options for {venue!r}; pass connect={{...}}")
        lead = self._venue_leads.get(venue)
        limiter = self._limiters.get(venue)
        if limiter is None:
            limiter = self._limiters[venue] = RateLimiter()
        shared: dict[str, Any] = {"journal": self._journal, "limiter": limiter, "audit": self.audit}
        if lead is not None:
            shared["transport"] = lead._transport  # the egress: one connection pool
        client = AsyncClient(
            KeyRing.of(follower.key), policy=follower.policy, **{**options, **shared}
        )
        if lead is None:
            self._venue_leads[venue] = client
        else:
            client.core.share_market(lead.core)
        return client

    async def aclose(self) -> None:
        """Close the connection pools and the outbox (the journal is the caller's)."""
        for client in self._venue_leads.values():
            await client.aclose()
        self._outbox.close()

    async def __aenter__(self) -> CopyEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"CopyEngine(followers={len(self._seats)}, quarantined={len(self.quarantined)})"


_T = TypeVar("_T")


async def _ticking(work: Awaitable[_T], shown: Any) -> _T:
    """``work``, ticking the fan-out's progress bar when it finishes (either way)."""
    try:
        return await work
    finally:
        shown.update(1)
