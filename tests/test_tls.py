"""Pinned TLS end to end: real sockets on 127.0.0.1, certificates generated per test.

Every refusal is checked twice: the client sees the right error, and the server counts zero
application bytes (it did see the connection, so zero means "nothing was sent", not "nobody
came").
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import gc
import hashlib
import os
import secrets
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from loops import NoReaderLoop
from securetrade import Client
from securetrade.errors import InvalidRequest, LocalRefusal, PinMismatch, UntrustedServer
from securetrade.sim import Simulator
from securetrade.sim.binance import SimResponse
from securetrade.sim.certs import Certificates, make_certificates
from securetrade.sim.server import HttpsServer
from securetrade.transport.aio import AsyncHttpTransport
from securetrade.transport.base import HttpRequest, HttpResponse, TransportFailure
from securetrade.transport.http import HttpTransport, check_base_url
from securetrade.transport.tls import (
    PinFailure,
    PinSet,
    pin_of_certificate,
    pinned_ssl_context,
    verified_ssl_context,
)
from securetrade.transport.via_httpx import AsyncHttpxTransport, HttpxTransport

HOST = "127.0.0.1"
REQUEST = HttpRequest("GET", "/x")


# --- certificates ----------------------------------------------------------------------------


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def pin_of_pem(pem: bytes) -> str:
    return pin_of_certificate(der_of(pem))


def backup_pin() -> str:
    """A well-formed pin of a key that does not exist yet."""
    return "sha256/" + base64.b64encode(os.urandom(32)).decode("ascii")


def certificates(
    ca: trustme.CA, leaf: trustme.LeafCert, *, extra_chain: tuple[bytes, ...] = ()
) -> Certificates:
    """What HttpsServer wants, from trustme output: leaf, then ``ca``, then ``extra_chain``."""
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return Certificates(
        ca_pem=ca.cert_pem.bytes().decode("ascii"),
        cert_pem=chain + ca.cert_pem.bytes() + b"".join(extra_chain),
        key_pem=leaf.private_key_pem.bytes(),
        leaf_pin=pin_of_pem(leaf.cert_chain_pems[0].bytes()),
        ca_pin=pin_of_pem(ca.cert_pem.bytes()),
    )


def trusting(*cas: trustme.CA) -> str:
    """``cadata`` for a client that trusts every CA given (PEM text, not DER bytes)."""
    return "".join(ca.cert_pem.bytes().decode("ascii") for ca in cas)


def context(pins: list[str], *cas: trustme.CA, host: str = HOST) -> ssl.SSLContext:
    return pinned_ssl_context(PinSet({host: pins}), cadata=trusting(*cas))


# --- servers ---------------------------------------------------------------------------------


def ok_handler(
    method: str, target: str, headers: dict[str, str], body: bytes, client: str
) -> SimResponse:
    return SimResponse(200, {"content-type": "text/plain"}, b"ok")


@pytest.fixture
def serve() -> Iterator[Callable[[Certificates], HttpsServer]]:
    """Starts HttpsServers on 127.0.0.1; all are stopped at teardown."""
    started: list[HttpsServer] = []

    def start(certs: Certificates) -> HttpsServer:
        server = HttpsServer(ok_handler, certificates=certs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def genuine(ca: trustme.CA, serve: Callable[[Certificates], HttpsServer]) -> HttpsServer:
    """The genuine venue: a leaf for 127.0.0.1 signed by ``ca``."""
    return serve(certificates(ca, ca.issue_cert(HOST)))


def settle(handshakes: Callable[[], int], minimum: int = 1, timeout: float = 5.0) -> int:
    """Wait (bounded) until the server saw ``minimum`` handshakes (completed or failed), then
    a little longer so that a client that did write a request would have it counted."""
    deadline = time.monotonic() + timeout
    while handshakes() < minimum and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    return handshakes()


def assert_nothing_sent(server: HttpsServer) -> None:
    seen = settle(lambda: sum(server.handshakes))
    assert seen >= 1, "the client never reached the server: zero bytes would prove nothing"
    assert server.bytes_received == 0


# --- clients ---------------------------------------------------------------------------------


def send_sync(base_url: str, ctx: ssl.SSLContext | None, **kwargs: Any) -> HttpResponse:
    transport = HttpTransport(base_url, ctx, timeout=5.0, **kwargs)
    try:
        return transport.send(REQUEST)
    finally:
        transport.close()


def send_async(base_url: str, ctx: ssl.SSLContext | None, **kwargs: Any) -> HttpResponse:
    async def main() -> HttpResponse:
        transport = AsyncHttpTransport(base_url, ctx, timeout=5.0, **kwargs)
        try:
            return await transport.send(REQUEST)
        finally:
            await transport.aclose()

    return asyncio.run(main())


def send_async_streams(base_url: str, ctx: ssl.SSLContext | None, **kwargs: Any) -> HttpResponse:
    """The async transport on a loop without add_reader (as on Windows): asyncio's own
    TLS, the pins checked by the context's SSLObject class."""

    async def main() -> HttpResponse:
        transport = AsyncHttpTransport(base_url, ctx, timeout=5.0, **kwargs)
        try:
            return await transport.send(REQUEST)
        finally:
            await transport.aclose()

    loop = NoReaderLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def send_httpx_sync(base_url: str, ctx: ssl.SSLContext | None, **kwargs: Any) -> HttpResponse:
    with HttpxTransport(base_url, ctx, timeout=5.0, **kwargs) as transport:
        return transport.send(REQUEST)


