"""Install examples/third_party_venue for a test run: its package plus a dist-info.

``importlib.metadata`` finds entry points in any ``*.dist-info`` on ``sys.path``; writing
one from the example's own pyproject.toml is what ``pip install`` would leave behind,
without building a wheel or reaching a package index.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on 3.10
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_venue"


def install_example(site: Path) -> Path:
    """Lay the example out under ``site`` as an installed distribution; returns ``site``."""
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    for package in (EXAMPLE / "src").iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            shutil.copytree(
                package, site / package.name, ignore=shutil.ignore_patterns("__pycache__")
            )
    name = re.sub(r"[-_.]+", "_", meta["name"]).lower()
    info = site / f"{name}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site
