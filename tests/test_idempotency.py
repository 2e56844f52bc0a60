"""One intent, at most one order: lost requests, lost responses, 5xx, races, restarts."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from securetrade import (
    AsyncClient,
    Client,
    ConnectFailed,
    IdempotencyKeyMismatch,
    IntentState,
    Journal,
    LimitOrder,
    MarketOrder,
    OrderStatus,
    Settings,
    UnresolvedOrder,
)
from securetrade.core import derive_client_order_id
from securetrade.sim import Simulator
from securetrade.transport import HttpRequest, HttpResponse, TransportFailure

ORDER = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000.00")
POST = {"method": "POST", "path": "/api/v3/order"}


def _held(sim: Simulator, client_order_id: str) -> int:
    return len(sim.market.orders_with_client_id(client_order_id))


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def test_same_key_same_order(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    first = client.place_order(ORDER, idempotency_key="k-1")
    again = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.010", price="60000"),
        idempotency_key="k-1",
    )
    assert again == first
    assert _held(sim, first.client_order_id) == 1
    assert _posts(sim) == 1


def test_a_replayed_answer_says_so(sim: Simulator, make_client: Any) -> None:
    """The call that sent the order gets it with replayed False; the same key again gets
    the journal's answer, the same order, with replayed True (a copier books it once)."""
    client = make_client(sim.create_key())
    first = client.place_order(ORDER, idempotency_key="k-replay")
    again = client.place_order(ORDER, idempotency_key="k-replay")
    assert (first.replayed, again.replayed) == (False, True)
    assert again == first  # one order, however it came back
    assert _posts(sim) == 1
    fresh = client.place_order(ORDER, idempotency_key="k-other")
    assert not fresh.replayed


def test_same_key_other_parameters_sends_nothing(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    client.place_order(ORDER, idempotency_key="k-2")
    before = sim.dialect.stats.requests
    with pytest.raises(IdempotencyKeyMismatch):
        client.place_order(
            LimitOrder(symbol="BTCUSDT", side="SELL", quantity="0.01", price="60000.00"),
            idempotency_key="k-2",
        )
    assert sim.dialect.stats.requests == before


@pytest.mark.parametrize("fault", ["drop_response", "drop_request", "status"])
def test_faults_never_double_an_order(sim: Simulator, make_client: Any, fault: str) -> None:
    """Whether the venue saw the order or not, the client ends with exactly one."""
    client = make_client(sim.create_key(), recv_window_ms=300, settings=Settings(settle_ms=200))
    sim.faults.inject(fault, **POST)
    order = client.place_order(ORDER, idempotency_key=f"fault-{fault}")
    assert sim.faults.fired == [(fault, "POST", "/api/v3/order")]
    assert order.status is OrderStatus.NEW
    assert _held(sim, order.client_order_id) == 1
    assert client.unresolved() == []


def test_lost_response_resolved_by_query_not_resend(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    sim.faults.inject("drop_response", **POST)
    order = client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))
    assert order.status is OrderStatus.FILLED
    assert _posts(sim) == 1  # asked by client order id; never sent the order twice
    assert client.audit.events("order.resolving")


def test_unreachable_venue_reports_not_placed(sim: Simulator) -> None:
    class Refusing:
        def send(self, request: HttpRequest) -> HttpResponse:
            if request.target.startswith("/api/v3/order") and request.method == "POST":
                raise TransportFailure("connection refused", sent=False)
            return SimTransportProxy.send(request)

        def close(self) -> None:
            pass

    SimTransportProxy = sim.transport()
    journal = Journal(":memory:")
    client = Client(sim.create_key(), transport=Refusing(), journal=journal)
    with pytest.raises(ConnectFailed):
        client.place_order(ORDER, idempotency_key="never-sent")
    cid = derive_client_order_id("binance", client.core.key.key_id, "never-sent")
    intent = journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.NOT_PLACED
    assert _held(sim, cid) == 0


def test_silent_venue_leaves_an_unresolved_intent(sim: Simulator) -> None:
    key = sim.create_key()
    client = Client(
        key,
        transport=sim.transport(),
        journal=":memory:",
        settings=Settings(resolve_timeout=0.3),
    )
    client.instruments()
    sim.faults.inject("drop_response", **POST)
    sim.faults.inject("status", method="GET", path="/api/v3/order", times=1000)
    with pytest.raises(UnresolvedOrder) as excinfo:
        client.place_order(ORDER, idempotency_key="in-the-dark")
    assert client.unresolved() == [excinfo.value.client_order_id]
    sim.faults.clear()
    # Once the venue answers again, the same call settles it without sending a second order.
    order = client.place_order(ORDER, idempotency_key="in-the-dark")
    assert order.client_order_id == excinfo.value.client_order_id
    assert _held(sim, order.client_order_id) == 1
    assert client.unresolved() == []


