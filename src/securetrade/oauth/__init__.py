"""OAuth 2.0 for brokers: login (PKCE S256, ``state``, loopback redirect), tokens kept
encrypted in the keystore, refresh single-flight across processes, a bearer signer.

A venue whose requests carry ``Authorization: Bearer <token>`` takes a
:class:`TokenSource` and returns ``BearerSigner(source)`` from ``signer(key)``; its
``prepare`` adds ``signer.header()`` to the request (see ``docs/oauth.md``).
"""

from .credential import OAuthCredential
from .login import AuthorizationRequest, LoopbackListener, authorization_request, login
from .session import BearerSigner, TokenSource
from .tokens import TokenEndpoint

__all__ = [
    "AuthorizationRequest",
    "BearerSigner",
    "LoopbackListener",
    "OAuthCredential",
    "TokenEndpoint",
    "TokenSource",
    "authorization_request",
    "login",
]
