"""The gateway as deployed: several uvicorn server processes sharing one SQLite file or one
Redis server, hit by client processes at once; Redis killed mid-run; a flood of forged
requests while valid clients keep being served.

The flood sends 1,000 forged requests in the normal suite; the issue's full figure and its
latency judgement run with::

    ST_GW_FLOOD=10000 ST_GW_FLOOD_P99=1 python -m pytest tests/test_gateway_processes.py -k flood -s

(the p99 ratio is asserted only then: the suite never asserts wall time).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_app import key_secret
from gateway_server import ProcessServers
from redis_server import start_redis
from securetrade.keys import Secret
from securetrade.verify import MessageSigner

ROUNDS = 12
RACERS = 8


def _racer(url: str, rounds: list[tuple[dict[str, str], bytes]], barrier: Any, out: Any) -> None:
    statuses = []
    for headers, body in rounds:
        barrier.wait()
        with httpx.Client(base_url=url, timeout=20) as client:  # a new connection each time
            statuses.append(client.post("/signals", content=body, headers=headers).status_code)
    out.put(statuses)


def _signal_body(n: int) -> bytes:
    return json.dumps(
        {
            "venue": "kraken",
            "symbol": "XBT/USD",
            "side": "sell",
            "type": "market",
            "quantity": "1.5",
            "signal_id": f"race-{n}",
            "leader": "leader-1",
            "issued_at": "2026-01-02T03:04:05Z",
        }
    ).encode()


def _race(url: str, master: bytes) -> list[list[int]]:
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    rounds = []
    for n in range(ROUNDS):
        body = _signal_body(n)
        rounds.append((signer.headers("POST", "/signals", body), body))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(RACERS)
    out = context.Queue()
    racers = [
        context.Process(target=_racer, args=(url, rounds, barrier, out)) for _ in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    results = [out.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(30)
    return [[statuses[n] for statuses in results] for n in range(ROUNDS)]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_same_nonce_from_8_processes_at_once_is_accepted_exactly_once(
    tmp_path: Path, redis_url: str, store: str
) -> None:
    master = secrets.token_bytes(32)
    spec = f"sqlite:{tmp_path / 'gateway.db'}" if store == "sqlite" else f"redis:{redis_url}"
    # max_ahead_ms=0: a new Redis starts its epoch when the servers connect, and refuses
    # requests stamped up to max_ahead_ms past it (they could predate a restart).
    # window_ms: the rounds are signed before the racers spawn, which takes tens of seconds
    # on a loaded machine; the nonce, not the clock, must decide each round.
    options = {"key_limit": None, "tenant_limit": None, "max_ahead_ms": 0, "window_ms": 600_000}
    with ProcessServers(4, master, spec, **options) as servers:
        per_round = _race(servers.url, master)
    for statuses in per_round:
        assert sorted(statuses) == [200] + [409] * (RACERS - 1), per_round


@pytest.mark.redis
def test_redis_stopped_mid_run_answers_503_never_500_and_accepts_nothing_twice(
    tmp_path: Path,
) -> None:
    master = secrets.token_bytes(32)
    process, url = start_redis(tmp_path)
    signer = MessageSigner("acme:leader-1", key_secret(master, "acme:leader-1"))
    try:
        with ProcessServers(2, master, f"redis:{url}", max_ahead_ms=0) as servers:
            sent = []
            with httpx.Client(base_url=servers.url, timeout=20) as client:
                for n in range(20):
                    body = _signal_body(n)
                    headers = signer.headers("POST", "/signals", body)
                    sent.append((headers, body))
                    assert client.post("/signals", content=body, headers=headers).status_code == 200
                process.kill()
                process.wait()
                after = []
                for n, (headers, body) in enumerate(sent):
                    fresh_body = _signal_body(100 + n)
                    fresh = signer.headers("POST", "/signals", fresh_body)
                    after.append(client.post("/signals", content=body, headers=headers))
                    after.append(client.post("/signals", content=fresh_body, headers=fresh))
            assert {r.status_code for r in after} == {503}
            assert all(r.headers["retry-after"] == "1" for r in after)
            assert all(
                r.content == b'{"type":"about:blank","title":"Service Unavailable","status":503}'
                for r in after
            )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the flood --------------------------------------------------------------------------


def _flood(url: str, count: int, threads: int, out: Any) -> None:
    """``count`` forged requests from 127.0.0.2, over ``threads`` keep-alive connections."""
    forger = MessageSigner("acme:leader-2", Secret(secrets.token_bytes(32)))
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def run(share: int) -> None:
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, transport=transport, timeout=20) as client:
            for _ in range(share):
                headers = forger.headers("POST", "/echo", b"forged")
                code = client.post("/echo", content=b"forged", headers=headers).status_code
                with lock:
                    codes[code] = codes.get(code, 0) + 1

    workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(codes)


def _valid_latencies(url: str, master: bytes, count: int) -> tuple[list[float], list[int]]:
    from securetrade.gateway import GatewayAuth

    auth = GatewayAuth("acme:leader-1", key_secret(master, "acme:leader-1"))
    times, codes = [], []
    with httpx.Client(base_url=url, auth=auth, timeout=20) as client:
        for _ in range(count):
            started = time.perf_counter()
            codes.append(client.post("/echo", content=b"valid").status_code)
            times.append(time.perf_counter() - started)
    return times, codes


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


def test_a_bad_signature_flood_is_refused_cheaply_and_valid_clients_keep_being_served(
    tmp_path: Path,
) -> None:
    count = int(os.environ.get("ST_GW_FLOOD", "1000"))
    master = secrets.token_bytes(32)
    options = {"key_limit": None, "tenant_limit": None}
    with ProcessServers(1, master, f"sqlite:{tmp_path / 'gw.db'}", **options) as servers:
        idle, idle_codes = _valid_latencies(servers.url, master, 300)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        flood = context.Process(target=_flood, args=(servers.url, count, 4, out))
        flood.start()
        busy: list[float] = []
        busy_codes: list[int] = []
        while flood.is_alive() and len(busy) < 20_000:
            times, codes = _valid_latencies(servers.url, master, 50)
            busy += times
            busy_codes += codes
            if not out.empty():
                break
        flood_codes = out.get(timeout=300)
        flood.join(30)
    # Every valid request was served, before and during the flood.
    assert set(idle_codes) == {200}
    assert set(busy_codes) == {200}
    assert len(busy) >= 50
    # Every forged one was refused: the first few at the signature (401), then the address
    # and the key were locked out (429) and refused before any signature work.
    assert sum(flood_codes.values()) == count - count % 4
    assert set(flood_codes) <= {401, 429}
    assert flood_codes.get(401, 0) <= 40  # lock-out threshold: 20 per address, 20 per key
    ratio = _p99(busy) / _p99(idle)
    print(
        f"\nflood of {count}: valid p99 idle {_p99(idle) * 1e3:.2f} ms, under flood "
        f"{_p99(busy) * 1e3:.2f} ms (x{ratio:.2f}); flood answers {flood_codes}"
    )
    if os.environ.get("ST_GW_FLOOD_P99") == "1":
        assert ratio <= 2.0
