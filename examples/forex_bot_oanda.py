"""A small forex bot on OANDA, run against the built-in OANDA simulator over pinned HTTPS.

It reads the EUR_USD price, sells 1,000 units at market (sent as ``units: "-1000"``),
places a limit buy a few pips below the bid, and cancels it. Against the real venue, use
a practice account: ``ApiKey("oanda", account_id, token, scopes=[...])`` is a practice
key unless ``environment="live"`` is given; its key id is the account id.
"""

from decimal import Decimal

from securetrade import Client, LimitOrder, MarketOrder
from securetrade.sim.brokers import BrokerSimulator

with BrokerSimulator("oanda") as sim:
    server = sim.serve()  # HTTPS on 127.0.0.1, fresh certificate
    key = sim.create_key()  # read, trade and cancel, on a practice account
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        ticker = client.ticker("EUR_USD")
        print("EUR_USD bid", ticker.bid, "ask", ticker.ask)
        sold = client.place_order(
            MarketOrder(symbol="EUR_USD", side="SELL", quantity="1000"),
            idempotency_key="fx-bot-sell-1",
        )
        print("sold", sold.filled_quantity, "EUR_USD at", sold.average_price)
        instrument = client.instruments()["EUR_USD"]
        assert ticker.bid is not None
        assert instrument.pip_location is not None
        pip = Decimal(1).scaleb(instrument.pip_location)
        price = (ticker.bid - 10 * pip).quantize(instrument.tick_size)
        resting = client.place_order(
            LimitOrder(symbol="EUR_USD", side="BUY", quantity="1000", price=price),
            idempotency_key="fx-bot-buy-1",
        )
        print("resting", resting.status.value, "at", resting.price, resting.client_order_id)
        cancelled = client.cancel_order("EUR_USD", client_order_id=resting.client_order_id)
        print("cancelled", cancelled.status.value)
