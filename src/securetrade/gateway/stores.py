"""Where the gateway keeps what its processes share: message ids seen, and rate windows.

Both come from the layers below, unchanged: the replay stores of :mod:`securetrade.verify`
(SQLite ``INSERT ... ON CONFLICT`` judged by its row count, Redis ``SET NX PX``: one atomic
step, never a read then a write) and the rate-limit backends of
:mod:`securetrade.ratelimit` (one atomic script or transaction per admission). What this
module adds is the boundary: any failure of the store becomes :class:`StoreUnavailable`,
which the middleware answers with 503, so a request the gateway could not check is never
served (it fails closed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SecureTradeError
from ..ratelimit import Backend, Draw, MemoryBackend
from ..verify.replay import MemoryReplayStore, ReplayStore

__all__ = ["SharedState", "StoreUnavailable"]


class StoreUnavailable(SecureTradeError):
    """The gateway's shared store did not answer: the request was refused (503), unchecked.

    Bring the store back (the gateway recovers by itself on the next request), or start
    the gateway with ``fail_open=True`` to check against this process's memory meanwhile.
    """


class SharedState:
    """A replay store and a rate-limit backend, with one failure boundary.

    Make one with :meth:`memory` (this process), :meth:`sqlite` (processes on one host) or
    :meth:`redis` (hosts sharing a Redis server).
    """

    def __init__(
        self,
        replay: ReplayStore,
        limits: Backend,
        *,
        shared: bool,
        close: Callable[[], None] = lambda: None,
        name: str = "custom",
    ) -> None:
        self.replay = replay
        self.limits = limits
        self.shared = shared
        self.name = name
        self._close = close

    @classmethod
    def memory(cls, *, max_entries: int = 1_000_000) -> SharedState:
        """This process only: for tests, one-process apps, and the opt-in fallback."""
        return cls(MemoryReplayStore(max_entries), MemoryBackend(), shared=False, name="memory")

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str]) -> SharedState:
        """One SQLite file (WAL mode) shared by every process on this host that opens it."""
        from ..ratelimit.sqlite import SQLiteBackend
        from ..verify.replay import SqliteReplayStore

        replay = SqliteReplayStore(path)
        limits = SQLiteBackend(os.fspath(path), timeout=2.0)

        def close() -> None:
            replay.close()
            limits.close()

        return cls(replay, limits, shared=True, close=close, name="sqlite")

    @classmethod
    def redis(
        cls,
        url: str | Any,
        *,
        prefix: str = "securetrade:gateway:",
        timeout: float = 1.0,
    ) -> SharedState:
        """A Redis server (URL or ``redis.Redis``) shared by every host of the gateway.

        ``timeout`` bounds each Redis call: a store that hangs is treated as down.
        """
        from redis import Redis

        from ..ratelimit.redis import RedisBackend
        from ..verify.replay import RedisReplayStore

        if isinstance(url, str):
            client: Any = Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            owned = True
        else:
            client, owned = url, False
        replay = RedisReplayStore(client, prefix=prefix + "nonce:")
        limits = RedisBackend(client)

        def close() -> None:
            if owned:
                client.close()

        return cls(replay, limits, shared=True, close=close, name="redis")

    # --- the failure boundary: nothing but StoreUnavailable leaves these ---------------------

    def remember(self, token: str, expires_ms: int, now_ms: int) -> bool:
        """Record a message id; False if it was already recorded and is still live."""
        try:
            return self.replay.remember(token, expires_ms, now_ms)
        except SecureTradeError:
            raise  # a full memory store says so itself (InboundRejected "capacity")
        except Exception:
            raise StoreUnavailable(f"the {self.name} replay store did not answer") from None

    def compile(self, pause_key: str, draws: Sequence[Draw]) -> Any:
        """Compile the per-key limit draws once, for the shared rate-limit backend."""
        return self.limits.compile(pause_key, draws, flight=1.0)

    def acquire(self, plan: Any) -> float:
        """0.0 if every window of ``plan`` had room (now spent), else the wait in seconds."""
        try:
            return self.limits.acquire(plan)
        except Exception:
            raise StoreUnavailable(f"the {self.name} rate-limit store did not answer") from None

    def used(self, bucket: str, seconds: float) -> int:
        """Units spent in a window now; raises ``StoreUnavailable`` (the gateway fails closed) if
        the store does not answer."""
        try:
            return self.limits.used([(bucket, seconds)])[0]
        except Exception:
            raise StoreUnavailable(f"the {self.name} rate-limit store did not answer") from None

    def close(self) -> None:
        """Close the store's connections."""
        self._close()

    def __repr__(self) -> str:
        return f"SharedState({self.name})"
