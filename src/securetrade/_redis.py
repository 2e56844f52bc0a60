"""A Redis client from what a caller passes: a URL, or a client of their own.

One place refuses anything else with :class:`~securetrade.errors.InvalidRequest` saying
what to give, before a store is built; redis-py's own ``ValueError`` for a bad URL, or an
``AttributeError`` when a store first uses a non-client, never reaches the caller.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequest

__all__ = ["redis_client"]


def redis_client(value: Any, *, what: str, **options: Any) -> Any:
    """``value`` as a ``redis.Redis``: built from a URL with ``options``, else as given."""
    if isinstance(value, str):
        try:
            from redis import Redis
        except ImportError:
            raise InvalidRequest(
                f"{what} needs redis-py: pip install 'securetrade[redis]'"
            ) from None
        try:
            return Redis.from_url(value, **options)
        except ValueError as exc:  # the message names the schemes, never the password
            raise InvalidRequest(
                f"{what}: unusable Redis URL ({exc}); give redis://host:port/db "
                "(rediss:// for TLS) or a redis.Redis client"
            ) from None
    if not callable(getattr(value, "execute_command", None)):
        raise InvalidRequest(
            f"{what} needs a Redis URL (redis://host:port/db) or a redis.Redis client, "
            f"not {type(value).__name__}"
        )
    return value
