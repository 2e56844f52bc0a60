"""Live streams on the brokers: Alpaca's trade_updates WebSocket and OANDA's transaction
stream, over the simulator's pinned TLS. Under each stream fault the consumer sees every
fill exactly once (the oracle is the simulator's own executions), the journal's fills
table holds each once, an intruder's order is reported within one event, and a server
without the pinned key gets no byte."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient, Client
from securetrade.errors import AuthenticationRejected, InvalidRequest, PinMismatch
from securetrade.models import LimitOrder, MarketOrder, Order
from securetrade.sim import HttpsServer
from securetrade.sim.brokers import BrokerSimulator
from securetrade.sim.ws import Intruder
from securetrade.streams import (
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamGap,
    StreamOptions,
    UnknownActivity,
    WithdrawalEvent,
)
from securetrade.streams.alpaca import fill_id
from stream_helpers import FAST, tls, until, until_sync


@pytest.fixture(params=["alpaca", "oanda"])
def broker(request: pytest.FixtureRequest) -> Iterator[BrokerSimulator]:
    with BrokerSimulator(request.param) as simulator:
        yield simulator


def _resting(venue: str) -> LimitOrder:
    if venue == "alpaca":
        return LimitOrder(symbol="AAPL", side="BUY", quantity="10", price="180")
    return LimitOrder(symbol="EUR_USD", side="BUY", quantity="1000", price="1.08000")


def _engine_id(sim: BrokerSimulator, account: str, order: Order) -> int:
    """The engine's number of a venue order (Alpaca: a UUID of it; OANDA: its create
    transaction's id)."""
    if sim.venue == "alpaca":
        return uuid.UUID(order.order_id).int
    created = sim.dialect.book(account).created  # type: ignore[union-attr]
    return next(n for n, txn in created.items() if txn == int(order.order_id))


def _oracle(sim: BrokerSimulator, account: str) -> dict[str, Decimal]:
    """Every fill the simulator made on the account: its identity -> quantity."""
    if sim.venue == "oanda":
        book = sim.dialect.book(account)  # type: ignore[union-attr]
        return {
            t["id"]: abs(Decimal(t["units"]))
            for t in book.transactions
            if t["type"] == "ORDER_FILL"
        }
    seen: dict[str, Decimal] = {}
    cumulative: dict[int, Decimal] = defaultdict(Decimal)
    for symbol in ("AAPL", "SPY"):
        for trade in sim.market.trades(account, symbol, None):
            cumulative[trade.order.order_id] += trade.quantity
            alpaca_id = str(uuid.UUID(int=trade.order.order_id))
            seen[fill_id(alpaca_id, cumulative[trade.order.order_id])] = trade.quantity
    return seen


def _fills(events: list[Any]) -> list[FillEvent]:
    return [e for e in events if isinstance(e, FillEvent)]


def _apply(fault: str, sim: BrokerSimulator, stream: Any, stage: int) -> None:
    faults = stream.faults
    if fault == "drop" and stage == 0:
        faults.drop.update({2, 5, 9})
    elif fault == "duplicate" and stage == 0:
        faults.duplicate.update(range(1, 12))
    elif fault == "reorder" and stage == 0:
        faults.reorder.update({1, 4, 6})
    elif fault == "mute" and stage == 1:
        stream.mute()
    elif fault == "close_every" and stage == 0:
        faults.close_every = 0.3
    elif fault == "refuse" and stage == 1:
        faults.refuse_for(1.5, status=406 if sim.venue == "alpaca" else 429)
        stream.expire_all()
    elif fault == "expire" and stage == 1:
        stream.expire_all()


FAULTS = ["none", "drop", "duplicate", "reorder", "mute", "close_every", "refuse", "expire"]
LOSSY = {"drop", "mute", "close_every", "refuse", "expire"}


