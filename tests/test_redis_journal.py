"""The journal's rules on both backends (SQLite for one host, Redis for several), and two
hosts sharing a Redis journal: racing on one key, and one of them paused mid-send."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade.core import IntentState, Journal, JournalStore, RedisJournal, View
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator

CHILD = Path(__file__).with_name("crash_child.py")
LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": "60000"}


FRESH = View(IntentState.PENDING, 0)  # a row as claimed: no attempt yet


@pytest.fixture(params=["sqlite", "redis"])
def make_journal(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], JournalStore]]:
    """Open the same journal again (another process or host would): a factory."""
    opened: list[JournalStore] = []
    prefix = f"test:{secrets.token_hex(4)}:"

    def make() -> JournalStore:
        if request.param == "sqlite":
            journal: JournalStore = Journal(tmp_path / "journal.sqlite3")
        else:
            journal = RedisJournal.create(request.getfixturevalue("redis_url"), prefix=prefix)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


def test_an_intent_is_created_once(make_journal: Callable[[], JournalStore]) -> None:
    a, b = make_journal(), make_journal()
    first, created = a.begin("k", "st" + "0" * 30, "acct", "BTCUSDT", "fp")
    again, created_again = b.begin("k", "st" + "0" * 30, "acct", "BTCUSDT", "other")
    assert (created, created_again) == (True, False)
    assert again.fingerprint == "fp"
    assert again.state is IntentState.PENDING
    assert first.attempts == 0


def test_only_one_owner_sends_each_attempt(make_journal: Callable[[], JournalStore]) -> None:
    a, b = make_journal(), make_journal()
    cid = "st" + "1" * 30
    a.begin("k", cid, "acct", "BTCUSDT", "fp")
    assert a.sending(cid, FRESH, 1000) is True
    assert b.sending(cid, FRESH, 2000) is False  # stale: attempt 1 is taken
    # It takes attempt 2 after reading the new count.
    assert b.sending(cid, View(IntentState.SENDING, 1), 2000) is True
    intent = a.get(cid)
    assert intent is not None
    assert (intent.attempts, intent.deadline_ms) == (2, 2000)
    a.settle(cid, IntentState.FILLED, order_json="{}")
    # A settled intent is never sent again.
    assert b.sending(cid, View(IntentState.SENDING, 2), 3000) is False


def test_unfinished_unresolved_and_known(make_journal: Callable[[], JournalStore]) -> None:
    j = make_journal()
    cids = [f"st{i:030d}" for i in range(4)]
    for i, cid in enumerate(cids):
        j.begin(f"k{i}", cid, "acct", "BTCUSDT", "fp")
    j.begin("other", "st" + "9" * 30, "someone-else", "BTCUSDT", "fp")
    j.sending(cids[1], FRESH, 5)
    j.sending(cids[2], FRESH, 5)
    j.settle(cids[2], IntentState.UNKNOWN, expect=View(IntentState.SENDING, 1))
    j.sending(cids[3], FRESH, 5)
    j.settle(cids[3], IntentState.ACKED, order_json="{}")
    assert [i.client_order_id for i in j.unfinished("acct")] == cids[:3]
    assert [i.client_order_id for i in j.unresolved("acct")] == cids[1:3]
    assert j.known([*cids, "st" + "8" * 30]) == set(cids)


def test_one_reconciler_per_account(make_journal: Callable[[], JournalStore]) -> None:
    a, b = make_journal(), make_journal()
    assert a.lease("acct", 30) is True
    assert a.lease("acct", 30) is True  # renewing one's own lease
    assert b.lease("acct", 30) is True  # same process token: the same owner
    a.release("acct")
    assert b.lease("other", 30) is True


def test_an_expired_lease_is_taken(make_journal: Callable[[], JournalStore]) -> None:
    j = make_journal()
    assert j.lease("acct", 0.05)
    time.sleep(0.1)
    assert j.lease("acct", 30)


# --- two hosts on one Redis journal ----------------------------------------------------------


def _job(server: HttpsServer, key: ApiKey, redis_url: str, prefix: str, **extra: Any) -> str:
    RedisJournal.create(redis_url, prefix=prefix).close()  # provisioned once, before the bots
    return json.dumps(
        {
            "base_url": server.base_url,
            "pins": server.pins,
            "ca": server.ca_pem,
            "key_id": key.key_id,
            "secret": key.secret.expose().decode(),
            "journal": prefix,
            "redis": redis_url,
            "order": LIMIT,
            "idempotency_key": "hosts",
            "recv_window_ms": 500,
            "settle_ms": 500,
            **extra,
        }
    )


def _start(job: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    with child.stdin:
        child.stdin.write(job)
    return child


def _finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    assert child.stdout is not None
    assert child.stderr is not None
    with child.stdout, child.stderr:
        out, err = child.stdout.read(), child.stderr.read()
    child.wait(timeout=60)
    return out, err


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def test_two_hosts_racing_on_one_key_place_one_order(
    sim: Simulator, server: HttpsServer, redis_url: str
) -> None:
    key = sim.create_key()
    prefix = f"hosts:{secrets.token_hex(4)}:"
    children = [_start(_job(server, key, redis_url, prefix)) for _ in range(3)]
    placed = []
    for child in children:
        out, err = _finish(child)
        assert child.returncode == 0, err
        placed.append(json.loads(out.splitlines()[-1])["order_id"])
    assert len(set(placed)) == 1
    assert _posts(sim) == 1
    journal = RedisJournal(redis_url, prefix=prefix)
    try:
        assert_oracle(sim, journal, key.key_id, ["hosts"])
    finally:
        journal.close()


def test_paused_host_is_fenced_by_the_venue_deadline(
    sim: Simulator, server: HttpsServer, redis_url: str
) -> None:
    """12a: host A records its attempt, then stops (alive, silent) before sending. Host B
    waits out A's deadline, finds nothing at the venue, and sends. When A resumes, its
    request, signed before the pause, is refused by the venue as expired; A then finds
    B's order. One order."""
    key = sim.create_key()
    prefix = f"pause:{secrets.token_hex(4)}:"
    paused = _start(_job(server, key, redis_url, prefix, stop_at="after_attempt_commit"))
    assert paused.stdout is not None
    assert json.loads(paused.stdout.readline()) == {"stopped_at": "after_attempt_commit"}
    other = _start(_job(server, key, redis_url, prefix))
    out, err = _finish(other)
    assert other.returncode == 0, err
    placed = json.loads(out.splitlines()[-1])
    expired_before = sim.dialect.stats.rejections.get(-1021, 0)
    paused.send_signal(signal.SIGCONT)
    out, err = _finish(paused)
    assert paused.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["order_id"] == placed["order_id"]
    assert sim.dialect.stats.rejections.get(-1021, 0) == expired_before + 1  # A's late send
    assert len(sim.market.orders_with_client_id(placed["client_order_id"])) == 1


def test_every_key_of_a_journal_is_in_one_cluster_slot(redis_url: str) -> None:
    """Redis Cluster runs a script only on keys of one hash slot: every key the journal
    writes (intents, sets, fills, tombstones, lease, marker) carries the same hash tag."""
    import redis
    from redis.crc import key_slot

    prefix = f"slot:{secrets.token_hex(4)}:"
    journal = RedisJournal.create(redis_url, prefix=prefix, retention=60)
    for n in range(3):
        cid = f"st{n:030d}"
        journal.begin(f"k{n}", cid, f"acct-{n}", "BTCUSDT", "fp")
        journal.sending(cid, FRESH, 5)
        journal.lease(f"acct-{n}", 30)
    journal.settle("st" + "0" * 30, IntentState.FILLED, order_json="{}")
    journal.close()
    admin = redis.Redis.from_url(redis_url)
    keys = list(admin.scan_iter(match=f"*{prefix}*"))
    admin.close()
    assert len(keys) >= 10
    assert {key_slot(k) for k in keys} == {key_slot(f"{{{prefix}}}".encode())}
