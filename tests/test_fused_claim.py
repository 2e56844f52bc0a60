"""A new key's claim fused with its first attempt (one durable write), under attack.

When the policy admits a new order and the rate limiter lets it go at once, the claim is
written as attempt 1, SENDING (see ``core/orders.py``). Each interleaving the fusion could
break is forced here: ``kill -9`` between that write and the send and right after the
send (SQLite and Redis, sync and async drivers), two claimants of one new key at the same
instant, the kill switch engaged after the write, a limiter that admits and a venue that
answers 429, and a limiter that makes the order wait (then the claim is written first,
PENDING). Every verdict is read from the venue's side (the simulator's book and arrival
log) and from the journal row.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade import AsyncClient, Client, MarketOrder, Policy, PolicyViolation
from securetrade.core import IntentState, Journal, JournalStore, RedisJournal, Settings
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues import get_venue

MARKET = MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001")
CHILD = Path(__file__).with_name("crash_child.py")


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def _cid(key_id: str, idem: str) -> str:
    return get_venue("binance").client_order_id(key_id, idem)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``store(cls=None)`` opens this test's journal (again: a second process's view)."""
    opened: list[Any] = []
    prefix = f"fused:{secrets.token_hex(4)}:"
    created = False

    def make(cls: type | None = None) -> Any:
        nonlocal created
        if request.param == "sqlite":
            journal = (cls or Journal)(tmp_path / "journal.sqlite3")
        else:
            url = request.getfixturevalue("redis_url")
            journal = (cls or RedisJournal)(url, prefix=prefix, create=not created)
            created = True
        opened.append(journal)
        return journal

    make.kind = request.param  # type: ignore[attr-defined]
    make.prefix = prefix  # type: ignore[attr-defined]
    yield make
    for journal in opened:
        journal.close()


def _client(sim: Simulator, server: HttpsServer, journal: JournalStore, tls: Any,
            **kw: Any) -> Client:  # fmt: skip
    key = kw.pop("key", None) or sim.create_key()
    return Client(key, journal=journal, **tls(server), **kw)


# --- the write itself -----------------------------------------------------------------------


