"""The request pipeline: rate limit, fresh timestamp, sign, send, and learn from the answer.

Everything a single request goes through, for every operation: the lowest layer of the
core. It knows nothing of orders or the journal; :mod:`.reads`, :mod:`.resolution`,
:mod:`.recovery` and :mod:`.orders` build on it, in that order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .._checks import flag, function, instance
from ..clock import VenueClock
from ..errors import (
    AccessTokenRefused,
    AmbiguousOutcome,
    AuthenticationRejected,
    ConnectFailed,
    InvalidRequest,
    RateLimited,
    SecureTradeError,
)
from ..keys import ApiKey, KeyRing, Scope
from ..models import Instrument
from ..nonce import MemoryNonceSource, NonceSource
from ..policy import Policy, ReferencePrice
from ..ratelimit import Caller, Priority, RateLimiter, cost_of
from ..record import AuditLog
from ..signing import Signer
from ..transport import telemetry
from ..transport.base import HttpResponse, TransportFailure
from ..venues.base import (
    Endpoint,
    Freshness,
    Op,
    Outcome,
    Params,
    Venue,
    Verdict,
    unreadable,
)
from .effects import Call, Flow, Renew, Resource, Send, Wait
from .retry import Attempts
from .settings import Settings
from .store import JournalStore

__all__ = ["MarketData", "Pipeline"]

T = TypeVar("T")

log = logging.getLogger("securetrade")


class MarketData:
    """What a client learns of its venue that is the same for every key: the instrument
    rules and recent reference prices (shareable, see :meth:`Pipeline.share_market`)."""

    __slots__ = ("_lock", "instruments", "loading", "references", "syncing")

    def __init__(self) -> None:
        self.instruments: dict[str, Instrument] = {}
        self.references: dict[str, ReferencePrice] = {}
        # One reader of each at a time: the tasks, threads and clients that share this
        # wait for it (a fresh client with 50 orders at once reads the instruments once,
        # and its clock is not reset by one sync while another is taking samples).
        self.loading = False
        self.syncing = False
        self._lock = threading.Lock()

    def claim(self, work: str) -> bool:
        """Take ``work`` ("loading" or "syncing") unless someone else is doing it."""
        with self._lock:
            if getattr(self, work):
                return False
            setattr(self, work, True)
            return True

    def release(self, work: str) -> None:
        setattr(self, work, False)


class Pipeline:
    """One key at one venue: the layers every request passes, and the state they keep
    (the venue clock, the signers, the rate-limit callers, the instrument list)."""

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
        if getattr(key, "source", None) is not None and not getattr(venue, "takes_oauth", False):
            raise InvalidRequest(
                f"{venue.name} takes no OAuth access tokens: use an API key of that venue "
                "(OAuthKey works with venue='alpaca')"
            )
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
        self.settings = settings or Settings()
        self.base_url: str | None = None  # where the transport sends (for traces), if known
        self._signers: dict[str, Signer] = {key.key_id: venue.signer(key)}
        # Nonce venues: one process-wide source by default, so clients sharing a key agree.
        self.nonces: NonceSource | None = None
        if venue.freshness is Freshness.NONCE:
            self.nonces = nonces or _PROCESS_NONCES
        self.market = MarketData()
        # The resources whose calls the driver lets the flows make in place (all of them,
        # for the sync client); the async client removes those that wait on I/O.
        self.inline: frozenset[Resource] = frozenset(Resource)

    # --- what the layers above use --------------------------------------------------------

    @property
    def key(self) -> ApiKey:
        """The key new requests are signed with (the ring's active key)."""
        return self.keys.active()

    def checkpoint(self, name: str) -> None:
        """Named points of the order path (and of recovery) where a test harness may stop
        or stall the process.

        Does nothing unless a harness replaced it; the crash tests kill the process here to
        prove the journal recovers from a death at each point, and the chaos soak stalls
        here while other processes take over.
        """

    def perform(self, resource: Resource, function: Callable[..., T], *args: Any) -> Flow[T]:
        """A call on a shared resource: made here when the driver said that resource answers
        at once (:attr:`inline`), else yielded as a :class:`Call` for the driver to make
        (the async client then makes it in a worker thread)."""
        if type(resource) is not Resource or not callable(function):
            _refuse_call(resource, function)
        if resource in self.inline:
            return function(*args)
        result: T = yield Call(resource, function, *args)
        return result

    def note(self, kind: str, **fields: Any) -> Flow[None]:
        """An audit event (the trail may be a file: then an effect, written off the loop)."""
        return self.note_fields(kind, fields)

    def note_fields(self, kind: str, fields: dict[str, Any]) -> Flow[None]:
        """:meth:`note` with the fields as a dict: the order path's two notes per order
        build theirs as a literal, with no keywords to pack and unpack on the way."""
        audit = self.audit
        if _AUDIT in self.inline:
            audit.record(kind, fields)
            return
        yield Call(Resource.AUDIT, audit.record, kind, fields)

    def markets(
        self, *, refresh: bool = False, priority: Priority = Priority.BULK
    ) -> Flow[dict[str, Instrument]]:
        """Trading rules per symbol, read once (and adopting the venue's published limits)."""
        market = self.market
        if refresh is False and market.instruments:  # the cached rules: every order asks
            return market.instruments
        flag("refresh", refresh)
        instance("priority", priority, Priority, optional=False)
        while not market.claim("loading"):
            yield Wait(0.01)  # another task, thread or client is reading them now
            if not refresh and market.instruments:
                return market.instruments
        try:
            endpoint = self.venue.endpoints[Op.INSTRUMENTS]
            payload = yield from self._retrying(endpoint, [], priority=priority)
            market.instruments = self.venue.parse_instruments(payload)
            published = self.venue.parse_rate_limits(payload)
            if published and self._adopt_published_limits:
                limiter = self.limiter
                yield from self.perform(Resource.LIMITER, limiter.adopt, published)
        finally:
            market.release("loading")
        return market.instruments

    def share_market(self, other: Pipeline) -> None:
        """Read the venue's instruments, reference prices and clock through ``other``: the
        clients of one platform on one venue (a copy engine's followers, say) then learn
        them once between them, not once each. Both must serve the same venue."""
        instance("other", other, Pipeline, optional=False)
        if other.venue.name != self.venue.name:
            raise InvalidRequest(
                f"cannot share {other.venue.name}'s market data with a {self.venue.name} client"
            )
        self.market = other.market
        self.clock = other.clock

    def sync_clock(self, priority: Priority = Priority.NORMAL) -> Flow[None]:
        """Measure the offset to venue time from a few ``/time`` round trips. While another
        task, thread or client sharing this clock measures, wait for its result instead."""
        market = self.market
        if not market.claim("syncing"):
            while market.syncing:
                yield Wait(0.01)
            return
        try:
            yield from self._sync_clock(priority)
        finally:
            market.release("syncing")

    def _sync_clock(self, priority: Priority) -> Flow[None]:
        self.clock.reset()
        endpoint = self.venue.endpoints[Op.SERVER_TIME]
        for _ in range(self.settings.clock_samples):
            sent = self.clock.local_ms()
            payload = yield from self._retrying(endpoint, [], priority=priority)
            received = self.clock.local_ms()  # a retried sample is wide: the median drops it
            self.clock.add_sample(sent, received, self.venue.parse_server_time(payload))
        yield from self.note("clock.synced", offset_ms=round(self.clock.offset_ms, 1))
        for alarm in self.clock.check():  # drift alarm: logged, and passed to clock.on_alarm
            yield from self.note(
                "clock.alarm", reason=alarm.reason, offset_ms=round(alarm.offset_ms, 1)
            )

    def _paused_for(self) -> Flow[float]:
        limiter = self.limiter
        paused: float = yield from self.perform(Resource.LIMITER, lambda: limiter.paused_for)
        return paused

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
                raise error_of(outcome)
            else:
                error = error_of(outcome)
                if outcome.clock_skew:
                    yield from self.sync_clock()
                elif isinstance(error, RateLimited):
                    pause = max((yield from self._paused_for()), error.retry_after or 0.0)
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
        hooks: SendHooks | None = None,
        *,
        symbol: str | None = None,
        priority: Priority | None = None,
        resend: int = 0,
        client_order_id: str | None = None,
        reauthorized: bool = False,
    ) -> Flow[Outcome]:
        """One attempt: rate limit, fresh timestamp, sign, send, learn from the answer.

        ``resend`` counts the earlier sends of the same request (for traces and metrics);
        ``hooks`` (the order path's, see :class:`SendHooks`) are told when the request
        first waits for the rate limiter, when it may go, and when it has left.
        ``reauthorized``: this is the one resend after an OAuth token was refused and renewed.
        """
        if priority is None:
            priority = _PRIORITY.get(endpoint.op, _NORMAL)
        if (
            getattr(self.venue, "needs_instruments", False)
            and not self.market.instruments
            and endpoint.op not in (Op.INSTRUMENTS, Op.SERVER_TIME)
        ):
            yield from self.markets()  # ccxt builds its requests from the market list
        if endpoint.signed and not self.clock.synced and endpoint.op is not Op.SERVER_TIME:
            # (A venue whose clock needs the key, Alpaca's /v2/clock, reads it signed.)
            yield from self.sync_clock(priority)
        key = self.key  # the key this attempt is signed with (the ring may rotate meanwhile)
        caller = self._caller(key)
        signer = self._signer_of(key) if endpoint.signed else None
        bearer = getattr(signer, "renewable", None)  # an OAuth token source, or None
        if bearer is not None and bearer.due():
            yield Renew(bearer)  # ahead of expiry: the driver refreshes (off the loop)
        request_cost = getattr(self.venue, "request_cost", None)  # costs ccxt computes per call
        if request_cost is not None:
            cost = request_cost(endpoint, params)
        else:
            cost = cost_of(endpoint.cost, endpoint.cost_rules, params)
        limiter = self.limiter
        waited = False  # hooks.before_wait has run
        while True:
            if _LIMITER in self.inline:
                wait, admission = limiter.admit(cost, priority, symbol=symbol, caller=caller)
            else:
                wait, admission = yield Call(
                    Resource.LIMITER,
                    functools.partial(limiter.admit, cost, priority, symbol=symbol, caller=caller),
                )
            if wait <= 0.0:
                break
            if wait > self.settings.max_rate_wait:
                raise RateLimited(
                    f"{endpoint.op.value}: the venue asked us to pause for {wait:.0f} s",
                    venue=self.venue.name,
                    retry_after=wait,
                )
            if hooks is not None and not waited:
                waited = True
                yield from hooks.before_wait()
            yield Wait(wait)
        # The admission holds its windows until the request can no longer reach the venue
        # (guarantee 6 counts at arrival): landed with the answer below, or here when the
        # request fails or never leaves (a stale view, a journal error, a cancelled task).
        call = None
        audit = self.audit
        try:
            timestamp = self.clock.now_ms()
            if hooks is not None:
                yield from hooks.before_send(timestamp)
            # Drawn last, after every wait: requests leave in nonce order as far as we decide.
            nonce = (
                None if self.nonces is None or not endpoint.signed else self.nonces.next(key.key_id)
            )
            presented = None if bearer is None else bearer.current()  # the token sent
            request = self.venue.prepare(
                endpoint,
                params,
                key_id=key.key_id,
                signer=signer,
                timestamp_ms=timestamp,
                nonce=nonce,
            )
            call = telemetry.venue_call(
                request,
                venue=self.venue.name,
                operation=endpoint.op._value_,  # a slot read, not enum's Python property
                base_url=self.base_url,
                resend_count=resend,
                client_order_id=client_order_id,
            )
            if audit.records_wire:
                yield from self.perform(
                    Resource.AUDIT,
                    functools.partial(
                        audit.request, endpoint.op.value, request, attempt=resend + 1
                    ),
                )
            response: HttpResponse = yield Send(request, endpoint.op)
            if hooks is not None:
                hooks.after_send()
        except BaseException as exc:
            # Nothing more of it can arrive. Made here, not as an effect: the flow may be
            # closing and can yield nothing. Should a shared limiter fail now, the admission
            # counts until its deadline, and the caller sees the first error.
            with contextlib.suppress(Exception):
                limiter.landed(admission)
            if call is not None:
                call.end(error=exc)
            raise
        status, headers = response.status, response.headers
        if _LIMITER in self.inline:
            limiter.observe(status, headers, symbol=symbol, caller=caller, landed=admission)
        else:
            yield Call(
                Resource.LIMITER,
                functools.partial(
                    limiter.observe, status, headers, symbol=symbol, caller=caller, landed=admission
                ),
            )
        # A venue whose answer is read against what was asked (OANDA's transaction scan
        # looks for the client order id it asked about, in an account's transactions).
        asked = getattr(self.venue, "interpret_asked", None)
        outcome = (
            self.venue.interpret(endpoint, response)
            if asked is None
            else asked(endpoint, params, response, key_id=key.key_id)
        )
        refine = getattr(self.venue, "refine_outcome", None)
        if refine is not None:  # optional: what the answer means for this key (Kraken OTP)
            outcome = refine(outcome, key)
        if 300 <= status < 400:
            # No redirect is followed (a signed request is never resent elsewhere), and a
            # 3xx is no answer to it: whoever sent it (the venue, a CDN, a proxy) may have
            # passed the request on first. Never "rejected" (a 304 after the order filled
            # was journaled REJECTED): ambiguous, so the venue is asked.
            outcome = unreadable(endpoint, status, self.venue.name, "a redirect, not followed")
        call.end(
            status=response.status,
            verdict=outcome.verdict._value_,
            unknown=outcome.verdict is _AMBIGUOUS,
        )
        if audit.records_wire:
            yield from self.perform(
                Resource.AUDIT,
                functools.partial(
                    audit.response, endpoint.op.value, response, verdict=outcome.verdict.value
                ),
            )
        if (
            bearer is not None
            and presented is not None
            and status == 401
            and isinstance(outcome.error, AuthenticationRejected)
        ):
            # The OAuth token was refused (revoked, or expired by the server's clock):
            # renew it. A read, lookup or cancel is sent once more with the new token; a
            # create never is (it was not placed: the order path concludes so).
            bearer.refused(presented)
            yield from self.note("auth.token_refused", op=endpoint.op.value, code=code_of(outcome))
            if endpoint.op not in _NEVER_RESENT and not reauthorized:
                yield Renew(bearer)
                return (
                    yield from self._exchange(
                        endpoint,
                        params,
                        symbol=symbol,
                        priority=priority,
                        resend=resend + 1,
                        client_order_id=client_order_id,
                        reauthorized=True,
                    )
                )
            if endpoint.op in _NEVER_RESENT:
                again = (
                    "place the order again (the same idempotency key may be used)"
                    if endpoint.op is Op.PLACE_ORDER
                    else "call again"
                )
                outcome = dataclasses.replace(
                    outcome,
                    error=AccessTokenRefused(
                        f"{endpoint.op.value}: {self.venue.name} refused the OAuth access "
                        "token (revoked, or expired by its clock): nothing was done, and "
                        f"the token is refreshed before the next request; {again}",
                        venue=self.venue.name,
                        code=code_of(outcome),
                    ),
                )
        if (
            outcome.verdict is _REJECTED
            and isinstance(outcome.error, AuthenticationRejected)
            and self.keys.superseded(key.key_id)
        ):
            # Signed with a key rotated out (and perhaps revoked) while this was in flight:
            # refused, so certainly not executed. Resend it signed with the new key.
            outcome = dataclasses.replace(outcome, verdict=Verdict.RETRYABLE)
        elif isinstance(outcome.error, AuthenticationRejected):
            yield from self.note(
                "auth.rejected",
                op=endpoint.op.value,
                code=code_of(outcome),
                reason="timestamp" if outcome.clock_skew else "credentials",
            )
        if outcome.verdict is _OK and outcome.follow_up is not None:
            # One operation, several requests: each is charged, stamped and signed anew.
            # The follow-up's parameters replace the same-named ones of this request.
            outcome = yield from self._exchange(
                endpoint,
                _followed_up(params, outcome.follow_up),
                symbol=symbol,
                priority=priority,
                resend=resend,
                client_order_id=client_order_id,
            )
        return outcome

    def _caller(self, key: ApiKey) -> Caller:
        """Whose rate-limit windows ``key``'s calls spend: its own, and its account's."""
        caller = self._callers.get(key.key_id)
        if caller is None:
            caller = self._callers.setdefault(key.key_id, Caller.of(key.key_id, self.account))
        return caller

    def _signer_of(self, key: ApiKey) -> Signer:
        signer = self._signers.get(key.key_id)
        if signer is None:  # a rotated-in key: its secret is parsed once, here
            signer = self._signers.setdefault(key.key_id, self.venue.signer(key))
        return signer


