"""The fault matrix, continued (research note, section 5.3): rows 3c, 5c, 9b, 12b, 14, 15,
16 and 17, each against the simulator over real TLS on loopback, each ending with the
oracle of section 5.2 (tests/oracle.py). Rows whose behaviour depends on the journal's
backend run on SQLite and on a real redis-server.

Where a row's guarantee rests on one mechanism (a setting, a resync, a margin), a control
test switches that mechanism off and shows the failure it prevents, so that the row's test
is known to be able to fail.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from oracle import assert_oracle
from securetrade import (
    AmbiguousOutcome,
    AsyncClient,
    Client,
    IdempotencyKeyExpired,
    OrderNotFound,
    Settings,
    UnresolvedOrder,
)
from securetrade.clock import VenueClock
from securetrade.core import IntentState, Journal, JournalStore, RedisJournal
from securetrade.models import OrderStatus
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues import get_venue
from test_fault_matrix import FAST, LIMIT, MARKET, POST, RECV_MS, SETTLE_MS, _client, _posts

SYMBOL = "BTCUSDT"


def _state(journal: JournalStore, client: Client, key: str) -> IntentState:
    intent = journal.get(client.core.venue.client_order_id(client.core.account, key))
    assert intent is not None
    return intent.state


def _eventually(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Open the journal of this test (again, as a restart or another host would)."""
    opened: list[Any] = []
    prefix = f"fm:{secrets.token_hex(4)}:"

    def make(**options: Any) -> JournalStore:
        journal: JournalStore
        if request.param == "sqlite":
            journal = Journal(tmp_path / "journal.sqlite3", **options)
        else:
            url = request.getfixturevalue("redis_url")
            journal = RedisJournal.create(url, prefix=prefix, **options)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


# --- 3c: no deadline, open-only dedupe, the order lands long after the client gave up --------


def _deadline_less() -> Any:
    """The Binance adapter as a venue without request deadlines would be (OANDA-like)."""
    venue = copy.copy(get_venue("binance"))
    venue.request_deadline = False  # type: ignore[attr-defined]
    return venue


LAND_S = 6.0  # the research note's 30 s, scaled down: well past all the client asks (~3 s)


def test_3c_deadline_less_venue_keeps_the_intent_unknown_then_adopts_the_late_order(
    journal_path: Path, tls_options: Any
) -> None:
    with Simulator(deadline="none") as sim:
        server = sim.serve()
        client = _client(
            sim, server, journal_path, tls_options, venue=_deadline_less(), timeout=0.5,
            settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=1.0),
        )  # fmt: skip
        client.recover()
        sim.faults.inject("delay", seconds=LAND_S, **POST)
        with pytest.raises(UnresolvedOrder) as first:
            client.place_order(LIMIT, idempotency_key="3c")
        cid = first.value.client_order_id
        assert client.unresolved() == [cid]
        assert _state(client.journal, client, "3c") is IntentState.UNKNOWN
        # The caller tries again before the order lands: asked, still absent, not resent.
        with pytest.raises(UnresolvedOrder):
            client.place_order(LIMIT, idempotency_key="3c")
        assert len(_posts(sim)) == 1
        assert sim.market.orders_with_client_id(cid) == []
        _eventually(lambda: len(sim.market.orders_with_client_id(cid)) == 1)
        report = client.recover()  # the order landed: UNKNOWN -> ACKED
        assert [o.client_order_id for o in report.resolved] == [cid]
        assert _state(client.journal, client, "3c") is IntentState.ACKED
        assert client.unresolved() == []
        placed = client.place_order(LIMIT, idempotency_key="3c")
        client.close()
        assert placed.order_id == str(sim.market.orders_with_client_id(cid)[0].order_id)
        assert len(_posts(sim)) == 1
        j = Journal(journal_path)
        try:
            assert_oracle(sim, j, client.core.account, ["3c"])
        finally:
            j.close()


