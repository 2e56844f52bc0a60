"""Finding out what became of one of our orders, and writing it down as a transition.

The venue is the only authority on an order whose request may have left: :meth:`resolve`
asks it until it holds the order, proves it absent (not found after the attempt's
deadline, so it can never execute), or gives up (the intent stays UNKNOWN, never guessed).
What it finds is written with the transitions of :mod:`.states`: the venue's evidence by
:meth:`settled`, a conclusion about one attempt by :meth:`conclude`, which fails with
:class:`StaleView` when the row has moved on since the flow read it.
"""

from __future__ import annotations

import time

from .._checks import instance, shown, text, whole
from ..errors import (
    AmbiguousOutcome,
    DuplicateOrder,
    IntentChanged,
    OrderNotFound,
    SecureTradeError,
    UnresolvedOrder,
)
from ..models import Order, OrderRequest, as_json
from ..transport.base import TransportFailure
from ..venues.base import Op, Verdict
from .effects import Flow, Settle, Wait
from .pipeline import error_of
from .reads import Reads, state_of
from .retry import RetryPolicy
from .states import IntentState, View

__all__ = ["Resolution", "StaleView"]

# Read once, at import, as in models.common (a member read off its class is slow in 3.11).
_REJECTED = IntentState.REJECTED


class StaleView(IntentChanged):
    """The journal row is no longer what this flow saw (another thread, task, process or
    host moved it on): the flow re-reads it and decides again; it never overwrites.

    The core's own signal, caught by its order and recovery flows; a caller driving
    :meth:`Resolution.resolve` or :meth:`Resolution.conclude` itself gets it as the public
    :class:`~securetrade.errors.IntentChanged`, a typed error saying what to do."""

    def __init__(self, cid: str) -> None:
        super().__init__(
            f"the journal row of order {shown(cid, 80)} is not the one it was read as (another "
            "writer settled, claimed or resent it, or there is none); nothing was "
            "overwritten: read it again (core.journal.get) and decide from what it holds now",
            client_order_id=cid,
        )