async def _run(
    sim: BrokerSimulator, server: HttpsServer, stream: Any, fault: str, journal: str
) -> tuple[list[Any], dict[str, Decimal], dict[str, Decimal], dict[str, Decimal]]:
    key = sim.create_key()
    account = sim.account_of(key.key_id)
    events: list[Any] = []
    async with AsyncClient(key, journal=journal, **tls(server)) as client:
        watch = client.watch_fills(stream_url=stream.user_url, options=FAST)

        async def consume() -> None:
            async for event in watch:
                events.append(event)

        task = asyncio.create_task(consume())
        await until(lambda: client._stream_hub is not None and client._stream_hub.user is not None
                    and client._stream_hub.user.healthy)  # fmt: skip
        orders = [await client.place_order(_resting(sim.venue)) for _ in range(4)]
        numbers = [_engine_id(sim, account, o) for o in orders]
        _apply(fault, sim, stream, 0)
        if sim.venue == "alpaca":  # two counterparties take each order: partial, then rest
            for number in numbers:
                sim.market.trade(number, Decimal("4"))
        else:  # OANDA fills an order whole; a market order fills at once
            for number in numbers[:2]:
                sim.market.trade(number, Decimal("1000"))
            orders.append(
                await client.place_order(MarketOrder(symbol="EUR_USD", side="BUY", quantity="500"))
            )
        await asyncio.sleep(0.2)
        _apply(fault, sim, stream, 1)
        rest = numbers if sim.venue == "alpaca" else numbers[2:]
        for number in rest:
            sim.market.trade(number, Decimal("6") if sim.venue == "alpaca" else Decimal("1000"))
        count = 8 if sim.venue == "alpaca" else 5
        await until(lambda: len(_oracle(sim, account)) == count)  # OANDA records fills apart
        expected = _oracle(sim, account)
        total = sum(expected.values())
        await until(lambda: sum(f.quantity for f in _fills(events)) >= total)
        if fault == "mute":
            await until(lambda: any(isinstance(e, StreamGap) and e.reason == "stale"
                                    for e in events))  # fmt: skip
        if fault == "refuse":
            await until(lambda: stream.refused > 0)
        stream.faults.clear()
        hub = client._stream_hub
        await until(lambda: hub.user.healthy)
        gaps = hub.user.gaps
        hub.user.resync("test")  # one more reconciliation after the fault: nothing twice
        await until(lambda: hub.user.gaps > gaps and any(isinstance(e, Resynced)
                                                         for e in events[-3:]))  # fmt: skip
        task.cancel()
        journal_fills = {
            f.trade_id or "": f.quantity
            for o in orders
            for f in client.journal.fills(o.client_order_id)
        }
    per_order = defaultdict(Decimal)
    for fill in _fills(events):
        per_order[fill.order_id] += fill.quantity
    return events, expected, journal_fills, dict(per_order)


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fill_exactly_once_under_stream_faults(
    broker: BrokerSimulator, fault: str, tmp_path: Path
) -> None:
    server = broker.serve()
    stream = broker.serve_stream(server)
    events, expected, journal_fills, per_order = asyncio.run(
        _run(broker, server, stream, fault, str(tmp_path / "j.db"))
    )

    fills = _fills(events)
    counts = Counter(f.trade_id for f in fills)
    assert set(counts.values()) == {1}, counts  # nothing twice
    # every share the simulator executed reached the consumer once, and the journal once
    assert sum(f.quantity for f in fills) == sum(expected.values())
    assert {f.trade_id: f.quantity for f in fills} == journal_fills
    # each execution under its own identity (Alpaca: order@cumulative, read back from the
    # FILL activities; OANDA: the fill's transaction id, read back from sinceid)
    assert {f.trade_id: f.quantity for f in fills} == expected
    assert all(q == (Decimal("10") if broker.venue == "alpaca" else q) for q in per_order.values())
    gaps = {e.reason for e in events if isinstance(e, StreamGap)}
    if fault == "mute":
        assert "stale" in gaps
    if fault == "refuse":
        assert stream.refused > 0
    if fault == "drop":
        assert gaps & {"sequence", "sweep"}
    if fault in LOSSY:
        assert gaps


