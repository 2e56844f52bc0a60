"""The kill switch: manual or automatic, and shared across processes (SQLite and Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from securetrade import Client, LimitOrder, MarketOrder, OrderStatus, PolicyViolation, Scope
from securetrade.errors import InvalidRequest
from securetrade.policy import (
    AnomalyMonitor,
    KillSwitch,
    Policy,
    RejectionBurst,
    SqliteSwitchStore,
)
from securetrade.sim import Simulator

# The second process: a bot with its own client and its own handle on the shared switch.
# It places one order each time it reads "go" and reports what happened.
CHILD = textwrap.dedent(
    """
    import json, sys
    from securetrade import ApiKey, Client, MarketOrder, PolicyViolation
    from securetrade.policy import KillSwitch, Policy

    setup = json.loads(sys.stdin.readline())
    key = ApiKey("binance", setup["key_id"], setup["secret"], scopes=["read", "trade"],
                 environment="simulated")
    switch = KillSwitch.from_url(setup["store"], name="acct")
    client = Client(key, base_url=setup["base_url"], pins=setup["pins"],
                    cadata=setup["ca"], journal=":memory:", policy=Policy(kill_switch=switch))
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            order = client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY",
                                                   quantity="0.001"))
            print("placed " + order.status.value, flush=True)
        except PolicyViolation as exc:
            print("refused " + exc.rule, flush=True)
    client.close()
    """
)


class Child:
    def __init__(self, sim: Simulator, store: str) -> None:
        server = sim.serve()
        key = sim.create_key()
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        setup = {
            "key_id": key.key_id,
            "secret": key.secret.expose().decode(),
            "store": store,
            "base_url": server.base_url,
            "pins": server.pins,
            "ca": server.ca_pem,
        }
        assert self.ask(json.dumps(setup)) == "ready"

    def ask(self, line: str = "go") -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'switch.sqlite3'}"
    return str(request.getfixturevalue("redis_url"))


def test_engaged_in_one_process_stops_another(sim: Simulator, store_url: str) -> None:
    child = Child(sim, store_url)
    try:
        assert child.ask() == "placed FILLED"  # released: the second process trades
        assert sim.dialect.stats.by_path["POST /api/v3/order"] == 1
        here = KillSwitch.from_url(store_url, name="acct")
        here.engage("compromised key suspected")
        for _ in range(3):
            assert child.ask() == "refused kill_switch"
        assert sim.dialect.stats.by_path["POST /api/v3/order"] == 1, "0 orders after engaging"
        here.release()
        assert child.ask() == "placed FILLED"
    finally:
        child.close()


def test_switches_with_other_names_are_independent(tmp_path: Path) -> None:
    store = SqliteSwitchStore(tmp_path / "s.sqlite3")
    a, b = KillSwitch(store, name="a"), KillSwitch(store, name="b")
    a.engage("only a")
    assert a.engaged
    assert a.reason == "only a"
    assert not b.engaged
    store.close()


def test_unreadable_store_fails_closed(sim: Simulator, tmp_path: Path) -> None:
    """If the shared state cannot be read, orders stop: when in doubt, nothing is sent."""
    store = SqliteSwitchStore(tmp_path / "s.sqlite3")
    switch = KillSwitch(store)
    client = Client(
        sim.create_key(),
        transport=sim.transport(),
        journal=":memory:",
        policy=Policy(kill_switch=switch),
    )
    client.instruments()
    store.close()  # every read now fails
    before = sim.dialect.stats.requests
    with pytest.raises(PolicyViolation, match="unreadable") as excinfo:
        client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    assert excinfo.value.rule == "kill_switch"
    assert sim.dialect.stats.requests == before
    client.close()


def test_redis_store_reads_the_live_state(redis_url: str) -> None:
    a = KillSwitch.from_url(redis_url, name="live-state")
    b = KillSwitch.from_url(redis_url, name="live-state")
    a.release()
    assert not b.engaged
    a.engage("x", cancel_open=True)
    state = b.state()
    assert (state.engaged, state.reason, state.cancel_open) == (True, "x", True)
    b.release()
    assert not a.engaged


def test_bad_store_url_is_a_typed_error() -> None:
    with pytest.raises(InvalidRequest, match="unknown kill switch store"):
        KillSwitch.from_url("etcd://somewhere")
    with pytest.raises(InvalidRequest, match="name"):
        KillSwitch(name="")


def test_manual_kill_cancels_open_orders(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    resting = [
        client.place_order(LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price=p))
        for p in ("60000", "60001", "60002")
    ]
    assert all(o.status is OrderStatus.NEW for o in resting)
    cancelled = client.kill("operator: flatten", cancel_open=True)
    assert sorted(o.order_id for o in cancelled) == sorted(o.order_id for o in resting)
    assert client.open_orders() == []
    sent = sim.dialect.stats.by_path["POST /api/v3/order"]
    with pytest.raises(PolicyViolation, match="operator: flatten"):
        client.place_order(MarketOrder(symbol="BTCUSDT", side="BUY", quantity="0.001"))
    with pytest.raises(PolicyViolation, match="no withdrawal"):
        client.withdraw("USDT", "10", "addr-1")
    assert sim.dialect.stats.by_path["POST /api/v3/order"] == sent
    assert [e.kind for e in client.audit.events() if e.kind.startswith("killswitch")] == [
        "killswitch.engaged",
        "killswitch.cancelled",
    ]


def test_kill_without_cancel_leaves_orders_resting(sim: Simulator, make_client: Any) -> None:
    client = make_client(sim.create_key())
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000")
    )
    assert client.kill("pause") == []
    assert [o.order_id for o in client.open_orders()] == [order.order_id]


def test_critical_alert_engages_the_switch_and_cancels(sim: Simulator, make_client: Any) -> None:
    """A burst of signature rejections (a forged or misused key) stops trading by itself."""
    switch = KillSwitch()
    client = make_client(sim.create_key(), policy=Policy(kill_switch=switch))
    monitor = AnomalyMonitor(
        [RejectionBurst(threshold=3)], kill_switch=switch, cancel_open_on_kill=True
    )
    monitor.watch(client.audit)
    resting = client.place_order(
        LimitOrder(symbol="ETHUSDT", side="BUY", quantity="0.1", price="3000")
    )
    # Someone holding the key id but not the secret hammers the account from this process.
    from securetrade import ApiKey

    forged = ApiKey(
        "binance", client.core.key.key_id, "f" * 64, scopes=[Scope.READ], environment="simulated"
    )
    intruder = make_client(forged, audit=client.audit)
    for _ in range(3):
        with pytest.raises(Exception, match="Signature"):
            intruder.balances()
    assert switch.engaged
    assert "auth_rejections" in (switch.reason or "")
    assert monitor.alerts[-1].detector == "auth_rejections"
    # The next call of the real client cancels what is open, then refuses new orders.
    assert client.open_orders() == []
    assert client.get_order("ETHUSDT", order_id=resting.order_id).status is OrderStatus.CANCELED
    with pytest.raises(PolicyViolation, match="kill switch"):
        client.place_order(MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"))
