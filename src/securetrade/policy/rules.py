"""Hard pre-trade limits. A denial names the rule and the numbers; nothing is sent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from decimal import Decimal

from ..errors import PolicyViolation
from ..models import OrderRequest, to_decimal

__all__ = ["KillSwitch", "Policy"]

log = logging.getLogger("securetrade.policy")


class KillSwitch:
    """Blocks every new order while engaged. Thread-safe; shareable between clients."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def engaged(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def engage(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
        log.critical("kill switch engaged: %s", reason)

    def release(self) -> None:
        with self._lock:
            self._reason = None
        log.warning("kill switch released")


class Policy:
    """Limits that apply to every order, whatever the key allows.

    ``max_notional`` bounds quantity times price (a market order is valued at
    ``reference_price`` when one is given); ``max_quantity`` bounds size; ``symbols`` is an
    allowlist; ``price_band`` refuses a limit price further than that fraction from the
    reference price (the fat-finger guard).
    """

    def __init__(
        self,
        *,
        max_notional: Decimal | int | str | None = None,
        max_quantity: Decimal | int | str | None = None,
        symbols: Iterable[str] | None = None,
        price_band: Decimal | str | None = None,
        kill_switch: KillSwitch | None = None,
    ) -> None:
        self.max_notional = None if max_notional is None else to_decimal(max_notional)
        self.max_quantity = None if max_quantity is None else to_decimal(max_quantity)
        self.symbols = None if symbols is None else frozenset(symbols)
        self.price_band = None if price_band is None else to_decimal(price_band)
        self.kill_switch = kill_switch or KillSwitch()

    def check(self, order: OrderRequest, *, reference_price: Decimal | None = None) -> None:
        """Raise :class:`PolicyViolation` unless ``order`` passes every rule."""
        if self.kill_switch.engaged:
            raise PolicyViolation(
                f"kill switch engaged: {self.kill_switch.reason}", rule="kill_switch"
            )
        if self.symbols is not None and order.symbol not in self.symbols:
            raise PolicyViolation(f"{order.symbol} is not on the allowlist", rule="symbols")
        if self.max_quantity is not None and order.quantity > self.max_quantity:
            raise PolicyViolation(
                f"quantity {order.quantity} exceeds max_quantity {self.max_quantity}",
                rule="max_quantity",
            )
        price = order.price if order.price is not None else reference_price
        if self.max_notional is not None and price is not None:
            notional = order.quantity * price
            if notional > self.max_notional:
                raise PolicyViolation(
                    f"notional {notional} exceeds max_notional {self.max_notional}",
                    rule="max_notional",
                )
        if (
            self.price_band is not None
            and order.price is not None
            and reference_price is not None
            and reference_price > 0
        ):
            distance = abs(order.price - reference_price) / reference_price
            if distance > self.price_band:
                raise PolicyViolation(
                    f"price {order.price} is {distance:.2%} from the reference "
                    f"{reference_price}, beyond the band of {self.price_band:.2%}",
                    rule="price_band",
                )
