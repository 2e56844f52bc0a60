"""Chaos soak of the idempotent order path (research note, section 5.4).

Several bot processes place orders through every layer against the simulator over TLS on
loopback. A share of all requests (reads included) meets a random fault, and each bot is
killed with SIGKILL every few seconds and restarted on its journal, picking up where it
was. When the intents are done, each bot is restarted once more to settle what is left,
and the oracle is asserted over every intent: 0 duplicates, 0 lost, every state known.

    python tests/chaos.py --intents 10000           # the full run (nox -s chaos)
    python tests/chaos.py --seconds 120             # the CI run: stops issuing after 2 min
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import contextlib

from oracle import judge
from securetrade.core import Journal, derive_client_order_id
from securetrade.sim import Fault, SimLimits, Simulator

POST = {"method": "POST", "path": "/api/v3/order"}
RECV_MS = 250
SETTLE_MS = 800  # must exceed the longest the venue queues an order past its gateway
TIMEOUT = 0.4


def chaos_faults() -> list[Fault]:
    """Every fault of scenarios 1-6, on orders; reads meet the connection faults too."""
    return [
        Fault("drop_request", **POST),
        Fault("drop_response", **POST),
        Fault("status", status=503, **POST),
        Fault("status_after", status=502, **POST),
        Fault("reset", **POST),
        Fault("delay", seconds=TIMEOUT + 0.2, **POST),
        Fault("rate_limit", seconds=1, **POST),
        Fault("drop_request", method="GET"),
        Fault("status", status=500, method="GET"),
    ]


# --- the bot (a child process) -----------------------------------------------------------


def intent_order(i: int) -> Any:
    """Intent ``i``'s order: the same parameters after any restart (seeded by ``i``)."""
    from securetrade.models import LimitOrder, MarketOrder

    rng = random.Random(i)
    if rng.random() < 0.5:
        return MarketOrder(symbol="ETHUSDT", side=rng.choice(("BUY", "SELL")), quantity="0.01")
    price = str(rng.randint(55000, 60000))
    return LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price=price)


def bot(job: dict[str, Any]) -> None:
    """Place intents ``first..last`` in order; record progress; never stop on an error."""
    from securetrade import Client, SecureTradeError, Settings
    from securetrade.keys import ApiKey

    key = ApiKey("binance", job["key_id"], job["secret"], scopes=("read", "trade", "cancel"))
    client = Client(
        key,
        journal=job["journal"],
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        recv_window_ms=RECV_MS,
        timeout=TIMEOUT,
        settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=20.0, max_rate_wait=5.0),
    )
    progress = Path(job["progress"])
    start = int(progress.read_text()) if progress.exists() else job["first"]
    for i in range(start, job["last"]):
        key = f"chaos-{i}"
        cid = client.core.venue.client_order_id(client.core.account, key)
        # Rejected, unresolved or not placed: the journal says which; the oracle reads it.
        # A failure before the intent was recorded (a read that failed) is tried again.
        for _ in range(20):
            with contextlib.suppress(SecureTradeError):
                client.place_order(intent_order(i), idempotency_key=key)
            if client.journal.get(cid) is not None:
                break
        partial = progress.with_suffix(".partial")  # a kill mid-write must not lose it
        partial.write_text(str(i + 1))
        os.replace(partial, progress)
    client.close()


def settle(job: dict[str, Any]) -> None:
    """After the storm: resubmit every intent the journal does not hold as final."""
    from securetrade import Client, SecureTradeError, Settings
    from securetrade.keys import ApiKey

    key = ApiKey("binance", job["key_id"], job["secret"], scopes=("read", "trade", "cancel"))
    client = Client(
        key,
        journal=job["journal"],
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        recv_window_ms=RECV_MS,
        settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=30.0),
    )
    client.recover()
    for intent in client.journal.unfinished(client.core.account):
        i = int(intent.idempotency_key.removeprefix("chaos-"))
        with contextlib.suppress(SecureTradeError):
            client.place_order(intent_order(i), idempotency_key=intent.idempotency_key)
    client.close()


# --- the harness ---------------------------------------------------------------------------


