"""A Redis restored from an older snapshot has forgotten the nonces recorded since: the
gateway notices that the store is behind its watermark and refuses every request until an
operator acknowledges it. A real redis-server: SAVE, more requests, kill, restart on the
old dump; a real uvicorn serving the gateway."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from gateway_app import build, key_secret
from gateway_server import ThreadServer
from redis_server import start_redis
from securetrade.gateway import GatewayMonitor, SecurityEvent, SharedState, StoreRolledBack
from securetrade.gateway.gate import Bucket
from securetrade.verify import MessageSigner

pytestmark = pytest.mark.redis


@contextmanager
def _redis_at(tmp_path: Path, port: int | None = None) -> Iterator[tuple[Any, str]]:
    process, url = start_redis(tmp_path, port=port)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _signed(signer: MessageSigner, tag: str) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"tag": tag, "nonce": secrets.token_hex(4)}).encode()
    return signer.headers("POST", "/echo", body), body


def _served(client: httpx.Client, signer: MessageSigner, tag: str) -> tuple[dict[str, str], bytes]:
    """Sign and send until served (a new epoch refuses requests stamped within
    max_ahead_ms of its start); return the request that was served."""
    deadline = time.monotonic() + 30
    while True:
        headers, body = _signed(signer, tag)
        code = client.post("/echo", content=body, headers=headers).status_code
        if code == 200:
            return headers, body
        assert code == 503, code
        assert time.monotonic() < deadline, "never served"
        time.sleep(0.05)


def test_a_redis_restored_from_an_older_snapshot_refuses_until_acknowledged(
    tmp_path: Path,
) -> None:
    master = secrets.token_bytes(32)
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    monitor = GatewayMonitor()
    events: list[SecurityEvent] = []
    monitor.subscribe(events.append)
    with _redis_at(tmp_path) as (first, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        app = build(master, state=SharedState.redis(url), monitor=monitor, max_ahead_ms=500)
        with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=20) as client:
            _served(client, signer, "before the snapshot")
            assert Redis.from_url(url).save()  # the snapshot: dump.rdb in tmp_path
            headers, body = _served(client, signer, "after the snapshot")
            assert client.post("/echo", content=body, headers=headers).status_code == 409
            first.kill()  # gone without saving again: what comes back is the old dump
            first.wait()
            with _redis_at(tmp_path, port):
                replays = [
                    client.post("/echo", content=body, headers=headers).status_code
                    for _ in range(5)
                ]
                assert set(replays) == {503}  # never 200: the store forgot this nonce
                assert events[-1].reason == "store_rolled_back"
                fresh_headers, fresh_body = _signed(signer, "fresh")
                refused = client.post("/echo", content=fresh_body, headers=fresh_headers)
                assert refused.status_code == 503  # everything, until acknowledged
                assert int(refused.headers["retry-after"]) >= 1
                assert events[-1].reason == "store_rolled_back"

                operator = SharedState.redis(url)
                operator.acknowledge_rollback()
                operator.close()
                again = client.post("/echo", content=body, headers=headers)
                assert again.status_code == 503  # signed before the new epoch: refused
                assert events[-1].reason == "store_restarted"
                _served(client, signer, "after the acknowledgement")


def test_a_watermark_file_notices_the_rollback_across_a_gateway_restart(
    tmp_path: Path,
) -> None:
    mark = tmp_path / "gateway.watermark"
    buckets = (Bucket("key:w", 1000, 1.0, 1),)

    def admit(state: SharedState) -> str:
        now = time.time_ns() // 1_000_000
        token = secrets.token_hex(16)
        return state.admit(token, now, now + 30_000, 0, ("key:w",), buckets).outcome

    with _redis_at(tmp_path) as (first, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        state = SharedState.redis(url, watermark=mark)
        time.sleep(0.01)  # stamped after the epoch its first connection started
        assert [admit(state) for _ in range(3)] == ["ok"] * 3
        assert Redis.from_url(url).save()
        assert [admit(state) for _ in range(3)] == ["ok"] * 3
        state.close()  # the gateway stops: its watermark is in the file
        assert mark.read_text().split()[1] == "6"
        first.kill()
        first.wait()
        with _redis_at(tmp_path, port):
            restarted = SharedState.redis(url, watermark=mark)
            try:
                with pytest.raises(StoreRolledBack, match="acknowledge_rollback"):
                    admit(restarted)
                epoch = restarted.acknowledge_rollback()
                assert int(mark.read_text().split()[0]) == epoch
                time.sleep(0.01)
                assert admit(restarted) == "ok"
            finally:
                restarted.close()


def test_an_unreadable_watermark_file_is_refused_with_what_to_do(
    tmp_path: Path, redis_url: str
) -> None:
    from securetrade.errors import InvalidRequest

    mark = tmp_path / "gateway.watermark"
    mark.write_text("not a watermark")
    with pytest.raises(InvalidRequest, match="delete it"):
        SharedState.redis(redis_url, watermark=mark)


def test_only_a_redis_store_has_a_rollback_to_acknowledge(tmp_path: Path) -> None:
    from securetrade.errors import InvalidRequest

    state = SharedState.sqlite(tmp_path / "gate.db")
    try:
        with pytest.raises(InvalidRequest, match="no rollback"):
            state.acknowledge_rollback()
    finally:
        state.close()


def test_the_watermark_counts_only_what_the_store_recorded(tmp_path: Path, redis_url: str) -> None:
    """The file holds two numbers, the epoch and the admissions recorded: a replay refused
    records nothing and moves neither."""
    mark = tmp_path / "gateway.watermark"
    state = SharedState.redis(redis_url, watermark=mark, prefix=f"{{t{secrets.token_hex(6)}}}:")
    time.sleep(0.02)
    now = time.time_ns() // 1_000_000
    outcomes = [state.admit(t, now, now + 30_000, 0, (), ()).outcome for t in "abab"]
    assert outcomes == ["ok", "ok", "replayed", "replayed"]
    state.close()
    epoch, seq = mark.read_text().split()
    assert int(epoch) <= now
    assert seq == "2"
