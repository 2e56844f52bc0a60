"""The contract a venue adapter fulfils: mostly tables, plus encode and parse functions.

The core never knows which venue it drives. It asks the adapter for the endpoint of an
operation (method, path, whether it is signed, the scope it needs, its rate-limit cost),
for the exact request to send, and for the meaning of the answer: one of :class:`Verdict`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from ..errors import SecureTradeError
from ..keys import Environment, Scope
from ..models import Balance, Instrument, Order, OrderRequest
from ..ratelimit import RateLimit
from ..signing import Signer
from ..transport.base import HttpRequest, HttpResponse

__all__ = ["Endpoint", "Op", "Outcome", "Params", "Venue", "Verdict"]

Params = list[tuple[str, str]]


class Op(str, enum.Enum):
    """The operations every venue maps to its endpoints."""

    SERVER_TIME = "server_time"
    INSTRUMENTS = "instruments"
    TICKER_PRICE = "ticker_price"  # last price of one symbol: the policy's reference price
    PLACE_ORDER = "place_order"
    CANCEL_ORDER = "cancel_order"
    GET_ORDER = "get_order"
    OPEN_ORDERS = "open_orders"
    BALANCES = "balances"
    WITHDRAW = "withdraw"
    KEY_PERMISSIONS = "key_permissions"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of a venue's endpoint table."""

    op: Op
    method: str
    path: str
    signed: bool
    scope: Scope | None
    cost: Mapping[str, int] = field(default_factory=dict)


class Verdict(str, enum.Enum):
    OK = "ok"
    REJECTED = "rejected"  # the venue said no: certainly not executed
    RETRYABLE = "retryable"  # certainly not executed; may work if resent
    AMBIGUOUS = "ambiguous"  # may have executed; ask the venue before anything else


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response means. ``error`` is set unless the verdict is OK."""

    verdict: Verdict
    payload: Any = None
    error: SecureTradeError | None = None
    clock_skew: bool = False  # the venue refused our timestamp: resync, then resend
    duplicate: bool = False  # the venue already holds this client order id
    retry_after: float | None = None


class Venue(Protocol):
    """A venue adapter. See ``venues/binance`` for the reference implementation."""

    name: str
    endpoints: Mapping[Op, Endpoint]
    rate_limits: Sequence[RateLimit]
    base_urls: Mapping[Environment, str]
    recv_window_ms: int

    def check_symbol(self, symbol: str) -> None: ...

    def prepare(
        self,
        endpoint: Endpoint,
        params: Params,
        *,
        key_id: str,
        signer: Signer | None,
        timestamp_ms: int,
    ) -> HttpRequest: ...

    def interpret(self, endpoint: Endpoint, response: HttpResponse) -> Outcome: ...

    def order_params(self, order: OrderRequest, client_order_id: str) -> Params: ...

    def order_lookup_params(
        self, symbol: str, *, client_order_id: str | None = None, order_id: str | None = None
    ) -> Params: ...

    def withdraw_params(
        self, asset: str, amount: Decimal, address: str, network: str | None
    ) -> Params: ...

    def parse_order(self, payload: Any) -> Order: ...

    def parse_orders(self, payload: Any) -> list[Order]: ...

    def parse_balances(self, payload: Any) -> list[Balance]: ...

    def parse_instruments(self, payload: Any) -> dict[str, Instrument]: ...

    def parse_server_time(self, payload: Any) -> int: ...

    def parse_price(self, payload: Any) -> Decimal: ...

    def parse_rate_limits(self, payload: Any) -> list[RateLimit]: ...

    def parse_withdrawal(self, payload: Any) -> str: ...
