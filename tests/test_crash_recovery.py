"""kill -9 at every point of the order path, then a restart on the same journal.

Each test runs the bot as a child process (tests/crash_child.py) against the simulator
over TLS, kills it with SIGKILL at a named point (or, for a request in flight, from the
outside while the venue holds it), restarts it with the same idempotency key, and asserts
the oracle: one order at the venue, the restarted bot holds it, no intent lost.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade.core import Journal
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer, Simulator

CHILD = Path(__file__).with_name("crash_child.py")
LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": "60000"}
MARKET = {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.01"}


def _job(server: HttpsServer, key: ApiKey, journal: Path, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": server.base_url,
        "pins": server.pins,
        "ca": server.ca_pem,
        "key_id": key.key_id,
        "secret": key.secret.expose().decode(),
        "journal": str(journal),
        "order": LIMIT,
        "idempotency_key": "crash",
        **extra,
    }


def _start(job: dict[str, Any]) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    child.stdin.write(json.dumps(job))
    child.stdin.close()
    return child


def _finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the child; its output, with every pipe closed."""
    assert child.stdout is not None
    assert child.stderr is not None
    with child.stdout, child.stderr:
        out, err = child.stdout.read(), child.stderr.read()
    child.wait(timeout=60)
    return out, err


def _run(job: dict[str, Any]) -> tuple[int, list[dict[str, Any]], str]:
    child = _start(job)
    out, err = _finish(child)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return child.returncode, lines, err


def _posts(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def _oracle(sim: Simulator, journal: Path, key: ApiKey) -> None:
    j = Journal(journal)
    try:
        assert_oracle(sim, j, key.key_id, ["crash"])
    finally:
        j.close()


@pytest.mark.parametrize(
    ("crash_at", "posts_before_restart"),
    [
        ("before_claim_commit", 0),  # 7c: no row yet
        ("after_claim_commit", 0),  # 7a: PENDING, nothing sent
        ("after_attempt_commit", 0),  # 7b: SENDING, request never sent
        ("after_response", 1),  # 8b: the venue answered, the ack never recorded
    ],
)
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_kill_at_a_crash_point_then_restart_places_exactly_once(
    sim: Simulator,
    server: HttpsServer,
    tmp_path: Path,
    crash_at: str,
    posts_before_restart: int,
    driver: str,
) -> None:
    """The async client (group commit: queued writes, flushes in a worker thread) keeps
    the same promises as the sync one at every crash point."""
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    code, _, err = _run(_job(server, key, journal, crash_at=crash_at, driver=driver))
    assert code == -signal.SIGKILL, err
    assert _posts(sim) == posts_before_restart
    code, lines, err = _run(_job(server, key, journal, driver=driver))
    assert code == 0, err
    placed = lines[-1]
    held = sim.market.orders_with_client_id(placed["client_order_id"])
    assert [str(o.order_id) for o in held] == [placed["order_id"]]
    assert _posts(sim) == 1
    _oracle(sim, journal, key)


@pytest.mark.parametrize("order", [LIMIT, MARKET], ids=["limit", "market"])
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_kill_while_the_request_is_in_flight_then_restart_finds_it(
    sim: Simulator, server: HttpsServer, tmp_path: Path, order: dict[str, str], driver: str
) -> None:
    """8a: SIGKILL from outside after the venue received the order, before it answered."""
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    sim.faults.inject("delay", method="POST", path="/api/v3/order", seconds=1.0)
    child = _start(_job(server, key, journal, order=order, driver=driver))
    deadline = time.monotonic() + 30
    while _posts(sim) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    _finish(child)
    assert child.returncode == -signal.SIGKILL
    time.sleep(1.1)  # the venue finishes the order the dead bot sent
    code, lines, err = _run(
        _job(server, key, journal, order=order, report_recovery=True, driver=driver)
    )
    assert code == 0, err
    recovery, placed = lines
    assert recovery["resolved"] in ([placed["client_order_id"]], [])  # found now or on resubmit
    held = sim.market.orders_with_client_id(placed["client_order_id"])
    assert [str(o.order_id) for o in held] == [placed["order_id"]]
    assert _posts(sim) == 1
    _oracle(sim, journal, key)


def test_two_processes_racing_on_one_key_place_one_order(
    sim: Simulator, server: HttpsServer, tmp_path: Path
) -> None:
    """11: the same key from two processes sharing the journal file: one send, one order."""
    key = sim.create_key()
    journal = tmp_path / "journal.sqlite3"
    children = [_start(_job(server, key, journal)) for _ in range(2)]
    results = []
    for child in children:
        out, err = _finish(child)
        assert child.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert results[0]["order_id"] == results[1]["order_id"]
    assert _posts(sim) == 1
    assert Decimal(results[0]["quantity"]) == Decimal(LIMIT["quantity"])
    _oracle(sim, journal, key)
