"""``securetrade oauth``: log in to a broker with OAuth 2.0, see what is stored.

``login VENUE`` opens the authorization URL in a browser (or prints it with
``--no-browser``), waits on ``http://127.0.0.1:<port>/callback`` for at most ``--timeout``
seconds, exchanges the code with its PKCE verifier over pinned TLS (``--pin``, repeat;
``--unsafe-disable-pinning`` verifies by CA only) and stores client and tokens, encrypted,
under ``--name`` (default: the venue). ``show NAME`` prints what is stored, tokens as
"set". The client secret comes from a file or a named environment variable, never the
command line.

Exit status: 0 done, 1 refused or failed (the reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any
from urllib.parse import urlsplit

from .keys import _as_secret, _open, _read_file, _say

__all__ = ["register"]


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    from ..errors import InvalidRequest
    from ..transport.tls import PinSet, pinned_ssl_context, verified_ssl_context

    if args.pin:
        host = urlsplit(args.token_url).hostname
        return pinned_ssl_context(PinSet({str(host): list(args.pin)}), cafile=args.cafile)
    if args.unsafe_disable_pinning:
        return verified_ssl_context(cafile=args.cafile)
    raise InvalidRequest(
        "pin the token endpoint: --pin sha256/... (twice: the key and a backup), or pass "
        "--unsafe-disable-pinning to trust any certificate the CAs vouch for"
    )


def _login(args: argparse.Namespace) -> int:
    import webbrowser

    from ..errors import InvalidRequest
    from ..oauth import OAuthCredential, TokenEndpoint, login

    secret = None
    if args.client_secret_file:
        secret = _as_secret(_read_file(args.client_secret_file).strip())
    elif args.client_secret_env:
        secret = _as_secret(os.environ.get(args.client_secret_env, "").encode())
        if secret is None:
            raise InvalidRequest(f"{args.client_secret_env} is not set")
    credential = OAuthCredential(
        venue=args.venue,
        client_id=args.client_id,
        client_secret=secret,
        token_url=args.token_url,
        authorize_url=args.authorize_url,
        scope=args.scope or "",
    )
    store = _open(args, create=True)

    def show(url: str) -> None:
        _say("open this URL to approve (it holds no secret):", err=True)
        print(url)
        if not args.no_browser:
            webbrowser.open(url)

    with TokenEndpoint(
        args.token_url, ssl_context=_context(args), venue=args.venue, client_auth=args.client_auth
    ) as endpoint:
        fresh = login(
            store,
            args.name or args.venue,
            credential,
            endpoint=endpoint,
            open_browser=show,
            timeout=args.timeout,
            port=args.port,
        )
    _say(f"logged in to {args.venue}: stored as {args.name or args.venue}")
    for line in _lines(fresh):
        _say(line)
    return 0


def _show(args: argparse.Namespace) -> int:
    for line in _lines(_open(args).oauth(args.name)):
        _say(line)
    return 0


def _lines(credential: Any) -> list[str]:
    def when(value: Any) -> str:
        return "unknown" if value is None else value.isoformat()

    return [
        f"venue          {credential.venue}",
        f"client id      {credential.client_id}",
        f"scope          {credential.scope or '-'}",
        f"access token   {'set' if credential.access_token else 'none'}"
        f" (expires {when(credential.expires_at)})",
        f"refresh token  {'set' if credential.refresh_token else 'none'}"
        f" (renewable until {when(credential.refresh_expires_at)})",
        f"obtained       {when(credential.obtained_at)}",
    ]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``oauth`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--keystore", help="keystore file (default: the config dir)")
    source = common.add_mutually_exclusive_group()
    source.add_argument("--passphrase-file", help="read the keystore passphrase from a file")
    source.add_argument("--keyring", action="store_true", help="open it with the OS keyring")

    oauth = commands.add_parser(
        "oauth",
        help="OAuth 2.0 logins to brokers",
        description=(
            "Sign in to a broker with OAuth 2.0 (authorization code with PKCE) and keep the "
            "tokens encrypted in the keystore."
        ),
    )
    sub = oauth.add_subparsers(dest="oauth_command", required=True)

    log_in = sub.add_parser(
        "login",
        parents=[common],
        help="authorize and store the tokens",
        description=(
            "Open the broker's authorization page, receive the code on a loopback-only redirect, "
            "and store the tokens."
        ),
    )
    log_in.add_argument("venue")
    log_in.add_argument("--name", help="keystore name of the credential (default: the venue)")
    log_in.add_argument("--client-id", required=True)
    log_in.add_argument("--authorize-url", required=True)
    log_in.add_argument("--token-url", required=True)
    log_in.add_argument("--scope", help="space-separated scopes to ask for")
    log_in.add_argument("--client-secret-file", help="the client secret, from a file (- stdin)")
    log_in.add_argument("--client-secret-env", help="the client secret, from this variable")
    log_in.add_argument(
        "--client-auth",
        choices=["client_secret_post", "client_secret_basic"],
        default="client_secret_post",
    )
    log_in.add_argument("--pin", action="append", help="SPKI pin of the token endpoint")
    log_in.add_argument("--cafile", help="CA bundle to verify the token endpoint with")
    log_in.add_argument("--unsafe-disable-pinning", action="store_true")
    log_in.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
    log_in.add_argument("--port", type=int, default=0, help="loopback port (default: any)")
    log_in.add_argument("--no-browser", action="store_true", help="only print the URL")
    log_in.set_defaults(run=_login)

    show = sub.add_parser(
        "show",
        parents=[common],
        help="what is stored (no tokens)",
        description=(
            "Show what is stored for an OAuth credential: expiries and scope, never a token."
        ),
    )
    show.add_argument("name")
    show.set_defaults(run=_show)