def test_3c_control_a_client_that_assumes_a_deadline_doubles_the_late_market_order(
    journal_path: Path, tls_options: Any
) -> None:
    """The same venue, driven as if "not found" after recvWindow + settle were proof: the
    client resends, then the held-up original executes too (a filled market order is not
    open, so open-only dedupe lets it through). This is what 3c's UNKNOWN prevents."""
    with Simulator(deadline="none") as sim:
        server = sim.serve()
        client = _client(sim, server, journal_path, tls_options, timeout=0.5)
        client.recover()
        sim.faults.inject("delay", seconds=LAND_S, **POST)
        placed = client.place_order(MARKET, idempotency_key="3c-control")
        client.close()
        _eventually(lambda: len(sim.market.orders_with_client_id(placed.client_order_id)) == 2)


# --- 5c: "429 but executed" behind a misbehaving proxy -----------------------------------------


def test_5c_rate_limit_answer_treated_as_ambiguous_finds_the_executed_order(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(
        sim, server, journal_path, tls_options,
        settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=10.0, ambiguous_rate_limits=True),
    )  # fmt: skip
    client.recover()
    sim.faults.inject("rate_limit_after", seconds=1, **POST)  # executed, then "429"
    placed = client.place_order(MARKET, idempotency_key="5c")
    client.close()
    assert placed.status is OrderStatus.FILLED
    assert len(_posts(sim)) == 1
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    j = Journal(journal_path)
    try:
        assert_oracle(sim, j, client.core.account, ["5c"])
    finally:
        j.close()


def test_5c_rate_limit_answer_not_yet_executed_is_resent_after_the_deadline(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    """The same setting with a 429 that really refused the order: asked, absent after the
    deadline, then sent again with the same id. One order."""
    client = _client(
        sim, server, journal_path, tls_options,
        settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=10.0, ambiguous_rate_limits=True),
    )  # fmt: skip
    client.recover()
    sim.faults.inject("rate_limit", seconds=1, **POST)
    placed = client.place_order(LIMIT, idempotency_key="5c-refused")
    client.close()
    posts = _posts(sim)
    # Plus any resend the venue refused as stale (-1021), which a loaded machine can cause
    # with this test's short receive window: refused, so never an order.
    assert len(posts) == 2 + sim.dialect.stats.rejections.get(-1021, 0)
    assert posts[1] - posts[0] >= (RECV_MS + SETTLE_MS) / 1000 - 0.05
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1


def test_5c_control_trusting_the_429_doubles_the_market_order(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)  # 429 means "not processed"
    client.recover()
    sim.faults.inject("rate_limit_after", seconds=1, **POST)
    placed = client.place_order(MARKET, idempotency_key="5c-control")
    client.close()
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 2


# --- 9b: the venue's clock drifts while the bot runs ----------------------------------------------

DRIFT_MS_PER_S = 200  # scaled up: the window (500 ms) is crossed within 2.5 s


def _drift(sim: Simulator, stop: threading.Event) -> None:
    # From elapsed time, not per wake-up: a loaded machine wakes this thread less often.
    base, started = sim.dialect.clock_offset_ms, time.monotonic()
    while not stop.wait(0.02):
        sim.dialect.clock_offset_ms = base + int((time.monotonic() - started) * DRIFT_MS_PER_S)


def _run_while_drifting(
    journal: Path, tls_options: Any, resync_every: float | None, prefix: str
) -> tuple[Simulator, Client, list[str]]:
    sim = Simulator()
    server = sim.serve()
    client = _client(
        sim, server, journal, tls_options, recv_window_ms=500,
        clock=VenueClock(resync_every=resync_every),
    )  # fmt: skip
    client.recover()
    stop = threading.Event()
    drifter = threading.Thread(target=_drift, args=(sim, stop), daemon=True)
    drifter.start()
    keys = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < 4.0:  # 800 ms of drift: past the window
            key = f"{prefix}-{len(keys)}"
            client.place_order(LIMIT, idempotency_key=key)
            keys.append(key)
            time.sleep(0.2)
    finally:
        stop.set()
        drifter.join()
        client.close()
    return sim, client, keys


def test_9b_drifting_venue_clock_is_followed_by_periodic_resync(
    journal_path: Path, tls_options: Any
) -> None:
    sim, client, keys = _run_while_drifting(journal_path, tls_options, 0.5, "9b")
    try:
        assert sim.dialect.stats.rejections.get(-1021, 0) == 0  # never refused as stale
        assert sim.dialect.stats.by_path["GET /api/v3/time"] >= 3 * 4  # resynced as it went
        assert sim.dialect.clock_offset_ms >= 700
        assert len(_posts(sim)) == len(keys)
        j = Journal(journal_path)
        try:
            verdict = assert_oracle(sim, j, client.core.account, keys)
        finally:
            j.close()
        assert verdict.orders == len(keys)
    finally:
        sim.close()