def test_threads_racing_on_one_key_send_once(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    client.instruments()
    results: list[str] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        results.append(client.place_order(ORDER, idempotency_key="race").order_id)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    assert len(set(results)) == 1
    assert _posts(sim) == 1


def test_tasks_racing_on_one_key_send_once(sim: Simulator) -> None:
    key = sim.create_key()

    async def run() -> set[str]:
        async with AsyncClient(key, transport=sim.async_transport(), journal=":memory:") as c:
            orders = await asyncio.gather(
                *(c.place_order(ORDER, idempotency_key="task-race") for _ in range(20))
            )
        return {o.order_id for o in orders}

    assert len(asyncio.run(run())) == 1
    assert _posts(sim) == 1


def test_restart_on_the_same_journal_returns_the_recorded_order(
    sim: Simulator, tmp_path: Path
) -> None:
    key = sim.create_key()
    path = tmp_path / "journal.sqlite3"
    with Client(key, transport=sim.transport(), journal=path) as first:
        order = first.place_order(ORDER, idempotency_key="survives")
    before = sim.dialect.stats.requests
    with Client(key, transport=sim.transport(), journal=path) as second:
        second.instruments()
        again = second.place_order(ORDER, idempotency_key="survives")
    assert again == order
    assert _posts(sim) == 1
    # Nothing but reads: exchangeInfo, the clock sync, and recovery's one look at open orders.
    assert sim.dialect.stats.by_path["GET /api/v3/openOrders"] == 2
    assert sim.dialect.stats.requests - before == 1 + 3 + 1


def test_crash_after_send_is_resolved_on_restart(sim: Simulator, tmp_path: Path) -> None:
    """A process that died between sending and recording leaves SENDING; the next one asks."""
    key = sim.create_key()
    path = tmp_path / "journal.sqlite3"

    class DiesAfterSending:
        def __init__(self) -> None:
            self.inner = sim.transport()

        def send(self, request: HttpRequest) -> HttpResponse:
            response = self.inner.send(request)
            if request.method == "POST":
                raise SystemExit("killed")  # the response never reaches the journal
            return response

        def close(self) -> None:
            pass

    crashing = Client(key, transport=DiesAfterSending(), journal=path)
    with pytest.raises(SystemExit):
        crashing.place_order(ORDER, idempotency_key="crash")
    cid = derive_client_order_id("binance", key.key_id, "crash")
    journal = Journal(path)
    intent = journal.get(cid)
    assert intent is not None
    assert intent.state is IntentState.SENDING
    journal.close()
    with Client(key, transport=sim.transport(), journal=path) as restarted:
        assert restarted.unresolved() == [cid]
        order = restarted.place_order(ORDER, idempotency_key="crash")
    assert order.client_order_id == cid
    assert _held(sim, cid) == 1
    assert order.replayed  # the dead process sent it: not this call's order


def test_an_order_found_at_the_venue_under_an_earlier_send_is_replayed(
    sim: Simulator, tmp_path: Path
) -> None:
    """A call that dies between the venue's answer and its record leaves the row SENDING.
    The next call with the key (no recovery run first) asks the venue and finds the order:
    it resolved it, but did not send it, so the answer is marked replayed; a caller that
    books fills must not count the earlier send's fill again."""
    key = sim.create_key()
    path = tmp_path / "journal.sqlite3"

    class Died(BaseException):
        pass

    def die_after_response(name: str) -> None:
        if name == "after_response":
            raise Died(name)

    dying = Client(key, transport=sim.transport(), journal=path)
    dying.core.checkpoint = die_after_response  # type: ignore[method-assign]
    with pytest.raises(Died):
        dying.place_order(ORDER, idempotency_key="found")
    cid = derive_client_order_id("binance", key.key_id, "found")
    settings = Settings(recover_on_start=False)
    with Client(key, transport=sim.transport(), journal=path, settings=settings) as next_one:
        assert next_one.unresolved() == [cid]  # SENDING: nothing recorded the answer
        order = next_one.place_order(ORDER, idempotency_key="found")
    dying.close()
    assert order.client_order_id == cid
    assert order.replayed
    assert (_held(sim, cid), _posts(sim)) == (1, 1)


def test_client_order_id_is_deterministic_and_fits_every_venue() -> None:
    a = derive_client_order_id("binance", "acct", "key-1")
    assert a == derive_client_order_id("binance", "acct", "key-1")
    assert a != derive_client_order_id("binance", "acct", "key-2")
    assert a != derive_client_order_id("binance", "other", "key-1")
    assert re.fullmatch(r"[0-9a-z]{32}", a)  # OKX: <=32 alphanumerics; Binance: <=36


def test_duplicate_client_id_at_venue_is_adopted(sim: Simulator, make_client: Any) -> None:
    """If an earlier attempt landed unseen, the venue's -2010 duplicate leads to adoption."""
    key = sim.create_key()
    client = make_client(key)
    client.instruments()
    cid = derive_client_order_id("binance", key.key_id, "dup")
    # The earlier attempt: placed directly at the venue with our derived id.
    account = sim.dialect.keys[key.key_id].account
    sim.market.place(
        account,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=ORDER.quantity,
        price=ORDER.price,
        time_in_force="GTC",
        client_order_id=cid,
    )
    order = client.place_order(ORDER, idempotency_key="dup")
    assert order.client_order_id == cid
    assert _held(sim, cid) == 1


@pytest.mark.parametrize("fault", ["drop_response", "drop_request", "status"])
def test_async_client_over_tls_never_doubles_an_order(
    sim: Simulator, tls_options: Any, fault: str
) -> None:
    """The async transport sorts a lost connection as 'maybe sent', like the sync one."""
    server = sim.serve()
    key = sim.create_key()

    async def run() -> str:
        async with AsyncClient(
            key,
            journal=":memory:",
            recv_window_ms=300,
            settings=Settings(settle_ms=200),
            **tls_options(server),
        ) as client:
            await client.instruments()
            sim.faults.inject(fault, **POST)
            order = await client.place_order(ORDER, idempotency_key=f"async-{fault}")
            assert client.unresolved() == []
            return order.client_order_id

    cid = asyncio.run(run())
    assert sim.faults.fired == [(fault, "POST", "/api/v3/order")]
    assert _held(sim, cid) == 1


def test_async_replayed_answer_says_so(sim: Simulator, tls_options: Any) -> None:
    """The async client marks the journal's answer to a repeated key as replayed too."""
    server = sim.serve()
    key = sim.create_key()

    async def run() -> tuple[Any, Any]:
        async with AsyncClient(key, journal=":memory:", **tls_options(server)) as client:
            first = await client.place_order(ORDER, idempotency_key="async-replay")
            again = await client.place_order(ORDER, idempotency_key="async-replay")
            return first, again

    first, again = asyncio.run(run())
    assert (first.replayed, again.replayed) == (False, True)
    assert again == first
    assert _held(sim, first.client_order_id) == 1


def test_async_orders_are_durable_before_their_first_byte(
    sim: Simulator, tls_options: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The async driver batches attempt records (group commit); still, each order's attempt
    is committed before the venue places that order."""
    import time

    from securetrade.core import Journal

    committed: dict[str, float] = {}
    placed: dict[str, float] = {}

    class Recording(Journal):
        """An attempt counts as committed once the flush after its commit has returned."""

        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.pending: set[str] = set()

        def sending_many(self, attempts: Any, *, flush: bool = True) -> list[bool]:
            self.pending.update(cid for cid, _, _ in attempts)
            return super().sending_many(attempts, flush=flush)

        def begin(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("sending_deadline_ms") is not None:  # a claim fused with attempt 1
                self.pending.add(args[1])
            return super().begin(*args, **kwargs)

        def flush(self) -> None:
            waiting = set(self.pending)
            super().flush()
            done = time.monotonic()
            committed.update((cid, done) for cid in waiting)
            self.pending -= waiting

    place = sim.market.place

    def timed_place(*args: Any, **kwargs: Any) -> Any:
        placed[kwargs["client_order_id"]] = time.monotonic()
        return place(*args, **kwargs)

    monkeypatch.setattr(sim.market, "place", timed_place)
    server = sim.serve()
    key = sim.create_key()
    journal = Recording(tmp_path / "journal.sqlite3")

    async def run() -> list[str]:
        async with AsyncClient(key, journal=journal, **tls_options(server)) as client:
            await client.recover()
            orders = await asyncio.gather(
                *(client.place_order(ORDER, idempotency_key=f"group-{i}") for i in range(20))
            )
        return [o.client_order_id for o in orders]

    cids = asyncio.run(run())
    journal.close()
    assert len(set(cids)) == 20
    assert set(placed) == set(committed) == set(cids)
    assert all(committed[cid] <= placed[cid] for cid in cids)
