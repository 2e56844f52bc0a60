"""A real ``redis-server`` on a free loopback port, for tests that share state through Redis.

Use the session-scoped ``redis_url`` fixture (registered in conftest.py). A missing
``redis-server`` binary fails the test: CI installs it, and a skipped Redis test would
hide the one backend that crosses hosts.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server in ``directory`` (on ``port``, else a free one: a restart takes
    the port of the server it replaces); return the process and its URL."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        pytest.fail("redis-server is not installed; the Redis backends cannot be tested")
    wanted = port
    for _ in range(5):  # another process may take the port between probe and bind
        port = wanted or _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
        process = subprocess.Popen(
            [*args, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return process, f"redis://127.0.0.1:{port}/0"
            time.sleep(0.02)
        process.kill()
        process.wait()
    pytest.fail("redis-server did not start on a loopback port")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server for this test session (database 0, no persistence)."""
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
