"""The I/O-free pipeline. Every operation is a generator that yields effects.

A flow yields :class:`Wait` (sleep this long) or :class:`Send` (write this request, hand me
the response); a driver performs the effect and sends the result back in, or throws a
:class:`~securetrade.transport.base.TransportFailure` into the flow. The sync ``Client``
drives flows with ``time.sleep`` and a blocking transport, the ``AsyncClient`` with
``asyncio.sleep`` and an async transport; neither holds logic the other lacks.

Order of layers for each request: keys and scopes → policy → idempotency journal → rate
limit → freshness (venue timestamp) → signing → transport → record.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from ..clock import VenueClock
from ..errors import (
    AmbiguousOutcome,
    ConnectFailed,
    DuplicateOrder,
    IdempotencyKeyMismatch,
    InvalidRequest,
    OrderNotFound,
    RateLimited,
    SecureTradeError,
    UnresolvedOrder,
    VenueRejected,
)
from ..keys import ApiKey, Scope
from ..models import Balance, Instrument, Order, OrderRequest, OrderStatus, to_decimal
from ..policy import Policy
from ..ratelimit import RateLimiter
from ..record import AuditLog
from ..signing import Signer, signer_for
from ..transport.base import HttpRequest, HttpResponse, TransportFailure
from ..venues.base import Endpoint, Op, Outcome, Params, Venue, Verdict
from .journal import IntentState, Journal, derive_client_order_id

__all__ = ["Core", "Flow", "Send", "Settings", "Wait"]

log = logging.getLogger("securetrade")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Wait:
    """Effect: sleep ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Send:
    """Effect: send ``request``; the driver answers with an HttpResponse."""

    request: HttpRequest
    op: Op


Effect = Wait | Send
Flow = Generator[Effect, Any, T]


@dataclass(frozen=True, slots=True)
class Settings:
    """Tunables of the pipeline. The defaults suit a bot on a normal network."""

    max_attempts: int = 4  # sends of one request, retries included
    max_rate_wait: float = 30.0  # longest a venue-imposed pause is waited out, seconds
    settle_ms: int = 1000  # margin after a request's venue deadline before "not found" is final
    resolve_timeout: float = 30.0  # how long to keep asking about an ambiguous order, seconds
    clock_samples: int = 3  # /time round trips per clock sync


_STATE_OF = {
    OrderStatus.NEW: IntentState.ACKED,
    OrderStatus.PARTIALLY_FILLED: IntentState.ACKED,
    OrderStatus.FILLED: IntentState.FILLED,
    OrderStatus.CANCELED: IntentState.CANCELED,
    OrderStatus.REJECTED: IntentState.REJECTED,
    OrderStatus.EXPIRED: IntentState.EXPIRED,
}


# How long a second caller with the same key waits for the first to finish before it asks
# the venue itself (the first may have died).
_OWNER_PATIENCE_MS = 1000.0


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter between attempts (tenacity's strategy)."""
    from tenacity import RetryCallState, wait_exponential_jitter

    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)(state))


