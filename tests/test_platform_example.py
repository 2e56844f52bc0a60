"""examples/platform: FastAPI behind the gateway, feeding the copy engine, on a real uvicorn.

The verdict is the simulator's own book: one order per follower for a signal, however
often the leader sends it; forged or incomplete signals never reach the engine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from securetrade.copy import Follower, Sizing, SizingMode
from securetrade.copy.plan import copy_key
from securetrade.sim import HttpsServer, Simulator
from securetrade.venues import get_venue

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ROOT / "examples" / "platform"
sys.path.insert(0, str(PLATFORM))

import app as platform  # noqa: E402  examples/platform/app.py
import leader  # noqa: E402  examples/platform/leader.py

uvicorn = pytest.importorskip("uvicorn")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(
    sim: Simulator, server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[Follower]]]:
    monkeypatch.setenv("PLATFORM_STATE", str(tmp_path))
    rich = {"USDT": Decimal(100_000), "BTC": Decimal(1)}
    followers = [
        Follower(
            f"f-{i}",
            sim.create_key(balances=rich),
            Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100)),
            slippage_bps=Decimal(300),
        )
        for i in range(5)
    ]
    options = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
    app = platform.create_app(
        venue=platform.Venue({"binance": options}), followers=followers, state=tmp_path
    )
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", followers
    finally:
        runner.should_exit = True
        thread.join(30)


def _orders(sim: Simulator, follower: Follower, signal_id: str) -> int:
    """The follower's orders for the signal, in the venue's book (by the client order id
    the engine derives from the event, the follower and the platform's copy secret)."""
    secret = platform.stored_secret(Path(os.environ["PLATFORM_STATE"]) / "copy.secret")
    idem = copy_key(secret, f"{platform.LEADER_KEY_ID}:{signal_id}", follower.id, 0)
    client_order_id = get_venue("binance").client_order_id(follower.account, idem)
    return len(sim.market.orders_with_client_id(client_order_id))


def test_a_signal_is_copied_once_per_follower_however_often_it_is_sent(
    sim: Simulator, served: tuple[str, list[Follower]]
) -> None:
    url, followers = served
    price = str(sim.market.price("BTCUSDT"))
    first = leader.send(url, "sig-1", price)
    assert first.status_code == 200, first.text
    assert first.json()["counts"] == {"placed": 5}
    for _ in range(2):  # redelivered: nothing more is placed
        assert leader.send(url, "sig-1", price).status_code == 200
    assert [_orders(sim, f, "sig-1") for f in followers] == [1] * 5


def test_forged_and_incomplete_signals_never_reach_the_engine(
    sim: Simulator, served: tuple[str, list[Follower]]
) -> None:
    url, followers = served
    body = json.dumps(leader.signal("sig-forged", "90000")).encode()
    forged = httpx.post(
        url + "/signals",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-ST-Key": platform.LEADER_KEY_ID,
            "X-ST-Timestamp": str(int(time.time() * 1000)),
            "X-ST-Nonce": "n" * 22,
            "X-ST-Signature": "A" * 43,
        },
    )
    assert forged.status_code == 401
    market = leader.signal("sig-market", "90000")
    market.pop("price")
    market["type"] = "market"
    auth = leader.GatewayAuth(
        platform.LEADER_KEY_ID,
        platform.stored_secret(Path(os.environ["PLATFORM_STATE"]) / "leader.secret"),
    )
    no_price = httpx.post(
        url + "/signals", content=json.dumps(market).encode(), auth=auth,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert no_price.status_code == 422
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    assert [_orders(sim, f, s) for f in followers for s in ("sig-forged", "sig-market")] == [0] * 10


def test_the_documented_commands_run_as_written(tmp_path: Path) -> None:
    """The two commands in app.py's docstring, from the repository root, with the app's
    own simulator."""
    port = _free_port()
    env = {**os.environ, "PLATFORM_STATE": str(tmp_path)}
    errors = (tmp_path / "uvicorn.err").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", "examples/platform", "--factory",
         "app:create_app", "--port", str(port), "--log-level", "error"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "uvicorn.err").read_text()
            assert time.monotonic() < deadline, "the platform did not start"
            time.sleep(0.2)
        sent: Any = subprocess.run(
            [sys.executable, "examples/platform/leader.py", "--url", f"http://127.0.0.1:{port}",
             "--id", "doc-1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("200 ")
        assert '"placed": 20' in sent.stdout
    finally:
        server.terminate()
        server.wait(30)
        errors.close()
