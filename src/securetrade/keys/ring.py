"""``KeyRing``: the key a client signs with, its successor, and an overlap window.

Rotating a venue key without downtime takes three steps: create the new key at the venue,
switch the bots to it, and delete the old key once nothing uses it any more. The ring
models exactly that. ``current`` signs new requests; ``next`` (staged, optionally with a
switch time) takes over on :meth:`KeyRing.promote` or when its time comes; the replaced
key stays known as ``previous`` until its overlap window ends, so the operator knows when
deleting it at the venue is safe. :meth:`KeyRing.revoke` drops a compromised key at once.

A replacement can never be wider than the key it replaces (see :meth:`ApiKey.covers`):
rotation is not a way around least privilege.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import NoReturn

from .._checks import function, text
from ..errors import InvalidRequest, ScopeError
from .apikey import ApiKey, Environment

__all__ = ["DEFAULT_OVERLAP", "KeyRing"]

#: How long a replaced key is kept (and should stay valid at the venue) after a switch.
DEFAULT_OVERLAP = timedelta(minutes=10)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class KeyRing:
    """The keys of one venue account, in rotation order. Thread-safe.

    ``account`` names the account for the idempotency layer: client order ids derive from
    it, so it must stay the same across rotations (it defaults to the first key's id).
    ``clock`` returns an aware datetime; tests inject one.
    """

    def __init__(
        self,
        current: ApiKey,
        *,
        next: ApiKey | None = None,
        activate_at: datetime | None = None,
        previous: ApiKey | None = None,
        retire_at: datetime | None = None,
        overlap: timedelta = DEFAULT_OVERLAP,
        account: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not isinstance(current, ApiKey):
            raise InvalidRequest("a KeyRing holds ApiKey objects")
        if not isinstance(overlap, timedelta) or overlap < timedelta(0):
            raise InvalidRequest("overlap must be a timedelta, not negative")
        if account is not None:
            text("account", account)
        function("clock", clock)
        self._lock = threading.RLock()
        self._clock = clock
        self._current = current
        self._next: ApiKey | None = None
        self._activate_at: datetime | None = None
        self._previous: ApiKey | None = None
        self._retire_at: datetime | None = None
        self._revoked: set[str] = set()
        self.overlap = overlap
        self.account = account or current.key_id
        if previous is not None:
            self._check_same_account(previous)
            if previous.key_id == current.key_id:
                raise InvalidRequest("previous and current are the same key")
            self._previous = previous
            self._retire_at = _aware(retire_at, "retire_at") if retire_at is not None else None
        if next is not None:
            self.stage(next, activate_at=activate_at)

    @classmethod
    def of(cls, key: ApiKey | KeyRing) -> KeyRing:
        """``key`` itself when it is a ring, else a ring holding just ``key``."""
        return key if isinstance(key, KeyRing) else cls(key)

    # --- what a client reads ---------------------------------------------------------------

    @property
    def venue(self) -> str:
        """The venue of the ring's keys; a ring never mixes venues."""
        return self._current.venue

    @property
    def environment(self) -> Environment:
        """The environment of the current key; a ring never mixes them."""
        return self._current.environment

    def active(self) -> ApiKey:
        """The key to sign a new request with; switches to ``next`` once its time has come.

        Raises :class:`ScopeError` when the current key was revoked and nothing replaced it.
        """
        with self._lock:
            if (
                self._next is not None
                and self._activate_at is not None
                and self._clock() >= self._activate_at
            ):
                self._promote(self._activate_at)
            if self._current.key_id in self._revoked:
                raise ScopeError(
                    f"key {self._current.key_id_hint} was revoked and no next key is staged"
                )
            return self._current

    def superseded(self, key_id: str) -> bool:
        """True when a request signed with ``key_id`` would now be signed with another key."""
        text("key_id", key_id)
        with self._lock:
            try:
                return self.active().key_id != key_id
            except ScopeError:
                return False  # nothing to switch to: resending cannot help

    @property
    def current(self) -> ApiKey:
        """The key that signs new requests now."""
        with self._lock:
            return self._current

    @property
    def next(self) -> ApiKey | None:
        """The staged key that will take over at :attr:`activate_at`, if any."""
        with self._lock:
            return self._next

    @property
    def activate_at(self) -> datetime | None:
        """When the staged key takes over by itself (``None``: nothing staged, or it waits
        for :meth:`promote`)."""
        with self._lock:
            return self._activate_at

    @property
    def previous(self) -> ApiKey | None:
        """The replaced key while its overlap lasts; ``None`` once it is over."""
        with self._lock:
            if self._retire_at is not None and self._clock() >= self._retire_at:
                self._previous, self._retire_at = None, None
            return self._previous

    @property
    def retire_at(self) -> datetime | None:
        """When the replaced key's overlap ends, after which deleting it at the venue is
        safe (``None`` when no key was replaced)."""
        with self._lock:
            return self._retire_at if self.previous is not None else None

    def find(self, key_id: str) -> ApiKey | None:
        """The key with this id, if the ring still holds it (revoked keys are gone)."""
        text("key_id", key_id)
        with self._lock:
            for key in (self._current, self._next, self.previous):
                if key is not None and key.key_id == key_id and key_id not in self._revoked:
                    return key
            return None

    # --- rotation --------------------------------------------------------------------------

    def stage(self, key: ApiKey, *, activate_at: datetime | None = None) -> None:
        """Make ``key`` the next key; it takes over at ``activate_at`` or on :meth:`promote`."""
        with self._lock:
            self._check_same_account(key)
            if key.key_id in self._revoked:
                raise ScopeError(f"key {key.key_id_hint} was revoked; it cannot come back")
            if key.key_id == self._current.key_id:
                raise InvalidRequest("the next key must differ from the current key")
            if not self._current.covers(key):
                raise ScopeError(
                    f"key {key.key_id_hint} can do more than the key it would replace; a "
                    "rotation may keep or narrow scopes and limits, never widen them"
                )
            self._next = key
            self._activate_at = None if activate_at is None else _aware(activate_at, "activate_at")

    def promote(self) -> ApiKey:
        """Switch to the staged key now; the old one stays as ``previous`` for the overlap."""
        with self._lock:
            if self._next is None:
                raise InvalidRequest("no next key is staged; call stage() or rotate() first")
            self._promote(self._clock())
            return self._current

    def rotate(self, key: ApiKey) -> ApiKey:
        """Stage ``key`` and switch to it at once. Requests already signed are unaffected."""
        with self._lock:
            self.stage(key)
            return self.promote()

    def retire(self, key_id: str) -> None:
        """End the overlap of the replaced key early: the ring forgets it."""
        text("key_id", key_id)
        with self._lock:
            if self._previous is not None and self._previous.key_id == key_id:
                self._previous, self._retire_at = None, None
                return
            if self._current.key_id == key_id:
                raise InvalidRequest("the current key cannot be retired; rotate to another first")
            if self._next is not None and self._next.key_id == key_id:
                self._next, self._activate_at = None, None
                return
            raise InvalidRequest("no such key in this ring")

    def revoke(self, key_id: str) -> None:
        """Stop using ``key_id`` at once (it leaked). A staged next key takes over if the
        current one is revoked; otherwise the ring refuses to sign until one is staged."""
        text("key_id", key_id)
        with self._lock:
            self._revoked.add(key_id)
            if self._previous is not None and self._previous.key_id == key_id:
                self._previous, self._retire_at = None, None
            if self._next is not None and self._next.key_id == key_id:
                self._next, self._activate_at = None, None
            if self._current.key_id == key_id and self._next is not None:
                self._promote(self._clock())
                self._previous, self._retire_at = None, None  # no overlap for a leaked key

    def is_revoked(self, key_id: str) -> bool:
        """Whether ``key_id`` was revoked in this ring: it signs nothing again."""
        text("key_id", key_id)
        with self._lock:
            return key_id in self._revoked

    # --- internals -------------------------------------------------------------------------

    def _promote(self, moment: datetime) -> None:
        assert self._next is not None
        self._previous, self._retire_at = self._current, moment + self.overlap
        self._current, self._next, self._activate_at = self._next, None, None

    def _check_same_account(self, key: ApiKey) -> None:
        if not isinstance(key, ApiKey):
            raise InvalidRequest("a KeyRing holds ApiKey objects")
        if key.venue != self._current.venue or key.environment is not self._current.environment:
            raise InvalidRequest(
                "every key of a ring belongs to one venue and environment "
                f"({self._current.venue}/{self._current.environment.value})"
            )

    def __repr__(self) -> str:
        if "account" not in vars(self):  # still being built (a traceback shows this)
            return "KeyRing(<incomplete>)"
        with self._lock:
            parts = [f"current={self._current.key_id_hint!r}"]
            if self._next is not None:
                parts.append(f"next={self._next.key_id_hint!r}")
            if self._previous is not None:
                parts.append(f"previous={self._previous.key_id_hint!r}")
            return f"KeyRing({self.venue}, {', '.join(parts)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a KeyRing cannot be pickled; store keys with the encrypted keystore")


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidRequest(f"{name} must be timezone-aware")
    return moment
