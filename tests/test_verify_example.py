"""examples/signal_receiver.py, run as a real process on loopback, fed real HTTP requests."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from securetrade.keys import Secret
from securetrade.verify import MessageSigner

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "signal_receiver.py"
BODY = json.dumps({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}).encode()


class Receiver:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def post(self, target: str, headers: dict[str, str], body: bytes) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", target, body, headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        return err


@pytest.fixture
def secret_hex() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def start(secret_hex: str, tmp_path: Path) -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def run() -> Receiver:
        env = {**os.environ, "ST_SIGNAL_SECRET": secret_hex}
        process = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE),
                "--serve",
                "--port",
                "0",
                "--replay-db",
                str(tmp_path / "r.db"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        receiver = Receiver(process, int(line.rsplit(":", 1)[1].split("/")[0]))
        started.append(receiver)
        return receiver

    yield run
    for receiver in started:
        if receiver.process.poll() is None:
            receiver.stop()


def test_leader_cli_sends_a_signal_the_receiver_accepts(
    start: Callable[[], Receiver], secret_hex: str
) -> None:
    receiver = start()
    leader = subprocess.run(
        [sys.executable, str(EXAMPLE), "--send", f"http://127.0.0.1:{receiver.port}/signals"],
        env={**os.environ, "ST_SIGNAL_SECRET": secret_hex},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert leader.stdout.startswith("202 ")
    assert "leader bot" in leader.stdout


def test_demo_accepts_then_refuses_the_replay() -> None:
    demo = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = demo.stdout.splitlines()
    assert lines[0].startswith("first delivery: (202,")
    assert lines[1].startswith("replayed copy:  (401,")
    assert "refused a signal: replayed" in demo.stderr


def test_receiver_accepts_once_and_refuses_forgeries_stale_and_replays(
    start: Callable[[], Receiver], secret_hex: str
) -> None:
    receiver = start()
    signer = MessageSigner("leader-1", Secret(bytes.fromhex(secret_hex)))
    headers = signer.headers("POST", "/signals", BODY)
    assert receiver.post("/signals", headers, BODY) == 202
    assert receiver.post("/signals", headers, BODY) == 401  # the captured request, again
    fresh = signer.headers("POST", "/signals", BODY)
    assert receiver.post("/signals", fresh, BODY.replace(b"0.01", b"9")) == 401  # tampered
    assert receiver.post("/signals?x=1", fresh, BODY) == 401  # another target
    old = signer.headers(
        "POST", "/signals", BODY, timestamp_ms=time.time_ns() // 1_000_000 - 31_000
    )
    assert receiver.post("/signals", old, BODY) == 401  # outside the 30 s window
    impostor = MessageSigner("leader-1", Secret(secrets.token_bytes(32)))
    assert receiver.post("/signals", impostor.headers("POST", "/signals", BODY), BODY) == 401
    assert receiver.post("/signals", {}, BODY) == 401
    assert receiver.post("/signals", fresh, BODY) == 202  # failures did not burn its nonce
    log = receiver.stop()
    for reason in ("replayed", "bad_signature", "stale", "malformed"):
        assert f"refused a signal: {reason}" in log
    assert secret_hex not in log


def test_replay_protection_survives_a_restart(
    start: Callable[[], Receiver], secret_hex: str
) -> None:
    """The SQLite replay store outlives the process: a restart does not re-open replays."""
    signer = MessageSigner("leader-1", Secret(bytes.fromhex(secret_hex)))
    headers = signer.headers("POST", "/signals", BODY)
    first = start()
    assert first.post("/signals", headers, BODY) == 202
    first.stop()
    second = start()
    assert second.post("/signals", headers, BODY) == 401
