"""``gateway_latency_vs_starlette``: one signed, verified, limited and validated request
through the gateway, against the same route on bare Starlette, both served by uvicorn.

Each side is one uvicorn process (held on one CPU where the machine has two or more) on its
own loopback socket; one keep-alive httpx client sends the same leader signal to each in
turn (signing is the client's cost and is done before the timer starts), and each side's
figure is the median latency. Then requests per second on that one core: four client
threads with keep-alive connections, for a fixed count, against the gateway alone.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._report import Row
from ._timing import Effort, percentile

__all__ = ["bare_app", "gateway_app", "gateway_row"]

_KEY_ID = "bench:leader"


def _routes() -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route as StarletteRoute

    from securetrade.gateway.models import LeaderSignal

    async def signals(request: Request) -> Response:
        body = await request.body()
        signal = request.scope.get("securetrade.body") or LeaderSignal.model_validate_json(body)
        return JSONResponse({"accepted": signal.signal_id})

    return [StarletteRoute("/signals", signals, methods=["POST"])]


def bare_app() -> Any:
    """The route on Starlette alone (it validates the body itself, as the gateway would)."""
    from starlette.applications import Starlette

    return Starlette(routes=_routes())


def gateway_app() -> Any:
    """The same route behind the gateway: SQLite nonces and limits, the LeaderSignal model."""
    from starlette.applications import Starlette

    from securetrade.gateway import (
        GatewayKey,
        GatewayMiddleware,
        KeyRegistry,
        Limit,
        Route,
        SharedState,
    )
    from securetrade.gateway.models import LeaderSignal
    from securetrade.keys import Secret

    secret = Secret(bytes.fromhex(os.environ["ST_BENCH_SECRET"]))
    keys = KeyRegistry([GatewayKey.hmac(_KEY_ID, secret, tenant="bench", scopes=["w"])])
    return GatewayMiddleware(
        Starlette(routes=_routes()),
        keys=keys,
        routes=[Route("POST", "/signals", scopes=frozenset({"w"}), model=LeaderSignal)],
        state=SharedState.sqlite(os.environ["ST_BENCH_DB"]),
        key_limit=Limit(10**9, 1.0),
        tenant_limit=Limit(10**9, 1.0),
    )


def _signal(n: int) -> bytes:
    return json.dumps(
        {
            "venue": "binance",
            "symbol": "BTCUSDT",
            "side": "buy",
            "type": "limit",
            "quantity": "0.010",
            "price": "60000.5",
            "signal_id": f"bench-{n}",
            "leader": "leader-1",
            "issued_at": "2026-01-02T03:04:05Z",
        }
    ).encode()


class _Server:
    def __init__(self, factory: str, env: dict[str, str], cpu: int | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        fd = self.sock.fileno()
        command = [
            sys.executable, "-m", "uvicorn", "--factory", f"benchmarks._gateway:{factory}",
            "--fd", str(fd), "--log-level", "error", "--lifespan", "off", "--no-access-log",
            "--no-proxy-headers",
        ]  # fmt: skip
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, env={**os.environ, **env}, pass_fds=[fd]
        )

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.sock.close()


def _wait_up(client: Any, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client.get(url + "/")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def gateway_row(effort: Effort) -> Row:
    import shutil

    import httpx

    from securetrade.gateway import GatewayAuth
    from securetrade.keys import Secret

    secret = secrets.token_bytes(32)
    cpus = os.cpu_count() or 1
    cpu = 0 if cpus >= 2 and shutil.which("taskset") else None
    count = effort.sync_orders * 3
    with tempfile.TemporaryDirectory(prefix="securetrade-bench-") as tmp:
        env = {"ST_BENCH_SECRET": secret.hex(), "ST_BENCH_DB": str(Path(tmp) / "gw.db")}
        bare = _Server("bare_app", env, cpu)
        gated = _Server("gateway_app", env, cpu)
        try:
            auth = GatewayAuth(_KEY_ID, Secret(secret))
            with httpx.Client(timeout=30) as plain:
                for server in (bare, gated):
                    _wait_up(plain, server.url)
                timings: dict[str, list[float]] = {"bare": [], "gated": []}
                n = 0
                for index in range(count + effort.warmup_orders):
                    for name, server in (("bare", bare), ("gated", gated)):
                        n += 1
                        body = _signal(n)
                        request = plain.build_request("POST", server.url + "/signals", content=body)
                        if name == "gated":
                            auth.sign(request)
                        started = time.perf_counter()
                        response = plain.send(request)
                        taken = time.perf_counter() - started
                        if response.status_code != 200:
                            raise RuntimeError(f"{name} answered {response.status_code}")
                        if index >= effort.warmup_orders:
                            timings[name].append(taken)
            rps = _throughput(gated.url, auth, count)
        finally:
            bare.close()
            gated.close()
    ours = percentile(timings["gated"], 0.5) * 1e6
    peer = percentile(timings["bare"], 0.5) * 1e6
    held = f"server held on CPU {cpu}" if cpu is not None else "server not pinned"
    return Row(
        "gateway_latency_vs_starlette",
        ours,
        peer,
        "µs p50",
        peer_name="bare Starlette",
        note=f"{count} requests a side, uvicorn, keep-alive, SQLite nonces and limits, "
        f"LeaderSignal validated on both sides; {rps:,.0f} requests/s through the gateway "
        f"on one core ({held}; 4 client threads)",
    )


def _throughput(url: str, auth: Any, count: int) -> float:
    import httpx

    per_thread = max(10, count)
    errors: list[int] = []

    def run(offset: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(per_thread):
                body = _signal(10_000_000 + offset * per_thread + n)
                request = client.build_request("POST", url + "/signals", content=body)
                auth.sign(request)
                if client.send(request).status_code != 200:
                    errors.append(n)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests refused during the throughput run")
    return 4 * per_thread / taken
