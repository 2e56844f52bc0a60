"""The subscription's Mailbox: the bounded FIFO between the stream and one consumer keeps
asyncio.Queue's guarantees (order, bound, waiting for room, an item never lost when its
waiter is cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from securetrade.streams.options import Mailbox


def test_items_come_out_in_order_and_the_bound_holds() -> None:
    async def main() -> None:
        box = Mailbox(3)
        for item in "abc":
            box.put_nowait(item)
        with pytest.raises(asyncio.QueueFull):
            box.put_nowait("d")
        assert box.qsize() == 3
        assert [await box.get() for _ in range(3)] == ["a", "b", "c"]
        assert box.qsize() == 0

    asyncio.run(main())


def test_a_waiting_consumer_is_woken_by_the_next_item() -> None:
    async def main() -> None:
        box = Mailbox(2)
        task = asyncio.create_task(box.get())
        await asyncio.sleep(0)
        assert not task.done()
        box.put_nowait("x")
        assert await asyncio.wait_for(task, 5) == "x"

    asyncio.run(main())


def test_put_waits_for_room_and_writers_keep_their_order() -> None:
    async def main() -> None:
        box = Mailbox(1)
        box.put_nowait(0)
        writers = [asyncio.create_task(box.put(n)) for n in (1, 2)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in writers)  # full: both wait
        got = [await box.get() for _ in range(3)]
        await asyncio.gather(*writers)
        assert got == [0, 1, 2]

    asyncio.run(main())


def test_an_item_whose_consumer_was_cancelled_goes_to_the_next_consumer() -> None:
    """Woken, then cancelled before it ran: the item stays, and the next waiting
    consumer is woken for it (nothing lost, nothing stuck)."""

    async def main() -> None:
        box = Mailbox(4)
        first = asyncio.create_task(box.get())
        second = asyncio.create_task(box.get())
        await asyncio.sleep(0)
        box.put_nowait("x")  # wakes the first ...
        first.cancel()  # ... which is cancelled before it takes the item
        assert await asyncio.wait_for(second, 5) == "x"
        assert first.cancelled()
        assert box.qsize() == 0

    asyncio.run(main())


def test_room_given_to_a_cancelled_writer_goes_to_the_next_writer() -> None:
    async def main() -> None:
        box = Mailbox(1)
        box.put_nowait(0)
        first = asyncio.create_task(box.put(1))
        second = asyncio.create_task(box.put(2))
        await asyncio.sleep(0)
        assert await box.get() == 0  # room for one: the first writer is woken ...
        first.cancel()  # ... and cancelled before it writes
        await asyncio.wait_for(second, 5)
        assert first.cancelled()
        assert [await box.get()] == [2]

    asyncio.run(main())
