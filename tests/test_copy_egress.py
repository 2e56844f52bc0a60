"""Several egress IPs in one copy engine, over TLS to the simulator on loopback.

Followers are spread over 127.0.0.2 and 127.0.0.3 (Linux routes all of 127/8 to the
loopback device). The venue counts request weight per source IP, and its arrival log says
which IP each request came from: that log, not the engine, is the oracle.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing
from securetrade.errors import InvalidRequest
from securetrade.keys import Secret
from securetrade.sim import HttpsServer, SimLimits, Simulator

SECRET = Secret(b"copy-egress-test-secret-000001")
IPS = ["127.0.0.2", "127.0.0.3"]
CASH = {"USDT": Decimal(10_000)}


def _can_bind(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


pytestmark = pytest.mark.skipif(
    not all(_can_bind(ip) for ip in IPS), reason="127.0.0.2 and .3 are not local addresses here"
)


def _connect(server: HttpsServer, **extra: Any) -> dict[str, dict[str, Any]]:
    options = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
    return {"binance": {**options, **extra}}


def _follower(fid: str, key: Any, **over: Any) -> Follower:
    options: dict[str, Any] = {"slippage_bps": Decimal(300), "ttl_ms": 600_000, **over}
    return Follower(fid, key, Sizing("multiplier", "0.1"), **options)


def _followers(sim: Simulator, n: int, prefix: str = "f") -> list[Follower]:
    return [_follower(f"{prefix}{i}", sim.create_key(balances=CASH)) for i in range(n)]


def _event(sim: Simulator, event_id: str) -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", "BUY", "0.01", price, int(time.time() * 1000))


def _busiest(events: Sequence[tuple[float, int]], seconds: float) -> int:
    """The most weight any window (t - seconds, t] of ``events`` holds."""
    ordered = sorted(events)
    best = total = first = 0
    for stamp, units in ordered:
        total += units
        while ordered[first][0] <= stamp - seconds:
            total -= ordered[first][1]
            first += 1
        best = max(best, total)
    return best


def _per_ip(sim: Simulator) -> dict[str, list[tuple[float, int]]]:
    """The venue's arrival log, (time, weight) per source IP."""
    stats = sim.dialect.stats
    found: dict[str, list[tuple[float, int]]] = {}
    for client, arrival in zip(stats.arrival_clients, stats.arrival_weights, strict=True):
        found.setdefault(client, []).append(arrival)
    return found


def _orders_per_account(sim: Simulator) -> Counter[str]:
    with sim.market.lock:
        return Counter(o.account for o in sim.market.orders.values())


def test_each_egress_ip_keeps_its_own_weight_budget_at_the_venue() -> None:
    """160 followers over two IPs, each IP's budget 500 weight a second: every follower is
    copied once, each IP's arrivals hold at most its limit in any window while the fan-out
    pressed on it for several windows, and nothing left from the host's own address."""
    limits = SimLimits(weight=500, weight_seconds=1, orders=50, orders_seconds=1)
    with Simulator(limits=limits) as venue:
        served = venue.serve_fast()
        followers = _followers(venue, 160)
        shared_key = venue.create_key(balances=CASH)  # two strategies on one venue account
        twins = [_follower(f"twin{i}", shared_key) for i in range(2)]
        pinned = _follower("pinned", venue.create_key(balances=CASH), egress_ip="127.0.0.3")
        everyone = [*followers, *twins, pinned]

        async def run() -> Any:
            async with CopyEngine(secret=SECRET, connect=_connect(served, egress_ips=IPS),
                                  journal=":memory:") as engine:  # fmt: skip
                for follower in everyone:
                    engine.add(follower)
                return await engine.copy(_event(venue, "open-1")), engine.egress

        report, egress = asyncio.run(run())

    assert report.counts == {"placed": len(everyone)}
    assert egress["pinned"] == "127.0.0.3"
    assert egress["twin0"] == egress["twin1"]  # one account, one IP
    assert sorted(Counter(egress.values()).values()) == [81, 82]  # spread evenly
    per_ip = _per_ip(venue)
    assert set(per_ip) == set(IPS)  # every request left from a chosen egress
    for ip, arrivals in per_ip.items():
        assert sum(w for _, w in arrivals) > 3 * limits.weight, ip  # pressed on the budget
        busiest = _busiest(arrivals, limits.weight_seconds)
        assert busiest <= limits.weight, f"{ip}: {busiest} weight in one window"
    stats = venue.dialect.stats
    assert (stats.status_429, stats.status_418) == (0, 0)
    by_account = _orders_per_account(venue)
    assert by_account[venue.account_of(shared_key.key_id)] == 2
    assert all(by_account[venue.account_of(f.key.key_id)] == 1 for f in followers)