def send_httpx_async(base_url: str, ctx: ssl.SSLContext | None, **kwargs: Any) -> HttpResponse:
    async def main() -> HttpResponse:
        transport = AsyncHttpxTransport(base_url, ctx, timeout=5.0, **kwargs)
        try:
            return await transport.send(REQUEST)
        finally:
            await transport.aclose()

    return asyncio.run(main())


Send = Callable[..., HttpResponse]
SENDERS = {
    "sync": send_sync,
    "async": send_async,
    "async-streams": send_async_streams,
    "httpx-sync": send_httpx_sync,
    "httpx-async": send_httpx_async,
}


@pytest.fixture(params=list(SENDERS))
def send(request: pytest.FixtureRequest) -> Send:
    return SENDERS[request.param]


# --- the right pin ---------------------------------------------------------------------------


def test_leaf_pin_with_backup_passes(send: Send, ca: trustme.CA, genuine: HttpsServer) -> None:
    ctx = context([genuine.certificates.leaf_pin, backup_pin()], ca)

    response = send(genuine.base_url, ctx)

    assert response.status == 200
    assert response.body == b"ok"
    assert genuine.bytes_received > 0  # the counter the refusal tests rely on does count


def test_ca_pin_survives_leaf_key_rotation(
    send: Send, ca: trustme.CA, serve: Callable[[Certificates], HttpsServer]
) -> None:
    before = serve(certificates(ca, ca.issue_cert(HOST)))
    after = serve(certificates(ca, ca.issue_cert(HOST)))
    assert before.certificates.leaf_pin != after.certificates.leaf_pin
    pins = [before.certificates.ca_pin, backup_pin()]
    ctx = context(pins, ca)

    assert send(before.base_url, ctx).status == 200
    assert send(after.base_url, ctx).status == 200


def test_make_certificates_pins_pass(
    send: Send, serve: Callable[[Certificates], HttpsServer]
) -> None:
    server = serve(make_certificates())
    ctx = pinned_ssl_context(PinSet(server.pins), cadata=server.ca_pem)

    assert send(server.base_url, ctx).status == 200


# --- the wrong pin ---------------------------------------------------------------------------