class Resolution(Reads):
    """Asking the venue about one client order id, and recording the answer."""

    def resolve(self, symbol: str, cid: str, deadline_ms: int, seen: View) -> Flow[Order | None]:
        """Ask the venue about ``cid`` until it answers for sure.

        Returns the order, or ``None`` when it is absent after its deadline (so it can never
        execute). Raises :class:`UnresolvedOrder` when the venue cannot tell in time, after
        recording the intent as UNKNOWN (from ``seen`` only: else :class:`StaleView`).
        """
        symbol, cid = text("symbol", symbol), text("cid", cid)
        whole("deadline_ms", deadline_ms, 0)
        instance("seen", seen, View, optional=False)
        yield from self.note("order.resolving", client_order_id=cid)
        params = self.venue.order_lookup_params(symbol, client_order_id=cid)
        endpoint = self.venue.endpoints[Op.GET_ORDER]
        reads = RetryPolicy(max_attempts=1_000_000, max_delay=self.settings.resolve_timeout).start()
        give_up = time.monotonic() + self.settings.resolve_timeout
        while True:
            yield from self.renew_lease()  # recovery may be waiting on this answer
            failure: Exception = AmbiguousOutcome("no answer", venue=self.venue.name)
            try:
                outcome = yield from self._exchange(
                    endpoint, params, symbol=symbol, client_order_id=cid
                )
            except TransportFailure as exc:
                outcome, failure = None, exc
            except SecureTradeError as exc:
                # The lookup did not happen: refused on this side (a pin mismatch, an
                # untrusted chain) or held back (a venue pause longer than max_rate_wait).
                # The attempt it asks about may be at the venue, so the caller must not
                # read "nothing was sent" or "retry" of the order: unresolved.
                yield from self.conclude(cid, IntentState.UNKNOWN, seen, type(exc).__name__)
                raise UnresolvedOrder(
                    f"could not ask the venue whether the order was placed (the lookup "
                    f"failed here: {type(exc).__name__}); the order may be at the venue, so "
                    "it is kept as unresolved, and never sent again by itself",
                    client_order_id=cid,
                    venue=self.venue.name,
                ) from exc
            if outcome is not None and outcome.verdict is Verdict.OK:
                return self.venue.parse_order(outcome.payload)
            if outcome is not None and isinstance(outcome.error, OrderNotFound):
                if self.clock.now_ms() > deadline_ms:
                    yield from self.note("order.absent", client_order_id=cid)
                    return None
                if time.monotonic() > give_up:  # the attempt may still land: keep it unknown
                    yield from self.conclude(cid, IntentState.UNKNOWN, seen, "not found yet")
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
                failure if outcome is None else error_of(outcome), at_least=retry_after
            )
            if wait is None:  # read errors never decide: the intent stays unknown
                yield from self.conclude(cid, IntentState.UNKNOWN, seen, "venue did not answer")
                raise UnresolvedOrder(
                    "could not learn whether the order was placed; it is kept as unresolved",
                    client_order_id=cid,
                    venue=self.venue.name,
                )
            yield Wait(wait)

    def renew_lease(self) -> Flow[None]:
        """Keep the account's reconciliation lease alive while waiting; nothing here (the
        recovery layer above holds the lease and renews it)."""
        return
        yield

    def conclude(self, cid: str, state: IntentState, seen: View, error: str) -> Flow[None]:
        """A guarded transition (NOT_PLACED, UNKNOWN, REJECTED) from the row this flow saw;
        :class:`StaleView` when somebody else has moved it on meanwhile."""
        cid = text("cid", cid)
        instance("state", state, IntentState, optional=False)
        instance("seen", seen, View, optional=False)
        text("error", error, empty=True)
        applied = yield Settle(cid, state, error=error, expect=seen)
        if not applied:
            raise StaleView(cid)

    def adopt(self, found: Order, order: OrderRequest) -> Order:
        """A duplicate-id reply: the earlier attempt landed. Adopt it if it is our order."""
        instance("found", found, Order, optional=False)
        instance("order", order, OrderRequest, optional=False)
        if (
            (found.symbol, found.side, found.type) != (order.symbol, order.side, order.type)
            or not _same_size(found, order)
            or any(  # limit and stop prices too, where the venue reports them
                theirs is not None and ours is not None and theirs.normalize() != ours.normalize()
                for theirs, ours in (
                    (found.price, order.price),
                    (found.stop_price, order.stop_price),
                )
            )
        ):
            raise DuplicateOrder(
                f"the venue holds {found.client_order_id} with other parameters",
                venue=self.venue.name,
            )
        return found

    def settled(self, found: Order, key: str) -> Flow[Order]:
        """The venue holds ``found``: the evidence transition, whoever sent it."""
        if type(found) is not Order:
            instance("found", found, Order, optional=False)
        found = found.model_copy(update={"idempotency_key": key})
        state = state_of(found)
        if state is not _REJECTED:  # a listed refusal proves nothing of attempts
            yield Settle(found.client_order_id, state, as_json(found), fills=found.fills)
        self.policy.observe(found)
        fields = found.__dict__  # one read of the model (pydantic's attribute hook is slow)
        event = {
            "client_order_id": fields["client_order_id"],
            "order_id": fields["order_id"],
            "status": fields["status"]._value_,  # a slot read, not enum's Python property
        }
        yield from self.note_fields("order.placed", event)
        return found


def _same_size(found: Order, order: OrderRequest) -> bool:
    """The venue's order asks for what ours asks: the same quote amount for a quote-quantity
    order (its base quantity is the venue's own arithmetic), else the same base quantity of
    an order that is not sized in the quote asset."""
    asked = found.quote_order_quantity
    if order.quote_quantity is not None:
        return asked is not None and asked.normalize() == order.quote_quantity.normalize()
    if asked is not None or order.quantity is None:
        return False
    return found.quantity.normalize() == order.quantity.normalize()
