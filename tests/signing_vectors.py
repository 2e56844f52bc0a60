"""The published signing vectors, loaded once for the signing tests.

``tests/vectors/signing.json`` holds the venues' own documented signing examples (and a few
cross-checked against ccxt's signer): the keys in it are the ones the venues print in their
API docs, so they sit on the secret scanner's allowlist (tools/secret-allowlist.txt). They
ship with the repository, so the signing tests run in every clone; tests are parametrized
by vector id, not by vector content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

VECTORS_FILE = Path(__file__).resolve().parent / "vectors" / "signing.json"


def _load_vectors() -> dict[str, dict[str, Any]]:
    """All vectors by id."""
    data = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return {v["id"]: v for v in data["vectors"]}


VECTORS = _load_vectors()


def vector_ids(select: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Vector ids for parametrize; an empty selection is a broken vector file, not a skip."""
    ids = [vid for vid, v in VECTORS.items() if select(v)]
    if not ids:
        raise LookupError(f"no signing vector matches the selection in {VECTORS_FILE}")
    return ids
