"""``import securetrade`` stays lean: what a bot's first order does not need loads on first use.

Each check runs in a fresh interpreter, since this one has imported everything already. The
order goes to the simulator over pinned TLS on 127.0.0.1, so the whole first-order path
(policy, journal, limiter, signing, pin check) runs in the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import securetrade
from securetrade.keys import ApiKey
from securetrade.sim import HttpsServer

# Loaded on first use only; none is on the path of import, one client and its first order.
NOT_FOR_FIRST_ORDER = [
    "securetrade.keys.keystore",
    "securetrade.keys.keystore_entries",
    "securetrade.keys.keystore_file",
    "securetrade.keys.providers",
    "securetrade.policy.anomaly",
    "securetrade.record.trail",
    "securetrade.core.redis_journal",
    "securetrade.nonce.file",
    "securetrade.nonce.redis_backend",
    "securetrade.transport.aio",
    "securetrade.venues.ccxt",
    "securetrade.venues.kraken",
    "securetrade.verify",
    "securetrade.gateway",
    "securetrade.sim",
    "securetrade.cli",
    "asyncio",
    "aiohttp",
    "ccxt",
    "fastapi",
    "keyring",
    "redis",
    "starlette",
    "tenacity",
    "uvicorn",
]
# Needed by the first order (pin check, spans), but not to import and build a client.
NOT_FOR_A_CLIENT = [*NOT_FOR_FIRST_ORDER, "cryptography", "opentelemetry", "statistics"]

CHILD = textwrap.dedent(
    """
    import json, os, sys

    def loaded(names):
        return sorted(n for n in names if n in sys.modules)

    import securetrade
    from securetrade import ApiKey, Client, LimitOrder

    key = ApiKey("binance", os.environ["ST_KEY_ID"], os.environ["ST_SECRET"],
                 scopes=["read", "trade"])
    client = Client(key, base_url=os.environ["ST_URL"], pins=json.loads(os.environ["ST_PINS"]),
                    cadata=os.environ["ST_CA"], journal=":memory:")
    report = {"client": loaded(json.loads(os.environ["ST_NOT_FOR_A_CLIENT"]))}
    order = client.place_order(
        LimitOrder(symbol="BTCUSDT", side="BUY", quantity="0.01", price="60000"),
        idempotency_key="lazy-import-1",
    )
    client.close()
    report["status"] = order.status.value
    report["order"] = loaded(json.loads(os.environ["ST_NOT_FOR_FIRST_ORDER"]))
    print(json.dumps(report))
    """
)


def _python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_first_order_loads_none_of_the_lazy_modules(server: HttpsServer, key: ApiKey) -> None:
    env = {
        **os.environ,
        "ST_KEY_ID": key.key_id,
        "ST_SECRET": key.secret.expose().decode(),
        "ST_URL": server.base_url,
        "ST_PINS": json.dumps({host: list(pins) for host, pins in server.pins.items()}),
        "ST_CA": server.ca_pem,
        "ST_NOT_FOR_A_CLIENT": json.dumps(NOT_FOR_A_CLIENT),
        "ST_NOT_FOR_FIRST_ORDER": json.dumps(NOT_FOR_FIRST_ORDER),
    }
    report = json.loads(_python(CHILD, env))
    assert report["status"] == "NEW"  # the order really went through every layer
    assert report["client"] == [], "loaded by import + one client"
    assert report["order"] == [], "loaded by the first order"


def test_a_lazy_name_loads_its_module_on_first_use() -> None:
    code = textwrap.dedent(
        """
        import sys, securetrade
        assert "securetrade.keys.keystore" not in sys.modules
        store = securetrade.KeyStore
        assert "securetrade.keys.keystore" in sys.modules
        assert store is sys.modules["securetrade.keys.keystore"].KeyStore
        assert store.__module__ == "securetrade", store.__module__
        assert "KeyStore" in vars(securetrade)  # cached: later reads are plain lookups
        assert "securetrade.record.trail" not in sys.modules  # only what was asked for
        from securetrade.record import AuditTrail, verify_path
        from securetrade.nonce import FileNonceSource
        from securetrade.core import RedisJournal
        from securetrade.policy import AnomalyMonitor
        from securetrade.keys import key_from_env
        print("ok")
        """
    )
    assert _python(code).split() == ["ok"]


def test_star_import_and_dir_list_every_public_name() -> None:
    code = "from securetrade import *\n"
    code += "import json, securetrade\nprint(json.dumps(dir(securetrade)))"
    listed = set(json.loads(_python(code)))
    assert set(securetrade.__all__) <= listed


def test_every_public_name_resolves_and_shows_the_package() -> None:
    for name in securetrade.__all__:
        value = getattr(securetrade, name)
        module = getattr(value, "__module__", None)
        if isinstance(value, type):
            assert module == "securetrade", f"{name}: {module}"
    for package in ("keys", "policy", "record", "core", "nonce"):
        module = getattr(securetrade, package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"securetrade.{package}.{name}"


def test_unknown_names_are_attribute_errors() -> None:
    for module in (securetrade, securetrade.keys, securetrade.record):
        assert not hasattr(module, "KeyStoer")
