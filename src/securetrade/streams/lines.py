"""A stream of JSON lines over one long HTTPS response (OANDA's transaction stream).

:class:`LineConnector` is :class:`~securetrade.streams.connection.Connector`'s sibling for
venues that stream over chunked HTTP rather than a WebSocket. httpx does the HTTP: the
chunked framing and the line splitting (``aiter_lines``), over the client's pinned TLS
context, so the pins are checked in the handshake before the request (and its bearer
token) is written. The venue's numbered transactions make the stream checkable: a jump
in the ids, or a heartbeat naming a later id than the last one read, is a gap, and
:meth:`LineConnector.replay` reads what was missed from the venue's ``sinceid`` endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from ..errors import AuthenticationRejected, ConnectFailed, SecureTradeError
from ..transport.http import USER_AGENT, security_refusal
from ..transport.redaction import redact_url
from .connection import Backoff

__all__ = ["LineConnector"]

log = logging.getLogger("securetrade.streams")

Ids = Callable[[Any], tuple[int | None, int | None]]


class _Lost(Exception):
    """The stream ended or went silent; ``reason`` and ``detail`` say how."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class LineConnector:
    """Keeps one authenticated line stream from ``url`` up until :meth:`stop`."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext | None,
        *,
        on_frame: Callable[[Any], None],
        on_gap: Callable[[str, str], Awaitable[None]],
        on_fatal: Callable[[SecureTradeError], Awaitable[None]],
        headers: Callable[[], Sequence[tuple[str, str]]],
        ids: Ids,
        replay_url: str | None,
        backoff: Backoff,
        stale_after: float,
        max_age: float,
    ) -> None:
        self.url = url
        self._context = context
        self._on_frame = on_frame
        self._on_gap = on_gap
        self._on_fatal = on_fatal
        self._headers = headers
        self._ids = ids
        self.replay_url = replay_url
        self.backoff = backoff
        self.stale_after = stale_after
        self.max_age = max_age
        self.connected = asyncio.Event()
        self.connections = 0
        self.cursor: int | None = None  # the last transaction id read with none missing
        self._gapped = False
        self._stopping = False
        self._http: httpx.AsyncClient | None = None

    @property
    def healthy(self) -> bool:
        return self.connected.is_set()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                verify=self._context if self._context is not None else True,
                trust_env=False,  # never an environment proxy or CA bundle
                timeout=httpx.Timeout(10.0, read=None),  # reads: the staleness timer's
                headers={"User-Agent": USER_AGENT},
            )
        return self._http

    async def run(self) -> None:
        """Connect, read, and connect again, until stopped or a fatal error."""
        first = True
        while not self._stopping:
            delay = 0.0
            lost = ("closed", "the stream ended")
            try:
                delay = await self._session(first)
            except asyncio.CancelledError:
                raise
            except SecureTradeError as exc:
                await self._on_fatal(exc)
                return
            except _Lost as exc:
                lost = (exc.reason, exc.detail)
            except (httpx.HTTPError, OSError) as exc:
                refusal = security_refusal(exc)
                if refusal is not None:  # pins or certificate: never retried
                    await self._on_fatal(refusal)
                    return
                log.info("stream %s lost: %s", redact_url(self.url), type(exc).__name__)
            except Exception as exc:  # anything else would end the stream in silence
                await self._on_fatal(
                    ConnectFailed(
                        f"the stream from {redact_url(self.url)} failed ({type(exc).__name__}); "
                        "check stream_url and the venue's status, then watch again"
                    )
                )
                return
            finally:
                was_up = self.connected.is_set()
                self.connected.clear()
            if self._stopping:
                return
            if was_up:
                await self._on_gap(*lost)
            if self.connections > 0:
                first = False
            await asyncio.sleep(self.backoff.next(delay))

    async def _session(self, first: bool) -> float:
        """One response, read to its end; the Retry-After delay when refused."""
        client = self._client()
        async with client.stream("GET", self.url, headers=list(self._headers())) as response:
            status = response.status_code
            if status in (401, 403):
                raise AuthenticationRejected(
                    f"the venue refused the stream's token (HTTP {status}); check the token "
                    "and that it covers this account"
                )
            if status != 200:
                retry = response.headers.get("retry-after", "0")
                log.warning("stream %s refused (HTTP %s)", redact_url(self.url), status)
                if status in (404, 400):
                    raise ConnectFailed(
                        f"the venue has no stream at {redact_url(self.url)} (HTTP {status}); "
                        "check stream_url and the account id"
                    )
                return float(retry) if retry.isdigit() else 0.0
            self.connections += 1
            self.connected.set()
            if not first:
                await self._on_gap("reconnect", "the stream was re-established")
            self.backoff.reset()
            opened = time.monotonic()
            lines = response.aiter_lines()
            while True:
                try:
                    line = await asyncio.wait_for(lines.__anext__(), self.stale_after)
                except asyncio.TimeoutError:
                    raise _Lost("stale", f"no line in {self.stale_after} s") from None
                except StopAsyncIteration:
                    raise _Lost("closed", "the venue ended the stream") from None
                if line:
                    await self._deliver(line)
                if time.monotonic() - opened >= self.max_age:
                    raise _Lost("age", "the venue's connection age limit")

    async def _deliver(self, line: str) -> None:
        try:
            frame = json.loads(line)
        except ValueError:
            frame = None
        transaction, last = self._ids(frame)
        cursor = self.cursor
        if cursor is None:
            self.cursor = transaction if transaction is not None else last
        elif transaction is not None and transaction > cursor:
            if transaction == cursor + 1 and not self._gapped:
                self.cursor = transaction
            else:
                await self._gap(f"transactions {cursor + 1} to {transaction - 1} never came")
        elif last is not None and last > cursor:
            await self._gap(f"the heartbeat names transaction {last}, the last read is {cursor}")
        self._on_frame(frame)

    async def _gap(self, detail: str) -> None:
        if not self._gapped:
            self._gapped = True
            await self._on_gap("sequence", detail)

    async def replay(self) -> list[Any]:
        """The transactions after the cursor, read from the venue's ``sinceid`` endpoint
        (page by page); the cursor then stands at the last of them."""
        cursor, url = self.cursor, self.replay_url
        if cursor is None or url is None:
            self._gapped = False
            return []
        frames: list[Any] = []
        client = self._client()
        while True:
            try:
                response = await client.get(
                    url, params={"id": str(cursor)}, headers=list(self._headers())
                )
            except (httpx.HTTPError, OSError) as exc:
                refusal = security_refusal(exc)
                raise refusal or ConnectFailed(
                    f"reading the missed transactions failed ({type(exc).__name__}); "
                    "retried at the next sweep"
                ) from None
            if response.status_code != 200:
                raise ConnectFailed(
                    f"the venue answered HTTP {response.status_code} to the missed "
                    "transactions' read; retried at the next sweep"
                )
            try:
                payload = response.json()
                page = list(payload["transactions"])
                last = int(payload["lastTransactionID"])
                numbers = [int(t["id"]) for t in page]
            except (ValueError, KeyError, TypeError) as exc:
                raise ConnectFailed(
                    f"the venue's transaction list could not be read ({type(exc).__name__})"
                ) from None
            frames.extend(page)
            top = max(numbers, default=cursor)
            if not page or top >= last:
                cursor = max(cursor, last)
                break
            cursor = top
        self.cursor = max(self.cursor or 0, cursor)
        self._gapped = False
        return frames

    async def stop(self) -> None:
        self._stopping = True
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def drop(self) -> None:
        """Close the connection pool: the open response ends and :meth:`run` dials again."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
