"""Failed signatures are counted in each process and written to the shared store a batch at
a time, so a flood of bad signatures is not a flood of store writes, while the lock-out
still engages across processes within ``threshold + P * (batch - 1)`` failures. Real
uvicorn processes, a real redis-server (its own command counts are the write count) and a
real SQLite file."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from redis import Redis

from gateway_app import key_secret
from gateway_server import ProcessServers
from redis_server import start_redis
from securetrade.gateway import Lockout, SharedState
from securetrade.gateway.gate import Strikes
from securetrade.keys import Secret
from securetrade.verify import MessageSigner

PREFIX = "{securetrade:gateway}:"  # SharedState.redis's default


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[str]:
    process, url = start_redis(tmp_path)
    try:
        yield url
    finally:
        process.kill()
        process.wait()


def _post(url: str, signer: MessageSigner, body: bytes = b"x") -> int:
    with httpx.Client(base_url=url, timeout=20) as client:
        headers = signer.headers("POST", "/echo", body)
        return client.post("/echo", content=body, headers=headers).status_code


def _scripts_run(client: Redis) -> int:
    """How many scripts the server has run: each failure write is one."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


def test_failures_are_written_a_batch_at_a_time_and_lock_across_processes(
    fresh_redis: str,
) -> None:
    threshold, batch, processes = 20, 5, 3
    # max_ahead_ms=0: a new Redis refuses requests stamped up to max_ahead_ms past its
    # epoch (they could predate a restart), and the valid requests below may come that soon.
    options = {"lockout": {"threshold": threshold, "window": 60, "duration": 60}, "max_ahead_ms": 0}
    master = secrets.token_bytes(32)
    forger = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))
    leader = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    redis = Redis.from_url(fresh_redis)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(ProcessServers(1, master, f"redis:{fresh_redis}", **options))
            for _ in range(processes)
        ]
        before = _scripts_run(redis)
        attempts = 0
        while not redis.exists(PREFIX + "lock:addr:127.0.0.1"):
            assert attempts < threshold + processes * (batch - 1), "no lock within the bound"
            assert _post(servers[attempts % processes].url, forger) == 401
            attempts += 1
        assert attempts >= threshold  # never before the threshold
        writes = _scripts_run(redis) - before
        assert writes <= attempts // batch + processes  # one write per batch, not per failure
        # Every process refuses a valid request from the locked address: the admission
        # reads the shared lock, whether or not this process saw a failure.
        assert [_post(server.url, leader) for server in servers] == [429] * processes
        # A flood after the lock: each process writes at most once more, then knows.
        before = _scripts_run(redis)
        codes = [_post(servers[n % processes].url, forger) for n in range(10 * processes)]
        assert set(codes) <= {401, 429}
        assert codes[-processes:] == [429] * processes
        assert _scripts_run(redis) - before <= processes  # address and key in one script


def test_one_process_writes_nothing_until_a_batch_and_locks_at_exactly_the_threshold(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gate.db"
    options = {"lockout": {"threshold": 20, "window": 60, "duration": 60}}
    master = secrets.token_bytes(32)
    forger = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))

    def strikes() -> dict[str, int]:
        with sqlite3.connect(path) as db:
            return dict(db.execute("SELECT name, count FROM st_gate_strike").fetchall())

    with ProcessServers(1, master, f"sqlite:{path}", **options) as server:
        assert [_post(server.url, forger) for _ in range(4)] == [401] * 4
        assert strikes() == {}  # four failures, no write
        assert _post(server.url, forger) == 401
        assert strikes() == {"addr:127.0.0.1": 5, "key:acme:leader-2": 5}
        assert [_post(server.url, forger) for _ in range(15)] == [401] * 15
        assert strikes() == {"addr:127.0.0.1": 20, "key:acme:leader-2": 20}
        assert _post(server.url, forger) == 429  # the 20th locked it: this process knows


def test_the_lockout_counts_here_and_says_when_to_write() -> None:
    lockout = Lockout(threshold=10, window=60, duration=60)
    assert lockout.batch == 2
    due = [lockout.pending("addr:a", 100.0) for _ in range(10)]
    assert [n for n, _ in due] == [0, 2, 0, 2, 0, 2, 0, 2, 0, 2]
    assert [alone for _, alone in due] == [False] * 9 + [True]
    odd = Lockout(threshold=5, window=60, duration=60, batch=2)
    assert [odd.pending("k", 0.0)[0] for _ in range(5)] == [0, 2, 0, 2, 1]  # 5th: at once
    assert odd.pending("k", 0.0) == (0, False)  # counting afresh after the threshold
    assert odd.pending("k", 61.0) == (0, False)  # the window is over: 1 again, not 2
    assert odd.pending("k", 61.0) == (2, False)


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
def test_a_store_takes_several_failures_in_one_write(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if store == "memory":
        state = SharedState.memory()
    elif store == "sqlite":
        state = SharedState.sqlite(tmp_path / "gate.db")
    else:
        url = request.getfixturevalue("redis_url")
        state = SharedState.redis(url, prefix=f"{{t{secrets.token_hex(6)}}}:")
    try:
        strikes = Strikes(5, 60_000, 60_000)
        assert state.failed({"addr:a": 3, "key:k": 4}, strikes) == {
            "addr:a": (0.0, False),
            "key:k": (0.0, False),
        }
        now = state.failed({"addr:a": 2, "key:k": 2}, strikes)
        assert [now[name][0] > 0 for name in now] == [True, True]  # 5 and 6: locked by it
        assert [now[name][1] for name in now] == [False, False]
        assert state.failed({"addr:a": 3}, strikes)["addr:a"][1]  # locked before this one
    finally:
        state.close()


def test_a_lockout_refuses_a_bad_batch() -> None:
    from securetrade.errors import InvalidRequest

    for batch in (0, 21, True):
        with pytest.raises(InvalidRequest, match="batch"):
            Lockout(threshold=20, batch=batch)
