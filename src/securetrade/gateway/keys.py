"""Who may call the gateway: senders' keys with a tenant, scopes and allowed networks.

The signature check itself is :class:`securetrade.verify.InboundKey`'s (HMAC-SHA256 with
the shared secret, or Ed25519 with the sender's public key): the gateway adds the tenant
the key belongs to and the addresses it may call from. An unknown key id is answered by a
decoy key of the same kind, so it costs the same time as a known one and the answer says
nothing about which ids exist.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._checks import as_text, instance, own_methods, safe_repr, text
from ..errors import InvalidRequest
from ..keys import KeyKind, Secret
from ..verify import InboundKey
from ..verify.scheme import KEY_ID

if TYPE_CHECKING:
    from ..keys import KeyStore

__all__ = ["GatewayKey", "GatewayPrincipal", "KeyRegistry"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class GatewayPrincipal:
    """Who a verified request is from: put in ``scope["auth"]`` (Starlette's ``request.auth``)."""

    key_id: str
    tenant: str
    scopes: frozenset[str]

    def allows(self, *scopes: str) -> bool:
        """Whether this key holds every one of ``scopes``."""
        for scope in scopes:
            text("scope", scope)
        return all(scope in self.scopes for scope in scopes)


class GatewayKey:
    """A sender's key at the gateway. Build with :meth:`hmac` or :meth:`ed25519`."""

    __slots__ = ("_inbound", "kind", "networks", "principal")

    def __init__(
        self,
        inbound: InboundKey,
        kind: KeyKind,
        tenant: str,
        networks: Iterable[str],
    ) -> None:
        if not isinstance(tenant, str) or not KEY_ID(tenant):
            raise InvalidRequest("tenant must be 1-128 characters of [A-Za-z0-9_.:/-]")
        instance("inbound", inbound, InboundKey, optional=False)
        if isinstance(networks, str):
            raise InvalidRequest("networks must be a list of CIDR strings, not one string")
        try:
            nets = tuple(ipaddress.ip_network(n) for n in networks)
        except (TypeError, ValueError):
            raise InvalidRequest("networks must be CIDR blocks like 192.0.2.0/24") from None
        self._inbound = inbound
        self.kind = kind
        self.networks: tuple[_Network, ...] = nets
        found = inbound.principal
        self.principal = GatewayPrincipal(found.key_id, tenant, found.scopes)

    @classmethod
    def hmac(
        cls,
        key_id: str,
        secret: Secret,
        *,
        tenant: str,
        scopes: Iterable[str] = (),
        networks: Iterable[str] = (),
    ) -> GatewayKey:
        """A shared-secret key (base64 HMAC-SHA256 signatures)."""
        if not isinstance(secret, Secret):
            raise InvalidRequest("the HMAC secret must be a securetrade.keys.Secret")
        inbound = InboundKey.hmac(key_id, secret, name=tenant, scopes=scopes)
        return cls(inbound, KeyKind.HMAC, tenant, networks)

    @classmethod
    def ed25519(
        cls,
        key_id: str,
        public_key: bytes,
        *,
        tenant: str,
        scopes: Iterable[str] = (),
        networks: Iterable[str] = (),
    ) -> GatewayKey:
        """A public key (raw 32 bytes or PEM): the gateway can verify but never sign."""
        inbound = InboundKey.ed25519(key_id, public_key, name=tenant, scopes=scopes)
        return cls(inbound, KeyKind.ED25519, tenant, networks)

    def check(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``message`` (constant time for HMAC)."""
        instance("message", message, bytes, optional=False)
        instance("signature", signature, bytes, optional=False)
        return self._inbound._check(message, signature)

    def reachable_from(self, address: str | None) -> bool:
        """Whether a request from ``address`` may use this key (any, without networks)."""
        instance("address", address, str)
        if not self.networks:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    @safe_repr
    def __repr__(self) -> str:
        return f"GatewayKey({self.principal.key_id!r}, tenant={self.principal.tenant!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a GatewayKey cannot be pickled")


def _decoy(kind: KeyKind) -> GatewayKey:
    """A key nobody holds, checked against for unknown key ids (so they cost the same)."""
    if kind is KeyKind.ED25519:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = Ed25519PrivateKey.generate().public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return GatewayKey.ed25519("decoy", raw, tenant="decoy")
    return GatewayKey.hmac("decoy", Secret(secrets.token_bytes(32)), tenant="decoy")


class KeyRegistry:
    """The keys the gateway accepts, by id. Replace it whole with :meth:`GatewayMiddleware.reload`.

    ``decoy_kind`` is the kind of key an unknown id is checked against; by default the
    kind most keys have, so an unknown id costs what a typical known one does.
    """

    def __init__(self, keys: Iterable[GatewayKey], *, decoy_kind: KeyKind | None = None) -> None:
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            raise InvalidRequest("a KeyRegistry holds a list of GatewayKey objects")
        self._keys: dict[str, GatewayKey] = {}
        for key in keys:
            if not isinstance(key, GatewayKey):
                raise InvalidRequest("a KeyRegistry holds GatewayKey objects")
            if key.principal.key_id in self._keys:
                raise InvalidRequest(f"two keys share the id {key.principal.key_id!r}")
            self._keys[key.principal.key_id] = key
        if decoy_kind is None:
            ed = sum(1 for k in self._keys.values() if k.kind is KeyKind.ED25519)
            decoy_kind = KeyKind.ED25519 if ed * 2 > len(self._keys) else KeyKind.HMAC
        self._decoy = _decoy(decoy_kind)

    @classmethod
    def from_keystore(cls, store: KeyStore, **options: Any) -> KeyRegistry:
        """The inbound keys registered in ``store`` (:meth:`KeyStore.add_inbound`)."""
        from ..keys import KeyStore

        instance("store", store, KeyStore, optional=False)
        unknown = sorted(set(options) - {"decoy_kind"})
        if unknown:
            raise InvalidRequest(f"KeyRegistry.from_keystore() takes decoy_kind=, not {unknown}")
        keys = []
        for entry in store.inbound():
            if entry.secret is not None:
                keys.append(
                    GatewayKey.hmac(
                        entry.key_id,
                        entry.secret,
                        tenant=entry.tenant,
                        scopes=entry.scopes,
                        networks=entry.networks,
                    )
                )
            else:
                assert entry.public_key is not None
                keys.append(
                    GatewayKey.ed25519(
                        entry.key_id,
                        entry.public_key,
                        tenant=entry.tenant,
                        scopes=entry.scopes,
                        networks=entry.networks,
                    )
                )
        return cls(keys, **options)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def lookup(self, key_id: str) -> tuple[GatewayKey, bool]:
        """``(key, True)`` for a known id, else ``(decoy, False)``: the caller goes on
        through the same checks either way and refuses at the signature."""
        plain = as_text(key_id)  # looked up in a dict: the caller's own hash never runs
        if plain is None:
            raise InvalidRequest(
                f"key_id must be text (the request's key id header){own_methods(key_id)}"
            )
        key = self._keys.get(plain)
        if key is None:
            return self._decoy, False
        return key, True

    @safe_repr
    def __repr__(self) -> str:
        return f"KeyRegistry({len(self._keys)} keys)"
