"""Place one order against the built-in simulator over pinned HTTPS."""

from securetrade import Client, LimitOrder
from securetrade.sim import Simulator

with Simulator() as sim:
    server = sim.serve()  # HTTPS on 127.0.0.1, fresh certificate
    key = sim.create_key()  # read, trade and cancel
    with Client(
        key, base_url=server.base_url, pins=server.pins, cadata=server.ca_pem, journal=":memory:"
    ) as client:
        order = client.place_order(
            LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000"),
            idempotency_key="example-1",
        )
        print(order.status.value, order.client_order_id)
