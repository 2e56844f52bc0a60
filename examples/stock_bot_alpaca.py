"""A small stock bot on Alpaca, run against the built-in Alpaca simulator over pinned HTTPS.

It reads the market clock, buys a fractional share at market (a DAY order, as Alpaca
requires for fractions), rests a limit sell, and cancels it. Against the real venue, use
an Alpaca paper key: ``ApiKey("alpaca", key_id, secret, scopes=[...])`` is a paper key
unless ``environment="live"`` is given, and needs no ``base_url``.
"""

from securetrade import Client, LimitOrder, MarketOrder, PolicyViolation
from securetrade.sim.brokers import BrokerSimulator

with BrokerSimulator("alpaca") as sim:
    server = sim.serve()  # HTTPS on 127.0.0.1, fresh certificate
    key = sim.create_key()  # read, trade and cancel
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        client.sync_clock()  # Alpaca's /v2/clock: venue time and the regular session
        try:
            bought = client.place_order(
                MarketOrder(symbol="AAPL", side="BUY", quantity="0.25"),
                idempotency_key="stock-bot-buy-1",
            )
        except PolicyViolation as closed:  # outside regular hours: nothing was sent
            print("market closed:", closed)
        else:
            print("bought", bought.filled_quantity, "AAPL at", bought.average_price)
        resting = client.place_order(
            LimitOrder(symbol="AAPL", side="SELL", quantity="1", price="250.00"),
            idempotency_key="stock-bot-sell-1",
        )
        print("resting", resting.status.value, resting.client_order_id)
        cancelled = client.cancel_order("AAPL", client_order_id=resting.client_order_id)
        print("cancelled", cancelled.status.value)
        for balance in client.balances():
            print("cash", balance.asset, balance.free)
