"""Progress bars on long work: shown where someone watches, silent elsewhere, never on orders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from securetrade import ApiKey, Client, InvalidRequest, Journal, LimitOrder
from securetrade.progress import THRESHOLD, interactive, progress, show_progress
from securetrade.sim import Simulator


@pytest.fixture(autouse=True)
def _automatic() -> Iterator[None]:
    yield
    show_progress(None)


def _journal_with_stopped_intents(client: Client, journal: Journal, n: int) -> None:
    account = client.keys.account
    for i in range(n):
        journal.begin(f"stopped-{i}", f"st{i:030d}", account, "BTCUSDT", "fp")


def _recover(sim: Simulator, key: ApiKey, n: int, tmp_path: Any) -> Any:
    journal = Journal(tmp_path / "journal.sqlite3")
    with Client(key, transport=sim.transport(), journal=journal) as client:
        _journal_with_stopped_intents(client, journal, n)
        return client.recover()


def test_recovery_over_many_intents_shows_a_bar_when_watched(
    sim: Simulator, key: ApiKey, tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    show_progress(True)
    report = _recover(sim, key, THRESHOLD + 10, tmp_path)
    assert len(report.not_placed) == THRESHOLD + 10
    err = capfd.readouterr().err
    assert "recovery" in err
    assert f"/{THRESHOLD + 10} " in err  # the bar counts intents out of the total
    assert "intent/s" in err


def test_recovery_is_silent_when_nobody_watches(
    sim: Simulator, key: ApiKey, tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    import ipykernel  # noqa: F401  (imported is not running: no kernel here)

    assert not interactive()  # pytest captures stderr: not a terminal, not a kernel
    report = _recover(sim, key, THRESHOLD + 10, tmp_path)
    assert len(report.not_placed) == THRESHOLD + 10
    assert "recovery" not in capfd.readouterr().err


def test_short_work_and_orders_show_no_bar(
    sim: Simulator, key: ApiKey, tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    show_progress(True)
    _recover(sim, key, THRESHOLD - 1, tmp_path)
    with Client(key, transport=sim.transport(), journal=":memory:") as client:
        for i in range(THRESHOLD + 1):
            client.place_order(
                LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="50000"),
                idempotency_key=f"quiet-{i}",
            )
    assert "%|" not in capfd.readouterr().err  # no bar at all


def test_progress_passes_every_item_through(capfd: pytest.CaptureFixture[str]) -> None:
    show_progress(True)
    assert list(progress(range(THRESHOLD * 2), total=THRESHOLD * 2, desc="work")) == list(
        range(THRESHOLD * 2)
    )
    assert "work" in capfd.readouterr().err


def test_recovery_report_renders(sim: Simulator, key: ApiKey, tmp_path: Any) -> None:
    report = _recover(sim, key, 3, tmp_path)
    assert repr(report) == "RecoveryReport(resolved=0, not_placed=3, unresolved=0, orphans=0)"
    page = report._repr_html_()
    assert "<p>not_placed</p><table>" in page
    assert page.count("<td>st") == 3


def test_show_progress_refuses_non_flags() -> None:
    with pytest.raises(InvalidRequest, match="True or False"):
        show_progress("yes")  # type: ignore[arg-type]


def test_a_long_copy_fan_out_shows_a_bar(tmp_path: Any, capfd: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from securetrade.copy import CopyEngine
    from securetrade.sim import SimLimits
    from test_copy import SECRET, _connect, _followers, _leader

    show_progress(True)
    n = THRESHOLD + 5
    with Simulator(limits=SimLimits(weight=10**8, orders=10**7, orders_seconds=10)) as venue:
        served = venue.serve_fast()
        followers = _followers(venue, n)
        event = _leader(venue)

        async def run() -> Any:
            async with CopyEngine(
                secret=SECRET, connect=_connect(served), journal=str(tmp_path / "j.sqlite3")
            ) as engine:
                for follower in followers:
                    engine.add(follower)
                return await engine.copy(event)

        report = asyncio.run(run())
    assert report.counts == {"placed": n}
    err = capfd.readouterr().err
    assert f"copy {event.id}" in err
    assert f"/{n} " in err
    assert "follower/s" in err
