"""Replay stores: remember each message id until its message is stale anyway.

Memory is bounded by design: an entry lives only until its message's timestamp leaves the
verifier's window, so a store holds at most (message rate x window) entries. The memory
store also has a hard cap and refuses new messages when it is reached (it never forgets an
unexpired id early, which would re-open the replay it exists to close).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import threading
from typing import TYPE_CHECKING, Protocol

from .. import _fork
from .._checks import LARGEST, is_text, text, whole
from .._redis import redis_client
from .._sqlite import connect, retry_locked, wal
from ..errors import InboundRejected

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayStore",
    "SqliteReplayStore",
    "replay_token",
]


def replay_token(key_id: str, nonce: str) -> str:
    """The id a store records for one message: the same for the verifier and the gateway,
    so both can share a store, and of fixed length whatever the sender sent."""
    return hashlib.sha256(f"{key_id}\x00{nonce}".encode("ascii")).hexdigest()[:32]


class ReplayStore(Protocol):
    """Atomically records message ids; says whether one was already seen."""

    def remember(self, token: str, expires_ms: int, now_ms: int) -> bool:
        """Record ``token`` until ``expires_ms``. False if it is already recorded and live."""
        ...


def _check_remember(token: object, expires_ms: object, now_ms: object) -> None:
    """``remember``'s arguments, named when one is wrong (a store would otherwise compare
    or hash it: a TypeError, or a garbage row)."""
    text("token", token)
    whole("expires_ms", expires_ms, 0)
    whole("now_ms", now_ms, 0)


class MemoryReplayStore:
    """One process: a dict plus an expiry heap, under a lock, at most ``max_entries`` ids."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = whole("max_entries", max_entries, 1)
        self._expiry: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, token: str, expires_ms: int, now_ms: int) -> bool:
        if not (is_text(token) and type(expires_ms) is int and type(now_ms) is int) or not (
            0 <= expires_ms <= LARGEST and 0 <= now_ms <= LARGEST
        ):
            _check_remember(token, expires_ms, now_ms)
        with self._lock:
            heap, expiry = self._heap, self._expiry
            while heap and heap[0][0] <= now_ms:
                stamp, old = heapq.heappop(heap)
                if expiry.get(old) == stamp:
                    del expiry[old]
            live = expiry.get(token)
            if live is not None and live > now_ms:
                return False
            if len(expiry) >= self.max_entries:
                raise InboundRejected(
                    "replay store is full: refusing new messages until ids expire",
                    reason="capacity",
                )
            expiry[token] = expires_ms
            heapq.heappush(heap, (expires_ms, token))
            return True


class SqliteReplayStore:
    """Processes on one host: a SQLite table in WAL mode, expired rows purged as it goes.

    A row survives a killed process; ``synchronous=NORMAL`` may lose the last few rows on
    power loss, within one window.
    """

    _PURGE_EVERY = 1000

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = path
        self._db = connect(path, what="replay store", timeout=10.0)
        wal(self._db, timeout=10.0)

        def schema() -> None:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS st_replay "
                "(token TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS st_replay_expiry ON st_replay (expires_ms)"
            )

        retry_locked(self._db, schema, 10.0)
        self._lock = threading.Lock()
        self._writes = 0
        self._reopen = False  # a forked child's: open its own connection at the next call
        _fork.watch(self)

    def _after_fork(self) -> None:
        """In a forked child (a pre-forking server's worker, see :mod:`securetrade._fork`):
        like the gateway's SQLite store, it opens its own connection to the same file at
        its next call (the parent's is parked, never used or closed here), so every worker
        refuses an id any other has seen; and takes a lock of its own."""
        self._lock = threading.Lock()
        if os.fspath(self._path) != ":memory:":  # one in memory is this process's copy
            _fork.park(self._db)
            self._reopen = True

    def _reconnect(self) -> None:
        """A forked child's own connection, under the lock (the file has its table)."""
        self._db = connect(self._path, what="replay store", timeout=10.0)
        wal(self._db, timeout=10.0)
        self._reopen = False

    def remember(self, token: str, expires_ms: int, now_ms: int) -> bool:
        if not (is_text(token) and type(expires_ms) is int and type(now_ms) is int) or not (
            0 <= expires_ms <= LARGEST and 0 <= now_ms <= LARGEST
        ):
            _check_remember(token, expires_ms, now_ms)
        with self._lock:
            if self._reopen:
                self._reconnect()
            # Insert, or take over a row whose message is stale; a live row wins (0 rows).
            cursor = self._db.execute(
                "INSERT INTO st_replay (token, expires_ms) VALUES (?, ?) "
                "ON CONFLICT (token) DO UPDATE SET expires_ms = excluded.expires_ms "
                "WHERE st_replay.expires_ms <= ?",
                (token, expires_ms, now_ms),
            )
            fresh = cursor.rowcount == 1
            self._writes += 1
            if self._writes % self._PURGE_EVERY == 0:
                self._db.execute("DELETE FROM st_replay WHERE expires_ms <= ?", (now_ms,))
            return fresh

    def __len__(self) -> int:
        with self._lock:
            if self._reopen:
                self._reconnect()
            return int(self._db.execute("SELECT count(*) FROM st_replay").fetchone()[0])

    def close(self) -> None:
        """Close the database; remembered ids stay in the file until they expire (in a
        forked child that never used it, nothing: the connection is the parent's)."""
        with self._lock:
            if not self._reopen:
                self._db.close()


class RedisReplayStore:
    """Hosts sharing a Redis: ``SET token NX PX ttl``; Redis expires the ids itself."""

    def __init__(self, client: Redis | str, *, prefix: str = "securetrade:replay:") -> None:
        self._client: Redis = redis_client(client, what="RedisReplayStore")
        self._prefix = prefix

    def remember(self, token: str, expires_ms: int, now_ms: int) -> bool:
        if not (is_text(token) and type(expires_ms) is int and type(now_ms) is int) or not (
            0 <= expires_ms <= LARGEST and 0 <= now_ms <= LARGEST
        ):
            _check_remember(token, expires_ms, now_ms)
        ttl = max(1, expires_ms - now_ms)
        return bool(self._client.set(self._prefix + token, b"1", nx=True, px=ttl))

    def close(self) -> None:
        """Close the Redis connection; remembered ids stay until they expire."""
        self._client.close()
