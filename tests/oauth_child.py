"""One of the processes of tests/test_oauth.py's single-flight test.

argv: keystore path, passphrase file, credential name, server base URL, CA file, pins,
go-file. Waits for the go-file (so all start together), takes a token through a
TokenSource (refreshing it if stale), calls the protected resource with it, and prints
the HTTP status.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from securetrade.keys import KeyStore, Secret
from securetrade.oauth import BearerSigner, TokenEndpoint, TokenSource
from securetrade.transport.base import HttpRequest
from securetrade.transport.http import HttpTransport
from securetrade.transport.tls import PinSet, pinned_ssl_context


def main() -> int:
    store_path, pass_file, name, base_url, ca_file, pins, go = sys.argv[1:8]
    store = KeyStore.open(store_path, Secret(Path(pass_file).read_bytes()))
    host = base_url.split("//")[1].split(":")[0]
    context = pinned_ssl_context(PinSet({host: pins.split(",")}), cafile=ca_file)
    source = TokenSource(
        store, name, endpoint=TokenEndpoint(base_url + "/token", ssl_context=context)
    )
    while not Path(go).exists():
        time.sleep(0.005)
    signer = BearerSigner(source)
    transport = HttpTransport(base_url, context)
    response = transport.send(HttpRequest("GET", "/v1/me", (signer.header(),)))
    print(response.status)
    return 0 if response.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
