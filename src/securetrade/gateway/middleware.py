"""The gateway: a pure ASGI middleware that decides whether an inbound request is served.

Checks, in this order, cheapest and least revealing first; the first that fails answers
with a fixed problem body (RFC 9457) that names no internals, and reports one
:class:`~securetrade.gateway.events.SecurityEvent`:

0. the client address is not locked out (repeated authentication failures) .... 429
1. size: ``Content-Length`` over the cap is refused before a byte is read ....... 413
2. the four ``X-ST-*`` headers, each once and well formed ........................ 401
3. key lookup: an unknown id goes on with a decoy key, so it costs the same ...... 401
   (and the key id is not locked out) ............................................ 429
4. timestamp within the window (``window_ms`` past, ``max_ahead_ms`` future) ..... 401
   then the body is read, counted against the cap (413) and timed (408)
5. signature over method, target, timestamp, nonce, key id and sha256(body) ...... 401
   (securetrade.verify's scheme; the key's allowed networks are checked next ..... 403)
6. the route is declared, and the key holds its scopes ...................... 404 / 403
7. one atomic step in the shared store (:mod:`.gate`): the address and key id are
   not locked out by any process (429), the request is younger than the store's
   epoch (503, a store that lost its nonces; also 503 for a Redis behind this
   process's watermark, restored from an older snapshot), the nonce is recorded (409),
   and the
   per-key and per-tenant rate limits have room (429) ........... 429 / 503 / 409 / 429
8. the body validates against the route's model (pydantic, extra="forbid") ........ 422

Authentication failures (steps 2, 3 and 5) are counted here and written to the shared
store a batch at a time (:class:`~securetrade.gateway.net.Lockout`), so the lock-out of
step 0 holds for every process and a flood of them is not a flood of writes. A store
that does not answer (step 7) refuses with 503 and ``Retry-After``: the gateway never
serves a request it could not check, unless built with ``fail_open=True``, which checks
against this process's memory meanwhile and logs a warning. The verified body is replayed
to the application byte for byte; ``scope["auth"]`` holds the
:class:`~securetrade.gateway.keys.GatewayPrincipal`, ``scope["securetrade.body"]`` the
validated model. Nothing here imports Starlette: any ASGI server and framework will do.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._checks import function, instance, number, texts, whole
from .._checks import seconds as duration
from ..errors import InvalidRequest
from ..ratelimit import key_label
from ..verify.replay import replay_token
from ..verify.scheme import KEY_ID, METHOD, NONCE, TARGET, TIMESTAMP, _unchecked_message
from .deadline import BodyDeadlines, SlowBody
from .events import GatewayMonitor, SecurityEvent
from .gate import Bucket
from .keys import GatewayPrincipal, KeyRegistry
from .net import Lockout, TrustedProxies
from .stores import SharedState, StoreRolledBack, StoreUnavailable

__all__ = ["GatewayMiddleware", "Limit", "Route"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("securetrade.gateway")

BODY_KEY = "securetrade.body"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
_PROBLEMS = {
    status: (f'{{"type":"about:blank","title":"{title}","status":{status}}}'.encode("ascii"))
    for status, title in _TITLES.items()
}
# Failures that guess at credentials: counted towards a lock-out of the address and key.
_GUESSES = frozenset({"malformed", "unknown_key", "bad_signature"})


@dataclass(frozen=True, slots=True)
class Limit:
    """``requests`` per ``seconds``: a burst of up to ``requests`` at once, then one every
    ``seconds / requests`` (GCRA, see :mod:`securetrade.gateway.gate`); a quiet bucket
    refills at that pace. Over any ``seconds``-long span, at most ``2 * requests``."""

    requests: int
    seconds: float

    def __post_init__(self) -> None:
        whole("a limit's requests", self.requests, 1)
        duration("a limit's window", self.seconds, above=0)


@dataclass(frozen=True, slots=True)
class Route:
    """A route the gateway serves: who may call it (``scopes``, all required) and what its
    body must be (``model``, a pydantic model; None for no body check). ``cost`` is what one
    call spends of the rate limits."""

    method: str
    path: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    model: Any = None
    cost: int = 1

    def __post_init__(self) -> None:
        if (
            not isinstance(self.method, str)
            or not isinstance(self.path, str)
            or not self.method.isupper()
            or not self.path.startswith("/")
        ):
            raise InvalidRequest("a route needs an upper-case method and a path from /")
        object.__setattr__(self, "scopes", frozenset(texts("a route's scopes", self.scopes)))
        if self.model is not None and not hasattr(self.model, "model_validate_json"):
            raise InvalidRequest("a route's model must be a pydantic model class")
        if isinstance(self.cost, bool) or not isinstance(self.cost, int) or self.cost < 1:
            raise InvalidRequest("a route's cost must be a whole number >= 1")


class _Refused(Exception):
    """One check failed: answer ``status`` and report ``reason``."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class _Gone(Exception):
    """The client went away while sending its body: nothing to answer."""


