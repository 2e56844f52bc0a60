"""Copy trading: the pure plan, and the embedded engine against the simulator over TLS.

Every verdict about orders is read from the venue (the simulator's own book): per follower,
at most one order per (event, leg), whatever is redelivered, resumed or raced.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from securetrade import ApiKey, InvalidRequest
from securetrade.copy import (
    CopyEngine,
    CopyKeys,
    Follower,
    FollowerState,
    LeaderEvent,
    Sizing,
    Skip,
    SkipReason,
    copy_key,
    plan,
)
from securetrade.errors import RetryableError
from securetrade.keys import Secret
from securetrade.models import Instrument
from securetrade.sim import HttpsServer, SimLimits, Simulator

SECRET = Secret(b"copy-engine-test-secret-0000")
RULES = Instrument(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size="0.01",
    step_size="0.00001",
    min_quantity="0.00001",
    min_notional="5",
)
RICH = {"USDT": Decimal(1_000_000), "BTC": Decimal(10)}


def _event(**over: Any) -> LeaderEvent:
    base: dict[str, Any] = {
        "id": "leader-fill-1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.5",
        "price": "60000",
        "at_ms": 1_000_000,
        "leader_equity": "100000",
    }
    return LeaderEvent(**{**base, **over})


def _follower(key: Any = None, **over: Any) -> Follower:
    key = key or ApiKey("binance", "k-follower-0001", "not-a-real-secret", scopes=["read", "trade"])
    base: dict[str, Any] = {"id": "f1", "key": key, "sizing": Sizing("multiplier", "0.1")}
    return Follower(**{**base, **over})


def _state(**over: Any) -> FollowerState:
    base: dict[str, Any] = {
        "instrument": RULES,
        "now_ms": 1_000_100,
        "position": Decimal(0),
        "equity": Decimal(50_000),
        "quote_free": Decimal(50_000),
        "base_free": Decimal(0),
    }
    return FollowerState(**{**base, **over})


# --- the plan ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizing", "quantity"),
    [
        (Sizing("fixed_quantity", "0.02"), "0.02"),
        (Sizing("fixed_notional", "600"), "0.01"),
        (Sizing("multiplier", "0.1"), "0.05"),
        (Sizing("proportional", "1"), "0.25"),  # equity 50,000 of the leader's 100,000
        (Sizing("risk_percent", "3"), "0.025"),  # 3 % of 50,000 at 60,000
        (Sizing("fixed_notional", "100"), "0.00166"),  # rounded down to the step
    ],
)
def test_each_sizing_mode_gives_its_quantity_rounded_to_the_step(
    sizing: Sizing, quantity: str
) -> None:
    [intent] = plan(_event(), _follower(sizing=sizing), _state(), secret=SECRET)
    assert not isinstance(intent, Skip)
    assert intent.order.quantity == Decimal(quantity)
    assert intent.order.price == Decimal("60300.00")  # the 50 bps cap, on the tick
    assert intent.order.time_in_force.value == "IOC"


def test_a_sell_opens_at_the_cap_below_rounded_up_to_the_tick() -> None:
    event = _event(side="SELL", price="60000.07")
    [intent] = plan(event, _follower(), _state(base_free=Decimal(1)), secret=SECRET)
    assert not isinstance(intent, Skip)
    assert intent.order.price == Decimal("59700.07")  # 59700.06965 up: never below the cap


@pytest.mark.parametrize(
    ("event", "follower", "state", "reason"),
    [
        ({}, {}, {"quarantined": True}, SkipReason.QUARANTINED),
        ({"symbol": "ETHBTC"}, {}, {"instrument": None}, SkipReason.UNMAPPED_SYMBOL),
        ({}, {"ttl_ms": 50}, {}, SkipReason.TTL),
        ({"quantity": "0.0001"}, {}, {}, SkipReason.BELOW_MINIMUM),
        ({}, {"max_notional": "1000"}, {}, SkipReason.RISK_LIMIT),
        ({}, {"max_position": "0.01"}, {}, SkipReason.RISK_LIMIT),
        ({}, {"equity_floor": "60000"}, {}, SkipReason.RISK_LIMIT),
        ({}, {}, {"quote_free": Decimal(100)}, SkipReason.BALANCE),
        ({}, {}, {"last_price": Decimal("61000")}, SkipReason.SLIPPAGE),
        ({"movement": "close", "side": "SELL"}, {}, {}, SkipReason.NO_POSITION),
    ],
)
def test_every_skip_has_its_reason(
    event: dict[str, Any], follower: dict[str, Any], state: dict[str, Any], reason: SkipReason
) -> None:
    [item] = plan(_event(**event), _follower(**follower), _state(**state), secret=SECRET)
    assert isinstance(item, Skip)
    assert item.reason is reason


def test_a_close_mirrors_the_fraction_at_market_however_old_or_far() -> None:
    event = _event(movement="close", side="SELL", close_fraction="0.5", at_ms=0)
    state = _state(position=Decimal("0.30001"), base_free=Decimal("0.30001"))
    [intent] = plan(event, _follower(ttl_ms=1), state, secret=SECRET)
    assert not isinstance(intent, Skip)
    assert (intent.order.type.value, intent.order.quantity) == ("MARKET", Decimal("0.15"))


def test_one_events_shared_terms_decide_as_plan_does_for_every_follower() -> None:
    """The engine decides through :func:`decide` with the event's ``terms`` shared by its
    followers (the open's quantity, bound and order worked out once per sizing and cap).
    Whatever order followers come in, each gets what :func:`plan` gives it on its own:
    the limits, balances and equity that differ between followers are checked each time,
    and a follower with another cap, sizing or rules gets its own terms."""
    from securetrade.copy.plan import Terms, decide

    wider = RULES.model_copy(update={"min_notional": Decimal(500)})
    cases: list[tuple[Follower, FollowerState]] = [
        (_follower(sizing=Sizing("fixed_quantity", "0.01")), _state()),
        (_follower(sizing=Sizing("fixed_quantity", "0.01"), max_notional=Decimal(100)), _state()),
        (_follower(sizing=Sizing("fixed_quantity", "0.01")), _state(quote_free=Decimal(10))),
        (_follower(sizing=Sizing("fixed_quantity", "0.01"), slippage_bps=Decimal(0)), _state()),
        (_follower(sizing=Sizing("fixed_quantity", "0.02")), _state()),
        (_follower(sizing=Sizing("fixed_quantity", "0.01")), _state(instrument=wider)),
        (_follower(sizing=Sizing("fixed_notional", "100")), _state()),
        (_follower(sizing=Sizing("multiplier", "0.1"), max_position=Decimal("0.01")), _state()),
        (_follower(sizing=Sizing("proportional", "1")), _state(equity=Decimal(10_000))),
        (_follower(sizing=Sizing("proportional", "1")), _state()),
        (_follower(sizing=Sizing("risk_percent", "3")), _state(equity=Decimal(1_000))),
        (
            _follower(sizing=Sizing("fixed_quantity", "0.01"), equity_floor=Decimal(60_000)),
            _state(),
        ),
        (_follower(sizing=Sizing("fixed_quantity", "0.01")), _state(last_price=Decimal(61_000))),
    ]
    event = _event()

    def alone(follower: Follower, state: FollowerState) -> Any:
        [item] = plan(event, follower, state, secret=SECRET)
        return item if isinstance(item, Skip) else item.order

    expected = [alone(f, s) for f, s in cases]
    assert len({id(e) for e in expected if not isinstance(e, Skip)}) > 3  # distinct terms
    for order in (cases, cases[::-1], cases + cases):
        terms: Terms = {}
        for follower, state in order:
            got = decide(
                event,
                follower,
                "BTCUSDT",
                state.instrument,
                state.now_ms,
                state.position,
                state.equity,
                state.quote_free,
                state.base_free,
                state.last_price,
                state.quarantined,
                state.closed_at_ms,
                terms,
            )
            assert got == expected[cases.index((follower, state))], (follower, state)
        assert terms  # the shared terms were used


def test_shared_terms_keep_each_followers_own_text_where_nothing_rounds_them() -> None:
    """With no step or tick to round to, sizings of 1 and 1.0 are equal but are sent as
    written: the second follower must not get the first one's text from the shared terms."""
    from securetrade.copy.plan import Terms, decide

    bare = RULES.model_copy(update={"step_size": Decimal(0), "tick_size": Decimal(0)})
    event = _event()
    terms: Terms = {}
    for value in ("1", "1.0"):
        follower = _follower(sizing=Sizing("fixed_quantity", value))
        state = _state(instrument=bare, quote_free=Decimal(10**9))
        [alone] = plan(event, follower, state, secret=SECRET)
        assert not isinstance(alone, Skip)
        got = decide(event, follower, "BTCUSDT", bare, state.now_ms, state.position,
                     state.equity, state.quote_free, state.base_free, state.last_price,
                     state.quarantined, state.closed_at_ms, terms)  # fmt: skip
        assert not isinstance(got, Skip)
        assert str(got.quantity) == str(alone.order.quantity) == value


def test_a_symbol_map_carries_the_event_to_another_venue() -> None:
    kraken = ApiKey("kraken", "k-kraken-0001", "bm90LWEtcmVhbC1zZWNyZXQ=", scopes=["trade"])
    rules = RULES.model_copy(update={"symbol": "XBTUSDT"})
    mapped = _follower(kraken, symbols={"BTCUSDT": "XBTUSDT"})
    [intent] = plan(_event(), mapped, _state(instrument=rules), secret=SECRET)
    assert not isinstance(intent, Skip)
    assert intent.order.symbol == "XBTUSDT"
    [item] = plan(_event(), _follower(kraken), _state(instrument=rules), secret=SECRET)
    assert isinstance(item, Skip)
    assert item.reason is SkipReason.UNMAPPED_SYMBOL


def test_the_idempotency_key_is_a_keyed_hash_of_event_follower_and_leg() -> None:
    key = copy_key(SECRET, "e1", "f1", 0)
    assert key == copy_key(SECRET, "e1", "f1", 0)  # the same on any host, at any time
    others = {
        copy_key(SECRET, "e2", "f1", 0),
        copy_key(SECRET, "e1", "f2", 0),
        copy_key(SECRET, "e1", "f1", 1),
        copy_key(Secret(b"another-platform-secret-00"), "e1", "f1", 0),
    }
    assert key not in others
    assert len(others) == 4
    [intent] = plan(_event(id="e1"), _follower(id="f1"), _state(), secret=SECRET)
    assert not isinstance(intent, Skip)
    assert intent.idempotency_key == key


@pytest.mark.parametrize(
    ("event_id", "follower_id", "leg"), [("e1", "f1", 0), ("ë-7", "f\u00e9", 3)]
)
def test_event_keys_are_the_keys_journals_already_hold(
    event_id: str, follower_id: str, leg: int
) -> None:
    """The engine keys the secret once and each event once; its keys must be the very ones
    copy_key always made (HMAC-SHA256 of event, NUL, follower, NUL, leg), or a fan-out
    resumed across an upgrade would place its followers' orders a second time."""
    message = f"{event_id}\x00{follower_id}\x00{leg}".encode()
    expected = "copy-" + hmac.new(SECRET.expose(), message, hashlib.sha256).hexdigest()[:40]
    keys = CopyKeys(SECRET).event(event_id)
    assert keys.key(follower_id, leg) == expected
    assert keys.key(follower_id, leg) == expected  # the event's state is copied, not consumed
    assert copy_key(SECRET, event_id, follower_id, leg) == expected
    event = _event(id=event_id)
    [intent] = plan(event, _follower(id=follower_id), _state(), secret=keys)
    assert not isinstance(intent, Skip)
    assert intent.idempotency_key == keys.key(follower_id, 0)
    assert intent.idempotency_key == copy_key(SECRET, event_id, follower_id, 0)


def test_plan_refuses_another_events_keys_and_the_keys_keep_the_secret() -> None:
    keys = CopyKeys(SECRET).event("e1")
    with pytest.raises(InvalidRequest, match="keys of event 'e1' for event 'e2'"):
        plan(_event(id="e2"), _follower(), _state(), secret=keys)
    secret_hex = SECRET.expose().hex()
    for holder in (keys, CopyKeys(SECRET)):
        assert secret_hex not in repr(holder)
        assert SECRET.expose().decode() not in repr(holder)
        with pytest.raises(TypeError):
            pickle.dumps(holder)


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": "-1"},
        {"price": "nan"},
        {"id": ""},
        {"side": "HOLD"},
        {"close_fraction": "1.5"},
        {"movement": "sideways"},
    ],
)
def test_a_malformed_event_is_refused_with_a_typed_error(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        _event(**bad)


# --- the engine against the simulator ---------------------------------------------------------


@pytest.fixture
def venue() -> Any:
    limits = SimLimits(weight=10**8, orders=10**7, orders_seconds=10)
    with Simulator(limits=limits) as sim:
        yield sim


@pytest.fixture
def served(venue: Simulator) -> HttpsServer:
    return venue.serve_fast()


def _connect(server: HttpsServer) -> dict[str, dict[str, Any]]:
    return {"binance": {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}}


def _leader(sim: Simulator, event_id: str = "fill-1") -> LeaderEvent:
    price = sim.market.price("BTCUSDT")
    return LeaderEvent(event_id, "BTCUSDT", "BUY", "0.01", price, int(time.time() * 1000))


def _followers(sim: Simulator, n: int, **over: Any) -> list[Follower]:
    return [
        Follower(
            f"f{i}",
            sim.create_key(balances=RICH),
            Sizing("fixed_notional", "100"),
            slippage_bps=Decimal(300),
            **over,
        )
        for i in range(n)
    ]


def _orders_of(sim: Simulator, secret: Secret, event: LeaderEvent, follower: Follower) -> int:
    from securetrade.venues import get_venue

    idem = copy_key(secret, event.id, follower.id, 0)
    cid = get_venue("binance").client_order_id(follower.account, idem)
    return len(sim.market.orders_with_client_id(cid))


@pytest.mark.parametrize("n", [1, 10, 100])
def test_one_event_reaches_every_follower_once(
    venue: Simulator, served: HttpsServer, tmp_path: Path, n: int
) -> None:
    followers = _followers(venue, n)
    event = _leader(venue)

    async def run() -> Any:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=str(tmp_path / "j.sqlite3")
        ) as engine:
            for follower in followers:
                engine.add(follower)
            first = await engine.copy(event)
            again = await engine.copy(event)  # a redelivery
            return first, again

    first, again = asyncio.run(run())
    assert first.counts == {"placed": n}
    assert again.counts == {"placed": n}
    assert [_orders_of(venue, SECRET, event, f) for f in followers] == [1] * n


