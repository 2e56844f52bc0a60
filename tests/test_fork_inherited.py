"""A client (or journal) built before ``os.fork()`` and used in the child is refused with
:class:`InheritedAcrossFork` before anything is sent or written; the parent's goes on.

Its pooled TLS connection and SQLite connection are the parent's: the child writing on the
parent's TLS session breaks its framing (and the answer may be read by the wrong process:
an order's outcome lost or given to the other), and SQLite says a connection must not cross
a fork. Each test forks for real (the venue is the simulator over real TLS on loopback) and
the child reports through a pipe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import AsyncClient, Client, InheritedAcrossFork, Journal, MarketOrder
from securetrade.sim import Simulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork only")


def _in_child(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child; its answer (JSON) or the error it raised, as text."""
    out_read, out_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, and leave without running the parent's teardown
        code = 0
        try:
            os.close(out_read)
            answer = json.dumps({"answer": work()})
        except BaseException as exc:
            answer = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            code = 1
        with os.fdopen(out_write, "w") as out:
            out.write(answer)
        os._exit(code)
    os.close(out_write)
    with os.fdopen(out_read) as out:
        answer = json.loads(out.read() or '{"error": "no answer"}')
    os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return answer["answer"]


def _said(exc: InheritedAcrossFork) -> str:
    """The error's type, when its message says what to do."""
    return (
        type(exc).__name__
        if "build the" in str(exc).lower() and "after the fork" in str(exc)
        else f"no advice: {exc}"
    )


