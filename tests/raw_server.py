"""A raw-bytes TLS server for transport tests: each request is answered by a script of
steps (bytes, pauses, drips, closes), so a test can send any reply a venue, a proxy or a
man in the middle might, byte for byte, and count what the client sent."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from securetrade.sim.certs import Certificates

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Drip:
    """Send ``data`` one byte at a time, ``interval`` seconds apart."""

    data: bytes
    interval: float


@dataclass(frozen=True)
class Stream:
    """Send ``head``, then ``block`` again and again, up to ``total`` bytes, until the
    client stops reading (a body or a header that never ends)."""

    head: bytes
    block: bytes
    total: int


#: One step: bytes to send, seconds to sleep, "close", "shut_wr" (half-close), "rst"
#: (abort with a reset), a Drip or a Stream.
Step = bytes | float | str | Drip | Stream
#: What the server does for request ``index`` (its head given): the steps, in order.
Script = Callable[[int, bytes], Sequence[Step]]


def write_pem(certs: Certificates) -> tuple[str, str]:
    folder = tempfile.mkdtemp(prefix="st-raw-")
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as out:
        out.write(certs.cert_pem)
    with open(key_path, "wb") as out:
        out.write(certs.key_pem)
    return cert_path, key_path


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@dataclass
class RawServer:
    """Threaded; TLS unless ``tls=False``. ``before_tls`` steps run on the plain socket
    instead of a handshake (a server that is not TLS at all)."""

    certs: Certificates
    script: Script
    tls: bool = True
    before_tls: Sequence[Step] = ()
    stall: float = 0.0  # seconds after the handshake before reading anything
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    app_bytes: int = 0

    def __post_init__(self) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(*write_pem(self.certs))
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            worker = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10.0)
        with self._lock:
            self._sockets.append(raw)
        if self.before_tls:
            with raw:
                self._run(raw, self.before_tls)
            return
        conn: socket.socket = raw
        if self.tls:
            try:
                conn = self._context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                return
            with self._lock:
                self._sockets.append(conn)  # the same descriptor, now owned by ``conn``
        with conn:
            self._stop.wait(self.stall)
            buffer = b""
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                        with self._lock:
                            self.app_bytes += len(chunk)
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = _content_length(head)
                    while len(buffer) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                        with self._lock:
                            self.app_bytes += len(chunk)
                except OSError:
                    return
                buffer = buffer[length:]
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(head)
                if not self._run(conn, self.script(index, head)):
                    return

    def _run(self, conn: socket.socket, steps: Sequence[Step]) -> bool:
        """Play ``steps``; False once the connection is closed (or unusable)."""
        try:
            for step in steps:
                if isinstance(step, bytes):
                    conn.sendall(step)
                elif isinstance(step, float):
                    self._stop.wait(step)
                elif isinstance(step, Drip):
                    for byte in step.data:
                        conn.sendall(bytes([byte]))
                        self._stop.wait(step.interval)
                elif isinstance(step, Stream):
                    conn.sendall(step.head)
                    sent = 0
                    while sent < step.total and not self._stop.is_set():
                        conn.sendall(step.block)
                        sent += len(step.block)
                elif step == "close":
                    return False
                elif step == "shut_wr":
                    conn.shutdown(socket.SHUT_WR)
                elif step == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return False
                else:
                    raise AssertionError(f"unknown step {step!r}")
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Stop accepting, and wake every connection's thread (blocked in a read, a write
        or a pause) so that it ends now."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for worker in self._threads:
            worker.join(timeout=5)
