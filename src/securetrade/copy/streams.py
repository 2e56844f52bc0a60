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

A live worker keeps the entries in its hands from going idle: it heartbeats them
(``XCLAIM ... JUSTID`` in a script, and only while the group still names it as their
consumer), so however long a fan-out takes, nobody claims it away. A worker that was
stopped past ``claim_idle_ms`` (a paused VM, SIGSTOP) finds on resuming that its entries
were claimed; those it has not started are left to their new owner, and the one it was in
the middle of is finished under the same idempotency keys, so nothing is placed twice. How
soon a dead worker's events are completed by another is in docs/copy-trading.md ("The
takeover bound").

Redis Streams is the queue; nothing here is a queue of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import _fork
from .._checks import instance, text, whole
from ..core.settings import Settings
from ..errors import InvalidRequest, JournalError
from ..models import Side
from .model import LeaderEvent, Movement
from .report import EventReport

if TYPE_CHECKING:
    from .engine import CopyEngine

__all__ = ["EventStream", "takeover_bound"]

log = logging.getLogger("securetrade.copy")

# KEYS: the stream. ARGV: group, consumer, entry ids. Each entry the group still has
# pending for this consumer gets its idle time reset (XCLAIM JUSTID: no delivery counted);
# returns the ids that are still this consumer's. An entry another worker claimed is not
# touched: the check and the claim are one script, so no claim can slip in between.
_HEARTBEAT = """
local kept = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

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

        stream = text("stream", stream)
        group = text("group", group)
        if consumer is not None:  # "" is the default too
            consumer = text("consumer", consumer, empty=True)
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
        elif not callable(getattr(client, "register_script", None)):
            raise InvalidRequest(
                f"EventStream: client must be a redis.asyncio.Redis, not {type(client).__name__}"
            )
        self._redis = client
        self.stream = stream
        self.group = group
        self.consumer = consumer or text("consumer", f"{socket.gethostname()}:{os.getpid()}")
        self._ready = False
        self._beat = client.register_script(_HEARTBEAT)
        _fork.watch(self)  # a forked child refuses to use it

    _inherited = False  # set in a child forked after it was built

    def _after_fork(self) -> None:
        """In a forked child (see :mod:`securetrade._fork`): every call raises
        :class:`~securetrade.errors.InheritedAcrossFork` before anything is sent. The
        asyncio Redis client's pool does not reopen after a fork: its connections are the
        parent's (and of the parent's event loop), and the consumer name (host:pid by
        default) too: two processes under one name would keep each other's entries."""
        self._inherited = True
        _fork.park(self._redis, self._beat)
        self._redis = self._beat = _fork.Refusing("EventStream")

    async def publish(self, event: LeaderEvent) -> str:
        """Put ``event`` on the stream; returns its entry id."""
        if not isinstance(event, LeaderEvent):
            raise InvalidRequest("publish() takes a LeaderEvent")
        fields = {name: str(_value(getattr(event, name))) for name in _FIELDS}
        if event.leader_equity is not None:
            fields["leader_equity"] = str(event.leader_equity)
        entry = await self._call("publish the event", self._redis.xadd(self.stream, fields))
        return _text(entry)

    async def work(
        self,
        engine: CopyEngine,
        *,
        stop: asyncio.Event | None = None,
        claim_idle_ms: int = 10_000,
        block_ms: int = 500,
        count: int = 10,
        limit: int | None = None,
    ) -> list[EventReport]:
        """Copy events from the stream until ``stop`` is set (or ``limit`` entries are
        acknowledged). First the entries other workers left idle for ``claim_idle_ms``,
        then new ones. Returns the reports of the events this worker completed.

        The idle time of the entries in hand is reset every quarter of ``claim_idle_ms``,
        so only a worker that stopped running (dead or frozen) has its entries claimed."""
        from .engine import CopyEngine

        if limit is not None:
            whole("limit", limit, 0)
        whole("claim_idle_ms", claim_idle_ms, 1)
        whole("block_ms", block_ms, 1)
        whole("count", count, 1)
        instance("engine", engine, CopyEngine, optional=False)
        instance("stop", stop, asyncio.Event)
        await self._create_group()
        held: set[str] = set()  # entries this worker was handed and has not finished
        beating = asyncio.create_task(self._heartbeats(held, claim_idle_ms / 4000))
        done: list[EventReport] = []
        try:
            while not (stop is not None and stop.is_set()):
                if limit is not None and len(done) >= limit:
                    break
                claimed = await self._claim(claim_idle_ms, count)
                entries = claimed or await self._read(block_ms, count)
                held.update(entry_id for entry_id, _ in entries)
                for entry_id, fields in entries:
                    try:
                        if not await self._still_ours(entry_id, held):
                            log.warning(
                                "copy stream entry %s was claimed by another worker while "
                                "this one was not running: left to it",
                                entry_id,
                            )
                            continue
                        report = await self._handle(engine, entry_id, fields)
                    finally:
                        held.discard(entry_id)
                    if report is not None:
                        done.append(report)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        return done

    async def pending(self) -> int:
        """Entries handed to a worker and not yet acknowledged."""
        await self._create_group()
        summary = await self._call(
            "read the pending entries", self._redis.xpending(self.stream, self.group)
        )
        return int(summary["pending"]) if isinstance(summary, dict) else int(summary[0])

    async def close(self) -> None:
        """Close the Redis connection; unacknowledged events stay pending for another worker.
        In a child forked after it was built it does nothing: the connections are the parent's."""
        if self._inherited:
            return
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
            await self._ack(entry_id)
            return None
        report = await engine.copy(event)
        if report.complete:
            # Acknowledged even if another worker claimed it meanwhile: the event is complete
            # (the claimer's copy places nothing new, and its own XACK is then a no-op).
            await self._ack(entry_id)
            return report
        # Unresolved followers: left pending, so this or another worker copies it again.
        return None

    async def _ack(self, entry_id: str) -> None:
        await self._call(
            "acknowledge the entry", self._redis.xack(self.stream, self.group, entry_id)
        )

    async def _still_ours(self, entry_id: str, held: set[str]) -> bool:
        """Whether the group still has ``entry_id`` pending for this worker (its idle time
        reset on the way); False once another worker has claimed it."""
        if entry_id not in held:  # the heartbeat found it claimed already
            return False
        return bool(await self._heartbeat([entry_id]))

    async def _heartbeat(self, entry_ids: list[str]) -> list[str]:
        kept = await self._call(
            "heartbeat the entries in hand",
            self._beat(keys=[self.stream], args=[self.group, self.consumer, *entry_ids]),
        )
        return [_text(entry_id) for entry_id in kept or []]

    async def _heartbeats(self, held: set[str], every: float) -> None:
        """Keep the entries in hand from going idle; forget those another worker claimed."""
        while True:
            await asyncio.sleep(every)
            ids = sorted(held)
            if not ids:
                continue
            try:
                kept = set(await self._heartbeat(ids))
            except JournalError as exc:  # the work loop meets the same failure and raises
                log.warning("copy stream heartbeat failed: %s", exc)
                continue
            for entry_id in ids:
                if entry_id not in kept and entry_id in held:
                    held.discard(entry_id)
                    log.warning("copy stream entry %s was claimed by another worker", entry_id)

    async def _create_group(self) -> None:
        if self._ready:
            return
        from redis.exceptions import RedisError, ResponseError

        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise JournalError(f"cannot create the copy stream's group: {exc}") from exc
        except RedisError as exc:
            raise _unreachable("create the consumer group", exc) from exc
        self._ready = True

    async def _claim(self, idle_ms: int, count: int) -> list[tuple[str, dict[str, str]]]:
        answer = await self._call(
            "claim idle entries",
            self._redis.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=idle_ms,
                start_id="0-0", count=count,
            ),
        )  # fmt: skip
        claimed = answer[1] if len(answer) > 1 else []
        return [(_text(entry_id), _fields(raw)) for entry_id, raw in claimed if raw]

    async def _read(self, block_ms: int, count: int) -> list[tuple[str, dict[str, str]]]:
        answer = await self._call(
            "read new entries",
            self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            ),
        )
        entries: list[tuple[str, dict[str, str]]] = []
        for _stream, items in answer or []:
            entries.extend((_text(entry_id), _fields(raw)) for entry_id, raw in items)
        return entries

    async def _call(self, what: str, pending: Awaitable[Any]) -> Any:
        """One Redis round trip; a failure comes out as :class:`JournalError`."""
        from redis.exceptions import RedisError

        try:
            return await pending
        except RedisError as exc:
            raise _unreachable(what, exc) from exc


