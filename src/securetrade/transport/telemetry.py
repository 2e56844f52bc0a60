"""Traces through the OpenTelemetry API (a no-op unless the application installs an SDK).

Span attributes are public values only: venue, operation, symbol, status. The tracer is
looked up on first use so that importing securetrade stays cheap.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

__all__ = ["span"]


@lru_cache(maxsize=1)
def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("securetrade")


def span(name: str, **attributes: str) -> AbstractContextManager[Any]:
    """A span named ``securetrade.<name>`` with only the given public attributes."""
    return _tracer().start_as_current_span(  # type: ignore[no-any-return]
        f"securetrade.{name}", attributes={f"securetrade.{k}": v for k, v in attributes.items()}
    )