def test_one_bad_follower_is_quarantined_and_the_others_go_on(
    venue: Simulator, served: HttpsServer
) -> None:
    """A key the venue does not know (-2015), a follower without funds, a follower whose
    venue has no mapping for the symbol: each gets its own outcome; the rest are placed."""
    good = _followers(venue, 5)
    unknown = Follower(
        "bad-key",
        ApiKey("binance", "k-unknown-0000000001", "not-a-real-secret", scopes=["read", "trade"]),
        Sizing("fixed_notional", "100"),
    )
    broke = Follower("broke", venue.create_key(balances={"USDT": Decimal(1)}),
                     Sizing("fixed_notional", "100"))  # fmt: skip
    elsewhere = Follower(
        "kraken-unmapped",
        venue.create_key(venue="kraken", balances=RICH),
        Sizing("fixed_notional", "100"),
    )
    event = _leader(venue)
    connect = {**_connect(served), "kraken": _connect(served)["binance"]}

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect=connect, journal=":memory:") as engine:
            for follower in [*good, unknown, broke, elsewhere]:
                engine.add(follower)
            report = await engine.copy(event)
            return report, engine.quarantined

    report, quarantined = asyncio.run(run())
    by_id = {o.follower_id: o for o in report.outcomes}
    assert {by_id[f.id].status for f in good} == {"placed"}
    assert by_id["bad-key"].status == "quarantined"
    assert list(quarantined) == ["bad-key"]
    assert (by_id["broke"].status, by_id["broke"].reason) == ("skipped", "balance")
    assert (by_id["kraken-unmapped"].status, by_id["kraken-unmapped"].reason) == (
        "skipped",
        "unmapped_symbol",
    )
    assert report.complete


