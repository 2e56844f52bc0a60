"""The order state machine under attack: each failure an independent harness found, as a
test named for it (issue 16), and the transition table itself.

Every interleaving here is forced deterministically (journal calls that wait for the test,
checkpoints that block one thread while another goes on), and every verdict is read from
the venue's side: the simulator's order book and arrival log, never the client's opinion.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade import (
    Client,
    InvalidRequest,
    LimitOrder,
    MarketOrder,
    Policy,
    PolicyViolation,
    RetryableError,
    ScopeError,
    SecureTradeError,
)
from securetrade.core import IntentState, Journal, JournalStore, RedisJournal, Settings, View
from securetrade.core import journal as journal_module
from securetrade.core import store as store_module
from securetrade.core.states import GUARDED, SOURCES, may_write
from securetrade.sim import HttpsServer, Simulator

MARKET = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")
LIMIT = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="90000")
POST = {"method": "POST", "path": "/api/v3/order"}
ELSEWHERE = "another-host:4242:feedface"  # an owner on another host: alive as far as we know


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


_MADE: list[Client] = []  # every client a test built, closed when the test ends


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the clients a test left open: their pooled TLS sockets would otherwise wait
    for the garbage collector, whose ResourceWarning lands in whichever test runs then."""
    yield
    made = _MADE[:]
    _MADE.clear()
    for client in made:
        client.close()


def _client(
    sim: Simulator, server: HttpsServer, journal: JournalStore | str, tls: Any, **kw: Any
) -> Client:
    kw.setdefault("key", None)
    key = kw.pop("key") or sim.create_key()
    client = Client(key, journal=journal, **tls(server), **kw)
    _MADE.append(client)
    return client


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``store(cls=None)`` opens this test's journal (again), optionally as a subclass."""
    opened: list[Any] = []
    prefix = f"sm:{secrets.token_hex(4)}:"
    created = False

    def make(cls: type | None = None) -> Any:
        nonlocal created
        if request.param == "sqlite":
            journal = (cls or Journal)(tmp_path / "journal.sqlite3")
        else:
            kind = cls or RedisJournal
            url = request.getfixturevalue("redis_url")
            journal = kind(url, prefix=prefix, create=not created)
            created = True
        opened.append(journal)
        return journal

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for journal in opened:
        journal.close()


def _sending_row(journal: Any, sim: Simulator, key: Any, idem: str, deadline_ms: int) -> str:
    """The row a bot leaves when it is killed while waiting out a lost POST: SENDING,
    attempt 1, its owner on another host; nothing reached the venue."""
    from securetrade.venues import get_venue

    cid = get_venue("binance").client_order_id(key.key_id, idem)
    journal.begin(idem, cid, key.key_id, "BTCUSDT", MARKET.fingerprint())
    assert journal.sending(cid, View(IntentState.PENDING, 0), deadline_ms)
    _set_owner(journal, cid, ELSEWHERE)
    return cid


def _set_owner(journal: Any, cid: str, owner: str) -> None:
    if isinstance(journal, Journal):
        journal._db.execute("UPDATE intents SET owner = ? WHERE client_order_id = ?", (owner, cid))
    else:
        journal._redis.hset(journal._intent_key(cid), "owner", owner)


# --- 1: a stale recovery over a live takeover -----------------------------------------------------


