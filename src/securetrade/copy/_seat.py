"""One follower inside the engine (its seat) and the engine's bookkeeping around it.

A seat holds the follower's client, its balances as last read and kept by its own fills,
its quarantine, its circuit breaker and the concurrency bounds it shares with the other
followers of its venue account and of its egress IP. The helpers turn what the venue and
the journal say of a seat into what :mod:`.reconcile` needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from ..client import AsyncClient
from ..errors import (
    AmbiguousOutcome,
    JournalError,
    LocalRefusal,
    RateLimited,
    RetryableError,
    SecureTradeError,
    VenueRejected,
)
from ..models import Balance, Instrument, Order, OrderRequest, Side
from ._egress import Lane
from .breaker import Breaker
from .model import Follower, LeaderEvent, Skip
from .plan import FollowerState, Terms, decide, mapped_symbol
from .reconcile import Divergence, FollowerView, LeaderSnapshot

__all__ = [
    "Bound",
    "Reads",
    "Seat",
    "book",
    "breaks",
    "decided_from",
    "decided_now",
    "divergence",
    "follower_state",
    "instruments",
    "net",
    "view",
]

#: Per event: each lane's instruments table, as the first follower of the lane read it
#: (None: that read failed, and each follower reads on its own). Per lane, not per venue:
#: the read also gives the lane's limiter the venue's published limits.
Reads = dict[Lane, "asyncio.Future[dict[str, Instrument] | None]"]


@dataclass
class Seat:
    """One follower in the engine: its client, what it holds, whether it is quarantined."""

    follower: Follower
    client: AsyncClient
    breaker: Breaker
    account: Bound  # shared by the followers of one venue account
    egress: Bound  # shared by the followers behind one egress IP
    balances: dict[str, Decimal] | None = None  # read once, then kept by our own fills
    quarantined: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one event at a time per follower


class Bound:
    """A concurrency bound that remembers the most it held at once.

    It waits on a semaphore only once more followers have joined it than it admits: a
    bound no fan-out can fill (one follower's own account, a thousand followers under a
    bound of 4,096) costs a count, not a semaphore's acquire and release per follower.
    Each member is in flight at most once at a time (its seat's lock), so until then the
    members in flight never exceed the size; the semaphore made when the bound starts to
    bind counts those already in flight as taken, and their exits give them back.
    """

    __slots__ = ("in_flight", "members", "peak", "size", "slots")

    def __init__(self, size: int) -> None:
        self.slots: asyncio.Semaphore | None = None
        self.size = size
        self.members = 0
        self.in_flight = 0
        self.peak = 0

    def join(self) -> None:
        """One more follower may enter this bound."""
        self.members += 1
        if self.slots is None and self.members > self.size:
            self.slots = asyncio.Semaphore(self.size - self.in_flight)

    def enter(self) -> None:
        """Count a member in, once its slot is acquired (when the bound binds): the
        fan-out's way in, without a coroutine per bound and follower."""
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def leave(self) -> None:
        """Count a member out, giving its slot back."""
        self.in_flight -= 1
        if self.slots is not None:
            self.slots.release()

    async def __aenter__(self) -> None:
        if self.slots is not None:
            await self.slots.acquire()
        self.enter()

    async def __aexit__(self, *exc: object) -> None:
        self.leave()


def divergence(seat: Seat, action: str, reason: str) -> Divergence:
    """A follower-wide verdict (no symbol was looked at)."""
    return Divergence(seat.follower.id, "*", Decimal(0), Decimal(0), action, reason)


def net(seat: Seat, order: Order) -> Decimal:
    """What ``order`` changed in the follower's base asset (fees in it taken off)."""
    rules = seat.client.core.market.instruments.get(order.symbol)
    signed = order.filled_quantity if order.side is Side.BUY else -order.filled_quantity
    if rules is not None:
        for fill in order.fills:
            if fill.commission_asset == rules.base_asset:
                signed -= fill.commission
    return signed


def view(
    snapshot: LeaderSnapshot,
    leader_symbol: str,
    rules: Instrument | None,
    balances: Mapping[str, Balance],
    copied: Mapping[str, Decimal],
    pending: Decimal,
    overridden: bool,
) -> FollowerView:
    if rules is None:
        return FollowerView(None, Decimal(0), Decimal(0), overridden=overridden)
    zero = Balance(asset=rules.base_asset, free=Decimal(0))
    base = balances.get(rules.base_asset, zero)
    quote = balances.get(rules.quote_asset, zero)
    price = snapshot.prices.get(leader_symbol, Decimal(0))
    return FollowerView(
        rules,
        held=base.total,
        copied=copied.get(rules.symbol, Decimal(0)),
        pending=pending,
        equity=quote.total + base.total * price,
        quote_free=quote.free,
        overridden=overridden,
        base_free=base.free,
    )


def breaks(exc: SecureTradeError) -> bool:
    """Whether ``exc`` counts towards the follower's breaker: the venue or the way to it
    failing (5xx, refused connections, lost answers), not a key (quarantine), a rate limit
    (the limiter's), a refusal of ours nor a venue's answer about the order."""
    if isinstance(exc, RateLimited):
        return False
    if isinstance(exc, (RetryableError, AmbiguousOutcome)):
        return True
    return not isinstance(exc, (VenueRejected, LocalRefusal, JournalError))


# --- what the plan needs, and what a fill changes ---------------------------------------


async def follower_state(
    seat: Seat,
    event: LeaderEvent,
    lane: Lane,
    reads: Reads | None = None,
    closed_at_ms: int | None = None,
) -> FollowerState:
    """What :func:`~.plan.plan` needs to know of ``seat``'s account for ``event``: its
    balances are read once, then kept by :func:`book`. ``closed_at_ms``: when the leader
    last closed the event's symbol (see :class:`~.plan.FollowerState`)."""
    follower, client = seat.follower, seat.client
    now_ms = int(time.time() * 1000)
    if seat.quarantined:
        return FollowerState(None, now_ms, quarantined=True)
    symbol = mapped_symbol(event, follower)
    table = _read(reads, lane)
    if table is None:
        table = await instruments(client, lane, reads)
    rules = table.get(symbol) if symbol is not None else None
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
        closed_at_ms=closed_at_ms,
    )


