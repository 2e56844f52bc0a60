"""The gateway's body deadlines: one sweeping timer cuts off overdue reads as
``asyncio.timeout`` would, leaves reads that finish alone, and never swallows a
cancellation that came from elsewhere."""

from __future__ import annotations

import asyncio

import anyio

from securetrade.gateway.deadline import BodyDeadlines, SlowBody, _AnyioTimed


async def _read(deadlines: BodyDeadlines, arrives: asyncio.Event) -> str:
    try:
        async with deadlines.timed():
            await arrives.wait()
    except SlowBody:
        return "slow"
    return "read"


def test_an_overdue_read_is_cut_off_and_a_prompt_one_is_not() -> None:
    async def main() -> tuple[str, str, int]:
        deadlines = BodyDeadlines(0.2)
        slow, prompt = asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_read(deadlines, slow)),
            asyncio.create_task(_read(deadlines, prompt)),
        ]
        await asyncio.sleep(0.01)
        prompt.set()
        done = await asyncio.gather(*tasks)
        return done[0], done[1], len(deadlines._reading) + len(deadlines._expired)

    assert asyncio.run(main()) == ("slow", "read", 0)


def test_a_cancellation_from_elsewhere_is_not_taken_for_a_slow_body() -> None:
    async def main() -> str:
        deadlines = BodyDeadlines(30.0)
        reader = asyncio.create_task(_read(deadlines, asyncio.Event()))
        await asyncio.sleep(0.01)
        reader.cancel()  # the server shuts down, say
        try:
            await reader
        except asyncio.CancelledError:
            return "cancelled"
        return "swallowed"

    assert asyncio.run(main()) == "cancelled"


def test_a_cut_off_task_is_not_left_cancelled() -> None:
    """After a slow-body refusal the task goes on (to answer 408): its cancel count is
    taken back, so its next await does not raise."""

    async def main() -> str:
        deadlines = BodyDeadlines(0.05)
        outcome = await _read(deadlines, asyncio.Event())
        await asyncio.sleep(0.01)  # would raise CancelledError if the cancel were left
        task = asyncio.current_task()
        assert task is not None
        return f"{outcome}:{task.cancelling()}"

    assert asyncio.run(main()) == "slow:0"


def test_the_anyio_fallback_gives_the_same_answer() -> None:
    """What trio and Python 3.10 get (anyio's fail_after), run here on asyncio."""

    async def main() -> str:
        try:
            async with _AnyioTimed(0.05):
                await anyio.sleep(5)
        except SlowBody:
            return "slow"
        return "read"

    assert anyio.run(main) == "slow"
