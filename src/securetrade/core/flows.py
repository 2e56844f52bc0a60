"""The I/O-free pipeline. Every operation is a generator that yields effects.

A flow yields :class:`Wait` (sleep this long), :class:`Send` (write this request, hand me
the response) or a journal call on the order path (:class:`Claim`, :class:`Persist`,
:class:`Settle`, :class:`Lookup`). A driver performs the effect and sends the result back
in, or throws the failure (a :class:`~securetrade.transport.base.TransportFailure`, a
journal error) into the flow. The sync ``Client`` drives flows with ``time.sleep``, a
blocking transport and one journal call at a time; the ``AsyncClient`` with
``asyncio.sleep``, an async transport and group commits (:mod:`.group_commit`). Neither
holds logic the other lacks.

Order of layers for each request: keys and scopes → policy → idempotency journal → rate
limit → freshness (venue timestamp) → signing → transport → record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from ..clock import VenueClock
from ..errors import (
    AmbiguousOutcome,
    AuthenticationRejected,
    ConnectFailed,
    DuplicateOrder,
    IdempotencyKeyMismatch,
    InvalidRequest,
    LocalRefusal,
    OrderNotFound,
    PolicyViolation,
    RateLimited,
    ScopeError,
    SecureTradeError,
    UnresolvedOrder,
    VenueRejected,
)
from ..keys import ApiKey, KeyCheck, KeyRing, Scope, assess
from ..models import Balance, Fill, Instrument, Order, OrderRequest, OrderStatus, to_decimal
from ..nonce import MemoryNonceSource, NonceSource
from ..policy import Decision, KillState, Policy, ReferencePrice
from ..ratelimit import Caller, Priority, RateLimiter, cost_of
from ..record import AuditLog
from ..signing import Signer
from ..transport import telemetry
from ..transport.base import HttpRequest, HttpResponse, TransportFailure
from ..venues.base import Endpoint, Freshness, Op, Outcome, Params, Venue, Verdict
from .journal import (
    Intent,
    IntentState,
    JournalStore,
    owner_is_gone,
    process_token,
)
from .retry import Attempts, RetryPolicy

__all__ = [
    "Claim",
    "Core",
    "Effect",
    "Flow",
    "JournalCall",
    "Lookup",
    "Offload",
    "Persist",
    "RecoveryReport",
    "Send",
    "Settings",
    "Settle",
    "Wait",
]

log = logging.getLogger("securetrade")

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Wait:
    """Effect: sleep ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Send:
    """Effect: send ``request``; the driver answers with an HttpResponse."""

    request: HttpRequest
    op: Op


@dataclass(frozen=True, slots=True)
class Claim:
    """Effect: record the intent as PENDING (:meth:`Journal.begin`); the driver answers
    ``(intent, created)``.

    The journal writes every order makes (claim, attempt, outcome) are effects rather than
    calls so that the async driver can group them: the writes of all orders ready in one
    event-loop turn share one commit, and their attempts one fsync (group commit).
    """

    idempotency_key: str
    client_order_id: str
    account: str
    symbol: str
    fingerprint: str

    def apply(self, journal: JournalStore) -> tuple[Intent, bool]:
        return journal.begin(
            self.idempotency_key, self.client_order_id, self.account, self.symbol, self.fingerprint
        )


@dataclass(frozen=True, slots=True)
class Persist:
    """Effect: durably record that attempt ``attempts + 1`` of an order is about to go out
    (:meth:`Journal.sending`); the driver answers True, or False when the claim was lost.
    """

    client_order_id: str
    attempts: int
    deadline_ms: int

    def apply(self, journal: JournalStore) -> bool:
        return journal.sending(self.client_order_id, self.attempts, self.deadline_ms)


@dataclass(frozen=True, slots=True)
class Settle:
    """Effect: record what became of an order (:meth:`Journal.settle`); answered with None."""

    client_order_id: str
    state: IntentState
    order_json: str | None = None
    error: str | None = None
    fills: tuple[Fill, ...] = ()  # the executions the answer carries

    def apply(self, journal: JournalStore) -> None:
        journal.settle(
            self.client_order_id,
            self.state,
            order_json=self.order_json,
            error=self.error,
            fills=self.fills,
        )


@dataclass(frozen=True, slots=True)
class Lookup:
    """Effect: read an intent (:meth:`Journal.get`); answered with it, or None.

    Through the same queue as the writes, so it sees every write queued before it; and a
    Redis read, which is network I/O, leaves the event loop like the writes do.
    """

    client_order_id: str

    def apply(self, journal: JournalStore) -> Intent | None:
        return journal.get(self.client_order_id)


@dataclass(frozen=True, slots=True)
class Offload:
    """Effect: a call that waits on a file or the network (a rate limiter shared through
    SQLite or Redis); the sync driver makes it, the async one in a worker thread."""

    call: Callable[[], Any]


