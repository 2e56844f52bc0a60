"""Progress bars for long work (recovery over many intents, a large copy fan-out).

A bar is shown only where someone watches: a terminal, or a Jupyter kernel; never in a
log file, a service or CI, and never for short work (under :data:`THRESHOLD` items). tqdm
is the ``notebook`` extra: without it nothing is shown and nothing fails. The hooks sit
outside the order path: placing an order never passes through here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ._checks import flag

__all__ = ["THRESHOLD", "bar", "interactive", "progress", "show_progress"]

T = TypeVar("T")

#: Fewer items than this finish too fast for a bar to help.
THRESHOLD = 50

_forced: bool | None = None


def show_progress(enabled: bool | None) -> None:
    """Force progress bars on (``True``) or off (``False``), or back to automatic (``None``:
    shown in a terminal or a notebook, hidden otherwise)."""
    global _forced
    if enabled is not None:
        flag("enabled", enabled)
    _forced = enabled


def interactive() -> bool:
    """Whether a person is likely watching: a Jupyter kernel, or stderr on a terminal."""
    if _forced is not None:
        return _forced
    ipython = sys.modules.get("IPython")  # only a running kernel counts, not an import
    if ipython is not None:
        shell = ipython.get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # stderr closed
        return False


def bar(*, total: int, desc: str, unit: str = "item") -> Any | None:
    """A tqdm bar to ``update()`` and ``close()`` as work finishes in any order, or ``None``
    when the work is short, nobody watches, or tqdm is not installed."""
    if total < THRESHOLD or not interactive():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)


def progress(items: Iterable[T], *, total: int, desc: str, unit: str = "item") -> Iterator[T]:
    """``items``, with a bar when the work is long and someone watches (else untouched)."""
    shown = bar(total=total, desc=desc, unit=unit)
    if shown is None:
        return iter(items)
    return _counted(items, shown)


def _counted(items: Iterable[T], shown: Any) -> Iterator[T]:
    try:
        for item in items:
            yield item
            shown.update(1)
    finally:
        shown.close()
