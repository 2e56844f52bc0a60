"""Client addresses behind trusted proxies, and lock-outs after repeated failures.

``X-Forwarded-For`` is written by whoever sends the request, so it is read only when the
peer that connected to us is one of the configured proxies, and then from the right: each
hop a trusted proxy appended is skipped, and the first address no trusted proxy vouches
for is the client. A client that sends its own ``X-Forwarded-For: 1.2.3.4`` through the
proxy gets ``1.2.3.4`` to the left of its real address, which is the one taken.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable

from .._checks import number, seconds, text, whole
from .._checks import seconds as duration
from ..errors import InvalidRequest
from .gate import Strikes

__all__ = ["Lockout", "TrustedProxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies (CIDR blocks) whose ``X-Forwarded-For`` the gateway believes."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        if isinstance(networks, str):
            raise InvalidRequest("trusted proxies must be a list of CIDR strings")
        try:
            self.networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)
        except (TypeError, ValueError):
            raise InvalidRequest("trusted proxies must be CIDR blocks like 10.0.0.0/8") from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is one of the trusted proxies (a malformed address is not)."""
        if not isinstance(address, str):
            raise InvalidRequest("address must be text (an IP address)")
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded: list[bytes]) -> str | None:
        """The client's address given the connecting ``peer`` and every X-Forwarded-For
        (a list of the header's values, as bytes)."""
        if type(forwarded) not in (list, tuple) or not all(
            type(line) in (bytes, bytearray) for line in forwarded
        ):
            raise InvalidRequest("forwarded must be a list of X-Forwarded-For values as bytes")
        if peer is None or not self.networks or not forwarded or not self.trusts(peer):
            return peer
        hops = [h.strip() for line in forwarded for h in line.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if not self.trusts(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage where the client should be: judge the proxy
        return peer


class Lockout:
    """Counts failures per name (``key:<id>``, ``addr:<ip>``); ``threshold`` failures
    within ``window`` seconds lock the name for ``duration`` seconds.

    The counts and locks that decide live in the gateway's shared store (every process of
    a deployment counts towards one lock-out and honours it); this object holds the
    settings and this process's copy of the locks it has learnt of, bounded to
    ``max_names`` names. Checking that copy is one dict read, so a locked-out flood is
    refused before any signature or store work.

    Failures are counted here first and written to the store ``batch`` at a time (default
    a quarter of ``threshold``), or at once when this process alone has seen ``threshold``
    of a name: a flood of bad signatures costs one store write per ``batch`` failures,
    not one each. With ``P`` processes, a name is locked after at most
    ``threshold + P * (batch - 1)`` failures within ``window``; one process locks at
    exactly ``threshold``. While the store is down, this process's own count decides.

    ``hold`` is how long a locked-out caller waits for its 429: a sleeping task costs the
    gateway no CPU, while a client that floods over keep-alive connections is slowed to
    one request per ``hold`` per connection, and so leaves the CPU to valid clients.
    """

    def __init__(
        self,
        *,
        threshold: int = 20,
        window: float = 60.0,
        duration: float = 300.0,
        max_names: int = 100_000,
        hold: float = 0.02,
        batch: int | None = None,
    ) -> None:
        whole("lockout threshold", threshold, 1)
        seconds("lockout window", window, above=0)
        seconds("lockout duration", duration, above=0)
        whole("lockout max_names", max_names, 1)
        seconds("lockout hold", hold, least=0, most=10)
        if batch is None:
            batch = max(1, threshold // 4)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= threshold:
            raise InvalidRequest("lockout batch must be a whole number from 1 to threshold")
        self.batch = batch
        self.hold = hold
        self.threshold = threshold
        self.window = window
        self.duration = duration
        self.max_names = max_names
        self._lock = threading.Lock()
        self._locked: dict[str, float] = {}  # name -> until
        # name -> (failures within the window here, the first of them, how many unwritten)
        self._failures: dict[str, tuple[int, float, int]] = {}

    def locked_for(self, name: str, now: float) -> float:
        """Seconds left of ``name``'s lock-out, else 0."""
        _name_and_time(name, now)
        until = self._locked.get(name)
        if until is None:
            return 0.0
        if until <= now:
            with self._lock:
                if self._locked.get(name, now + 1) <= now:
                    del self._locked[name]
            return 0.0
        return until - now

    @property
    def strikes(self) -> Strikes:
        """The settings as the shared store takes them (milliseconds)."""
        return Strikes(
            self.threshold, round(self.window * 1000), max(1, round(self.duration * 1000))
        )

    def lock(self, name: str, now: float, seconds: float) -> None:
        """Remember here that the shared store has ``name`` locked for ``seconds``."""
        _name_and_time(name, now)
        duration("seconds", seconds, least=0)
        with self._lock:
            self._locked[name] = now + seconds
            self._trim(self._locked, now)

    def pending(self, name: str, now: float) -> tuple[int, bool]:
        """Count one failure of ``name`` here. Returns how many of its failures to write to
        the shared store now (0: keep counting here), and whether this process alone has
        seen ``threshold`` of them within the window (what decides while the store is down).
        """
        _name_and_time(name, now)
        with self._lock:
            count, first, unwritten = self._failures.get(name, (0, now, 0))
            if now - first > self.window:  # the window is over: these no longer count
                count, first, unwritten = 0, now, 0
            count += 1
            unwritten += 1
            reached = count >= self.threshold
            due = unwritten if unwritten >= self.batch or reached else 0
            if reached:
                self._failures.pop(name, None)
            else:
                self._failures[name] = (count, first, unwritten - due)
                if len(self._failures) > self.max_names:
                    stale = [n for n, (_, t, _) in self._failures.items() if now - t > self.window]
                    for old in stale:
                        del self._failures[old]
                    while len(self._failures) > self.max_names:
                        del self._failures[next(iter(self._failures))]
            return due, reached

    def _trim(self, table: dict[str, float], now: float) -> None:
        if len(table) > self.max_names:
            for name in [n for n, until in table.items() if until <= now]:
                del table[name]
            while len(table) > self.max_names:
                del table[next(iter(table))]


def _name_and_time(name: object, now: object) -> None:
    """A lock-out name (``addr:<ip>``, ``key:<id>``) and the clock reading it is judged at."""
    text("name", name)
    number("now", now)