def test_oanda_gap_in_transaction_ids_is_replayed_from_sinceid(tmp_path: Path) -> None:
    """A dropped line is seen at the next id (or heartbeat) and read back from ``sinceid``
    before the sweep could find it: the fill comes back under its own transaction id."""
    with BrokerSimulator("oanda") as sim:
        server = sim.serve()
        stream = sim.serve_stream(server)
        key = sim.create_key()
        account = sim.account_of(key.key_id)
        options = FAST.__class__(**{**FAST.__dict__, "sweep_every": 60.0})

        async def main() -> list[Any]:
            events: list[Any] = []
            async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
                watch = client.watch_fills(stream_url=stream.user_url, options=options)

                async def consume() -> None:
                    async for event in watch:
                        events.append(event)

                task = asyncio.create_task(consume())
                await until(lambda: client._stream_hub.user is not None
                            and client._stream_hub.user.healthy)  # fmt: skip
                stream.faults.drop.update({1, 2})  # the create and the fill of the order
                await client.place_order(MarketOrder(symbol="EUR_USD", side="BUY", quantity="7"))
                await until(lambda: len(_fills(events)) == 1)
                task.cancel()
            return events

        events = asyncio.run(main())
        fill_ids = {t["id"] for t in sim.dialect.book(account).transactions  # type: ignore[union-attr]
                    if t["type"] == "ORDER_FILL"}  # fmt: skip
    gap = next(e for e in events if isinstance(e, StreamGap))
    assert gap.reason == "sequence"  # found by the ids, not by a sweep
    (fill,) = _fills(events)
    assert fill.recovered
    assert {fill.trade_id} == fill_ids
    assert (
        events.index(gap)
        < events.index(fill)
        < next(i for i, e in enumerate(events) if isinstance(e, Resynced))
    )


def _intrude(sim: BrokerSimulator, account: str, secret: str) -> str:
    """Another session with the account's credentials places an order; its venue id."""
    if sim.venue == "alpaca":
        placed = Intruder(sim, account).place(  # type: ignore[arg-type]
            "AAPL", "BUY", Decimal("1"), Decimal("170")
        )
        return str(uuid.UUID(int=placed.order_id))
    body = {"order": {"type": "LIMIT", "instrument": "EUR_USD", "units": "300",
                      "price": "1.07000", "timeInForce": "GTC"}}  # fmt: skip
    answer = sim.handle(
        "POST",
        f"/v3/accounts/{account}/orders",
        {"authorization": f"Bearer {secret}", "content-type": "application/json"},
        json.dumps(body).encode(),
    )
    return str(json.loads(answer.body)["orderCreateTransaction"]["id"])


def test_intruder_order_is_reported_within_one_event(
    broker: BrokerSimulator, tmp_path: Path
) -> None:
    server = broker.serve()
    stream = broker.serve_stream(server)
    key = broker.create_key()
    account = broker.account_of(key.key_id)
    secret = key.secret.expose().decode()

    async def main() -> tuple[list[Any], str, str]:
        events: list[Any] = []
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            watch = client.watch_orders(stream_url=stream.user_url, options=FAST)

            async def consume() -> None:
                async for event in watch:
                    events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            mine = await client.place_order(_resting(broker.venue))
            await until(lambda: any(isinstance(e, OrderUpdate) for e in events))
            foreign = _intrude(broker, account, secret)
            await until(lambda: any(isinstance(e, UnknownActivity) for e in events))
            task.cancel()
        return events, mine.order_id, foreign

    events, mine, foreign = asyncio.run(main())
    unknown = [e for e in events if isinstance(e, UnknownActivity)]
    assert [(u.kind, u.order_id) for u in unknown] == [("order", foreign)], events
    first = next(i for i, e in enumerate(events) if getattr(e, "order_id", None) == foreign)
    assert isinstance(events[first], UnknownActivity)  # the alert before the order's update
    assert all(e.ours for e in events if isinstance(e, OrderUpdate) and e.order_id == mine)


