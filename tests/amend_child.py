"""A bot process for the amend crash tests: places a resting order (once, by its
idempotency key), then amends its price, dying (SIGKILL) at a named point of the amend
when told (tests/crash_child.py's harness). Prints the replacement as JSON. With
``"atomic": false`` Binance is driven without its order/cancelReplace, as a venue
without one: amend is then a cancel, then a place."""

from __future__ import annotations

import copy
import json
import sys

from crash_child import _arm
from securetrade import Client, LimitOrder, Settings
from securetrade.keys import ApiKey
from securetrade.venues.binance import BINANCE


def main() -> None:
    job = json.load(sys.stdin)
    key = ApiKey("binance", job["key_id"], job["secret"], scopes=("read", "trade", "cancel"))
    venue = copy.copy(BINANCE)
    venue.atomic_replace = job.get("atomic", True)
    client = Client(
        key,
        venue=venue,
        journal=job["journal"],
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        recv_window_ms=300,
        settings=Settings(settle_ms=300, resolve_timeout=15.0),
    )
    resting = client.place_order(LimitOrder(**job["order"]), idempotency_key="resting")
    _arm(client.core, job)  # the crash point is in the amend, not in the first placement
    amended = client.amend(resting.symbol, order_id=resting.order_id, price=job["new_price"])
    client.close()
    print(amended.model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
