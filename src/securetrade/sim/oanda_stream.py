"""The simulator's OANDA transaction stream: chunked JSON lines over HTTPS.

``GET /v3/accounts/{id}/transactions/stream`` with the account's bearer token answers 200
and then, one line each, every transaction the account records from then on and a
``HEARTBEAT`` with ``lastTransactionID`` every ``heartbeat_every`` seconds (OANDA: about
5 s). Fills that happen in the engine (a resting LIMIT order taken by a counterparty) are
recorded as ``ORDER_FILL`` transactions when they happen, so they are streamed at once.

Faults (:class:`~securetrade.sim.ws.WsFaults`): drop, duplicate or hold back (reorder)
line k, close every N s, refuse new streams for a while (with the status given), plus
:meth:`OandaStreamServer.mute` (the connection stays open, nothing more is written, not
even heartbeats) and :meth:`OandaStreamServer.expire_all`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import ssl
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

from .certs import Certificates, make_certificates
from .engine import Market, SimOrder
from .oanda_market import stamp
from .server import Served, server_context
from .ws import WsFaults

if TYPE_CHECKING:
    from .oanda import OandaDialect

__all__ = ["OandaStreamServer"]


class Broker(Protocol):
    """What the stream needs of a :class:`~securetrade.sim.brokers.BrokerSimulator` (a
    Protocol, so this module sits below ``securetrade.sim.brokers``)."""

    @property
    def market(self) -> Market: ...

    @property
    def dialect(self) -> Any: ...


_CLOSE = object()  # a connection's queue item: end the stream now


class _Stream:
    """One open transaction stream."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.muted = False
        self.lines: queue.Queue[Any] = queue.Queue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        owner = self.server.owner
        try:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            raise
        with owner.lock:
            owner.requests += 1
        super().setup()

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        owner = self.server.owner
        dialect = owner.oanda
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        account = dialect.tokens.get(token.encode()) if scheme == "Bearer" else None
        path = self.path.partition("?")[0]
        if account is None:
            self._answer(401, {"errorMessage": "Insufficient authorization"}, {})
            return
        if path != f"/v3/accounts/{account}/transactions/stream":
            self._answer(404, {"errorMessage": "The requested endpoint does not exist"}, {})
            return
        if owner.faults.refusing:
            with owner.lock:
                owner.refused += 1
            status = owner.faults.refuse_status
            self._answer(status, {"errorMessage": "Too many streams"}, {"retry-after": "1"})
            return
        self.close_connection = True
        stream = _Stream(account)
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        with owner.lock:
            owner.connections += 1
            owner.streams.append(stream)
        try:
            first = owner.heartbeat(account, stream)
            if first is not None:
                self._chunk(first)
            while True:
                try:
                    item = stream.lines.get(timeout=owner.heartbeat_every)
                except queue.Empty:
                    item = None if stream.muted else owner.heartbeat(account, stream)
                if item is _CLOSE:
                    break
                if item is not None and not stream.muted:
                    self._chunk(item)
            self.wfile.write(b"0\r\n\r\n")
        finally:
            with owner.lock:
                if stream in owner.streams:
                    owner.streams.remove(stream)

    def _chunk(self, line: str) -> None:
        data = line.encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: OandaStreamServer, tls: ssl.SSLContext) -> None:
        self.owner = owner
        self.tls = tls
        super().__init__((owner.host, owner.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed handshake is expected (pinning tests): counted by the client side."""


class OandaStreamServer(Served):
    """Serves an OANDA :class:`~securetrade.sim.brokers.BrokerSimulator`'s transaction
    stream on 127.0.0.1, in threads of its own."""

    def __init__(
        self,
        sim: Broker,
        *,
        certificates: Certificates | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_every: float = 0.2,
    ) -> None:
        self.sim = sim
        self.oanda: OandaDialect = sim.dialect
        self.certificates = certificates or make_certificates()
        self.host = host
        self.port = port
        self.heartbeat_every = heartbeat_every
        self.faults = WsFaults()
        self.lock = threading.Lock()
        self.streams: list[_Stream] = []
        self.connections = 0
        self.requests = 0
        self.refused = 0
        self._held: list[tuple[_Stream, str]] = []
        self._counter = itertools.count(1)
        self._engine: queue.Queue[tuple[str, SimOrder | None, Any] | None] = queue.Queue()
        self._server = _Server(self, server_context(self.certificates))
        self.port = self._server.server_address[1]
        self._threads: list[threading.Thread] = []
        self._closer_stop = threading.Event()

    @property
    def user_url(self) -> str:
        """The stream's URL with ``{account}`` for the client to fill in."""
        return f"{self.base_url}/v3/accounts/{{account}}/transactions/stream"

    def start(self) -> OandaStreamServer:
        self.oanda.transaction_listeners.append(self._on_transaction)
        self.sim.market.listeners.append(self._on_market)
        for target, name in (
            (self._server.serve_forever, "securetrade-sim-oanda-stream"),
            (self._record_engine, "securetrade-sim-oanda-fills"),
            (self._closer, "securetrade-sim-oanda-closer"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.oanda.transaction_listeners.remove(self._on_transaction)
        with contextlib.suppress(ValueError):
            self.sim.market.listeners.remove(self._on_market)
        self._closer_stop.set()
        self._engine.put(None)
        self.expire_all()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    # --- faults that act on connections ---------------------------------------------------

    def mute(self) -> None:
        """The open streams stay open but write nothing more, not even heartbeats."""
        with self.lock:
            for stream in self.streams:
                stream.muted = True

    def expire_all(self) -> None:
        """End every open stream, as the venue does at its connection age limit."""
        with self.lock:
            for stream in self.streams:
                stream.lines.put(_CLOSE)

    def _closer(self) -> None:
        while not self._closer_stop.is_set():
            every = self.faults.close_every
            time.sleep(every if every else 0.05)
            if every:
                self.expire_all()

    # --- transactions -------------------------------------------------------------------

    def heartbeat(self, account: str, stream: _Stream) -> str | None:
        """A heartbeat naming the account's last transaction, or None while a transaction
        line is still queued for ``stream`` (a heartbeat must not run ahead of the lines:
        the transactions are queued under the same lock)."""
        moment = datetime.fromtimestamp(self.oanda.now_ms() / 1000, tz=timezone.utc)
        with self.oanda._book_lock:
            if not stream.lines.empty():
                return None
            last = self.oanda.book(account).last
        return json.dumps({"type": "HEARTBEAT", "lastTransactionID": last, "time": stamp(moment)})

    def _on_transaction(self, account: str, transaction: dict[str, Any]) -> None:
        """Dialect listener (under its book lock): the line goes to the account's streams."""
        line = json.dumps(transaction)
        faults = self.faults
        with self.lock:
            for stream in self.streams:
                if stream.account != account or stream.muted:
                    continue
                number = next(self._counter)
                if number in faults.drop:
                    continue
                if number in faults.reorder:
                    self._held.append((stream, line))
                    continue
                for _ in range(2 if number in faults.duplicate else 1):
                    stream.lines.put(line)
                held, self._held = self._held, []
                for other, late in held:
                    other.lines.put(late)

    def _on_market(
        self, what: str, order: SimOrder | None, detail: tuple[object, ...] | None
    ) -> None:
        """Engine listener (under the market lock): a fill, cancel or withdrawal is recorded
        as a transaction by another thread, which may take the dialect's book lock."""
        if what == "WITHDRAWAL" or (order is not None and what in ("TRADE", "CANCELED", "EXPIRED")):
            self._engine.put((what, order, detail))

    def _record_engine(self) -> None:
        dialect = self.oanda
        while True:
            item = self._engine.get()
            if item is None:
                return
            what, order, detail = item
            with dialect._book_lock:
                if what == "WITHDRAWAL":  # money out: a negative TRANSFER_FUNDS
                    _asset, amount, account = detail
                    book = dialect.book(str(account))
                    reason = "CLIENT_FUNDING"
                    dialect._record(
                        book, "TRANSFER_FUNDS", amount=f"-{amount}", fundingReason=reason
                    )
                    continue
                assert order is not None
                book = dialect.book(order.account)
                if what == "TRADE" and order.status == "FILLED":
                    dialect._fill_of(order, book)
                elif what in ("CANCELED", "EXPIRED") and order.order_id in book.created:
                    reason = "CLIENT_REQUEST" if what == "CANCELED" else "TIME_IN_FORCE_EXPIRED"
                    dialect._cancel_record(order, book, reason)