JournalCall = Claim | Persist | Settle | Lookup
Effect = Wait | Send | Offload | JournalCall
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True, slots=True)
class Settings:
    """Tunables of the pipeline. The defaults suit a bot on a normal network.

    ``retry`` decides how often and how soon a request is sent again (tenacity strategies);
    every order resend reuses the client order id and is signed afresh. ``settle_ms`` is
    added to a request's venue deadline before "not found" counts as proof that it never
    executed (it covers the venue's internal queueing after its gateway check).
    """

    max_attempts: int = 4  # sends of one request, retries included (the default stop)
    max_rate_wait: float = 30.0  # longest a venue-imposed pause is waited out, seconds
    settle_ms: int = 10_000  # margin after a request's venue deadline, see above
    resolve_timeout: float = 60.0  # how long to keep asking about an ambiguous order, seconds
    clock_samples: int = 3  # /time round trips per clock sync
    recover_on_start: bool = True  # reconcile the journal before this client's first order
    owner_patience: float = 60.0  # seconds before a PENDING intent of a silent owner is taken
    retry: RetryPolicy | None = None  # None: RetryPolicy(max_attempts=max_attempts)
    # A 429/418 answer to an order is ambiguous: for a proxy or gateway that may forward
    # the order, then answer "rate limited" itself. The venue is then asked before a resend.
    ambiguous_rate_limits: bool = False

    def retry_policy(self) -> RetryPolicy:
        return self.retry or RetryPolicy(max_attempts=self.max_attempts)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What reconciling the journal with the venue found.

    ``resolved``: unfinished intents the venue knows, now recorded. ``not_placed``: client
    order ids proven never to have executed (the same idempotency key sends them again).
    ``unresolved``: ids the venue could not answer for; they need another look or a person.
    ``orphans``: open orders at the venue with this SDK's id prefix and no journal entry
    (another journal, or a lost one); reported, never adopted silently.
    """

    resolved: tuple[Order, ...] = ()
    not_placed: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    orphans: tuple[Order, ...] = ()


_STATE_OF = {
    OrderStatus.NEW: IntentState.ACKED,
    OrderStatus.PARTIALLY_FILLED: IntentState.ACKED,
    OrderStatus.FILLED: IntentState.FILLED,
    OrderStatus.CANCELED: IntentState.CANCELED,
    OrderStatus.REJECTED: IntentState.REJECTED,
    OrderStatus.EXPIRED: IntentState.EXPIRED,
}


# The deadline of an attempt on a venue where "not found" never proves anything.
NO_DEADLINE = 2**62

# How long a second caller with the same key waits for a live owner's send to finish
# before it asks the venue itself.
_OWNER_PATIENCE_MS = 1000.0


class _ClaimLost(Exception):
    """Somebody else sent or claimed the intent since we read it: rejoin, do not send."""


class Core:
    """All protective layers for one key at one venue; holds no I/O of its own."""

    def __init__(
        self,
        venue: Venue,
        key: ApiKey | KeyRing,
        *,
        journal: JournalStore,
        limiter: RateLimiter | None = None,
        clock: VenueClock | None = None,
        policy: Policy | None = None,
        audit: AuditLog | None = None,
        settings: Settings | None = None,
        nonces: NonceSource | None = None,
        unsafe_allow_withdraw_scope: bool = False,
    ) -> None:
        # A ring can only narrow on rotation, so checking its current key covers the rest.
        self.keys = KeyRing.of(key)
        key = self.keys.current
        if key.venue != venue.name:
            raise InvalidRequest(f"key is for {key.venue!r}, client is for {venue.name!r}")
        if Scope.WITHDRAW in key.scopes and not unsafe_allow_withdraw_scope:
            raise InvalidRequest(
                "this key can withdraw funds; a trading client refuses such a key because a "
                "leak would let anyone drain the account. Use key.restrict(scopes=...) to drop "
                "'withdraw', or pass unsafe_allow_withdraw_scope=True if withdrawing is the job"
            )
        if Scope.WITHDRAW in key.scopes:
            log.warning("unsafe_allow_withdraw_scope: client holds a key that can withdraw")
        self.venue = venue
        self.account = self.keys.account  # stable across rotations: client order ids use it
        self.journal = journal
        self.limiter = limiter if limiter is not None else RateLimiter()
        self._callers: dict[str, Caller] = {}
        self._adopt_published_limits = self.limiter.attach(
            venue.name, venue.rate_limits, caller=self._caller(key)
        )
        self.clock = clock or VenueClock()
        self.policy = policy or Policy()
        self.audit = audit or AuditLog()
        self.base_url: str | None = None  # where the transport sends (for traces), if known
        self._references: dict[str, ReferencePrice] = {}
        self._cancel_due: KillState | None = None  # a kill switch asked to cancel open orders
        self._cancelled_for: float | None = None  # ...and this engagement was honoured
        for switch in self.policy.kill_switches():
            switch.on_engage(_kill_listener(self))
        self.settings = settings or Settings()
        self._signers: dict[str, Signer] = {key.key_id: venue.signer(key)}
        # Nonce venues: one process-wide source by default, so clients sharing a key agree.
        self.nonces: NonceSource | None = None
        if venue.freshness is Freshness.NONCE:
            self.nonces = nonces or _PROCESS_NONCES
        self._instruments: dict[str, Instrument] = {}
        self._recovered = False
        self._recovering = False
        self._inflight: set[str] = set()  # client order ids this client is sending now
        self._orphans: dict[str, Order] = {}  # venue orders recovery could not match
        # "Not found" proves an attempt never executed only on a venue with a request
        # deadline, or one that refuses a used client order id forever (then a resend is
        # refused if the first attempt lands after all). Elsewhere it stays UNKNOWN.
        self._absence_provable = (
            getattr(venue, "request_deadline", True) or getattr(venue, "dedupe", "") == "strong"
        )

    # --- the public operations ------------------------------------------------------------

    def server_time(self) -> Flow[int]:
        payload = yield from self._call(Op.SERVER_TIME, [])
        return self.venue.parse_server_time(payload)

    def instruments(
        self, *, refresh: bool = False, priority: Priority = Priority.BULK
    ) -> Flow[dict[str, Instrument]]:
        if refresh or not self._instruments:
            payload = yield from self._call(Op.INSTRUMENTS, [], priority=priority)
            self._instruments = self.venue.parse_instruments(payload)
            published = self.venue.parse_rate_limits(payload)
            if published and self._adopt_published_limits:
                self.limiter.adopt(published)  # the venue's own figures beat our table
        return dict(self._instruments)

    def balances(self) -> Flow[list[Balance]]:
        payload = yield from self._call(Op.BALANCES, [])
        return self.venue.parse_balances(payload)

    def open_orders(self, symbol: str | None = None) -> Flow[list[Order]]:
        if symbol is not None:
            self.venue.check_symbol(symbol)
        params = self.venue.open_orders_params(symbol)
        payload = yield from self._call(Op.OPEN_ORDERS, params, symbol=symbol)
        orders = self.venue.parse_orders(payload)
        listed = [o for o in orders if symbol is None or o.symbol == symbol]
        self.policy.observe_open_orders(listed, symbol=symbol)
        return listed

    def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        payload = yield from self._call(Op.GET_ORDER, params, symbol=symbol)
        order = self.venue.parse_order(payload)
        self.policy.observe(order)
        yield from self._record(order)
        return order

    def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        # A cancel is idempotent at the venue: resending one is always safe.
        payload = yield from self._call(Op.CANCEL_ORDER, params, symbol=symbol)
        if Op.CANCEL_ORDER in self.venue.order_acks:  # an acknowledgement: read the order back
            order = yield from self.get_order(
                symbol, client_order_id=client_order_id, order_id=order_id
            )
        else:
            order = self.venue.parse_order(payload)
            yield from self._record(order)
        self.policy.observe(order)
        self.audit.emit("order.canceled", client_order_id=order.client_order_id, symbol=symbol)
        return order

    def fills(self, symbol: str, *, client_order_id: str) -> Flow[list[Fill]]:
        """The executions of one of our orders: the venue's trades for it are recorded in
        the journal, once per trade id, and every fill recorded so far is returned."""
        self.venue.check_symbol(symbol)
        trades_params = getattr(self.venue, "trades_params", None)
        if trades_params is None or Op.TRADES not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} does not report an order's trades")
        journal, blocking = self.journal, self.journal.blocking
        intent = yield from self._offloaded(blocking, journal.get, client_order_id)
        if intent is not None and intent.order_json is not None:
            order = self._stored(intent.order_json, intent.idempotency_key)
        else:
            order = yield from self.get_order(symbol, client_order_id=client_order_id)
        payload = yield from self._call(
            Op.TRADES, trades_params(symbol, order.order_id), symbol=symbol
        )
        trades: list[Fill] = self.venue.parse_trades(payload)  # type: ignore[attr-defined]

        def record() -> list[Fill]:
            journal.record_fills(client_order_id, trades)
            return journal.fills(client_order_id)

        return (yield from self._offloaded(blocking, record))

    def _record(self, order: Order) -> Flow[None]:
        """Keep the journal row of one of our orders current with what the venue said of it
        (a cancel, a fill, an UNKNOWN intent adopted when its order lands). A write effect
        like the others, so that the journal takes every answer in the order it came."""
        cid = order.client_order_id
        if not self.venue.owns_client_order_id(cid):
            return
        intent = yield Lookup(cid)
        if intent is None or intent.account != self.account:
            return
        order = order.model_copy(update={"idempotency_key": intent.idempotency_key})
        yield Settle(cid, _STATE_OF[order.status], order.model_dump_json(), fills=order.fills)

    def withdraw(
        self, asset: str, amount: Decimal | str | int, address: str, *, network: str | None = None
    ) -> Flow[str]:
        value = to_decimal(amount, field="amount")
        if value <= 0:
            raise InvalidRequest("amount must be greater than zero")
        params = self.venue.withdraw_params(asset, value, address, network)
        try:
            self.policy.check_withdrawal()
            self.key.require(Scope.WITHDRAW, address=address)
        except LocalRefusal as exc:
            self.audit.emit(
                "withdraw.refused", asset=asset, amount=value, reason=type(exc).__name__
            )
            raise
        self.audit.emit("withdraw.attempt", asset=asset, amount=value, address=address)
        payload = yield from self._call(Op.WITHDRAW, params, once=True, address=address)
        return self.venue.parse_withdrawal(payload)

    def key_permissions(self) -> Flow[dict[str, Any]]:
        payload = yield from self._call(Op.KEY_PERMISSIONS, [])
        return dict(payload)

    def check_key(self, *, refuse: bool = False) -> Flow[KeyCheck]:
        """Ask the venue what the key may really do; warn, or refuse, if more than declared."""
        parse = getattr(self.venue, "parse_key_permissions", None)
        if parse is None or Op.KEY_PERMISSIONS not in self.venue.endpoints:
            raise InvalidRequest(f"{self.venue.name} cannot report what a key may do")
        key = self.key
        payload = yield from self._call(Op.KEY_PERMISSIONS, [])
        report = assess(key, parse(payload))
        self.audit.emit("key.checked", key=report.key_id_hint, ok=report.ok)
        return report.enforce(refuse=refuse)

    def check_order(self, order: OrderRequest) -> Flow[Instrument]:
        """Every local check of ``order`` (scope, policy, venue grammar, instrument rules)."""
        instrument, _ = yield from self._vet(order)
        return instrument

    def would_pass(self, order: OrderRequest) -> Flow[Decision]:
        """The dry run: would ``order`` pass every local check now? Only reads are sent."""
        try:
            yield from self._vet(order)
        except PolicyViolation as exc:
            return Decision.deny(exc.rule, exc.message)
        except LocalRefusal as exc:
            rule = "scope" if isinstance(exc, ScopeError) else "instrument"
            return Decision.deny(rule, exc.message)
        return Decision(True)

    def _vet(self, order: OrderRequest) -> Flow[tuple[Instrument, ReferencePrice | None]]:
        """Scope, then the rules that need no market data, then the venue's grammar and
        instrument rules, then (only if a rule needs it) the reference price and the rest."""
        if self._cancel_due is not None:
            yield from self._honour_kill_switch()
        try:
            self.key.require(
                Scope.TRADE, symbol=order.symbol, quantity=order.quantity, notional=order.notional
            )
        except ScopeError:
            self.audit.emit("scope.refused", op="place_order", reason="permission")
            raise
        try:
            self.policy.check(order, final=False)
            self.venue.check_symbol(order.symbol)
            instruments = yield from self.instruments(priority=Priority.ORDER)
            instrument = instruments.get(order.symbol)
            if instrument is None:
                raise InvalidRequest(f"{order.symbol} is not listed at {self.venue.name}")
            instrument.check(order)
            reference = None
            if self.policy.needs_reference(order):  # else the first check was complete
                reference = yield from self.reference_price(order.symbol)
                self.policy.check(order, reference_price=reference)
        except PolicyViolation as exc:
            if exc.rule == "kill_switch":  # engaged elsewhere: it may ask to cancel here too
                yield from self._honour_kill_switch()
            self.audit.emit("policy.denied", rule=exc.rule, symbol=order.symbol, reason=exc.message)
            telemetry.annotate("policy.decision", f"deny:{exc.rule}")
            raise
        telemetry.annotate("policy.decision", "allow")
        return instrument, reference

    def reference_price(self, symbol: str) -> Flow[ReferencePrice]:
        """The venue's last price of ``symbol``, reused while younger than the policy's
        ``reference_max_age`` allows (half of it, so a reused price is never stale)."""
        cached = self._references.get(symbol)
        if cached is not None and time.time() - cached.at < self.policy.reference_max_age / 2:
            return cached
        self.venue.check_symbol(symbol)
        payload = yield from self._call(
            Op.TICKER_PRICE, [("symbol", symbol)], symbol=symbol, priority=Priority.ORDER
        )
        fresh = ReferencePrice(symbol, self.venue.parse_price(payload), time.time())
        self._references[symbol] = fresh
        return fresh

    def kill(self, reason: str, *, cancel_open: bool = False) -> Flow[list[Order]]:
        """Engage the kill switch (everywhere it reaches); cancel open orders if asked."""
        self.policy.kill_switch.engage(reason, cancel_open=cancel_open)
        self.audit.emit("killswitch.engaged", reason=reason, cancel_open=cancel_open)
        cancelled = yield from self._honour_kill_switch()
        return cancelled

    def _honour_kill_switch(self) -> Flow[list[Order]]:
        """Cancel every open order once per engagement that asked for it."""
        due = self._cancel_due
        if due is None:
            for switch in self.policy.kill_switches():
                state = switch.state()
                if state.engaged and state.cancel_open and state.at != self._cancelled_for:
                    due = state
                    break
        if due is None or due.at == self._cancelled_for:
            self._cancel_due = None
            return []
        self._cancel_due, self._cancelled_for = None, due.at
        if Scope.CANCEL not in self.key.scopes or Scope.READ not in self.key.scopes:
            log.error("kill switch asked to cancel open orders, but this key cannot")
            return []
        cancelled = []
        for order in (yield from self.open_orders()):
            try:
                done = yield from self.cancel_order(order.symbol, order_id=order.order_id)
            except OrderNotFound:
                continue  # filled or cancelled meanwhile
            cancelled.append(done)
        self.audit.emit("killswitch.cancelled", orders=len(cancelled), reason=due.reason)
        return cancelled

    def place_order(self, order: OrderRequest, idempotency_key: str | None = None) -> Flow[Order]:
        """Place ``order`` at most once per ``idempotency_key``, whatever fails on the way."""
        if order.client_order_id is not None:
            raise InvalidRequest(
                "client_order_id is derived from the idempotency key; pass idempotency_key"
            )
        _, reference = yield from self._vet(order)
        key = idempotency_key or uuid.uuid4().hex
        if not key or len(key) > 255 or not key.isprintable():
            raise InvalidRequest("idempotency_key must be 1-255 printable characters")
        yield from self._ready()
        cid = self.venue.client_order_id(self.account, key)
        fingerprint = order.fingerprint()
        self.checkpoint("before_claim_commit")
        intent, created = yield Claim(key, cid, self.account, order.symbol, fingerprint)
        if intent.fingerprint != fingerprint:
            raise IdempotencyKeyMismatch(
                f"idempotency key was used for another order ({intent.fingerprint}); "
                "nothing was sent"
            )
        self.audit.emit(
            "order.intent",
            client_order_id=cid,
            symbol=order.symbol,
            new=created,
            side=order.side.value,
            type=order.type.value,
            quantity=order.quantity,
            price=order.price,
        )
        self.checkpoint("after_claim_commit")
        orphan = self._orphans.pop(cid, None)
        if created and orphan is not None:
            # Recovery saw this very id at the venue with no journal entry (the journal was
            # lost or moved): the order exists, so adopt it rather than send it again.
            return (yield from self._settled(self._adopt(orphan, order), key))
        if created:
            with self.policy.admit(order, cid, reference=reference) as admission:
                result = yield from self._submit(order, key, cid, 0)
                admission.placed(result)
        else:
            result = yield from self._rejoin(order, key, cid)
        return result

    def unresolved(self) -> list[str]:
        """Client order ids of this account's intents whose outcome is not yet known."""
        return [i.client_order_id for i in self.journal.unresolved(self.account)]

    def checkpoint(self, name: str) -> None:
        """Named points of the order path where a test harness may stop the process.

        Does nothing unless a harness replaced it; the crash tests kill the process here to
        prove the journal recovers from a death at each point.
        """

    # --- recovery --------------------------------------------------------------------------

    def _ready(self) -> Flow[None]:
        """The submit gate: no new order goes out before the journal is reconciled."""
        if self._recovered or not self.settings.recover_on_start:
            return
        while self._recovering:
            yield Wait(0.01)  # another task or thread of this client is reconciling
            if self._recovered:
                return
        yield from self.recover()

    def recover(self) -> Flow[RecoveryReport]:
        """Match every unfinished intent of this account against the venue.

        Runs before this client's first order (unless ``Settings.recover_on_start`` is off)
        and may be called at any time. Intents a live owner is still working on are left to
        it. Reads made here are part of placing orders, so a trade-only key may make them.
        One process reconciles an account at a time (a lease in the journal); the others
        wait for it, then find little left to do.
        """
        self._recovering = True
        lease = self.settings.resolve_timeout * 2
        try:
            while not (
                yield from self._offloaded(
                    self.journal.blocking, self.journal.lease, self.account, lease
                )
            ):
                yield Wait(0.05)
            try:
                report = yield from self._recover()
            finally:
                self.journal.release(self.account)
        finally:
            self._recovering = False
        self._recovered = True
        self.audit.emit(
            "journal.recovered",
            resolved=len(report.resolved),
            not_placed=len(report.not_placed),
            unresolved=len(report.unresolved),
            orphans=len(report.orphans),
        )
        return report

    def _recover(self) -> Flow[RecoveryReport]:
        journal, blocking = self.journal, self.journal.blocking
        # The retention policy (old finished intents become tombstones), then what is open.
        yield from self._offloaded(blocking, journal.purge)
        intents = yield from self._offloaded(blocking, journal.unfinished, self.account)
        payload = yield from self._retrying(
            self.venue.endpoints[Op.OPEN_ORDERS], [], priority=Priority.ORDER
        )
        open_orders = self.venue.parse_orders(payload)
        held = {o.client_order_id: o for o in open_orders if o.client_order_id}
        resolved: list[Order] = []
        not_placed: list[str] = []
        unresolved: list[str] = []
        for intent in intents:
            cid = intent.client_order_id
            if not self._abandoned(intent):
                continue  # its owner, alive, will settle it
            if intent.state is IntentState.PENDING and cid not in held:
                # Recorded, never sent: the attempt commit precedes every send.
                yield Settle(cid, IntentState.NOT_PLACED, error="stopped before sending")
                not_placed.append(cid)
                continue
            found = held.get(cid)
            if found is None:
                try:
                    found = yield from self._resolve(intent.symbol, cid, intent.deadline_ms)
                except UnresolvedOrder:
                    unresolved.append(cid)
                    continue
            if found is None:
                yield Settle(cid, IntentState.NOT_PLACED, error="absent after deadline")
                not_placed.append(cid)
            else:
                resolved.append((yield from self._settled(found, intent.idempotency_key)))
        ours = [cid for cid in held if self.venue.owns_client_order_id(cid)]
        known = yield from self._offloaded(blocking, journal.known, ours)
        orphans = tuple(held[cid] for cid in ours if cid not in known)
        self._orphans.update((o.client_order_id or "", o) for o in orphans)
        for orphan in orphans:
            log.warning(
                "orphan order %s on %s: it has this SDK's id prefix but no journal entry",
                orphan.client_order_id,
                orphan.symbol,
            )
            self.audit.emit("order.orphan", client_order_id=orphan.client_order_id)
        return RecoveryReport(tuple(resolved), tuple(not_placed), tuple(unresolved), orphans)

    def _abandoned(self, intent: Intent) -> bool:
        """True when no live owner is working on ``intent`` any more."""
        if intent.owner == process_token():
            return intent.client_order_id not in self._inflight
        if owner_is_gone(intent.owner):
            return True
        if intent.state is IntentState.PENDING:
            return time.time() - intent.updated_at > self.settings.owner_patience
        return intent.state is IntentState.UNKNOWN or self.clock.now_ms() > intent.deadline_ms

    # --- idempotent order placement --------------------------------------------------------

    def _submit(self, order: OrderRequest, key: str, cid: str, attempts: int) -> Flow[Order]:
        """Send ``cid`` until the venue holds it, refuses it, or it is proven not placed.

        ``attempts`` is the journal's send count as last read: each send first bumps it
        with a compare-and-set, so two owners can never both send.
        """
        self._inflight.add(cid)
        try:
            result = yield from self._attempts(order, key, cid, attempts)
        except _ClaimLost:
            result = yield from self._rejoin(order, key, cid)
        except BaseException as exc:
            intent = self.journal.get(cid)
            if intent is not None and intent.state is IntentState.PENDING:
                # Stopped before any byte left (refused locally, cancelled, rate-paused):
                # the key may be used again to send the same order.
                # A direct call, not an effect: this also runs while the flow is being
                # closed (its task cancelled), when it can yield nothing.
                self.journal.settle(cid, IntentState.NOT_PLACED, error=type(exc).__name__)
            raise
        finally:
            self._inflight.discard(cid)
        return result

    def _attempts(self, order: OrderRequest, key: str, cid: str, attempts: int) -> Flow[Order]:
        endpoint = self.venue.endpoints[Op.PLACE_ORDER]
        params = self.venue.order_params(order, cid)
        retries: Attempts | None = None
        started = time.monotonic()
        while True:
            deadline = [0]

            def before_send(
                timestamp_ms: int, deadline: list[int] = deadline, seen: int = attempts
            ) -> Flow[None]:
                deadline[0] = (
                    timestamp_ms + self.venue.recv_window_ms + self.settings.settle_ms
                    if self._absence_provable
                    else NO_DEADLINE
                )
                claimed = yield Persist(cid, seen, deadline[0])  # durable before any byte
                if not claimed:
                    raise _ClaimLost(cid)
                self.checkpoint("after_attempt_commit")

            failure: TransportFailure | None = None
            try:
                outcome = yield from self._exchange(
                    endpoint,
                    params,
                    before_send,
                    symbol=order.symbol,
                    resend=attempts,
                    client_order_id=cid,
                )
            except TransportFailure as exc:
                failure = exc
            attempts += 1
            self.checkpoint("after_response")
            error: SecureTradeError
            pause = 0.0
            if failure is not None:
                if failure.sent:  # it may have landed: only the venue can say
                    found = yield from self._resolve(order.symbol, cid, deadline[0])
                    if found is not None:
                        return (yield from self._settled(found, key))
                error = ConnectFailed(f"order not placed: {failure}", venue=self.venue.name)
            elif outcome.verdict is Verdict.OK and Op.PLACE_ORDER in self.venue.order_acks:
                # An acknowledgement only: the venue holds it, read it back by client order id.
                found = yield from self._resolve(order.symbol, cid, deadline[0])
                if found is not None:
                    return (yield from self._settled(found, key))
                error = AmbiguousOutcome("acknowledged, then not found", venue=self.venue.name)
            elif outcome.verdict is Verdict.OK:
                return (yield from self._settled(self.venue.parse_order(outcome.payload), key))
            elif (
                outcome.duplicate
                or outcome.verdict is Verdict.AMBIGUOUS
                or (self.settings.ambiguous_rate_limits and isinstance(outcome.error, RateLimited))
            ):
                # A duplicate-id reply means an earlier attempt landed; adopt it if it is ours.
                found = yield from self._resolve(order.symbol, cid, deadline[0])
                if found is not None:
                    if outcome.duplicate:
                        found = self._adopt(found, order)
                    return (yield from self._settled(found, key))
                error = _error(outcome)
            elif outcome.verdict is Verdict.REJECTED:
                yield Settle(cid, IntentState.REJECTED, error=str(outcome.error))
                self.audit.emit("order.rejected", client_order_id=cid, code=_code(outcome))
                raise _error(outcome)
            else:
                error = _error(outcome)
                if outcome.clock_skew:
                    yield from self.sync_clock()
                elif isinstance(error, RateLimited):
                    paused = yield from self._offloaded(
                        self.limiter.blocking, lambda: self.limiter.paused_for
                    )
                    pause = max(paused, error.retry_after or 0.0)
                    if pause > self.settings.max_rate_wait:
                        yield Settle(cid, IntentState.NOT_PLACED, error=str(error))
                        raise error
            # Proven not executed: send again, same client order id, freshly signed.
            retries = retries or self.settings.retry_policy().start(started)
            wait = retries.failed(error, at_least=pause)
            if wait is None:
                yield Settle(cid, IntentState.NOT_PLACED, error=str(error))
                raise error
            self.audit.emit("order.resend", client_order_id=cid, attempt=retries.number)
            if wait > 0:
                yield Wait(wait)

    def _rejoin(self, order: OrderRequest, key: str, cid: str) -> Flow[Order]:
        """Same key again: return the known result, or find out what the first call did."""
        patience = self.clock.local_ms() + _OWNER_PATIENCE_MS
        while True:
            intent = yield Lookup(cid)
            if intent is None:
                # The journal lost the row (a Redis flush or failover): claim it again. A
                # journal that noticed the loss makes the claim UNKNOWN, so the venue is
                # asked before anything is sent; else the claim is ours, as it was.
                intent, created = yield Claim(
                    key, cid, self.account, order.symbol, order.fingerprint()
                )
                if created:
                    result = yield from self._submit(order, key, cid, 0)
                    return result
            if intent.order_json is not None:
                return self._stored(intent.order_json, key)
            if intent.state is IntentState.REJECTED:
                raise VenueRejected(
                    f"this idempotency key's order was rejected: {intent.error}",
                    venue=self.venue.name,
                )
            if intent.state is IntentState.NOT_PLACED:
                result = yield from self._submit(order, key, cid, intent.attempts)
                return result
            owner_alive = not self._abandoned(intent)
            if intent.state is IntentState.PENDING:
                if owner_alive:
                    yield Wait(0.02)  # its owner is waiting for its turn to send
                    continue
                result = yield from self._submit(order, key, cid, intent.attempts)
                return result
            if (
                intent.state is IntentState.SENDING
                and owner_alive
                and self.clock.local_ms() < patience
            ):
                yield Wait(0.02)  # its owner (thread, task or process) is most likely sending
                continue
            found = yield from self._resolve(order.symbol, cid, intent.deadline_ms)
            if found is not None:
                return (yield from self._settled(found, key))
            # Absent after its deadline: the old attempt can never execute. Send it again.
            result = yield from self._submit(order, key, cid, intent.attempts)
            return result

    def _resolve(self, symbol: str, cid: str, deadline_ms: int) -> Flow[Order | None]:
        """Ask the venue about ``cid`` until it answers for sure.

        Returns the order, or ``None`` when it is absent after its deadline (so it can never
        execute). Raises :class:`UnresolvedOrder` when the venue cannot tell in time.
        """
        self.audit.emit("order.resolving", client_order_id=cid)
        params = self.venue.order_lookup_params(symbol, client_order_id=cid)
        endpoint = self.venue.endpoints[Op.GET_ORDER]
        reads = RetryPolicy(max_attempts=1_000_000, max_delay=self.settings.resolve_timeout).start()
        give_up = time.monotonic() + self.settings.resolve_timeout
        while True:
            failure: Exception = AmbiguousOutcome("no answer", venue=self.venue.name)
            try:
                outcome = yield from self._exchange(
                    endpoint, params, symbol=symbol, client_order_id=cid
                )
            except TransportFailure as exc:
                outcome, failure = None, exc
            if outcome is not None and outcome.verdict is Verdict.OK:
                return self.venue.parse_order(outcome.payload)
            if outcome is not None and isinstance(outcome.error, OrderNotFound):
                if self.clock.now_ms() > deadline_ms:
                    self.audit.emit("order.absent", client_order_id=cid)
                    return None
                if time.monotonic() > give_up:  # the attempt may still land: keep it unknown
                    yield Settle(cid, IntentState.UNKNOWN, error="not found yet")
                    raise UnresolvedOrder(
                        "the venue does not hold the order yet, and cannot prove that it never "
                        "will; it is kept as unresolved, and never sent again by itself",
                        client_order_id=cid,
                        venue=self.venue.name,
                    )
                yield Wait(min(0.25, max(0.01, (deadline_ms - self.clock.now_ms()) / 1000)))
                continue
            if outcome is not None and outcome.clock_skew:
                yield from self.sync_clock()
                continue
            retry_after = 0.0 if outcome is None else outcome.retry_after or 0.0
            wait = reads.failed(
                failure if outcome is None else _error(outcome), at_least=retry_after
            )
            if wait is None:  # read errors never decide: the intent stays unknown
                yield Settle(cid, IntentState.UNKNOWN, error="venue did not answer")
                raise UnresolvedOrder(
                    "could not learn whether the order was placed; it is kept as unresolved",
                    client_order_id=cid,
                    venue=self.venue.name,
                )
            yield Wait(wait)

    def _adopt(self, found: Order, order: OrderRequest) -> Order:
        """A duplicate-id reply: the earlier attempt landed. Adopt it if it is our order."""
        if (found.symbol, found.side, found.type, found.quantity.normalize()) != (
            order.symbol,
            order.side,
            order.type,
            order.quantity.normalize(),
        ):
            raise DuplicateOrder(
                f"the venue holds {found.client_order_id} with other parameters",
                venue=self.venue.name,
            )
        return found

    def _settled(self, found: Order, key: str) -> Flow[Order]:
        found = found.model_copy(update={"idempotency_key": key})
        yield Settle(
            found.client_order_id,
            _STATE_OF[found.status],
            found.model_dump_json(),
            fills=found.fills,
        )
        self.policy.observe(found)
        self.audit.emit(
            "order.placed",
            client_order_id=found.client_order_id,
            order_id=found.order_id,
            status=found.status.value,
        )
        return found

    def _stored(self, order_json: str, key: str) -> Order:
        return Order.model_validate(json.loads(order_json)).model_copy(
            update={"idempotency_key": key}
        )

    # --- plumbing shared by every operation ------------------------------------------------

    def sync_clock(self, priority: Priority = Priority.NORMAL) -> Flow[None]:
        """Measure the offset to venue time from a few ``/time`` round trips."""
        self.clock.reset()
        endpoint = self.venue.endpoints[Op.SERVER_TIME]
        for _ in range(self.settings.clock_samples):
            sent = self.clock.local_ms()
            payload = yield from self._retrying(endpoint, [], priority=priority)
            received = self.clock.local_ms()  # a retried sample is wide: the median drops it
            self.clock.add_sample(sent, received, self.venue.parse_server_time(payload))
        self.audit.emit("clock.synced", offset_ms=round(self.clock.offset_ms, 1))
        for alarm in self.clock.check():  # drift alarm: logged, and passed to clock.on_alarm
            self.audit.emit("clock.alarm", reason=alarm.reason, offset_ms=round(alarm.offset_ms, 1))

    def _call(
        self,
        op: Op,
        params: Params,
        *,
        symbol: str | None = None,
        once: bool = False,
        address: str | None = None,
        priority: Priority | None = None,
    ) -> Flow[Any]:
        """A request whose resending is harmless (``once=False``): scope, limit, retry."""
        if self._cancel_due is not None:
            yield from self._honour_kill_switch()
        endpoint = self.venue.endpoints.get(op)
        if endpoint is None:
            raise InvalidRequest(f"{self.venue.name} does not offer {op.value}")
        if endpoint.scope is not None:
            self.key.require(
                endpoint.scope,
                symbol=symbol if op is not Op.OPEN_ORDERS else None,
                address=address,
            )
        payload = yield from self._retrying(
            endpoint, params, symbol=symbol, once=once, priority=priority
        )
        return payload

    def _retrying(
        self,
        endpoint: Endpoint,
        params: Params,
        *,
        symbol: str | None = None,
        once: bool = False,
        priority: Priority | None = None,
    ) -> Flow[Any]:
        """Send until the venue answers for sure; retries paced by the retry policy.

        Every failure comes out as a :class:`SecureTradeError` (ambiguous when a request
        that must not be repeated, ``once``, may have been processed)."""
        op = endpoint.op
        retries: Attempts | None = None
        started = time.monotonic()
        while True:
            failure: TransportFailure | None = None
            try:
                outcome = yield from self._exchange(
                    endpoint,
                    params,
                    symbol=symbol,
                    priority=priority,
                    resend=0 if retries is None else retries.number - 1,
                )
            except TransportFailure as exc:
                failure = exc
            pause = 0.0
            error: SecureTradeError
            if failure is not None:
                kind = AmbiguousOutcome if failure.sent else ConnectFailed
                error = kind(f"{op.value}: {failure}", venue=self.venue.name)
                if failure.sent and once:
                    raise error
            elif outcome.verdict is Verdict.OK:
                return outcome.payload
            elif outcome.verdict is Verdict.REJECTED or (
                outcome.verdict is Verdict.AMBIGUOUS and once
            ):
                raise _error(outcome)
            else:
                error = _error(outcome)
                if outcome.clock_skew:
                    yield from self.sync_clock()
                elif isinstance(error, RateLimited):
                    paused = yield from self._offloaded(
                        self.limiter.blocking, lambda: self.limiter.paused_for
                    )
                    pause = max(paused, error.retry_after or 0.0)
                    if pause > self.settings.max_rate_wait:
                        raise error
            retries = retries or self.settings.retry_policy().start(started)
            wait = retries.failed(error, at_least=pause)
            if wait is None:
                raise error
            if wait > 0:
                yield Wait(wait)

    def _exchange(
        self,
        endpoint: Endpoint,
        params: Params,
        before_send: Callable[[int], Flow[None]] | None = None,
        *,
        symbol: str | None = None,
        priority: Priority | None = None,
        resend: int = 0,
        client_order_id: str | None = None,
    ) -> Flow[Outcome]:
        """One attempt: rate limit, fresh timestamp, sign, send, learn from the answer.

        ``resend`` counts the earlier sends of the same request (for traces and metrics).
        """
        if priority is None:
            priority = _PRIORITY.get(endpoint.op, Priority.NORMAL)
        if (
            getattr(self.venue, "needs_instruments", False)
            and not self._instruments
            and endpoint.op not in (Op.INSTRUMENTS, Op.SERVER_TIME)
        ):
            yield from self.instruments()  # ccxt builds its requests from the market list
        if endpoint.signed and not self.clock.synced:
            yield from self.sync_clock(priority)
        key = self.key  # the key this attempt is signed with (the ring may rotate meanwhile)
        caller = self._caller(key)
        request_cost = getattr(self.venue, "request_cost", None)  # costs ccxt computes per call
        if request_cost is not None:
            cost = request_cost(endpoint, params)
        else:
            cost = cost_of(endpoint.cost, endpoint.cost_rules, params)
        while True:
            wait, admission = yield from self._offloaded(
                self.limiter.blocking,
                self.limiter.admit,
                cost,
                priority,
                symbol=symbol,
                caller=caller,
            )
            if wait <= 0.0:
                break
            if wait > self.settings.max_rate_wait:
                raise RateLimited(
                    f"{endpoint.op.value}: the venue asked us to pause for {wait:.0f} s",
                    venue=self.venue.name,
                    retry_after=wait,
                )
            yield Wait(wait)
        # The admission holds its windows until the request can no longer reach the venue:
        # landed with the answer below, or here if it fails or never leaves.
        call = None
        try:
            timestamp = self.clock.now_ms()
            if before_send is not None:
                yield from before_send(timestamp)
            # Drawn last, after every wait: requests leave in nonce order as far as we decide.
            nonce = (
                None if self.nonces is None or not endpoint.signed else self.nonces.next(key.key_id)
            )
            request = self.venue.prepare(
                endpoint,
                params,
                key_id=key.key_id,
                signer=self._signer_of(key) if endpoint.signed else None,
                timestamp_ms=timestamp,
                nonce=nonce,
            )
            call = telemetry.venue_call(
                request,
                venue=self.venue.name,
                operation=endpoint.op.value,
                base_url=self.base_url,
                resend_count=resend,
                client_order_id=client_order_id,
            )
            self.audit.request(endpoint.op.value, request, attempt=resend + 1)
            response: HttpResponse = yield Send(request, endpoint.op)
        except BaseException as exc:
            # Nothing more of it can arrive. Direct, not offloaded: the flow may be closing
            # (its task cancelled) and cannot yield. Should a shared limiter fail here, the
            # admission counts until its deadline, and the caller sees the first error.
            with contextlib.suppress(Exception):
                self.limiter.landed(admission)
            if call is not None:
                call.end(error=exc)
            raise
        yield from self._offloaded(
            self.limiter.blocking,
            self.limiter.observe,
            response.status,
            response.headers,
            symbol=symbol,
            caller=caller,
            landed=admission,
        )
        outcome = self.venue.interpret(endpoint, response)
        call.end(
            status=response.status,
            verdict=outcome.verdict.value,
            unknown=outcome.verdict is Verdict.AMBIGUOUS,
        )
        self.audit.response(endpoint.op.value, response, verdict=outcome.verdict.value)
        if (
            outcome.verdict is Verdict.REJECTED
            and isinstance(outcome.error, AuthenticationRejected)
            and self.keys.superseded(key.key_id)
        ):
            # Signed with a key rotated out (and perhaps revoked) while this was in flight:
            # refused, so certainly not executed. Resend it signed with the new key.
            outcome = dataclasses.replace(outcome, verdict=Verdict.RETRYABLE)
        elif isinstance(outcome.error, AuthenticationRejected):
            self.audit.emit(
                "auth.rejected",
                op=endpoint.op.value,
                code=_code(outcome),
                reason="timestamp" if outcome.clock_skew else "credentials",
            )
        if outcome.verdict is Verdict.OK and outcome.follow_up is not None:
            # One operation, several requests: each is charged, stamped and signed anew.
            # The follow-up's parameters replace the same-named ones of this request.
            named = {name for name, _ in outcome.follow_up}
            outcome = yield from self._exchange(
                endpoint,
                [(n, v) for n, v in params if n not in named] + outcome.follow_up,
                symbol=symbol,
                priority=priority,
                resend=resend,
                client_order_id=client_order_id,
            )
        return outcome

    def _offloaded(
        self, blocking: bool, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Flow[T]:
        """A rate-limiter or journal call: made here when it is quick (memory, a local
        SQLite journal), an effect when it waits on a file or the network (a shared limiter,
        a Redis journal), so that the async client makes it off its event loop. The quick
        path builds nothing: the limiter's calls are on every request."""
        if not blocking:
            return function(*args, **kwargs)
        result: T = yield Offload(functools.partial(function, *args, **kwargs))
        return result

    @property
    def key(self) -> ApiKey:
        """The key new requests are signed with (the ring's active key)."""
        return self.keys.active()

    def _caller(self, key: ApiKey) -> Caller:
        """Whose rate-limit windows ``key``'s calls spend: its own, and its account's."""
        caller = self._callers.get(key.key_id)
        if caller is None:
            caller = self._callers[key.key_id] = Caller.of(key.key_id, self.account)
        return caller

    def _signer_of(self, key: ApiKey) -> Signer:
        signer = self._signers.get(key.key_id)
        if signer is None:  # a rotated-in key: its secret is parsed once, here
            signer = self._signers[key.key_id] = self.venue.signer(key)
        return signer


# Who goes first when rate-limit windows fill: cancels, then orders and the reads that
# settle them, then the rest; market data last. Unlisted operations are NORMAL.
_PRIORITY = {
    Op.CANCEL_ORDER: Priority.CANCEL,
    Op.PLACE_ORDER: Priority.ORDER,
    Op.GET_ORDER: Priority.ORDER,
    Op.SERVER_TIME: Priority.BULK,
    Op.INSTRUMENTS: Priority.BULK,
    Op.TICKER_PRICE: Priority.BULK,
}

# Shared by every client of this process that does not bring its own source.
_PROCESS_NONCES: NonceSource = MemoryNonceSource()


def _kill_listener(core: Core) -> Callable[[KillState], None]:
    """Tell ``core`` (if it still exists) that a local engagement wants open orders gone."""
    ref = weakref.ref(core)

    def listener(state: KillState) -> None:
        alive = ref()
        if alive is not None and state.cancel_open:
            alive._cancel_due = state

    return listener


def _error(outcome: Outcome) -> SecureTradeError:
    assert outcome.error is not None
    return outcome.error


def _code(outcome: Outcome) -> int | str | None:
    return None if outcome.error is None else outcome.error.code