class Core:
    """All protective layers for one key at one venue; holds no I/O of its own."""

    def __init__(
        self,
        venue: Venue,
        key: ApiKey,
        *,
        journal: Journal,
        limiter: RateLimiter | None = None,
        clock: VenueClock | None = None,
        policy: Policy | None = None,
        audit: AuditLog | None = None,
        settings: Settings | None = None,
        unsafe_allow_withdraw_scope: bool = False,
    ) -> None:
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
        self.key = key
        self.journal = journal
        self._adopt_published_limits = limiter is None
        self.limiter = limiter or RateLimiter(venue.rate_limits)
        self.clock = clock or VenueClock()
        self.policy = policy or Policy()
        self.audit = audit or AuditLog()
        self.settings = settings or Settings()
        self._signer: Signer = signer_for(key)
        self._instruments: dict[str, Instrument] = {}

    # --- the public operations ------------------------------------------------------------

    def server_time(self) -> Flow[int]:
        payload = yield from self._call(Op.SERVER_TIME, [])
        return self.venue.parse_server_time(payload)

    def instruments(self, *, refresh: bool = False) -> Flow[dict[str, Instrument]]:
        if refresh or not self._instruments:
            payload = yield from self._call(Op.INSTRUMENTS, [])
            self._instruments = self.venue.parse_instruments(payload)
            published = self.venue.parse_rate_limits(payload)
            if published and self._adopt_published_limits:
                self.limiter.configure(published)  # the venue's own figures beat our table
        return dict(self._instruments)

    def balances(self) -> Flow[list[Balance]]:
        payload = yield from self._call(Op.BALANCES, [])
        return self.venue.parse_balances(payload)

    def open_orders(self, symbol: str | None = None) -> Flow[list[Order]]:
        params: Params = []
        if symbol is not None:
            self.venue.check_symbol(symbol)
            params.append(("symbol", symbol))
        payload = yield from self._call(Op.OPEN_ORDERS, params, symbol=symbol)
        return self.venue.parse_orders(payload)

    def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        payload = yield from self._call(Op.GET_ORDER, params, symbol=symbol)
        return self.venue.parse_order(payload)

    def cancel_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Flow[Order]:
        self.venue.check_symbol(symbol)
        params = self.venue.order_lookup_params(
            symbol, client_order_id=client_order_id, order_id=order_id
        )
        # A cancel is idempotent at the venue: resending one is always safe.
        payload = yield from self._call(Op.CANCEL_ORDER, params, symbol=symbol)
        order = self.venue.parse_order(payload)
        self.audit.emit("order.canceled", client_order_id=order.client_order_id)
        return order

    def withdraw(
        self, asset: str, amount: Decimal | str | int, address: str, *, network: str | None = None
    ) -> Flow[str]:
        value = to_decimal(amount, field="amount")
        if value <= 0:
            raise InvalidRequest("amount must be greater than zero")
        params = self.venue.withdraw_params(asset, value, address, network)
        payload = yield from self._call(Op.WITHDRAW, params, once=True, address=address)
        return self.venue.parse_withdrawal(payload)

    def key_permissions(self) -> Flow[dict[str, Any]]:
        payload = yield from self._call(Op.KEY_PERMISSIONS, [])
        return dict(payload)

    def check_order(self, order: OrderRequest) -> Flow[Instrument]:
        """Every local check of ``order`` (scope, policy, venue grammar, instrument rules)."""
        self.key.require(
            Scope.TRADE, symbol=order.symbol, quantity=order.quantity, notional=order.notional
        )
        self.policy.check(order)
        self.venue.check_symbol(order.symbol)
        instruments = yield from self.instruments()
        instrument = instruments.get(order.symbol)
        if instrument is None:
            raise InvalidRequest(f"{order.symbol} is not listed at {self.venue.name}")
        instrument.check(order)
        return instrument

    def place_order(self, order: OrderRequest, idempotency_key: str | None = None) -> Flow[Order]:
        """Place ``order`` at most once per ``idempotency_key``, whatever fails on the way."""
        if order.client_order_id is not None:
            raise InvalidRequest(
                "client_order_id is derived from the idempotency key; pass idempotency_key"
            )
        yield from self.check_order(order)
        key = idempotency_key or uuid.uuid4().hex
        if not key or len(key) > 255 or not key.isprintable():
            raise InvalidRequest("idempotency_key must be 1-255 printable characters")
        cid = derive_client_order_id(self.venue.name, self.key.key_id, key)
        fingerprint = order.fingerprint()
        intent, created = self.journal.begin(key, cid, order.symbol, fingerprint, 0)
        if intent.fingerprint != fingerprint:
            raise IdempotencyKeyMismatch(
                f"idempotency key was used for another order ({intent.fingerprint}); "
                "nothing was sent"
            )
        self.audit.emit("order.intent", client_order_id=cid, symbol=order.symbol, new=created)
        if created:
            result = yield from self._submit(order, key, cid)
        else:
            result = yield from self._rejoin(order, key, cid)
        return result

    def unresolved(self) -> list[str]:
        """Client order ids of intents whose outcome is not yet known."""
        return [i.client_order_id for i in self.journal.unresolved()]

    # --- idempotent order placement --------------------------------------------------------

    def _submit(self, order: OrderRequest, key: str, cid: str) -> Flow[Order]:
        endpoint = self.venue.endpoints[Op.PLACE_ORDER]
        params = self.venue.order_params(order, cid)
        attempt = 0
        while True:
            attempt += 1
            deadline: list[int] = [0]

            def before_send(timestamp_ms: int, deadline: list[int] = deadline) -> None:
                deadline[0] = timestamp_ms + self.venue.recv_window_ms + self.settings.settle_ms
                self.journal.sending(cid, deadline[0])  # durable before the first byte

            failure: TransportFailure | None = None
            try:
                outcome = yield from self._exchange(endpoint, params, before_send)
            except TransportFailure as exc:
                failure = exc
            if failure is not None:
                if failure.sent:  # it may have landed: only the venue can say
                    found = yield from self._resolve(order.symbol, cid, deadline[0])
                    if found is not None:
                        return self._settled(found, key)
                if attempt >= self.settings.max_attempts:
                    self.journal.settle(cid, IntentState.NOT_PLACED, error=str(failure))
                    raise ConnectFailed(f"order not placed: {failure}", venue=self.venue.name)
                yield Wait(_backoff(attempt))
                continue
            if outcome.verdict is Verdict.OK:
                return self._settled(self.venue.parse_order(outcome.payload), key)
            if outcome.duplicate:
                found = yield from self._resolve(order.symbol, cid, deadline[0])
                if found is not None:
                    return self._settled(self._adopt(found, order), key)
            if outcome.verdict is Verdict.AMBIGUOUS:
                found = yield from self._resolve(order.symbol, cid, deadline[0])
                if found is not None:
                    return self._settled(found, key)
            elif outcome.verdict is Verdict.REJECTED:
                self.journal.settle(cid, IntentState.REJECTED, error=str(outcome.error))
                self.audit.emit("order.rejected", client_order_id=cid, code=_code(outcome))
                raise _error(outcome)
            retry = yield from self._before_retry(outcome, attempt)
            if not retry:
                self.journal.settle(cid, IntentState.NOT_PLACED, error=str(outcome.error))
                raise _error(outcome)

    def _rejoin(self, order: OrderRequest, key: str, cid: str) -> Flow[Order]:
        """Same key again: return the known result, or find out what the first call did."""
        patience = self.clock.local_ms() + _OWNER_PATIENCE_MS
        while True:
            intent = self.journal.get(cid)
            assert intent is not None
            if intent.order_json is not None:
                return self._stored(intent.order_json, key)
            if intent.state in (IntentState.REJECTED, IntentState.NOT_PLACED):
                raise VenueRejected(
                    f"this idempotency key's order was not placed: {intent.error}",
                    venue=self.venue.name,
                )
            if intent.state is IntentState.SENDING and self.clock.local_ms() < patience:
                yield Wait(0.02)  # its owner (thread, task or process) is most likely sending
                continue
            if (
                intent.deadline_ms == 0
                and self.clock.local_ms() - intent.updated_at * 1000 < 60_000
            ):
                yield Wait(0.05)  # created, not yet sent: its owner is waiting for its turn
                continue
            found = yield from self._resolve(order.symbol, cid, intent.deadline_ms)
            if found is not None:
                return self._settled(found, key)
            # Past its deadline and absent: the old attempt can never execute. Take over.
            if self.journal.claim(cid, intent.deadline_ms, intent.deadline_ms + 1):
                result = yield from self._submit(order, key, cid)
                return result

    def _resolve(self, symbol: str, cid: str, deadline_ms: int) -> Flow[Order | None]:
        """Ask the venue about ``cid`` until it answers for sure.

        Returns the order, or ``None`` when it is absent after its deadline (so it can never
        execute). Raises :class:`UnresolvedOrder` when the venue cannot tell in time.
        """
        self.audit.emit("order.resolving", client_order_id=cid)
        params = self.venue.order_lookup_params(symbol, client_order_id=cid)
        endpoint = self.venue.endpoints[Op.GET_ORDER]
        started = self.clock.local_ms()
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = yield from self._exchange(endpoint, params)
            except TransportFailure:
                outcome = None
            if outcome is not None and outcome.verdict is Verdict.OK:
                return self.venue.parse_order(outcome.payload)
            if outcome is not None and isinstance(outcome.error, OrderNotFound):
                if self.clock.now_ms() > deadline_ms:
                    self.audit.emit("order.absent", client_order_id=cid)
                    return None
                yield Wait(min(0.25, max(0.01, (deadline_ms - self.clock.now_ms()) / 1000)))
                continue
            if outcome is not None and outcome.clock_skew:
                yield from self.sync_clock()
                continue
            if self.clock.local_ms() - started > self.settings.resolve_timeout * 1000:
                self.journal.settle(cid, IntentState.UNKNOWN, error="venue did not answer")
                raise UnresolvedOrder(
                    "could not learn whether the order was placed; it is kept as unresolved",
                    client_order_id=cid,
                    venue=self.venue.name,
                )
            wait = outcome.retry_after if outcome is not None and outcome.retry_after else None
            yield Wait(wait if wait is not None else _backoff(attempt))

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

    def _settled(self, found: Order, key: str) -> Order:
        found = found.model_copy(update={"idempotency_key": key})
        self.journal.settle(
            found.client_order_id, _STATE_OF[found.status], order_json=found.model_dump_json()
        )
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

    def sync_clock(self) -> Flow[None]:
        """Measure the offset to venue time from a few ``/time`` round trips."""
        self.clock.reset()
        endpoint = self.venue.endpoints[Op.SERVER_TIME]
        for _ in range(self.settings.clock_samples):
            sent = self.clock.local_ms()
            outcome = yield from self._exchange(endpoint, [])
            received = self.clock.local_ms()
            if outcome.verdict is not Verdict.OK:
                raise _error(outcome)
            self.clock.add_sample(sent, received, self.venue.parse_server_time(outcome.payload))
        self.audit.emit("clock.synced", offset_ms=round(self.clock.offset_ms, 1))

    def _call(
        self,
        op: Op,
        params: Params,
        *,
        symbol: str | None = None,
        once: bool = False,
        address: str | None = None,
    ) -> Flow[Any]:
        """A request whose resending is harmless (``once=False``): scope, limit, retry."""
        endpoint = self.venue.endpoints[op]
        if endpoint.scope is not None:
            self.key.require(
                endpoint.scope,
                symbol=symbol if op is not Op.OPEN_ORDERS else None,
                address=address,
            )
        attempt = 0
        while True:
            attempt += 1
            failure: TransportFailure | None = None
            try:
                outcome = yield from self._exchange(endpoint, params)
            except TransportFailure as exc:
                failure = exc
            if failure is not None:
                if (failure.sent and once) or attempt >= self.settings.max_attempts:
                    kind = AmbiguousOutcome if failure.sent else ConnectFailed
                    raise kind(f"{op.value}: {failure}", venue=self.venue.name)
                yield Wait(_backoff(attempt))
                continue
            if outcome.verdict is Verdict.OK:
                return outcome.payload
            if outcome.verdict is Verdict.REJECTED or (
                outcome.verdict is Verdict.AMBIGUOUS and once
            ):
                raise _error(outcome)
            retry = yield from self._before_retry(outcome, attempt)
            if not retry:
                raise _error(outcome)

    def _before_retry(self, outcome: Outcome, attempt: int) -> Flow[bool]:
        """Prepare to resend after a retryable answer; False when it should not be."""
        if attempt >= self.settings.max_attempts:
            return False
        if outcome.clock_skew:
            yield from self.sync_clock()
            return True
        if isinstance(outcome.error, RateLimited):
            pause = self.limiter.paused_for
            if pause > self.settings.max_rate_wait:
                return False
            yield Wait(pause)
            return True
        yield Wait(_backoff(attempt))
        return True

    def _exchange(
        self,
        endpoint: Endpoint,
        params: Params,
        before_send: Callable[[int], None] | None = None,
    ) -> Flow[Outcome]:
        """One attempt: rate limit, fresh timestamp, sign, send, learn from the answer."""
        if endpoint.signed and not self.clock.synced:
            yield from self.sync_clock()
        while True:
            wait = self.limiter.reserve(endpoint.cost)
            if wait <= 0.0:
                break
            if wait > self.settings.max_rate_wait:
                raise RateLimited(
                    f"{endpoint.op.value}: the venue asked us to pause for {wait:.0f} s",
                    venue=self.venue.name,
                    retry_after=wait,
                )
            yield Wait(wait)
        timestamp = self.clock.now_ms()
        if before_send is not None:
            before_send(timestamp)
        request = self.venue.prepare(
            endpoint,
            params,
            key_id=self.key.key_id,
            signer=self._signer if endpoint.signed else None,
            timestamp_ms=timestamp,
        )
        response: HttpResponse = yield Send(request, endpoint.op)
        self.limiter.observe(response.status, response.headers)
        return self.venue.interpret(endpoint, response)


def _error(outcome: Outcome) -> SecureTradeError:
    assert outcome.error is not None
    return outcome.error


def _code(outcome: Outcome) -> int | str | None:
    return None if outcome.error is None else outcome.error.code