def takeover_bound(
    settings: Settings | None = None,
    *,
    recv_window_ms: int = 5_000,
    claim_idle_ms: int = 10_000,
    block_ms: int = 500,
) -> float:
    """The longest time, in seconds, from a worker's death to the completion of its events
    by another worker (an idle one), for these settings and a venue whose requests stay
    executable for ``recv_window_ms``. The parts, in docs/copy-trading.md ("The takeover
    bound"): the entry goes idle and is claimed at the next poll; then the claimer waits,
    at most, for the dead worker's recovery lease to lapse or its last attempt's deadline
    to pass, whichever is later. They are added, not overlapped, so the bound holds
    whatever order they come in, with the difference as room for the fan-out itself."""
    if settings is None:
        settings = Settings()
    elif not isinstance(settings, Settings):
        raise InvalidRequest("takeover_bound() takes a securetrade.Settings (or None)")
    whole("recv_window_ms", recv_window_ms, 0)
    whole("claim_idle_ms", claim_idle_ms, 1)
    whole("block_ms", block_ms, 1)
    claimed = (claim_idle_ms + block_ms) / 1000
    deadline = (recv_window_ms + settings.settle_ms) / 1000
    return claimed + max(settings.recovery_lease, deadline)


def _unreachable(what: str, exc: Exception) -> JournalError:
    return JournalError(
        f"copy stream: could not {what} ({type(exc).__name__}: {str(exc)[:200]}); check that "
        "the Redis server runs and is reachable; unacknowledged events stay pending"
    )


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
