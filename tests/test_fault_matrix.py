"""The fault matrix of the idempotency research note (section 5.3), one test per scenario.

Every scenario runs against the simulator over real TLS on loopback (the faults that need a
real socket, such as a reset or a client timeout, cannot be faked in-process), and ends
with the oracle: at most one order per idempotency key, no intent lost, every final state
known.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from oracle import assert_oracle
from securetrade import Client, RateLimited, Settings, VenueRejected
from securetrade.core import IntentState, Journal
from securetrade.models import LimitOrder, MarketOrder, OrderRequest, OrderStatus
from securetrade.sim import HttpsServer, Simulator

LIMIT = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.001", price="60000")
MARKET = MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01")
QUOTE = MarketOrder(symbol="ETHUSDT", side="BUY", quote_quantity="50")  # 50 USDT of ETH
POST = {"method": "POST", "path": "/api/v3/order"}
RECV_MS = 300
SETTLE_MS = 300
FAST = Settings(settle_ms=SETTLE_MS, resolve_timeout=10.0)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


_MADE: list[Client] = []  # every client a test built, closed when the test ends


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the clients a test left open: their pooled TLS sockets would otherwise wait
    for the garbage collector, whose ResourceWarning lands in whichever test runs then."""
    yield
    made = _MADE[:]
    _MADE.clear()
    for client in made:
        client.close()


def _client(
    sim: Simulator,
    server: HttpsServer,
    journal: Path,
    tls_options: Any,
    *,
    key: Any = None,
    **kwargs: Any,
) -> Client:
    kwargs.setdefault("recv_window_ms", RECV_MS)
    kwargs.setdefault("settings", FAST)
    client = Client(key or sim.create_key(), journal=journal, **tls_options(server), **kwargs)
    _MADE.append(client)
    return client


def _posts(sim: Simulator) -> list[float]:
    return [
        t
        for t, method, path in sim.dialect.stats.arrivals
        if (method, path) == ("POST", "/api/v3/order")
    ]


def _place(client: Client, order: OrderRequest, key: str) -> Any:
    try:
        return client.place_order(order, idempotency_key=key)
    finally:
        client.close()


def _check(sim: Simulator, journal: Path, client: Client, *keys: str) -> None:
    j = Journal(journal)
    try:
        assert_oracle(sim, j, client.core.account, keys)
    finally:
        j.close()


# --- 1: the request is lost ----------------------------------------------------------------


