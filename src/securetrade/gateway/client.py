"""The sending side: sign requests for a securetrade gateway, from a bot or a worker.

:class:`GatewayAuth` plugs into httpx (``httpx.Client(auth=...)`` or
``httpx.AsyncClient(auth=...)``: one object serves both) and signs every request it sends
with :class:`securetrade.verify.MessageSigner`, over the exact bytes of the body and the
exact target on the wire, so both ends come from one scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import httpx

from .._checks import instance, safe_repr
from ..keys import KeyKind, Secret
from ..verify import MessageSigner

__all__ = ["GatewayAuth"]


class GatewayAuth(httpx.Auth):
    """Adds the ``X-ST-*`` headers to each request (a fresh nonce and timestamp each time).

    ``secret`` is the HMAC secret shared with the gateway, or, with
    ``kind=KeyKind.ED25519``, the sender's private key (the gateway holds the public key).
    """

    requires_request_body = True

    def __init__(
        self,
        key_id: str,
        secret: Secret,
        kind: KeyKind = KeyKind.HMAC,
        *,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        options: dict[str, Any] = {} if now_ms is None else {"now_ms": now_ms}
        self.signer = MessageSigner(key_id, secret, kind, **options)

    def sign(self, request: httpx.Request) -> httpx.Request:
        """Sign ``request`` in place (its body must be read) and return it."""
        instance("request", request, httpx.Request, optional=False)
        target = request.url.raw_path.decode("ascii")
        headers = self.signer.headers(request.method, target, request.content)
        request.headers.update(headers)
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's hook: the request, signed (checked before the flow starts)."""
        return _flow(self.sign(request))

    @safe_repr
    def __repr__(self) -> str:
        return f"GatewayAuth({self.signer.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a GatewayAuth cannot be pickled")


def _flow(request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
    yield request