class GatewayMiddleware:
    """Serve a request only once it is authentic, fresh, first seen, in scope, within its
    limits and well formed (the checks are listed in this module's docstring).

    ``keys`` are the senders' keys; ``routes`` the only routes served (anything else is
    refused with 404 after authentication, and ``open_paths`` such as a health check are
    passed through unchecked). ``state`` is where nonces and rate windows live: a
    :class:`SharedState` on SQLite or Redis when several processes serve the app (the
    default, memory, is for one process). ``trusted_proxies`` (CIDR) are the only peers
    whose ``X-Forwarded-For`` is believed. ``report_remaining`` adds
    ``RateLimit-Remaining`` to each answer, at the cost of one more store read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRegistry,
        routes: Iterable[Route],
        state: SharedState | None = None,
        key_limit: Limit | None = Limit(100, 1.0),
        tenant_limit: Limit | None = Limit(1000, 1.0),
        max_body_bytes: int = 64 * 1024,
        window_ms: int = 30_000,
        max_ahead_ms: int = 5_000,
        body_timeout: float = 10.0,
        trusted_proxies: Iterable[str] = (),
        lockout: Lockout | None = None,
        monitor: GatewayMonitor | None = None,
        fail_open: bool = False,
        retry_after: int = 1,
        open_paths: Iterable[str] = (),
        report_remaining: bool = False,
        namespace: str = "securetrade",
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(keys, KeyRegistry):
            raise InvalidRequest("keys= must be a securetrade.gateway.KeyRegistry")
        whole("window_ms", window_ms, 1, 3_600_000)
        whole("max_ahead_ms", max_ahead_ms, 0, window_ms)
        whole("max_body_bytes", max_body_bytes, 0)
        number("body_timeout (seconds)", body_timeout, above=0, most=3600)
        whole("retry_after (seconds)", retry_after, 1, 86_400)
        instance("key_limit", key_limit, Limit)
        instance("tenant_limit", tenant_limit, Limit)
        instance("lockout", lockout, Lockout)
        instance("monitor", monitor, GatewayMonitor)
        instance("state", state, SharedState)
        function("now_ms", now_ms, optional=True)
        open_paths = texts("open_paths", open_paths)
        if isinstance(routes, (str, bytes)) or not isinstance(routes, Iterable):
            raise InvalidRequest("routes must be a list of Route")
        self.app = app
        self.keys = keys
        self.routes: dict[tuple[str, str], Route] = {}
        for route in routes:
            instance("each of routes", route, Route, optional=False)
            if (route.method, route.path) in self.routes:
                raise InvalidRequest(f"route {route.method} {route.path} is declared twice")
            self.routes[(route.method, route.path)] = route
        for limit in (key_limit, tenant_limit):
            costly = [r for r in self.routes.values() if limit and r.cost > limit.requests]
            if limit is not None and costly:
                raise InvalidRequest(
                    f"route {costly[0].method} {costly[0].path} costs {costly[0].cost}, more "
                    f"than a limit of {limit.requests} could ever admit: lower its cost"
                )
        self.state = state if state is not None else SharedState.memory()
        self.key_limit = key_limit
        self.tenant_limit = tenant_limit
        self.max_body_bytes = max_body_bytes
        self.window_ms = window_ms
        self.max_ahead_ms = max_ahead_ms
        self.body_timeout = body_timeout
        self._deadlines = BodyDeadlines(body_timeout)
        self.proxies = TrustedProxies(trusted_proxies)
        self.lockout = lockout if lockout is not None else Lockout()
        self.monitor = monitor if monitor is not None else GatewayMonitor()
        self.fallback = SharedState.memory() if fail_open else None
        self.retry_after = retry_after
        self.open_paths = frozenset(open_paths)
        self.report_remaining = report_remaining
        self.namespace = namespace
        self._now_ms = now_ms if now_ms is not None else lambda: time.time_ns() // 1_000_000
        self._plans: dict[tuple[str, int, str], tuple[Bucket, ...]] = {}
        self._limit_headers: list[tuple[bytes, bytes]] = []  # the same on every answer
        self._window = b""
        if key_limit is not None:
            window = f"{key_limit.seconds:g}"
            self._window = window.encode("ascii")
            policy = f"{key_limit.requests};w={window}"
            self._limit_headers = [
                (b"ratelimit-limit", str(key_limit.requests).encode("ascii")),
                (b"ratelimit-policy", policy.encode("ascii")),
            ]
        self._degraded = False
        self._rolled_back = False
        self._validation_errors: tuple[type[BaseException], ...] = (ValueError,)
        if any(r.model is not None for r in self.routes.values()):
            from pydantic import ValidationError

            self._validation_errors = (ValidationError, ValueError)

    def reload(self, keys: KeyRegistry) -> None:
        """Serve with ``keys`` from the next request on (a key added, narrowed or removed)."""
        if not isinstance(keys, KeyRegistry):
            raise InvalidRequest("keys= must be a securetrade.gateway.KeyRegistry")
        self.keys = keys
        self._plans = {}

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" or scope["path"] in self.open_paths:
            if kind == "websocket" and scope["path"] not in self.open_paths:
                await send({"type": "websocket.close", "code": 1008})  # no signed upgrades
                return
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context: dict[str, Any] = {"key_id": None, "address": None}
        try:
            principal, body, extra = await self._check(scope, receive, context)
        except _Refused as refusal:
            self.monitor.timed(time.perf_counter() - started, "refused")
            if refusal.reason == "locked_out" and self.lockout.hold:
                await anyio.sleep(self.lockout.hold)  # pace a flood, at no CPU cost
            await self._refuse(send, scope, refusal, context)
            return
        except _Gone:
            return
        self.monitor.timed(time.perf_counter() - started, "served")
        scope["auth"] = principal
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, replay, send_with_limits if extra else send)

    async def _check(
        self, scope: Scope, receive: Receive, context: dict[str, Any]
    ) -> tuple[GatewayPrincipal, bytes, list[tuple[bytes, bytes]]]:
        fields: dict[bytes, bytes] = {}
        length: bytes | None = None
        forwarded: list[bytes] = []
        for name, value in scope["headers"]:
            if name[:5] == b"x-st-":
                if name in fields:
                    raise _Refused(401, "malformed")
                fields[name] = value
            elif name == b"content-length":
                if length is not None and value != length:
                    raise _Refused(400, "bad_length")
                length = value
            elif name == b"x-forwarded-for":
                forwarded.append(value)
        client = scope.get("client")
        peer = client[0] if client else None
        address = self.proxies.client(peer, forwarded) if self.proxies else peer
        context["address"] = address
        clock = time.monotonic()
        lockout = self.lockout
        if address is not None:
            left = lockout.locked_for("addr:" + address, clock)
            if left:
                raise _Refused(429, "locked_out", left)

        # 1. size, before reading a byte
        if length is not None:
            if not length.isdigit() or len(length) > 15:
                raise _Refused(400, "bad_length")
            if int(length) > self.max_body_bytes:
                raise _Refused(413, "too_large")

        # 2. headers
        try:
            key_id = fields[b"x-st-key"].decode("ascii")
            stamp = fields[b"x-st-timestamp"].decode("ascii")
            nonce = fields[b"x-st-nonce"].decode("ascii")
            signature = base64.b64decode(fields[b"x-st-signature"], validate=True)
        except (KeyError, UnicodeDecodeError, binascii.Error, ValueError):
            raise self._guess(address, None, "malformed", clock) from None
        if not (KEY_ID(key_id) and TIMESTAMP(stamp) and NONCE(nonce)):
            raise self._guess(address, None, "malformed", clock)
        context["key_id"] = key_id

        # 3. key lookup (a decoy for unknown ids: same path, same time, same answer)
        key, known = self.keys.lookup(key_id)
        left = lockout.locked_for("key:" + key_id, clock)
        if left:
            raise _Refused(429, "locked_out", left)

        # 4. timestamp window
        now = self._now_ms()
        timestamp = int(stamp)
        if timestamp < now - self.window_ms:
            raise _Refused(401, "stale")
        if timestamp > now + self.max_ahead_ms:
            raise _Refused(401, "future")

        body = await self._read_body(receive)

        # 5. signature
        method: str = scope["method"]
        target = _target(scope)
        if not (METHOD(method) and TARGET(target)):  # the headers were checked in step 2
            raise self._guess(address, key_id, "malformed", clock)
        message = _unchecked_message(method, target, timestamp, nonce, key_id, body)
        valid = key.check(message, signature)
        if not (valid and known):
            reason = "unknown_key" if not known else "bad_signature"
            raise self._guess(address, key_id, reason, clock)
        principal = key.principal
        if key.networks and not key.reachable_from(address):
            raise _Refused(403, "network")

        # 6. the route and its scopes
        route = self.routes.get((method, scope["path"]))
        if route is None:
            raise _Refused(404, "no_route")
        if not route.scopes <= principal.scopes:
            raise _Refused(403, "scope")

        # 7. lock-outs, epoch, nonce and rate limits: one atomic step in the shared store
        extra = self._admit(principal, route, address, nonce, timestamp)

        # 8. the body, now that an authenticated, in-scope caller sent it
        if route.model is not None:
            try:
                scope[BODY_KEY] = route.model.model_validate_json(body)
            except self._validation_errors:
                raise _Refused(422, "invalid_body") from None
        return principal, body, extra

    def _guess(self, address: str | None, key_id: str | None, reason: str, now: float) -> _Refused:
        """A failure that may be a guess at credentials: count it against the address and
        the key id, and answer as for any authentication failure."""
        names = [] if address is None else ["addr:" + address]
        if key_id is not None and reason in _GUESSES:
            names.append("key:" + key_id)
        if not names:
            return _Refused(401, reason)
        lockout = self.lockout
        due: dict[str, int] = {}
        reached = []
        for name in names:  # counted here first: written to the store a batch at a time
            count, alone = lockout.pending(name, now)
            if count:
                due[name] = count
            if alone:
                reached.append(name)
        if not due:
            return _Refused(401, reason)
        try:
            counted = self.state.failed(due, lockout.strikes)
        except StoreUnavailable:  # this process's own count decides until the store is back
            counted = dict.fromkeys(reached, (lockout.duration, False))
        locked_for = 0.0
        for name, (left, already) in counted.items():
            if left > 0:
                lockout.lock(name, now, left)
                if already:  # locked by an earlier failure, here or in another process
                    locked_for = max(locked_for, left)
                else:
                    self.monitor.locked(name, left)
        if locked_for:
            return _Refused(429, "locked_out", locked_for)
        return _Refused(401, reason)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        cap = self.max_body_bytes
        try:
            with self._deadlines.timed():
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise _Gone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > cap:
                        raise _Refused(413, "too_large")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except SlowBody:
            raise _Refused(408, "slow_body") from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _admit(
        self,
        principal: GatewayPrincipal,
        route: Route,
        address: str | None,
        nonce: str,
        timestamp: int,
    ) -> list[tuple[bytes, bytes]]:
        """Step 7: one call to the shared store; on an outage, refuse (503) or, if built
        with ``fail_open=True``, decide on this process's memory and warn."""
        cache = (principal.key_id, route.cost, principal.tenant)
        buckets = self._plans.get(cache)
        if buckets is None:
            buckets = self._buckets(principal, route.cost)
            self._plans[cache] = buckets
        locks = (
            ("key:" + principal.key_id,)
            if address is None
            else ("addr:" + address, "key:" + principal.key_id)
        )
        args = (
            replay_token(principal.key_id, nonce),
            timestamp,
            timestamp + self.window_ms + 1,
            self.max_ahead_ms,
            locks,
            buckets,
            self.report_remaining and self.key_limit is not None,
        )
        try:
            verdict = self.state.admit(*args)
        except StoreRolledBack:  # never the fallback: the store forgot nonces it had seen
            if not self._rolled_back:
                self._rolled_back = True
                log.error(
                    "gateway store %s is behind what this gateway has seen of it (restored "
                    "from an older snapshot?): refusing every request until an operator "
                    "calls SharedState.acknowledge_rollback()",
                    self.state.name,
                )
            raise _Refused(503, "store_rolled_back", self.retry_after) from None
        except StoreUnavailable:
            if self.fallback is None:
                raise _Refused(503, "store_unavailable", self.retry_after) from None
            if not self._degraded:
                self._degraded = True
                log.warning(
                    "gateway store %s is down: checking nonces, limits and lock-outs in this "
                    "process's memory only (fail_open=True); replays across processes are "
                    "possible until it is back",
                    self.state.name,
                )
            verdict = self.fallback.admit(*args)
        else:
            self._rolled_back = False
            if self._degraded:
                self._degraded = False
                log.warning("gateway store %s is back", self.state.name)
        outcome = verdict.outcome
        if outcome != "ok":
            if outcome == "locked_out":  # by another process (which name is not said)
                raise _Refused(429, "locked_out", verdict.wait)
            if outcome == "replayed":
                raise _Refused(409, "replayed")
            if outcome == "restarted":  # the store lost its nonces: not the sender's fault
                raise _Refused(503, "store_restarted", max(verdict.wait, self.retry_after))
            raise _Refused(429, "rate_limited", verdict.wait)
        headers = self._limit_headers
        if self.report_remaining and headers and verdict.remaining is not None:
            left = str(verdict.remaining).encode("ascii")
            return [*headers, (b"ratelimit-remaining", left), (b"ratelimit-reset", self._window)]
        return headers

    def _buckets(self, principal: GatewayPrincipal, cost: int) -> tuple[Bucket, ...]:
        """The key's bucket first (its room is what ``RateLimit-Remaining`` reports)."""
        buckets = []
        if self.key_limit is not None:
            name = f"{self.namespace}:key:{key_label(principal.key_id)}"
            buckets.append(Bucket(name, self.key_limit.requests, self.key_limit.seconds, cost))
        if self.tenant_limit is not None:
            name = f"{self.namespace}:tenant:{key_label(principal.tenant)}"
            limit = self.tenant_limit
            buckets.append(Bucket(name, limit.requests, limit.seconds, cost))
        return tuple(buckets)

    async def _refuse(
        self, send: Send, scope: Scope, refusal: _Refused, context: dict[str, Any]
    ) -> None:
        status = refusal.status
        body = _PROBLEMS[status]
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        if refusal.retry_after is not None:
            seconds = max(1, math.ceil(refusal.retry_after))
            headers.append((b"retry-after", str(seconds).encode("ascii")))
        if status in (400, 408, 413):
            headers.append((b"connection", b"close"))  # the rest of the body is not wanted
        self.monitor.refused(
            SecurityEvent(
                reason=refusal.reason,
                status=status,
                route=f"{scope['method']} {_target(scope)[:200]}",
                key_id=context["key_id"],
                address=context["address"],
            )
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _target(scope: Scope) -> str:
    """The request target as the client sent it: raw path, then ``?query`` if any."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path
