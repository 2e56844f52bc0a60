"""A leader's bot: sign one trade signal and send it to the platform's gateway.

    python examples/platform/leader.py [--url http://127.0.0.1:8000] [--id signal-1]

Sending the same ``--id`` twice places nothing more: the platform copies each signal once.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import httpx
from app import LEADER_KEY_ID, state_dir, stored_secret

from securetrade.gateway import GatewayAuth


def signal(signal_id: str, price: str) -> dict[str, str]:
    """A limit buy of 0.01 BTC, as the gateway's LeaderSignal model wants it."""
    return {
        "venue": "binance",
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit",
        "quantity": "0.01",
        "price": price,
        "signal_id": signal_id,
        "leader": LEADER_KEY_ID,
        "issued_at": datetime.now(timezone.utc).isoformat(),
    }


def send(url: str, signal_id: str, price: str) -> httpx.Response:
    """POST the signed signal; the body is signed exactly as it goes on the wire."""
    auth = GatewayAuth(LEADER_KEY_ID, stored_secret(state_dir() / "leader.secret"))
    body = json.dumps(signal(signal_id, price)).encode()
    with httpx.Client(auth=auth, timeout=30.0) as client:
        return client.post(
            url + "/signals", content=body, headers={"Content-Type": "application/json"}
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="send one signed leader signal")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--id", default="signal-1", help="the leader's id for this trade")
    parser.add_argument("--price", default="90000", help="the leader's fill price")
    args = parser.parse_args()
    response = send(args.url, args.id, args.price)
    print(response.status_code, json.dumps(response.json(), indent=2))


if __name__ == "__main__":
    main()
