"""What the docs' hidden set-up comments use to run each page against real things.

A page's Python blocks run in order in one namespace, like a notebook. Where a block needs
something the page's prose provides (a key, a connection, a Redis URL), an HTML comment
just before it, invisible on the site, provides it::

    <!-- docs-test
    key, connection = docs.binance()
    -->

``docs`` is a :class:`Support` for the page: the simulator over real TLS on 127.0.0.1, a
real redis-server, files in the page's temporary directory. Everything it starts stops
when the page ends.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from redis_server import start_redis, stop_redis
from securetrade import ApiKey
from securetrade.sim import HttpsServer, Simulator
from securetrade.sim.brokers import BrokerSimulator


class Support:
    """Real resources for one page, released when the page ends."""

    def __init__(self, stack: contextlib.ExitStack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        self._sim: Simulator | None = None
        self._server: HttpsServer | None = None
        self._redis: str | None = None

    @property
    def sim(self) -> Simulator:
        """The page's simulator (one for the whole page)."""
        if self._sim is None:
            self._sim = self.stack.enter_context(Simulator())
        return self._sim

    @property
    def server(self) -> HttpsServer:
        """The simulator served over HTTPS on 127.0.0.1, with a fresh certificate."""
        if self._server is None:
            self._server = self.sim.serve()
        return self._server

    def connection(self) -> dict[str, Any]:
        """What a client needs to reach the simulator: what ``pins=`` alone is live."""
        server = self.server
        return {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}

    def binance(self, **options: Any) -> tuple[ApiKey, dict[str, Any]]:
        """A fresh simulator key (read, trade, cancel unless told) and its connection."""
        return self.sim.create_key(**options), self.connection()

    def broker(self, venue: str) -> tuple[BrokerSimulator, ApiKey, dict[str, Any]]:
        """A simulated broker (``"alpaca"`` or ``"oanda"``) over HTTPS on 127.0.0.1, a fresh
        key on it and what a client needs to reach it (its own, not the exchanges')."""
        sim = self.stack.enter_context(BrokerSimulator(venue))
        server = sim.serve()
        connection = {"base_url": server.base_url, "pins": server.pins, "cadata": server.ca_pem}
        return sim, sim.create_key(), connection

    def file(self, name: str, text: str) -> Path:
        """Write ``text`` to ``name`` in the page's directory (its working directory)."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def redis_url(self) -> str:
        """A private redis-server for this page (no persistence)."""
        if self._redis is None:
            directory = self.directory / "redis"
            directory.mkdir(exist_ok=True)
            process, url = start_redis(directory)
            self.stack.callback(stop_redis, process)
            self._redis = url
        return self._redis

    def oauth(self, broker: BrokerSimulator | None = None) -> tuple[Any, str, Any]:
        """A keystore holding an OAuth credential named ``alpaca``, logged in at the
        simulated authorization server over TLS: ``(store, token_url, pinned_context)``.
        With ``broker`` (an Alpaca simulator), the broker accepts its tokens."""
        import secrets

        import httpx

        from securetrade.keys import KdfParams, KeyStore, Secret
        from securetrade.oauth import OAuthCredential, TokenEndpoint, login
        from securetrade.sim.oauth import OAuthServerSim
        from securetrade.transport.tls import PinSet, pinned_ssl_context

        client_secret = secrets.token_urlsafe(24).encode()
        server = OAuthServerSim(access_ttl=3600)
        server.register_client("bot-client", client_secret)
        if broker is not None:
            broker.authorize(server)
        served = server.serve()
        self.stack.callback(served.stop)
        pinned = pinned_ssl_context(PinSet(served.pins), cadata=served.ca_pem)
        store = KeyStore.create(
            self.directory / f"oauth-keys-{secrets.token_hex(4)}.json.enc",
            secrets.token_bytes(16),
            kdf=KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024),
        )
        token_url = served.base_url + "/token"
        endpoint = TokenEndpoint(token_url, ssl_context=pinned, venue="alpaca")
        self.stack.callback(endpoint.close)

        def browser(url: str) -> str:  # the owner approves; the redirect reaches the listener
            with httpx.Client(verify=pinned) as agent:
                location = agent.get(url).headers["location"]
            httpx.get(location)
            return str(location)

        credential = OAuthCredential(
            venue="alpaca",
            client_id="bot-client",
            client_secret=Secret(client_secret),
            token_url=token_url,
            authorize_url=served.base_url + "/authorize",
            scope="trading",
        )
        login(store, "alpaca", credential, endpoint=endpoint, open_browser=browser, timeout=10)
        return store, token_url, pinned
