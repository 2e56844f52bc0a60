"""Idempotent order placement: one idempotency key, at most one order at the venue.

The life of an order is the state machine of :mod:`.states`. This flow claims the intent,
has the policy admit it, makes each attempt durable (the transition to SENDING, from the
row it read) before any byte leaves, and records what the venue answered.

A new key takes a shorter road to the same rows: the policy admits the order first, and
when the rate limiter admits it at once, the claim is written together with attempt 1 (a
new row, SENDING, in one durable write: :class:`~.effects.Claim` with a deadline). A crash
then leaves what a claim and an attempt leave, and recovery asks the venue as it does for
any SENDING row. When the limiter makes the order wait, the claim is written before the
wait, PENDING, as on the long road. The kill switch is asked again after the fused write,
since that claim was written after the admission, and so it is after every attempt's
durable write, retries included (a switch engaged during a wait must stop the send); a
key that turns out to be claimed already gives its admission back and rejoins. Whenever the
journal says the row has moved on (another thread, process or host claimed, sent or
settled it), the flow drops what it was doing and *rejoins*: it re-reads the row and
decides from what is there, never from what it remembered.

Order of layers for each order: keys and scopes → policy → idempotency journal → rate
limit → freshness (venue timestamp) → signing → transport → record.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid

from ..errors import (
    AccessTokenRefused,
    ConnectFailed,
    IdempotencyKeyMismatch,
    InvalidRequest,
    LocalRefusal,
    RateLimited,
    RetryableError,
    SecureTradeError,
    VenueRejected,
)
from ..models import Order, OrderRequest, as_replayed
from ..policy import Admission, ReferencePrice
from ..transport.base import TransportFailure
from ..venues.base import Op, Verdict
from .effects import Claim, Flow, Lookup, Persist, Resource, Settle, Wait
from .pipeline import code_of, error_of
from .recovery import IN_FLIGHT, Recovery
from .resolution import StaleView
from .retry import Attempts
from .states import Intent, IntentState, View

__all__ = ["NO_DEADLINE", "Core"]

# The deadline of an attempt on a venue where "not found" never proves anything.
NO_DEADLINE = 2**62

# How long a second caller with the same key waits for a live owner's send to finish
# before it asks the venue itself.
_OWNER_PATIENCE_MS = 1000.0

_MAX_KEY = 255

# Read once, at import, as in models.common (a member read off its class is slow in 3.11).
_POLICY, _PLACE_ORDER, _OK = Resource.POLICY, Op.PLACE_ORDER, Verdict.OK


class Core(Recovery):
    """All protective layers for one key at one venue; holds no I/O of its own.

    Its operations are flows (see :mod:`.effects`) that ``Client`` and ``AsyncClient``
    drive. The layers are stacked by inheritance, each module using only those below it:
    :class:`~.pipeline.Pipeline` (one request) → :class:`~.reads.Reads` (repeatable calls
    and pre-trade checks) → :class:`~.resolution.Resolution` (asking about one order) →
    :class:`~.recovery.Recovery` (the journal against the venue) → this class (orders).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # "Not found" proves an attempt never executed only on a venue with a request
        # deadline, or one that refuses a used client order id forever (then a resend is
        # refused if the first attempt lands after all). Elsewhere it stays UNKNOWN.
        venue = self.venue
        self._absence_provable = (
            getattr(venue, "request_deadline", True) or getattr(venue, "dedupe", "") == "strong"
        )

    def place_order(self, order: OrderRequest, idempotency_key: str | None = None) -> Flow[Order]:
        """Place ``order`` at most once per ``idempotency_key``, whatever fails on the way."""
        if not isinstance(order, OrderRequest):
            raise InvalidRequest("order must be an OrderRequest (LimitOrder, MarketOrder, ...)")
        if order.client_order_id is not None:
            raise InvalidRequest(
                "client_order_id is derived from the idempotency key; pass idempotency_key"
            )
        key = uuid.uuid4().hex if idempotency_key is None else idempotency_key
        if (
            not isinstance(key, str)
            or not key
            or len(key) > _MAX_KEY
            or not key.isprintable()
            or key.strip() != key
        ):
            raise InvalidRequest(
                "idempotency_key must be 1-255 printable characters without surrounding "
                "spaces (or None for a fresh one); an empty key would give no idempotency"
            )
        _, reference = yield from self.vet(order)
        yield from self.ready()
        cid = self.venue.client_order_id(self.account, key)
        self.checkpoint("before_claim_commit")
        if cid not in self._orphans:
            # Admitted first, claimed with attempt 1 when the limiter lets it go at once.
            return (yield from self._submit(order, key, cid, None, reference))
        return (yield from self._claim(order, key, cid, reference))

    def _claim(
        self, order: OrderRequest, key: str, cid: str, reference: ReferencePrice | None
    ) -> Flow[Order]:
        """The long road: claim the intent (PENDING), then admit and send, or rejoin."""
        intent, created = yield Claim(key, cid, self.account, order.symbol, order.fingerprint())
        yield from self._claimed(order, intent, created)
        self.checkpoint("after_claim_commit")
        orphan = self._orphans.pop(cid, None)
        if created and orphan is not None:
            # Recovery saw this very id at the venue with no journal entry (the journal was
            # lost or moved): the order exists, so adopt it rather than send it again. An
            # earlier call sent it: replayed.
            adopted = yield from self.settled(self.adopt(orphan, order), key)
            return as_replayed(adopted)
        if created:
            return (yield from self._submit(order, key, cid, intent.view, reference))
        return (yield from self._rejoin(order, key, cid, reference))

    def _claimed(self, order: OrderRequest, intent: Intent, created: bool) -> Flow[None]:
        """What follows every claim: the key must name the same order (a row this claim
        created holds this order's fingerprint), and the audit trail learns of the intent."""
        if not created and intent.fingerprint != order.fingerprint():
            raise IdempotencyKeyMismatch(
                f"idempotency key was used for another order ({intent.fingerprint}); "
                "nothing was sent"
            )
        fields = order.__dict__  # one read of the model, not seven (pydantic's hook is slow)
        event = {
            "client_order_id": intent.client_order_id,
            "symbol": fields["symbol"],
            "new": created,
            "side": fields["side"]._value_,  # _value_: a slot read; .value is a property
            "type": fields["type"]._value_,
            "quantity": fields["quantity"],
            "price": fields["price"],
        }
        quote = fields["quote_quantity"]
        if quote is not None:
            event["quote_quantity"] = quote
        yield from self.note_fields("order.intent", event)

    def unresolved(self) -> list[str]:
        """Client order ids of this account's intents whose outcome is not yet known."""
        return [i.client_order_id for i in self.journal.unresolved(self.account)]

    # --- sending -----------------------------------------------------------------------------

    def _submit(
        self,
        order: OrderRequest,
        key: str,
        cid: str,
        seen: View | None,
        reference: ReferencePrice | None,
    ) -> Flow[Order]:
        """Have the policy admit the order, then send ``cid`` until the venue holds it,
        refuses it, or it is proven not placed. Every path that sends comes through here,
        so no resend (a rejoin, a takeover, a retry after NOT_PLACED) skips admission.

        ``seen`` is the row as last read: each send first moves it to SENDING from exactly
        that (compare-and-set), so two owners can never both send. ``None``: no claim yet
        (a new key); the first attempt claims it (see the module), and a refusal by the
        policy takes the long road, so that a known key's answer is still replayed.
        """
        # The row as this flow last saw or wrote it, and whether a Persist (or fused claim)
        # applied (the row moved on): read here when the attempts raise.
        sending = _Sending(self, order, key, cid, seen)
        IN_FLIGHT.add(cid)
        long_road = False  # refused by the policy before a claim: _claim records it
        try:
            try:
                admission: Admission = yield from self.perform(
                    _POLICY, functools.partial(self.policy.admit, order, cid, reference=reference)
                )
            except SecureTradeError:
                if seen is not None:
                    raise
                long_road = True
                return (yield from self._claim(order, key, cid, reference))
            with admission:
                try:
                    result = yield from self._attempts(sending)
                except _Taken:
                    admission.withdraw()  # whoever sends under this key is admitted anew
                    raise
                admission.placed(result)
        except StaleView:
            result = yield from self._rejoin(order, key, cid, reference)
        except _Taken as taken:
            yield from self._claimed(order, taken.intent, False)
            self.checkpoint("after_claim_commit")
            result = yield from self._rejoin(order, key, cid, reference)
        except BaseException as exc:
            last = sending.view
            if not sending.sent and last is not None and last.state is IntentState.PENDING:
                # Stopped before any byte left (refused locally, cancelled, rate-paused):
                # the key may be used again to send the same order. A direct call, not an
                # effect: this also runs while the flow is being closed, when it can yield
                # nothing; the compare-and-set leaves a row somebody else moved alone.
                self.journal.settle(
                    cid, IntentState.NOT_PLACED, expect=last, error=type(exc).__name__
                )
            elif last is None and not long_road and isinstance(exc, SecureTradeError):
                # A new key refused or failed before its claim was written (a venue rule,
                # a rate pause too long): recorded as the long road records it.
                yield from self._not_placed(order, key, cid, exc)
            raise
        finally:
            IN_FLIGHT.discard(cid)
        return result

    def _attempts(self, sending: _Sending) -> Flow[Order]:
        """Send until the venue answers for sure. ``sending`` holds the row as this flow
        last saw or wrote it (None: not claimed yet) and whether an attempt is on record;
        both are read by the caller when this raises."""
        order, key, cid = sending.order, sending.key, sending.cid
        endpoint = self.venue.endpoints[_PLACE_ORDER]
        params = self.venue.order_params(order, cid)
        retries: Attempts | None = None
        started = time.monotonic()
        while True:
            sending.deadline = 0
            sending.recorded = False
            failure: TransportFailure | None = None
            try:
                view = sending.view
                outcome = yield from self._exchange(
                    endpoint,
                    params,
                    sending,
                    symbol=order.symbol,
                    resend=0 if view is None else view.attempts,
                    client_order_id=cid,
                )
            except TransportFailure as exc:
                failure = exc
            except LocalRefusal as exc:
                if sending.recorded:
                    # Refused on this side after the attempt went on record, before a byte
                    # of it left (the TLS handshake refused the server, the transport
                    # refused its context or the request): this attempt never left and
                    # every earlier one is proven not executed, so NOT_PLACED, not a row
                    # left SENDING for recovery to ask the venue about.
                    yield Settle(
                        cid, IntentState.NOT_PLACED, error=type(exc).__name__, expect=sending.view
                    )
                raise
            self.checkpoint("after_response")
            view = sending.view
            assert view is not None  # before_send ran: the attempt is on record
            error: SecureTradeError
            pause = 0.0
            if failure is not None:
                if failure.sent:  # it may have landed: only the venue can say
                    found = yield from self.resolve(order.symbol, cid, sending.deadline, view)
                    if found is not None:
                        return (yield from self.settled(found, key))
                error = ConnectFailed(f"order not placed: {failure}", venue=self.venue.name)
            elif outcome.verdict is _OK and _PLACE_ORDER in self.venue.order_acks:
                # An acknowledgement only: the venue holds it, read it back by client order id.
                found = yield from self.resolve(order.symbol, cid, sending.deadline, view)
                if found is not None:
                    return (yield from self.settled(found, key))
                error = _absent("acknowledged, then not found after its deadline", self)
            elif outcome.verdict is _OK:
                return (yield from self.settled(self.venue.parse_order(outcome.payload), key))
            elif (
                outcome.duplicate
                or outcome.verdict is Verdict.AMBIGUOUS
                or (self.settings.ambiguous_rate_limits and isinstance(outcome.error, RateLimited))
            ):
                # A duplicate-id reply means an earlier attempt landed; adopt it if it is ours.
                found = yield from self.resolve(order.symbol, cid, sending.deadline, view)
                if found is not None:
                    if outcome.duplicate:
                        found = self.adopt(found, order)
                    return (yield from self.settled(found, key))
                # Proven absent after its deadline: whatever the answer said, not placed.
                error = _absent(str(error_of(outcome)), self)
            elif isinstance(outcome.error, AccessTokenRefused):
                # Refused at the door (401): not placed, and not resent on its own.
                yield from self.conclude(cid, IntentState.NOT_PLACED, view, str(outcome.error))
                raise outcome.error
            elif outcome.verdict is Verdict.REJECTED:
                yield from self.conclude(cid, IntentState.REJECTED, view, str(outcome.error))
                yield from self.note("order.rejected", client_order_id=cid, code=code_of(outcome))
                raise error_of(outcome)
            else:
                error = error_of(outcome)
                if outcome.clock_skew:
                    yield from self.sync_clock()
                elif isinstance(error, RateLimited):
                    pause = max((yield from self._paused_for()), error.retry_after or 0.0)
                    if pause > self.settings.max_rate_wait:
                        yield from self.conclude(cid, IntentState.NOT_PLACED, view, str(error))
                        raise error
            # Proven not executed: send again, same client order id, freshly signed.
            retries = retries or self.settings.retry_policy().start(started)
            wait = retries.failed(error, at_least=pause)
            if wait is None:
                yield from self.conclude(cid, IntentState.NOT_PLACED, view, str(error))
                raise error
            yield from self.note("order.resend", client_order_id=cid, attempt=retries.number)
            if wait > 0:
                yield Wait(wait)

    def _not_placed(
        self, order: OrderRequest, key: str, cid: str, error: SecureTradeError
    ) -> Flow[None]:
        """Record a new key that stopped before its claim as NOT_PLACED (claim, then the
        guarded transition); a row already there is left as it is."""
        with contextlib.suppress(SecureTradeError):  # the caller's error says what happened
            intent, created = yield Claim(key, cid, self.account, order.symbol, order.fingerprint())
            if created:
                yield from self._claimed(order, intent, True)  # the audit trail learns of it
                yield Settle(
                    cid, IntentState.NOT_PLACED, error=type(error).__name__, expect=intent.view
                )

    def _still_allowed(self, sending: _Sending) -> Flow[None]:
        """The last look at the kill switch before an attempt's bytes leave, once the
        attempt is on record: the admission may be long past (a fused claim written after
        it, a wait for the limiter, a retry), and a switch engaged meanwhile, here or by
        another process sharing its store, must still stop the send. Engaged: this
        attempt is proven never sent, and every earlier one proven not executed (only
        then is an attempt resent), so the row is NOT_PLACED."""
        policy = self.policy
        try:
            yield from self.perform(_POLICY, policy.check_kill_switch)
        except SecureTradeError as exc:
            yield Settle(sending.cid, IntentState.NOT_PLACED, error=str(exc), expect=sending.view)
            raise

    def _rejoin(
        self, order: OrderRequest, key: str, cid: str, reference: ReferencePrice | None
    ) -> Flow[Order]:
        """Same key again, or a row that moved on: return the known result, or find out
        what became of the last attempt, re-reading the row after every change. An answer
        this call did not send itself comes back marked :attr:`~.Order.replayed`; one it
        sends (a resend after a proven absence) does not."""
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
                    return (yield from self._submit(order, key, cid, intent.view, reference))
            if intent.order_json is not None:
                return as_replayed(self.stored(intent.order_json, key))
            state = intent.state
            if state is IntentState.REJECTED:
                raise VenueRejected(
                    f"this idempotency key's order was rejected: {intent.error}",
                    venue=self.venue.name,
                )
            if state is IntentState.NOT_PLACED:
                return (yield from self._submit(order, key, cid, intent.view, reference))
            owner_alive = not self.abandoned(intent)
            if state is IntentState.PENDING:
                if owner_alive:
                    yield Wait(0.02)  # its owner is waiting for its turn to send
                    continue
                return (yield from self._submit(order, key, cid, intent.view, reference))
            if state is IntentState.SENDING and owner_alive and self.clock.local_ms() < patience:
                yield Wait(0.02)  # its owner (thread, task or process) is most likely sending
                continue
            try:
                found = yield from self.resolve(order.symbol, cid, intent.deadline_ms, intent.view)
            except StaleView:
                continue  # moved on while we asked: read it again
            if found is not None:
                # Found under an earlier call's send (another owner's, or one that died
                # before recording the answer): not this call's order, so replayed.
                return as_replayed((yield from self.settled(found, key)))
            # Absent after its deadline: that attempt can never execute. Send it again, from
            # the row as read: if somebody else got there first, the next read shows it.
            return (yield from self._submit(order, key, cid, intent.view, reference))


