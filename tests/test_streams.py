"""Live user data streams over the simulator's pinned WebSockets: every fill exactly once
under each stream fault (the oracle is the simulator's own trade list)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient
from securetrade.core.redis_journal import RedisJournal
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.ws import SimWebSockets
from securetrade.streams import FillEvent, Resynced, StreamGap
from stream_helpers import FAST, fill_ids, oracle, resting, tls, until


@pytest.fixture
def venue(sim: Simulator) -> tuple[HttpsServer, SimWebSockets]:
    server = sim.serve()
    return server, sim.serve_ws(server)


def _apply(fault: str, sim: Simulator, ws: SimWebSockets, stage: int) -> None:
    """Break the stream at ``stage`` 0 (before any fill) or 1 (between the two rounds)."""
    faults = ws.faults
    if fault == "drop" and stage == 0:
        faults.drop.update({2, 5, 9})
    elif fault == "duplicate" and stage == 0:
        faults.duplicate.update({1, 2, 3, 4, 5, 6, 7, 8})
    elif fault == "reorder" and stage == 0:
        faults.reorder.update({1, 4, 6})
    elif fault == "mute" and stage == 1:
        ws.mute()
    elif fault == "close_every" and stage == 0:
        faults.close_every = 0.3
    elif fault == "refuse" and stage == 1:
        faults.refuse_for(1.5)
        ws.expire_all()
    elif fault == "refuse406" and stage == 1:
        faults.refuse_for(1.5, status=406)
        ws.expire_all()
    elif fault == "expire" and stage == 1:
        ws.expire_all()


FAULTS = [
    "none",
    "drop",
    "duplicate",
    "reorder",
    "mute",
    "close_every",
    "refuse",
    "refuse406",
    "expire",
]


async def _run(
    sim: Simulator, server: HttpsServer, ws: SimWebSockets, fault: str, journal: Any
) -> tuple[list[Any], set[str], AsyncClient]:
    key = sim.create_key()
    account = sim.account_of(key.key_id)
    events: list[Any] = []
    journal = str(journal) if isinstance(journal, Path) else journal
    async with AsyncClient(key, journal=journal, **tls(server)) as client:
        stream = client.watch_fills(stream_url=ws.user_url, options=FAST)

        async def consume() -> None:
            async for event in stream:
                events.append(event)

        task = asyncio.create_task(consume())
        await until(lambda: client._stream_hub is not None and client._stream_hub.user is not None
                    and client._stream_hub.user.healthy)  # fmt: skip
        orders = [await client.place_order(resting()) for _ in range(4)]
        ids = [o.order_id for o in orders]
        _apply(fault, sim, ws, 0)
        for order_id in ids:
            sim.market.trade(int(order_id), __import__("decimal").Decimal("0.0004"))
        await asyncio.sleep(0.2)
        _apply(fault, sim, ws, 1)
        for order_id in ids:
            sim.market.trade(int(order_id), __import__("decimal").Decimal("0.0006"))
        expected = oracle(sim, account)
        assert len(expected) == 8
        await until(lambda: expected <= set(fill_ids(events)))
        if fault == "mute":  # the watchdog notices the silence, whatever REST already found
            await until(lambda: any(isinstance(e, StreamGap) and e.reason == "stale"
                                    for e in events))  # fmt: skip
        if fault.startswith("refuse"):
            await until(lambda: ws.refused > 0)
        ws.faults.clear()
        await until(lambda: client._stream_hub.user.healthy)  # back after the fault
        hub = client._stream_hub
        sweeps = hub.user.gaps
        # one more reconciliation after the fault cleared: nothing may come twice
        hub.user.resync("test")
        await until(
            lambda: hub.user.gaps > sweeps and any(isinstance(e, Resynced) for e in events[-3:])
        )
        task.cancel()
        journal_fills = {
            f.trade_id for o in orders for f in client.journal.fills(o.client_order_id)
        }
    return events, expected, journal_fills  # type: ignore[return-value]


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fill_exactly_once_under_stream_faults(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], fault: str, tmp_path: Path
) -> None:
    server, ws = venue
    events, expected, journal_fills = asyncio.run(_run(sim, server, ws, fault, tmp_path / "j.db"))

    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), counts
    assert journal_fills == expected  # the journal's fills table holds each once
    gaps = {e.reason for e in events if isinstance(e, StreamGap)}
    if fault == "mute":
        assert "stale" in gaps  # the watchdog's probe went unanswered
    if fault.startswith("refuse"):
        assert ws.refused > 0  # reconnects were refused, and the stream came back anyway
    if fault == "drop":
        assert gaps & {"sequence", "sweep"}
    if fault in ("drop", "mute", "close_every", "refuse", "refuse406", "expire"):
        assert any(isinstance(e, StreamGap) for e in events)
        assert any(isinstance(e, FillEvent) and e.recovered for e in events) or fault in (
            "close_every",
            "expire",
        )


@pytest.mark.parametrize("fault", ["drop", "mute"])
def test_every_fill_exactly_once_with_a_redis_journal(
    sim: Simulator, venue: tuple[HttpsServer, SimWebSockets], fault: str, redis_url: str
) -> None:
    """A journal shared by several hosts: its calls leave the loop (worker threads)."""
    server, ws = venue
    journal = RedisJournal.create(redis_url, prefix=f"streams-{fault}:")
    events, expected, journal_fills = asyncio.run(_run(sim, server, ws, fault, journal))

    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert journal_fills == expected
