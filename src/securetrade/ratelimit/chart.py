"""``client.limits``: a client's rate-limit windows for a person, now and over time.

``usage()`` is each window's shared occupancy now (every process drawing on the backend);
``history()`` and ``plot()`` show this process's grants over the last minutes against each
window's usable capacity. matplotlib is the ``notebook`` extra, imported only by ``plot``.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest

if TYPE_CHECKING:
    from .history import Series
    from .limiter import RateLimiter
    from .model import Usage

__all__ = ["Limits"]


class Limits:
    """A view of one client's :class:`~securetrade.ratelimit.RateLimiter` (``client.limits``)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def usage(self) -> list[Usage]:
        """Every window now: units used of the usable capacity (shared backends included)."""
        return self._limiter.usage()

    def history(self, minutes: float = 5.0, *, points: int = 300) -> list[Series]:
        """Each window's occupancy by this process over the last ``minutes``."""
        return self._limiter.usage_history(minutes, points=points)

    def plot(self, minutes: float = 5.0, *, ax: Any = None) -> Any:
        """A chart of each window's occupancy (percent of its usable capacity) over the last
        ``minutes``, one line per window, with the 100% line the limiter never crosses.

        Draws on ``ax`` if given (a matplotlib Axes), else on a new figure. Returns the
        figure, which Jupyter shows as an image. Needs the ``notebook`` extra."""
        series = self.history(minutes)
        if ax is None:
            figure = _chart_class()(figsize=(9, 4), layout="constrained")
            ax = figure.add_subplot()
        elif not hasattr(ax, "plot") or not hasattr(ax, "axhline"):
            raise InvalidRequest("ax must be a matplotlib Axes (or None for a new figure)")
        for one in series:
            share = [100.0 * used / one.capacity for used in one.used]
            ax.plot([-s / 60.0 for s in one.seconds_ago], share, label=one.label)
        ax.axhline(100.0, color="red", linestyle="--", linewidth=1, label="usable capacity")
        ax.set_xlabel("minutes ago")
        ax.set_ylabel("window occupancy (% of usable capacity)")
        ax.set_xlim(-float(minutes), 0.0)
        ax.set_ylim(0.0, 110.0)
        venue = self._limiter.venue or "rate limits"
        ax.set_title(f"{venue}: rate-limit windows, last {minutes:g} min (this process)")
        ax.legend(loc="upper left", fontsize="small")
        return ax.figure

    def __repr__(self) -> str:
        return f"Limits(venue={self._limiter.venue!r}, windows={len(self.usage())})"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (
                    u.limit.kind,
                    f"{u.limit.seconds:g}s",
                    f"{u.limit.scope.value}:{u.scope_id}",
                    u.used,
                    u.capacity,
                    f"{100.0 * u.used / u.capacity:.0f}%",
                )
            )
            + "</tr>"
            for u in self.usage()
        )
        head = "".join(
            f"<th>{name}</th>"
            for name in ("kind", "window", "scope", "used", "capacity", "occupancy")
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_CHART: Any = None


def _chart_class() -> Any:
    """A matplotlib ``Figure`` that Jupyter shows as an image by itself (``_repr_png_``),
    without pyplot and its global figures: ``plot()`` keeps no state between calls."""
    global _CHART
    if _CHART is None:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise InvalidRequest(
                "client.limits.plot() needs matplotlib: pip install 'securetrade[notebook]'"
            ) from None

        class Chart(Figure):
            """The rate-limit chart: a Figure that renders itself in a notebook."""

            def _repr_png_(self) -> bytes:
                image = io.BytesIO()
                self.savefig(image, format="png")
                return image.getvalue()

        _CHART = Chart
    return _CHART
