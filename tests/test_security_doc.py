"""docs/security.md names a real test for every claim, so the threat model cannot rot.

Each ``tests/...py::name`` reference on the page must point at a file that exists and defines
a test function of that name (read with ast, so nothing is imported or run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def references(text: str) -> list[tuple[str, str]]:
    """Every (path, test name) pair the page cites, in order, with repeats."""
    return REFERENCE.findall(text)


def defined_tests(path: Path) -> set[str]:
    """Names of the test functions defined at module level or in ``Test*`` classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return {name for name in names if name.startswith("test_")}


def missing(text: str, root: Path) -> list[str]:
    """References on the page that do not resolve to a test under ``root``."""
    found: dict[str, set[str]] = {}
    gone: list[str] = []
    for relative, name in references(text):
        path = root / relative
        if relative not in found:
            found[relative] = defined_tests(path) if path.is_file() else set()
        if name not in found[relative]:
            gone.append(f"{relative}::{name}")
    return gone


def test_every_cited_test_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert missing(text, ROOT) == []


def test_the_page_cites_tests_for_every_owasp_item_and_threat() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert len(set(references(text))) >= 60
    for item in range(1, 11):
        row = next(line for line in text.splitlines() if line.startswith(f"| API{item} "))
        assert references(row), f"API{item} names no test"
    threats = [
        "Key leakage",
        "Replay",
        "Man in the middle",
        "Logic flaws",
        "Excessive permissions",
        "Rate abuse",
        "Duplicate orders",
        "Tampering with the audit trail",
        "A runaway bot or a stolen key",
    ]
    sections = re.split(r"^### ", text, flags=re.MULTILINE)
    for threat in threats:
        body = next(s for s in sections if s.startswith(threat))
        assert references(body.split("\n## ")[0]), f"{threat} names no test"
    assert "## Residual risks" in text


def test_the_checker_catches_a_wrong_reference(tmp_path: Path) -> None:
    """A renamed test or a misspelt path makes the check fail."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_here.py").write_text(
        "def test_present():\n    pass\n\nclass TestGroup:\n    def test_method(self):\n"
        "        pass\n",
        encoding="utf-8",
    )
    page = (
        "`tests/test_here.py::test_present` `tests/test_here.py::test_method` "
        "`tests/test_here.py::test_renamed` `tests/test_gone.py::test_present`"
    )
    assert missing(page, tmp_path) == [
        "tests/test_here.py::test_renamed",
        "tests/test_gone.py::test_present",
    ]


@pytest.mark.parametrize("bad", ["tests/test_here.py:test_x", "tests/test_here::test_x"])
def test_malformed_references_are_not_counted(bad: str) -> None:
    assert references(f"`{bad}`") == []