def test_9b_control_without_periodic_resync_the_venue_refuses_stale_timestamps(
    journal_path: Path, tls_options: Any
) -> None:
    """Syncing only when refused still places each order once (row 9a), but the venue
    refuses requests first: the periodic resync above is what keeps that from happening."""
    sim, client, keys = _run_while_drifting(journal_path, tls_options, None, "9b-control")
    try:
        assert sim.dialect.stats.rejections.get(-1021, 0) >= 1
        j = Journal(journal_path)
        try:
            assert_oracle(sim, j, client.core.account, keys)
        finally:
            j.close()
    finally:
        sim.close()


# --- 12b: Redis loses the claim between claim and send, two hosts ------------------------------


def _host(
    sim: Simulator,
    server: HttpsServer,
    tls_options: Any,
    key: Any,
    url: str,
    prefix: str,
    *,
    recover: bool = True,
) -> Client:
    """A bot on its own host: its own connection to the shared Redis journal."""
    journal = RedisJournal.create(url, prefix=prefix, loss_window_ms=RECV_MS + SETTLE_MS + 200)
    settings = Settings(settle_ms=SETTLE_MS, resolve_timeout=10.0, recover_on_start=recover)
    return _client(sim, server, journal, tls_options, key=key, settings=settings)


@pytest.mark.parametrize("flushes", [1, 2], ids=["claim-lost", "claim-lost-twice"])
def test_12b_claim_lost_in_redis_both_hosts_ask_first_one_create(
    sim: Simulator, server: HttpsServer, tls_options: Any, redis_url: str, flushes: int
) -> None:
    """Host A claims the key; Redis loses everything (FLUSHALL); host B submits the same
    key and derives the same id. B's claim is made after a noted loss, so B asks the venue
    first and waits out the window of any attempt recorded before the loss, then sends.
    A's attempt commit then fails (B holds attempt 1, or, flushed again, no row at all)
    and A asks too. A market order, so open-only dedupe could not save a second send.

    A new key's claim is fused with its first attempt, so what the flush takes here is
    A's attempt 1 as well: A's request, stamped before the loss, reaches the venue only
    after B waited out the loss window, and the venue refuses it as outside its
    recvWindow (-1021). A then finds B's order. One order, never two."""
    key = sim.create_key()
    prefix = f"12b:{secrets.token_hex(4)}:"
    a = _host(sim, server, tls_options, key, redis_url, prefix)
    b = _host(sim, server, tls_options, key, redis_url, prefix)
    a.recover()
    b.recover()
    admin = redis.Redis.from_url(redis_url)
    seen: dict[str, Any] = {}

    def lose_the_claim(name: str) -> None:
        if name != "after_claim_commit" or seen:
            return
        admin.flushall()
        seen["b"] = b.place_order(MARKET, idempotency_key="12b")
        if flushes == 2:
            admin.flushall()

    a.core.checkpoint = lose_the_claim  # type: ignore[method-assign]
    placed = a.place_order(MARKET, idempotency_key="12b")
    a.close()
    b.close()
    admin.close()
    assert placed.client_order_id == seen["b"].client_order_id  # the same id on both hosts
    assert placed.order_id == seen["b"].order_id
    # B's POST made the order; any other one was A's lost attempt, refused as too old.
    assert len(_posts(sim)) - sim.dialect.stats.rejections.get(-1021, 0) == 1
    journal = RedisJournal(redis_url, prefix=prefix)
    try:
        assert_oracle(sim, journal, key.key_id, ["12b"])
    finally:
        journal.close()