def test_a_refused_timestamp_leaves_the_follower_unresolved_not_quarantined(
    venue: Simulator, served: HttpsServer
) -> None:
    """A request that reaches the venue after its receive window (a loaded host, a slow
    route) is refused for its timestamp (-1021). That is no fault of the follower's key:
    the follower stays in the engine, unresolved, and resume() places its order once."""
    follower = _followers(venue, 1)[0]
    event = _leader(venue)
    connect = {"binance": {**_connect(served)["binance"], "recv_window_ms": 100}}
    venue.faults.inject("slow_arrival", method="POST", path="/api/v3/order", times=50,
                        seconds=0.3)  # fmt: skip

    async def run() -> Any:
        async with CopyEngine(secret=SECRET, connect=connect, journal=":memory:") as engine:
            engine.add(follower)
            first = await engine.copy(event)
            quarantined = dict(engine.quarantined)
            venue.faults.clear()
            return first, quarantined, await engine.resume()

    first, quarantined, resumed = asyncio.run(run())
    (outcome,) = first.outcomes
    assert (outcome.status, outcome.reason) == ("unresolved", "TimestampRejected")
    assert quarantined == {}
    assert venue.dialect.stats.by_path.get("POST /api/v3/order", 0) >= 1  # refused there
    assert [o.status for report in resumed for o in report.outcomes] == ["placed"]
    assert _orders_of(venue, SECRET, event, follower) == 1


