"""The calls of issue 21 on both drivers: account history (lazy generators, one page at
a time), ``cancel_all`` and ``amend``. Mixed into :class:`~securetrade.Client` and
:class:`~securetrade.AsyncClient`, whose ``_run`` drives each flow; kept apart so that
``client.py`` stays the drivers alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from .core import history
from .core.manage import amend, cancel_all, named
from .models import AccountTrade, Order, Transfer
from .venues.base import Op

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .core import Core, Flow

__all__ = ["AccountCalls", "AsyncAccountCalls"]

T = TypeVar("T")


class AccountCalls:
    """History, ``cancel_all`` and ``amend`` on the blocking client."""

    core: Core

    if TYPE_CHECKING:

        def _run(self, name: str, flow: Flow[T]) -> T: ...

    def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order of ``symbol`` (of every symbol when ``None``) without
        engaging the kill switch; returns the orders cancelled. Needs ``read`` and
        ``cancel``."""
        return self._run("cancel_all", named(symbol, cancel_all(self.core, symbol)))

    def amend(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        quantity: Decimal | str | int | None = None,
        price: Decimal | str | int | None = None,
        stop_price: Decimal | str | int | None = None,
    ) -> Order:
        """Replace an open order by the same one at a new quantity, price or stop price:
        a journaled cancel-then-place, never two live orders for it, resumable after a
        crash (run it again). Returns the replacement. Needs ``read``, ``cancel``, ``trade``."""
        return self._run(
            "amend",
            named(
                symbol,
                amend(
                    self.core,
                    symbol,
                    order_id=order_id,
                    client_order_id=client_order_id,
                    quantity=quantity,
                    price=price,
                    stop_price=stop_price,
                ),
            ),
        )

    # --- account history: lazy, one page at a time (core/history.py) -----------------------

    def my_trades(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[AccountTrade]:
        """This account's trades in ``symbol`` from ``since`` to ``until`` (aware datetimes
        or epoch ms; from the first, to now), oldest first, as a generator that reads the
        venue's pages as it goes. Arguments are checked now; needs the ``read`` scope."""
        return self._history("my_trades", Op.TRADE_HISTORY, symbol, None, since, until)

    def closed_orders(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[Order]:
        """This account's closed orders (filled, cancelled, expired) in ``symbol`` placed
        from ``since`` to ``until``, oldest first, lazily; see :meth:`my_trades`."""
        return self._history("closed_orders", Op.ORDER_HISTORY, symbol, None, since, until)

    def deposits(
        self,
        asset: str | None = None,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[Transfer]:
        """Deposits (of ``asset``, or all) from ``since`` to ``until``, newest first (the
        venues' order), lazily. Needs the ``read`` scope."""
        return self._history("deposits", Op.DEPOSIT_HISTORY, None, asset, since, until)

    def withdrawals(
        self,
        asset: str | None = None,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> Iterator[Transfer]:
        """Withdrawals (of ``asset``, or all), newest first, lazily; see :meth:`deposits`."""
        return self._history("withdrawals", Op.WITHDRAWAL_HISTORY, None, asset, since, until)

    def _history(
        self,
        name: str,
        op: Op,
        symbol: str | None,
        asset: str | None,
        since: datetime | int | None,
        until: datetime | int | None,
    ) -> Iterator[Any]:
        made = self._run(name, history.window(self.core, op, symbol, asset, since, until))
        return self._pages(name, made)

    def _pages(self, name: str, made: history.Window) -> Iterator[Any]:
        """The items of ``made``, page after page: one page is held at a time."""
        cursor: str | None = None
        while True:
            page = self._run(name, history.page(self.core, made, cursor))
            history.stalled(self.core.venue.name, cursor, page.cursor)
            items, cursor = page.items, page.cursor
            del page
            yield from items
            del items  # before the next page is read: never two pages at once
            if cursor is None:
                return


class AsyncAccountCalls:
    """History (async generators), ``cancel_all`` and ``amend`` on the asyncio client."""

    core: Core

    if TYPE_CHECKING:

        def _run(self, name: str, flow: Flow[T]) -> Awaitable[T]: ...

    async def cancel_all(self, symbol: str | None = None) -> list[Order]:
        """Cancel every open order of ``symbol`` (or all); see :meth:`Client.cancel_all`."""
        return await self._run("cancel_all", named(symbol, cancel_all(self.core, symbol)))

    async def amend(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        quantity: Decimal | str | int | None = None,
        price: Decimal | str | int | None = None,
        stop_price: Decimal | str | int | None = None,
    ) -> Order:
        """Replace an open order (cancel, then place once); see :meth:`Client.amend`."""
        return await self._run(
            "amend",
            named(
                symbol,
                amend(
                    self.core,
                    symbol,
                    order_id=order_id,
                    client_order_id=client_order_id,
                    quantity=quantity,
                    price=price,
                    stop_price=stop_price,
                ),
            ),
        )

    # --- account history: async generators, one page at a time ----------------------------

    def my_trades(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> AsyncIterator[AccountTrade]:
        """``async for trade in client.my_trades(...)``: see :meth:`Client.my_trades`.
        Arguments are checked now, the symbol when the first page is read."""
        return self._history("my_trades", Op.TRADE_HISTORY, symbol, None, since, until)

    def closed_orders(
        self,
        symbol: str,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> AsyncIterator[Order]:
        """Closed orders, oldest first: see :meth:`Client.closed_orders`."""
        return self._history("closed_orders", Op.ORDER_HISTORY, symbol, None, since, until)

    def deposits(
        self,
        asset: str | None = None,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> AsyncIterator[Transfer]:
        """Deposits, newest first: see :meth:`Client.deposits`."""
        return self._history("deposits", Op.DEPOSIT_HISTORY, None, asset, since, until)

    def withdrawals(
        self,
        asset: str | None = None,
        *,
        since: datetime | int | None = None,
        until: datetime | int | None = None,
    ) -> AsyncIterator[Transfer]:
        """Withdrawals, newest first: see :meth:`Client.withdrawals`."""
        return self._history("withdrawals", Op.WITHDRAWAL_HISTORY, None, asset, since, until)

    def _history(
        self,
        name: str,
        op: Op,
        symbol: str | None,
        asset: str | None,
        since: datetime | int | None,
        until: datetime | int | None,
    ) -> AsyncIterator[Any]:
        made = history.offered(self.core, history.checked(op, symbol, asset, since, until))
        return self._pages(name, made)

    async def _pages(self, name: str, made: history.Window) -> AsyncIterator[Any]:
        made = await self._run(name, history.resolved(self.core, made))
        cursor: str | None = None
        while True:
            page = await self._run(name, history.page(self.core, made, cursor))
            history.stalled(self.core.venue.name, cursor, page.cursor)
            items, cursor = page.items, page.cursor
            del page
            for item in items:
                yield item
            del items  # before the next page is read: never two pages at once
            if cursor is None:
                return
