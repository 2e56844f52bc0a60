"""``securetrade demo`` and ``securetrade sim``: the simulator, shown and served."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

__all__ = ["register"]


def _demo(args: argparse.Namespace) -> int:
    if args.part == "copy":
        from ..copy.demo import run_copy_demo

        return run_copy_demo(sys.stdout)
    from ..demo import run_demo

    return run_demo(sys.stdout)


def _sim(args: argparse.Namespace) -> int:
    from ..keys import KeyKind, Scope
    from ..sim import Simulator
    from ..sim.brokers import BrokerSimulator

    sim: Simulator | BrokerSimulator
    if args.venue in ("alpaca", "oanda"):
        if args.key_kind != "hmac":
            print(f"{args.venue} keys are a key id and a secret text: --key-kind hmac")
            return 2
        sim = BrokerSimulator(args.venue)
        key = sim.create_key()
    elif args.venue == "kraken":  # the same simulator serves Kraken's paths (/0/...)
        if args.key_kind != "hmac":
            print("kraken keys are HMAC keys with a base64 secret: --key-kind hmac")
            return 2
        sim = Simulator()
        key = sim.create_key(scopes=(Scope.READ, Scope.TRADE, Scope.CANCEL), venue="kraken")
    else:
        sim = Simulator()
        key = sim.create_key(
            kind=KeyKind(args.key_kind),
            scopes=(Scope.READ, Scope.TRADE, Scope.CANCEL),
        )
    dialect = {
        "alpaca": "Alpaca Trading API v2",
        "oanda": "OANDA v20",
        "kraken": "Kraken spot",
    }.get(args.venue, "Binance spot")
    server = sim.serve(port=args.port)
    with tempfile.NamedTemporaryFile(
        "w", prefix="securetrade-sim-ca-", suffix=".pem", delete=False
    ) as handle:
        handle.write(server.ca_pem)
    secret = key.secret.expose().decode()
    print(f"securetrade simulator ({dialect} dialect) is running")
    print(f"  base URL   {server.base_url}")
    print(f"  CA file    {handle.name}")
    print(f"  pins       {' '.join(server.pins[server.host])}")
    print(f"  key id     {key.key_id}")
    print(f"  key kind   {key.kind.value}")
    print("  secret     (simulator-only, valid for this run)")
    print("\n".join("    " + line for line in secret.splitlines()))
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.close()
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo`` and ``sim``."""
    demo = commands.add_parser("demo", help="show every protective layer against the simulator")
    demo.add_argument(
        "part",
        nargs="?",
        choices=["client", "copy"],
        default="client",
        help="client: one bot's protective layers (default); copy: a fan-out to 100 followers",
    )
    demo.set_defaults(run=_demo)
    sim = commands.add_parser("sim", help="run the exchange simulator over HTTPS on loopback")
    sim.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    sim.add_argument("--key-kind", choices=["hmac", "ed25519"], default="hmac")
    sim.add_argument(
        "--venue",
        choices=["binance", "kraken", "alpaca", "oanda"],
        default="binance",
        help="the dialect whose key is made: binance (default), kraken, alpaca (stocks) or "
        "oanda (forex)",
    )
    sim.set_defaults(run=_sim)
