"""Streams, the path from a frame to the consumer: messages go from the socket's protocol
callback straight to the supervisor (no reading task's ``recv()`` in between), in order,
with a failing handler still ending the stream as a fatal error; the journal's validated
Fill is built after delivery, with what it would refuse refused before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from websockets.asyncio.server import ServerConnection, serve

from securetrade import AsyncClient
from securetrade.core.journal import Journal
from securetrade.errors import InvalidRequest, SecureTradeError
from securetrade.models import Fill
from securetrade.policy.anomaly import AnomalyMonitor
from securetrade.sim import Simulator
from securetrade.streams import (
    FillEvent,
    OrderUpdate,
    Resynced,
    StreamGap,
    StreamOptions,
    UnknownActivity,
    ledger,
)
from securetrade.streams.connection import Backoff, Connector
from securetrade.streams.dialects import BinanceStreams, ExecutionReport
from securetrade.streams.drivers import hub_of
from securetrade.streams.ledger import Ledger, Tracked
from securetrade.streams.supervisor import UserStream
from stream_helpers import FAST, WAIT, resting, tls, until


def test_fills_reach_the_supervisor_from_the_socket_callback(
    sim: Simulator, tmp_path: Path
) -> None:
    """The frame is parsed in the connection's ``data_received``, outside any task: the
    consumer is woken one event-loop turn after the bytes arrive, as a bare client's is."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    in_task: list[bool] = []

    async def main() -> list[str]:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            orders = [await client.place_order(resting()) for _ in range(3)]
            user = hub_of(client, asynchronous=True).user_stream(
                stream_url=ws.user_url, monitor=None, options=FAST
            )
            connector: Any = user._connector
            handle = connector._on_frame

            def recording(frame: Any) -> None:
                if isinstance(frame, dict) and isinstance(frame.get("event"), dict):
                    in_task.append(asyncio.current_task() is not None)
                handle(frame)

            connector._on_frame = recording
            seen: list[str] = []

            async def consume() -> None:
                async for event in client.watch_fills(stream_url=ws.user_url, options=FAST):
                    if isinstance(event, FillEvent):
                        seen.append(event.trade_id)
                        if len(seen) == len(orders):
                            return

            task = asyncio.create_task(consume())
            await until(lambda: user.healthy)
            for order in orders:
                sim.market.trade(int(order.order_id), Decimal("0.001"))
            await asyncio.wait_for(task, WAIT)
            return seen

    seen = asyncio.run(main())
    assert len(set(seen)) == 3
    assert in_task  # the fills' frames were seen ...
    assert not any(in_task)  # ... each handed over from the protocol callback, not a task


async def _run_connector(
    messages: Sequence[str | list[str]],
    on_frame: Callable[[Any], None],
    done: Callable[[], bool] = lambda: False,
) -> list[SecureTradeError]:
    """A loopback WebSocket server answers the Connector's subscription, then, once the
    Connector is reading, writes ``messages`` (a list: one message in fragments) in one
    write, so they arrive together; the Connector reads until ``done()`` or a fatal
    error, and the fatal errors it reported are returned."""
    fatal: list[SecureTradeError] = []
    connector: Connector

    async def handler(socket: ServerConnection) -> None:
        await socket.recv()  # the subscription
        await socket.send('{"subscribed": true}')
        await connector.connected.wait()  # the client reads the stream from now on
        protocol = socket.protocol
        for message in messages:
            if isinstance(message, str):
                protocol.send_text(message.encode())
            else:
                first, *middle, last = message
                protocol.send_text(first.encode(), fin=False)
                for part in middle:
                    protocol.send_continuation(part.encode(), fin=False)
                protocol.send_continuation(last.encode(), fin=True)
        socket.send_data()  # every frame in one write
        await socket.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        async def on_gap(reason: str, detail: str) -> None:
            await connector.stop()  # the first loss ends the test's connection

        async def on_fatal(error: SecureTradeError) -> None:
            fatal.append(error)

        connector = Connector(
            f"ws://127.0.0.1:{port}",
            None,
            on_frame=on_frame,
            on_gap=on_gap,
            on_fatal=on_fatal,
            auth=lambda: ["subscribe"],
            check_auth=lambda frame: frame == {"subscribed": True},
            probe=lambda: None,
            backoff=Backoff(0.0),
            stale_after=WAIT,
            probe_timeout=1.0,
            max_age=3600.0,
        )
        run = asyncio.create_task(connector.run())

        async def stop_when_done() -> None:
            await until(done)
            await connector.stop()

        stopper = asyncio.create_task(stop_when_done())
        await asyncio.wait_for(run, WAIT)
        stopper.cancel()
    return fatal


def test_a_fragmented_message_keeps_its_place_among_whole_ones() -> None:
    """A fragmented message waits in the library's queue for ``recv()``; whole messages
    behind it wait there too, so none overtakes it."""
    got: list[Any] = []
    direct: list[bool] = []

    def on_frame(frame: Any) -> None:
        direct.append(asyncio.current_task() is None)
        got.append(frame)

    script: list[str | list[str]] = [
        '{"n": 1}',
        ['{"n"', ": ", "2}"],
        '{"n": 3}',
        '{"n": 4}',
        ['{"n": ', "5}"],
        '{"n": 6}',
    ]
    fatal = asyncio.run(_run_connector(script, on_frame, lambda: len(got) >= 6))
    assert fatal == []
    assert [frame["n"] for frame in got] == [1, 2, 3, 4, 5, 6]
    assert direct[0]  # the first came straight from the socket's callback ...
    assert not direct[1]  # ... the fragmented one through recv(), and what followed it too
    assert not direct[2]


def test_a_failing_frame_handler_still_ends_the_stream_as_fatal() -> None:
    """An error from the handler (raised in the protocol callback now) reaches ``on_fatal``
    as it did from the reading task, and no later message is handled."""
    got: list[tuple[Any, bool]] = []

    def on_frame(frame: Any) -> None:
        got.append((frame, asyncio.current_task() is None))
        if frame == {"n": 2}:
            raise InvalidRequest("price: -1 is below zero")

    fatal = asyncio.run(_run_connector(['{"n": 1}', '{"n": 2}', '{"n": 3}'], on_frame))
    assert [type(e) for e in fatal] == [InvalidRequest]
    assert "below zero" in str(fatal[0])
    # both from the socket's callback; the one after the failure is never handled
    assert got == [({"n": 1}, True), ({"n": 2}, True)]


# --- the journal's Fill is built after the consumer has the event -----------------------------


