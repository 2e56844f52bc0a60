"""A bot process for the crash tests: places one order, or dies (or stops) at a named point.

Reads one JSON object on stdin (server, key, journal, order, idempotency key, crash
point) and prints the placed order as JSON. At the crash point it SIGKILLs itself, so
nothing after it runs: no finally block, no atexit, no flush.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from securetrade import AsyncClient, Client, Settings
from securetrade.core import RedisJournal
from securetrade.keys import ApiKey
from securetrade.models import LimitOrder, MarketOrder


def main() -> None:
    job = json.load(sys.stdin)
    key = ApiKey("binance", job["key_id"], job["secret"], scopes=("read", "trade", "cancel"))
    order_type = LimitOrder if job["order"].get("price") else MarketOrder
    order = order_type(**job["order"])
    journal: Any = job["journal"]
    if job.get("redis"):  # several hosts sharing one journal
        journal = RedisJournal(job["redis"], prefix=job["journal"])
    options: dict[str, Any] = {
        "journal": journal,
        "base_url": job["base_url"],
        "pins": job["pins"],
        "cadata": job["ca"],
        "recv_window_ms": job.get("recv_window_ms", 300),
        "settings": Settings(settle_ms=job.get("settle_ms", 300), resolve_timeout=15.0),
    }
    if job.get("driver") == "async":  # the group-commit path: writes queued, flushed in a thread
        asyncio.run(_async_main(job, key, order, options))
        return
    client = Client(key, **options)
    _arm(client.core, job)
    if job.get("report_recovery"):
        _report(client.recover())
    placed = client.place_order(order, idempotency_key=job["idempotency_key"])
    client.close()
    print(placed.model_dump_json(), flush=True)


async def _async_main(job: dict[str, Any], key: ApiKey, order: Any, options: Any) -> None:
    async with AsyncClient(key, **options) as client:
        _arm(client.core, job)
        if job.get("report_recovery"):
            _report(await client.recover())
        placed = await client.place_order(order, idempotency_key=job["idempotency_key"])
    print(placed.model_dump_json(), flush=True)


def _arm(core: Any, job: dict[str, Any]) -> None:
    """Die (SIGKILL) or stop (SIGSTOP) at the named point of the order path."""
    crash_at, stop_at = job.get("crash_at"), job.get("stop_at")
    if not (crash_at or stop_at):
        return

    def checkpoint(name: str) -> None:
        if name == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if name == stop_at:  # a paused host: alive, silent, until SIGCONT
            print(json.dumps({"stopped_at": name}), flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)

    core.checkpoint = checkpoint


def _report(report: Any) -> None:
    print(
        json.dumps(
            {
                "orphans": [o.client_order_id for o in report.orphans],
                "not_placed": list(report.not_placed),
                "resolved": [o.client_order_id for o in report.resolved],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
