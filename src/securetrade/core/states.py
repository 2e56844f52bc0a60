"""The order's life as a state machine: its states, and the transitions written once.

Every store (:class:`~.journal.Journal`, :class:`~.redis_journal.RedisJournal`) applies a
write only if it is one of the transitions below *from the row as it is now*, checked in
the same statement or script that writes (compare-and-set). A writer whose view is stale
(another process took the intent over, sent a newer attempt, or settled it) gets ``False``
back, re-reads, and decides again; nobody overwrites what they did not see.

::

    (claim fused with attempt 1) ─────────► SENDING (attempt 1: see below)
    (claim) ──► PENDING ──persist──► SENDING ──persist──► SENDING (next attempt)
                  │                    │ │ └─────────────► REJECTED (the venue said no)
                  │ stopped before     │ └─ venue silent ─► UNKNOWN ──persist──► SENDING
                  │ sending            │  proven absent
                  ▼                    ▼
               NOT_PLACED ◄────────────┘ ──persist──► SENDING (the same key sends again)

    any state but a different final one ──venue holds it──► ACKED / FILLED / CANCELED / EXPIRED

Two kinds of transition:

- **guarded** (to SENDING, NOT_PLACED, UNKNOWN, REJECTED): the writer states the
  ``(state, attempts)`` it read, and the store applies the write only if the row still has
  exactly that. These are the conclusions drawn from one attempt ("attempt 2 was never
  executed"); they are true only of the attempt the writer saw.
- **evidence** (to ACKED, FILLED, CANCELED, EXPIRED): the venue holds the order with our
  client order id. That is true whoever sent it, so it is written from any earlier state,
  but never moves an order back (a final state only takes itself again, with newer fills).

Recovery, rejoin and takeover use these same transitions; none has a write of its own.

A claim creates a row only where there is none (or a tombstone refuses it), so it needs
no guard. A new key admitted at once by the policy and the rate limiter is claimed
*fused*: the row is created as attempt 1, SENDING, with its deadline, in one durable
write; that is the row a claim followed by the transition to SENDING leaves, so nothing
downstream tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._checks import Choice

__all__ = [
    "CONFIRMED",
    "FINAL",
    "GUARDED",
    "PURGEABLE",
    "SENDABLE",
    "SOURCES",
    "UNFINISHED",
    "Intent",
    "IntentState",
    "View",
    "may_write",
]


class IntentState(str, Choice):
    """Where one intent (one idempotency key) stands."""

    PENDING = "PENDING"  # claimed; nothing sent yet
    SENDING = "SENDING"  # attempt N recorded, so it may be on its way; only the venue knows
    ACKED = "ACKED"  # the venue holds the order (open)
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"  # the venue said no to the latest attempt; replayed to later callers
    NOT_PLACED = "NOT_PLACED"  # proven never executed: the same key may send it again
    UNKNOWN = "UNKNOWN"  # could not be resolved yet: needs another look, or a person

    def __str__(self) -> str:
        return self.value


_S = IntentState

#: States whose outcome the venue has not confirmed: recovery looks at these.
UNFINISHED = (_S.PENDING, _S.SENDING, _S.UNKNOWN)

#: States that can no longer change: after the retention period such a row becomes a
#: tombstone. ACKED is not among them (the order still works at the venue).
PURGEABLE = (_S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED, _S.NOT_PLACED)

#: What the venue proved: it holds the order.
CONFIRMED = (_S.ACKED, _S.FILLED, _S.CANCELED, _S.EXPIRED)

#: Final at the venue: an order never leaves these.
FINAL = (_S.FILLED, _S.CANCELED, _S.EXPIRED)

#: States a new attempt may start from (the attempt count is compared as well).
SENDABLE = (_S.PENDING, _S.SENDING, _S.UNKNOWN, _S.NOT_PLACED)

#: Targets whose writer must name the ``(state, attempts)`` it read.
GUARDED = frozenset({_S.SENDING, _S.NOT_PLACED, _S.UNKNOWN, _S.REJECTED})

_BEFORE_CONFIRMED = (_S.PENDING, _S.SENDING, _S.UNKNOWN, _S.NOT_PLACED, _S.REJECTED, _S.ACKED)

#: For each target state, the states a row may be in for the write to apply.
SOURCES: dict[IntentState, tuple[IntentState, ...]] = {
    _S.PENDING: (),  # only a claim creates it (a fused claim creates SENDING, attempt 1)
    _S.SENDING: SENDABLE,
    _S.NOT_PLACED: (_S.PENDING, _S.SENDING, _S.UNKNOWN),
    _S.UNKNOWN: (_S.SENDING, _S.UNKNOWN),
    _S.REJECTED: (_S.SENDING,),
    _S.ACKED: _BEFORE_CONFIRMED,
    _S.FILLED: (*_BEFORE_CONFIRMED, _S.FILLED),
    _S.CANCELED: (*_BEFORE_CONFIRMED, _S.CANCELED),
    _S.EXPIRED: (*_BEFORE_CONFIRMED, _S.EXPIRED),
}


@dataclass(frozen=True, slots=True)
class View:
    """The part of a row a guarded writer saw: its state and its attempt count."""

    state: IntentState
    attempts: int


def may_write(current: IntentState, current_attempts: int, target: IntentState,
              expect: View | None) -> bool:  # fmt: skip
    """The transition rule itself, for stores that check in Python (and for tests):
    whether a write of ``target`` applies to a row now at ``(current, current_attempts)``.
    The SQL and Lua checks in the stores say the same thing."""
    if current not in SOURCES[target]:
        return False
    if target in GUARDED:
        return (
            expect is not None and expect.state is current and expect.attempts == current_attempts
        )
    return True


@dataclass(frozen=True, slots=True)
class Intent:
    """One journal row: an order the caller asked for, and what is known of its fate."""

    idempotency_key: str
    client_order_id: str
    account: str
    symbol: str
    fingerprint: str
    state: IntentState
    attempts: int  # sends journaled so far; every send bumps it first (compare-and-set)
    deadline_ms: int  # venue time after which the last attempt can no longer execute
    owner: str  # the process that last claimed it (see process_token)
    order_json: str | None
    error: str | None
    created_at: float
    updated_at: float

    @property
    def view(self) -> View:
        """What a guarded write from this reading must find still in place."""
        return View(self.state, self.attempts)
