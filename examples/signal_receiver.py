"""Receive signed trade signals from a leader bot, and accept each one exactly once.

Without arguments it runs a demonstration on loopback: a receiver with a fresh secret, a
signal sent once (accepted) and again (refused as a replay). To run a real receiver, put
the leader's shared secret in the environment (never on the command line, where ``ps``
shows it)::

    ST_SIGNAL_SECRET=<hex> python examples/signal_receiver.py --serve --port 8765

and, as the leader, ``ST_SIGNAL_SECRET=<hex> python examples/signal_receiver.py --send
http://127.0.0.1:8765/signals`` (or :class:`securetrade.verify.MessageSigner` in your bot).
The receiver answers 202 with the sender's name for a valid, fresh, first-seen signal, and
a bare 401 for anything else: the reason goes to the receiver's log, not to the caller.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from securetrade.errors import InboundRejected
from securetrade.keys import Secret
from securetrade.verify import InboundKey, MessageSigner, SqliteReplayStore, Verifier

log = logging.getLogger("signal_receiver")

LEADER_KEY_ID = "leader-1"
MAX_BODY = 64 * 1024


def _secret() -> Secret:
    text = os.environ.get("ST_SIGNAL_SECRET", "")
    if len(text) < 32:
        sys.exit("set ST_SIGNAL_SECRET to the leader's shared secret (at least 32 hex digits)")
    return Secret(bytes.fromhex(text))


def make_handler(verifier: Verifier) -> type[BaseHTTPRequestHandler]:
    class SignalHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                self._answer(413, {"error": "too large"})
                return
            body = self.rfile.read(length)
            try:
                principal = verifier.verify("POST", self.path, self.headers.items(), body)
            except InboundRejected as exc:
                log.warning("refused a signal: %s (%s)", exc.reason, exc)
                self._answer(401, {"error": "unauthorized"})
                return
            if "signal:publish" not in principal.scopes:
                self._answer(403, {"error": "forbidden"})
                return
            try:
                signal = json.loads(body)
            except ValueError:
                self._answer(400, {"error": "body is not JSON"})
                return
            log.info("signal from %s: %s", principal.name, signal)
            self._answer(202, {"accepted": True, "from": principal.name})

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug(format, *args)

    return SignalHandler


def make_server(port: int, replay_db: str, secret: Secret) -> ThreadingHTTPServer:
    key = InboundKey.hmac(LEADER_KEY_ID, secret, name="leader bot", scopes=["signal:publish"])
    verifier = Verifier([key], replay=SqliteReplayStore(replay_db), window_ms=30_000)
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(verifier))


def serve(port: int, replay_db: str) -> None:
    server = make_server(port, replay_db, _secret())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/signals", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def demo() -> None:
    """Receiver and leader in one process, on loopback, with a throwaway secret."""
    os.environ["ST_SIGNAL_SECRET"] = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as directory:
        server = make_server(0, os.path.join(directory, "replay.db"), _secret())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/signals"
        try:
            signal = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
            body, headers = sign(url, signal)
            print("first delivery:", post(url, body, headers))
            print("replayed copy: ", post(url, body, headers))
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def sign(url: str, signal: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """What the leader bot does: sign the exact body and target it is about to send."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(signal, separators=(",", ":")).encode()
    return body, MessageSigner(LEADER_KEY_ID, _secret()).headers("POST", target, body)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        connection.request("POST", target, body, {**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--serve", action="store_true", help="run a receiver until stopped")
    mode.add_argument("--send", metavar="URL", help="act as the leader: send one signal")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--replay-db", default="signals-replay.db")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.serve:
        serve(args.port, args.replay_db)
    elif args.send:
        status, answer = post(args.send, *sign(args.send, {"symbol": "BTCUSDT", "side": "BUY"}))
        print(status, answer)
    else:
        demo()