def _spawn(mode: str, job: dict[str, Any]) -> subprocess.Popen[bytes]:
    with open(job["journal"] + ".stderr", "ab") as errors:
        child = subprocess.Popen(
            [sys.executable, __file__, f"--{mode}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    assert child.stdin is not None
    with child.stdin:
        child.stdin.write(json.dumps(job).encode())
    return child


def run(intents: int, seconds: float | None, bots: int, fault_rate: float, seed: int) -> int:
    rng = random.Random(seed)
    started = time.monotonic()
    rich = {"USDT": Decimal("1e12"), "BTC": Decimal("1e6"), "ETH": Decimal("1e6")}
    # The storm is about faults, not pacing: limits high enough never to bind.
    limits = SimLimits(weight=10_000_000, orders=1_000_000, orders_seconds=10)
    with (
        Simulator(limits=limits) as sim,
        tempfile.TemporaryDirectory(prefix="securetrade-chaos-") as tmp,
    ):
        server = sim.serve()
        jobs = []
        per_bot = intents // bots
        for b in range(bots):
            key = sim.create_key(balances=rich)
            jobs.append(
                {
                    "base_url": server.base_url,
                    "pins": server.pins,
                    "ca": server.ca_pem,
                    "key_id": key.key_id,
                    "secret": key.secret.expose().decode(),
                    "journal": os.path.join(tmp, f"bot{b}.sqlite3"),
                    "progress": os.path.join(tmp, f"bot{b}.progress"),
                    "first": b * per_bot,
                    "last": (b + 1) * per_bot,
                }
            )
        sim.faults.at_random(fault_rate, chaos_faults(), seed=seed)
        children = {b: _spawn("bot", job) for b, job in enumerate(jobs)}
        next_kill = {b: time.monotonic() + rng.uniform(2, 8) for b in children}
        kills = restarts = 0
        while children:
            time.sleep(0.05)
            now = time.monotonic()
            out_of_time = seconds is not None and now - started > seconds
            for b, child in list(children.items()):
                if child.poll() is not None:
                    if child.returncode != 0:
                        print(Path(jobs[b]["journal"] + ".stderr").read_text()[-3000:])
                        raise SystemExit(f"bot {b} failed with exit code {child.returncode}")
                    del children[b]
                    continue
                if out_of_time:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    kills += 1
                    del children[b]
                elif now >= next_kill[b]:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    kills += 1
                    restarts += 1
                    children[b] = _spawn("bot", jobs[b])
                    next_kill[b] = now + rng.uniform(2, 8)
        storm = time.monotonic() - started
        faults_fired = len(sim.faults.fired)
        sim.faults.clear()
        for job in jobs:  # settle what the storm left, without faults or kills
            _spawn("settle", job).wait()
        total = duplicates = lost = unknown = untracked = orders = 0
        for job in jobs:
            progress = Path(job["progress"])
            done = int(progress.read_text()) if progress.exists() else job["first"]
            keys = [f"chaos-{i}" for i in range(job["first"], done)]
            journal = Journal(job["journal"])
            account = job["key_id"]
            verdict = judge(sim, journal, account, keys)
            for key in verdict.duplicates + verdict.lost + verdict.unknown:
                cid = derive_client_order_id("binance", account, key)
                held = [
                    (o.order_id, o.status, o.created_ms)
                    for o in sim.market.orders_with_client_id(cid)
                ]
                print(f"oracle: {key} {cid} journal={journal.get(cid)} venue={held}")
            journal.close()
            total += verdict.intents
            duplicates += len(verdict.duplicates)
            lost += len(verdict.lost)
            unknown += len(verdict.unknown)
            untracked += len(verdict.untracked)
            orders += verdict.orders
        figures = {
            "intents": total,
            "orders_at_venue": orders,
            "bots": bots,
            "kill_9": kills,
            "faults_fired": faults_fired,
            "fault_rate": fault_rate,
            "duplicates": duplicates,
            "lost": lost,
            "unknown_after_settle": unknown,
            "untracked_orders": untracked,
            "storm_seconds": round(storm, 1),
            "total_seconds": round(time.monotonic() - started, 1),
            "seed": seed,
        }
    print(json.dumps(figures, indent=2))
    ok = duplicates == 0 and lost == 0 and unknown == 0 and untracked == 0 and total > 0
    print("chaos: the oracle holds" if ok else "chaos: THE ORACLE FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop issuing after this")
    parser.add_argument("--bots", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot or args.settle:
        (bot if args.bot else settle)(json.load(sys.stdin))
        return 0
    return run(args.intents, args.seconds, args.bots, args.fault_rate, args.seed)


if __name__ == "__main__":
    sys.exit(main())