def test_12b_undetected_loss_of_an_open_order_is_caught_by_the_venue(
    sim: Simulator, server: HttpsServer, tls_options: Any, redis_url: str
) -> None:
    """A failover that drops the intent but keeps the journal's marker cannot be seen: the
    second host claims afresh. Its recovery reports the open order as an orphan and the
    claim adopts it; with recovery off, the venue refuses the second send as a duplicate
    id among open orders, and that order is adopted. (The residual risk is a filled market
    order on such a venue: docs/idempotency.md.)"""
    key = sim.create_key()
    prefix = f"12b-open:{secrets.token_hex(4)}:"
    a = _host(sim, server, tls_options, key, redis_url, prefix)
    first = a.place_order(LIMIT, idempotency_key="12b-open")
    a.close()
    admin = redis.Redis.from_url(redis_url)
    for recovering in (True, False):
        admin.delete(f"{{{prefix}}}intent:{first.client_order_id}")  # lost; the marker survives
        b = _host(sim, server, tls_options, key, redis_url, prefix, recover=recovering)
        if recovering:
            assert [o.client_order_id for o in b.recover().orphans] == [first.client_order_id]
        again = b.place_order(LIMIT, idempotency_key="12b-open")
        b.close()
        assert again.order_id == first.order_id
    admin.close()
    assert sim.dialect.stats.rejections.get(-2010) == 1  # refused once: recovery was off
    assert len(sim.market.orders_with_client_id(first.client_order_id)) == 1
    journal = RedisJournal(redis_url, prefix=prefix)
    try:
        assert_oracle(sim, journal, key.key_id, ["12b-open"])
    finally:
        journal.close()


# --- 14: read endpoints fail throughout reconciliation ------------------------------------------


