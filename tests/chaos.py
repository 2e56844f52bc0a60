"""Chaos soak of the idempotent order path (research note, section 5.4), then a cold-start
burst against the venue's rate limits.

Several bot processes place orders through every layer against the simulator over TLS on
loopback. Each key is shared by ``--racers`` processes on one journal (SQLite, or Redis as
hosts would share it), which race on the same intents: one takes an intent over while
another recovers it, stalls, or dies. A share of all requests (reads included) meets a
random fault, some reads are slow (a recovery that reads slowly while a live process takes
over, issue 16's first failure), and each bot is killed with SIGKILL every few seconds, or
kills itself at a random transition of the order (a checkpoint), or is stopped with
SIGSTOP for a while and resumed; each is restarted on its journal, picking up where it was.
When the intents are done, each key is settled once more, and the oracle is asserted over
every intent from the venue's own book: 0 duplicates, 0 lost, every state known.

The cold-start burst (guarantee 6) starts bot processes of 3 threads at once on one key
and one shared limiter (a SQLite file, then a Redis server when ``redis-server`` is
installed), against limits of 1 s windows used to the last unit (no margin, no headroom).
Every start is cold: new TLS connections, the built-in table until the venue's published
limits are read. Half the requests arrive 0.1-0.3 s late, some are lost on the way, and
each bot is killed with SIGKILL every 1-3 s and started again. The referee is the
simulator's own arrival log: no window of it may hold more than the venue's limit.

    python tests/chaos.py --intents 10000                   # the full run (nox -s chaos)
    python tests/chaos.py --intents 10000 --journal redis   # the same, on a Redis journal
    python tests/chaos.py --seconds 120                     # the CI run: 2 minutes of storm
    python tests/chaos.py --mode cold-start                 # only the burst
    python tests/chaos.py --venue oanda --seconds 60        # the storm on a broker

``--venue alpaca|oanda`` runs the order storm against that broker's simulator dialect
(stocks, forex). OANDA cannot prove a create absent that it never saw (no request
deadline, dedupe of pending orders only), so a create lost before the venue, or a bot
killed between its journal commit and its send, stays UNKNOWN: the oracle then requires
that the venue holds no order for each such intent, and counts them apart
(``unknown_unprovable``), while 0 duplicates, 0 lost and 0 untracked hold as everywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

# Run as a script: its helper modules (tests/) and the benchmarks package (the repository
# root: benchmarks._redis starts the Redis server for the cold-start burst) by their names.
sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent))

import contextlib

from oracle import busiest, judge
from securetrade.core import Journal, derive_client_order_id
from securetrade.sim import Fault, SimLimits, Simulator
from securetrade.sim.brokers import BrokerSimulator

POST = {"method": "POST", "path": "/api/v3/order"}
RECV_MS = 250
SETTLE_MS = 800  # must exceed the longest the venue queues an order past its gateway
TIMEOUT = 0.4


# Where each venue's orders are created (OANDA's path holds the account: any POST).
ORDER_POST: dict[str, dict[str, Any]] = {
    "binance": POST,
    "alpaca": {"method": "POST", "path": "/v2/orders"},
    "oanda": {"method": "POST", "path": None},
}
SCOPES = ("read", "trade", "cancel")
ENV = "simulated"


def chaos_faults(venue: str = "binance") -> list[Fault]:
    """Every fault of scenarios 1-6, on orders; reads meet the connection faults too, and
    some are slow (answered just inside the client's timeout)."""
    post = ORDER_POST[venue]
    return [
        Fault("drop_request", **post),
        Fault("drop_response", **post),
        Fault("status", status=503, **post),
        Fault("status_after", status=502, **post),
        Fault("reset", **post),
        Fault("delay", seconds=TIMEOUT + 0.2, **post),
        Fault("rate_limit", seconds=1, **post),
        Fault("drop_request", method="GET"),
        Fault("status", status=500, method="GET"),
        Fault("delay", seconds=TIMEOUT * 0.75, method="GET"),
    ]


# --- the bot (a child process) -----------------------------------------------------------


def intent_order(i: int, venue: str = "binance") -> Any:
    """Intent ``i``'s order: the same parameters after any restart (seeded by ``i``)."""
    from securetrade.models import LimitOrder, MarketOrder

    rng = random.Random(i)
    if venue == "alpaca":  # stocks: fractional market orders, resting limit buys
        if rng.random() < 0.5:
            return MarketOrder(symbol="SPY", side=rng.choice(("BUY", "SELL")), quantity="0.5")
        price = f"{rng.randint(150, 180)}.{rng.randint(0, 99):02d}"
        return LimitOrder(symbol="AAPL", side="BUY", quantity="1", price=price)
    if venue == "oanda":  # forex: signed units, resting limit buys below the market
        if rng.random() < 0.5:
            return MarketOrder(symbol="EUR_USD", side=rng.choice(("BUY", "SELL")), quantity="100")
        price = f"1.0{rng.randint(0, 7000):04d}"
        return LimitOrder(symbol="EUR_USD", side="BUY", quantity="100", price=price)
    if rng.random() < 0.5:
        return MarketOrder(symbol="ETHUSDT", side=rng.choice(("BUY", "SELL")), quantity="0.01")
    price = str(rng.randint(55000, 60000))
    return LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price=price)


