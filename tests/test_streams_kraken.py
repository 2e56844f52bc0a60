"""Kraken live streams (WebSocket API v2) over the simulator's pinned WebSockets: every fill
exactly once under each stream fault (the oracle is the simulator's own trade list), with
SQLite and Redis journals and the blocking client, through a token the venue cannot give
for a while, and an intruder's orders and withdrawals reported. See also
test_streams_kraken_more.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kraken_stream_helpers import ACCOUNT, kraken_client, kraken_oracle, kraken_resting
from securetrade import Client
from securetrade.core.redis_journal import RedisJournal
from securetrade.ratelimit import RateLimiter
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.kraken import _order_number, _txid
from securetrade.sim.kraken_ws import KrakenWebSockets
from securetrade.sim.ws import Intruder
from securetrade.streams import (
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamGap,
    UnknownActivity,
    WithdrawalEvent,
)
from stream_helpers import FAST, fill_ids, tls, until, until_sync


@pytest.fixture
def ksim() -> Iterator[Simulator]:
    """A simulator whose Kraken dialect counts no calls (reconciling is not rate-limited)."""
    with Simulator(kraken_limits=None) as simulator:
        yield simulator


@pytest.fixture
def venue(ksim: Simulator) -> tuple[HttpsServer, KrakenWebSockets]:
    """Its HTTPS server and, with the same certificates, its Kraken WebSocket API v2."""
    server = ksim.serve()
    return server, ksim.serve_kraken_ws(server)


def _apply(fault: str, ws: KrakenWebSockets, stage: int) -> None:
    faults = ws.faults
    if fault == "drop" and stage == 0:
        faults.drop.update({2, 5, 9})
    elif fault == "duplicate" and stage == 0:
        faults.duplicate.update(range(1, 13))
    elif fault == "reorder" and stage == 0:
        faults.reorder.update({1, 4, 6})
    elif fault == "mute" and stage == 1:
        ws.mute()
    elif fault == "close_every" and stage == 0:
        faults.close_every = 0.3
    elif fault == "refuse" and stage == 1:
        faults.refuse_for(1.5)
        ws.expire_all()
    elif fault == "expire" and stage == 1:
        ws.expire_all()


async def _run(
    sim: Simulator, server: HttpsServer, ws: KrakenWebSockets, fault: str, journal: Any
) -> tuple[list[Any], set[str], set[str]]:
    key = sim.create_key(venue="kraken", account=ACCOUNT)
    events: list[Any] = []
    async with kraken_client(server, key, journal) as client:
        stream = client.watch_fills(stream_url=ws.user_url, options=FAST)

        async def consume() -> None:
            async for event in stream:
                events.append(event)

        task = asyncio.create_task(consume())
        await until(lambda: client._stream_hub is not None and client._stream_hub.user is not None
                    and client._stream_hub.user.healthy)  # fmt: skip
        orders = [await client.place_order(kraken_resting()) for _ in range(4)]
        numbers = [_order_number(o.order_id) for o in orders]
        _apply(fault, ws, 0)
        for number in numbers:
            assert number is not None
            sim.market.trade(number, Decimal("0.0004"))
        await asyncio.sleep(0.2)
        _apply(fault, ws, 1)
        for number in numbers:
            assert number is not None
            sim.market.trade(number, Decimal("0.0006"))
        expected = kraken_oracle(sim)
        assert len(expected) == 8
        await until(lambda: expected <= set(fill_ids(events)))
        if fault == "mute":
            await until(lambda: any(isinstance(e, StreamGap) and e.reason == "stale"
                                    for e in events))  # fmt: skip
        if fault == "refuse":
            await until(lambda: ws.refused > 0)
        ws.faults.clear()
        hub = client._stream_hub
        await until(lambda: hub.user.healthy)
        gaps = hub.user.gaps
        hub.user.resync("test")  # one more reconciliation: nothing may come twice
        await until(lambda: hub.user.gaps > gaps and any(isinstance(e, Resynced)
                                                         for e in events[-3:]))  # fmt: skip
        task.cancel()
        journal_fills = {
            f.trade_id
            for o in orders
            for f in client.journal.fills(o.client_order_id)
            if f.trade_id is not None
        }
    return events, expected, journal_fills


@pytest.mark.parametrize(
    "fault", ["none", "drop", "duplicate", "reorder", "mute", "close_every", "refuse", "expire"]
)
def test_every_kraken_fill_exactly_once_under_stream_faults(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], fault: str, tmp_path: Path
) -> None:
    server, ws = venue
    events, expected, journal_fills = asyncio.run(
        _run(ksim, server, ws, fault, str(tmp_path / "j.db"))
    )

    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), counts
    assert journal_fills == expected  # the journal's fills table holds each once
    fills = [e for e in events if isinstance(e, FillEvent)]
    assert {e.symbol for e in fills} == {"BTC/USDT"}  # unified out, whichever path found it
    assert sum((e.quantity for e in fills), Decimal(0)) == Decimal("0.004")
    gaps = {e.reason for e in events if isinstance(e, StreamGap)}
    if fault == "drop":
        assert gaps & {"sequence", "sweep"}
        assert any(e.recovered for e in fills)
    if fault == "mute":
        assert "stale" in gaps
    if fault == "refuse":
        assert ws.refused > 0
    if fault != "none":
        assert gaps


def test_an_intruders_order_is_reported_within_one_event(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    intruder = Intruder(ksim, ACCOUNT)

    async def main() -> list[Any]:
        events: list[Any] = []
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            mine = await client.place_order(kraken_resting())
            await until(lambda: any(isinstance(e, OrderUpdate) for e in events))
            foreign = intruder.place("BTCUSDT", "BUY", Decimal("0.001"), Decimal("31000"))
            await until(lambda: any(isinstance(e, UnknownActivity) for e in events))
            task.cancel()
            events.append(("ids", mine.order_id, _txid(foreign.order_id)))
        return events

    events = asyncio.run(main())
    _, mine, foreign = events.pop()
    unknown = [e for e in events if isinstance(e, UnknownActivity)]
    assert [u.order_id for u in unknown] == [foreign], events
    assert unknown[0].kind == "order"
    assert unknown[0].symbol == "BTC/USDT"
    first = next(i for i, e in enumerate(events) if getattr(e, "order_id", None) == foreign)
    assert isinstance(events[first], UnknownActivity)  # the alert before the order's update
    assert all(e.ours for e in events if isinstance(e, OrderUpdate) and e.order_id == mine)


def test_an_intruders_withdrawal_engages_the_kill_switch_by_default(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    """Withdrawals come on the balances channel, subscribed to with the same token."""
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    intruder = Intruder(ksim, ACCOUNT)

    async def main() -> tuple[list[Any], bool, bool]:
        events: list[Any] = []
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_orders(stream_url=ws.user_url, options=FAST)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            before = client.policy.kill_switch.engaged
            intruder.withdraw("BTC", Decimal("0.25"))
            await until(lambda: any(isinstance(e, WithdrawalEvent) for e in events))
            task.cancel()
            return events, before, client.policy.kill_switch.engaged

    events, before, after = asyncio.run(main())
    assert not before
    assert after
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("UnknownActivity") < kinds.index("WithdrawalEvent")
    unknown = next(e for e in events if isinstance(e, UnknownActivity))
    assert (unknown.kind, unknown.asset, unknown.amount) == ("withdrawal", "BTC", Decimal("0.25"))


def _connected(client: Client) -> bool:
    hub = client._stream_hub
    return hub is not None and hub.user is not None and hub.user.healthy


def test_blocking_client_sees_every_kraken_fill_once_with_dropped_frames(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    limiter = RateLimiter.in_memory([])
    with Client(key, journal=str(tmp_path / "j.db"), limiter=limiter, **tls(server)) as client:
        stream = client.watch_fills(stream_url=ws.user_url, options=FAST)
        events: list[Any] = []
        with pytest.raises(TimeoutError):
            stream.next(timeout=0.2)  # connects (a token first); nothing has happened yet
        until_sync(lambda: _connected(client))  # a loaded host connects after the 0.2 s
        numbers = [_order_number(client.place_order(kraken_resting()).order_id) for _ in range(3)]
        ws.faults.drop.update({4, 6})  # after the three "new" updates: two trades lost
        for quantity in ("0.0004", "0.0006"):
            for number in numbers:
                assert number is not None
                ksim.market.trade(number, Decimal(quantity))
        expected = kraken_oracle(ksim)

        def have_all() -> bool:
            with contextlib.suppress(TimeoutError):
                events.append(stream.next(timeout=0.5))
            return expected <= set(fill_ids(events))

        until_sync(have_all)
        stream.close()
    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert any(isinstance(e, FillEvent) and e.recovered for e in events)


def test_orders_placed_without_a_client_id_are_each_reported_and_reconciled(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], tmp_path: Path
) -> None:
    """Kraken's web UI places orders with no ``cl_ord_id``: three of them are three
    intruders, and a reconciliation keeps them apart (keyed by the venue's order id). The
    first two updates are lost; the third one's sequence number shows the gap."""
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)

    def place_bare(n: int) -> str:
        order = ksim.market.place(ACCOUNT, symbol="BTCUSDT", side="BUY", type="LIMIT",
                                  quantity=Decimal("0.001"), price=Decimal("31000"),
                                  time_in_force="GTC", client_order_id=f"~auto-9{n}")  # fmt: skip
        return _txid(order.order_id)

    async def main() -> tuple[list[Any], list[str]]:
        events: list[Any] = []
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            # No staleness probe or sweep on a loaded host's slow second: the lost updates
            # must be found through the sequence gap, not another way first.
            quiet = dataclasses.replace(FAST, stale_after=30.0, sweep_every=30.0)
            stream = client.watch_orders(stream_url=ws.user_url, options=quiet)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)

            task = asyncio.create_task(consume())
            hub = client._stream_hub
            await until(lambda: hub.user is not None and hub.user.healthy)
            ws.faults.drop.update({1, 2})
            ids = [place_bare(1), place_bare(2), place_bare(3)]
            await until(lambda: len([e for e in events if isinstance(e, OrderUpdate)]) == 3)
            gaps = hub.user.gaps
            hub.user.resync("test")
            await until(lambda: hub.user.gaps > gaps and isinstance(events[-1], Resynced))
            task.cancel()
        return events, ids

    events, ids = asyncio.run(main())
    unknown = [e for e in events if isinstance(e, UnknownActivity)]
    assert sorted(u.order_id or "" for u in unknown) == sorted(ids)
    assert {u.client_order_id for u in unknown} == {""}
    updates = [e for e in events if isinstance(e, OrderUpdate)]
    assert sorted(u.order_id for u in updates) == sorted(ids)  # each once, none recovered twice
    assert sum(u.recovered for u in updates) >= 2  # the lost ones, found over REST
    assert "sequence" in {e.reason for e in events if isinstance(e, StreamGap)}