def test_stream_server_without_the_pinned_key_gets_no_byte(
    broker: BrokerSimulator, tmp_path: Path
) -> None:
    server = broker.serve()
    rogue = broker.serve_stream()  # its own CA and key: trusted below, but not pinned
    key = broker.create_key()
    options = {**tls(server), "cadata": server.ca_pem + rogue.ca_pem}

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **options) as client:
            async for _ in client.watch_fills(stream_url=rogue.user_url, options=FAST):
                break

    with pytest.raises(PinMismatch):
        asyncio.run(main())
    assert rogue.requests == 0  # the pins failed in the handshake: no request, no token


def test_credentials_never_reach_the_log(
    broker: BrokerSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = broker.serve()
    stream = broker.serve_stream(server)
    key = broker.create_key()
    secret = key.secret.expose().decode()
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            watch = client.watch_orders(stream_url=stream.user_url, options=FAST)

            async def first() -> None:
                async for _ in watch:
                    return

            task = asyncio.create_task(first())
            await until(lambda: client._stream_hub.user is not None
                        and client._stream_hub.user.healthy)  # fmt: skip
            await client.place_order(_resting(broker.venue))
            await task

    asyncio.run(main())
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("securetrade"))
    assert secret not in ours
    assert secret[-12:] not in ours
    if broker.venue == "alpaca":
        assert "> TEXT [" in ours  # the wire log shows frames by size only
        assert '"action": "auth"' in ours  # the auth frame was logged ...
        assert key.key_id not in ours  # ... without the key id


def test_alpaca_406_holds_the_next_dial_for_the_venues_wait(tmp_path: Path) -> None:
    """Alpaca answers 406 while a dead connection of the account is still held (~90 s):
    with the venue's defaults the supervisor waits that out instead of dialling again."""
    with BrokerSimulator("alpaca") as sim:
        server = sim.serve()
        stream = sim.serve_stream(server)
        key = sim.create_key()
        options = StreamOptions(stale_after=0.5, probe_timeout=0.5, sweep_every=0.5)

        async def main() -> tuple[int, int]:
            async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
                watch = client.watch_orders(stream_url=stream.user_url, options=options)
                task = asyncio.create_task(_drain(watch))
                await until(lambda: client._stream_hub.user is not None
                            and client._stream_hub.user.healthy)  # fmt: skip
                stream.faults.refuse_for(60, status=406)
                stream.expire_all()
                await until(lambda: stream.refused == 1)
                seen = stream.requests
                await asyncio.sleep(3.0)  # past the 1 s floor and the 1 s Retry-After
                task.cancel()
                return seen, stream.requests

        seen, later = asyncio.run(main())
    assert later == seen  # no further dial while Alpaca would still refuse


async def _drain(watch: Any) -> None:
    async for _ in watch:
        pass


def test_broker_streams_refuse_market_data_and_wrong_schemes(
    broker: BrokerSimulator, tmp_path: Path
) -> None:
    server = broker.serve()
    stream = broker.serve_stream(server)
    other = "wss://127.0.0.1:1/stream" if broker.venue == "oanda" else "https://127.0.0.1:1/"
    with Client(broker.create_key(), journal=":memory:", **tls(server)) as client:
        with pytest.raises(InvalidRequest, match="orders and fills only"):
            client.watch_ticker("AAPL", stream_url=stream.url if broker.venue == "alpaca"
                                else stream.base_url)  # fmt: skip
        with pytest.raises(InvalidRequest, match="stream_url must be"):
            client.watch_fills(stream_url=other)
    assert stream.requests == 0


