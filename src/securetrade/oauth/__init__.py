"""OAuth 2.0 for brokers: login (PKCE S256, ``state``, loopback redirect), tokens kept
encrypted in the keystore, refresh single-flight across processes, a bearer signer.

A client trades with an OAuth credential through an :class:`OAuthKey` (``Client(
OAuthKey(TokenSource(store, "alpaca"), scopes=[...]))``): a venue that takes bearer
tokens returns ``BearerSigner(key.source)`` from ``signer(key)``, and the request
pipeline renews the token ahead of expiry and once after a 401 (see ``docs/oauth.md``).
"""

from .credential import OAuthCredential
from .key import OAuthKey
from .login import AuthorizationRequest, LoopbackListener, authorization_request, login
from .session import BearerSigner, TokenSource
from .tokens import TokenEndpoint

__all__ = [
    "AuthorizationRequest",
    "BearerSigner",
    "LoopbackListener",
    "OAuthCredential",
    "OAuthKey",
    "TokenEndpoint",
    "TokenSource",
    "authorization_request",
    "login",
]
