"""Nonces shared across hosts: one Redis key per API key, advanced by an atomic script."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._checks import safe_repr
from .._redis import redis_client
from ..errors import InvalidRequest
from .base import MAX_NONCE, Resolution, check_floor, stream_name

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisNonceSource"]

# Atomically: next = max(current + 1, now), stored and returned. Redis runs a script alone,
# so no two clients can read the same ``current``. Integers are exact below 2**53.
_NEXT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local value = current + 1
if now > value then value = now end
if value > tonumber(ARGV[2]) then return redis.error_reply('nonce space exhausted') end
redis.call('SET', KEYS[1], string.format('%d', value))
return value
"""

_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor > current then redis.call('SET', KEYS[1], string.format('%d', floor)) end
return 0
"""


class RedisNonceSource:
    """Strictly increasing nonces for every process and host that shares one Redis.

    The high-water mark is a plain Redis string under ``{prefix}{sha256(key_id)[:32]}``; it
    outlives our processes, and Redis's own persistence (AOF or RDB) decides whether it
    outlives a Redis restart. Needs the ``redis`` extra.
    """

    def __init__(
        self,
        client: Redis | str,
        resolution: Resolution = Resolution.MILLISECONDS,
        *,
        prefix: str = "securetrade:nonce:",
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        redis: Redis = redis_client(client, what="RedisNonceSource")
        self.resolution = resolution
        self._client = redis
        self._prefix = prefix
        self._time_ns = time_ns
        self._next: Any = redis.register_script(_NEXT)
        self._floor: Any = redis.register_script(_FLOOR)

    def next(self, key_id: str) -> int:
        now = self.resolution.now(self._time_ns)
        from redis.exceptions import ResponseError

        try:
            value = self._next(keys=[self._prefix + stream_name(key_id)], args=[now, MAX_NONCE])
        except ResponseError as exc:
            raise InvalidRequest(f"nonce not issued: {exc}") from None
        return int(value)

    def advance_to(self, key_id: str, floor: int) -> None:
        floor = check_floor(floor)
        self._floor(keys=[self._prefix + stream_name(key_id)], args=[floor])

    def close(self) -> None:
        """Release the Redis connection pool."""
        self._client.close()

    @safe_repr
    def __repr__(self) -> str:
        return f"RedisNonceSource({self.resolution.name.lower()})"
