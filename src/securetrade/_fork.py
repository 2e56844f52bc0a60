"""What an object built before ``os.fork()`` does in the child (a bot's worker per account,
multiprocessing's fork start method): it refuses to be used, before anything is sent or
written, with :class:`~securetrade.errors.InheritedAcrossFork`.

Its TLS connections, SQLite handles and locks are the parent's. Two processes writing on
one TLS session break its framing, and an answer could be read by the process that did
not ask (for an order, a lost or misattributed outcome); SQLite says a connection must not
cross a fork (its locks are not inherited, and the WAL index is shared memory); a lock a
parent's thread held at the fork is held for ever in the child. So a child builds its own.

A call pays an int compare at most: the child bumps :data:`generation` as it starts (a
client compares the one it was built in, once per call; no ``os.getpid()``, which is a
system call each time), and each store registered with :func:`watch` gets its
``_after_fork()`` called there. A SQLite store swaps the lock its every method takes first
for one that refuses, and parks its connection here, never closed in the child (closing
one could roll back into the WAL index the parent is using); the file nonce source opens
descriptors of its own instead, the Redis event stream refuses, and the inbound stores a
pre-forking server builds in its master (the gateway's SQLite gate, the verifier's SQLite
replay store) park the parent's connection and open their own at their next call.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

from .errors import InheritedAcrossFork

__all__ = ["Refusing", "RefusingLock", "disown", "generation", "park", "refused", "watch"]

#: How many forks deep this process is: 0 in the process that imported securetrade, one
#: more in each child ``os.fork()`` makes. Objects keep the one they were built in.
generation = 0


class _Store(Protocol):
    def _after_fork(self) -> None: ...


_STORES: weakref.WeakSet[Any] = weakref.WeakSet()
_PARKED: list[object] = []  # the parent's connections, kept open (and unused) in the child


def watch(store: _Store) -> None:
    """Call ``store._after_fork()`` in every child forked while ``store`` lives."""
    _STORES.add(store)


def park(*resources: object) -> None:
    """Keep the parent's ``resources`` referenced in the child, so that no finalizer closes
    them (a SQLite connection's close could write to the file the parent is using)."""
    _PARKED.extend(resource for resource in resources if resource is not None)


def disown(store: Any, what: str) -> None:
    """A SQLite store's ``_after_fork``: it is marked ``_inherited`` (its ``close`` then does
    nothing), its connection ``_db`` parked, and its lock ``_lock``, which every method
    takes first, swapped for a :class:`RefusingLock`."""
    store._inherited = True
    park(store._db)
    store._lock = RefusingLock(what)


def refused(what: str) -> InheritedAcrossFork:
    return InheritedAcrossFork(
        f"this {what} was built in the parent process before os.fork(); its connections, "
        f"files and locks are the parent's, so the child may not use it. Build the {what} "
        "in the worker, after the fork (multiprocessing: inside the worker's function, or "
        "the 'spawn' or 'forkserver' start method); nothing was sent or written"
    )


class RefusingLock:
    """Stands in the child for the lock every method of a store takes first: taking it
    raises :class:`InheritedAcrossFork` (the parent's lock might be held by a thread that
    does not exist here, and what it guards is the parent's)."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        raise refused(self._what)

    def release(self) -> None:
        raise RuntimeError("release of a lock never taken")

    def __enter__(self) -> bool:
        raise refused(self._what)

    def __exit__(self, *exc: object) -> None:
        return None


class Refusing:
    """Stands in the child for a store's client of the parent's connections (a
    ``redis.asyncio`` client, whose pool does not reopen after a fork): any use raises
    :class:`InheritedAcrossFork`."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise refused(self._what)

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise refused(self._what)


def _in_child() -> None:
    global generation
    generation += 1
    failure: BaseException | None = None
    for store in list(_STORES):  # every one, even if one fails (its error is then raised)
        try:
            store._after_fork()
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


if hasattr(os, "register_at_fork"):  # POSIX: Windows has no fork
    os.register_at_fork(after_in_child=_in_child)
