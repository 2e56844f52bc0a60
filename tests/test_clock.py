"""Venue clock: offset from round trips, drift alarms, and the validity window on requests."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import pytest

from securetrade.clock import ClockAlarm, VenueClock
from securetrade.sim import Simulator


class Hands:
    """A wall and monotonic clock moved by the test."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 100.0

    def kwargs(self) -> dict[str, Any]:
        return {"wall": lambda: self.wall, "monotonic": lambda: self.mono}


def _sync(clock: VenueClock, server_offsets_ms: list[float], rtt_ms: float = 10.0) -> None:
    """One batch of samples, as Core.sync_clock takes them, then the alarm check."""
    clock.reset()
    for offset in server_offsets_ms:
        sent = clock.local_ms()
        server = sent + rtt_ms / 2 + offset
        clock.add_sample(sent, sent + rtt_ms, int(server))
    clock.check()


def test_offset_is_the_median_of_round_trip_midpoints() -> None:
    hands = Hands()
    clock = VenueClock(**hands.kwargs())
    _sync(clock, [250.0, 260.0, 9_000.0])  # one sample delayed in flight
    assert clock.offset_ms == pytest.approx(260.0, abs=1)
    assert clock.now_ms() == pytest.approx(hands.wall * 1000 + 260, abs=1)


def test_local_clock_step_does_not_move_venue_time() -> None:
    hands = Hands()
    clock = VenueClock(**hands.kwargs())
    before = clock.now_ms()
    hands.wall -= 3600  # NTP steps the wall clock back; monotonic time keeps going
    hands.mono += 1.0
    assert clock.now_ms() == before + 1000


def test_offset_alarm_fires_once_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    alarms: list[ClockAlarm] = []
    clock = VenueClock(max_offset_ms=1000, on_alarm=alarms.append, **Hands().kwargs())
    with caplog.at_level(logging.WARNING, logger="securetrade.clock"):
        _sync(clock, [200.0] * 3)
        assert alarms == []
        _sync(clock, [1500.0] * 3)
        _sync(clock, [1600.0] * 3)  # still beyond: no repeat
        _sync(clock, [100.0] * 3)  # back within
        _sync(clock, [-1700.0] * 3)  # beyond again, the other way
    offsets = [a for a in alarms if a.reason == "offset"]
    assert [round(a.offset_ms) for a in offsets] == [1500, -1700]
    assert all(a.threshold_ms == 1000 for a in offsets)
    assert sum("clock alarm (offset)" in r.getMessage() for r in caplog.records) == 2


def test_drift_alarm_compares_with_the_previous_sync() -> None:
    alarms: list[ClockAlarm] = []
    clock = VenueClock(max_drift_ms=300, on_alarm=alarms.append, **Hands().kwargs())
    _sync(clock, [0.0] * 3)
    _sync(clock, [200.0] * 3)  # moved 200: fine
    _sync(clock, [700.0] * 3)  # moved 500: alarm
    assert [(a.reason, round(a.offset_ms), round(a.previous_ms or 0)) for a in alarms] == [
        ("drift", 700, 200)
    ]


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        VenueClock(max_drift_ms=0)


def test_check_without_samples_is_quiet() -> None:
    assert VenueClock().check() == []


# --- end to end: a venue whose clock is off, over the simulator -----------------------------------


def test_client_raises_clock_alarms_from_real_round_trips(sim: Simulator, make_client: Any) -> None:
    """Core.sync_clock feeds the alarm: a venue 5 s ahead, then one that jumps by 1.5 s."""
    alarms: list[ClockAlarm] = []
    sim.dialect.clock_offset_ms = 5_000
    clock = VenueClock(max_offset_ms=2_000, max_drift_ms=1_000, on_alarm=alarms.append)
    client = make_client(sim.create_key(), clock=clock)
    events: list[Any] = []
    client.core.audit.subscribe(events.append)
    assert client.sync_clock() == pytest.approx(5_000, abs=250)
    assert [a.reason for a in alarms] == ["offset"]
    sim.dialect.clock_offset_ms = 6_500
    client.sync_clock()
    assert [a.reason for a in alarms] == ["offset", "drift"]
    assert alarms[1].offset_ms - (alarms[1].previous_ms or 0) == pytest.approx(1_500, abs=250)
    assert [e.fields["reason"] for e in events if e.kind == "clock.alarm"] == ["offset", "drift"]
    client.balances()  # signed with venue time: accepted although our clock is 6.5 s behind


# --- the validity window travels with every signed request ----------------------------------------


class Recording:
    """A transport that hands each request to the simulator's own and keeps a copy."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[Any] = []

    def send(self, request: Any) -> Any:
        self.sent.append(request)
        return self.inner.send(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("window", [None, 1500, 60_000])
def test_every_signed_binance_request_carries_the_window(
    sim: Simulator, window: int | None
) -> None:
    from securetrade import Client

    transport = Recording(sim.transport())
    kwargs: dict[str, Any] = {} if window is None else {"recv_window_ms": window}
    with Client(sim.create_key(), transport=transport, journal=":memory:", **kwargs) as client:
        client.balances()
        client.open_orders("BTCUSDT")
    signed = [r for r in transport.sent if "signature=" in r.target + r.body.decode()]
    assert len(signed) >= 2
    for request in signed:
        query = request.target.partition("?")[2] or request.body.decode()
        assert dict(parse_qsl(query))["recvWindow"] == str(window or 5000)


def test_window_outside_binance_limits_is_refused(sim: Simulator) -> None:
    from securetrade import Client
    from securetrade.errors import InvalidRequest

    for window in (50, 60_001):
        with pytest.raises(InvalidRequest):
            Client(sim.create_key(), transport=sim.transport(), recv_window_ms=window)
