"""What every order journal shares, whichever store holds it (SQLite on one host, Redis
across hosts): the intent's deterministic client order id, who owns an intent, the retention
bounds, the :class:`JournalStore` protocol the order flows are written against, the
helpers both stores use to write amounts and refuse a purged key, and the checks both
apply to their arguments at entry."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from .._checks import LARGEST, instance, is_text, number, plain_decimal, text, whole
from .._checks import seconds as duration
from ..errors import IdempotencyKeyExpired, InvalidRequest
from ..models import Fill
from .states import Intent, IntentState, View

__all__ = [
    "MAX_PERIOD_S",
    "RETENTION_S",
    "TOMBSTONE_S",
    "JournalStore",
    "check_attempts",
    "check_begin",
    "check_fills",
    "check_id",
    "check_ids",
    "check_lease_seconds",
    "check_settle",
    "derive_client_order_id",
    "is_ours",
    "owner_is_gone",
    "process_token",
    "retention_period",
]


#: Defaults of the retention policy: finished rows are kept a week (Stripe keeps keys at
#: least a day), then their tombstones 90 days.
RETENTION_S = 7 * 86400.0
TOMBSTONE_S = 90 * 86400.0
#: The longest retention or tombstone period taken: a century. A longer one would carry a
#: timestamp past what a float (and SQLite's REAL, Redis's integer score) can hold.
MAX_PERIOD_S = 100 * 365 * 86400.0


def retention_period(name: str, value: object) -> float:
    """A retention or tombstone period in seconds, above 0 and at most a century."""
    return number(f"{name} (seconds)", value, above=0, most=MAX_PERIOD_S)


def derive_client_order_id(venue: str, account: str, idempotency_key: str) -> str:
    """The same intent gets the same id on any host: 32 characters of ``[0-9a-z]``.

    32 lowercase alphanumerics fit every supported venue's grammar (OKX allows at most
    32, alphanumeric only); the ``st`` prefix marks orders this SDK placed.
    """
    if not (  # is_text() inlined: this runs for every order
        type(venue) is str
        and type(account) is str
        and type(idempotency_key) is str
        and venue.isprintable()
        and account.isprintable()
        and idempotency_key.isprintable()
        and venue
        and account
        and idempotency_key
    ):
        # Refused, not formatted: None or a list would hash as its text ("None") and
        # give a stable id to an intent nobody named.
        for name, value in (("venue", venue), ("account", account)):
            text(name, value)
        text("idempotency_key", idempotency_key)
    digest = hashlib.sha256(f"{venue}\x00{account}\x00{idempotency_key}".encode()).hexdigest()
    return "st" + digest[:30]


_OURS = re.compile(r"st[0-9a-f]{30}").fullmatch


def is_ours(client_order_id: str) -> bool:
    """True when the id has the shape :func:`derive_client_order_id` gives."""
    if type(client_order_id) is not str:  # a regex on a non-str is a TypeError
        text("client_order_id", client_order_id)
    return _OURS(client_order_id) is not None


def process_token() -> str:
    """Who owns an intent: host, pid and a per-process random part (pids get reused).

    A child made by ``os.fork()`` (multiprocessing's fork start method: a worker per
    account) gets a token of its own as it starts, so that neither process takes the
    other's intents or recovery lease for its own."""
    return _TOKEN


def _minted() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


_TOKEN = _minted()


def _new_token_after_fork() -> None:
    """In a forked child: a token of its own (the parent's would make every intent and
    lease of the parent "ours": taken over as abandoned, renewed as held)."""
    global _TOKEN
    _TOKEN = _minted()


if hasattr(os, "register_at_fork"):  # POSIX: Windows has no fork
    os.register_at_fork(after_in_child=_new_token_after_fork)


def owner_is_gone(owner: str) -> bool:
    """True when ``owner`` is certainly dead: a process of this host that no longer runs.

    An owner on another host, or a live pid, counts as possibly alive; callers then fall
    back to the request deadline, after which the owner's attempt cannot execute anyway.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if owner == _TOKEN or host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # our pid, another token: a process that used to have our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JournalStore(Protocol):
    """What the core needs of a journal: SQLite (:class:`Journal`, one host) or Redis
    (:class:`~securetrade.core.redis_journal.RedisJournal`, several hosts).

    ``blocking``: whether its calls wait on the network, so that the async client makes
    them in a worker thread."""

    blocking: bool

    def begin(
        self,
        idempotency_key: str,
        client_order_id: str,
        account: str,
        symbol: str,
        fingerprint: str,
        *,
        sending_deadline_ms: int | None = None,
    ) -> tuple[Intent, bool]:
        """Record an intent for ``idempotency_key`` unless one exists: ``(intent, created)``; an
        existing intent comes back with ``created`` False. With ``sending_deadline_ms`` the
        new intent is created as attempt 1 already SENDING (claim and attempt fused in one
        durable write: see :meth:`Journal.begin`)."""

    def get(self, client_order_id: str) -> Intent | None:
        """The intent recorded under ``client_order_id``, or ``None``."""

    def sending(self, client_order_id: str, seen: View, deadline_ms: int) -> bool:
        """Mark an attempt as about to be sent, only if the intent is still as ``seen``: False
        means another owner took it."""

    def sending_many(self, attempts: Sequence[tuple[str, View, int]]) -> list[bool]:
        """:meth:`sending` for several attempts in one commit; one answer each."""

    def settle(
        self,
        client_order_id: str,
        state: IntentState,
        *,
        expect: View | None = None,
        order_json: str | None = None,
        error: str | None = None,
        fills: Sequence[Fill] = (),
    ) -> bool:
        """Move an intent to ``state`` (with its order, error and fills), only if it is still as
        ``expect``: False means it moved on."""

    def unfinished(self, account: str) -> list[Intent]:
        """The account's intents that have no final state yet (what recovery works on)."""

    def unresolved(self, account: str | None = None) -> list[Intent]:
        """Intents whose outcome the venue has not confirmed (sent or unknown), for one account or
        all."""

    def known(self, client_order_ids: list[str]) -> set[str]:
        """Which of ``client_order_ids`` have an entry (recovery's orphan check)."""

    def lease(self, account: str, seconds: float) -> bool:
        """Take the account's recovery lease for ``seconds``: True if this process holds it now."""

    def release(self, account: str) -> None:
        """Give up the account's recovery lease if this process holds it."""

    def record_fills(self, client_order_id: str, fills: Iterable[Fill]) -> int:
        """Record ``fills`` for ``client_order_id``, once per trade id; how many were new."""

    def fills(self, client_order_id: str) -> list[Fill]:
        """The fills recorded for ``client_order_id``, once per trade id."""

    def purge(self) -> int:
        """Apply the retention policy (old finished intents become tombstones); how many went."""

    def tombstone(self, client_order_id: str) -> float | None:
        """When the purged ``client_order_id`` stops blocking its key (epoch seconds), or ``None``
        if it left no tombstone."""

    def close(self) -> None:
        """Release the store's connections; what was committed stays."""


