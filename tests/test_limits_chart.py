"""client.limits: each window's occupancy over time from a bounded history, and its chart."""

from __future__ import annotations

import gc
import io
from typing import Any

import pytest
from matplotlib.figure import Figure

from securetrade import ApiKey, Client, InvalidRequest, LimitOrder, RateLimit
from securetrade.ratelimit import Limits
from securetrade.ratelimit.history import History
from securetrade.sim import Simulator


def _orders(client: Client, n: int) -> None:
    for i in range(n):
        client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="50000"),
            idempotency_key=f"chart-{i}",
        )


@pytest.fixture
def client(sim: Simulator, key: ApiKey) -> Any:
    with Client(key, transport=sim.transport(), journal=":memory:") as made:
        yield made


def test_history_ends_where_the_windows_are_now(client: Client) -> None:
    _orders(client, 7)
    limits = client.limits
    assert isinstance(limits, Limits)
    history = {(s.limit.kind, s.limit.seconds): s for s in limits.history(1, points=10)}
    now = {(u.limit.kind, u.limit.seconds): u for u in limits.usage()}
    assert set(history) == set(now)
    assert history[("ORDERS", 10.0)].used[-1] == 7
    for window, series in history.items():
        # one process on an in-memory backend: its grants are the whole window
        assert series.used[-1] == now[window].used, window
        assert series.capacity == now[window].capacity
        assert len(series.used) == 10
        assert series.seconds_ago[0] == 60.0
        assert series.seconds_ago[-1] == 0.0


def test_occupancy_rises_and_leaves_each_window_after_its_length() -> None:
    history = History()
    ten = RateLimit("ORDERS", 10, 100)
    minute = RateLimit("REQUEST_WEIGHT", 60, 6000)
    plan = object()
    history.describe(plan, [("orders-log", 1), ("weight-log", 4)])
    for at in (100.0, 101.0, 105.0):
        history.add((at, id(plan)))
    nobody = object()
    history.add((106.0, id(nobody)))  # a plan nobody described counts nowhere
    series = history.series(
        [(ten, "acct", "orders-log"), (minute, "ip", "weight-log")],
        now=120.0,
        seconds=20.0,
        points=5,  # at 100, 105, 110, 115, 120
        capacity=lambda limit: limit.limit,
    )
    assert series[0].used == (1, 3, 2, 0, 0)  # a grant leaves 10 s after it was made
    assert series[1].used == (4, 12, 12, 12, 12)
    assert series[0].label == "ORDERS /10s ip:acct"  # the default scope of a RateLimit


def test_grants_and_kept_events_are_no_garbage_collected_containers(client: Client) -> None:
    # Kept for minutes (100,000 grants, 10,000 events), one or more per order: were they
    # containers the collector follows, each would age into the old generation and bring
    # the next full collection on, and every full collection would walk them all.
    _orders(client, 5)
    gc.collect()  # a tuple of plain values is untracked at the first collection it meets
    limiter = client.core.limiter
    grants = limiter.history.grants()
    assert len(grants) >= 5
    assert not any(gc.is_tracked(grant) for grant in grants)
    audit = client.core.audit
    kept = list(zip(audit._kinds, audit._fields, strict=True))
    intents = [(kind, fields) for kind, fields in kept if kind[0] == "order.intent"]
    assert len(intents) == 5
    assert not any(gc.is_tracked(kind) or gc.is_tracked(fields) for kind, fields in intents)
    assert [e.kind for e in client.core.audit.events("order.intent")] == ["order.intent"] * 5


def test_history_is_bounded() -> None:
    history = History(size=10)
    plan = object()
    history.describe(plan, [("log", 1)])
    for at in range(1000):
        history.add((float(at), id(plan)))
    assert len(history.grants()) == 10
    series = history.series(
        [(RateLimit("ORDERS", 10_000, 10**6), "a", "log")],
        now=1000.0,
        seconds=1.0,
        points=2,
        capacity=lambda limit: limit.limit,
    )
    assert series[0].used == (10, 10)


def test_plot_draws_each_window_against_its_capacity(client: Client) -> None:
    _orders(client, 9)
    figure = client.limits.plot(minutes=2)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    history = client.limits.history(2)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {s.label for s in history} | {"usable capacity"}
    orders = next(s for s in history if s.limit.kind == "ORDERS" and s.limit.seconds == 10)
    drawn = lines[orders.label].get_ydata()
    assert drawn[-1] == pytest.approx(100.0 * 9 / orders.capacity)
    assert list(lines["usable capacity"].get_ydata()) == [100.0, 100.0]
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")
    assert figure._repr_png_().startswith(b"\x89PNG")  # what Jupyter shows, without pyplot


def test_plot_on_a_given_axes(client: Client) -> None:
    figure = Figure()
    ax = figure.add_subplot()
    assert client.limits.plot(1, ax=ax) is figure
    with pytest.raises(InvalidRequest, match="matplotlib Axes"):
        client.limits.plot(1, ax="left")


def test_limits_render_and_refuse_bad_arguments(client: Client) -> None:
    _orders(client, 1)
    page = client.limits._repr_html_()
    assert "<th>occupancy</th>" in page
    assert "<td>ORDERS</td>" in page
    assert repr(client.limits) == "Limits(venue='binance', windows=3)"
    with pytest.raises(InvalidRequest, match="minutes"):
        client.limits.history(0)
    with pytest.raises(InvalidRequest, match="points"):
        client.limits.history(1, points=1)
