"""One of the processes of tests/test_alpaca_oauth.py's single-flight test.

argv: keystore path, passphrase file, token server URL, its pins, Alpaca URL, its pins,
CA file, go-file, process number. Waits for the go-file (so all start together), then
places one resting order on Alpaca with the keystore's OAuth credential "alpaca" (stale:
the first request renews it) and exits 0 once the order is held.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from securetrade import Client, LimitOrder, Settings
from securetrade.keys import KeyStore, Secret
from securetrade.oauth import OAuthKey, TokenEndpoint, TokenSource
from securetrade.transport.tls import PinSet, pinned_ssl_context


def main() -> int:
    store_path, pass_file, token_url, token_pins, api_url, api_pins, ca_file, go, n = sys.argv[1:10]
    store = KeyStore.open(store_path, Secret(Path(pass_file).read_bytes()))
    host = token_url.split("//")[1].split(":")[0]
    context = pinned_ssl_context(PinSet({host: token_pins.split(",")}), cafile=ca_file)
    source = TokenSource(
        store, "alpaca", endpoint=TokenEndpoint(token_url + "/token", ssl_context=context)
    )
    key = OAuthKey(source, scopes=["read", "trade", "cancel"])
    while not Path(go).exists():
        time.sleep(0.005)
    with Client(
        key,
        venue="alpaca",
        base_url=api_url,
        pins={host: api_pins.split(",")},
        cafile=ca_file,
        journal=":memory:",
        settings=Settings(settle_ms=300, resolve_timeout=10.0),
    ) as client:
        order = LimitOrder(symbol="AAPL", side="BUY", quantity="1", price="100.00")
        placed = client.place_order(order, idempotency_key=f"process-{n}")
    print(placed.status.value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
