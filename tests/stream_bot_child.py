"""A bot in another process sharing a kill switch file: told 'go', it places one order.

Reads one JSON line (venue address, pins, key, kill switch path), prints ``ready``, waits
for ``go``, then prints ``placed`` or the error's class and rule.
"""

from __future__ import annotations

import json
import sys

from securetrade import Client
from securetrade.errors import SecureTradeError
from securetrade.keys import ApiKey, Environment
from securetrade.models import LimitOrder
from securetrade.policy import KillSwitch, Policy


def main() -> None:
    job = json.loads(sys.stdin.readline())
    key = ApiKey(
        "binance",
        job["key_id"],
        job["secret"].encode(),
        scopes=("read", "trade", "cancel"),
        environment=Environment.SIMULATED,
    )
    policy = Policy(kill_switch=KillSwitch.from_url(job["switch"]))
    with Client(
        key,
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        journal=job["journal"],
        policy=policy,
    ) as client:
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000")
            )
            print("placed", flush=True)
        except SecureTradeError as exc:
            print(type(exc).__name__, getattr(exc, "rule", ""), flush=True)


if __name__ == "__main__":
    main()
