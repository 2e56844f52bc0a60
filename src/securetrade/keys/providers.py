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

from .._checks import text
from ..errors import InvalidRequest, KeyNotFound
from .apikey import ApiKey, Environment, Scope, _member
from .secret import Secret

__all__ = ["env_names", "key_from_env"]


def env_names(venue: str, environment: Environment | str = Environment.LIVE) -> dict[str, str]:
    """The variable names for ``venue`` in ``environment``, by field.

    ``secret_file`` names a file holding the secret (a mounted container secret, a PEM);
    it is read when ``secret`` is not set.
    """
    env = _member(Environment, environment)
    venue = text("venue", venue)
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
    names = env_names(venue, environment)
    # Read only our variables, secrets wrapped at once; the mapping itself (all of
    # os.environ) never sits in a frame that can raise.
    if environ is not None and not isinstance(environ, Mapping):
        raise InvalidRequest("environ must be a mapping of variable names to values (or None)")
    found = _read(names, os.environ if environ is None else environ)
    del environ
    key_id = found.get("key_id")
    if not isinstance(key_id, str):
        raise KeyNotFound(f"{names['key_id']} is not set")
    secret = found.get("secret")
    if not isinstance(secret, Secret):
        file_name = found.get("secret_file")
        if not isinstance(file_name, str):
            raise KeyNotFound(f"neither {names['secret']} nor {names['secret_file']} is set")
        secret = _read_secret_file(Path(file_name))
        if secret is None:
            raise KeyNotFound(f"{names['secret_file']} names a file that cannot be read")
    scopes, symbols, kind = found.get("scopes"), found.get("symbols"), found.get("kind")
    passphrase = found.get("passphrase")
    failure = None
    try:
        return ApiKey(
            venue,
            key_id,
            secret,
            scopes=_list(scopes if isinstance(scopes, str) else None, default=[Scope.READ.value]),
            kind=kind if isinstance(kind, str) else "hmac",
            environment=environment,
            symbols=None if not isinstance(symbols, str) else _list(symbols, default=[]),
            passphrase=passphrase if isinstance(passphrase, Secret) else None,
        )
    except InvalidRequest as exc:
        failure = exc.message
    raise InvalidRequest(f"environment key for {venue}: {failure}")


def _read(names: dict[str, str], source: Mapping[str, str]) -> dict[str, str | Secret]:
    """The set, non-empty variables among ``names``, by field; secrets as :class:`Secret`.
    Never raises: a value that is not text counts as unset."""
    found: dict[str, str | Secret] = {}
    for field, name in names.items():
        value = source.get(name)
        if not isinstance(value, str) or not value:
            continue
        if field not in ("secret", "passphrase"):
            found[field] = value
            continue
        try:  # os.environ keeps undecodable bytes as surrogates: give the bytes back
            found[field] = Secret(value.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            continue  # not text any venue could have issued: as good as unset
    return found


def _read_secret_file(path: Path) -> Secret | None:
    try:
        content = path.read_bytes().strip()
    except OSError:
        return None
    return Secret(content) if content else None


def _list(text: str | None, *, default: list[str]) -> list[str]:
    if text is None:
        return default
    return [part.strip() for part in text.split(",") if part.strip()]
