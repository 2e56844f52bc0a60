"""A copy worker process for the Redis Streams tests: it dies, or freezes, at a named point.

Reads one JSON object on stdin (Redis URL, journal prefix, stream, worker name, venue
connect options, followers, and ``at``: where to stop) and prints ``ready``, then
``copy <event id>`` each time its engine starts copying an event, and ``dying <epoch
seconds>`` just before it kills or stops itself. The points:

- ``lease``: SIGKILL as soon as it holds a follower account's recovery lease;
- ``claimed``: SIGKILL when its first event is handed to the engine, before any order;
- ``placed:N``: SIGKILL after its Nth order;
- ``before_ack``: SIGKILL once an event is complete, before its XACK;
- ``stop:N``: SIGSTOP itself after its Nth order (the test sends SIGCONT later);
- ``slow``: each order takes 0.5 s more (a live worker slower than the claim idle time).

Killed here, nothing after the point runs: no finally block, no XACK, no lease release.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from decimal import Decimal
from typing import Any

from securetrade.copy import CopyEngine, EventStream, Follower, Sizing
from securetrade.core import RedisJournal
from securetrade.keys import ApiKey


def _slowed(client: Any, delay: float) -> None:
    """``client``'s orders sent ``delay`` seconds late (after the engine planned them)."""
    sending = client.place_order

    async def place_order(order: Any, **options: Any) -> Any:
        await asyncio.sleep(delay)
        return await sending(order, **options)

    client.place_order = place_order


def _die(how: signal.Signals = signal.SIGKILL) -> None:
    print("dying", time.time(), flush=True)  # when, for the test's takeover clock
    os.kill(os.getpid(), how)


async def main() -> None:
    job = json.load(sys.stdin)
    at: str = job.get("at", "")
    kind, _, number = at.partition(":")
    followers = [
        Follower(
            f["id"],
            ApiKey("binance", f["key_id"], f["secret"], scopes=["read", "trade"]),
            Sizing("fixed_notional", "100"),
            slippage_bps=Decimal(300),
            ttl_ms=600_000,
        )
        for f in job["followers"]
    ]
    journal = RedisJournal(job["redis"], prefix=job["prefix"])
    if kind == "lease":
        taking = journal.lease

        def lease(account: str, seconds: float) -> bool:
            held = taking(account, seconds)
            if held:
                _die()
            return held

        journal.lease = lease  # type: ignore[method-assign]
    engine = CopyEngine(secret=job["secret"], connect={"binance": job["connect"]}, journal=journal)
    copying = engine.copy

    async def copy(event: Any) -> Any:
        print("copy", event.id, flush=True)
        if kind == "claimed":
            _die()
        return await copying(event)

    engine.copy = copy  # type: ignore[method-assign]
    answered = engine._placed  # each order the venue took, once its answer is in
    placed = 0

    def place(*args: Any) -> Any:
        nonlocal placed
        outcome = answered(*args)
        placed += 1
        if kind == "placed" and placed == int(number):
            _die()
        if kind == "stop" and placed == int(number):
            _die(signal.SIGSTOP)  # frozen here until the test sends SIGCONT
        return outcome

    engine._placed = place  # type: ignore[method-assign]
    for follower in followers:
        engine.add(follower)
    if kind == "slow":  # each order sent half a second late
        for seat in engine._seats.values():
            _slowed(seat.client, 0.5)
    stream = EventStream(job["redis"], stream=job["stream"], consumer=job["name"])
    if kind == "before_ack":
        acking = stream._ack

        async def ack(entry_id: str) -> None:
            _die()
            await acking(entry_id)

        stream._ack = ack  # type: ignore[method-assign]
    print("ready", flush=True)
    await stream.work(engine, count=int(job.get("count", 10)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main())
