"""How long each kind of personal data is kept: a period per retention class and per store.

Classes apply to the audit trail's data keys: ``trade_record`` (order and fill facts tied
to a person, kept for the legal duty: MiFID II five years by default), ``relationship``
(onboarding, offboarding, quarantine: kept while useful for disputes) and ``security``
(gateway refusals and lockouts). Stores apply to the operational files: the journal's
finished rows and tombstones, the copy outbox, gateway nonces, logs. The sweep
(:meth:`securetrade.privacy.Privacy.sweep`) enforces them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import as_text, own_methods, shown, text
from .._checks import path as checked_path
from ..errors import InvalidRequest

__all__ = ["RetentionPolicy", "parse_period"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}
_PERIOD = re.compile(r"^([0-9]{1,6})([smhdwy])$")

DEFAULT_CLASSES = {"trade_record": "5y", "relationship": "90d", "security": "1y"}
DEFAULT_KINDS = {
    "order": "trade_record",
    "fill": "trade_record",
    "http.": "trade_record",
    "copy.placed": "trade_record",
    "copy.": "relationship",
    "gateway.": "security",
}
DEFAULT_STORES = {
    "journal.terminal": "7d",
    "journal.tombstone": "7d",
    "copy.outbox": "90d",
    "gateway.nonces": "10m",
    "logs": "30d",
}


def parse_period(text: str) -> float:
    """Seconds in a period such as ``"30d"``, ``"5y"``, ``"10m"``."""
    match = _PERIOD.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidRequest(
            f"retention period {shown(text)}: "
            "write a whole number and a unit (s m h d w y), e.g. 30d"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class RetentionPolicy:
    """Periods (as written, e.g. ``"5y"``) per audit class and per store, and which class
    each audit event kind belongs to (longest matching prefix; ``default_class`` else)."""

    classes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CLASSES))
    kinds: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_KINDS))
    stores: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STORES))
    default_class: str = "relationship"

    def __post_init__(self) -> None:
        for name in ("classes", "kinds", "stores"):
            if not isinstance(getattr(self, name), Mapping):
                raise InvalidRequest(f"RetentionPolicy.{name} must be a mapping of names to text")
        text("RetentionPolicy.default_class", self.default_class)
        for period in (*self.classes.values(), *self.stores.values()):
            parse_period(period)
        for target in (*self.kinds.values(), self.default_class):
            if target not in self.classes:
                raise InvalidRequest(f"retention class {shown(target)} has no period in classes")

    @classmethod
    def load(cls, path: str | Path) -> RetentionPolicy:
        """A policy from a JSON file ``{"classes": {...}, "kinds": {...}, "stores": {...}}``;
        what it leaves out keeps the default."""
        checked_path("the retention policy path", path)
        try:
            data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"cannot read the retention policy {path}: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k, {}), dict) for k in ("classes", "kinds", "stores")
        ):
            raise InvalidRequest(f"{path}: expected an object with classes, kinds and stores")
        return cls(
            classes={**DEFAULT_CLASSES, **data.get("classes", {})},
            kinds={**DEFAULT_KINDS, **data.get("kinds", {})},
            stores={**DEFAULT_STORES, **data.get("stores", {})},
            default_class=str(data.get("default_class", "relationship")),
        )

    def class_of(self, kind: str) -> str:
        """The retention class of an audit event ``kind`` (by its longest matching prefix)."""
        text("kind", kind)
        best = ""
        for prefix in self.kinds:
            if kind.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.kinds[best] if best else self.default_class

    def seconds(self, retention_class: str) -> float:
        """How long records of ``retention_class`` are kept, in seconds."""
        return parse_period(_known("retention class", retention_class, self.classes))

    def store_seconds(self, store: str) -> float:
        """How long ``store`` keeps its rows, in seconds."""
        return parse_period(_known("store", store, self.stores))

    def report(self) -> dict[str, Any]:
        """Each retention class and store with its period, for a privacy notice."""
        return {
            "audit_classes": dict(self.classes),
            "event_kinds": dict(self.kinds),
            "stores": dict(self.stores),
        }


def _known(what: str, name: object, table: Mapping[str, str]) -> str:
    """The period ``table`` gives ``name``; an unknown name is refused, naming the known."""
    plain = as_text(name)  # a str subclass's own hash or == never runs in the lookup
    if plain is None or plain not in table:
        raise InvalidRequest(
            f"unknown {what} {shown(name, 60)}{own_methods(name)}; one of: "
            f"{', '.join(sorted(table))}"
        )
    return table[plain]
