"""The simulator's account history beyond live orders: deposits, withdrawals, and a past.

``deposit`` credits an account and records it; ``record_withdrawal`` records one (the
dialects' withdraw endpoints call it); ``backfill`` gives an account a trading history
(filled orders with one trade each, spaced in time) without running them through the
market, so a test can page through ten thousand trades without placing ten thousand
orders against the venue's order-rate limits.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from .engine import Market
from .records import SimOrder, SimTransfer

__all__ = ["SimTransfer", "backfill", "deposit", "record_withdrawal", "transfers_of"]

_transfer_ids = itertools.count(1)


def deposit(
    market: Market,
    account: str,
    asset: str,
    amount: Decimal,
    *,
    at_ms: int | None = None,
    network: str = "ETH",
    address: str = "0xsimdeposit",
) -> SimTransfer:
    """Credit ``amount`` of ``asset`` to ``account`` (arrived at ``at_ms``, now if not given)."""
    with market.lock:
        market.accounts[account].move(asset, free=amount)
        return _record(market, account, "deposit", asset, amount, at_ms, network, address)


def record_withdrawal(
    market: Market,
    account: str,
    asset: str,
    amount: Decimal,
    address: str,
    *,
    network: str = "ETH",
    at_ms: int | None = None,
) -> SimTransfer:
    """Record a withdrawal the venue accepted (the dialect decides whether it may)."""
    with market.lock:
        return _record(market, account, "withdrawal", asset, amount, at_ms, network, address)


def _record(
    market: Market,
    account: str,
    kind: str,
    asset: str,
    amount: Decimal,
    at_ms: int | None,
    network: str,
    address: str,
) -> SimTransfer:
    number = next(_transfer_ids)
    transfer = SimTransfer(
        number,
        account,
        kind,
        asset,
        amount,
        market._now_ms() if at_ms is None else at_ms,
        address,
        network,
        f"{number:064x}",
    )
    market.transfers.append(transfer)
    return transfer


def transfers_of(market: Market, account: str, kind: str) -> list[SimTransfer]:
    """The account's deposits or withdrawals, newest first (as both venues list them)."""
    with market.lock:
        found = [t for t in market.transfers if t.account == account and t.kind == kind]
    return sorted(found, key=lambda t: (t.at_ms, t.transfer_id), reverse=True)


def backfill(
    market: Market,
    account: str,
    symbol: str,
    trades: int,
    *,
    start_ms: int,
    spacing_ms: int,
    quantity: Decimal | None = None,
) -> list[SimOrder]:
    """``trades`` filled market orders of ``account`` in ``symbol``, one trade each, the
    first at ``start_ms`` and one every ``spacing_ms``, buys and sells in turn, at the
    history price of their moment. Balances are left as they are: this is the past."""
    inst = market.instruments[symbol]
    size = quantity if quantity is not None else inst.min_quantity * 10
    made = []
    with market.lock:
        for k in range(trades):
            at = start_ms + k * spacing_ms
            price = market.history_price(symbol, at)
            order = SimOrder(
                order_id=next(market._ids),
                client_order_id=f"past-{symbol}-{at}-{k}",
                account=account,
                symbol=symbol,
                side="BUY" if k % 2 == 0 else "SELL",
                type="MARKET",
                quantity=size,
                price=None,
                time_in_force=None,
                status="FILLED",
                filled=size,
                quote_filled=size * price,
                created_ms=at,
                updated_ms=at,
            )
            trade_id = next(market._trade_ids)
            order.fills.append((price, size, trade_id))
            order.fill_times[trade_id] = at
            market.orders[order.order_id] = order
            made.append(order)
    return made