def test_unrelated_pins_raise_pin_mismatch_and_send_nothing(
    send: Send, ca: trustme.CA, genuine: HttpsServer
) -> None:
    other = trustme.CA()
    other_leaf = other.issue_cert(HOST)
    pins = [pin_of_pem(other_leaf.cert_chain_pems[0].bytes()), pin_of_pem(other.cert_pem.bytes())]
    ctx = context(pins, ca)  # trust is fine: only the pins are wrong

    with pytest.raises(PinMismatch) as caught:
        send(genuine.base_url, ctx)

    assert type(caught.value) is PinMismatch
    assert isinstance(caught.value, LocalRefusal)
    assert not isinstance(caught.value, (TransportFailure, httpx.HTTPError))
    assert HOST in str(caught.value)
    assert_nothing_sent(genuine)


def test_rogue_but_trusted_ca_is_refused(
    send: Send,
    ca: trustme.CA,
    genuine: HttpsServer,
    serve: Callable[[Certificates], HttpsServer],
) -> None:
    rogue = trustme.CA()
    impostor = serve(certificates(rogue, rogue.issue_cert(HOST)))
    ctx = context([genuine.certificates.leaf_pin, backup_pin()], ca, rogue)

    assert send(genuine.base_url, ctx).status == 200  # same context, genuine server: fine
    with pytest.raises(PinMismatch):
        send(impostor.base_url, ctx)

    assert_nothing_sent(impostor)


def _sent_and_verified_chains(port: int, cadata: str) -> tuple[list[bytes], list[bytes]]:
    plain = ssl.create_default_context(cadata=cadata)
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        plain.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        if sys.version_info >= (3, 13):
            sent = tls.get_unverified_chain()
            verified = tls.get_verified_chain()
            return [bytes(c) for c in sent], [bytes(c) for c in verified]
        inner = tls._sslobj
        der = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
        return (
            [c.public_bytes(der) for c in inner.get_unverified_chain()],
            [c.public_bytes(der) for c in inner.get_verified_chain()],
        )


def test_chain_stuffing_with_genuine_ca_is_refused(
    send: Send, ca: trustme.CA, serve: Callable[[Certificates], HttpsServer]
) -> None:
    rogue = trustme.CA()
    stuffed = serve(certificates(rogue, rogue.issue_cert(HOST), extra_chain=(ca.cert_pem.bytes(),)))
    genuine_ca_der = der_of(ca.cert_pem.bytes())
    # The attack is real: the genuine CA is on the wire, but not in the verified chain.
    sent, verified = _sent_and_verified_chains(stuffed.port, trusting(ca, rogue))
    assert genuine_ca_der in sent
    assert genuine_ca_der not in verified
    handshakes_before = sum(stuffed.handshakes)
    ctx = context([pin_of_pem(ca.cert_pem.bytes()), backup_pin()], ca, rogue)

    with pytest.raises(PinMismatch):
        send(stuffed.base_url, ctx)

    assert settle(lambda: sum(stuffed.handshakes), handshakes_before + 1) > handshakes_before
    assert stuffed.bytes_received == 0


# --- normal verification stays on -----------------------------------------------------------


def _refused_although_pinned(
    send: Send, ca: trustme.CA, server: HttpsServer
) -> TransportFailure | UntrustedServer:
    ctx = context([server.certificates.leaf_pin, server.certificates.ca_pin], ca)
    with pytest.raises((TransportFailure, UntrustedServer)) as caught:
        send(server.base_url, ctx)
    assert_nothing_sent(server)
    assert server.handshakes[1] >= 1  # the handshake itself failed
    return caught.value


