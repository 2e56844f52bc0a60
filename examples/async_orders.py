"""Place orders concurrently with AsyncClient against the in-process simulator."""

import asyncio

from securetrade import AsyncClient, MarketOrder
from securetrade.sim import Simulator


async def main() -> None:
    sim = Simulator()
    key = sim.create_key()
    async with AsyncClient(key, transport=sim.async_transport(), journal=":memory:") as client:
        orders = await asyncio.gather(
            *(
                client.place_order(
                    MarketOrder(symbol="ETHUSDT", side="BUY", quantity="0.01"),
                    idempotency_key=f"async-example-{i}",
                )
                for i in range(5)
            )
        )
        for order in orders:
            print(order.order_id, order.status.value, order.average_price)


asyncio.run(main())
