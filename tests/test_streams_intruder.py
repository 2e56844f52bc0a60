"""Compromise detection on the live stream: an order or withdrawal that no process sharing
the journal made is reported within one event, and the kill switch shared with a bot in
another process is engaged before that bot's next order goes out."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient
from securetrade.policy import KillSwitch
from securetrade.policy.anomaly import AnomalyMonitor, UnknownActivityDetector
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.ws import Intruder, SimWebSockets
from securetrade.streams import OrderUpdate, UnknownActivity, WithdrawalEvent
from stream_helpers import FAST, WAIT, resting, tls, until

HERE = Path(__file__).parent


@pytest.fixture
def venue(sim: Simulator) -> tuple[HttpsServer, SimWebSockets]:
    server = sim.serve()
    return server, sim.serve_ws(server)


async def _watch(
    client: AsyncClient, ws: SimWebSockets, events: list[Any], **kwargs: Any
) -> asyncio.Task[None]:
    stream = client.watch_orders(stream_url=ws.user_url, options=FAST, **kwargs)

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    task = asyncio.create_task(consume())
    await until(lambda: client._stream_hub.user is not None and client._stream_hub.user.healthy)
    return task


def test_intruder_order_is_reported_within_one_event_and_own_orders_are_not(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    intruder = Intruder(sim, sim.account_of(key.key_id))

    async def main() -> list[Any]:
        events: list[Any] = []
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            task = await _watch(client, ws, events)
            mine = await client.place_order(resting())
            await until(lambda: any(isinstance(e, OrderUpdate) for e in events))
            foreign = intruder.place("BTCUSDT", "BUY", Decimal("0.001"), Decimal("31000"))
            await until(lambda: any(isinstance(e, UnknownActivity) for e in events))
            task.cancel()
            events.append(("ids", mine.order_id, str(foreign.order_id)))
        return events

    events = asyncio.run(main())
    _, mine, foreign = events.pop()
    unknown = [e for e in events if isinstance(e, UnknownActivity)]
    assert [u.order_id for u in unknown] == [foreign], events
    assert unknown[0].kind == "order"
    # within one event: the alert comes before (not after) the foreign order's own update
    first_foreign = next(i for i, e in enumerate(events) if getattr(e, "order_id", None) == foreign)
    assert isinstance(events[first_foreign], UnknownActivity), events
    assert all(e.ours for e in events if isinstance(e, OrderUpdate) and e.order_id == mine)


def test_intruder_withdrawal_engages_the_kill_switch_by_default(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    intruder = Intruder(sim, sim.account_of(key.key_id))

    async def main() -> tuple[list[Any], bool, bool]:
        events: list[Any] = []
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            task = await _watch(client, ws, events)
            before = client.policy.kill_switch.engaged
            intruder.withdraw("USDT", Decimal("500"))
            await until(lambda: any(isinstance(e, WithdrawalEvent) for e in events))
            task.cancel()
            return events, before, client.policy.kill_switch.engaged

    events, before, after = asyncio.run(main())
    assert not before
    assert after
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("UnknownActivity") < kinds.index("WithdrawalEvent")
    unknown = next(e for e in events if isinstance(e, UnknownActivity))
    assert (unknown.kind, unknown.asset, unknown.amount) == ("withdrawal", "USDT", Decimal("500"))


def test_kill_switch_shared_with_a_bot_in_another_process_stops_its_next_order(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    intruder = Intruder(sim, sim.account_of(key.key_id))
    switch_path = str(tmp_path / "switch.db")
    journal = str(tmp_path / "shared-journal.db")
    child = subprocess.Popen(
        [sys.executable, str(HERE / "stream_bot_child.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    secret = key.secret.expose().decode()
    job = {
        "base_url": server.base_url,
        "pins": server.pins,
        "ca": server.ca_pem,
        "key_id": key.key_id,
        "secret": secret,
        "switch": switch_path,
        "journal": journal,
    }
    child.stdin.write(json.dumps(job) + "\n")
    child.stdin.flush()
    try:
        assert child.stdout.readline().strip() == "ready"
        switch = KillSwitch.from_url(switch_path)
        monitor = AnomalyMonitor(
            [UnknownActivityDetector(kill_on={"order", "withdrawal"})], kill_switch=switch
        )

        async def main() -> bool:
            events: list[Any] = []
            async with AsyncClient(key, journal=journal, **tls(server)) as client:
                task = await _watch(client, ws, events, monitor=monitor)
                intruder.place("BTCUSDT", "SELL", Decimal("0.001"), Decimal("99000"))
                await until(lambda: any(isinstance(e, UnknownActivity) for e in events))
                engaged_when_reported = switch.engaged
                task.cancel()
            return engaged_when_reported

        assert asyncio.run(main())
        child.stdin.write("go\n")
        child.stdin.flush()
        answer = child.stdout.readline().split()
    finally:
        child.stdin.close()
        child.wait(timeout=WAIT)
        child.stdout.close()
    assert answer == ["PolicyViolation", "kill_switch"]
    placed = [o for o in sim.market.orders.values() if o.side == "BUY"]
    assert placed == []  # the bot's order never reached the venue


def test_key_permission_change_at_the_venue_is_unknown_activity(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = sim.create_key()
    intruder = Intruder(sim, sim.account_of(key.key_id))

    async def main() -> list[Any]:
        events: list[Any] = []
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            task = await _watch(client, ws, events)
            await until(lambda: client._stream_hub.user._key_flags is not None)  # baseline
            intruder.change_key(key.key_id, can_withdraw=True, ip_restricted=False)
            await until(lambda: any(isinstance(e, UnknownActivity) for e in events))
            task.cancel()
        return events

    unknown = [e for e in asyncio.run(main()) if isinstance(e, UnknownActivity)]
    assert [u.kind for u in unknown] == ["key"]
    assert unknown[0].numbers == {"enableWithdrawals": "True", "ipRestrict": "False"}
    assert "enableWithdrawals False -> True" in unknown[0].detail