def test_failure_01_stale_recovery_never_overwrites_a_live_takeover(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """P1's POST was lost and P1 was killed (row SENDING, attempt 1, deadline passed). R
    recovers: it reads its snapshot, then its reads are slow. Meanwhile B takes the key over
    and sends attempt 2, which the venue holds for 2 s. R, resuming, finds the id absent
    after attempt 1's deadline and concludes NOT_PLACED from its stale snapshot: that write
    must not apply. C then retries the key: it must get B's order, not send a third.
    The verdict is the venue's: one order for the key."""
    key = sim.create_key()
    snapshot_taken, resume = threading.Event(), threading.Event()

    class SlowSnapshot:  # mixed into the store class: R's recovery stalls after its read
        def unfinished(self, account: str) -> Any:
            intents = super().unfinished(account)  # type: ignore[misc]
            snapshot_taken.set()
            assert resume.wait(20)
            return intents

    base = Journal if store.kind == "sqlite" else RedisJournal
    slow = type("Slow", (SlowSnapshot, base), {})
    setup = store()
    past = int(time.time() * 1000) - 60_000
    cid = _sending_row(setup, sim, key, "k1", past)
    # The settle margin covers the venue's 2 s hold with room for a loaded host: the venue
    # may run that order up to 2.5 s past its timestamp (0.5 s window, then the hold), and
    # a stalled thread or a clock estimate off by a second must not turn that into "absent".
    settings = Settings(settle_ms=6000, resolve_timeout=12.0)
    r = _client(sim, server, store(slow), tls_options, key=key, settings=settings,
                recv_window_ms=500)  # fmt: skip
    live = Settings(settle_ms=6000, resolve_timeout=12.0, recover_on_start=False)
    b = _client(sim, server, store(), tls_options, key=key, recv_window_ms=500, settings=live)
    c = _client(sim, server, store(), tls_options, key=key, recv_window_ms=500, settings=live)
    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = call()
            except BaseException as exc:
                results[name] = exc

        thread = threading.Thread(target=target, name=name)
        thread.start()
        return thread

    recovering = run("r", r.recover)
    assert snapshot_taken.wait(20)
    sim.faults.inject("delay", seconds=2.0, **POST)  # the venue holds B's attempt 2
    placing = run("b", lambda: b.place_order(MARKET, idempotency_key="k1"))
    deadline = time.monotonic() + 15
    while _posts(sim) < 1 and time.monotonic() < deadline:  # B's POST reached the venue
        time.sleep(0.01)
    assert _posts(sim) == 1
    resume.set()  # R goes on from its stale snapshot while B's order is still held
    recovering.join(30)
    report = results["r"]
    assert not isinstance(report, BaseException), report
    retried = c.place_order(MARKET, idempotency_key="k1")
    placing.join(30)
    placed = results["b"]
    assert not isinstance(placed, BaseException), placed
    for client in (r, b, c):
        client.close()
    assert len(sim.market.orders_with_client_id(cid)) == 1  # the venue's own count
    assert _posts(sim) == 1
    assert retried.order_id == placed.order_id
    assert cid not in report.not_placed  # R's conclusion did not apply
    assert_oracle(sim, store(), key.key_id, ["k1"])


def test_failure_01_a_conclusion_from_a_stale_view_never_applies(store: Any) -> None:
    """The store-level cause: every guarded write names the row it read."""
    journal = store()
    cid = "st" + "1" * 30
    journal.begin("k", cid, "acct", "BTCUSDT", "fp")
    assert journal.sending(cid, View(IntentState.PENDING, 0), 1)
    stale = View(IntentState.SENDING, 1)
    assert journal.sending(cid, stale, 2)  # a takeover: attempt 2
    for target in (IntentState.NOT_PLACED, IntentState.UNKNOWN, IntentState.REJECTED):
        assert journal.settle(cid, target, expect=stale, error="stale") is False
    assert journal.sending(cid, stale, 3) is False
    intent = journal.get(cid)
    assert (intent.state, intent.attempts, intent.deadline_ms) == (IntentState.SENDING, 2, 2)
    with pytest.raises(InvalidRequest, match="expect="):
        journal.settle(cid, IntentState.NOT_PLACED)  # a guarded write must name its view
    # The venue's evidence applies whoever sent it, and never moves an order back.
    assert journal.settle(cid, IntentState.FILLED, order_json="{}") is True
    assert journal.settle(cid, IntentState.ACKED, order_json="{}") is False
    assert journal.settle(cid, IntentState.CANCELED, order_json="{}") is False
    assert journal.get(cid).state is IntentState.FILLED


def test_the_stores_and_the_table_agree_on_every_transition(store: Any) -> None:
    """Each store's own check (SQL, Lua) says exactly what :func:`may_write` says, for
    every (current state, target, view) combination."""
    journal = store()
    n = 0
    for current in IntentState:
        for target in IntentState:
            if target is IntentState.PENDING:
                continue
            for expect in (None, View(current, 1), View(current, 0)):
                if target in GUARDED and expect is None:
                    continue
                n += 1
                cid = f"st{n:030d}"
                journal.begin(f"k{n}", cid, "acct", "BTCUSDT", "fp")
                assert journal.sending(cid, View(IntentState.PENDING, 0), 1)
                if current is not IntentState.SENDING:
                    _force(journal, cid, current)
                wanted = may_write(current, 1, target, expect)
                if target is IntentState.SENDING:
                    got = journal.sending(cid, expect, 5)
                else:
                    got = journal.settle(cid, target, expect=expect, order_json="{}")
                assert got is wanted, (current, target, expect)
                assert journal.get(cid).state is (target if wanted else current)
    assert set(SOURCES) == set(IntentState)


def _force(journal: Any, cid: str, state: IntentState) -> None:
    if isinstance(journal, Journal):
        journal._db.execute(
            "UPDATE intents SET state = ? WHERE client_order_id = ?", (state.value, cid)
        )
    else:
        journal._redis.hset(journal._intent_key(cid), "state", state.value)


# --- 2: policy admission on every path that sends -------------------------------------------------


def test_failure_02_a_rejoin_is_admitted_by_the_policy_like_a_first_send(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    """Two threads of one client pass the pre-trade check together; one takes the only
    order the policy allows, the other rejoins an abandoned intent of its key. The rejoin
    sends only if the policy admits it: it does not, so the venue sees one POST."""
    key = sim.create_key()
    journal = Journal(tmp_path / "j.sqlite3")
    from securetrade.venues import get_venue

    cid = get_venue("binance").client_order_id(key.key_id, "second")
    journal.begin("second", cid, key.key_id, "BTCUSDT", LIMIT.fingerprint())
    _set_owner(journal, cid, ELSEWHERE)  # claimed by a bot that went silent
    settings = Settings(owner_patience=0.001)
    client = _client(sim, server, journal, tls_options, key=key, settings=settings,
                     policy=Policy(max_orders=1, interval=60.0))  # fmt: skip
    client.recover()  # the abandoned intent is settled NOT_PLACED: the same key may send
    assert journal.get(cid).state is IntentState.NOT_PLACED
    at_checkpoint, first_sent = threading.Event(), threading.Event()

    def hold_the_rejoin(name: str) -> None:
        if name == "after_claim_commit" and threading.current_thread().name == "rejoin":
            at_checkpoint.set()  # it passed every check, and claimed
            assert first_sent.wait(20)  # the other goes first

    client.core.checkpoint = hold_the_rejoin  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def rejoin() -> None:
        try:
            outcome["rejoin"] = client.place_order(LIMIT, idempotency_key="second")
        except BaseException as exc:
            outcome["rejoin"] = exc

    thread = threading.Thread(target=rejoin, name="rejoin")
    thread.start()
    assert at_checkpoint.wait(20)
    client.place_order(LIMIT, idempotency_key="first")
    first_sent.set()
    thread.join(30)
    client.close()
    assert isinstance(outcome["rejoin"], PolicyViolation), outcome["rejoin"]
    assert outcome["rejoin"].rule == "max_orders"
    assert _posts(sim) == 1
    assert sim.market.orders_with_client_id(cid) == []


# --- 3: one lease holder --------------------------------------------------------------------------


def test_failure_03_a_dead_holders_lease_is_taken_by_one_process_only(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes both see the holder of the reconciliation lease dead; each tries to
    take it over. Only the first may get it: the second's take-over must compare with
    the holder it saw, which is gone by then."""
    a, b = store(), store()
    dead = "this-host:1:dead"
    real_gone = journal_module.owner_is_gone
    tokens = {"a": "this-host:2:aaaa", "b": "this-host:3:bbbb"}

    def as_process(name: str) -> None:
        monkeypatch.setattr(store_module, "_TOKEN", tokens[name])

    as_process("a")
    assert a.lease("acct", 60)
    _hold_lease(a, "acct", dead)
    raced = []

    def gone(owner: str) -> bool:
        if owner == dead and not raced:  # b has read the dead holder; a takes it first
            raced.append(owner)
            as_process("a")
            assert a.lease("acct", 60) is True
            as_process("b")
            return True
        return real_gone(owner) if owner != dead else True

    for module in _lease_modules(store):
        monkeypatch.setattr(module, "owner_is_gone", gone)
    as_process("b")
    assert b.lease("acct", 60) is False  # a holds it now: b's compare-and-set fails
    assert raced == [dead]


def test_failure_03b_a_slow_reconciler_keeps_its_short_lease_renewed(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """A reconciliation that lasts three times ``Settings.recovery_lease`` (it waits out a
    dead process's attempt until its deadline) holds the lease all along: renewed at
    every step, it never lapses, so no other process may reconcile the account meanwhile.
    A dead reconciler's lease, unrenewed, lapses after the same short time."""
    import os
    import socket

    journal = store()
    key = sim.create_key()
    cid = _sending_row(journal, sim, key, "slow-recovery", int(time.time() * 1000) + 3_000)
    _set_owner(journal, cid, f"{socket.gethostname()}:{os.getpid()}:0dead0ff")  # gone
    settings = Settings(recovery_lease=1.0, recover_on_start=False)
    client = _client(sim, server, store(), tls_options, key=key, settings=settings)
    reports: list[Any] = []
    recovering = threading.Thread(target=lambda: reports.append(client.recover()))
    started = time.monotonic()
    recovering.start()
    left: list[float | None] = []
    while recovering.is_alive():
        seen = _lease_left(journal, key.key_id)
        if seen is not None or left:  # from its first sight on
            left.append(seen)
        time.sleep(0.05)
    took = time.monotonic() - started
    assert reports[0].not_placed == (cid,)  # absent after its deadline: concluded
    assert took > 2.5  # three leases long
    held = [s for s in left[:-3] if s is not None and s > 0]  # the last: being released
    assert len(held) == len(left[:-3]) > 20, left


def _lease_left(journal: Any, account: str) -> float | None:
    """Seconds the account's recovery lease still has, as the store holds it (negative:
    lapsed, None: no lease)."""
    if isinstance(journal, Journal):
        row = journal._db.execute("SELECT until FROM leases WHERE account = ?", (account,))
        found = row.fetchone()
        return None if found is None else float(found[0]) - time.time()
    ms = journal._redis.pttl(f"{journal._tag}lease:{account}")
    return None if ms < 0 else ms / 1000


def _lease_modules(store: Any) -> list[Any]:
    from securetrade.core import redis_journal

    return [journal_module, redis_journal]


def _hold_lease(journal: Any, account: str, owner: str) -> None:
    if isinstance(journal, Journal):
        journal._db.execute("UPDATE leases SET owner = ? WHERE account = ?", (owner, account))
    else:
        journal._redis.set(f"{journal._tag}lease:{account}", owner, px=60_000)


# --- 4: a Redis journal opened after its server lost the data -------------------------------------


def test_failure_04_a_redis_journal_opened_after_a_flush_refuses_to_start_fresh(
    redis_url: str,
) -> None:
    import redis

    from securetrade.core import JournalError

    prefix = f"loss:{secrets.token_hex(4)}:"
    RedisJournal.create(redis_url, prefix=prefix).close()
    admin = redis.Redis.from_url(redis_url)
    for key in admin.scan_iter(match=f"{{{prefix}}}*"):
        admin.delete(key)  # the server lost everything of this journal (as FLUSHALL would)
    admin.close()
    with pytest.raises(JournalError, match="after_loss=True"):
        RedisJournal(redis_url, prefix=prefix)
    journal = RedisJournal(redis_url, prefix=prefix, after_loss=True)
    try:
        intent, created = journal.begin("k", "st" + "4" * 30, "acct", "BTCUSDT", "fp")
        # A claim after a loss asks the venue first: UNKNOWN, with the loss's bound.
        assert (intent.state, created) == (IntentState.UNKNOWN, False)
        assert intent.deadline_ms > time.time() * 1000
    finally:
        journal.close()
    RedisJournal(redis_url, prefix=prefix).close()  # the marker is back: opens as usual


# --- 5, 6, 8: bad input refused before anything is sent -------------------------------------------


@pytest.mark.parametrize("idem", ["", " ", " k", "k\n", "x" * 256, 5])
def test_failure_05_an_empty_or_malformed_idempotency_key_is_refused(
    sim: Simulator, idem: Any
) -> None:
    client = Client(sim.create_key(), transport=sim.transport(), journal=":memory:")
    with client, pytest.raises(InvalidRequest, match="idempotency_key"):
        client.place_order(LIMIT, idempotency_key=idem)
    assert _posts(sim) == 0


def test_failure_06_a_market_order_is_held_to_the_keys_notional_limit(sim: Simulator) -> None:
    key = sim.create_key().restrict(max_notional="100")
    with Client(key, transport=sim.transport(), journal=":memory:") as client:
        with pytest.raises(ScopeError, match="exceeds the key's limit"):
            client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="1"))
        small = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.0001"))
    assert small.filled_quantity > 0
    assert _posts(sim) == 1


def test_failure_06_without_a_reference_price_a_limited_key_places_no_market_order(
    sim: Simulator,
) -> None:
    key = sim.create_key().restrict(max_notional="100")
    with Client(key, transport=sim.transport(), journal=":memory:",
                settings=Settings(max_attempts=1)) as client:  # fmt: skip
        client.instruments()
        sim.faults.inject("status", status=503, method="GET", path="/api/v3/ticker/price", times=9)
        with pytest.raises(SecureTradeError):
            client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.0001"))
    assert _posts(sim) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"settle_ms": -(10**9)},
        {"settle_ms": 1.5},
        {"max_attempts": 0},
        {"max_attempts": True},
        {"clock_samples": 0},
        {"resolve_timeout": 0},
        {"resolve_timeout": float("nan")},
        {"max_rate_wait": -1},
        {"owner_patience": float("inf")},
        {"recover_on_start": "yes"},
        {"retry": 3},
    ],
)
def test_failure_08_settings_that_would_double_orders_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest, match="Settings"):
        Settings(**options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"journal": ""}, "journal"),
        ({"journal": 5}, "journal"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"settings": {"settle_ms": 5}}, "settings"),
        ({"policy": "strict"}, "policy"),
        ({"limiter": 10}, "limiter"),
    ],
)
def test_failure_08_client_arguments_are_checked_before_anything_is_sent(
    sim: Simulator, options: dict[str, Any], match: str
) -> None:
    options.setdefault("journal", ":memory:")
    with pytest.raises(InvalidRequest, match=match):
        Client(sim.create_key(), transport=sim.transport(), **options)
    assert sim.dialect.stats.arrivals == []


