"""The kill switch: one flag that stops every new order, shared as far as it needs to reach.

Its state lives in a store: in memory (one process), a SQLite file (every process on the
host) or Redis (every host), the same backends as the rest of the shared state. Each check
reads the store, so an engagement anywhere stops the next order everywhere. A store that
cannot be read counts as engaged: when in doubt, nothing is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import _fork
from .._checks import function, instance, safe_repr, text
from .._redis import redis_client
from .._sqlite import connect, retry_locked, wal
from ..errors import InvalidRequest

if TYPE_CHECKING:
    from ..mfa import Confirmation, Confirmer

__all__ = [
    "KillState",
    "KillSwitch",
    "MemorySwitchStore",
    "RedisSwitchStore",
    "SqliteSwitchStore",
    "SwitchStore",
]

log = logging.getLogger("securetrade.policy")


@dataclass(frozen=True, slots=True)
class KillState:
    """Whether the switch is engaged, why, since when, and whether open orders go too."""

    engaged: bool
    reason: str | None = None
    at: float | None = None
    cancel_open: bool = False


RELEASED = KillState(False)


class SwitchStore(Protocol):
    """Where a kill switch keeps its state. ``read`` returns None when released."""

    def read(self, name: str) -> KillState | None: ...

    def write(self, name: str, state: KillState | None) -> None: ...


def _switch(name: object, state: object = None) -> None:
    """A store's arguments: the switch's name (text) and a KillState or None (release)."""
    text("name (the kill switch's name)", name)
    instance("state", state, KillState)


class MemorySwitchStore:
    """This process only."""

    def __init__(self) -> None:
        self._states: dict[str, KillState] = {}
        self._lock = threading.Lock()

    def read(self, name: str) -> KillState | None:
        """The switch's state, or ``None`` while released."""
        _switch(name)
        with self._lock:
            return self._states.get(name)

    def write(self, name: str, state: KillState | None) -> None:
        """Engage (a state) or release (``None``) the switch."""
        _switch(name, state)
        with self._lock:
            if state is None:
                self._states.pop(name, None)
            else:
                self._states[name] = state


