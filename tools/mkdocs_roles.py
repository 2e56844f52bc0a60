"""mkdocs hook: the docstrings' Sphinx roles (``:class:`~securetrade.keys.ApiKey```) as
code, linked to the API reference where the name resolves there.

mkdocstrings renders a role as ``:class:<code>~a.b.C</code>``; this turns it into an
optional cross-reference that mkdocs-autorefs resolves after every page is built (a
name it cannot find stays plain code, without a warning). ``~`` shows the last part only,
as Sphinx does.
"""

from __future__ import annotations

import html
import re
from typing import Any

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")


def _reference(match: re.Match[str]) -> str:
    short, name, call = match.group(1), match.group(2), match.group(3) or ""
    shown = name.rsplit(".", 1)[-1] if short else name
    identifier = html.escape(name, quote=True)
    return f'<autoref optional identifier="{identifier}"><code>{shown}{call}</code></autoref>'


def on_page_content(html_text: str, **_: Any) -> str:
    """Rewrite every role on the page (called by mkdocs for each page)."""
    return _ROLE.sub(_reference, html_text)
