"""Real uvicorn servers on 127.0.0.1 for the gateway tests: one in a thread of this process
(its monitor and stores can be inspected), or several server processes sharing one
listening socket (the kernel hands each connection to one of them), as a deployment runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


class ThreadServer:
    """uvicorn serving ``app`` in a daemon thread; ``url`` once started."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # uvicorn's own proxy-header handling would rewrite the client address from
        # X-Forwarded-For for peers on 127.0.0.1 before the gateway sees it: the gateway
        # judges X-Forwarded-For itself (trusted_proxies=), so uvicorn must not.
        options = {"log_level": "warning", "lifespan": "off", "proxy_headers": False, **config}
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class ProcessServers:
    """``count`` uvicorn processes serving ``gateway_app:app_from_env`` on one socket."""

    def __init__(self, count: int, secret: bytes, store: str, **options: Any) -> None:
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
            "ST_GW_SECRET": secret.hex(),
            "ST_GW_STORE": store,
            "ST_GW_OPTIONS": json.dumps(options),
        }
        fd = self.sock.fileno()
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "gateway_app:app_from_env",
            "--fd", str(fd), "--log-level", "warning", "--lifespan", "off", "--no-proxy-headers",
        ]  # fmt: skip
        self.processes = [
            subprocess.Popen(command, env=env, pass_fds=[fd], cwd=ROOT) for _ in range(count)
        ]

    def __enter__(self) -> ProcessServers:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError("a uvicorn server process exited at start")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn server processes did not start")
            time.sleep(0.05)
        time.sleep(0.3)  # the others: each answers once it is up
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.sock.close()