# --- 9: an attempt proven absent is not ambiguous -------------------------------------------------


def test_failure_09_an_attempt_proven_absent_raises_retryable_not_ambiguous(
    sim: Simulator, server: HttpsServer, tls_options: Any
) -> None:
    """Each POST is answered 503 "execution status unknown" and never processed; the
    client asks, finds it absent after the deadline, and gives up after its attempts. The
    order is proven NOT_PLACED, so the error must say "certainly not executed"."""
    key = sim.create_key()
    client = _client(sim, server, ":memory:", tls_options, key=key, recv_window_ms=300,
                     settings=Settings(settle_ms=100, max_attempts=2))  # fmt: skip
    sim.faults.inject("status", status=503, times=2, **POST)
    with pytest.raises(RetryableError) as raised:
        client.place_order(LIMIT, idempotency_key="k9")
    cid = client.venue.client_order_id(key.key_id, "k9")
    assert client.journal.get(cid).state is IntentState.NOT_PLACED
    client.close()
    assert "not placed" in str(raised.value)
    assert sim.market.orders_with_client_id(cid) == []


# --- 14: one client shared by threads -------------------------------------------------------------


def test_failure_14_one_client_shared_by_threads_recovers_once_and_places_each_order_once(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path
) -> None:
    key = sim.create_key()
    client = _client(sim, server, str(tmp_path / "j.sqlite3"), tls_options, key=key)
    start = threading.Barrier(8)
    placed: list[Any] = []

    def place(i: int) -> None:
        start.wait()
        placed.append(client.place_order(LIMIT, idempotency_key=f"t{i % 4}"))

    threads = [threading.Thread(target=place, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    recoveries = client.audit.events("journal.recovered")
    client.close()
    assert len(placed) == 8
    assert len({o.order_id for o in placed}) == 4  # two threads per key: one order each
    assert len(recoveries) == 1
    assert sim.dialect.stats.by_path.get("GET /api/v3/openOrders", 0) == 1
    assert _posts(sim) == 4