def decided_now(
    seat: Seat,
    event: LeaderEvent,
    lane: Lane,
    reads: Reads,
    closed_at_ms: int | None,
    terms: Terms,
) -> OrderRequest | Skip | None:
    """:func:`~.plan.decide` for ``seat``, from what :func:`follower_state` would hand
    :func:`~.plan.plan`, without making the state nor awaiting anything; None when
    something must be read first (the lane's instruments, the follower's balances: then
    :func:`follower_state` and :func:`decided_from`). Every follower of a fan-out but the
    first ones of each lane decides here. ``terms``: the event's, shared by its followers."""
    table = _read(reads, lane)
    if table is None or seat.balances is None or seat.quarantined:
        return None
    follower = seat.follower
    now_ms = int(time.time() * 1000)
    symbol = mapped_symbol(event, follower)
    rules = table.get(symbol) if symbol is not None else None
    if rules is None:
        return decide(event, follower, symbol, None, now_ms)
    balances = seat.balances
    base = balances.get(rules.base_asset, _ZERO)
    quote = balances.get(rules.quote_asset, _ZERO)
    return decide(
        event,
        follower,
        symbol,
        rules,
        now_ms,
        base,
        quote + base * event.price,
        quote,
        base,
        None,
        False,
        closed_at_ms,
        terms,
    )


def decided_from(
    state: FollowerState, event: LeaderEvent, follower: Follower, terms: Terms
) -> OrderRequest | Skip:
    """:func:`~.plan.decide` from a :func:`follower_state`."""
    return decide(
        event,
        follower,
        mapped_symbol(event, follower),
        state.instrument,
        state.now_ms,
        state.position,
        state.equity,
        state.quote_free,
        state.base_free,
        state.last_price,
        state.quarantined,
        state.closed_at_ms,
        terms,
    )


_ZERO = Decimal(0)


def book(seat: Seat, order: Order) -> None:
    """Keep the follower's balances current from its own fills (no read per event).

    Written for the fan-out, where it runs once per follower: Decimal constants and
    additions only, no ``Decimal(0)`` made nor int converted per call."""
    balances = seat.balances
    filled = order.filled_quantity
    if balances is None or filled <= _ZERO:
        return
    rules = seat.client.core.market.instruments.get(order.symbol)
    if rules is None:
        seat.balances = None
        return
    base, quote = rules.base_asset, rules.quote_asset
    if order.side is Side.BUY:
        balances[base] = balances.get(base, _ZERO) + filled
        balances[quote] = balances.get(quote, _ZERO) - order.quote_quantity
    else:
        balances[base] = balances.get(base, _ZERO) - filled
        balances[quote] = balances.get(quote, _ZERO) + order.quote_quantity
    for fill in order.fills:
        if fill.commission and fill.commission_asset:
            asset = fill.commission_asset
            balances[asset] = balances.get(asset, _ZERO) - fill.commission


def _read(reads: Reads | None, lane: Lane) -> dict[str, Instrument] | None:
    """The lane's table as this event's first follower read it, when that read is done
    (no coroutine per follower for what the others only look up); else None."""
    done = reads.get(lane) if reads is not None else None
    return done.result() if done is not None and done.done() else None


async def instruments(
    client: AsyncClient, lane: Lane, reads: Reads | None
) -> dict[str, Instrument]:
    """The venue's instruments, read by the first follower of each lane in this event and
    handed to the others (the read copies the whole table: once per lane, not once per
    follower). A failed first read leaves each follower to read, and fail, on its own."""
    if reads is None:
        return await client.instruments()
    waiting = reads.get(lane)
    if waiting is not None:
        table = await waiting
        return table if table is not None else await client.instruments()
    done: asyncio.Future[dict[str, Instrument] | None] = asyncio.get_running_loop().create_future()
    reads[lane] = done
    table = None
    try:
        table = await client.instruments()
        return table
    finally:
        done.set_result(table)  # None when it failed (or was cancelled): the others read
