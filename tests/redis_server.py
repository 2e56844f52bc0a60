"""A real ``redis-server`` on a free loopback port, for tests that share state through Redis.

Use the session-scoped ``redis_url`` fixture (registered in conftest.py). Finding and
starting the server (``redis-server`` from PATH, else the real Valkey server that the
``test`` extra installs from PyPI) lives in ``benchmarks._redis``, shared with the
benchmark's Redis row; here a missing server fails the test: a skipped Redis test would
hide the one backend that crosses hosts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._redis import ServerMissing, redis_binary, stop_redis
from benchmarks._redis import start_redis as _start

__all__ = ["redis_binary", "start_redis", "stop_redis"]


def start_redis(
    directory: Path, binary: str | None = None, *, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a Redis-protocol server in ``directory`` (see ``benchmarks._redis.start_redis``);
    the test fails, saying what to install, when there is none."""
    try:
        return _start(directory, binary, port=port)
    except ServerMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server for this test session (database 0, no persistence)."""
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        stop_redis(process)
