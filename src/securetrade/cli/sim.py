"""``securetrade demo`` and ``securetrade sim``: the simulator, shown and served."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["register"]

_DIALECTS = {
    "binance": "Binance spot",
    "kraken": "Kraken spot",
    "alpaca": "Alpaca Trading API v2",
    "oanda": "OANDA v20",
}


def _demo(args: argparse.Namespace) -> int:
    if args.part == "copy":
        from ..copy.demo import run_copy_demo

        return run_copy_demo(sys.stdout)
    from ..demo import run_demo

    return run_demo(sys.stdout)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM and SIGHUP end the command as Ctrl-C does, so every ``finally`` runs."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _ca_file(pem: str) -> Iterator[str]:
    """The simulator's CA certificate in a temporary file, removed however the command ends."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept past this block, then removed
        "w", prefix="securetrade-sim-ca-", suffix=".pem", delete=False
    )
    try:
        with handle:
            handle.write(pem)
        yield handle.name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)


def _sim(args: argparse.Namespace) -> int:
    from ..keys import KeyKind, Scope
    from ..sim import BROKER_VENUES, SIMULATED_VENUES, Simulator
    from ..sim.brokers import BrokerSimulator
    from ._guard import fail

    kind = KeyKind(args.key_kind)
    if kind not in SIMULATED_VENUES[args.venue]:
        kinds = ", ".join(k.value for k in SIMULATED_VENUES[args.venue])
        fail(f"the {args.venue} simulator takes --key-kind {kinds}, not {kind.value}")
    # SIGINT too: a process started with SIGINT ignored (by a supervisor, a test runner's
    # worker) inherits that, and Python then installs no Ctrl-C handler of its own.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # SIGHUP does not exist on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_sigterm)
    broker = args.venue in BROKER_VENUES
    with BrokerSimulator(args.venue) if broker else Simulator() as sim:
        scopes = (Scope.READ, Scope.TRADE, Scope.CANCEL)
        key = (
            sim.create_key(scopes=scopes)
            if isinstance(sim, BrokerSimulator)
            else sim.create_key(kind=kind, scopes=scopes, venue=args.venue)
        )
        server = sim.serve(port=args.port)
        with _ca_file(server.ca_pem) as ca_path:
            dialect = _DIALECTS.get(args.venue, args.venue)
            print(f"securetrade simulator ({dialect} dialect) is running")
            print(f"  venue      {args.venue}")
            print(f"  base URL   {server.base_url}")
            print(f"  CA file    {ca_path}")
            print(f"  pins       {' '.join(server.pins[server.host])}")
            print(f"  key id     {key.key_id}")
            print(f"  key kind   {key.kind.value}")
            print("  secret     (simulator-only, valid for this run)")
            secret = key.secret.expose().decode()
            print("\n".join("    " + line for line in secret.splitlines()))
            del secret
            # The line a supervisor waits for is printed inside the ``try``: a Ctrl-C that
            # lands between its flush and the loop still ends the command cleanly (exit 0).
            try:
                print("Press Ctrl-C to stop.", flush=True)
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("simulator stopped", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo`` and ``sim``."""
    from ..sim import SIMULATED_VENUES

    demo = commands.add_parser(
        "demo",
        help="show every protective layer against the simulator",
        description=(
            "Start the exchange simulator over HTTPS on 127.0.0.1 and show each protective "
            "layer at work, with the evidence the exchange saw. Needs no account or network."
        ),
    )
    demo.add_argument(
        "part",
        nargs="?",
        choices=["client", "copy"],
        default="client",
        help="client: one bot's protective layers (default); copy: a fan-out to 100 followers",
    )
    demo.set_defaults(run=_demo)
    sim = commands.add_parser(
        "sim",
        help="run the exchange simulator over HTTPS on loopback",
        description=(
            "Serve the exchange simulator over HTTPS on 127.0.0.1 with a fresh certificate "
            "and a fresh key, and print what a client needs (URL, CA file, pins, key) until "
            "Ctrl-C. The temporary CA file is removed on any exit."
        ),
    )
    sim.add_argument(
        "--venue",
        choices=sorted(SIMULATED_VENUES),
        default="binance",
        help="which venue's API to speak (default: binance)",
    )
    sim.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    sim.add_argument(
        "--key-kind",
        choices=sorted({k.value for kinds in SIMULATED_VENUES.values() for k in kinds}),
        default="hmac",
        help="the kind of key to make (hmac everywhere; ed25519 on binance)",
    )
    sim.set_defaults(run=_sim)