class SqliteSwitchStore:
    """Every process on this host that opens the same file (WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self._db = connect(path, what="kill switch store", timeout=30.0)
        self.path = str(path)
        self._lock = threading.Lock()
        with self._lock:
            wal(self._db, synchronous="FULL")
            retry_locked(
                self._db,
                lambda: self._db.execute(
                    "CREATE TABLE IF NOT EXISTS kill_switch (name TEXT PRIMARY KEY, "
                    "reason TEXT NOT NULL, at REAL NOT NULL, cancel_open INTEGER NOT NULL)"
                ),
                30.0,
            )
        _fork.watch(self)  # a forked child refuses to use it

    _inherited = False  # set in a child forked while it was open

    def _after_fork(self) -> None:
        """In a child forked while this was open (see :mod:`securetrade._fork`): every call
        raises :class:`~securetrade.errors.InheritedAcrossFork` before touching the file,
        and the parent's SQLite connection is parked, never used or closed."""
        _fork.disown(self, "kill switch store")

    def read(self, name: str) -> KillState | None:
        """The switch's state as every process on this host sees it, or ``None`` while released."""
        _switch(name)
        with self._lock:
            row = self._db.execute(
                "SELECT reason, at, cancel_open FROM kill_switch WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        return KillState(True, str(row[0]), float(row[1]), bool(row[2]))

    def write(self, name: str, state: KillState | None) -> None:
        """Engage (a state) or release (``None``) the switch for every process on this host."""
        _switch(name, state)
        with self._lock:
            if state is None:
                self._db.execute("DELETE FROM kill_switch WHERE name = ?", (name,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO kill_switch (name, reason, at, cancel_open) "
                    "VALUES (?, ?, ?, ?)",
                    (name, state.reason or "", state.at or time.time(), int(state.cancel_open)),
                )

    def close(self) -> None:
        """Close the database; the switch's state stays in the file (in a forked child,
        nothing: the connection is the parent's)."""
        if self._inherited:
            return
        with self._lock:
            self._db.close()


class RedisSwitchStore:
    """Every process on every host that uses the same Redis (``securetrade[redis]``)."""

    def __init__(self, url_or_client: Any, *, prefix: str = "securetrade:killswitch:") -> None:
        self._redis = redis_client(url_or_client, what="the Redis kill switch", socket_timeout=5.0)
        self._prefix = prefix

    def read(self, name: str) -> KillState | None:
        """The switch's state as every host sees it, or ``None`` while released."""
        _switch(name)
        raw = self._redis.get(self._prefix + name)
        if raw is None:
            return None
        data = json.loads(raw)
        return KillState(True, str(data["reason"]), float(data["at"]), bool(data["cancel_open"]))

    def write(self, name: str, state: KillState | None) -> None:
        """Engage (a state) or release (``None``) the switch for every host."""
        _switch(name, state)
        if state is None:
            self._redis.delete(self._prefix + name)
            return
        payload = {"reason": state.reason, "at": state.at, "cancel_open": state.cancel_open}
        self._redis.set(self._prefix + name, json.dumps(payload))

    def close(self) -> None:
        """Close the Redis connection; the switch's state stays."""
        self._redis.close()


class KillSwitch:
    """Blocks every new order and withdrawal while engaged; shareable between clients.

    ``store`` decides how far it reaches (see :meth:`from_url`); ``name`` tells apart the
    switches kept in one store (one per account, say). ``cancel_open=True`` at engagement
    asks the clients that see it to cancel the orders they have open as well.
    """

    def __init__(
        self,
        store: SwitchStore | None = None,
        *,
        name: str = "default",
        confirmer: Confirmer | None = None,
    ) -> None:
        text("a kill switch name", name)
        if confirmer is not None and not callable(getattr(confirmer, "confirm", None)):
            raise InvalidRequest("confirmer must be a securetrade.mfa.Confirmer (or None)")
        self.confirmer = confirmer  # when set, release() needs an operator's one-time code
        for method in ("read", "write"):
            if store is not None and not callable(getattr(store, method, None)):
                raise InvalidRequest("store must be a SwitchStore (read and write), or None")
        self.store: SwitchStore = store or MemorySwitchStore()
        self.name = name
        self._listeners: list[Callable[[KillState], None]] = []

    @classmethod
    def from_url(
        cls, url: str, *, name: str = "default", confirmer: Confirmer | None = None
    ) -> KillSwitch:
        """``memory://``, ``sqlite:///path/to/file`` (or a plain path) or ``redis://...``."""
        text("kill switch url (memory://, sqlite:///path or redis://host)", url)
        if url == "memory://":
            store: SwitchStore = MemorySwitchStore()
        elif url.startswith(("redis://", "rediss://", "unix://")):
            store = RedisSwitchStore(url)
        elif url.startswith("sqlite:///"):
            store = SqliteSwitchStore(url.removeprefix("sqlite:///"))
        elif "://" in url:
            raise InvalidRequest(f"unknown kill switch store {url.split('://')[0]!r}")
        else:
            store = SqliteSwitchStore(url)
        return cls(store, name=name, confirmer=confirmer)

    def state(self) -> KillState:
        """The shared state now. An unreadable store reads as engaged (fail closed)."""
        try:
            return self.store.read(self.name) or RELEASED
        except Exception as exc:  # any backend failure must stop orders, not let them through
            return KillState(True, f"kill switch state unreadable ({type(exc).__name__})")

    @property
    def engaged(self) -> bool:
        """Whether the switch is engaged now (read from its shared store)."""
        return self.state().engaged

    @property
    def reason(self) -> str | None:
        """Why the switch was engaged, or ``None`` while it is released."""
        return self.state().reason

    def engage(self, reason: str, *, cancel_open: bool = False) -> None:
        """Stop new orders everywhere this switch reaches, from the next check on."""
        state = KillState(True, reason, time.time(), cancel_open)
        self.store.write(self.name, state)
        log.critical("kill switch %r engaged: %s", self.name, reason)
        for listener in list(self._listeners):
            listener(state)

    def release(self, *, confirmation: Confirmation | None = None) -> None:
        """Allow orders again. Logged, because it undoes a safety measure; with a
        ``confirmer``, only on an unused code of an enrolled operator (``confirmation``)."""
        if self.confirmer is not None:
            self.confirmer.confirm(confirmation, "kill_switch.release", switch=self.name)
        self.store.write(self.name, None)
        log.warning("kill switch %r released", self.name)

    def on_engage(self, listener: Callable[[KillState], None]) -> None:
        """Call ``listener`` when this process engages the switch (to cancel open orders)."""
        self._listeners.append(function("listener", listener))

    @safe_repr
    def __repr__(self) -> str:
        return f"KillSwitch(name={self.name!r}, store={type(self.store).__name__})"
