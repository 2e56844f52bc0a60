"""The import and memory rows measure imports, not compilation: every side runs from bytecode.

Under ``PYTHONDONTWRITEBYTECODE=1`` an editable install would compile every securetrade
module from source at each launch while ccxt, installed from a wheel, reads the ``.pyc``
files pip wrote. The rows give every child one private bytecode cache, filled by a warm-up.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import _process


def test_children_share_a_private_bytecode_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = _process._child_env(str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == os.path.join(str(tmp_path), "pycache")


def test_the_warm_up_leaves_our_modules_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as on this project's machines
    assert _process._warm_up({"ours": _process.OURS}, str(tmp_path)) is None
    caches = list((tmp_path / "pycache").rglob("*.pyc"))
    cached = {path.name.split(".")[0] for path in caches}
    packages = {path.parent.name for path in caches if path.name.startswith("__init__.")}
    assert {"client", "orders", "journal"} <= cached
    assert "models" in packages  # securetrade.models is a package
    # What the row then measures: a launch that finds them all and compiles nothing.
    compiled = {path: path.stat().st_mtime_ns for path in (tmp_path / "pycache").rglob("*.pyc")}
    assert _process._failure(_process._run(_process.OURS, str(tmp_path))) is None
    after = {path: path.stat().st_mtime_ns for path in (tmp_path / "pycache").rglob("*.pyc")}
    assert after == compiled


def test_a_failing_side_is_reported_by_name(tmp_path: Path) -> None:
    problem = _process._warm_up({"ours": "raise SystemExit('broken')"}, str(tmp_path))
    assert problem is not None
    assert problem.startswith("ours failed: exit 1")
