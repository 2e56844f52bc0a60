"""What a flow asks its driver to do. The core never performs I/O itself.

A flow is a generator that yields effects: :class:`Wait` (sleep), :class:`Send` (write a
request, hand back the response), the journal writes and reads of the order path
(:class:`Claim`, :class:`Persist`, :class:`Settle`, :class:`Lookup`), :class:`Renew` (an
OAuth access token refreshed before a request), and :class:`Call`, any other call on a
shared resource (the rate limiter, the journal off the order path, the
audit trail, the policy and its kill switch). A driver performs the effect and sends the
result back in, or throws the failure into the flow.

The driver, not the core, decides how: the sync ``Client`` makes every call where it
stands; the ``AsyncClient`` groups the order path's journal writes into shared commits
(:mod:`.group_commit`) and makes a :class:`Call` in a worker thread when its resource
waits on a file or the network (a SQLite or Redis limiter, a Redis journal, an audit trail
on disk), so that its event loop never blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .._checks import Choice
from ..models import Fill
from ..transport.base import HttpRequest
from ..venues.base import Op
from .states import Intent, IntentState, View
from .store import JournalStore

__all__ = [
    "Call",
    "Claim",
    "Effect",
    "Flow",
    "JournalCall",
    "Lookup",
    "Persist",
    "Renew",
    "Renewable",
    "Resource",
    "Send",
    "Settle",
    "Wait",
]

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


class Renewable(Protocol):
    """A request credential that must be renewed now and then (an OAuth token source)."""

    def renew(self) -> None: ...

    async def arenew(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Renew:
    """Effect: renew ``source`` before the next request (its token expires within the
    margin, or a venue refused it). The sync driver calls ``source.renew()``; the async
    driver awaits ``source.arenew()``, which refreshes in a worker thread, one refresh per
    credential in flight, so the event loop never waits on the authorization server."""

    source: Renewable


class Resource(Choice):
    """Whose call a :class:`Call` is: the driver knows which of them wait on I/O."""

    LIMITER = "limiter"
    JOURNAL = "journal"
    AUDIT = "audit"
    POLICY = "policy"  # its kill switch may be shared through SQLite or Redis

    # Members are singletons compared by identity: hashed so too, in C (Enum's own hash is
    # a Python call, made several times per order by ``resource in inline``).
    __hash__ = object.__hash__


class Call:
    """Effect: ``function(*args)`` on ``resource``; answered with its result.

    A plain slotted class (not a dataclass): the limiter is called through one on every
    request, so it is built as cheaply as Python allows.
    """

    __slots__ = ("args", "function", "resource")

    def __init__(self, resource: Resource, function: Callable[..., Any], *args: Any) -> None:
        self.resource = resource
        self.function = function
        self.args = args

    def run(self) -> Any:
        """Call the function with its arguments (the driver does this, on a thread or inline)."""
        return self.function(*self.args)


@dataclass(frozen=True, slots=True)
class Claim:
    """Effect: record the intent as PENDING (:meth:`Journal.begin`); the driver answers
    ``(intent, created)``.

    The journal writes every order makes (claim, attempt, outcome) are effects of their
    own so that the async driver can group them: the writes of all orders ready in one
    event-loop turn share one commit, and their attempts one fsync (group commit).

    With ``deadline_ms`` the claim is fused with attempt 1: a new row is created SENDING,
    and, like a :class:`Persist`, is answered only once durable.
    """

    idempotency_key: str
    client_order_id: str
    account: str
    symbol: str
    fingerprint: str
    deadline_ms: int | None = None

    @property
    def durable(self) -> bool:
        """Whether a created row is an attempt, to be on disk before it is answered."""
        return self.deadline_ms is not None

    def apply(self, journal: JournalStore) -> tuple[Intent, bool]:
        if self.deadline_ms is None:
            return journal.begin(
                self.idempotency_key,
                self.client_order_id,
                self.account,
                self.symbol,
                self.fingerprint,
            )
        return journal.begin(
            self.idempotency_key,
            self.client_order_id,
            self.account,
            self.symbol,
            self.fingerprint,
            sending_deadline_ms=self.deadline_ms,
        )


@dataclass(frozen=True, slots=True)
class Persist:
    """Effect: durably record that the next attempt of an order is about to go out (the
    transition to SENDING, from ``seen`` only); answered True, or False when the row is no
    longer what the flow saw (somebody else claimed, sent or settled it)."""

    client_order_id: str
    seen: View
    deadline_ms: int

    def apply(self, journal: JournalStore) -> bool:
        return journal.sending(self.client_order_id, self.seen, self.deadline_ms)


@dataclass(frozen=True, slots=True)
class Settle:
    """Effect: a transition of an order (:meth:`Journal.settle`); answered with whether it
    applied. ``expect`` is the row the flow saw: required for a guarded target (see
    :mod:`.states`)."""

    client_order_id: str
    state: IntentState
    order_json: str | None = None
    error: str | None = None
    fills: tuple[Fill, ...] = ()  # the executions the answer carries
    expect: View | None = None

    def apply(self, journal: JournalStore) -> bool:
        return journal.settle(
            self.client_order_id,
            self.state,
            expect=self.expect,
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


JournalCall = Claim | Persist | Settle | Lookup
Effect = Wait | Send | Call | Renew | JournalCall
Flow = Generator[Effect, Any, T]