class _RefusingProxy:
    """A TCP forwarder on loopback. ``refuse_next(n)`` closes the connections it forwards
    and hangs up on the next ``n`` new ones before the TLS handshake, so the client knows
    nothing was sent."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self._refuse = 0
        self._live: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse_next(self, count: int) -> None:
        self._refuse = count
        for conn in self._live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._live.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self._refuse > 0:
                self._refuse -= 1
                self.refused += 1
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._live += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with closing(source), closing(sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def test_1a_connection_refused_is_resent_with_the_same_id(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    proxy = _RefusingProxy(int(server.base_url.rsplit(":", 1)[1]))
    options = dict(tls_options(server), base_url=f"https://127.0.0.1:{proxy.port}")
    client = Client(
        sim.create_key(), journal=journal_path, recv_window_ms=RECV_MS, settings=FAST, **options
    )
    client.recover()  # warm: instruments, clock, journal reconciled
    client.instruments()
    proxy.refuse_next(1)  # the order's connection is refused once
    order = _place(client, LIMIT, "1a")
    proxy.close()
    assert proxy.refused == 1
    assert order.status is OrderStatus.NEW
    assert len(_posts(sim)) == 1
    _check(sim, journal_path, client, "1a")


def test_1b_dropped_request_waits_out_the_deadline_then_resends(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    client.recover()
    sim.faults.inject("drop_request", **POST)
    order = _place(client, LIMIT, "1b")
    posts = _posts(sim)
    assert len(posts) == 2  # the first never reached the engine; the resend did
    assert posts[1] - posts[0] >= (RECV_MS + SETTLE_MS) / 1000 - 0.05  # not before its deadline
    assert len(sim.market.orders_with_client_id(order.client_order_id)) == 1
    _check(sim, journal_path, client, "1b")


# --- 2: executed, response lost -------------------------------------------------------------


@pytest.mark.parametrize("order", [LIMIT, MARKET, QUOTE], ids=["limit", "market", "quote"])
@pytest.mark.parametrize("lag_ms", [0, 1000])
def test_2_lost_response_is_found_not_resent(
    journal_path: Path, tls_options: Any, order: OrderRequest, lag_ms: int
) -> None:
    with Simulator(visibility_lag_ms=lag_ms) as sim:
        server = sim.serve()
        client = _client(sim, server, journal_path, tls_options, settings=Settings(settle_ms=2000))
        client.recover()
        sim.faults.inject("drop_response", **POST)
        placed = _place(client, order, f"2-{lag_ms}")
        assert len(_posts(sim)) == 1
        assert placed.order_id
        _check(sim, journal_path, client, f"2-{lag_ms}")


# --- 3: the venue is slow ---------------------------------------------------------------


def test_3a_order_landing_after_the_client_gave_up_is_found(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options, recv_window_ms=3000, timeout=0.5)
    client.recover()
    sim.faults.inject("delay", seconds=1.0, **POST)
    placed = _place(client, LIMIT, "3a")
    assert len(_posts(sim)) == 1
    assert placed.status is OrderStatus.NEW
    _check(sim, journal_path, client, "3a")


def test_3b_settle_margin_covers_queueing_past_the_window(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    """Past the gateway's recvWindow check, the engine may still execute late."""
    client = _client(
        sim, server, journal_path, tls_options, settings=Settings(settle_ms=2000), timeout=0.3
    )
    client.recover()
    sim.faults.inject("delay", seconds=1.0, **POST)
    placed = _place(client, MARKET, "3b")
    assert len(_posts(sim)) == 1
    assert placed.status is OrderStatus.FILLED
    _check(sim, journal_path, client, "3b")


