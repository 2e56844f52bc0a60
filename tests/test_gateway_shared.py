"""What the gateway's processes share, through real uvicorn processes and a real store:
lock-outs that every process honours, rate limits exact across processes, and a Redis
that restarted without its data (its nonces gone) refusing the requests it might have
seen before."""

from __future__ import annotations

import json
import multiprocessing
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_app import key_secret
from gateway_server import ProcessServers
from redis_server import start_redis
from securetrade.keys import Secret
from securetrade.verify import MessageSigner

LOCKOUT = {"threshold": 5, "window": 60, "duration": 60}


def _spec(store: str, tmp_path: Path, redis_url: str) -> str:
    if store == "sqlite":
        return f"sqlite:{tmp_path / 'shared.db'}"
    return f"redis:{redis_url}"


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own: its lock-outs must not meet another test's."""
    process, url = start_redis(tmp_path)
    try:
        yield url
    finally:
        process.kill()
        process.wait()


def _post(url: str, signer: MessageSigner, body: bytes, source: str = "127.0.0.1") -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=20) as client:
        headers = signer.headers("POST", "/echo", body)
        return client.post("/echo", content=body, headers=headers).status_code


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_lock_out_earned_across_processes_holds_in_every_process(
    tmp_path: Path, fresh_redis: str, store: str
) -> None:
    """Failures count towards one lock-out whichever process sees them; a process that
    never saw one refuses the locked address and key all the same."""
    master = secrets.token_bytes(32)
    spec = _spec(store, tmp_path, fresh_redis)
    options = {"lockout": LOCKOUT, "max_ahead_ms": 0}
    forger = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))
    leader = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    owner = MessageSigner("acme:leader-2", key_secret(master, "acme:leader-2"))
    with ExitStack() as stack:
        a, b, c = (stack.enter_context(ProcessServers(1, master, spec, **options)) for _ in "abc")
        forged = [_post(a.url, forger, b"x") for _ in range(3)]
        forged += [_post(b.url, forger, b"x") for _ in range(2)]  # the 5th: locked
        assert forged == [401] * 5
        assert _post(a.url, forger, b"x") == 429
        assert _post(b.url, forger, b"x") == 429
        # c never saw a failure: the shared lock refuses the address and the key there too.
        assert _post(c.url, leader, b"x") == 429  # a valid request from the locked address
        assert _post(c.url, owner, b"x", source="127.0.0.2") == 429  # the locked key id
        assert _post(c.url, leader, b"x", source="127.0.0.2") == 200  # neither: served
        assert _post(a.url, leader, b"y", source="127.0.0.2") == 200


def _limited(url: str, master: bytes, barrier: Any, out: Any) -> None:
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    signed = [(signer.headers("POST", "/echo", b"%d" % n), b"%d" % n) for n in range(3)]
    barrier.wait()
    codes = []
    for headers, body in signed:
        with httpx.Client(base_url=url, timeout=20) as client:  # a new connection each
            codes.append(client.post("/echo", content=body, headers=headers).status_code)
    out.put(codes)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_key_limit_is_exact_across_processes(
    tmp_path: Path, fresh_redis: str, store: str
) -> None:
    """8 client processes send 24 requests at once to 4 server processes: a limit of 5 an
    hour serves exactly 5, whichever processes they reach."""
    master = secrets.token_bytes(32)
    spec = _spec(store, tmp_path, fresh_redis)
    options = {"key_limit": [5, 3600], "tenant_limit": None, "max_ahead_ms": 0}
    with ProcessServers(4, master, spec, **options) as servers:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(8)
        out = context.Queue()
        racers = [
            context.Process(target=_limited, args=(servers.url, master, barrier, out))
            for _ in range(8)
        ]
        for racer in racers:
            racer.start()
        codes = [code for _ in racers for code in out.get(timeout=120)]
        for racer in racers:
            racer.join(30)
    assert sorted(codes) == [200] * 5 + [429] * 19


@contextmanager
def _redis_at(tmp_path: Path, port: int | None = None) -> Iterator[tuple[Any, str]]:
    process, url = start_redis(tmp_path, port=port)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _served_once(
    client: httpx.Client, signer: MessageSigner, tag: str
) -> tuple[dict[str, str], bytes]:
    """Send freshly signed requests until one is served (a new epoch refuses requests
    stamped within max_ahead_ms of its start); return the one that was."""
    deadline = time.monotonic() + 30
    n = 0
    while True:
        body = json.dumps({"tag": tag, "n": n}).encode()
        headers = signer.headers("POST", "/echo", body)
        code = client.post("/echo", content=body, headers=headers).status_code
        if code == 200:
            return headers, body
        assert code == 503, code
        assert time.monotonic() < deadline, "never served after the store came up"
        n += 1
        time.sleep(0.05)


@pytest.mark.redis
def test_a_redis_restarted_without_its_data_accepts_no_replay(tmp_path: Path) -> None:
    """The nonces went with the restart: a request the gateway served before it is refused
    after it (503, its stamp predates the store's new epoch), while freshly signed requests
    are served again once the epoch's lead has passed."""
    master = secrets.token_bytes(32)
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    with _redis_at(tmp_path) as (first, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        servers = ProcessServers(2, master, f"redis:{url}", max_ahead_ms=1000)
        with servers, httpx.Client(base_url=servers.url, timeout=20) as client:
            headers, body = _served_once(client, signer, "before")
            assert client.post("/echo", content=body, headers=headers).status_code == 409
            first.kill()  # SIGKILL: no snapshot, the data is gone
            first.wait()
            with _redis_at(tmp_path, port):
                replays = [
                    client.post("/echo", content=body, headers=headers).status_code
                    for _ in range(5)
                ]
                assert set(replays) == {503}  # reconnecting, then the new epoch
                fresh_headers, fresh_body = _served_once(client, signer, "after")
                again = client.post("/echo", content=body, headers=headers)
                assert again.status_code == 503
                assert int(again.headers["retry-after"]) >= 1
                fresh = client.post("/echo", content=fresh_body, headers=fresh_headers)
                assert fresh.status_code == 409


@pytest.mark.redis
def test_fail_open_checks_in_memory_while_redis_is_down_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only when asked: with Redis gone, nonces, limits and lock-outs are judged in this
    process's memory (a replay to this process is still refused), with one warning when
    the store goes."""
    from gateway_app import build
    from gateway_server import ThreadServer
    from securetrade.gateway import SharedState

    master = secrets.token_bytes(32)
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    forger = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))
    with _redis_at(tmp_path) as (process, url):
        state = SharedState.redis(url, timeout=0.5)
        options: dict[str, Any] = {"fail_open": True, "max_ahead_ms": 0}
        with ThreadServer(build(master, state=state, **options)) as server:
            assert _post(server.url, signer, b"before") == 200
            process.kill()
            process.wait()
            with caplog.at_level("WARNING", logger="securetrade.gateway"):
                with httpx.Client(base_url=server.url, timeout=20) as client:
                    headers = signer.headers("POST", "/echo", b"during")
                    first = client.post("/echo", content=b"during", headers=headers)
                    again = client.post("/echo", content=b"during", headers=headers)
                forged = [_post(server.url, forger, b"x", source="127.0.0.3") for _ in range(21)]
            assert (first.status_code, again.status_code) == (200, 409)
            assert forged == [401] * 20 + [429]  # the lock-out counted here meanwhile
            warnings = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
            assert len(warnings) == 1
            assert "fail_open=True" in warnings[0]
