"""The published signing vectors, loaded once for the signing tests.

They live outside the repository (``<repo>/../shared/vectors/signing.json``, or the file
named by ``SECURETRADE_VECTORS``). Their secrets are read at run time only and are never
copied into test files; tests are parametrized by vector id, not by vector content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VECTORS = REPO_ROOT / ".." / "shared" / "vectors" / "signing.json"


def _load_vectors() -> tuple[dict[str, dict[str, Any]], str | None]:
    """All vectors by id, or the reason they cannot be used."""
    path = Path(os.environ.get("SECURETRADE_VECTORS") or DEFAULT_VECTORS)
    if not path.is_file():
        return {}, f"signing vectors not found at {path} (set SECURETRADE_VECTORS to the file)"
    data = json.loads(path.read_text(encoding="utf-8"))
    return {v["id"]: v for v in data["vectors"]}, None


VECTORS, VECTORS_MISSING = _load_vectors()
needs_vectors = pytest.mark.skipif(VECTORS_MISSING is not None, reason=VECTORS_MISSING or "")


def vector_ids(select: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """Vector ids for parametrize; one skipped placeholder when the file is absent."""
    if VECTORS_MISSING is not None:
        return [pytest.param("missing", marks=pytest.mark.skip(reason=VECTORS_MISSING))]
    return [vid for vid, v in VECTORS.items() if select(v)]