def open_journal(job: dict[str, Any]) -> Any:
    """The key's journal: a SQLite file, or a Redis journal (created by the harness)."""
    if job.get("redis"):
        from securetrade.core import RedisJournal

        return RedisJournal(job["redis"], prefix=job["prefix"])
    return Journal(job["journal"])


def hazards(client: Any, job: dict[str, Any]) -> None:
    """At each transition of the order path, this bot may die (SIGKILL itself) or stall
    (sleep past the attempt's deadline, while a racer takes the intent over)."""
    rng = random.Random(f"{job['progress']}:{os.getpid()}")
    kill, stall = job.get("checkpoint_kill", 0.0), job.get("checkpoint_stall", 0.0)
    deadline_s = (RECV_MS + SETTLE_MS) / 1000

    def checkpoint(name: str) -> None:
        if name == "recovery_snapshot":
            # A recovery that reads slowly: its snapshot ages past a deadline while its
            # racers take intents over (issue 16's first failure).
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.5, 2.0) * deadline_s)
            return
        roll = rng.random()
        if roll < kill:
            os.kill(os.getpid(), signal.SIGKILL)
        elif roll < kill + stall:
            time.sleep(rng.uniform(0.2, 2.0) * deadline_s)

    client.core.checkpoint = checkpoint


def key_venue(job: dict[str, Any]) -> str:
    return str(job.get("venue", "binance"))


def bot(job: dict[str, Any]) -> None:
    """Place intents ``first..last`` in order; record progress; never stop on an error."""
    from securetrade import Client, SecureTradeError, Settings
    from securetrade.keys import ApiKey

    key = ApiKey(key_venue(job), job["key_id"], job["secret"], scopes=SCOPES, environment=ENV)
    client = Client(
        key,
        journal=open_journal(job),
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        recv_window_ms=RECV_MS,
        timeout=TIMEOUT,
        settings=Settings(settle_ms=SETTLE_MS, resolve_timeout=20.0, max_rate_wait=5.0),
    )
    hazards(client, job)
    progress = Path(job["progress"])
    start = int(progress.read_text()) if progress.exists() else job["first"]
    for i in range(start, job["last"]):
        key = f"chaos-{i}"
        cid = client.core.venue.client_order_id(client.core.account, key)
        # Rejected, unresolved or not placed: the journal says which; the oracle reads it.
        # A failure before the intent was recorded (a read that failed) is tried again.
        for _ in range(20):
            with contextlib.suppress(SecureTradeError):
                client.place_order(intent_order(i, key_venue(job)), idempotency_key=key)
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

    key = ApiKey(key_venue(job), job["key_id"], job["secret"], scopes=SCOPES, environment=ENV)
    client = Client(
        key,
        journal=open_journal(job),
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        recv_window_ms=RECV_MS,
        # OANDA's unprovable intents stay unknown however long it is asked: ask briefly.
        settings=Settings(
            settle_ms=SETTLE_MS, resolve_timeout=3.0 if key_venue(job) == "oanda" else 30.0
        ),
    )
    client.recover()
    for intent in client.journal.unfinished(client.core.account):
        i = int(intent.idempotency_key.removeprefix("chaos-"))
        with contextlib.suppress(SecureTradeError):
            client.place_order(
                intent_order(i, key_venue(job)), idempotency_key=intent.idempotency_key
            )
    client.close()