def test_expired_certificate_is_refused_even_with_matching_pin(
    send: Send, ca: trustme.CA, serve: Callable[[Certificates], HttpsServer]
) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = ca.issue_cert(
        HOST,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    assert (
        x509.load_pem_x509_certificate(expired.cert_chain_pems[0].bytes()).not_valid_after_utc < now
    )
    server = serve(certificates(ca, expired))

    error = _refused_although_pinned(send, ca, server)

    # A CA-verification failure is a security refusal, never retried like a lost connection.
    assert type(error) is UntrustedServer


def test_wrong_hostname_is_refused_even_with_matching_pin(
    send: Send, ca: trustme.CA, serve: Callable[[Certificates], HttpsServer]
) -> None:
    server = serve(certificates(ca, ca.issue_cert("example.org")))

    error = _refused_although_pinned(send, ca, server)

    assert type(error) is UntrustedServer


# --- TLS 1.2 minimum -------------------------------------------------------------------------


class LegacyTlsServer:
    """Accepts connections one at a time with ``tls``; counts bytes after the handshake."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self._tls = tls
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        self.bytes_received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    tls = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    self.handshakes_failed += 1
                    continue
                self.handshakes_ok += 1
                with tls:
                    try:
                        while data := tls.recv(4096):
                            self.bytes_received += len(data)
                    except (ssl.SSLError, OSError):
                        pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def tls11_server(ca: trustme.CA) -> Iterator[LegacyTlsServer]:
    leaf = ca.issue_cert(HOST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            server_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            server_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError) as exc:
            pytest.skip(f"this OpenSSL cannot configure a TLS 1.1 server: {exc}")
    leaf.configure_cert(server_ctx)
    server = LegacyTlsServer(server_ctx)
    yield server
    server.stop()


def test_tls_1_1_server_is_refused(
    send: Send, ca: trustme.CA, tls11_server: LegacyTlsServer
) -> None:
    # Control: the server does speak TLS 1.1 to a client that allows it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(legacy)
        try:
            legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
            legacy.minimum_version = ssl.TLSVersion.TLSv1_1
            with (
                socket.create_connection((HOST, tls11_server.port), timeout=5) as raw,
                legacy.wrap_socket(raw, server_hostname=HOST) as tls,
            ):
                version = tls.version()
        except (ValueError, ssl.SSLError, OSError) as exc:
            pytest.skip(f"this OpenSSL will not negotiate TLS 1.1: {exc}")
    assert version == "TLSv1.1"
    assert settle(lambda: tls11_server.handshakes_ok) == 1
    received_by_control = tls11_server.bytes_received
    leaf_pin = pin_of_pem(ca.issue_cert(HOST).cert_chain_pems[0].bytes())
    ctx = context([pin_of_pem(ca.cert_pem.bytes()), leaf_pin], ca)  # the CA pin matches

    with pytest.raises(TransportFailure) as caught:
        send(f"https://{HOST}:{tls11_server.port}", ctx)

    assert caught.value.sent is False
    assert settle(lambda: tls11_server.handshakes_failed) >= 1
    assert tls11_server.handshakes_ok == 1  # only the control
    assert tls11_server.bytes_received == received_by_control


def test_pinned_context_requires_tls_1_2() -> None:
    ctx = pinned_ssl_context(PinSet({HOST: [backup_pin(), backup_pin()]}))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True


# --- through an HTTP CONNECT proxy -----------------------------------------------------------


class ConnectProxy:
    """A minimal threaded HTTP CONNECT relay that tunnels to 127.0.0.1 only."""

    def __init__(self) -> None:
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.tunnels: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._tunnel, args=(client,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5.0)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 16384:
                    chunk = client.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                head, _, rest = head.partition(b"\r\n\r\n")
                parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                if len(parts) != 3 or parts[0] != "CONNECT":
                    client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                host, _, port = parts[1].rpartition(":")
                if host != HOST:
                    client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                    return
                upstream = socket.create_connection((host, int(port)), timeout=5.0)
            except (OSError, ValueError):
                return
            with upstream:
                self.tunnels.append(parts[1])
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                self._relay(client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._stop.is_set():
            readable, _, _ = select.select([a, b], [], [], 0.1)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
                except OSError:
                    return

    def stop(self) -> None:
        self._stop.set()
        self._accepter.join(timeout=5)
        self._listener.close()
        for worker in self._threads:
            worker.join(timeout=5)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    relay = ConnectProxy()
    yield relay
    relay.stop()


def test_right_pin_through_connect_proxy(
    send: Send, ca: trustme.CA, genuine: HttpsServer, proxy: ConnectProxy
) -> None:
    ctx = context([genuine.certificates.leaf_pin, backup_pin()], ca)

    response = send(genuine.base_url, ctx, proxy=proxy.url)

    assert response.status == 200
    assert proxy.tunnels == [f"{HOST}:{genuine.port}"]


def test_wrong_pin_through_connect_proxy(
    send: Send, ca: trustme.CA, genuine: HttpsServer, proxy: ConnectProxy
) -> None:
    ctx = context([backup_pin(), backup_pin()], ca)

    with pytest.raises(PinMismatch):
        send(genuine.base_url, ctx, proxy=proxy.url)

    assert proxy.tunnels == [f"{HOST}:{genuine.port}"]
    assert_nothing_sent(genuine)


# --- environment proxies are ignored ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def hostile_proxy_env(monkeypatch: pytest.MonkeyPatch) -> str:
    dead = f"http://{HOST}:{_closed_port()}"
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return dead


def test_environment_proxies_are_ignored(
    send: Send, ca: trustme.CA, genuine: HttpsServer, hostile_proxy_env: str
) -> None:
    ctx = context([genuine.certificates.leaf_pin, backup_pin()], ca)
    # Control: a client that honours the environment cannot get through.
    with (
        pytest.raises((httpx.ProxyError, httpx.ConnectError)),
        httpx.Client(verify=ctx, trust_env=True, timeout=5.0) as honouring,
    ):
        honouring.get(genuine.base_url + "/x")

    response = send(genuine.base_url, ctx)

    assert response.status == 200
    assert genuine.bytes_received > 0


# --- trust and key logs come from the caller, never the environment -------------------------


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "attacker-ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return path


def _hashed_ca_dir(ca_file: Path, tmp_path: Path) -> Path:
    """A ``c_rehash``-style directory holding ``ca_file`` (OpenSSL's subject hash name)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to name a CA directory entry")
    digest = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(ca_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    directory = tmp_path / "attacker-ca-dir"
    directory.mkdir()
    shutil.copy(ca_file, directory / f"{digest}.0")
    return directory


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_ca_from_ssl_cert_environment_is_not_trusted(
    send: Send,
    genuine: HttpsServer,
    ca_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """Whoever sets the bot's environment must not add a CA: without cafile/cadata only the
    platform's store is trusted, pinned or not (the server's CA is in neither)."""
    value = ca_file if variable == "SSL_CERT_FILE" else _hashed_ca_dir(ca_file, tmp_path)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(value))
    pinned = pinned_ssl_context(PinSet({HOST: [genuine.certificates.leaf_pin, backup_pin()]}))
    for ctx in (pinned, verified_ssl_context(), None):  # None: the transport's default
        with pytest.raises(UntrustedServer):
            send(genuine.base_url, ctx)
    assert_nothing_sent(genuine)
    # Control: the same CA given by the caller is trusted.
    assert send(genuine.base_url, verified_ssl_context(cafile=str(ca_file))).status == 200


def _key_log_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_no_tls_key_log_even_with_sslkeylogfile(
    send: Send,
    ca: trustme.CA,
    genuine: HttpsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(key_log))
    pinned = context([genuine.certificates.leaf_pin, backup_pin()], ca)
    unpinned = verified_ssl_context(cadata=trusting(ca))
    for ctx in (pinned, unpinned):
        assert ctx.keylog_filename is None
        assert send(genuine.base_url, ctx).status == 200
    assert _key_log_lines(key_log) == []


def test_unsafe_disable_pinning_writes_no_key_log_and_ignores_ssl_cert_file(
    sim: Simulator, server: HttpsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_log = tmp_path / "keys.log"
    ca_path = tmp_path / "sim-ca.pem"
    ca_path.write_text(server.ca_pem)
    monkeypatch.setenv("SSLKEYLOGFILE", str(key_log))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    key = sim.create_key()
    with Client(
        key,
        base_url=server.base_url,
        cadata=server.ca_pem,
        journal=":memory:",
        unsafe_disable_pinning=True,
    ) as client:
        assert client.server_time() > 0  # a real handshake happened
    assert _key_log_lines(key_log) == []
    with (
        Client(
            key, base_url=server.base_url, journal=":memory:", unsafe_disable_pinning=True
        ) as client,
        pytest.raises(UntrustedServer),
    ):
        client.server_time()  # the CA is only in SSL_CERT_FILE: not trusted
    with (
        Client(key, base_url=server.base_url, pins=server.pins, journal=":memory:") as client,
        pytest.raises(UntrustedServer),
    ):
        client.server_time()  # pinned, no cadata: the platform store, not SSL_CERT_FILE


# --- PinSet ----------------------------------------------------------------------------------


def test_pinset_needs_two_pins_unless_unsafe() -> None:
    pin = backup_pin()
    with pytest.raises(InvalidRequest):
        PinSet({HOST: [pin]})
    with pytest.raises(InvalidRequest):
        PinSet({HOST: [pin, pin]})  # a duplicate is not a backup
    assert PinSet({HOST: [pin]}, unsafe_single_pin=True).pins_for(HOST) == {pin}
    assert PinSet({HOST: [pin, backup_pin()]}).pins_for(HOST) >= {pin}


def test_pinset_needs_a_pattern() -> None:
    with pytest.raises(InvalidRequest):
        PinSet({})


@pytest.mark.parametrize(
    "bad",
    [
        "sha1/" + base64.b64encode(bytes(range(1, 1 + 32))).decode(),  # wrong prefix
        base64.b64encode(bytes(range(2, 2 + 32))).decode(),  # no prefix
        "SHA256/" + base64.b64encode(bytes(range(3, 3 + 32))).decode(),  # prefix is case-sensitive
        "sha256/" + base64.b64encode(bytes(range(4, 4 + 20))).decode(),  # SHA-1 sized
        "sha256/" + base64.b64encode(bytes(range(5, 5 + 33))).decode(),  # too long
        "sha256/" + base64.b64encode(bytes(range(6, 6 + 32))).decode().rstrip("="),  # no padding
        "sha256/" + "!" * 44,  # not base64
        "sha256/",  # empty
        "sha256/" + base64.urlsafe_b64encode(b"\xff" * 32).decode(),  # url-safe alphabet
    ],
)
def test_malformed_pins_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        PinSet({HOST: [bad, backup_pin()]})
    with pytest.raises(InvalidRequest):
        PinSet({HOST: [bad]}, unsafe_single_pin=True)


def test_pins_as_a_bare_string_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        PinSet({HOST: backup_pin()})


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("example.com", "example.com", True),
        ("example.com", "EXAMPLE.com.", True),
        ("example.com", "api.example.com", False),
        ("example.com", "badexample.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "API.Example.COM", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "api.example.com.evil.org", False),
        ("*.example.com", "apiexample.com", False),
        ("**.example.com", "example.com", True),
        ("**.example.com", "api.example.com", True),
        ("**.example.com", "a.b.c.example.com", True),
        ("**.example.com", "badexample.com", False),
        ("**.example.com", "example.com.evil.org", False),
        ("**.example.com", "example.org", False),
        ("Example.COM", "example.com", True),
    ],
)
def test_host_patterns(pattern: str, host: str, matches: bool) -> None:
    pins = {backup_pin(), backup_pin()}
    found = PinSet({pattern: pins}).pins_for(host)
    assert found == (pins if matches else frozenset())


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(labels=st.lists(_label, max_size=4))
def test_host_pattern_label_counts(labels: list[str]) -> None:
    host = ".".join([*labels, "example", "com"])
    pins = [backup_pin(), backup_pin()]
    table = PinSet({"example.com": pins[:1], "*.example.com": pins[1:]}, unsafe_single_pin=True)
    any_depth = PinSet({"**.example.com": pins})

    assert any_depth.pins_for(host) == set(pins)
    expected = {0: {pins[0]}, 1: {pins[1]}}.get(len(labels), set())
    assert table.pins_for(host) == expected


def test_patterns_union_their_pins() -> None:
    a, b, c, d = (backup_pin() for _ in range(4))
    pinset = PinSet({"api.example.com": [a, b], "**.example.com": [c, d]})
    assert pinset.pins_for("api.example.com") == {a, b, c, d}
    assert pinset.pins_for("www.example.com") == {c, d}


@pytest.fixture(scope="module")
def chain() -> tuple[list[bytes], str, str]:
    """A verified-looking chain (leaf DER, CA DER) and the two pins."""
    authority = trustme.CA()
    leaf = authority.issue_cert("api.example.com")
    leaf_der = der_of(leaf.cert_chain_pems[0].bytes())
    ca_der = der_of(authority.cert_pem.bytes())
    return [leaf_der, ca_der], pin_of_certificate(leaf_der), pin_of_certificate(ca_der)


def test_check_passes_on_any_chain_pin(chain: tuple[list[bytes], str, str]) -> None:
    ders, leaf_pin, ca_pin = chain
    PinSet({"api.example.com": [leaf_pin, backup_pin()]}).check(ders, "api.example.com")
    PinSet({"api.example.com": [ca_pin, backup_pin()]}).check(ders, "api.example.com")
    with pytest.raises(PinFailure) as caught:
        PinSet({"api.example.com": [backup_pin(), backup_pin()]}).check(ders, "api.example.com")
    assert caught.value.seen == [leaf_pin, ca_pin]
    assert caught.value.host == "api.example.com"


def test_unlisted_host_fails_closed(chain: tuple[list[bytes], str, str]) -> None:
    ders, leaf_pin, ca_pin = chain
    pinset = PinSet({"api.example.com": [leaf_pin, ca_pin]})
    with pytest.raises(PinFailure):
        pinset.check(ders, "www.example.com")
    with pytest.raises(PinFailure):
        pinset.check(ders, None)
    with pytest.raises(PinFailure):
        pinset.check([], "api.example.com")
    assert isinstance(PinFailure("h", []), ssl.SSLError)  # so stacks treat it as a TLS failure


def test_unlisted_host_fails_closed_on_the_wire(
    send: Send, ca: trustme.CA, genuine: HttpsServer
) -> None:
    pins = [genuine.certificates.leaf_pin, genuine.certificates.ca_pin]
    ctx = pinned_ssl_context(PinSet({"localhost": pins}), cadata=trusting(ca))

    with pytest.raises(PinMismatch):
        send(genuine.base_url, ctx)

    assert_nothing_sent(genuine)


def test_pin_of_certificate_is_spki_sha256(ca: trustme.CA) -> None:
    der = der_of(ca.issue_cert(HOST).cert_chain_pems[0].bytes())
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    expected = "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()

    assert pin_of_certificate(der) == expected
    assert pin_of_certificate(der_of(ca.cert_pem.bytes())) != expected


# --- check_base_url --------------------------------------------------------------------------


def test_https_is_allowed() -> None:
    assert check_base_url("https://api.example.com/") == "https://api.example.com"
    assert check_base_url("https://127.0.0.1:8443") == "https://127.0.0.1:8443"


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://127.0.0.1:8080",
        "http://localhost",
        "ftp://127.0.0.1",
        "ws://127.0.0.1",
        "api.example.com",
        "",
    ],
)
def test_anything_but_https_is_refused_by_default(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_base_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.1.2.3", "http://localhost:1", "http://[::1]:80"]
)
def test_plain_http_to_loopback_only_with_the_flag(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_base_url(url)
    assert check_base_url(url, unsafe_allow_plain_http=True) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.1",
        "http://192.168.1.1:8080",
        "http://[2001:db8::1]",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://127.0.0.1@example.com/",
        "http://",
        "ftp://127.0.0.1",
    ],
)
def test_plain_http_to_non_loopback_refused_even_with_the_flag(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_base_url(url, unsafe_allow_plain_http=True)


def test_transports_apply_check_base_url() -> None:
    ctx = pinned_ssl_context(PinSet({HOST: [backup_pin(), backup_pin()]}))
    with pytest.raises(InvalidRequest):
        HttpTransport("http://api.example.com", ctx)
    with pytest.raises(InvalidRequest):
        HttpTransport("http://127.0.0.1:1", ctx)
    with pytest.raises(InvalidRequest):
        AsyncHttpTransport("http://api.example.com", ctx, unsafe_allow_plain_http=True)


# --- the simulator's own hygiene -------------------------------------------------------------


def test_server_closes_its_tls_sockets(ca: trustme.CA, genuine: HttpsServer) -> None:
    ctx = context([genuine.certificates.leaf_pin, backup_pin()], ca)
    marker = f"laddr=('{HOST}', {genuine.port})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert send_sync(genuine.base_url, ctx).status == 200  # closes the client side
        deadline = time.monotonic() + 2.0
        leaked: list[str] = []
        while not leaked and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.05)
            leaked = [
                str(w.message)
                for w in caught
                if issubclass(w.category, ResourceWarning) and marker in str(w.message)
            ]
    assert leaked == []


