"""Where the gateway keeps what its processes share: nonces, rate buckets, lock-outs and the
store's epoch, behind one failure boundary.

Each request is one atomic admission on a :class:`~securetrade.gateway.gate.Gate` (one
SQLite transaction, one Redis script). What this module adds is the boundary: any failure
of the store becomes :class:`StoreUnavailable`, which the middleware answers with 503, so
a request the gateway could not check is never served (it fails closed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._checks import instance, seconds, text, whole
from .._checks import path as checked_path
from .._redis import redis_client
from ..errors import InvalidRequest, SecureTradeError
from .gate import Bucket, Gate, MemoryGate, SqliteGate, Strikes, Verdict

__all__ = ["SharedState", "StoreRolledBack", "StoreUnavailable"]


class StoreUnavailable(SecureTradeError):
    """The gateway's shared store did not answer: the request was refused (503), unchecked.

    Bring the store back (the gateway recovers by itself on the next request), or start
    the gateway with ``fail_open=True`` to check against this process's memory meanwhile.
    """


class StoreRolledBack(StoreUnavailable):
    """The gateway's Redis is behind what this process has seen of it: it was restored
    from an older snapshot, and has forgotten the nonces recorded since. Every request is
    refused (503) until an operator checks the store and calls
    :meth:`SharedState.acknowledge_rollback` (a new epoch then refuses the requests
    signed before it until they are stale, so none of the forgotten ones is served).
    """


class SharedState:
    """A gate (nonces, rate buckets, lock-outs, epoch) with one failure boundary.

    Make one with :meth:`memory` (this process), :meth:`sqlite` (processes on one host) or
    :meth:`redis` (hosts sharing a Redis server).
    """

    def __init__(self, gate: Gate, *, name: str = "custom") -> None:
        if not isinstance(getattr(gate, "shared", None), bool) or not callable(
            getattr(gate, "admit", None)
        ):
            raise InvalidRequest(
                "SharedState needs a gate (see securetrade.gateway.gate.Gate); build one with "
                "SharedState.memory(), .sqlite(path) or .redis(url)"
            )
        self.gate = gate
        self.shared = gate.shared
        self.name = name

    @classmethod
    def memory(cls, *, max_entries: int = 1_000_000) -> SharedState:
        """This process only: for tests, one-process apps, and the opt-in fallback."""
        whole("max_entries", max_entries, 1)
        return cls(MemoryGate(max_entries=max_entries), name="memory")

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str], *, timeout: float = 2.0) -> SharedState:
        """One SQLite file (WAL mode) shared by every process on this host that opens it;
        ``timeout`` bounds the wait for its write lock (then the request gets 503)."""
        checked_path("the gateway's SQLite path", path)
        seconds("timeout", timeout, above=0)
        try:
            gate = SqliteGate(path, timeout=timeout)
        except Exception:
            raise StoreUnavailable(
                f"the gateway's SQLite file {os.fspath(path)!r} did not open: check that its "
                "directory exists and is writable by every gateway process"
            ) from None
        return cls(gate, name="sqlite")

    @classmethod
    def redis(
        cls,
        url: str | Any,
        *,
        prefix: str = "{securetrade:gateway}:",
        timeout: float = 1.0,
        watermark: str | os.PathLike[str] | None = None,
    ) -> SharedState:
        """A Redis server (URL or ``redis.Redis``) shared by every host of the gateway.

        ``timeout`` bounds each Redis call: a store that hangs is treated as down. Keep the
        ``{...}`` hash tag in ``prefix`` on a cluster: one request's keys share a slot.
        ``watermark`` is a file where this process keeps how far it has seen the store
        get, so that a restore from an older snapshot is noticed even across a restart of
        the gateway (see :class:`StoreRolledBack`).
        """
        from .redis_gate import RedisGate

        text("prefix", prefix)
        seconds("timeout", timeout, above=0)
        if watermark is not None:
            checked_path("watermark", watermark)
        client: Any = redis_client(
            url, what="SharedState.redis", socket_timeout=timeout, socket_connect_timeout=timeout
        )
        gate = RedisGate(client, prefix=prefix, owned=isinstance(url, str), watermark=watermark)
        return cls(gate, name="redis")

    # --- the failure boundary: nothing but StoreUnavailable leaves these ---------------------

    def admit(
        self,
        token: str,
        stamp_ms: int,
        expires_ms: int,
        ahead_ms: int,
        locks: Sequence[str],
        buckets: Sequence[Bucket],
        remaining: bool = False,
    ) -> Verdict:
        """One request's lock-outs, epoch, nonce and buckets, in one atomic step."""
        text("token", token)
        for name, value in (("stamp_ms", stamp_ms), ("expires_ms", expires_ms)):
            whole(name, value, 0)
        whole("ahead_ms", ahead_ms, 0)
        _names("locks", locks)
        if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence):
            raise InvalidRequest("buckets must be a list of Bucket")
        for bucket in buckets:
            instance("each bucket", bucket, Bucket, optional=False)
        try:
            verdict = self.gate.admit(
                token, stamp_ms, expires_ms, ahead_ms, locks, buckets, remaining
            )
        except SecureTradeError as full:  # the memory store at max_entries: fail closed
            raise StoreUnavailable(str(full)) from None
        except Exception:
            raise StoreUnavailable(f"the {self.name} gateway store did not answer") from None
        if verdict.outcome == "rolled_back":
            raise StoreRolledBack(
                f"the {self.name} gateway store is behind what this gateway has seen of it "
                "(restored from an older snapshot?): nonces recorded since are lost, so "
                "every request is refused; check the store, then call "
                "SharedState.acknowledge_rollback() to start a new epoch"
            )
        return verdict

    def acknowledge_rollback(self) -> int:
        """Accept a rolled-back store as it is: a new epoch starts now (requests signed
        before it are refused until stale), and every gateway process serves again.
        Returns the new epoch (ms since the Unix epoch)."""
        acknowledge = getattr(self.gate, "acknowledge", None)
        if acknowledge is None:
            raise InvalidRequest(f"the {self.name} gateway store has no rollback to acknowledge")
        try:
            return int(acknowledge())
        except SecureTradeError:
            raise
        except Exception:
            raise StoreUnavailable(f"the {self.name} gateway store did not answer") from None

    def failed(
        self, names: Sequence[str] | Mapping[str, int], strikes: Strikes
    ) -> dict[str, tuple[float, bool]]:
        """Count authentication failures: one against each of ``names``, or ``names[name]``
        against each name of a mapping, in one write (see Gate.failed)."""
        instance("strikes", strikes, Strikes, optional=False)
        if isinstance(names, Mapping):
            counts = dict(names)
            _names("names", list(counts))
            for count in counts.values():
                whole("each failure count", count, 1)
        else:
            counts = dict.fromkeys(_names("names", names), 1)
        try:
            return self.gate.failed(counts, strikes)
        except Exception:
            raise StoreUnavailable(f"the {self.name} gateway store did not answer") from None

    def close(self) -> None:
        """Close the store's connections."""
        self.gate.close()

    def __repr__(self) -> str:
        return f"SharedState({self.name})"


def _names(what: str, names: object) -> list[str]:
    """Lock-out names (``addr:<ip>``, ``key:<id>``): a list of text."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, Mapping)):
        raise InvalidRequest(f"{what} must be a list of lock-out names (addr:<ip>, key:<id>)")
    return [text(f"each of {what}", name) for name in names]