# --- the harness ---------------------------------------------------------------------------


def _spawn(mode: str, job: dict[str, Any]) -> subprocess.Popen[bytes]:
    with open(job["log"], "ab") as errors:
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


@dataclass
class Options:
    intents: int
    seconds: float | None
    bots: int  # keys, each with its own journal
    racers: int  # processes per key, racing on the same intents
    fault_rate: float
    seed: int
    journal: str  # "sqlite" or "redis"
    venue: str  # "binance", or a broker: "alpaca", "oanda"
    checkpoint_kill: float  # chance a bot kills itself at a checkpoint
    checkpoint_stall: float  # chance it stalls there past the attempt's deadline
    stall_rate: float  # per second and bot: SIGSTOP for a while, then SIGCONT


def run(options: Options) -> int:
    rng = random.Random(options.seed)
    started = time.monotonic()
    rich = {"USDT": Decimal("1e12"), "BTC": Decimal("1e6"), "ETH": Decimal("1e6")}
    if options.venue == "alpaca":
        rich = {"USD": Decimal("1e12"), "AAPL": Decimal("1e6"), "SPY": Decimal("1e6")}
    elif options.venue == "oanda":
        rich = {"USD": Decimal("1e12"), "EUR": Decimal("1e12"), "JPY": Decimal("1e12")}
    # The storm is about faults, not pacing: limits high enough never to bind.
    limits = SimLimits(weight=10_000_000, orders=1_000_000, orders_seconds=10)
    sim: Any
    if options.venue == "binance":
        sim = Simulator(limits=limits)
    else:
        sim = BrokerSimulator(options.venue)
        if options.venue == "alpaca":
            sim.dialect.requests_per_minute = None  # faults, not pacing
        else:
            sim.dialect.requests_per_second = None
    with (
        sim,
        tempfile.TemporaryDirectory(prefix="securetrade-chaos-") as tmp,
        _redis(options.journal, Path(tmp)) as redis_url,
    ):
        server = sim.serve()
        groups: list[dict[str, Any]] = []
        jobs: list[dict[str, Any]] = []
        per_key = options.intents // options.bots
        for g in range(options.bots):
            key = sim.create_key(balances=rich)
            group = {
                "venue": options.venue,
                "base_url": server.base_url,
                "pins": server.pins,
                "ca": server.ca_pem,
                "key_id": key.key_id,
                "secret": key.secret.expose().decode(),
                "journal": os.path.join(tmp, f"key{g}.sqlite3"),
                "redis": redis_url,
                "prefix": f"chaos:{g}:",
                "log": os.path.join(tmp, f"key{g}.stderr"),
                "progress": os.path.join(tmp, f"key{g}.settled"),
                "first": g * per_key,
                "last": (g + 1) * per_key,
            }
            if redis_url:
                from securetrade.core import RedisJournal

                RedisJournal.create(redis_url, prefix=group["prefix"]).close()
            groups.append(group)
            for r in range(options.racers):
                jobs.append(
                    {
                        **group,
                        "progress": os.path.join(tmp, f"key{g}-racer{r}.progress"),
                        "checkpoint_kill": options.checkpoint_kill,
                        "checkpoint_stall": options.checkpoint_stall,
                    }
                )
        sim.faults.at_random(options.fault_rate, chaos_faults(options.venue), seed=options.seed)
        children = {b: _spawn("bot", job) for b, job in enumerate(jobs)}
        next_kill = {b: time.monotonic() + rng.uniform(2, 8) for b in children}
        stopped: dict[int, float] = {}  # bot -> when to resume it
        kills = self_kills = stalls = 0
        tick = 0.05
        while children:
            time.sleep(tick)
            now = time.monotonic()
            out_of_time = options.seconds is not None and now - started > options.seconds
            for b, child in list(children.items()):
                if b in stopped and (now >= stopped[b] or out_of_time):
                    child.send_signal(signal.SIGCONT)
                    del stopped[b]
                if child.poll() is not None:
                    if child.returncode == -signal.SIGKILL and not out_of_time:
                        self_kills += 1  # died at a checkpoint: restart it
                        children[b] = _spawn("bot", jobs[b])
                        continue
                    if child.returncode not in (0, -signal.SIGKILL):
                        print(Path(jobs[b]["log"]).read_text()[-3000:])
                        raise SystemExit(f"bot {b} failed with exit code {child.returncode}")
                    del children[b]
                    continue
                if out_of_time:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    kills += 1
                    del children[b]
                elif now >= next_kill[b] and b not in stopped:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    kills += 1
                    children[b] = _spawn("bot", jobs[b])
                    next_kill[b] = now + rng.uniform(2, 8)
                elif b not in stopped and rng.random() < options.stall_rate * tick:
                    child.send_signal(signal.SIGSTOP)  # alive and silent, its racer goes on
                    stopped[b] = now + rng.uniform(0.5, 3.0)
                    stalls += 1
        storm = time.monotonic() - started
        faults_fired = len(sim.faults.fired)
        sim.faults.clear()
        for group in groups:  # settle what the storm left, without faults or kills
            _spawn("settle", group).wait()
        total = duplicates = lost = unknown = untracked = orders = unprovable = 0
        for g, group in enumerate(groups):
            done = group["first"]
            for job in jobs[g * options.racers : (g + 1) * options.racers]:
                progress = Path(job["progress"])
                if progress.exists():
                    done = max(done, int(progress.read_text()))
            keys = [f"chaos-{i}" for i in range(group["first"], done)]
            journal = open_journal(group)
            account = group["key_id"]
            verdict = judge(sim, journal, account, keys, venue=options.venue)
            if options.venue == "oanda":  # unknown, and nothing at the venue: unprovable
                absent = [
                    k
                    for k in verdict.unknown
                    if not sim.market.orders_with_client_id(
                        derive_client_order_id("oanda", account, k)
                    )
                ]
                unprovable += len(absent)
                verdict.unknown = [k for k in verdict.unknown if k not in absent]
            for key in verdict.duplicates + verdict.lost + verdict.unknown:
                cid = derive_client_order_id(options.venue, account, key)
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
            "venue": options.venue,
            "journal": options.journal,
            "intents": total,
            "orders_at_venue": orders,
            "keys": options.bots,
            "racers_per_key": options.racers,
            "kill_9": kills,
            "killed_at_checkpoints": self_kills,
            "sigstop_stalls": stalls,
            "faults_fired": faults_fired,
            "fault_rate": options.fault_rate,
            "duplicates": duplicates,
            "lost": lost,
            "unknown_after_settle": unknown,
            "unknown_unprovable": unprovable,
            "untracked_orders": untracked,
            "storm_seconds": round(storm, 1),
            "total_seconds": round(time.monotonic() - started, 1),
            "seed": options.seed,
        }
    print(json.dumps(figures, indent=2))
    ok = duplicates == 0 and lost == 0 and unknown == 0 and untracked == 0 and total > 0
    print("chaos: the oracle holds" if ok else "chaos: THE ORACLE FAILED")
    return 0 if ok else 1


