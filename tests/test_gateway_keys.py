"""Inbound keys in the keystore (narrowing only), the registry built from them, the FastAPI
dependency, and the middleware's independence from any framework."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway_server import ThreadServer
from securetrade.errors import InvalidRequest, KeyNotFound, ScopeError
from securetrade.gateway import GatewayAuth, GatewayMiddleware, KeyRegistry, Route
from securetrade.keys import KdfParams, KeyStore, Secret

FAST_KDF = KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore.create(tmp_path / "keys.json", Secret(secrets.token_hex(16)), kdf=FAST_KDF)


def test_inbound_keys_round_trip_with_hmac_secrets_encrypted_at_rest(
    store: KeyStore, tmp_path: Path
) -> None:
    secret = Secret(secrets.token_bytes(32))
    public = secrets.token_bytes(32)
    store.add_inbound("acme:bot", tenant="acme", scopes=["signals:write"], secret=secret)
    store.add_inbound(
        "acme:ed", tenant="acme", scopes=["read"], public_key=public, networks=["10.0.0.0/8"]
    )
    raw = (tmp_path / "keys.json").read_bytes()
    assert secret.expose() not in raw
    assert secret.expose().hex().encode() not in raw
    entries = {e.key_id: e for e in store.inbound()}
    assert entries["acme:bot"].secret is not None
    assert entries["acme:bot"].secret.expose() == secret.expose()
    assert entries["acme:ed"].public_key == public
    assert entries["acme:ed"].networks == ("10.0.0.0/8",)
    assert store.names() == []  # inbound keys are not outbound (venue) keys
    assert "acme" not in repr(entries["acme:bot"].secret)


def test_inbound_keys_can_only_be_narrowed(store: KeyStore) -> None:
    store.add_inbound(
        "acme:bot",
        tenant="acme",
        scopes=["signals:write", "read"],
        secret=Secret(secrets.token_bytes(32)),
        networks=["10.0.0.0/8"],
    )
    with pytest.raises(ScopeError):
        store.narrow_inbound("acme:bot", scopes=["signals:write", "admin"])
    with pytest.raises(ScopeError):
        store.narrow_inbound("acme:bot", networks=["11.0.0.0/8"])
    with pytest.raises(ScopeError):
        store.narrow_inbound("acme:bot", networks=[])  # no limit at all is wider
    store.narrow_inbound("acme:bot", scopes=["read"], networks=["10.1.0.0/16"])
    (entry,) = store.inbound()
    assert (entry.scopes, entry.networks) == (("read",), ("10.1.0.0/16",))
    with pytest.raises(InvalidRequest):
        store.add_inbound("acme:bot", tenant="acme", scopes=[], secret=Secret(b"x" * 32))
    store.remove_inbound("acme:bot")
    with pytest.raises(KeyNotFound):
        store.remove_inbound("acme:bot")
    with pytest.raises(KeyNotFound):
        store.get("@inbound")


def test_a_registry_from_the_keystore_serves_through_fastapi_dependencies(
    store: KeyStore,
) -> None:
    from fastapi import Depends, FastAPI

    from securetrade.gateway import GatewayPrincipal, require_scopes

    secret = Secret(secrets.token_bytes(32))
    store.add_inbound("acme:bot", tenant="acme", scopes=["signals:write"], secret=secret)
    api = FastAPI()

    @api.post("/signals")
    def post_signal(
        principal: GatewayPrincipal = Depends(require_scopes("signals:write")),  # noqa: B008
    ) -> dict[str, str]:
        return {"key_id": principal.key_id, "tenant": principal.tenant}

    @api.post("/admin")
    def admin(
        principal: GatewayPrincipal = Depends(require_scopes("admin")),  # noqa: B008
    ) -> dict[str, str]:
        return {"key_id": principal.key_id}

    app = GatewayMiddleware(
        api,
        keys=KeyRegistry.from_keystore(store),
        routes=[Route("POST", "/signals"), Route("POST", "/admin")],
    )
    with ThreadServer(app) as server:
        auth = GatewayAuth("acme:bot", secret)
        with httpx.Client(base_url=server.url, auth=auth) as client:
            ok = client.post("/signals", content=b"{}")
            refused = client.post("/admin", content=b"{}")
    assert ok.json() == {"key_id": "acme:bot", "tenant": "acme"}
    assert refused.status_code == 403


def test_the_middleware_imports_no_web_framework() -> None:
    code = (
        "import sys, json, securetrade.gateway as g; "
        "g.GatewayMiddleware; g.GatewayAuth; g.SharedState.memory(); "
        "print(json.dumps(sorted(m for m in ('starlette', 'fastapi', 'uvicorn') "
        "if m in sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(found) == []


def test_secrets_never_show_in_reprs_of_gateway_objects() -> None:
    from securetrade.gateway import GatewayKey

    raw = secrets.token_bytes(32)
    key = GatewayKey.hmac("acme:bot", Secret(raw), tenant="acme", scopes=["x"])
    auth = GatewayAuth("acme:bot", Secret(raw))
    for text in (repr(key), repr(auth), repr(KeyRegistry([key]))):
        assert raw.hex() not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(key)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(auth)


def test_docs_gateway_cites_only_tests_that_exist() -> None:
    from test_security_doc import ROOT, defined_tests, references

    cited = references((ROOT / "docs" / "gateway.md").read_text(encoding="utf-8"))
    assert len(cited) >= 15
    for path, name in cited:
        assert name in defined_tests(ROOT / path), f"docs/gateway.md cites {path}::{name}"