def test_the_journal_fill_is_built_after_the_consumer_has_the_event(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validated :class:`Fill` for the journal's table is made by the processing task,
    after delivery: none exists yet when the consumer holds the FillEvent, and the
    journal still gets every fill with the event's numbers."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    built: list[Fill] = []

    def counted(**fields: Any) -> Fill:
        built.append(Fill(**fields))
        return built[-1]

    monkeypatch.setattr(ledger, "Fill", counted)
    path = str(tmp_path / "j.db")

    async def main() -> list[tuple[FillEvent, int]]:
        async with AsyncClient(key, journal=path, **tls(server)) as client:
            orders = [await client.place_order(resting()) for _ in range(2)]
            seen: list[tuple[FillEvent, int]] = []
            stream = client.watch_fills(stream_url=ws.user_url, options=FAST)

            async def consume() -> None:
                async for event in stream:
                    if isinstance(event, FillEvent):
                        seen.append((event, len(built)))
                        if len(seen) == len(orders):
                            return

            task = asyncio.create_task(consume())
            hub = hub_of(client, asynchronous=True)
            await until(lambda: hub.user is not None and hub.user.healthy)
            for i, order in enumerate(orders):  # one at a time: the journal's row, then the next
                sim.market.trade(int(order.order_id), Decimal("0.001"))
                await until(lambda i=i: len(seen) > i and len(built) > i)  # type: ignore[misc]
            await asyncio.wait_for(task, WAIT)
            return seen

    seen = asyncio.run(main())
    assert [count for _, count in seen] == [0, 1]  # each event came before its Fill
    journal = Journal(path)
    try:
        for event, _ in seen:
            (row,) = journal.fills(event.client_order_id)
            assert (row.trade_id, row.price, row.quantity) == (
                event.trade_id,
                event.price,
                event.quantity,
            )
    finally:
        journal.close()


def test_only_the_kinds_subscribed_to_are_built_and_the_ledger_still_moves(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only ``watch_fills`` open, the socket's callback builds no OrderUpdate, yet
    each order's state moves forward: a reconciliation afterwards recovers nothing (no
    update or fill is delivered again), and the journal has every fill. Only what the
    socket's path builds is counted: a report that arrives while the processing task is
    busy (the first fill's journal write) is taken there, which builds every kind."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    built: list[str] = []  # what the socket's path built, in order
    on_socket = [False]
    # the ledger builds its events as drafts (events.draft_of): those are what is counted
    real_update, real_fill, real_fast = ledger._UpdateDraft, ledger._FillDraft, UserStream._fast

    def update(*args: Any, **kwargs: Any) -> Any:
        if on_socket[0]:
            built.append("update")
        return real_update(*args, **kwargs)

    def fill(*args: Any, **kwargs: Any) -> Any:
        if on_socket[0]:
            built.append("fill")
        return real_fill(*args, **kwargs)

    def fast(self: UserStream, report: ExecutionReport) -> bool:
        on_socket[0] = True
        try:
            return real_fast(self, report)
        finally:
            on_socket[0] = False

    monkeypatch.setattr(ledger, "_UpdateDraft", update)
    monkeypatch.setattr(ledger, "_FillDraft", fill)
    monkeypatch.setattr(UserStream, "_fast", fast)
    path = str(tmp_path / "j.db")
    options = StreamOptions(sweep_every=3600.0, stale_after=60.0)

    async def main() -> tuple[list[Any], list[str], list[str]]:
        async with AsyncClient(key, journal=path, **tls(server)) as client:
            orders = [await client.place_order(resting()) for _ in range(3)]
            events: list[Any] = []
            stream = client.watch_fills(stream_url=ws.user_url, options=options)

            async def consume() -> None:
                async for event in stream:
                    events.append(event)
                    if isinstance(event, Resynced):
                        return

            task = asyncio.create_task(consume())
            hub = hub_of(client, asynchronous=True)
            await until(lambda: hub.user is not None and hub.user.healthy)
            user = hub.user
            assert user is not None
            await until(lambda: user._idle and user._inbound.empty())  # the socket's path
            for order in orders:
                sim.market.trade(int(order.order_id), Decimal("0.001"))
            await until(lambda: sum(isinstance(e, FillEvent) for e in events) == len(orders))
            assert hub.user is not None
            hub.user.resync("test")
            await asyncio.wait_for(task, WAIT)
            return events, list(built), [o.client_order_id for o in orders]

    events, socket_built, cids = asyncio.run(main())
    assert socket_built[:1] == ["fill"]  # the first fill took the socket's path ...
    assert set(socket_built) == {"fill"}  # ... which built no OrderUpdate for fills alone
    fills = [e for e in events if isinstance(e, FillEvent)]
    assert len({e.trade_id for e in fills}) == len(fills) == 3
    gap, resynced = events[-2:]
    assert isinstance(gap, StreamGap)
    assert gap.reason == "test"
    assert isinstance(resynced, Resynced)
    assert resynced.recovered == 0  # each order's state had moved on
    journal = Journal(path)
    try:
        assert all(len(journal.fills(cid)) == 1 for cid in cids)
    finally:
        journal.close()


def test_the_journal_is_asked_for_after_the_consumer_has_run(
    sim: Simulator, tmp_path: Path
) -> None:
    """The processing task is woken for the journal's write only after the consumer woken
    by the event has had its turn: the consumer runs first."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    order: list[str] = []
    options = StreamOptions(sweep_every=3600.0, stale_after=60.0)

    async def main() -> None:
        async with AsyncClient(key, journal=str(tmp_path / "j.db"), **tls(server)) as client:
            orders = [await client.place_order(resting()) for _ in range(3)]
            hub = hub_of(client, asynchronous=True)
            user = hub.user_stream(stream_url=ws.user_url, monitor=None, options=options)
            offer = user._offer

            def recording(item: Any) -> None:
                if getattr(item, "reason", None) == "journal":
                    order.append("journal")
                offer(item)

            user._offer = recording  # type: ignore[method-assign]
            stream = client.watch_fills(stream_url=ws.user_url, options=options)

            async def consume() -> None:
                async for event in stream:
                    if isinstance(event, FillEvent):
                        order.append("event")
                        if order.count("event") == len(orders):
                            return

            task = asyncio.create_task(consume())
            await until(lambda: user.healthy)
            for i, placed in enumerate(orders):  # one at a time, each on its own frame
                sim.market.trade(int(placed.order_id), Decimal("0.001"))
                await until(lambda i=i: order.count("journal") > i)  # type: ignore[misc]
            await asyncio.wait_for(task, WAIT)

    asyncio.run(main())
    assert order == ["event", "journal"] * 3


def _report(**changes: Any) -> ExecutionReport:
    fields: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "order_id": "7",
        "client_order_id": "c7",
        "side": "BUY",
        "status": "FILLED",
        "execution": "TRADE",
        "quantity": Decimal("1"),
        "cumulative": Decimal("1"),
        "last_quantity": Decimal("1"),
        "last_price": Decimal("30000"),
        "trade_id": "t7",
        "commission": Decimal("0.1"),
        "commission_asset": "USDT",
        "at_ms": 1,
    }
    return ExecutionReport(**{**fields, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"last_price": Decimal("-30000")},
        {"last_quantity": Decimal("-1"), "cumulative": Decimal("0.5")},
        {"commission": Decimal("-0.1")},
        {"commission_asset": 5},
    ],
)
def test_a_fill_fill_would_refuse_is_refused_before_delivery(changes: dict[str, Any]) -> None:
    """What :class:`Fill` refuses is still refused, before any event or journal row."""
    book = Ledger("binance")
    tracked = Tracked("BTCUSDT", "c7", "BUY", True, Decimal("1"))
    with pytest.raises(InvalidRequest, match="cannot be used"):
        book.execution_now(_report(**changes), tracked, force=True)
    assert not book.delivered
    assert book.to_journal == []
    assert tracked.delivered == 0
    ok = book.execution_now(_report(), tracked, force=True)  # a whole report still goes
    assert ok is not None
    assert isinstance(ok[0], FillEvent)
    assert [fill.trade_id for _, fill in book.take_journal()] == ["t7"]


# --- orders placed before the stream began: one journal query at start ---------------------


def test_orders_placed_before_the_stream_are_looked_up_once_at_start(
    sim: Simulator, tmp_path: Path
) -> None:
    """Orders another client on the same journal placed before the stream began are found
    in one journal query at start; their fills then need no lookup on the frame's path,
    and are still ours (no UnknownActivity)."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    path = str(tmp_path / "j.db")
    lookups: list[list[str]] = []

    async def main() -> list[Any]:
        async with AsyncClient(key, journal=path, **tls(server)) as placer:
            orders = [await placer.place_order(resting()) for _ in range(3)]
        async with AsyncClient(key, journal=path, **tls(server)) as client:
            journal: Any = client.core.journal
            known = journal.known

            def counted(cids: list[str]) -> set[str]:
                lookups.append(list(cids))
                return set(known(cids))

            journal.known = counted
            events: list[Any] = []

            async def consume() -> None:
                async for event in client.watch_fills(stream_url=ws.user_url, options=FAST):
                    events.append(event)
                    if sum(isinstance(e, FillEvent) for e in events) == len(orders):
                        return

            task = asyncio.create_task(consume())
            cids = {o.client_order_id for o in orders}
            hub = hub_of(client, asynchronous=True)
            await until(lambda: hub.user is not None and cids <= hub.user._ours, timeout=20)
            assert [set(batch) for batch in lookups] == [cids]  # one query, every order
            for order in orders:
                sim.market.trade(int(order.order_id), Decimal("0.001"))
            await asyncio.wait_for(task, WAIT)
            return events

    events = asyncio.run(main())
    assert len(lookups) == 1  # the start's one query, none per order
    assert not any(isinstance(e, UnknownActivity) for e in events)
    assert all(e.ours for e in events if isinstance(e, FillEvent))


def test_orders_of_another_client_filled_before_the_socket_is_up_are_delivered_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """Orders another client on the journal placed before the stream began, filled while
    the venue still refuses the stream's connection: the start's lookup marks them ours,
    and the sweep delivers their fills (recovered), each once, rather than never."""
    server = sim.serve()
    ws = sim.serve_ws(server)
    key = sim.create_key(balances={"USDT": Decimal("1000"), "BTC": Decimal(0)})
    path = str(tmp_path / "j.db")

    async def main() -> list[Any]:
        async with AsyncClient(key, journal=path, **tls(server)) as placer:
            orders = [await placer.place_order(resting()) for _ in range(3)]
        ws.faults.refuse_for(2.0)
        async with AsyncClient(key, journal=path, **tls(server)) as client:
            events: list[Any] = []

            async def consume() -> None:
                async for event in client.watch_fills(stream_url=ws.user_url, options=FAST):
                    events.append(event)
                    if sum(isinstance(e, FillEvent) for e in events) == len(orders):
                        await asyncio.sleep(1.0)  # time for a second delivery to show
                        return

            task = asyncio.create_task(consume())
            cids = {o.client_order_id for o in orders}
            hub = hub_of(client, asynchronous=True)
            await until(lambda: hub.user is not None and cids <= hub.user._ours, timeout=20)
            assert not hub.user._connector.healthy  # still refused: the fills come first
            for order in orders:
                sim.market.trade(int(order.order_id), Decimal("0.001"))
            await asyncio.wait_for(task, WAIT)
            return events

    events = asyncio.run(main())
    fills = [e for e in events if isinstance(e, FillEvent)]
    assert len(fills) == 3
    assert len({f.trade_id for f in fills}) == 3
    assert all(f.recovered for f in fills)  # read over REST: the socket was not up
    assert all(f.ours for f in fills)
    assert not any(isinstance(e, UnknownActivity) for e in events)


# --- Binance execution reports: the amounts, as JSON gives them -----------------------------


def _binance_report(**amounts: Any) -> dict[str, Any]:
    event = {"e": "executionReport", "E": 5, "s": "BTCUSDT", "c": "c1", "C": "", "S": "BUY",
             "x": "TRADE", "X": "FILLED", "i": 7, "t": 9, "N": "USDT",
             "q": "2", "z": "1.5", "l": "1", "L": "30000.5", "n": "0.1"}  # fmt: skip
    return {"subscriptionId": 0, "event": {**event, **amounts}}


def test_binance_amounts_given_as_json_numbers_read_as_their_text_does() -> None:
    """Each field of the report read from its key (the report is built positionally), the
    amounts straight with ``to_decimal``: a JSON number is the same Decimal as its text,
    and a missing commission is zero."""
    dialect = BinanceStreams()
    (text,) = dialect.parse(_binance_report())
    (number,) = dialect.parse(_binance_report(q=2, z=1.5, l=1, L=30000.5, n=0.1))
    (bare,) = dialect.parse(_binance_report(n=None))
    assert text == ExecutionReport(
        symbol="BTCUSDT", order_id="7", client_order_id="c1", side="BUY", status="FILLED",
        execution="TRADE", quantity=Decimal(2), cumulative=Decimal("1.5"),
        last_quantity=Decimal(1), last_price=Decimal("30000.5"), trade_id="9",
        commission=Decimal("0.1"), commission_asset="USDT", at_ms=5,
    )  # fmt: skip
    assert text == number
    assert isinstance(bare, ExecutionReport)
    assert bare.commission == 0


@pytest.mark.parametrize("bad", [True, [1], {"v": 1}, "NaN", "Infinity", "1,5", "", None])
def test_binance_amounts_that_are_no_number_are_refused_with_our_error(bad: Any) -> None:
    """What cannot be money is :class:`InvalidRequest` naming the field (the supervisor
    then reconciles over REST), never a TypeError or a NaN that reaches the consumer."""
    with pytest.raises(InvalidRequest, match=r"^L: "):
        BinanceStreams().parse(_binance_report(L=bad))


# --- deliver first, book after ----------------------------------------------------------------


class _UnusedRest:
    """A REST side for a stream that is fed frames by hand: asked anything, the test fails."""

    async def open_orders(self) -> list[Any]:
        raise AssertionError("the stream asked REST for its open orders")


def _hand_fed_stream(journal: Journal) -> UserStream:
    """A Binance user stream that no socket feeds: the test hands it frames itself."""
    return UserStream(
        BinanceStreams(),
        url="wss://127.0.0.1:9/ws-api/v3",
        context=None,
        credentials=lambda: cast(Any, None),
        now_ms=lambda: 0,
        rest=_UnusedRest(),
        journal=journal,
        monitor=AnomalyMonitor([]),
    )


def test_the_consumer_has_its_event_before_the_ledger_books_it_and_nothing_comes_twice(
    tmp_path: Path,
) -> None:
    """The socket's callback hands the event on and leaves the ledger's moves for a call
    made after the consumers' turn; a frame right behind it in the same read (a duplicate,
    or the next report of an order first seen in the one before) books them first, so the
    duplicate is dropped and the order is tracked once, at its latest state."""
    journal = Journal(tmp_path / "j.db")

    async def main() -> None:
        user = _hand_fed_stream(journal)
        sub = user.subscribe((FillEvent, OrderUpdate))
        user._ours.update({"c1", "c2"})
        user._idle = True  # as when the processing task waits on an empty queue
        fill = _binance_report(z="1")
        user._on_frame(fill)
        assert sub.queue.qsize() == 2  # the fill and the order's update, handed on ...
        assert "9" not in user.ledger.delivered  # ... before the ledger books them
        assert user.ledger.orders == {}
        user._on_frame(fill)  # the same frame again, in the same read
        assert sub.queue.qsize() == 2  # dropped: the first was booked before it
        assert "9" in user.ledger.delivered
        new = _binance_report(i=8, c="c2", x="NEW", X="NEW", t=-1, q="1", z="0", l="0", L="0")
        user._on_frame(new)  # an order first seen, then its fill, in one read
        user._on_frame(_binance_report(i=8, c="c2", t=10, q="1", z="1"))
        await asyncio.sleep(0)  # the booking call
        assert user.ledger.orders["8"].status == "FILLED"
        assert user.ledger.orders["8"].delivered == 1
        events = [await sub.queue.get() for _ in range(sub.queue.qsize())]
        assert sum(isinstance(e, FillEvent) for e in events) == 2
        assert [cid for cid, _ in user.ledger.take_journal()] == ["c1", "c2"]

    try:
        asyncio.run(main())
    finally:
        journal.close()


def test_a_report_with_amounts_no_fill_can_have_is_reconciled_not_fatal(tmp_path: Path) -> None:
    """A negative price on the socket's fast path goes to the processing task, as every
    report it cannot use does there (refused, then reconciled over REST): raised from the
    socket's callback, it would have ended the whole stream as fatal."""
    journal = Journal(tmp_path / "j.db")

    async def main() -> None:
        user = _hand_fed_stream(journal)
        sub = user.subscribe((FillEvent, OrderUpdate))
        user._ours.add("c1")
        user._idle = True  # as when the processing task waits on an empty queue
        user._on_frame(_binance_report(z="1", L="-30000"))  # does not raise
        assert sub.queue.qsize() == 0  # nothing handed on ...
        assert user._inbound.qsize() == 1  # ... the report waits for the processing task
        assert "9" not in user.ledger.delivered

    try:
        asyncio.run(main())
    finally:
        journal.close()


def test_a_frame_nested_too_deep_to_decode_is_skipped_not_fatal() -> None:
    """A frame nested deeper than the decoder recurses (json raises RecursionError, not
    ValueError) is what any other frame that is no JSON is: handed on as None, the stream
    going on. It ended the stream as fatal (a ConnectFailed naming RecursionError), for
    good, on one frame."""
    got: list[Any] = []
    deep_object = '{"a":' * 5000 + "1" + "}" * 5000  # json's C scanner, called directly
    deep_array = "[" * 5000 + "]" * 5000  # json.loads
    script: list[str | list[str]] = ['{"n": 1}', deep_object, deep_array, '{"n": 4}']
    fatal = asyncio.run(_run_connector(script, got.append, lambda: len(got) >= 4))
    assert fatal == []
    assert got == [{"n": 1}, None, None, {"n": 4}]


def test_kraken_decode_takes_a_frame_nested_too_deep_as_no_json() -> None:
    from securetrade.streams.kraken import KrakenStreams

    deep = '{"a":' * 5000 + "1" + "}" * 5000
    assert KrakenStreams.decode(deep) is None
    assert KrakenStreams.decode(deep.encode()) is None