@contextlib.contextmanager
def _redis(kind: str, directory: Path) -> Iterator[str | None]:
    """A real redis-server on a free loopback port when the journal is Redis."""
    if kind != "redis":
        yield None
        return
    from redis_server import start_redis

    process, url = start_redis(directory)
    try:
        yield url
    finally:
        process.kill()
        process.wait()


# --- the cold-start burst (guarantee 6, counted at the venue) ------------------------------

# The venue's limits, in windows of 1 s so that a short run crosses many of them.
BURST_LIMITS = SimLimits(weight=150, weight_seconds=1, orders=10, orders_seconds=1)
# What a bot knows before it reads the published limits: the same budgets over 2 s, which
# no 1 s window of the venue's can exceed (a built-in table must be this conservative).
BUILT_IN = (("REQUEST_WEIGHT", 2.0, 150, "ip"), ("ORDERS", 2.0, 10, "account"))
BURST_FLIGHT = 3.0  # max_flight: longer than any request can take (transport timeout 1 s)


def burst_faults() -> list[Fault]:
    """Late arrivals (a fresh connection, a slow route), and requests lost on the way."""
    return [
        Fault("slow_arrival", seconds=0.1),
        Fault("slow_arrival", seconds=0.2),
        Fault("slow_arrival", seconds=0.3),
        Fault("drop_request"),
        Fault("drop_response", **POST),
        Fault("status", status=503, method="GET"),
    ]


