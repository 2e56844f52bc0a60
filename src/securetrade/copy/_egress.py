"""The engine's ways out to each venue: one lane per egress IP, or one for the venue.

A venue counts request weight per source IP (Binance: 6,000 a minute), so a platform
that copies to many followers sends from several addresses of its host. A venue whose
connect options list ``egress_ips`` gets one lane per address: a connection pool whose
sockets leave from it, and a rate limiter whose IP windows and pause are that address's
alone. The lanes' limiters share one backend, so a venue account's order windows stay one
window whichever lane its followers use. A follower is placed on a lane once: the lane
its ``egress_ip`` names, else the lane of its venue account's other followers (an
account's keys may be allowlisted for one IP), else the lane with fewest followers.

A venue without ``egress_ips`` has one lane, unbound, as before: the host's address.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..client import AsyncClient
from ..core import JournalStore
from ..errors import InvalidRequest
from ..keys import KeyRing
from ..ratelimit import MemoryBackend, RateLimiter
from ..record import AuditLog
from ..transport.aio import AsyncHttpTransport
from .model import Follower

__all__ = ["Lanes"]

#: A lane: the venue's name and the egress IP (None: the host's default address).
Lane = tuple[str, "str | None"]


class Lanes:
    """Per venue, its lanes, their limiters and lead clients, and which follower uses which."""

    def __init__(
        self,
        connect: Mapping[str, Mapping[str, Any]],
        limiters: Mapping[str, RateLimiter | Mapping[str, RateLimiter]] | None,
    ) -> None:
        if not isinstance(connect, Mapping) or not connect:
            raise InvalidRequest("connect maps each venue name to its AsyncClient options")
        self.options: dict[str, dict[str, Any]] = {}
        self.egress_name: dict[str, str] = {}  # venue -> the per_egress bound of its one lane
        self.ips: dict[str, tuple[str, ...]] = {}
        for venue, given in connect.items():
            if not isinstance(given, Mapping):
                raise InvalidRequest(f"connect[{venue!r}] must be a dict of AsyncClient options")
            options = dict(given)
            ips = options.pop("egress_ips", None)
            name = options.pop("egress", None)
            if ips is not None:
                if name is not None:
                    raise InvalidRequest(
                        f"connect[{venue!r}]: give 'egress' (a NAT's name) or 'egress_ips' "
                        "(addresses of this host), not both"
                    )
                self.ips[venue] = _addresses(venue, ips)
            self.egress_name[venue] = str(name if name is not None else venue)
            self.options[venue] = options
        self.limiters: dict[Lane, RateLimiter] = {}
        if limiters is not None and not isinstance(limiters, Mapping):
            raise InvalidRequest(
                "limiters must map each venue to a RateLimiter (or {ip: RateLimiter}), or be None"
            )
        for venue, limiter in (limiters or {}).items():
            self._take_limiters(venue, limiter)
        self.leads: dict[Lane, AsyncClient] = {}  # the client each lane shares through
        self._of_account: dict[tuple[str, str], str] = {}  # (venue, account) -> its IP
        self._load: Counter[Lane] = Counter()
        self.of: dict[str, Lane] = {}  # follower id -> its lane

    def _take_limiters(self, venue: str, limiter: object) -> None:
        ips = self.ips.get(venue)
        if isinstance(limiter, RateLimiter):
            if ips is not None:
                raise InvalidRequest(
                    f"{venue!r} sends from {len(ips)} egress IPs: give limiters[{venue!r}] "
                    "as {ip: RateLimiter(ip=ip, backend=one_backend)}, one per address"
                )
            self.limiters[(venue, None)] = limiter
            return
        if ips is None or not isinstance(limiter, Mapping):
            raise InvalidRequest(f"limiters[{venue!r}] must be a RateLimiter")
        for ip in ips:
            one = limiter.get(ip)
            if not isinstance(one, RateLimiter):
                raise InvalidRequest(f"limiters[{venue!r}] has no RateLimiter for {ip}")
            self.limiters[(venue, ip)] = one

    def egress(self, lane: Lane) -> str:
        """The per_egress bound's name for ``lane``: its IP, or the venue's egress name."""
        venue, ip = lane
        return ip if ip is not None else self.egress_name[venue]

    def assign(self, follower: Follower) -> Lane:
        """The lane ``follower`` would use (nothing is recorded until :meth:`seat`)."""
        venue = follower.venue
        if venue not in self.options:
            raise InvalidRequest(f"no connect options for {venue!r}; pass connect={{...}}")
        ips = self.ips.get(venue)
        pinned = follower.egress_ip
        if ips is None:
            if pinned is not None:
                raise InvalidRequest(
                    f"follower {follower.id!r} names egress_ip {pinned}, but connect"
                    f"[{venue!r}] lists no egress_ips"
                )
            return (venue, None)
        if pinned is not None:
            if pinned not in ips:
                raise InvalidRequest(
                    f"follower {follower.id!r} names egress_ip {pinned}, not one of "
                    f"connect[{venue!r}]['egress_ips'] {list(ips)}"
                )
            return (venue, pinned)
        ip = self._of_account.get((venue, follower.account))
        if ip is None:
            ip = min(ips, key=lambda one: self._load[(venue, one)])  # the first on ties
        return (venue, ip)

    def seat(self, follower: Follower, lane: Lane) -> None:
        """Record that ``follower`` uses ``lane``."""
        self.of[follower.id] = lane
        self._load[lane] += 1
        venue, ip = lane
        if ip is not None:
            self._of_account.setdefault((venue, follower.account), ip)

    def unseat(self, follower_id: str) -> None:
        """Forget a follower (offboarded)."""
        lane = self.of.pop(follower_id, None)
        if lane is not None:
            self._load[lane] -= 1

    def limiter(self, lane: Lane) -> RateLimiter:
        """The lane's limiter; made on first use (the lanes of a venue share a backend)."""
        limiter = self.limiters.get(lane)
        if limiter is None:
            venue, ip = lane
            if ip is None:
                limiter = RateLimiter()
            else:
                siblings = [one for (v, _), one in self.limiters.items() if v == venue]
                backend = siblings[0].backend if siblings else MemoryBackend()
                limiter = RateLimiter(backend=backend, ip=ip)
            self.limiters[lane] = limiter
        return limiter

    def client(
        self, follower: Follower, lane: Lane, journal: JournalStore, audit: AuditLog
    ) -> AsyncClient:
        """A client for ``follower`` on ``lane``: the lane's first one opens its pool (bound
        to the lane's IP), the others send through it and share its market data."""
        venue, ip = lane
        lead = self.leads.get(lane)
        shared: dict[str, Any] = {"journal": journal, "limiter": self.limiter(lane), "audit": audit}
        key = KeyRing.of(follower.key)
        options = {**self.options[venue], **shared}
        if lead is not None:
            options["transport"] = lead._transport  # the egress: one connection pool
            client = AsyncClient(key, policy=follower.policy, **options)
            client.core.share_market(lead.core)
            return client
        if ip is None:
            client = AsyncClient(key, policy=follower.policy, **options)
        else:
            client = _BoundClient(key, policy=follower.policy, local_address=ip, **options)
            transport = client._transport
            if not isinstance(transport, AsyncHttpTransport) or transport.local_address != ip:
                raise InvalidRequest(
                    f"{venue!r} cannot send from chosen egress IPs (it brings its own HTTP "
                    "stack, or a transport was given): leave out egress_ips"
                )
        self.leads[lane] = client
        return client

    async def aclose(self) -> None:
        """Close every lane's connection pool."""
        for client in self.leads.values():
            await client.aclose()


class _BoundClient(AsyncClient):
    """An ``AsyncClient`` whose connections leave from one address of this host."""

    def __init__(self, *args: Any, local_address: str, **options: Any) -> None:
        self._local_address = local_address
        super().__init__(*args, **options)


def _addresses(venue: str, given: object) -> tuple[str, ...]:
    """``egress_ips`` checked: a non-empty list of distinct IP address literals."""
    if isinstance(given, str) or not isinstance(given, (list, tuple)) or not given:
        raise InvalidRequest(
            f"connect[{venue!r}]['egress_ips'] is a list of this host's addresses, "
            "e.g. ['203.0.113.7', '203.0.113.8']"
        )
    found = []
    for value in given:
        try:
            found.append(str(ipaddress.ip_address(value)))
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"connect[{venue!r}]['egress_ips']: {value!r} is not an IP address"
            ) from None
    if len(set(found)) != len(found):
        raise InvalidRequest(f"connect[{venue!r}]['egress_ips'] lists an address twice")
    return tuple(found)
