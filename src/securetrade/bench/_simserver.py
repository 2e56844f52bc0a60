"""The simulator's HTTPS server in its own process, so it does not share the client's GIL.

Run as ``python -m securetrade.bench._simserver KEYS [--cpu N] [--stock]``. It prints one
JSON line (base URL, pins, CA, and KEYS HMAC keys with ample balances), then answers
commands on stdin, one per line, each with one JSON line:

``prune``  drop finished orders from the book. The simulator scans every order it ever
           held on each new order, so without this the server slows as a run goes on.
``stats``  the number of ``POST /api/v3/order`` requests answered so far.

Unless ``--stock`` is given, the server's sockets get ``TCP_NODELAY``. The stock handler
writes the response head and body in two sends; with Nagle on, the body waits for the
client's delayed ACK (up to 40 ms on Linux), which swamps every client-side cost.

End of stdin stops the server. Its rate limits are raised out of reach: these rows
measure the clients, and our client's own limiter still runs on every order.
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import sys
from decimal import Decimal

from ..sim import SimLimits, Simulator

__all__ = ["BALANCES", "main"]

BALANCES = {"USDT": Decimal(10) ** 12, "BTC": Decimal(10) ** 6, "ETH": Decimal(10) ** 6}


def _prune(sim: Simulator) -> int:
    market = sim.market
    with market.lock:
        done = [oid for oid, order in market.orders.items() if not order.is_open]
        for oid in done:
            del market.orders[oid]
    return len(done)


def _posted(sim: Simulator) -> int:
    return sim.dialect.stats.by_path.get("POST /api/v3/order", 0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="securetrade.bench._simserver")
    parser.add_argument("keys", type=int)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--stock", action="store_true", help="no TCP_NODELAY, no pruning")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if not args.stock:  # this process serves nothing else
        socketserver.StreamRequestHandler.disable_nagle_algorithm = True
    limits = SimLimits(weight=10**12, orders=10**12)
    with Simulator(limits=limits) as sim:
        server = sim.serve()
        made = [sim.create_key(balances=dict(BALANCES)) for _ in range(args.keys)]
        hello = {
            "base_url": server.base_url,
            "pins": server.pins,
            "ca_pem": server.ca_pem,
            "keys": [[k.key_id, k.secret.expose().decode("ascii")] for k in made],
        }
        print(json.dumps(hello), flush=True)
        for line in sys.stdin:
            command = line.strip()
            reply: dict[str, object]
            if command == "prune":
                pruned = 0 if args.stock else _prune(sim)
                reply = {"pruned": pruned, "posted": _posted(sim)}
            elif command == "stats":
                reply = {"posted": _posted(sim)}
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