class _Statements(Journal):
    """Counts the statements that write the intents table."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[str] = []
        self._db.set_trace_callback(self._traced)

    def _traced(self, statement: str) -> None:
        head = statement.lstrip()[:40].upper()
        if head.startswith(("INSERT OR IGNORE INTO INTENTS", "UPDATE INTENTS")):
            self.writes.append(head)


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_new_key_admitted_at_once_writes_its_claim_and_attempt_in_one_statement(
    sim: Simulator, server: HttpsServer, tls_options: Any, tmp_path: Path, driver: str
) -> None:
    """Two writes per order instead of three: the claim-and-attempt, then the outcome. The
    row is attempt 1 as a separate attempt write would have left it."""
    journal = _Statements(tmp_path / "j.sqlite3")
    key = sim.create_key()
    if driver == "sync":
        client = _client(sim, server, journal, tls_options, key=key)
        client.recover()
        journal.writes.clear()
        placed = [client.place_order(MARKET, idempotency_key=f"k{i}") for i in range(3)]
        client.close()
    else:

        async def run() -> list[Any]:
            async with AsyncClient(key, journal=journal, **tls_options(server)) as client:
                await client.recover()
                journal.writes.clear()
                return list(
                    await asyncio.gather(
                        *(client.place_order(MARKET, idempotency_key=f"k{i}") for i in range(3))
                    )
                )

        placed = asyncio.run(run())
    inserts = [w for w in journal.writes if w.startswith("INSERT")]
    assert len(inserts) == 3
    assert len(journal.writes) == 6, journal.writes  # no separate attempt write
    for order in placed:
        intent = journal.get(order.client_order_id)
        assert intent is not None
        assert (intent.state, intent.attempts) == (IntentState.FILLED, 1)
        assert intent.deadline_ms > 0
    assert _posts(sim) == 3
    journal.close()


# --- kill -9 between the write and the send, and right after the send -----------------------


def _run_child(job: dict[str, Any]) -> tuple[int, str, str]:
    child = subprocess.run(
        [sys.executable, str(CHILD)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return child.returncode, child.stdout, child.stderr


@pytest.mark.parametrize(
    ("crash_at", "posts_before_restart"),
    [("after_attempt_commit", 0), ("after_response", 1)],
    ids=["between-write-and-send", "right-after-send"],
)
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_kill_9_around_the_fused_write_then_restart_places_exactly_once(
    sim: Simulator,
    server: HttpsServer,
    store: Any,
    crash_at: str,
    posts_before_restart: int,
    driver: str,
    request: pytest.FixtureRequest,
) -> None:
    """Killed after the fused write: the row is attempt 1, SENDING, with its deadline (what
    a claim and an attempt leave); the restarted bot resolves it by asking the venue, and
    the venue ends with one order for the key."""
    key = sim.create_key()
    journal = store()  # created (Redis: provisioned) before the bots start
    job: dict[str, Any] = {
        "base_url": server.base_url,
        "pins": server.pins,
        "ca": server.ca_pem,
        "key_id": key.key_id,
        "secret": key.secret.expose().decode(),
        "order": {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001"},
        "idempotency_key": "fused",
        "driver": driver,
    }
    if store.kind == "sqlite":
        job["journal"] = journal.path
    else:
        job["journal"], job["redis"] = store.prefix, request.getfixturevalue("redis_url")
    code, _, err = _run_child({**job, "crash_at": crash_at})
    assert code == -signal.SIGKILL, err
    assert _posts(sim) == posts_before_restart
    cid = _cid(key.key_id, "fused")
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.SENDING, 1)
    assert intent.deadline_ms > 0
    code, out, err = _run_child(job)
    assert code == 0, err
    placed = json.loads(out.splitlines()[-1])
    held = sim.market.orders_with_client_id(cid)
    assert [str(o.order_id) for o in held] == [placed["order_id"]]
    assert _posts(sim) == 1
    assert_oracle(sim, journal, key.key_id, ["fused"])


# --- two claimants of one new key at the same instant ---------------------------------------


def test_two_claimants_of_a_new_key_at_once_one_order_and_the_loser_gives_back_its_admission(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """Two clients (each its own journal connection, as two processes have) pass the policy
    and the limiter together and make the fused write at the same instant. One creates
    the row and sends; the other finds it, gives back its policy admission and rejoins:
    one POST, one order, both callers get it. The shared policy then counts exactly the
    one order sent: with max_orders=2 one more key is admitted, the next refused."""
    barrier = threading.Barrier(2, timeout=20)

    def meeting(cls: type) -> type:
        class Meeting(cls):  # type: ignore[misc,valid-type]
            def begin(self, *args: Any, **kwargs: Any) -> Any:
                if kwargs.get("sending_deadline_ms") is not None and not barrier.broken:
                    barrier.wait()  # both claimants write now
                return super().begin(*args, **kwargs)

        return Meeting

    base = Journal if store.kind == "sqlite" else RedisJournal
    first = store(meeting(base))
    second = store(meeting(base))
    key = sim.create_key()
    policy = Policy(max_orders=2, interval=600.0)
    clients = [
        _client(sim, server, journal, tls_options, key=key, policy=policy)
        for journal in (first, second)
    ]
    for client in clients:
        client.recover()
    results: dict[int, Any] = {}

    def place(i: int) -> None:
        try:
            results[i] = clients[i].place_order(MARKET, idempotency_key="race")
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=place, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    barrier.abort()  # later writes go straight through
    assert results[0].order_id == results[1].order_id, results
    assert _posts(sim) == 1
    cid = _cid(key.key_id, "race")
    assert len(sim.market.orders_with_client_id(cid)) == 1
    clients[0].place_order(MARKET, idempotency_key="next")  # the second order of 2
    with pytest.raises(PolicyViolation) as refused:
        clients[0].place_order(MARKET, idempotency_key="third")
    assert refused.value.rule == "max_orders"
    assert _posts(sim) == 2
    for client in clients:
        client.close()
    assert_oracle(sim, first, key.key_id, ["race", "next"])


# --- the kill switch between the fused write and the send -----------------------------------


def test_kill_switch_engaged_after_the_fused_write_stops_the_send(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """The policy admitted the order before its claim was written; the switch is engaged
    right after the write. The send must not happen: nothing reaches the venue, and the
    row, attempt 1 proven never sent, is NOT_PLACED. Released, the same key sends once."""
    journal = store()
    policy = Policy()
    client = _client(sim, server, journal, tls_options, policy=policy)
    client.recover()

    def engage(name: str) -> None:
        if name == "after_claim_commit":
            policy.kill_switch.engage("an operator pulled it")

    client.core.checkpoint = engage  # type: ignore[method-assign]
    with pytest.raises(PolicyViolation) as refused:
        client.place_order(MARKET, idempotency_key="ks")
    assert refused.value.rule == "kill_switch"
    assert _posts(sim) == 0
    cid = _cid(client.core.account, "ks")
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.NOT_PLACED, 1)
    client.core.checkpoint = lambda name: None  # type: ignore[method-assign]
    policy.kill_switch.release()
    placed = client.place_order(MARKET, idempotency_key="ks")
    client.close()
    assert _posts(sim) == 1
    assert [o.order_id for o in sim.market.orders_with_client_id(cid)] == [int(placed.order_id)]
    intent = journal.get(cid)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.FILLED, 2)


# --- the limiter admits, the venue answers 429 ---------------------------------------------


def test_limiter_admits_then_the_venue_answers_429_one_order(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """Attempt 1 (the fused write) is refused by the venue with 429: a refusal, so not
    executed; the next attempt moves the row from attempt 1 to 2 by compare-and-set and
    is placed. Two POSTs, one order."""
    journal = store()
    client = _client(sim, server, journal, tls_options, settings=Settings(max_rate_wait=5.0))
    client.recover()
    sim.faults.inject("rate_limit", method="POST", path="/api/v3/order", seconds=1.0)
    placed = client.place_order(MARKET, idempotency_key="429")
    client.close()
    assert _posts(sim) == 2
    held = sim.market.orders_with_client_id(placed.client_order_id)
    assert [o.order_id for o in held] == [int(placed.order_id)]
    intent = journal.get(placed.client_order_id)
    assert intent is not None
    assert (intent.state, intent.attempts) == (IntentState.FILLED, 2)


# --- a limiter that makes the order wait ----------------------------------------------------


def test_an_order_the_limiter_holds_back_waits_as_a_claim_then_persists_its_attempt(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """The limiter is paused (the venue asked for it): the order's claim is written before
    the wait, PENDING with no attempt, and attempt 1 is a separate write once the limiter
    lets it go."""
    journal = store()
    client = _client(sim, server, journal, tls_options)
    client.recover()
    client.place_order(MARKET, idempotency_key="warm")  # instruments and clock read
    cid = _cid(client.core.account, "held")
    seen: dict[str, Any] = {}

    def look(name: str) -> None:
        if name in ("after_claim_commit", "after_attempt_commit"):
            intent = journal.get(cid)
            seen[name] = (intent.state, intent.attempts)

    client.core.checkpoint = look  # type: ignore[method-assign]
    client.core.limiter.observe(429, {"retry-after": "1"})  # pause every request for 1 s
    assert client.core.limiter.paused_for > 0
    placed = client.place_order(MARKET, idempotency_key="held")
    client.close()
    assert seen == {
        "after_claim_commit": (IntentState.PENDING, 0),
        "after_attempt_commit": (IntentState.SENDING, 1),
    }
    assert placed.client_order_id == cid
    assert _posts(sim) == 2


# --- a known key on the short road ----------------------------------------------------------


def test_a_known_key_replays_its_answer_and_costs_no_order_slot(
    sim: Simulator, server: HttpsServer, tls_options: Any, store: Any
) -> None:
    """A replay is admitted before its claim finds the row: the admission is given back,
    so max_orders counts the orders sent, not the replays."""
    journal = store()
    policy = Policy(max_orders=2, interval=600.0)
    client = _client(sim, server, journal, tls_options, policy=policy)
    client.recover()
    first = client.place_order(MARKET, idempotency_key="known")
    again = client.place_order(MARKET, idempotency_key="known")
    assert again.order_id == first.order_id
    client.place_order(MARKET, idempotency_key="second")  # the second of 2: admitted
    with pytest.raises(PolicyViolation) as refused:
        client.place_order(MARKET, idempotency_key="third")
    client.close()
    assert refused.value.rule == "max_orders"
    assert _posts(sim) == 2
    assert journal.get(_cid(client.core.account, "third")) is None  # refused by the checks
