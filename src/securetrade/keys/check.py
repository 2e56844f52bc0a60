"""Comparing what a key declares with what the venue says it may really do.

A key's scopes are a promise made locally; the venue's settings are what a thief holding
the secret could use. :func:`assess` compares the two (no I/O: the venue adapter parses
its own answer into :class:`KeyPermissions`), and :meth:`KeyCheck.enforce` warns or
refuses when the venue grants more than the key declares.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._checks import flag, instance
from ..errors import OverPermissionedKey
from .apikey import ApiKey, Scope

__all__ = ["KeyCheck", "KeyPermissions", "assess"]

log = logging.getLogger("securetrade.keys")


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """A venue's answer, normalised.

    ``switches`` maps each permission the venue reports as *enabled* to the scopes it
    grants (Binance's ``enableSpotAndMarginTrading`` grants trade and cancel together, so
    a key declaring only one of them is not over-permissioned for the other).
    ``ip_restricted`` is ``None`` when the venue does not say. ``unknown`` lists enabled
    permissions this SDK does not know; they are reported for review.
    """

    switches: Mapping[str, frozenset[Scope]]
    ip_restricted: bool | None
    unknown: tuple[str, ...] = ()

    @property
    def scopes(self) -> frozenset[Scope]:
        """Every scope the venue grants this key."""
        granted: frozenset[Scope] = frozenset()
        for scopes in self.switches.values():
            granted |= scopes
        return granted


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The outcome of checking a key at its venue.

    ``excess`` holds the venue switches that grant something the key does not declare
    (turn them off at the venue); ``missing`` the declared scopes the venue will refuse;
    ``problems`` one sentence per finding. ``ok`` is true when there is nothing to fix.
    """

    key_id_hint: str
    declared: frozenset[Scope]
    granted: frozenset[Scope]
    excess: Mapping[str, frozenset[Scope]]
    missing: frozenset[Scope]
    ip_restricted: bool | None
    problems: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the check found nothing to fix."""
        return not self.problems

    @property
    def can_withdraw(self) -> bool:
        """Whether the venue lets this key withdraw (whatever it declares)."""
        return Scope.WITHDRAW in self.granted

    def enforce(self, *, refuse: bool) -> KeyCheck:
        """Log each problem as a warning; with ``refuse`` raise :class:`OverPermissionedKey`."""
        flag("refuse", refuse)  # checked first: a truth that raises must not skip the refusal
        for problem in self.problems:
            log.warning("key check: %s", problem)
        for note in self.notes:
            log.info("key check: %s", note)
        if refuse and self.problems:
            raise OverPermissionedKey(
                f"key {self.key_id_hint} can do more than it declares: " + "; ".join(self.problems),
                report=self,
            )
        return self

    def lines(self) -> list[str]:
        """A short human-readable report (public values only)."""
        ip = {True: "yes", False: "NO", None: "not reported"}[self.ip_restricted]
        out = [
            f"key         {self.key_id_hint}",
            f"declared    {_names(self.declared)}",
            f"venue says  {_names(self.granted)}",
            f"IP allowlist {ip}",
        ]
        out += [f"PROBLEM     {p}" for p in self.problems]
        out += [f"note        {n}" for n in self.notes]
        out.append("verdict     " + ("ok" if self.ok else "over-permissioned"))
        return out

    def _repr_html_(self) -> str:
        """:meth:`lines` as a two-column table (Jupyter); labels are the first 12 columns."""
        rows = "".join(
            f"<tr><th>{html.escape(line[:12].strip())}</th>"
            f"<td>{html.escape(line[12:].strip())}</td></tr>"
            for line in self.lines()
        )
        return f"<table>{rows}</table>"


def assess(key: ApiKey, permissions: KeyPermissions) -> KeyCheck:
    """Compare ``key``'s declared scopes with the venue's ``permissions`` (no I/O)."""
    instance("key", key, ApiKey, optional=False)
    instance("permissions", permissions, KeyPermissions, optional=False)
    declared = key.scopes
    granted = permissions.scopes
    excess = {
        name: scopes
        for name, scopes in sorted(permissions.switches.items())
        if scopes and not scopes & declared
    }
    problems: list[str] = []
    if Scope.WITHDRAW in granted and Scope.WITHDRAW not in declared:
        problems.append(
            "withdrawals are enabled at the venue but not declared: a leaked secret could "
            "drain the account; disable withdrawals for this key"
        )
    for name, scopes in excess.items():
        if Scope.WITHDRAW not in scopes:
            problems.append(
                f"the venue permission '{name}' grants {_names(scopes)}, which the key does "
                "not declare; disable it"
            )
    if permissions.ip_restricted is False:
        problems.append(
            "the key has no IP allowlist: anyone holding the secret can use it from anywhere; "
            "restrict it to the bot's addresses"
        )
    notes: list[str] = []
    missing = declared - granted
    if missing:
        notes.append(f"declared but not granted by the venue: {_names(missing)}")
    if permissions.unknown:
        notes.append("permissions unknown to securetrade: " + ", ".join(permissions.unknown))
    return KeyCheck(
        key_id_hint=key.key_id_hint,
        declared=declared,
        granted=granted,
        excess=excess,
        missing=missing,
        ip_restricted=permissions.ip_restricted,
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _names(scopes: frozenset[Scope]) -> str:
    return ", ".join(sorted(s.value for s in scopes)) or "nothing"