def test_a_ban_on_one_egress_ip_does_not_hold_up_the_followers_on_the_other() -> None:
    """127.0.0.2 is answered 429, then 418 with a 60 s Retry-After: its followers stop
    (their copies stay unresolved, to resume after the pause) while every follower on
    127.0.0.3 is placed in the same pass, its limiter never paused."""
    with Simulator(limits=SimLimits(weight=10**7, orders=10**6)) as venue:
        served = venue.serve_fast()
        followers = _followers(venue, 60)
        order_path = "/api/v3/order"
        venue.faults.inject("rate_limit", method="POST", path=order_path, times=2, seconds=1,
                            client="127.0.0.2")  # fmt: skip
        venue.faults.inject("ban", method="POST", path=order_path, times=1, seconds=60,
                            client="127.0.0.2")  # fmt: skip

        async def run() -> Any:
            async with CopyEngine(secret=SECRET, connect=_connect(served, egress_ips=IPS),
                                  journal=":memory:") as engine:  # fmt: skip
                for follower in followers:
                    engine.add(follower)
                report = await engine.copy(_event(venue, "open-storm"))
                paused = dict.fromkeys(IPS, 0.0)
                for fid, ip in engine.egress.items():
                    paused[ip] = max(paused[ip], engine.limiter(fid).paused_for)
                again = await engine.copy(_event(venue, "open-storm"))  # a resume: still paused
                return report, again, paused, engine.egress

        report, again, paused, egress = asyncio.run(run())
        stats = venue.dialect.stats
        per_account = _orders_per_account(venue)

    status = {o.follower_id: (o.status, o.reason) for o in report.outcomes}
    on = {ip: [f for f in followers if egress[f.id] == ip] for ip in IPS}
    assert all(status[f.id][0] == "placed" for f in on["127.0.0.3"])
    banned = {status[f.id] for f in on["127.0.0.2"]}
    assert banned - {("placed", "FILLED")}  # some were stopped...
    assert banned <= {  # ...and stay open for a resume (a 418 answered, or not sent)
        ("placed", "FILLED"),
        ("unresolved", "IpBanned"),
        ("unresolved", "RateLimited"),
    }
    assert paused["127.0.0.3"] == 0.0
    assert paused["127.0.0.2"] > 30  # the ban is still on, and the other IP is done
    assert (stats.status_429, stats.status_418) == (2, 1)  # the injected ones only
    assert not again.complete
    assert all(per_account[venue.account_of(f.key.key_id)] <= 1 for f in followers)


def test_egress_settings_are_checked_before_anything_is_sent() -> None:
    """Bad egress settings are refused when the engine is made or a follower added."""
    with Simulator() as venue:
        served = venue.serve_fast()
        key = venue.create_key(balances=CASH)
        for bad in ("127.0.0.2", [], ["not-an-ip"], ["127.0.0.2", "127.0.0.2"]):
            with pytest.raises(InvalidRequest, match="egress_ips"):
                CopyEngine(
                    secret=SECRET, connect=_connect(served, egress_ips=bad), journal=":memory:"
                )
        with pytest.raises(InvalidRequest, match="not both"):
            CopyEngine(secret=SECRET, connect=_connect(served, egress_ips=IPS, egress="nat"),
                       journal=":memory:")  # fmt: skip
        with pytest.raises(InvalidRequest, match="egress_ip"):
            Follower("x", key, Sizing("multiplier", "1"), egress_ip="nowhere")
        engine = CopyEngine(secret=SECRET, connect=_connect(served, egress_ips=IPS),
                            journal=":memory:")  # fmt: skip
        with pytest.raises(InvalidRequest, match="not one of"):
            engine.add(Follower("x", key, Sizing("multiplier", "1"), egress_ip="127.0.0.9"))
        plain = CopyEngine(secret=SECRET, connect=_connect(served), journal=":memory:")
        with pytest.raises(InvalidRequest, match="lists no egress_ips"):
            plain.add(Follower("x", key, Sizing("multiplier", "1"), egress_ip="127.0.0.2"))
        assert venue.dialect.stats.requests == 0


def test_a_transport_sends_from_its_local_address_or_says_why_not() -> None:
    """``local_address`` is checked when the transport is made; an address this host does
    not have fails the connection as not sent, naming the address to fix."""
    from securetrade.client_base import _ssl_context
    from securetrade.transport.aio import AsyncHttpTransport
    from securetrade.transport.base import HttpRequest, TransportFailure

    with Simulator() as venue:
        served = venue.serve_fast()
        with pytest.raises(InvalidRequest, match="local_address"):
            AsyncHttpTransport(served.base_url, None, local_address="nope")

        context = _ssl_context(served.pins, None, served.ca_pem, False)

        async def send(address: str) -> Any:
            transport = AsyncHttpTransport(served.base_url, context, local_address=address)
            try:
                return await transport.send(HttpRequest("GET", "/api/v3/time"))
            finally:
                await transport.aclose()

        with pytest.raises(TransportFailure, match=r"cannot send from 192\.0\.2\.1") as failed:
            asyncio.run(send("192.0.2.1"))  # TEST-NET-1: never an address of this host
        assert failed.value.sent is False
        assert venue.dialect.stats.requests == 0
        assert asyncio.run(send("127.0.0.3")).status == 200
        assert venue.dialect.stats.arrival_clients == ["127.0.0.3"]


def test_a_bound_that_starts_to_bind_mid_flight_counts_those_already_inside() -> None:
    """A bound takes no semaphore while its members fit; when a member joins with two
    inside a bound of two, the third waits for one of them to leave, never runs as a
    third at once."""
    from securetrade.copy._seat import Bound

    async def run() -> list[str]:
        bound, seen = Bound(2), []
        for _ in range(2):
            bound.join()
        assert bound.slots is None
        release = asyncio.Event()

        async def member(name: str) -> None:
            async with bound:
                seen.append(f"{name} in ({bound.in_flight})")
                await release.wait()
            seen.append(f"{name} out")

        first = [asyncio.create_task(member(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        bound.join()  # a third member, while two are inside
        third = asyncio.create_task(member("c"))
        await asyncio.sleep(0.01)
        assert [entry for entry in seen if entry.startswith("c")] == []  # it waits
        assert bound.in_flight == 2
        release.set()
        await asyncio.gather(*first, third)
        assert bound.peak == 2
        return seen

    seen = asyncio.run(run())
    entered = next(i for i, entry in enumerate(seen) if entry.startswith("c in"))
    assert entered > min(seen.index("a out"), seen.index("b out"))
