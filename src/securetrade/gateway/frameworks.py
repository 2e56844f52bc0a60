"""Scope checks inside the application, for FastAPI (a dependency) and Starlette (a decorator).

The middleware already refuses a key that lacks its route's scopes; these let an endpoint
state its own needs as well (defence in depth, and routes the middleware table does not
describe finely). Starlette is imported here only, when one of these is first used.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from .._checks import as_text, own_methods
from ..errors import InvalidRequest
from .keys import GatewayPrincipal
from .middleware import _PROBLEMS, BODY_KEY

__all__ = ["principal_of", "require_scopes", "requires_scopes", "validated_body"]


def _needed(scopes: tuple[str, ...]) -> frozenset[str]:
    """The scopes as a set of plain strs (a subclass's own hash or == never runs in it)."""
    plain: list[str] = []
    for scope in scopes:
        name = as_text(scope)
        if not name:
            raise InvalidRequest(f"each scope must be a non-empty string{own_methods(scope)}")
        plain.append(name)
    if not plain:
        raise InvalidRequest("name at least one scope, as strings")
    return frozenset(plain)


def principal_of(request: Any) -> GatewayPrincipal | None:
    """The verified sender of ``request`` (a Starlette/FastAPI request), if the gateway
    served it."""
    found = request.scope.get("auth")
    return found if isinstance(found, GatewayPrincipal) else None


def validated_body(request: Any) -> Any:
    """The route model instance the gateway validated the body into (None without one)."""
    return request.scope.get(BODY_KEY)


def require_scopes(*scopes: str) -> Callable[..., GatewayPrincipal]:
    """A FastAPI dependency: ``principal = Depends(require_scopes("signals:write"))``.

    Answers 403 unless the gateway verified the request and its key holds every scope.
    """
    from fastapi import HTTPException
    from starlette.requests import Request

    needed = _needed(scopes)

    def dependency(request: Request) -> GatewayPrincipal:
        principal = principal_of(request)
        if principal is None or not needed <= principal.scopes:
            raise HTTPException(status_code=403, detail="Forbidden")
        return principal

    # Real classes, not this module's postponed strings: FastAPI reads them to inject the
    # request, and Request is imported here, not at module level.
    dependency.__annotations__ = {"request": Request, "return": GatewayPrincipal}
    return dependency


def requires_scopes(
    *scopes: str,
) -> Callable[[Callable[[Any], Awaitable[Any]]], Callable[[Any], Awaitable[Any]]]:
    """A decorator for Starlette endpoints (``async def endpoint(request)``): 403 unless the
    gateway verified the request and its key holds every scope."""
    from starlette.responses import Response

    needed = _needed(scopes)

    def decorate(endpoint: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        @functools.wraps(endpoint)
        async def guarded(request: Any) -> Any:
            principal = principal_of(request)
            if principal is None or not needed <= principal.scopes:
                return Response(
                    _PROBLEMS[403], status_code=403, media_type="application/problem+json"
                )
            return await endpoint(request)

        return guarded

    return decorate
