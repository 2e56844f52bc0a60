"""After ``mkdocs build``: every object a public package exports is on the API reference.

Usage: ``python tools/check_reference.py SITE_DIR``. Exits 1 naming what is missing. The
docstring test checks that each object has a docstring; this checks that the site shows
it (a package left out of docs/reference, or an export mkdocstrings did not render).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

# The packages whose __all__ is the API (tests/test_docstrings.py finds the same set).
PACKAGES = [
    "securetrade.clock",
    "securetrade.copy",
    "securetrade.core",
    "securetrade.errors",
    "securetrade.gateway",
    "securetrade.keys",
    "securetrade.models",
    "securetrade.nonce",
    "securetrade.oauth",
    "securetrade.policy",
    "securetrade.privacy",
    "securetrade.progress",
    "securetrade.ratelimit",
    "securetrade.record",
    "securetrade.signing",
    "securetrade.sim",
    "securetrade.streams",
    "securetrade.tables",
    "securetrade.transport",
    "securetrade.venues",
    "securetrade.venues.alpaca",
    "securetrade.venues.binance",
    "securetrade.venues.ccxt",
    "securetrade.venues.kraken",
    "securetrade.venues.oanda",
    "securetrade.verify",
]
# An export that shares its name with a submodule is rendered under its full path.
RENAMED = {
    "securetrade.copy.plan": "securetrade.copy.plan.plan",
    "securetrade.oauth.login": "securetrade.oauth.login.login",
}


def missing(site: Path) -> list[str]:
    """Exported names without an anchor on the reference pages."""
    anchors: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        anchors |= set(re.findall(r'id="(securetrade[\w.]*)"', page.read_text()))
    absent = []
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            full = f"{package}.{name}"
            if RENAMED.get(full, full) not in anchors:
                absent.append(full)
    top = importlib.import_module("securetrade")
    for name in top.__all__:
        if not any(anchor.endswith(f".{name}") for anchor in anchors):
            absent.append(f"securetrade.{name}")
    return absent


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0], "reference").is_dir():
        print("usage: python tools/check_reference.py SITE_DIR (a built site)", file=sys.stderr)
        return 2
    absent = missing(Path(argv[0]))
    for name in absent:
        print(f"not on the API reference: {name}")
    print(f"API reference: {'complete' if not absent else f'{len(absent)} missing'}")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