def _gaps(sim: Simulator, path: str) -> list[float]:
    times = [t for t, method, p in sim.dialect.stats.arrivals if (method, p) == ("GET", path)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def test_14_failing_reads_never_decide_an_intent(
    sim: Simulator, server: HttpsServer, backend: Callable[..., Any], tls_options: Any
) -> None:
    key = sim.create_key()
    settings = Settings(settle_ms=SETTLE_MS, resolve_timeout=3.0)
    first = _client(sim, server, backend(), tls_options, key=key, settings=settings)
    first.place_order(LIMIT, idempotency_key="14-acked")
    sim.faults.inject("drop_response", **POST)  # executed, answer lost...
    sim.faults.inject("drop_request", method="GET", path="/api/v3/order", times=2)
    sim.faults.inject("status", status=503, method="GET", path="/api/v3/order", times=100_000)
    sim.faults.inject("status", status=502, method="GET", path="/api/v3/openOrders", times=3)
    with pytest.raises(UnresolvedOrder):  # ...and every read about it fails
        first.place_order(MARKET, idempotency_key="14-unknown")
    first.close()
    journal = backend()
    assert _state(journal, first, "14-unknown") is IntentState.UNKNOWN

    # Restart while the reads still fail: the open-orders read fails 3 times, then the
    # order query fails until resolve_timeout. Nothing is decided from a failed read.
    restarted = _client(sim, server, journal, tls_options, key=key, settings=settings)
    before = len(_gaps(sim, "/api/v3/order"))
    report = restarted.recover()
    assert report.unresolved == (restarted.core.venue.client_order_id(key.key_id, "14-unknown"),)
    assert report.not_placed == ()
    assert _state(journal, restarted, "14-unknown") is IntentState.UNKNOWN
    assert _state(journal, restarted, "14-acked") is IntentState.ACKED
    gaps = _gaps(sim, "/api/v3/order")[before:]
    assert 3 <= len(gaps) <= 12  # retried, not hammered: ~3 s of exponential backoff
    assert max(gaps) >= 0.4
    assert gaps[-1] > gaps[0]

    # The venue answers again: the same intent resolves to the order that executed.
    sim.faults.clear()
    report = restarted.recover()
    restarted.close()
    assert [o.client_order_id for o in report.resolved] == [
        restarted.core.venue.client_order_id(key.key_id, "14-unknown")
    ]
    assert _state(journal, restarted, "14-unknown") is IntentState.FILLED
    assert len(_posts(sim)) == 2
    assert_oracle(sim, journal, key.key_id, ["14-acked", "14-unknown"])


def test_14_reconciliation_gate_stays_closed_while_reads_fail(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    """When even the open-orders read keeps failing, recovery cannot finish: no new order
    is sent (the account's gate stays closed), and no row changes."""
    key = sim.create_key()
    first = _client(sim, server, journal_path, tls_options, key=key)
    first.place_order(LIMIT, idempotency_key="14-gate-acked")
    first.close()
    sim.faults.inject("status", status=503, method="GET", path="/api/v3/openOrders", times=100)
    restarted = _client(sim, server, journal_path, tls_options, key=key)
    before = len(_gaps(sim, "/api/v3/openOrders")) + 1  # the first client's read came first
    with pytest.raises(AmbiguousOutcome):
        restarted.place_order(LIMIT, idempotency_key="14-gate-new")
    assert len(_posts(sim)) == 1
    gaps = _gaps(sim, "/api/v3/openOrders")[before:]
    assert len(gaps) >= 3
    # Backed off between the reads: the retry policy never waits less than 50 ms, a floor
    # that a loaded machine can only lengthen (reads with no pause arrive milliseconds apart).
    assert min(gaps) >= 0.049
    sim.faults.clear()
    restarted.place_order(LIMIT, idempotency_key="14-gate-new")
    restarted.close()
    j = Journal(journal_path)
    try:
        assert j.get(restarted.core.venue.client_order_id(key.key_id, "14-gate-acked")).state is (  # type: ignore[union-attr]
            IntentState.ACKED
        )
        assert_oracle(sim, j, key.key_id, ["14-gate-acked", "14-gate-new"])
    finally:
        j.close()


# --- 15: the venue's history expired; the journal's terminal state wins --------------------------


def test_15_expired_history_the_journal_state_wins_and_nothing_is_resent(
    journal_path: Path, tls_options: Any
) -> None:
    with Simulator(history_ttl_ms=300) as sim:
        server = sim.serve()
        key = sim.create_key()
        client = _client(sim, server, journal_path, tls_options, key=key)
        placed = client.place_order(LIMIT, idempotency_key="15")
        canceled = client.cancel_order(SYMBOL, client_order_id=placed.client_order_id)
        assert canceled.status is OrderStatus.CANCELED
        assert _state(client.journal, client, "15") is IntentState.CANCELED
        time.sleep(0.4)  # the venue forgets the cancelled, unfilled order
        with pytest.raises(OrderNotFound):
            client.get_order(SYMBOL, client_order_id=placed.client_order_id)
        client.close()

        restarted = _client(sim, server, journal_path, tls_options, key=key)
        report = restarted.recover()
        assert (report.resolved, report.not_placed, report.unresolved) == ((), (), ())
        again = restarted.place_order(LIMIT, idempotency_key="15")
        restarted.close()
        assert (again.order_id, again.status) == (placed.order_id, OrderStatus.CANCELED)
        assert len(_posts(sim)) == 1  # 0 creates after the restart
        j = Journal(journal_path)
        try:
            assert j.get(placed.client_order_id).state is IntentState.CANCELED  # type: ignore[union-attr]
            assert_oracle(sim, j, key.key_id, ["15"])
        finally:
            j.close()


# --- 16: fills reported twice; partial fill, then cancel -------------------------------------


def test_16_fills_are_deduped_and_the_partial_fill_survives_the_cancel(
    sim: Simulator, server: HttpsServer, backend: Callable[..., Any], tls_options: Any
) -> None:
    key = sim.create_key()
    journal = backend()
    client = _client(sim, server, journal, tls_options, key=key)
    resting = client.place_order(LIMIT, idempotency_key="16")
    cid = resting.client_order_id
    sim.market.trade(int(resting.order_id), Decimal("0.0004"))
    once = client.fills(SYMBOL, client_order_id=cid)
    twice = client.fills(SYMBOL, client_order_id=cid)  # the same trade reported again
    assert [f.trade_id for f in once] == [f.trade_id for f in twice]
    assert len(twice) == 1
    sim.market.trade(int(resting.order_id), Decimal("0.0003"))
    canceled = client.cancel_order(SYMBOL, client_order_id=cid)
    assert (canceled.status, canceled.filled_quantity) == (OrderStatus.CANCELED, Decimal("0.0007"))
    fills = client.fills(SYMBOL, client_order_id=cid)  # the first trade, a third time
    assert len(fills) == 2
    assert (
        sum(f.quantity for f in fills)
        == Decimal("0.0007")
        == sim.market.orders[int(resting.order_id)].filled
    )
    assert _state(journal, client, "16") is IntentState.CANCELED
    replayed = client.place_order(LIMIT, idempotency_key="16")
    assert (replayed.status, replayed.filled_quantity) == (OrderStatus.CANCELED, Decimal("0.0007"))

    # A market order: its answer carries the fill, and the trades query reports it again.
    market = client.place_order(MARKET, idempotency_key="16-market")
    assert len(market.fills) == 1
    assert journal.fills(market.client_order_id) == list(market.fills)
    assert client.fills("ETHUSDT", client_order_id=market.client_order_id) == list(market.fills)
    client.close()
    assert len(_posts(sim)) == 2
    assert_oracle(sim, journal, key.key_id, ["16", "16-market"], fills_complete=["16", "16-market"])


def test_16_async_client_records_fills_the_same_way(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    key = sim.create_key()

    async def run() -> tuple[str, list[Any], list[Any]]:
        async with AsyncClient(
            key, journal=journal_path, recv_window_ms=RECV_MS, settings=FAST, **tls_options(server)
        ) as client:
            placed = await client.place_order(LIMIT, idempotency_key="16-async")
            sim.market.trade(int(placed.order_id), Decimal("0.0002"))
            first = await client.fills(SYMBOL, client_order_id=placed.client_order_id)
            again = await client.fills(SYMBOL, client_order_id=placed.client_order_id)
            return placed.client_order_id, first, again

    cid, first, again = asyncio.run(run())
    assert first == again
    assert [f.quantity for f in again] == [Decimal("0.0002")]
    j = Journal(journal_path)
    try:
        assert j.fills(cid) == again
        assert_oracle(sim, j, key.key_id, ["16-async"], fills_complete=["16-async"])
    finally:
        j.close()


# --- 17: retention: purged to a tombstone, then the key is free again ---------------------------

RETENTION_S = 0.5
TOMBSTONE_S = 1.5


def test_17_purged_key_is_refused_while_its_tombstone_lasts(
    sim: Simulator, server: HttpsServer, backend: Callable[..., Any], tls_options: Any
) -> None:
    key = sim.create_key()
    journal = backend(retention=RETENTION_S, tombstone_ttl=TOMBSTONE_S)
    client = _client(sim, server, journal, tls_options, key=key, settings=FAST)
    first = client.place_order(MARKET, idempotency_key="17")
    working = client.place_order(LIMIT, idempotency_key="17-working")  # ACKED: kept
    time.sleep(RETENTION_S + 0.2)
    journal.purge()
    assert journal.get(first.client_order_id) is None
    assert journal.fills(first.client_order_id) == []
    assert journal.get(working.client_order_id) is not None  # still working at the venue
    with pytest.raises(IdempotencyKeyExpired) as refused:
        client.place_order(MARKET, idempotency_key="17")
    assert refused.value.client_order_id == first.client_order_id
    assert len(_posts(sim)) == 2  # nothing sent for the purged key
    assert_oracle(sim, journal, key.key_id, ["17-working"])
    assert len(sim.market.orders_with_client_id(first.client_order_id)) == 1

    time.sleep(TOMBSTONE_S + 0.2)  # the tombstone ends: the key starts a new request (Stripe)
    journal.purge()
    second = client.place_order(MARKET, idempotency_key="17")
    client.close()
    assert second.client_order_id == first.client_order_id
    assert second.order_id != first.order_id
    assert len(_posts(sim)) == 3


def test_journal_of_the_previous_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    """A version 2 file (no fills, no tombstones) opens, keeps its rows and gains both."""
    path = tmp_path / "old.sqlite3"
    journal = Journal(path)
    journal.begin("k", "st" + "3" * 30, "acct", SYMBOL, "fp")
    journal.close()
    import sqlite3

    db = sqlite3.connect(path)
    db.executescript(
        "DROP TRIGGER IF EXISTS fills_of_answer; DROP TABLE fills; DROP TABLE tombstones; "
        "PRAGMA user_version=2;"
    )
    db.close()
    journal = Journal(path)
    try:
        assert journal.get("st" + "3" * 30) is not None
        assert journal.fills("st" + "3" * 30) == []
        assert journal.purge() == 0
    finally:
        journal.close()


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()