_wire = plain_decimal  # a fill's amounts as the journal keeps them


def _expired(client_order_id: str, until: float) -> IdempotencyKeyExpired:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
    return IdempotencyKeyExpired(
        f"the intent of this idempotency key ({client_order_id}) was purged from the journal "
        f"after its retention period; the key is refused until {stamp}, and nothing was "
        "sent. Use a new key for a new order",
        client_order_id=client_order_id,
    )


# --- arguments, checked at each journal's entry -------------------------------------------------
# The order path passes its own values, which pass the first test of each check; the
# named checks run only for a value that fails, to say what is wrong (the hot path pays one
# type test per argument). A journal is public API: no sqlite3 or Redis error of a wrong
# argument may reach its caller.


def check_begin(
    idempotency_key: object,
    client_order_id: object,
    account: object,
    symbol: object,
    fingerprint: object,
    sending_deadline_ms: object,
) -> None:
    """A new intent's ids (printable text) and its fused attempt's deadline (or None)."""
    if not (
        is_text(idempotency_key)
        and is_text(client_order_id)
        and is_text(account)
        and is_text(symbol)
        and is_text(fingerprint)
    ):
        for name, value in (
            ("idempotency_key", idempotency_key),
            ("client_order_id", client_order_id),
            ("account", account),
            ("symbol", symbol),
            ("fingerprint", fingerprint),
        ):
            text(name, value)
    if sending_deadline_ms is not None and (
        type(sending_deadline_ms) is not int or not 0 <= sending_deadline_ms <= LARGEST
    ):
        whole("sending_deadline_ms", sending_deadline_ms, 0)


def check_settle(
    client_order_id: object, state: object, expect: object, order_json: object, error: object
) -> None:
    """A transition's id, target state, expected view and texts."""
    if not (
        type(client_order_id) is str
        and type(state) is IntentState
        and (expect is None or type(expect) is View)
        and (order_json is None or type(order_json) is str)
        and (error is None or type(error) is str)
    ):
        check_id("client_order_id", client_order_id)
        instance("state", state, IntentState, optional=False)
        instance("expect", expect, View)
        instance("order_json", order_json, str)
        instance("error", error, str)


def check_attempts(attempts: object) -> list[tuple[str, View, int]]:
    """``sending_many``'s ``(client_order_id, seen, deadline_ms)`` triples."""
    if type(attempts) is list and all(
        type(a) is tuple
        and len(a) == 3
        and type(a[0]) is str
        and type(a[1]) is View
        and type(a[2]) is int
        and 0 <= a[2] <= LARGEST
        for a in attempts
    ):
        return attempts  # the group commit's own list: nothing to copy
    if isinstance(attempts, (str, bytes)) or not isinstance(attempts, Iterable):
        raise InvalidRequest("attempts must be a list of (client_order_id, seen, deadline_ms)")
    checked = []
    for attempt in attempts:
        if not isinstance(attempt, tuple) or len(attempt) != 3:
            raise InvalidRequest("each attempt must be a (client_order_id, seen, deadline_ms)")
        client_order_id, seen, deadline_ms = attempt
        check_id("client_order_id", client_order_id)
        instance("seen", seen, View, optional=False)
        whole("deadline_ms", deadline_ms, 0)
        checked.append((client_order_id, seen, deadline_ms))
    return checked


def check_fills(fills: object) -> Sequence[Fill]:
    """The executions an answer carries: a list of :class:`~securetrade.models.Fill`."""
    if isinstance(fills, (tuple, list)) and all(type(f) is Fill for f in fills):
        return fills
    if isinstance(fills, (str, bytes)) or not isinstance(fills, Iterable):
        raise InvalidRequest("fills must be a list of Fill")
    return [instance("each fill", f, Fill, optional=False) for f in fills]


def check_ids(client_order_ids: object) -> list[str]:
    """A list of client order ids to look up."""
    if isinstance(client_order_ids, (str, bytes)) or not isinstance(client_order_ids, Iterable):
        raise InvalidRequest("client_order_ids must be a list of client order ids")
    return [check_id("each of client_order_ids", c) for c in client_order_ids]


def check_lease_seconds(seconds: object) -> float:
    """How long a recovery lease is taken for."""
    return duration("seconds", seconds, above=0)


def check_id(name: str, value: object) -> str:
    """An id or account to look up or settle by: text (any text: ids the venue gave, even
    empty ones, are looked up as they are; only ``begin`` writes new ones)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text (a str), not {type(value).__name__}")
    return value