def _refusal(call: Callable[[], Any]) -> str:
    """What ``call`` raised: the error's type and whether it says what to do."""
    try:
        call()
    except InheritedAcrossFork as exc:
        return _said(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


@pytest.fixture(scope="module")
def venue() -> Iterator[dict[str, Any]]:
    with Simulator() as simulator:
        server = simulator.serve()
        key = simulator.create_key(balances={"USDT": Decimal("100000"), "BTC": Decimal("1")})
        yield {
            "server": server,
            "ws": simulator.serve_ws(server),
            "key": key,
            "options": {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem},
        }


BUY = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")


def test_an_inherited_client_refuses_in_the_child(venue: dict[str, Any], tmp_path: Path) -> None:
    server = venue["server"]
    with Client(venue["key"], journal=tmp_path / "j.sqlite3", **venue["options"]) as client:
        client.place_order(BUY, idempotency_key="parent-1")  # a pooled TLS connection now
        received, handshakes = server.bytes_received, server.handshakes
        made = client.watch_orders()  # a stream made before the fork, not yet iterated

        def child() -> list[str]:
            signal.alarm(20)  # a child waiting for ever dies: "no answer"
            refusals = [
                _refusal(lambda: next(made)),
                _refusal(lambda: client.place_order(BUY, idempotency_key="child-1")),
                _refusal(client.balances),
                _refusal(client.unresolved),  # the journal itself refuses too
                _refusal(lambda: client.journal.get("x")),
                _refusal(lambda: next(iter(client.watch_orders()))),
            ]
            client.close()  # nothing: the connections are the parent's
            client.journal.close()  # nor the parent's SQLite connection
            return refusals

        assert _in_child(child) == ["InheritedAcrossFork"] * 6
        assert (server.bytes_received, server.handshakes) == (received, handshakes)
        core = client.core  # nothing of the child's order was written
        assert core.journal.get(core.venue.client_order_id(core.account, "child-1")) is None
        # The parent's next order, on its own connection (no new handshake) and journal.
        assert client.place_order(BUY, idempotency_key="parent-2").status.name == "FILLED"
        assert server.handshakes == handshakes


def test_an_inherited_async_client_refuses_in_the_child(
    venue: dict[str, Any], tmp_path: Path
) -> None:
    server = venue["server"]
    loop = asyncio.new_event_loop()
    client = AsyncClient(venue["key"], journal=tmp_path / "j.sqlite3", **venue["options"])
    try:
        loop.run_until_complete(client.place_order(BUY, idempotency_key="parent-1"))
        received, handshakes = server.bytes_received, server.handshakes
        ws = venue["ws"]
        made = client.watch_orders(stream_url=ws.user_url)  # made before the fork, not iterated
        connections = ws.connections

        async def refused() -> list[str]:
            signal.alarm(20)  # a child waiting for ever dies: "no answer"
            answers = []
            for call in (
                lambda: anext(made),
                lambda: anext(made),  # still refused, and still nothing connects
                lambda: client.place_order(BUY, idempotency_key="child-1"),
                client.balances,
                client.server_time,
            ):
                try:
                    await call()
                    answers.append("no error")
                except InheritedAcrossFork as exc:
                    answers.append(_said(exc))
            await made.aclose()  # nothing: the stream is the parent's
            await client.aclose()  # nothing: no TLS goodbye on the parent's sessions
            return answers

        assert _in_child(lambda: asyncio.run(refused())) == ["InheritedAcrossFork"] * 5
        assert (server.bytes_received, server.handshakes) == (received, handshakes)
        assert ws.connections == connections  # the stream did not connect from the child
        order = loop.run_until_complete(client.place_order(BUY, idempotency_key="parent-2"))
        assert order.status.name == "FILLED"
        assert server.handshakes == handshakes  # the pooled connection still the parent's
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_an_inherited_journal_refuses_in_the_child(tmp_path: Path) -> None:
    """Every call, before it touches the file; close() leaves the parent's connection."""
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        _, created = journal.begin("k1", "cid-1", "acct", "BTCUSDT", "fp")
        assert created

        def child() -> list[str]:
            refusals = [
                _refusal(lambda: journal.get("cid-1")),
                _refusal(lambda: journal.begin("k2", "cid-2", "acct", "BTCUSDT", "fp")),
                _refusal(journal.flush),
                _refusal(lambda: journal.lease("acct", 30.0)),
            ]
            journal.close()
            return refusals

        assert _in_child(child) == ["InheritedAcrossFork"] * 4
        assert journal.get("cid-2") is None
        got = journal.get("cid-1")
        assert got is not None
        assert got.idempotency_key == "k1"
        assert journal.begin("k3", "cid-3", "acct", "BTCUSDT", "fp")[1]
        journal.flush()
    finally:
        journal.close()


def test_a_client_built_in_the_child_works(venue: dict[str, Any], tmp_path: Path) -> None:
    """What the error says to do: build it in the worker, after the fork."""

    def child() -> str:
        with Client(venue["key"], journal=tmp_path / "c.sqlite3", **venue["options"]) as own:
            return own.place_order(BUY, idempotency_key="child-own").status.name

    assert _in_child(child) == "FILLED"


def test_inherited_sqlite_stores_refuse_in_the_child(tmp_path: Path) -> None:
    """The SQLite rate-limit windows, the signed audit trail, the kill switch's store and
    the copy outbox: refused before the file is touched; the parent's go on (its audit
    chain still verifies)."""
    from securetrade.copy import LeaderEvent
    from securetrade.copy.outbox import Outbox
    from securetrade.policy import SqliteSwitchStore
    from securetrade.policy.killswitch import KillState
    from securetrade.ratelimit.sqlite import SQLiteBackend
    from securetrade.record import AuditKey, AuditTrail

    windows = SQLiteBackend(tmp_path / "limits.sqlite3")
    trail = AuditTrail(tmp_path / "audit.sqlite3", AuditKey.generate())
    switch = SqliteSwitchStore(tmp_path / "switch.sqlite3")
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    event = LeaderEvent("e1", "BTCUSDT", "BUY", "0.01", "60000", 1_000)
    try:
        trail.append("parent", {"n": 1})

        def child() -> list[str]:
            refusals = [
                _refusal(lambda: windows.used([("orders", 10.0)])),
                _refusal(lambda: windows.pause("orders", 1.0)),
                _refusal(lambda: trail.append("child", {"n": 2})),
                _refusal(lambda: switch.read("main")),
                _refusal(lambda: switch.write("main", KillState(True, "child"))),
                _refusal(lambda: outbox.receive(event)),
                _refusal(lambda: outbox.override("f1", "BTCUSDT", "child", Decimal(0))),
            ]
            for store in (windows, trail, switch, outbox):
                store.close()  # nothing: the connections are the parent's
            return refusals

        assert _in_child(child) == ["InheritedAcrossFork"] * 7
        assert windows.used([("orders", 10.0)]) == [0]
        trail.append("parent", {"n": 3})
        assert [record.kind for record in trail.records()] == ["parent", "parent"]
        assert trail.verify().ok
        assert switch.read("main") is None
        assert outbox.overrides() == {}
        assert outbox.receive(event)  # the child's was never written
    finally:
        for store in (windows, trail, switch, outbox):
            store.close()


def test_an_inherited_data_key_vault_refuses_in_the_child(tmp_path: Path) -> None:
    """The privacy vault goes with the audit trail: refused before the file is touched;
    the parent's keys are the same afterwards."""
    from securetrade.privacy.vault import DataKeys, PrivacyKeys

    vault = DataKeys(tmp_path / "vault.sqlite3", PrivacyKeys.generate(tmp_path / "pk"))
    try:
        before = vault.key_for("s1", "orders", time.time() + 60)

        def child() -> list[str]:
            refusals = [
                _refusal(lambda: vault.key_for("s2", "orders", time.time() + 60)),
                _refusal(lambda: vault.entries()),
                _refusal(lambda: vault.shred([("s1", "orders")])),
            ]
            vault.close()  # nothing: the connection is the parent's
            return refusals

        assert _in_child(child) == ["InheritedAcrossFork"] * 3
        assert [key.subject_ref for key in vault.entries()] == ["s1"]
        assert vault.get("s1", "orders") == before
    finally:
        vault.close()


def test_an_inherited_replay_store_refuses_a_replay_across_workers(tmp_path: Path) -> None:
    """The verifier's SQLite replay store, like the gateway's: each forked worker opens
    its own connection to the file, and an id seen by any process is refused by all."""
    from securetrade.verify import SqliteReplayStore

    store = SqliteReplayStore(tmp_path / "replay.sqlite3")
    now = time.time_ns() // 1_000_000
    try:
        assert store.remember("parent", now + 30_000, now)
        parents = id(store._db)

        def worker(mine: str) -> list[Any]:
            seen = [store.remember(t, now + 30_000, now) for t in (mine, "parent", "child-1")]
            own = id(store._db) != parents
            store.close()
            return [*seen, own]

        assert _in_child(lambda: worker("child-1")) == [True, False, False, True]
        assert _in_child(lambda: worker("child-2")) == [True, False, False, True]
        assert [store.remember(t, now + 30_000, now) for t in ("child-1", "child-2")] == [
            False,
            False,
        ]
        assert len(store) == 3
    finally:
        store.close()


def test_a_file_nonce_source_draws_on_its_own_descriptors_in_the_child(tmp_path: Path) -> None:
    """It reopens its key files in the child (the parent's descriptions share their flock)
    with a lock of its own: the parent's was held by one of its threads at the fork, and
    the child waited on it for ever. Nonces stay strictly increasing across both."""
    from securetrade.nonce.file import FileNonceSource

    source = FileNonceSource(tmp_path / "nonces")
    first = source.next("key")

    def child() -> int:
        signal.alarm(20)  # a deadlocked child dies: "no answer"
        return source.next("key")

    with source._lock:  # a thread of the parent mid-draw as the fork happens
        drawn = _in_child(child)
    assert first < drawn < source.next("key")
    source.close()


@pytest.mark.redis
def test_an_inherited_event_stream_refuses_in_the_child(redis_url: str) -> None:
    """The copy engine's Redis Stream: its asyncio Redis pool does not reopen after a fork
    (its connections are the parent's, of the parent's loop), and its consumer name
    (host:pid) is the parent's. Refused before anything is sent; the parent's publishes."""
    import redis

    from securetrade.copy import EventStream, LeaderEvent

    name = f"fork-{uuid.uuid4().hex[:8]}"
    stream = EventStream(redis_url, stream=name)
    event = LeaderEvent("e1", "BTCUSDT", "BUY", "0.01", "60000", 1_000)

    async def child() -> list[str]:
        answers = []
        for call in (lambda: stream.publish(event), stream.pending):
            try:
                await call()
                answers.append("no error")
            except InheritedAcrossFork as exc:
                answers.append(_said(exc))
        await stream.close()  # nothing: the connections are the parent's
        return answers

    assert _in_child(lambda: asyncio.run(child())) == ["InheritedAcrossFork"] * 2

    async def parent() -> None:
        try:
            await stream.publish(event)
        finally:
            await stream.close()

    asyncio.run(parent())
    assert redis.Redis.from_url(redis_url).xlen(name) == 1  # the parent's event only


@pytest.mark.redis
def test_an_inherited_redis_journal_opens_its_own_connection_in_the_child(
    redis_url: str,
) -> None:
    """redis-py's pool drops the parent's connections in a child (without a word on them)
    and opens its own: a RedisJournal carried across a fork is safe to use, and the
    parent's connection stays its own."""
    from securetrade.core.redis_journal import RedisJournal

    prefix = f"fork-{uuid.uuid4().hex[:8]}:"
    journal = RedisJournal.create(redis_url, prefix=prefix)
    try:
        journal.begin("k1", "cid-1", "acct", "BTCUSDT", "fp")
        mine = journal._redis.client_id()

        def child() -> list[Any]:
            _, created = journal.begin("k2", "cid-2", "acct", "BTCUSDT", "fp")
            return [journal._redis.client_id(), created]

        theirs, created = _in_child(child)
        assert created
        assert theirs != mine
        assert journal._redis.client_id() == mine
        got = journal.get("cid-2")
        assert got is not None
        assert got.idempotency_key == "k2"
    finally:
        journal.close()


# --- the gateway's shared store: a pre-forking server's workers (gunicorn --preload,
# uvicorn --workers) each open their own connection, and share nonces through the store ---


def _gateway_state(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    from securetrade.gateway import SharedState

    if store == "sqlite":
        return SharedState.sqlite(tmp_path / "gate.db")
    url = request.getfixturevalue("redis_url")
    return SharedState.redis(url, prefix=f"{{fork-{uuid.uuid4().hex[:8]}}}:")


def _admit(state: Any, token: str) -> str:
    now = time.time_ns() // 1_000_000 + 10  # stamped after the store's epoch
    return str(state.admit(token, now, now + 30_000, 0, ["addr:1"], []).outcome)


def _connection(state: Any) -> Any:
    """Which connection the store uses: the SQLite one's identity, or the Redis client id
    the server gave it."""
    gate = state.gate
    return gate._client.client_id() if hasattr(gate, "_client") else id(gate._db)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_an_inherited_gateway_store_refuses_a_replay_across_workers(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Built in the master, used by two forked workers and the master: a nonce admitted
    anywhere is a replay everywhere. A worker closing its store (its shutdown) closes its
    own connection only: the master goes on with its own."""
    state = _gateway_state(store, tmp_path, request)
    try:
        assert _admit(state, "parent-1") == "ok"  # the parent's connection is live
        parents = _connection(state)

        def worker(mine: str, others: list[str]) -> list[Any]:
            answers = [_admit(state, mine)] + [_admit(state, other) for other in others]
            own = _connection(state) != parents
            state.close()
            return [*answers, own]

        assert _in_child(lambda: worker("child-1", ["parent-1"])) == ["ok", "replayed", True]
        assert _in_child(lambda: worker("child-2", ["parent-1", "child-1"])) == [
            "ok",
            "replayed",
            "replayed",
            True,
        ]
        assert _connection(state) == parents
        assert [_admit(state, t) for t in ("child-1", "child-2", "parent-1")] == ["replayed"] * 3
        assert _admit(state, "parent-2") == "ok"
    finally:
        state.close()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_an_inherited_gateway_store_does_not_wait_for_a_lock_held_at_the_fork(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A parent's thread inside the store as the fork happens leaves its lock held for
    ever in the child: the child's store takes a lock of its own."""
    state = _gateway_state(store, tmp_path, request)

    def worker() -> str:
        def late(signum: int, frame: object) -> None:
            raise TimeoutError("the child waited for the parent's lock")

        signal.signal(signal.SIGALRM, late)
        signal.alarm(5)
        try:
            return _admit(state, "child-1")
        finally:
            signal.alarm(0)

    try:
        with state.gate._lock:  # as a thread of the parent's would hold it at the fork
            assert _in_child(worker) == "ok"
        assert _admit(state, "child-1") == "replayed"
    finally:
        state.close()


def test_an_inherited_sqlite_store_in_memory_keeps_its_copy_in_the_child() -> None:
    """A ``:memory:`` database is the process's own memory (no file, no file locks): the
    child goes on with its copy, so an id seen before the fork is still a replay there,
    rather than starting from an empty database."""
    from securetrade.gateway import SharedState
    from securetrade.verify import SqliteReplayStore

    state = SharedState.sqlite(":memory:")
    store = SqliteReplayStore(":memory:")
    now = time.time_ns() // 1_000_000
    try:
        assert _admit(state, "parent") == "ok"
        assert store.remember("parent", now + 30_000, now)

        def child() -> list[Any]:
            return [
                _admit(state, "parent"),
                _admit(state, "child"),
                store.remember("parent", now + 30_000, now),
                store.remember("child", now + 30_000, now),
            ]

        assert _in_child(child) == ["replayed", "ok", False, True]
    finally:
        state.close()
        store.close()


def test_an_async_market_stream_still_shows_its_own_attributes_through_the_fork_guard() -> None:
    """``AsyncClient.watch_ticker`` wraps the market stream in the fork guard; what the
    stream itself shows (its venue, symbol, options) reads through the wrapper as before,
    and a name neither has is still an AttributeError."""
    with Simulator() as sim:
        server = sim.serve()
        ws = sim.serve_ws(server)
        options = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}

        async def look() -> tuple[str, str, bool]:
            async with AsyncClient(sim.create_key(), journal=":memory:", **options) as client:
                stream: Any = client.watch_ticker("BTCUSDT", stream_url=ws.url)
                try:
                    missing = False
                    try:
                        stream.no_such_attribute  # noqa: B018 the lookup is the test
                    except AttributeError:
                        missing = True
                    return stream.symbol, stream.venue, missing
                finally:
                    await stream.aclose()

        symbol, venue, missing = asyncio.run(look())
    assert (symbol, venue, missing) == ("BTCUSDT", "binance", True)


@pytest.mark.redis
def test_workers_sharing_a_watermark_file_never_move_it_back(
    tmp_path: Path, redis_url: str
) -> None:
    """The Redis store's watermark file, inherited by every worker, holds the highest
    point any of them saw the store at: a worker that saw less (the master, which admitted
    one request before the fork) and closes last does not write it back below what another
    worker wrote; a store restored to a point between the two would go unnoticed at the next
    start. The worker's watermark saved every second is kept the same way."""
    from securetrade.gateway import SharedState

    mark = tmp_path / "gateway.watermark"
    state = SharedState.redis(redis_url, prefix=f"{{fork-{uuid.uuid4().hex[:8]}}}:", watermark=mark)
    try:
        assert _admit(state, "parent-1") == "ok"  # the master at seq 1, not saved yet

        def worker() -> int:
            assert [_admit(state, f"child-{n}") for n in range(5)] == ["ok"] * 5
            state.close()  # the worker's shutdown: its watermark to the file
            return int(mark.read_text().split()[1])

        seen = _in_child(worker)
        assert seen == 6
    finally:
        state.close()  # the master's shutdown: it saw seq 1 only
    assert int(mark.read_text().split()[1]) == 6


def test_an_inherited_blocking_stream_closes_as_nothing_in_the_child(
    venue: dict[str, Any], tmp_path: Path
) -> None:
    """A stream the parent is reading, used in a ``with`` block in the child: next() is
    refused, and the block's close() does nothing, at once (it waited 15 s on the parent's
    loop, which has no thread in the child, and raised TimeoutError over the refusal)."""
    ws = venue["ws"]
    with Client(venue["key"], journal=tmp_path / "j.sqlite3", **venue["options"]) as client:
        made = client.watch_orders(stream_url=ws.user_url)
        with pytest.raises(TimeoutError):
            made.next(timeout=0.5)  # subscribed, reading: its iterator is the parent's

        def child() -> list[Any]:
            signal.alarm(30)
            started = time.monotonic()

            def in_a_block() -> None:
                with made:
                    next(made)

            answers: list[Any] = [_refusal(in_a_block), _refusal(made.close)]
            return [*answers, time.monotonic() - started < 5]

        assert _in_child(child) == ["InheritedAcrossFork", "no error", True]
        client.place_order(BUY, idempotency_key="parent-stream")  # the parent's stream goes on
        assert made.next(timeout=10).client_order_id == client.core.venue.client_order_id(
            client.core.account, "parent-stream"
        )
        made.close()


def test_an_inherited_async_stream_refuses_asend_and_athrow_in_the_child(
    venue: dict[str, Any], tmp_path: Path
) -> None:
    """The fork guard reads the stream's own attributes through; a user stream is an async
    generator, so its ``asend(None)`` (``__anext__`` by another name) and ``athrow`` came
    through unguarded, and in the child ``asend`` ran the parent's generator: it connected
    to the venue from the child."""
    ws = venue["ws"]
    loop = asyncio.new_event_loop()
    client = AsyncClient(venue["key"], journal=tmp_path / "j.sqlite3", **venue["options"])
    try:
        made: Any = client.watch_orders(stream_url=ws.user_url)  # made, not iterated
        connections = ws.connections

        async def refused() -> list[str]:
            signal.alarm(20)
            answers = []
            for call in (lambda: made.asend(None), lambda: made.athrow(ValueError("x"))):
                try:
                    await asyncio.wait_for(call(), 5)
                    answers.append("no error")
                except InheritedAcrossFork as exc:
                    answers.append(_said(exc))
                except BaseException as exc:
                    answers.append(f"{type(exc).__name__}: {exc}")
            return answers

        assert _in_child(lambda: asyncio.run(refused())) == ["InheritedAcrossFork"] * 2
        assert ws.connections == connections  # the child did not connect
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
