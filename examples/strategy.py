"""A small strategy, end to end, against the simulator over pinned TLS on 127.0.0.1.

Pull hourly candles, compute a moving-average signal, take the side it says, protect
the position with a stop-limit order on the other side, then read the fills back from the
account's trade history. The same steps as examples/strategy.ipynb, cell for cell; for a
real venue, build the client with your key and pins instead of the simulator's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

from securetrade import Client, MarketOrder, StopLimitOrder
from securetrade.sim import Simulator

SYMBOL = "BTC/USDT"  # the unified name: every venue finds its own
FAST, SLOW = 6, 24  # moving averages, in bars


def average(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def on_tick(price: Decimal, tick: Decimal) -> Decimal:
    """``price`` rounded down to the instrument's tick: what the venue accepts."""
    return (price / tick).quantize(Decimal(1), ROUND_DOWN) * tick


def main() -> None:
    sim = Simulator()
    server = sim.serve()
    key = sim.create_key()
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        # 1. Candles: the last two days of hourly bars, oldest first, every number a Decimal.
        bars = client.candles(SYMBOL, "1h", limit=48)
        closes = [bar.close for bar in bars]
        print(f"{len(bars)} bars, last close {closes[-1]}")

        # 2. The signal: the fast average against the slow one, long above, short below.
        fast, slow = average(closes[-FAST:]), average(closes[-SLOW:])
        side, exit_side = ("BUY", "SELL") if fast >= slow else ("SELL", "BUY")
        print(f"fast {fast:.2f} slow {slow:.2f}: {side}")

        # 3. Act, then protect: a stop-limit on the other side, 2 % against the price
        #    paid, its limit 0.5 % further (so that it fills in a fast market).
        entry = client.place_order(
            MarketOrder(symbol=SYMBOL, side=side, quantity="0.01"),
            idempotency_key=f"strategy-entry-{started:%Y%m%d%H%M}",
        )
        paid = entry.average_price or closes[-1]
        rules = client.check_order(MarketOrder(symbol=SYMBOL, side=exit_side, quantity="0.01"))
        away = Decimal("0.98") if side == "BUY" else Decimal("1.02")
        further = Decimal("0.995") if side == "BUY" else Decimal("1.005")
        trigger = on_tick(paid * away, rules.tick_size)
        stop = client.place_order(
            StopLimitOrder(
                symbol=SYMBOL,
                side=exit_side,
                quantity="0.01",
                stop_price=trigger,
                price=on_tick(trigger * further, rules.tick_size),
            ),
            idempotency_key=f"strategy-stop-{started:%Y%m%d%H%M}",
        )
        print(f"{side} at {paid}; stop {stop.status.value} at {stop.stop_price} -> {stop.price}")

        # 4. The market moves through the stop (the simulator lets a script move it).
        sim.market.set_price("BTCUSDT", trigger)
        print(f"stop is now {client.get_order(SYMBOL, order_id=stop.order_id).status.value}")

        # 5. Read the fills back: the account's trades since the strategy started.
        for trade in client.my_trades(SYMBOL, since=started):
            print(f"{trade.side.value:4} {trade.quantity} @ {trade.price} (order {trade.order_id})")
    sim.close()


if __name__ == "__main__":
    main()
