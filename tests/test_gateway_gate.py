"""The gateway's shared store, decided alike on memory, SQLite and a real redis-server: one
atomic admission per request (lock-outs, epoch, nonce, GCRA buckets) and shared failure
counts. The same checks through real uvicorn processes are in test_gateway_processes.py."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securetrade.gateway import SharedState, StoreUnavailable
from securetrade.gateway.gate import Bucket, Strikes, Verdict

STORES = ["memory", "sqlite", "redis"]


@pytest.fixture(params=STORES)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedState]:
    if request.param == "memory":
        made = SharedState.memory()
    elif request.param == "sqlite":
        made = SharedState.sqlite(tmp_path / "gate.db")
    else:
        url = request.getfixturevalue("redis_url")
        made = SharedState.redis(url, prefix=f"{{t{secrets.token_hex(6)}}}:")
    yield made
    made.close()


def _token() -> str:
    return secrets.token_hex(16)


def _admit(
    state: SharedState, token: str, *buckets: Bucket, locks: tuple[str, ...] = ()
) -> Verdict:
    now = time.time_ns() // 1_000_000 + 10  # stamped after the store's epoch
    return state.admit(token, now, now + 30_000, 0, locks, buckets, remaining=True)


def test_a_bucket_admits_its_burst_then_refuses_with_the_wait(state: SharedState) -> None:
    key = Bucket("key:a", 3, 30.0, 1)
    first = [_admit(state, _token(), key) for _ in range(3)]
    assert [v.outcome for v in first] == ["ok"] * 3
    assert [v.remaining for v in first] == [2, 1, 0]
    refused = _admit(state, _token(), key)
    assert refused.outcome == "rate_limited"
    assert 0 < refused.wait <= 30.0


def test_a_replay_is_refused_and_spends_nothing(state: SharedState) -> None:
    key = Bucket("key:b", 2, 3600.0, 1)
    token = _token()
    assert _admit(state, token, key).outcome == "ok"
    assert _admit(state, token, key).outcome == "replayed"
    assert _admit(state, token, key).outcome == "replayed"
    assert _admit(state, _token(), key).outcome == "ok"  # the replays left the 2nd call room


def test_a_request_refused_for_its_rate_records_nothing(state: SharedState) -> None:
    """All buckets or none: the key's refusal spends nothing of the tenant's bucket, and
    the refused nonce stays unused."""
    one, two = Bucket("key:1", 2, 3600.0, 1), Bucket("key:2", 5, 3600.0, 1)
    tenant = Bucket("tenant:t", 3, 3600.0, 1)
    assert [_admit(state, _token(), one, tenant).outcome for _ in range(2)] == ["ok", "ok"]
    refused = _token()
    assert _admit(state, refused, one, tenant).outcome == "rate_limited"
    # The tenant still has exactly one call left, for the other key.
    outcomes = [_admit(state, _token(), two, tenant).outcome for _ in range(2)]
    assert outcomes == ["ok", "rate_limited"]
    assert _admit(state, refused).outcome == "ok"  # its nonce was never recorded


def test_failures_lock_a_name_out_and_the_lock_refuses_before_anything_is_recorded(
    state: SharedState,
) -> None:
    strikes = Strikes(threshold=3, window_ms=60_000, duration_ms=60_000)
    counted = [state.failed(["addr:203.0.113.7", "key:k"], strikes) for _ in range(4)]
    assert [c["addr:203.0.113.7"][1] for c in counted] == [False, False, False, True]
    assert [c["addr:203.0.113.7"][0] > 0 for c in counted] == [False, False, True, True]
    assert 0 < counted[3]["key:k"][0] <= 60.0
    token = _token()
    locked = _admit(state, token, locks=("addr:203.0.113.7", "key:other"))
    assert locked.outcome == "locked_out"
    assert 0 < locked.wait <= 60.0
    assert _admit(state, token, locks=("key:k",)).outcome == "locked_out"
    # Another address and key are not locked, and the refused nonce was not recorded.
    assert _admit(state, token, locks=("addr:198.51.100.1", "key:other")).outcome == "ok"


def test_a_lock_out_ends_and_the_count_starts_again(state: SharedState) -> None:
    strikes = Strikes(threshold=2, window_ms=60_000, duration_ms=50)
    assert state.failed(["addr:a"], strikes)["addr:a"] == (0.0, False)
    assert state.failed(["addr:a"], strikes)["addr:a"][0] > 0
    deadline = time.monotonic() + 10
    while _admit(state, _token(), locks=("addr:a",)).outcome == "locked_out":
        assert time.monotonic() < deadline, "the lock-out never ended"
        time.sleep(0.02)
    assert state.failed(["addr:a"], strikes)["addr:a"] == (0.0, False)  # counting afresh


def test_sqlite_opened_under_another_boot_refuses_requests_from_before(tmp_path: Path) -> None:
    """A power cut may lose the last commits (nonces among them): a file last opened under
    another boot starts a new epoch, and requests stamped before it (plus the allowed lead)
    are refused as ``restarted`` until they are stale."""
    path = tmp_path / "gate.db"
    SharedState.sqlite(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE st_gate_epoch SET boot = 'a boot before this one'")
    db.commit()
    db.close()
    before = time.time_ns() // 1_000_000
    reopened = SharedState.sqlite(path)
    try:
        old = reopened.admit(_token(), before - 1, before + 30_000, 0, (), ())
        assert old.outcome == "restarted"
        assert old.wait > 0
        ahead = reopened.admit(_token(), before + 1_000, before + 31_000, 5_000, (), ())
        assert ahead.outcome == "restarted"  # within the lead a sender may have
        later = reopened.admit(_token(), before + 60_000, before + 90_000, 5_000, (), ())
        assert later.outcome == "ok"
    finally:
        reopened.close()


def test_a_new_sqlite_file_has_nothing_to_lose(tmp_path: Path) -> None:
    state = SharedState.sqlite(tmp_path / "new.db")
    try:
        now = time.time_ns() // 1_000_000
        assert state.admit(_token(), now - 1_000, now + 29_000, 5_000, (), ()).outcome == "ok"
    finally:
        state.close()


def test_a_sqlite_file_held_by_another_writer_fails_closed(tmp_path: Path) -> None:
    """A write lock held past the timeout is a store that does not answer: StoreUnavailable
    (the middleware's 503), never a sqlite3 error, and nothing recorded."""
    path = tmp_path / "held.db"
    state = SharedState.sqlite(path, timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        token = _token()
        with pytest.raises(StoreUnavailable, match="did not answer"):
            _admit(state, token)
        with pytest.raises(StoreUnavailable):
            state.failed(["addr:a"], Strikes(3, 60_000, 60_000))
        holder.execute("ROLLBACK")
        assert _admit(state, token).outcome == "ok"  # the refused attempt recorded nothing
    finally:
        holder.close()
        state.close()


def test_a_sqlite_file_that_cannot_be_opened_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="directory exists and is writable"):
        SharedState.sqlite(tmp_path / "missing" / "gate.db")


def test_a_full_memory_store_fails_closed() -> None:
    state = SharedState.memory(max_entries=2)
    assert [_admit(state, _token()).outcome for _ in range(2)] == ["ok", "ok"]
    with pytest.raises(StoreUnavailable, match="full"):
        _admit(state, _token())


def test_a_route_costing_more_than_a_limit_admits_is_refused_at_build() -> None:
    """Else a new bucket on SQLite would take one such call before refusing the rest."""
    from gateway_app import build
    from securetrade.errors import InvalidRequest
    from securetrade.gateway import GatewayMiddleware, KeyRegistry, Limit, Route

    with pytest.raises(InvalidRequest, match="lower its cost"):
        GatewayMiddleware(
            build(secrets.token_bytes(32)),
            keys=KeyRegistry([]),
            routes=[Route("POST", "/bulk", cost=10)],
            key_limit=Limit(5, 1.0),
        )