# Never sent again after a refused OAuth token: the caller decides (through the journal).
_NEVER_RESENT = frozenset({Op.PLACE_ORDER, Op.WITHDRAW})

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

# Read once, at import, as in models.common (a member read off its class is slow in 3.11).
_AUDIT, _LIMITER, _NORMAL = Resource.AUDIT, Resource.LIMITER, Priority.NORMAL
_OK, _AMBIGUOUS, _REJECTED = Verdict.OK, Verdict.AMBIGUOUS, Verdict.REJECTED


def error_of(outcome: Outcome) -> SecureTradeError:
    """The error an outcome carries (it has one unless it is OK)."""
    assert outcome.error is not None
    return outcome.error


class SendHooks(Protocol):
    """What the order path does at an attempt's turns in :meth:`Pipeline._exchange` (one
    object, whose methods are looked up when called: no bound method or closure per order
    is kept alive across its awaits)."""

    def before_wait(self) -> Flow[None]:
        """Runs once, before the first wait for the rate limiter, if the request waits at
        all (the order path claims its intent there, so that the claim is not held back by
        the wait)."""

    def before_send(self, timestamp_ms: int) -> Flow[None]:
        """Runs once the request may go, before it is built (the order path makes its
        attempt durable there)."""

    def after_send(self) -> None:
        """Runs once the transport has returned an answer: from there on the request has
        left, whatever is raised later (the order path tells "refused before any byte
        left" from "sent" by it)."""


def _followed_up(params: Params, follow_up: Params) -> Params:
    """A follow-up request's parameters: ``params`` with the same-named ones replaced by
    ``follow_up``'s. (A function of its own: the comprehensions' names would otherwise be
    closure cells of :meth:`Pipeline._exchange`'s frame, made on every call.)"""
    named = {name for name, _ in follow_up}
    return [(n, v) for n, v in params if n not in named] + follow_up


def code_of(outcome: Outcome) -> int | str | None:
    return None if outcome.error is None else outcome.error.code


def _refuse_call(resource: Any, call: Any) -> None:
    """``perform``'s refusal: a resource that is no :class:`Resource`, or no function."""
    instance("resource", resource, Resource, optional=False)
    function("function", call)
