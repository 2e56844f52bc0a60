"""Keys from the environment, with one set of variable names per venue and environment.

Separate names for live and test keys (``SECURETRADE_BINANCE_LIVE_KEY_ID`` versus
``SECURETRADE_BINANCE_TESTNET_KEY_ID``) mean a bot configured for the testnet cannot pick
up a live key by accident. Scopes default to ``read``: a key trades only when its
deployment says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidRequest, KeyNotFound
from .apikey import ApiKey, Environment, Scope
from .secret import Secret

__all__ = ["env_names", "key_from_env"]


def env_names(venue: str, environment: Environment | str = Environment.LIVE) -> dict[str, str]:
    """The variable names for ``venue`` in ``environment``, by field.

    ``secret_file`` names a file holding the secret (a mounted container secret, a PEM);
    it is read when ``secret`` is not set.
    """
    env = Environment(environment) if not isinstance(environment, Environment) else environment
    prefix = "SECURETRADE_" + re.sub(r"[^A-Z0-9]+", "_", venue.upper()) + f"_{env.name}_"
    fields = ("key_id", "secret", "secret_file", "passphrase", "scopes", "kind", "symbols")
    return {field: prefix + field.upper() for field in fields}


def key_from_env(
    venue: str,
    environment: Environment | str = Environment.LIVE,
    *,
    environ: Mapping[str, str] | None = None,
) -> ApiKey:
    """Build the key for ``venue`` in ``environment`` from the environment.

    Raises :class:`KeyNotFound` naming the missing variable (never a value).
    """
    source = os.environ if environ is None else environ
    names = env_names(venue, environment)
    key_id = source.get(names["key_id"])
    if not key_id:
        raise KeyNotFound(f"{names['key_id']} is not set")
    secret: Secret
    if source.get(names["secret"]):
        secret = Secret(source[names["secret"]])
    elif source.get(names["secret_file"]):
        path = Path(source[names["secret_file"]])
        try:
            secret = Secret(path.read_bytes().strip())
        except OSError:
            raise KeyNotFound(f"{names['secret_file']} names a file that cannot be read") from None
    else:
        raise KeyNotFound(f"neither {names['secret']} nor {names['secret_file']} is set")
    scopes = _list(source.get(names["scopes"]), default=[Scope.READ.value])
    symbols = source.get(names["symbols"])
    passphrase = source.get(names["passphrase"])
    try:
        return ApiKey(
            venue,
            key_id,
            secret,
            scopes=scopes,
            kind=source.get(names["kind"]) or "hmac",
            environment=environment,
            symbols=None if symbols is None else _list(symbols, default=[]),
            passphrase=passphrase or None,
        )
    except InvalidRequest as exc:
        raise InvalidRequest(f"environment key for {venue}: {exc.message}") from None


def _list(text: str | None, *, default: list[str]) -> list[str]:
    if text is None:
        return default
    return [part.strip() for part in text.split(",") if part.strip()]
