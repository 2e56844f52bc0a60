"""Copy trading on several hosts: leader events on a Redis Stream, workers in a group.

The platform publishes each leader event once (:meth:`EventStream.publish`, an ``XADD``).
Every host runs a :class:`~.engine.CopyEngine` with the same followers, the same engine
secret and a shared :class:`~securetrade.core.RedisJournal`, and a worker
(:meth:`EventStream.work`) that reads entries as a member of one consumer group: Redis
hands each entry to one worker at a time. An entry is acknowledged only once the event's
fan-out is complete (every follower placed, skipped or failed with a reason); a worker
that dies leaves its entries pending, and another worker claims them once they have been
idle for ``claim_idle_ms`` (``XAUTOCLAIM``) and copies the event again. The followers'
idempotency keys and the shared journal make that second copy place nothing twice.

Redis Streams is the queue; nothing here is a queue of our own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._checks import text, whole
from ..errors import InvalidRequest, JournalError
from ..models import Side
from .model import LeaderEvent, Movement
from .report import EventReport

if TYPE_CHECKING:
    from .engine import CopyEngine

__all__ = ["EventStream"]

log = logging.getLogger("securetrade.copy")

_FIELDS = (
    "id",
    "symbol",
    "side",
    "quantity",
    "price",
    "at_ms",
    "movement",
    "close_fraction",
    "venue",
)


class EventStream:
    """One Redis Stream of leader events and its consumer group (``redis`` extra).

    ``url`` reaches the Redis server (or pass ``client``, a ``redis.asyncio.Redis``);
    ``stream`` and ``group`` name the stream and its consumer group (one hash tag, for
    Redis Cluster); ``consumer`` names this worker (host and pid by default).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        stream: str = "securetrade:copy:events",
        group: str = "copy-workers",
        consumer: str | None = None,
    ) -> None:
        import redis.asyncio as redis_async

        text("stream", stream)
        text("group", group)
        if client is None:
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    "EventStream needs a Redis URL (redis://host:6379/0) or "
                    "client=redis.asyncio.Redis"
                )
            try:
                client = redis_async.Redis.from_url(url)
            except ValueError as exc:  # redis-py's word for a URL it cannot read
                raise InvalidRequest(
                    f"EventStream: {exc}; give a URL like redis://host:6379/0 "
                    "(or rediss:// for TLS)"
                ) from None
        self._redis = client
        self.stream = stream
        self.group = group
        self.consumer = text("consumer", consumer or f"{socket.gethostname()}:{os.getpid()}")
        self._ready = False

    async def publish(self, event: LeaderEvent) -> str:
        """Put ``event`` on the stream; returns its entry id."""
        if not isinstance(event, LeaderEvent):
            raise InvalidRequest("publish() takes a LeaderEvent")
        fields = {name: str(_value(getattr(event, name))) for name in _FIELDS}
        if event.leader_equity is not None:
            fields["leader_equity"] = str(event.leader_equity)
        entry = await self._redis.xadd(self.stream, fields)
        return _text(entry)

    async def work(
        self,
        engine: CopyEngine,
        *,
        stop: asyncio.Event | None = None,
        claim_idle_ms: int = 30_000,
        block_ms: int = 500,
        count: int = 10,
        limit: int | None = None,
    ) -> list[EventReport]:
        """Copy events from the stream until ``stop`` is set (or ``limit`` entries are
        acknowledged). First the entries other workers left idle for ``claim_idle_ms``,
        then new ones. Returns the reports of the events this worker completed."""
        whole("claim_idle_ms", claim_idle_ms, 1)
        whole("block_ms", block_ms, 1)
        whole("count", count, 1)
        await self._create_group()
        done: list[EventReport] = []
        while not (stop is not None and stop.is_set()):
            if limit is not None and len(done) >= limit:
                break
            claimed = await self._claim(claim_idle_ms, count)
            entries = claimed or await self._read(block_ms, count)
            for entry_id, fields in entries:
                report = await self._handle(engine, entry_id, fields)
                if report is not None:
                    done.append(report)
        return done

    async def pending(self) -> int:
        """Entries handed to a worker and not yet acknowledged."""
        await self._create_group()
        summary = await self._redis.xpending(self.stream, self.group)
        return int(summary["pending"]) if isinstance(summary, dict) else int(summary[0])

    async def close(self) -> None:
        """Close the Redis connection; unacknowledged events stay pending for another worker."""
        await self._redis.aclose()

    # --- one entry -----------------------------------------------------------------------------

    async def _handle(
        self, engine: CopyEngine, entry_id: str, fields: dict[str, str]
    ) -> EventReport | None:
        try:
            event = _event_of(fields)
        except InvalidRequest as exc:
            # Not an event anyone could copy: acknowledged, so it cannot block the group.
            log.error("copy stream entry %s is not a leader event (%s): dropped", entry_id, exc)
            await self._redis.xack(self.stream, self.group, entry_id)
            return None
        report = await engine.copy(event)
        if report.complete:
            await self._redis.xack(self.stream, self.group, entry_id)
            return report
        # Unresolved followers: left pending, so this or another worker copies it again.
        return None

    async def _create_group(self) -> None:
        if self._ready:
            return
        from redis.exceptions import ResponseError

        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise JournalError(f"cannot create the copy stream's group: {exc}") from exc
        self._ready = True

    async def _claim(self, idle_ms: int, count: int) -> list[tuple[str, dict[str, str]]]:
        answer = await self._redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=idle_ms, start_id="0-0",
            count=count,
        )  # fmt: skip
        claimed = answer[1] if len(answer) > 1 else []
        return [(_text(entry_id), _fields(raw)) for entry_id, raw in claimed if raw]

    async def _read(self, block_ms: int, count: int) -> list[tuple[str, dict[str, str]]]:
        answer = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        entries: list[tuple[str, dict[str, str]]] = []
        for _stream, items in answer or []:
            entries.extend((_text(entry_id), _fields(raw)) for entry_id, raw in items)
        return entries


def _value(value: object) -> object:
    return value.value if isinstance(value, (Side, Movement)) else value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _event_of(fields: dict[str, str]) -> LeaderEvent:
    try:
        return LeaderEvent(
            id=fields["id"],
            symbol=fields["symbol"],
            side=Side(fields["side"]),
            quantity=Decimal(fields["quantity"]),
            price=Decimal(fields["price"]),
            at_ms=int(fields["at_ms"]),
            movement=Movement(fields["movement"]),
            close_fraction=Decimal(fields["close_fraction"]),
            leader_equity=(Decimal(fields["leader_equity"]) if "leader_equity" in fields else None),
            venue=fields["venue"],
        )
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise InvalidRequest(f"not a leader event: {type(exc).__name__}") from None