def test_3b_control_without_a_settle_margin_the_order_is_doubled(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    """The control: settle_ms=0 resends before the queued order lands, and both execute.
    This is the failure the margin exists to prevent (and shows the test above can fail)."""
    client = _client(
        sim, server, journal_path, tls_options, settings=Settings(settle_ms=0), timeout=0.3
    )
    client.recover()
    sim.faults.inject("delay", seconds=1.0, **POST)
    placed = _place(client, MARKET, "3b-control")
    threading.Event().wait(1.0)  # let the queued first attempt execute
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 2


# --- 4: server errors --------------------------------------------------------------------


def test_4a_server_error_after_executing_is_found(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    client.recover()
    sim.faults.inject("status_after", status=502, **POST)
    placed = _place(client, LIMIT, "4a")
    assert len(_posts(sim)) == 1
    assert placed.status is OrderStatus.NEW
    _check(sim, journal_path, client, "4a")


def test_4b_server_error_before_executing_is_resent_after_the_deadline(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    client.recover()
    sim.faults.inject("status", status=503, **POST)
    placed = _place(client, LIMIT, "4b")
    posts = _posts(sim)
    assert len(posts) == 2
    assert posts[1] - posts[0] >= (RECV_MS + SETTLE_MS) / 1000 - 0.05
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    _check(sim, journal_path, client, "4b")


# --- 5: rate limits ------------------------------------------------------------------------


def test_5a_429_is_resent_after_retry_after(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    client.recover()
    sim.faults.inject("rate_limit", seconds=1, **POST)
    placed = _place(client, LIMIT, "5a")
    posts = _posts(sim)
    assert len(posts) == 2
    assert posts[1] - posts[0] >= 0.95  # nothing inside the Retry-After window
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    _check(sim, journal_path, client, "5a")


def test_5b_ban_longer_than_the_caller_waits_leaves_the_key_reusable(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    key = sim.create_key()
    client = _client(
        sim, server, journal_path, tls_options, key=key,
        settings=Settings(settle_ms=SETTLE_MS, max_rate_wait=0.5),
    )  # fmt: skip
    client.recover()
    sim.faults.inject("ban", seconds=2, **POST)
    with pytest.raises(RateLimited):
        client.place_order(LIMIT, idempotency_key="5b")
    assert (
        client.journal.get(client.core.venue.client_order_id(client.core.account, "5b")).state
        is IntentState.NOT_PLACED
    )  # type: ignore[union-attr]
    banned_posts = len(_posts(sim))
    threading.Event().wait(2.1)  # the ban ends
    placed = _place(client, LIMIT, "5b")  # the same key sends the same order, once
    assert len(_posts(sim)) == banned_posts + 1
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    _check(sim, journal_path, client, "5b")


# --- 6: connection reset mid-response --------------------------------------------------------


def test_6_reset_mid_response_after_executing_is_found(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    client.recover()
    sim.faults.inject("reset", **POST)
    placed = _place(client, LIMIT, "6")
    assert len(_posts(sim)) == 1
    assert placed.status is OrderStatus.NEW
    _check(sim, journal_path, client, "6")


# --- 8c / 13: the journal is lost, the order is open at the venue ------------------------------


def test_8c_lost_journal_reports_the_orphan_and_adopts_it_on_resubmit(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    key = sim.create_key()
    first = _client(sim, server, tmp_path / "lost.sqlite3", tls_options, key=key)
    placed = _place(first, LIMIT, "8c")
    (tmp_path / "lost.sqlite3").unlink()
    fresh = tmp_path / "fresh.sqlite3"
    second = _client(sim, server, fresh, tls_options, key=key)
    report = second.recover()
    assert [o.client_order_id for o in report.orphans] == [placed.client_order_id]
    again = _place(second, LIMIT, "8c")
    assert again.order_id == placed.order_id
    assert len(_posts(sim)) == 1
    _check(sim, fresh, second, "8c")


def test_13_duplicate_id_reply_adopts_the_earlier_order(
    sim: Simulator, server: HttpsServer, tmp_path: Path, tls_options: Any
) -> None:
    """Two journals (recovery off on the second, so it cannot see the orphan first): the
    venue's duplicate-id refusal is read as 'it landed', and the order is adopted."""
    key = sim.create_key()
    first = _client(sim, server, tmp_path / "a.sqlite3", tls_options, key=key)
    placed = _place(first, LIMIT, "13")
    second = _client(
        sim, server, tmp_path / "b.sqlite3", tls_options, key=key,
        settings=Settings(settle_ms=SETTLE_MS, recover_on_start=False),
    )  # fmt: skip
    again = _place(second, LIMIT, "13")
    assert again.order_id == placed.order_id
    assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
    assert sim.dialect.stats.rejections.get(-2010) == 1


# --- 9: clocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_ms", [-3000, 1500])
def test_9a_skewed_venue_clock_is_resynced_and_the_order_sent_once(
    journal_path: Path, tls_options: Any, offset_ms: int
) -> None:
    with Simulator() as sim:
        server = sim.serve()
        client = _client(sim, server, journal_path, tls_options, recv_window_ms=1000)
        client.recover()  # synced to the venue's clock as it is now
        sim.dialect.clock_offset_ms = offset_ms  # then the venue's clock steps
        placed = _place(client, LIMIT, f"9a{offset_ms}")
        assert sim.dialect.stats.rejections.get(-1021, 0) >= 1
        assert len(sim.market.orders_with_client_id(placed.client_order_id)) == 1
        _check(sim, journal_path, client, f"9a{offset_ms}")


# --- 18: a business rejection is replayed, not resent --------------------------------------------


def test_18_rejected_order_is_replayed_for_the_same_key(
    sim: Simulator, server: HttpsServer, journal_path: Path, tls_options: Any
) -> None:
    client = _client(sim, server, journal_path, tls_options)
    too_big = LimitOrder(symbol="BTCUSDT", side="BUY", quantity="10", price="60000")
    with pytest.raises(VenueRejected):
        client.place_order(too_big, idempotency_key="18")
    with pytest.raises(VenueRejected, match="rejected"):
        client.place_order(too_big, idempotency_key="18")
    client.close()
    assert len(_posts(sim)) == 1
    _check(sim, journal_path, client, "18")


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim: Simulator) -> Iterator[None]:
    yield
    sim.faults.clear()
