"""Results as tables: short reprs, HTML in Jupyter, and exact pandas frames.

Every result model (orders, fills, balances, instruments, market data) mixes in
:class:`Tabular`; every list a client returns is a :class:`Results`. In a notebook both
render as HTML tables; ``repr`` stays one short line per row; ``to_pandas()`` gives a
DataFrame whose money columns hold :class:`~decimal.Decimal` (exact, ``object`` dtype) unless
``floats=True`` is asked for. pandas is the ``notebook`` extra and is imported only when a
frame is built, so none of this costs anything on the order path.
"""

from __future__ import annotations

import enum
import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from .errors import InvalidRequest

__all__ = ["KeyedResults", "Results", "Tabular", "to_pandas"]

T = TypeVar("T")

#: Rows shown in HTML and in a list's repr; the rest are counted, never dropped silently.
MAX_ROWS = 50


def cell(value: Any) -> Any:
    """A value as a table shows it: enums as their value, nested rows as a count."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    return value


def _text(value: Any) -> str:
    value = cell(value)
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


class Tabular:
    """A record that is also a one-row table (mixed into the result models).

    ``_brief`` names the columns the short ``repr`` shows; the HTML view and the frame show
    every field."""

    _brief: ClassVar[tuple[str, ...]] = ()

    def _columns(self) -> Mapping[str, Any]:
        fields: Any = getattr(type(self), "model_fields", None)
        if fields is not None:
            return {name: getattr(self, name) for name in fields}
        return dict(vars(self))

    def __repr__(self) -> str:
        columns = self._columns()
        names = self._brief or tuple(columns)
        shown = []
        for name in names:
            value = columns.get(name)
            if value is None:
                continue
            plain = isinstance(value, str) and not isinstance(value, enum.Enum)
            shown.append(f"{name}={value!r}" if plain else f"{name}={_text(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _repr_html_(self) -> str:
        return _html([self])

    def to_pandas(self, *, floats: bool = False) -> Any:
        """This record as a one-row DataFrame (see :func:`to_pandas`)."""
        return to_pandas([self], floats=floats)


class Results(list[T], Generic[T]):
    """A list of results that shows itself as a table.

    It is an ordinary ``list`` (index it, iterate it, compare it with a list); it adds a
    short ``repr`` (one line per row), ``_repr_html_`` for Jupyter and :meth:`to_pandas`.
    Wrap any list of results yourself with ``Results(order.fills)``."""

    def __repr__(self) -> str:
        if not self:
            return "Results([])"
        lines = [f"  {item!r}," for item in self[:MAX_ROWS]]
        if len(self) > MAX_ROWS:
            lines.append(f"  ... {len(self) - MAX_ROWS} more")
        return "Results([\n" + "\n".join(lines) + "\n])"

    def _repr_html_(self) -> str:
        return _html(self)

    def to_pandas(self, *, floats: bool = False) -> Any:
        """These results as a DataFrame (see :func:`to_pandas`)."""
        return to_pandas(self, floats=floats)


class KeyedResults(dict[str, T], Generic[T]):
    """A dict of results by name (``client.instruments()``: rules by symbol) that shows its
    values as one table, like :class:`Results`. An ordinary ``dict`` otherwise."""

    def __repr__(self) -> str:
        return f"KeyedResults({len(self)} items: {', '.join(list(self)[:5])}" + (
            ", ...)" if len(self) > 5 else ")"
        )

    def _repr_html_(self) -> str:
        return _html(list(self.values()))

    def to_pandas(self, *, floats: bool = False) -> Any:
        """The values as a DataFrame, one row each (see :func:`to_pandas`)."""
        return to_pandas(self.values(), floats=floats)


def _rows(items: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        if isinstance(item, Tabular):
            rows.append(dict(item._columns()))
        elif isinstance(item, Mapping):
            rows.append(dict(item))
        else:
            raise InvalidRequest(
                f"to_pandas: a {type(item).__name__} is not a result row; pass orders, fills, "
                "balances or other securetrade results (or dicts)"
            )
    return rows


def _html(items: list[Any]) -> str:
    rows = _rows(items[:MAX_ROWS])
    if not rows:
        return "<p><em>no results</em></p>"
    names = list(dict.fromkeys(name for row in rows for name in row))
    head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_text(row.get(name)))}</td>" for name in names)
        + "</tr>"
        for row in rows
    )
    more = len(items) - len(rows)
    tail = f"<p>... {more} more rows</p>" if more > 0 else ""
    kind = html.escape(type(items[0]).__name__)
    caption = f"<caption>{kind} ({len(items)})</caption>" if len(items) > 1 else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def to_pandas(items: Iterable[Any], *, floats: bool = False) -> Any:
    """A DataFrame with one row per result (the ``notebook`` extra installs pandas).

    Money columns hold :class:`~decimal.Decimal` (exact; pandas stores them as ``object``)
    unless ``floats=True``, which converts them to ``float64`` for plotting and statistics
    (binary floats: not for accounting). Enums become their values, timestamps pandas
    datetimes, nested rows (an order's fills) their count.
    """
    if not isinstance(floats, bool):
        raise InvalidRequest("to_pandas: floats must be True or False")
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise InvalidRequest("to_pandas takes a list of securetrade results (orders, fills...)")
    try:
        import pandas as pd
    except ImportError:
        raise InvalidRequest(
            "to_pandas needs pandas: pip install 'securetrade[notebook]'"
        ) from None
    rows = [{name: cell(value) for name, value in row.items()} for row in _rows(items)]
    frame = pd.DataFrame(rows)
    for name in frame.columns:
        values = [v for v in frame[name] if v is not None and v == v]
        if not values:
            continue
        if all(isinstance(v, Decimal) for v in values):
            if floats:
                frame[name] = [None if v is None else float(v) for v in frame[name]]
                frame[name] = frame[name].astype("float64")
            else:
                frame[name] = frame[name].astype(object)
        elif all(isinstance(v, datetime) for v in values):
            frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame
