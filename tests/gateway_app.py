"""The app the gateway tests serve with uvicorn, in a thread or in server processes.

``build(...)`` makes a Starlette app behind :class:`GatewayMiddleware`; ``app_from_env``
builds the same from ``ST_GW_*`` environment variables for ``uvicorn --factory`` in child
processes. Every key's secret is derived from one test secret (``ST_GW_SECRET``, hex)
that the test makes at random, so no secret is written in the source.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from securetrade.gateway import (
    GatewayKey,
    GatewayMiddleware,
    GatewayMonitor,
    KeyRegistry,
    LeaderSignal,
    Limit,
    Lockout,
    Route,
    SharedState,
    principal_of,
    requires_scopes,
    validated_body,
)
from securetrade.keys import Secret

WRITE = "signals:write"
READ = "signals:read"
# key id -> (tenant, scopes, networks)
KEYS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "acme:leader-1": ("acme", (WRITE, READ), ()),
    "acme:leader-2": ("acme", (WRITE, READ), ()),
    "acme:reader": ("acme", (READ,), ()),
    "acme:office-only": ("acme", (WRITE, READ), ("10.20.0.0/16",)),
    "beta:leader": ("beta", (WRITE, READ), ()),
}


def key_secret(master: bytes, key_id: str) -> Secret:
    """The test secret of one key, derived from the run's random master secret."""
    return Secret(hashlib.sha256(master + key_id.encode()).digest())


def registry(master: bytes) -> KeyRegistry:
    return KeyRegistry(
        GatewayKey.hmac(
            key_id, key_secret(master, key_id), tenant=tenant, scopes=scopes, networks=nets
        )
        for key_id, (tenant, scopes, nets) in KEYS.items()
    )


async def signals(request: Request) -> Response:
    body = await request.body()
    signal = validated_body(request)
    assert isinstance(signal, LeaderSignal)
    principal = principal_of(request)
    assert principal is not None
    return JSONResponse(
        {
            "key_id": principal.key_id,
            "tenant": principal.tenant,
            "signal_id": signal.signal_id,
            "quantity": str(signal.quantity),
            "sha256": hashlib.sha256(body).hexdigest(),
            "pid": os.getpid(),
        }
    )


async def echo(request: Request) -> Response:
    """The body exactly as the app received it, and who sent it."""
    body = await request.body()
    principal = principal_of(request)
    assert principal is not None
    return Response(
        body,
        headers={"x-key": principal.key_id, "x-pid": str(os.getpid())},
        media_type="application/octet-stream",
    )


@requires_scopes(READ)
async def whoami(request: Request) -> Response:
    principal = principal_of(request)
    assert principal is not None
    return JSONResponse({"key_id": principal.key_id, "scopes": sorted(principal.scopes)})


@requires_scopes("admin")
async def admin(request: Request) -> Response:
    return JSONResponse({"admin": True})


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            StarletteRoute("/signals", signals, methods=["POST"]),
            StarletteRoute("/echo", echo, methods=["POST", "PUT"]),
            StarletteRoute("/whoami", whoami, methods=["GET"]),
            StarletteRoute("/admin", admin, methods=["GET"]),
            StarletteRoute("/health", health, methods=["GET"]),
        ]
    )


ROUTES = [
    Route("POST", "/signals", scopes=frozenset({WRITE}), model=LeaderSignal),
    Route("POST", "/echo", scopes=frozenset({WRITE})),
    Route("PUT", "/echo", scopes=frozenset({WRITE})),
    Route("GET", "/whoami", scopes=frozenset({READ})),
    Route("GET", "/admin", scopes=frozenset({READ})),  # the endpoint itself wants "admin"
]


def build(
    master: bytes,
    *,
    state: SharedState | None = None,
    monitor: GatewayMonitor | None = None,
    **options: Any,
) -> Any:
    """The test app behind the gateway."""
    return GatewayMiddleware(
        starlette_app(),
        keys=registry(master),
        routes=ROUTES,
        state=state,
        monitor=monitor,
        open_paths=["/health"],
        **options,
    )


def state_from(spec: str) -> SharedState:
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SharedState.sqlite(where)
    if kind == "redis":
        return SharedState.redis(where)
    return SharedState.memory()


def app_from_env() -> Any:
    """``uvicorn --factory gateway_app:app_from_env``: the options come as JSON in
    ``ST_GW_OPTIONS`` (limits as [requests, seconds])."""
    options = json.loads(os.environ.get("ST_GW_OPTIONS", "{}"))
    for name in ("key_limit", "tenant_limit"):
        if name in options:
            options[name] = Limit(*options[name]) if options[name] else None
    if "lockout" in options:
        options["lockout"] = Lockout(**options["lockout"])
    return build(
        bytes.fromhex(os.environ["ST_GW_SECRET"]),
        state=state_from(os.environ.get("ST_GW_STORE", "memory")),
        **options,
    )