def test_every_kraken_fill_exactly_once_with_a_redis_journal(
    ksim: Simulator, venue: tuple[HttpsServer, KrakenWebSockets], redis_url: str
) -> None:
    """A journal shared by several hosts: its calls leave the loop (worker threads)."""
    server, ws = venue
    journal = RedisJournal.create(redis_url, prefix="kraken-streams:")
    events, expected, journal_fills = asyncio.run(_run(ksim, server, ws, "drop", journal))

    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert journal_fills == expected


def test_a_token_the_venue_cannot_give_now_is_a_failed_attempt_retried(
    ksim: Simulator,
    venue: tuple[HttpsServer, KrakenWebSockets],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GetWebSocketsToken answering 503 while the stream reconnects: the attempt fails, is
    retried after the backoff, and the fills made meanwhile come once."""
    server, ws = venue
    key = ksim.create_key(venue="kraken", account=ACCOUNT)
    token_path = "/0/private/GetWebSocketsToken"
    caplog.set_level(logging.INFO, logger="securetrade.streams")

    async def main() -> tuple[list[Any], set[str]]:
        events: list[Any] = []
        async with kraken_client(server, key, str(tmp_path / "j.db")) as client:
            stream = client.watch_fills(stream_url=ws.user_url, options=FAST)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)

            task = asyncio.create_task(consume())
            hub = client._stream_hub
            await until(lambda: hub.user is not None and hub.user.healthy)
            order = await client.place_order(kraken_resting())
            number = _order_number(order.order_id)
            assert number is not None
            ksim.faults.inject("status", path=token_path, times=4)
            ws.expire_all()
            await until(lambda: not hub.user.healthy)
            ksim.market.trade(number, Decimal("0.0004"))  # while the stream is down
            await until(lambda: hub.user.healthy)
            ksim.market.trade(number, Decimal("0.0006"))
            expected = kraken_oracle(ksim)
            await until(lambda: expected <= set(fill_ids(events)))
            task.cancel()
        return events, expected

    events, expected = asyncio.run(main())
    assert ("status", "POST", token_path) in ksim.faults.fired
    assert "lost: ConnectionError" in caplog.text  # a failed attempt, not the stream's end
    counts = Counter(fill_ids(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