def burster(job: dict[str, Any]) -> None:
    """A cold start: one reader and two order threads, from the first request on."""
    from securetrade import Client, LimitOrder, SecureTradeError, Settings
    from securetrade.keys import ApiKey
    from securetrade.ratelimit import LimitScope, Priority, RateLimit, RateLimiter
    from securetrade.venues.binance import BINANCE

    venue = copy.copy(BINANCE)
    venue.rate_limits = tuple(
        RateLimit(kind, seconds, limit, scope=LimitScope(scope))
        for kind, seconds, limit, scope in job["built_in"]
    )
    exact: dict[str, Any] = {
        "margin": 0.0,
        "shares": dict.fromkeys(Priority, 1.0),
        "max_flight": BURST_FLIGHT,
    }
    if job["backend"] == "sqlite":
        limiter = RateLimiter.sqlite(job["target"], **exact)
    else:
        limiter = RateLimiter.redis(job["target"], namespace=job["namespace"], **exact)
    key = ApiKey("binance", job["key_id"], job["secret"], scopes=("read", "trade", "cancel"))
    client = Client(
        key,
        venue=venue,
        journal=":memory:",
        limiter=limiter,
        base_url=job["base_url"],
        pins=job["pins"],
        cadata=job["ca"],
        timeout=1.0,
        settings=Settings(recover_on_start=False, resolve_timeout=5.0),
    )
    run_id = uuid.uuid4().hex[:8]

    def work(thread: int) -> None:
        n = 0
        while time.time() < job["until"]:
            with contextlib.suppress(SecureTradeError):
                if thread == 0:
                    client.balances()  # weight 20
                else:
                    client.place_order(
                        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="30000"),
                        idempotency_key=f"{run_id}-{thread}-{n}",
                    )
            n += 1

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    limiter.close()


