"""Event loops for transport tests."""

from __future__ import annotations

import asyncio
from typing import Any


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop that, like Windows' proactor loop, cannot call back on a readable or
    writable socket: ``add_reader`` and ``add_writer`` raise NotImplementedError. Its own
    transports still work (they use the loop's private hooks), so the async transport's
    fallback onto asyncio's streams runs here as it would on Windows."""

    def add_reader(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("no add_reader on this loop")

    def add_writer(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("no add_writer on this loop")
