"""What the stream drivers need of a client, as Protocols: the drivers sit below
``securetrade.client`` (which calls them) and so never import it.

:class:`~securetrade.AsyncClient` is an :class:`AsyncHost`, :class:`~securetrade.Client`
a :class:`BlockingHost`; mypy checks that where the client hands itself to the drivers.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, Protocol

from ..core import Core
from ..keys import Secret
from ..models import AccountTrade, Fill, Instrument, Order, OrderRequest
from ..record import AuditLog
from ..tables import KeyedResults

__all__ = ["AsyncHost", "BlockingHost", "Host"]


class Host(Protocol):
    """The parts of either client a stream uses: its core (keys, venue clock, journal,
    policy), its audit log (to learn of its own orders), and its pinned TLS context."""

    _stream_hub: Any

    @property
    def core(self) -> Core: ...

    @property
    def audit(self) -> AuditLog: ...

    def _stream_tls(self) -> ssl.SSLContext: ...


class AsyncHost(Host, Protocol):
    """An :class:`~securetrade.AsyncClient`: the REST calls a stream reconciles with."""

    async def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order: ...

    async def fills(self, symbol: str, *, client_order_id: str) -> list[Fill]: ...

    async def key_permissions(self) -> dict[str, Any]: ...

    async def ws_token(self) -> Secret: ...

    async def instruments(self, *, refresh: bool = False) -> KeyedResults[Instrument]: ...

    def my_trades(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> AsyncIterator[AccountTrade]: ...

    async def place_order(
        self, order: OrderRequest, *, idempotency_key: str | None = None
    ) -> Order: ...


class BlockingHost(Host, Protocol):
    """A :class:`~securetrade.Client`: the same calls, blocking."""

    def open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def get_order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Order: ...

    def fills(self, symbol: str, *, client_order_id: str) -> list[Fill]: ...

    def key_permissions(self) -> dict[str, Any]: ...

    def ws_token(self) -> Secret: ...

    def instruments(self, *, refresh: bool = False) -> KeyedResults[Instrument]: ...

    def my_trades(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[AccountTrade]: ...

    def place_order(self, order: OrderRequest, *, idempotency_key: str | None = None) -> Order: ...
