"""The simulator's HTTPS server in its own process, so it does not share the client's GIL.

Run as ``python -m benchmarks._simserver KEYS [--cpu N]``. It prints one JSON line
(base URL, pins, CA, and KEYS HMAC keys with ample balances), then answers ``stats`` on
stdin with one JSON line: the number of ``POST /api/v3/order`` requests answered so far.
With ``--kraken N`` it also makes N Kraken keys on the same server (``kraken_keys``), and
``storm`` makes every Kraken AddOrder from then on answer 429 with Retry-After 1 s: one
follower's venue throttling it, while the Binance followers on the same server are not.

End of stdin stops the server. Its rate limits are raised out of reach: these rows
measure the clients, and our client's own limiter still runs on every order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal

from securetrade.sim import SimLimits, Simulator

__all__ = ["BALANCES", "main"]

BALANCES = {"USDT": Decimal(10) ** 12, "BTC": Decimal(10) ** 6, "ETH": Decimal(10) ** 6}


def _posted(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks._simserver")
    parser.add_argument("keys", type=int)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--fast", action="store_true", help="serve on one asyncio loop")
    parser.add_argument("--kraken", type=int, default=0, help="Kraken keys to make too")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    limits = SimLimits(weight=10**12, orders=10**12)
    with Simulator(limits=limits) as sim:
        server = sim.serve_fast() if args.fast else sim.serve()
        made = [sim.create_key(balances=dict(BALANCES)) for _ in range(args.keys)]
        krakens = [
            sim.create_key(venue="kraken", balances=dict(BALANCES)) for _ in range(args.kraken)
        ]
        hello = {
            "base_url": server.base_url,
            "pins": server.pins,
            "ca_pem": server.ca_pem,
            "keys": [[k.key_id, k.secret.expose().decode("ascii")] for k in made],
            "kraken_keys": [[k.key_id, k.secret.expose().decode("ascii")] for k in krakens],
        }
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            command = line.strip()
            reply: dict[str, object]
            if command == "stats":
                reply = {"posted": _posted(sim)}
            elif command == "storm":
                sim.faults.inject("rate_limit", method="POST", path="/0/private/AddOrder",
                                  times=10**9, seconds=1.0)  # fmt: skip
                reply = {"storm": True}
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