class _Taken(Exception):
    """A new key's claim found its row already there: the order is not this flow's to
    send as it stands; it gives its admissions back and rejoins the row."""

    def __init__(self, intent: Intent) -> None:
        super().__init__(intent.client_order_id)
        self.intent = intent


def _absent(reason: str, core: Core) -> SecureTradeError:
    """The attempt is proven never executed (absent after its deadline): a retryable error,
    never an ambiguous one, whatever the venue's answer looked like."""
    return RetryableError(
        f"order not placed: {reason}; the venue does not hold it after its deadline",
        venue=core.venue.name,
    )


class _Sending:
    """One order's sends, as :meth:`Core._attempts` and its hooks into the exchange share
    them: the row as last seen or written (``view``; None: not claimed yet), whether an
    attempt applied (``sent``: the row moved on), and the current attempt's deadline and
    whether it is on record and has not left (``recorded``: from the end of
    :meth:`before_send` until the transport returns an answer, :meth:`after_send`).

    One slotted object, the exchange's :class:`~.pipeline.SendHooks`: nested functions
    would make a closure cell of every name they share, kept alive across every await of
    the order.
    """

    __slots__ = ("cid", "core", "deadline", "key", "order", "recorded", "sent", "view")

    def __init__(self, core: Core, order: OrderRequest, key: str, cid: str, seen: View | None):
        self.core = core
        self.order = order
        self.key = key
        self.cid = cid
        self.view = seen
        self.sent = False
        self.deadline = 0
        self.recorded = False

    def claim(self, deadline_ms: int | None) -> Flow[None]:
        """A new key's claim: PENDING before a wait, or fused with attempt 1."""
        core, order = self.core, self.order
        intent, created = yield Claim(
            self.key, self.cid, core.account, order.symbol, order.fingerprint(), deadline_ms
        )
        if not created:
            raise _Taken(intent)  # claimed already (or after a noted loss): rejoin
        self.view = intent.view
        yield from core._claimed(order, intent, True)
        core.checkpoint("after_claim_commit")

    def before_wait(self) -> Flow[None]:
        if self.view is None:  # the intent waits for the limiter as a claim (PENDING)
            yield from self.claim(None)

    def before_send(self, timestamp_ms: int) -> Flow[None]:
        core = self.core
        self.deadline = deadline = (
            timestamp_ms + core.venue.recv_window_ms + core.settings.settle_ms
            if core._absence_provable
            else NO_DEADLINE
        )
        view = self.view
        if view is None:  # claim and attempt 1 in one durable write
            yield from self.claim(deadline)
            self.sent = True
            yield from core._still_allowed(self)
            self.recorded = True
            core.checkpoint("after_attempt_commit")
            return
        claimed = yield Persist(self.cid, view, deadline)  # durable before any byte
        if not claimed:
            raise StaleView(self.cid)
        self.view, self.sent = View(IntentState.SENDING, view.attempts + 1), True
        # The admission may be long past (a rate wait, a retry): look again.
        yield from core._still_allowed(self)
        self.recorded = True
        core.checkpoint("after_attempt_commit")

    def after_send(self) -> None:
        self.recorded = False