def test_blocking_client_sees_each_oanda_fill_once_with_dropped_lines(tmp_path: Path) -> None:
    with BrokerSimulator("oanda") as sim:
        server = sim.serve()
        stream = sim.serve_stream(server)
        key = sim.create_key()
        account = sim.account_of(key.key_id)
        events: list[Any] = []
        with Client(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            watch = client.watch_fills(stream_url=stream.user_url, options=FAST)
            with pytest.raises(TimeoutError):
                watch.next(timeout=0.2)  # connects; nothing has happened yet
            until_sync(lambda: client._stream_hub.user.healthy)
            stream.faults.drop.update({2, 3, 6})
            for _ in range(3):
                client.place_order(MarketOrder(symbol="EUR_USD", side="SELL", quantity="100"))
            book = sim.dialect.book(account)  # type: ignore[union-attr]
            expected = {t["id"] for t in book.transactions if t["type"] == "ORDER_FILL"}

            def have_all() -> bool:
                with contextlib.suppress(TimeoutError):
                    events.append(watch.next(timeout=0.5))
                return expected <= {f.trade_id for f in _fills(events)}

            until_sync(have_all)
            watch.close()
    counts = Counter(f.trade_id for f in _fills(events))
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert any(f.recovered for f in _fills(events))


def test_oanda_withdrawal_nobody_asked_for_engages_the_kill_switch(tmp_path: Path) -> None:
    """OANDA reports money leaving the account as a negative TRANSFER_FUNDS; this client
    cannot withdraw there, so any is someone else's: an alert, and the kill switch."""
    with BrokerSimulator("oanda") as sim:
        server = sim.serve()
        stream = sim.serve_stream(server)
        key = sim.create_key()
        account = sim.account_of(key.key_id)

        async def main() -> tuple[list[Any], bool, bool]:
            events: list[Any] = []
            async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
                watch = client.watch_orders(stream_url=stream.user_url, options=FAST)

                async def consume() -> None:
                    async for event in watch:
                        events.append(event)

                task = asyncio.create_task(consume())
                await until(lambda: client._stream_hub.user is not None
                            and client._stream_hub.user.healthy)  # fmt: skip
                before = client.policy.kill_switch.engaged
                sim.market.withdraw(account, "USD", Decimal("2500"))  # at OANDA, not by us
                await until(lambda: any(isinstance(e, WithdrawalEvent) for e in events))
                task.cancel()
                return events, before, client.policy.kill_switch.engaged

        events, before, after = asyncio.run(main())
    assert not before
    assert after
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("UnknownActivity") < kinds.index("WithdrawalEvent")
    unknown = next(e for e in events if isinstance(e, UnknownActivity))
    assert (unknown.kind, unknown.amount) == ("withdrawal", Decimal("2500"))


def test_alpaca_my_trades_reads_every_fill_activity_across_pages() -> None:
    """The FILL activities reconciliation reads, as ``my_trades``: 101 executions of one
    order come back over two pages, oldest first, each once with its cumulative identity."""
    with BrokerSimulator("alpaca") as sim:
        server = sim.serve()
        key = sim.create_key()
        with Client(key, journal=":memory:", **tls(server)) as client:
            order = client.place_order(
                LimitOrder(symbol="AAPL", side="BUY", quantity="101", price="180")
            )
            number = uuid.UUID(order.order_id).int
            for _ in range(101):
                sim.market.trade(number, Decimal("1"))
            sim.market.trade(
                uuid.UUID(client.place_order(_resting("alpaca")).order_id).int, Decimal("3")
            )
            trades = list(client.my_trades("AAPL"))
            pages = sim.dialect.stats.by_path.get("GET /v2/account/activities/FILL", 0)
    mine = [t for t in trades if t.order_id == order.order_id]
    assert [t.trade_id for t in mine] == [
        fill_id(order.order_id, Decimal(n)) for n in range(1, 102)
    ]
    assert len(trades) == 102  # the other order's execution too, once
    assert pages == 2


def test_refused_stream_credentials_raise_authentication_rejected_without_them(
    broker: BrokerSimulator, tmp_path: Path
) -> None:
    server = broker.serve()
    stream = broker.serve_stream(server)
    key = broker.create_key()
    secret = key.secret.expose()

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            if broker.venue == "alpaca":  # the key is revoked at the venue
                broker.dialect.secrets[key.key_id] = b"revoked"  # type: ignore[union-attr]
            else:
                del broker.dialect.tokens[secret]  # type: ignore[union-attr]
            async for _ in client.watch_fills(stream_url=stream.user_url, options=FAST):
                break

    with pytest.raises(AuthenticationRejected) as caught:
        asyncio.run(main())
    assert secret.decode() not in str(caught.value)
    assert "check" in str(caught.value)  # says what to do