@contextlib.contextmanager
def _limiter_target(backend: str, tmp: str) -> Iterator[str]:
    if backend == "sqlite":
        yield os.path.join(tmp, "limits.sqlite3")
        return
    from redis_server import start_redis

    process, url = start_redis(Path(tmp))
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def cold_start(bots: int, seconds: float, fault_rate: float, seed: int) -> int:
    """Bursts of cold starts on each shared backend; the venue's arrival log is the referee."""
    rng = random.Random(seed)
    rich = {"USDT": Decimal("1e12"), "BTC": Decimal("1e6"), "ETH": Decimal("1e6")}
    from redis_server import redis_binary

    backends = ["sqlite"] + (["redis"] if redis_binary() else [])
    runs = []
    for backend in backends:
        with (
            Simulator(limits=BURST_LIMITS) as sim,
            tempfile.TemporaryDirectory(prefix="securetrade-burst-") as tmp,
            _limiter_target(backend, tmp) as target,
        ):
            server = sim.serve()
            key = sim.create_key(balances=rich)
            started = time.time()
            job = {
                "log": os.path.join(tmp, "burst.stderr"),
                "backend": backend,
                "target": target,
                "namespace": f"burst-{uuid.uuid4().hex[:12]}",
                "built_in": BUILT_IN,
                "base_url": server.base_url,
                "pins": server.pins,
                "ca": server.ca_pem,
                "key_id": key.key_id,
                "secret": key.secret.expose().decode(),  # a throwaway key of this run
                "until": started + seconds,
            }
            sim.faults.at_random(fault_rate, burst_faults(), seed=seed)
            children = {b: _spawn("burst", job) for b in range(bots)}  # all at once: cold
            next_kill = {b: time.monotonic() + rng.uniform(1, 3) for b in children}
            kills = 0
            while time.time() < job["until"]:
                time.sleep(0.05)
                for b, child in children.items():
                    if child.poll() is not None and child.returncode != 0:
                        print(Path(job["log"]).read_text()[-3000:])
                        raise SystemExit(f"burst bot {b} failed with exit code {child.returncode}")
                    if time.monotonic() >= next_kill[b] and time.time() < job["until"] - 1:
                        child.send_signal(signal.SIGKILL)
                        child.wait()
                        kills += 1
                        children[b] = _spawn("burst", job)  # and a cold start again
                        next_kill[b] = time.monotonic() + rng.uniform(1, 3)
            for b, child in children.items():
                if child.wait(timeout=60) != 0:
                    print(Path(job["log"]).read_text()[-3000:])
                    raise SystemExit(f"burst bot {b} failed with exit code {child.returncode}")
            time.sleep(0.5)  # what a killed bot left on its way arrives
            stats = sim.dialect.stats
            orders = [(t, 1) for t, method, path in stats.arrivals if (method, path) == _ORDER]
            runs.append(
                {
                    "backend": backend,
                    "bots": bots,
                    "kill_9": kills,
                    "requests": stats.requests,
                    "faults_fired": len(sim.faults.fired),
                    "weight": sum(w for _, w in stats.arrival_weights),
                    "busiest_weight": busiest(stats.arrival_weights, BURST_LIMITS.weight_seconds),
                    "weight_limit": BURST_LIMITS.weight,
                    "orders": len(orders),
                    "busiest_orders": busiest(orders, BURST_LIMITS.orders_seconds),
                    "orders_limit": BURST_LIMITS.orders,
                    "status_429": stats.status_429,
                    "status_418": stats.status_418,
                    "seconds": round(time.time() - started, 1),
                }
            )
    print(json.dumps({"cold_start": runs}, indent=2))
    ok = all(
        r["busiest_weight"] <= r["weight_limit"]
        and r["busiest_orders"] <= r["orders_limit"]
        and r["status_429"] == r["status_418"] == 0
        # pressed on both limits for several windows, or the run could not have failed
        and r["weight"] > 3 * r["weight_limit"]
        and r["orders"] > 3 * r["orders_limit"]
        for r in runs
    )
    print("chaos: the venue never counted more than its limits" if ok else "chaos: LIMIT EXCEEDED")
    return 0 if ok else 1


_ORDER = ("POST", "/api/v3/order")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop issuing after this")
    parser.add_argument("--bots", type=int, default=4, help="keys, each with its journal")
    parser.add_argument("--racers", type=int, default=2, help="processes racing on each key")
    parser.add_argument("--journal", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument(
        "--venue",
        choices=("binance", "alpaca", "oanda"),
        default="binance",
        help="the dialect the order storm runs against (the cold-start burst is Binance's)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--checkpoint-kill", type=float, default=0.01)
    parser.add_argument("--checkpoint-stall", type=float, default=0.005)
    parser.add_argument("--stall-rate", type=float, default=0.05, help="SIGSTOPs per bot-second")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--mode",
        choices=("all", "orders", "cold-start"),
        default="all",
        help="the order soak, the cold-start burst against the rate limits, or both",
    )
    parser.add_argument(
        "--burst-seconds", type=float, default=15.0, help="length of each cold-start burst"
    )
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settle", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--burst", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bot or args.settle or args.burst:
        job = json.load(sys.stdin)
        (bot if args.bot else settle if args.settle else burster)(job)
        return 0
    status = 0
    if args.mode in ("all", "orders"):
        status = run(
            Options(
                intents=args.intents,
                seconds=args.seconds,
                bots=args.bots,
                racers=args.racers,
                fault_rate=args.fault_rate,
                seed=args.seed,
                journal=args.journal,
                venue=args.venue,
                checkpoint_kill=args.checkpoint_kill,
                checkpoint_stall=args.checkpoint_stall,
                stall_rate=args.stall_rate,
            )
        )
    if args.mode in ("all", "cold-start"):
        status = cold_start(args.bots, args.burst_seconds, 0.5, args.seed) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
