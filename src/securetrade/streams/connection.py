"""One pinned WebSocket connection at a time, kept up: backoff, staleness, venue age limit.

:class:`Connector` owns the socket. It dials with the client's pinned TLS context (the pins
are checked inside the handshake, before the HTTP upgrade, so a wrong server receives no
byte of ours), authenticates through the dialect, and hands every frame to ``on_frame``.
When the socket closes, goes quiet past ``stale_after`` without answering a probe, or
reaches the venue's connection age, it reports a gap through ``on_gap`` and dials again
after a full-jitter backoff no shorter than the venue's minimum.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from ..errors import AuthenticationRejected, ConnectFailed, SecureTradeError
from ..transport.http import security_refusal
from ..transport.redaction import redact_text

__all__ = ["Backoff", "Connector"]

log = logging.getLogger("securetrade.streams")


class _WholeFramesOnly(logging.Filter):
    """Drops the websockets library's log line of a frame whose middle it elided (``...``):
    the cut can fall inside a token, leaving a piece no redaction can recognise. The
    Connector logs every frame it sends or receives whole, and redacted, itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text[:2] in ("> ", "< ") and "..." in text)


class _FrameSizesOnly(logging.Filter):
    """The wire log shows each data frame's kind and size, never its bytes: websockets
    would print a frame's head and tail, and Alpaca's auth frame ends with the secret.
    The connector logs frames itself, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], Frame):
            frame = args[0]
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                record.args = (f"{frame.opcode.name} [{len(frame.data)} bytes]", *args[1:])
        elif isinstance(record.msg, str):  # already rendered (the redacting record factory)
            record.msg = _DATA_FRAME.sub(r"\g<head> \g<size>", record.msg)
        return True


_DATA_FRAME = re.compile(r"^(?P<head>[<>] (?:TEXT|BINARY|CONT)) .*(?P<size>\[\d+ bytes\])$", re.S)
WIRE = logging.getLogger("securetrade.streams.wire")  # the websockets library's own frame log
WIRE.addFilter(_FrameSizesOnly())  # data frames as sizes ...
WIRE.addFilter(_WholeFramesOnly())  # ... and any line still cut short is dropped


_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _DirectConnection(ClientConnection):
    """A client connection that hands each whole data message to ``sink`` from the
    protocol's own callback, once ``sink`` is set (after the subscription is confirmed).

    Awaiting ``recv()`` in a reading task costs a task switch per message before any
    parsing starts; delivered here, the consumer is woken one event-loop turn sooner.
    A message is delivered here only while nothing is waiting in the connection's own
    queue (a fragmented message, frames from before ``sink`` was set): those are read by
    ``recv()`` first, so every message still arrives in order, through one path or the
    other. A ``sink`` that raises gets the error kept in ``failure`` and the connection
    closed, so the reading task ends and re-raises it where a ``recv()`` loop would have.
    """

    sink: Callable[[str | bytes], None] | None = None
    failure: BaseException | None = None
    closing: asyncio.Task[None] | None = None

    def process_event(self, event: Event) -> None:
        if self.failure is not None and isinstance(event, Frame) and event.opcode in _DATA:
            return  # the stream is ending on the sink's error: nothing after it is handled
        sink = self.sink
        if (
            sink is None
            or not isinstance(event, Frame)
            or not event.fin
            or event.opcode not in (Opcode.TEXT, Opcode.BINARY)
            or len(getattr(self.recv_messages, "frames", (None,)))  # queued: recv() first
        ):
            super().process_event(event)
            return
        payload = bytes(event.data)
        data: str | bytes = payload
        if event.opcode is Opcode.TEXT:
            try:
                data = payload.decode("utf-8")
            except UnicodeDecodeError:  # the library's own path refuses it (close 1007)
                super().process_event(event)
                return
        try:
            sink(data)
        except Exception as exc:  # kept, and raised by the reading task
            self.sink = None
            self.failure = exc
            self.closing = self.loop.create_task(self.close())


@dataclass(slots=True)
class Backoff:
    """Full-jitter exponential backoff with a floor: ``uniform(0, min(cap, base * 2**n))``,
    never below ``floor`` (the venue's minimum between connection attempts)."""

    floor: float
    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next(self, at_least: float = 0.0) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return max(self.floor, at_least, random.uniform(0.0, ceiling))  # noqa: S311 (jitter)

    def reset(self) -> None:
        self.attempt = 0


class Connector:
    """Keeps one authenticated connection to ``url`` up until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext | None,
        *,
        on_frame: Callable[[Any], None],
        on_gap: Callable[[str, str], Awaitable[None]],
        on_fatal: Callable[[SecureTradeError], Awaitable[None]],
        auth: Callable[[], Sequence[str | bytes] | Awaitable[Sequence[str | bytes]]] | None,
        check_auth: Callable[[Any], bool] | None,
        probe: Callable[[], str | None],
        backoff: Backoff,
        stale_after: float,
        probe_timeout: float,
        max_age: float,
        decode: Callable[[str | bytes], Any] | None = None,
        redact: Callable[[str | bytes], str] | None = None,
        refusal_floor: Mapping[int, float] | None = None,
    ) -> None:
        self.url = url
        self._decode = decode or _decode
        self._redact = redact or _redact
        self._refusal_floor = refusal_floor or {}
        self._context = context
        self._on_frame = on_frame
        self._on_gap = on_gap
        self._on_fatal = on_fatal
        self._auth = auth
        self._check_auth = check_auth
        self._probe = probe
        self.backoff = backoff
        self.stale_after = stale_after
        self.probe_timeout = probe_timeout
        self.max_age = max_age
        self.connected = asyncio.Event()
        self.connections = 0
        self._stopping = False
        self._socket: ClientConnection | None = None
        self._lost = ("closed", "the connection closed")
        self._last = 0.0

    @property
    def healthy(self) -> bool:
        return self.connected.is_set()

    async def run(self) -> None:
        """Dial, read, and dial again, until stopped or a fatal error."""
        first = True
        while not self._stopping:
            delay = 0.0
            self._lost = ("closed", "the connection closed")
            try:
                await self._session(first)
            except asyncio.CancelledError:
                raise
            except SecureTradeError as exc:
                await self._on_fatal(exc)
                return
            except InvalidStatus as exc:  # refused at the upgrade: 429, 406, 503 ...
                retry = exc.response.headers.get("Retry-After", "0")
                delay = float(retry) if retry.isdigit() else 0.0
                status = exc.response.status_code
                delay = max(delay, self._refusal_floor.get(status, 0.0))
                log.warning("stream %s refused the connection (HTTP %s)", self._safe_url(), status)
            except (
                OSError,
                ConnectionClosed,
                InvalidHandshake,
                asyncio.TimeoutError,
            ) as exc:
                refusal = security_refusal(exc)
                if refusal is not None:  # pins or certificate: never retried
                    await self._on_fatal(refusal)
                    return
                log.info("stream %s lost: %s", self._safe_url(), type(exc).__name__)
            except Exception as exc:  # anything else would end the stream in silence
                await self._on_fatal(
                    ConnectFailed(
                        f"the stream to {self._safe_url()} failed ({type(exc).__name__}); "
                        "check stream_url and the venue's status, then watch again"
                    )
                )
                return
            finally:
                was_up = self.connected.is_set()
                self.connected.clear()
                self._socket = None
            if self._stopping:
                return
            if was_up:  # tell the consumer at once; reconcile over REST while down
                await self._on_gap(*self._lost)
            if self.connections > 0:
                first = False
            await asyncio.sleep(self.backoff.next(delay))

    async def _session(self, first: bool) -> None:
        async with connect(
            self.url,
            ssl=self._context,
            proxy=None,  # never an environment proxy: the pinned path is the only path
            compression=None,
            open_timeout=10,
            ping_interval=10,
            ping_timeout=10,
            max_queue=256,
            close_timeout=2,
            logger=WIRE,
            create_connection=_DirectConnection,
        ) as socket:
            self._socket = socket
            if self._auth is not None:
                await self._authenticate(socket)
            self.connections += 1
            self.connected.set()
            if not first:
                await self._on_gap("reconnect", "the connection was re-established")
            self.backoff.reset()
            self._last = time.monotonic()
            watchdog = asyncio.get_running_loop().create_task(self._watch(socket))
            direct = socket if isinstance(socket, _DirectConnection) else None
            if direct is not None:  # from now on, messages come to _received as they arrive
                direct.sink = self._received
            try:
                # what the sink cannot take (queued before it was set, fragmented) comes here
                async for text in socket:  # no timer per frame: the watchdog keeps time
                    self._received(text)
            finally:
                watchdog.cancel()
                if direct is not None:
                    direct.sink = None
                    failure, direct.failure = direct.failure, None
                    if failure is not None:  # the sink's error, not the close it caused
                        raise failure

    async def _watch(self, socket: ClientConnection) -> None:
        """Closes the socket when it reaches the venue's age limit, or when it has been
        silent past ``stale_after`` and does not answer a probe within ``probe_timeout``
        (pings may still be answered: a mute data path is stale all the same)."""
        opened = time.monotonic()
        tick = max(0.01, min(self.stale_after, self.probe_timeout or self.stale_after) / 2)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - opened >= self.max_age:
                self._lost = ("age", "the venue's connection age limit")
                break
            if now - self._last < self.stale_after:
                continue
            probe = self._probe()
            if probe is None:
                self._lost = ("stale", f"no frame in {self.stale_after} s")
                break
            asked = time.monotonic()
            await socket.send(probe)
            await asyncio.sleep(self.probe_timeout)
            if self._last < asked:
                silent = self.stale_after + self.probe_timeout
                self._lost = ("stale", f"no frame in {silent} s, probe unanswered")
                break
        await socket.close()

    async def _authenticate(self, socket: ClientConnection) -> None:
        assert self._auth is not None
        assert self._check_auth is not None
        made = self._auth()
        frames = list(await made if inspect.isawaitable(made) else made)  # Kraken: a token
        made = []
        try:
            while frames:
                frame = frames.pop(0)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("stream send %s", self._redact(frame))
                await socket.send(frame, text=True)  # bytes too: every venue here speaks text
                frame = ""
        finally:  # a frame may carry a token: none is left in a traceback's locals
            frames.clear()
            frame = ""
        deadline = time.monotonic() + 10.0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectFailed("the venue did not answer the stream subscription in 10 s")
            text = await asyncio.wait_for(socket.recv(), remaining)
            frame = self._decode(text)
            try:
                if self._check_auth(frame):
                    return
            except AuthenticationRejected:
                raise
            self._on_frame(frame)

    def _received(self, text: str | bytes) -> None:
        self._last = time.monotonic()
        frame = self._decode(text)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stream recv %s", self._redact(text))
        self._on_frame(frame)

    def _safe_url(self) -> str:
        return redact_text(self.url)

    async def stop(self) -> None:
        self._stopping = True
        socket = self._socket
        if socket is not None:
            await socket.close()

    async def send(self, frames: list[str]) -> None:
        """Send ``frames`` on the current socket, if there is one (a resubscription)."""
        socket = self._socket
        if socket is None:
            return
        for frame in frames:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("stream send %s", self._redact(frame))
            await socket.send(frame)

    async def drop(self) -> None:
        """Close the current socket (a stale subscription): :meth:`run` dials again."""
        socket = self._socket
        if socket is not None:
            await socket.close()


def _redact(frame: str | bytes) -> str:
    return redact_text(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))


def _decode(text: str | bytes) -> Any:
    # The C scanner json.loads ends in, called directly for the frames venues send (an
    # object, no blank around it): json.loads' own steps around it (the type and BOM
    # tests, the blanks skipped by regex either side) were a fifth of decoding one.
    # Anything else, or anything it refuses, goes through json.loads as before.
    # A frame nested deeper than json recurses raises RecursionError, not ValueError: no
    # JSON to us either (the stream goes on), where it ended the stream as fatal.
    if type(text) is str and text[:1] == "{":
        try:
            value, end = _scan(text, 0)
        except (StopIteration, ValueError):
            pass
        except RecursionError:
            return None
        else:
            if end == len(text):
                return value
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # its context (typeshed TODO)