# --- redaction -------------------------------------------------------------------------------


def test_request_repr_redacts_key_and_signature() -> None:
    key = secrets.token_urlsafe(48)  # shaped like a venue API key, random per run
    signature = secrets.token_hex(32)
    request = HttpRequest(
        "GET",
        f"/api/v3/account?timestamp=1499827319559&signature={signature}",
        headers=(("X-MBX-APIKEY", key), ("Accept", "application/json")),
        body=f"symbol=BTCUSDT&Signature={signature}".encode(),
    )

    for shown in (repr(request), str(request), f"{request!r}", repr([request])):
        assert key not in shown
        assert signature not in shown
        assert "timestamp=1499827319559" in shown  # only the secrets are masked
        assert "application/json" in shown
    assert signature in request.target  # the request itself is unchanged


def test_system_trust_is_read_at_the_first_handshake_and_still_enforced(
    send: Send, genuine: HttpsServer
) -> None:
    """Without cadata the system store is loaded lazily: nothing at construction (fast
    imports), all of it before the first certificate is checked. The test CA is not in the
    system store, so the right pin alone does not get a request through."""
    ctx = pinned_ssl_context(PinSet({HOST: [genuine.certificates.leaf_pin, backup_pin()]}))
    assert ctx.cert_store_stats()["x509_ca"] == 0
    with pytest.raises(UntrustedServer):
        send(genuine.base_url, ctx)
    assert_nothing_sent(genuine)
    bundle = ssl.get_default_verify_paths().cafile
    if bundle is not None and os.path.exists(bundle):
        assert ctx.cert_store_stats()["x509_ca"] > 0


def test_a_connection_reset_before_the_handshake_leaves_no_socket_behind() -> None:
    """CPython's ``SSLSocket._create`` takes the descriptor, then raises from its "connected?"
    probe when the peer has already reset, without closing what it made; the pinned
    context's socket class closes it (the httpx transport met this as a ResourceWarning)."""
    context = pinned_ssl_context(PinSet({HOST: [backup_pin(), backup_pin()]}))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sock = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
        # SO_LINGER 0: close() sends RST, not FIN
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()
        select.select([sock], [], [], 5)  # the reset has arrived
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            try:
                with pytest.raises(OSError):
                    context.wrap_socket(sock, server_hostname=HOST)
                gc.collect()
            finally:
                sock.close()
        assert sock.fileno() == -1