def test_a_lost_answer_is_resolved_not_sent_twice(venue: Simulator, served: HttpsServer) -> None:
    followers = _followers(venue, 10)
    event = _leader(venue)
    venue.faults.inject("drop_response", method="POST", path="/api/v3/order", times=3)

    async def run() -> Any:
        connect = _connect(served)
        async with CopyEngine(secret=SECRET, connect=connect, journal=":memory:") as engine:
            for follower in followers:
                engine.add(follower)
            return await engine.copy(event)

    report = asyncio.run(run())
    assert report.counts == {"placed": 10}
    assert [_orders_of(venue, SECRET, event, f) for f in followers] == [1] * 10


def test_two_engines_racing_on_one_event_place_one_order_per_follower(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    """The same event processed twice at once (two workers, one journal file)."""
    followers = _followers(venue, 20)
    event = _leader(venue)

    async def engine_run(outbox: str) -> Any:
        async with CopyEngine(
            secret=SECRET,
            connect=_connect(served),
            journal=str(tmp_path / "j.sqlite3"),
            outbox=outbox,
        ) as engine:
            for follower in followers:
                engine.add(follower)
            return await engine.copy(event)

    async def both() -> Any:
        return await asyncio.gather(
            asyncio.to_thread(asyncio.run, engine_run(str(tmp_path / "a.sqlite3"))),
            asyncio.to_thread(asyncio.run, engine_run(str(tmp_path / "b.sqlite3"))),
        )

    first, second = asyncio.run(both())
    assert first.counts == second.counts == {"placed": 20}
    assert [_orders_of(venue, SECRET, event, f) for f in followers] == [1] * 20


CHILD = """
import asyncio, json, os, sys, time
from decimal import Decimal
from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing
from securetrade.keys import ApiKey

job = json.loads(sys.stdin.read())
followers = [
    Follower(f["id"], ApiKey("binance", f["key_id"], f["secret"], scopes=["read", "trade"]),
             Sizing("fixed_notional", "100"), slippage_bps=Decimal(300), ttl_ms=600_000)
    for f in job["followers"]
]  # a long TTL: on a loaded machine the two processes' start-up alone can outlast the default
event = LeaderEvent(**job["event"])

async def main():
    engine = CopyEngine(secret=job["secret"], connect={"binance": job["connect"]},
                        journal=job["journal"], outbox=job["outbox"])
    placed = 0
    original = engine._placed  # each order the venue took, once its answer is in
    def answered(*args):
        nonlocal placed
        outcome = original(*args)
        placed += 1
        if job["kill_after"] and placed >= job["kill_after"]:
            os.kill(os.getpid(), 9)
        return outcome
    engine._placed = answered
    for f in followers:
        engine.add(f)
    if job["resume"]:
        reports = await engine.resume()
        print(json.dumps([r.counts for r in reports]))
    else:
        print(json.dumps((await engine.copy(event)).counts))
    await engine.aclose()

asyncio.run(main())
"""


def test_a_fan_out_killed_midway_resumes_without_a_duplicate(
    venue: Simulator, served: HttpsServer, tmp_path: Path
) -> None:
    followers = _followers(venue, 30)
    event = _leader(venue, "fill-killed")
    job = {
        "secret": "copy-engine-test-secret-0000",
        "connect": _connect(served)["binance"],
        "journal": str(tmp_path / "j.sqlite3"),
        "outbox": str(tmp_path / "outbox.sqlite3"),
        "followers": [
            {"id": f.id, "key_id": f.key.key_id, "secret": f.key.secret.expose().decode()}
            for f in followers
        ],
        "event": {
            "id": event.id,
            "symbol": event.symbol,
            "side": event.side.value,
            "quantity": str(event.quantity),
            "price": str(event.price),
            "at_ms": event.at_ms,
        },
    }

    def child(**extra: Any) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        return subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps({**job, **extra}),
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )

    killed = child(kill_after=12, resume=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = child(kill_after=0, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == [{"placed": 30}]
    assert [_orders_of(venue, SECRET, event, f) for f in followers] == [1] * 30


def test_the_copy_demo_behaves() -> None:
    """``securetrade demo copy``: 100 followers on two venues, a revoked key, no funds, an
    unmapped symbol, lost answers and 429s; the verdict is the venue's book."""
    import io

    from securetrade.copy.demo import run_copy_demo

    out = io.StringIO()
    assert run_copy_demo(out) == 0, out.getvalue()
    assert "0 followers with more than one order" in out.getvalue()


def test_a_follower_waiting_on_the_venue_holds_one_coroutine_of_the_engine_and_no_plan(
    venue: Simulator, served: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a fan-out holds per follower across the venue's answer is what the collector
    walks at every pass and what brings a full collection into the event (a thousand
    followers in flight): one coroutine of the engine's per follower, not a second one
    for the placement, and neither the plan's list, its intent nor a closure's cells."""
    import gc

    from securetrade.client import AsyncClient
    from securetrade.copy.model import CopyIntent

    n = 50
    followers = _followers(venue, n)
    copy_dir = str(Path(CopyEngine.__module__.replace(".", os.sep)).parent)

    def held() -> dict[str, int]:
        found = {"engine coroutines": 0, "intents": 0, "cells": 0, "lists": 0}
        for o in gc.get_objects():
            if type(o).__name__ == "coroutine" and o.cr_frame is not None:  # not finished
                found["engine coroutines"] += copy_dir in o.cr_code.co_filename
            elif isinstance(o, CopyIntent):
                found["intents"] += 1
            elif type(o).__name__ == "cell":
                found["cells"] += 1
            elif type(o) is list:
                found["lists"] += 1
        return found

    async def run() -> tuple[dict[str, int], dict[str, int]]:
        async with CopyEngine(
            secret=SECRET, connect=_connect(served), journal=str(tmp_path / "j.sqlite3")
        ) as engine:
            for follower in followers:
                engine.add(follower)
            await engine.copy(_leader(venue, "warm"))  # balances and instruments read
            gate = asyncio.Event()
            waiting: list[str] = []

            async def answer_later(self: AsyncClient, order: Any, **options: Any) -> Any:
                waiting.append(options["idempotency_key"])
                await gate.wait()
                raise RetryableError("not sent")  # left unresolved: nothing placed

            monkeypatch.setattr(AsyncClient, "place_order", answer_later)
            for _ in range(3):
                await asyncio.sleep(0)  # the loop lets go of the warm fan-out's handles
            gc.collect()
            before = held()
            fan_out = asyncio.ensure_future(engine.copy(_leader(venue, "held")))
            while len(waiting) < n:
                await asyncio.sleep(0.01)
            gc.collect()
            during = held()
            gate.set()
            report = await fan_out
            assert report.counts == {"unresolved": n}, report.counts
            return before, during

    before, during = asyncio.run(run())
    added = {k: during[k] - before[k] for k in during}
    assert added["engine coroutines"] == n + 1, added  # each follower's, and copy() itself
    assert added["intents"] == 0, added
    assert added["cells"] < n / 2, added  # copy()'s own few, none per follower
    assert added["lists"] < n / 2, added
