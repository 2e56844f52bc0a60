"""A copy-trading platform's inbound side: FastAPI behind the securetrade gateway.

Leaders' bots POST signed trade signals to ``/signals``. The gateway checks each one
before the app sees it: size, headers, key, time window, HMAC signature, a nonce used
once across processes, scope, rate limits, and the body against ``LeaderSignal``. The app
hands the validated signal to the copy engine, which places one order per follower,
exactly once whatever is redelivered. The answer is that event's report.

Run it with its own simulator as the venue (one command, from the repository root)::

    python -m uvicorn --app-dir examples/platform --factory app:create_app --port 8000

and send a signal with ``python examples/platform/leader.py``. The leader's HMAC secret
is shared through a file readable by its owner only (``PLATFORM_STATE`` directory,
``./platform-state`` by default); it is never printed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request

from securetrade.copy import CopyEngine, Follower, LeaderEvent, Sizing, SizingMode
from securetrade.gateway import (
    GatewayKey,
    GatewayMiddleware,
    GatewayPrincipal,
    KeyRegistry,
    LeaderSignal,
    Limit,
    Route,
    SharedState,
    require_scopes,
    validated_body,
)
from securetrade.keys import Secret
from securetrade.models import Side
from securetrade.sim import SimLimits, Simulator

LEADER_KEY_ID = "leader-1"
SIGNALS_SCOPE = "signals:write"


@dataclass
class Venue:
    """Where the followers trade: connection options for ``AsyncClient`` per venue."""

    connect: dict[str, dict[str, Any]]


def state_dir() -> Path:
    """The platform's files: journal, outbox, nonce store, the leader's secret."""
    path = Path(os.environ.get("PLATFORM_STATE", "platform-state"))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def stored_secret(path: Path) -> Secret:
    """A secret made once into a file only its owner can read, the same on every start."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return Secret(bytes.fromhex(path.read_text().strip()))


def create_app(
    *,
    venue: Venue | None = None,
    followers: Sequence[Follower] | None = None,
    state: Path | None = None,
) -> FastAPI:
    """The platform app. Without ``venue`` and ``followers`` it starts its own simulator
    with 20 funded followers, so that it runs as it stands."""
    home = state or state_dir()
    secret = stored_secret(home / "leader.secret")
    registry = KeyRegistry(
        [GatewayKey.hmac(LEADER_KEY_ID, secret, tenant="leaders", scopes=[SIGNALS_SCOPE])]
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            chosen, crowd = venue, list(followers or ())
            if chosen is None:
                sim = stack.enter_context(Simulator(limits=SimLimits(weight=10**6, orders=10**6)))
                served = sim.serve()
                options = {
                    "base_url": served.base_url,
                    "pins": served.pins,
                    "cadata": served.ca_pem,
                }
                chosen = Venue({"binance": options})
                rich = {"USDT": Decimal(100_000), "BTC": Decimal(1)}
                crowd = [
                    Follower(
                        f"follower-{i:02d}",
                        sim.create_key(balances=rich),
                        Sizing(SizingMode.FIXED_NOTIONAL, Decimal(100)),
                        slippage_bps=Decimal(300),
                    )
                    for i in range(20)
                ]
            async with CopyEngine(
                # Follower order keys derive from it: it must outlive restarts.
                secret=stored_secret(home / "copy.secret"),
                connect=chosen.connect,
                journal=home / "journal.sqlite3",
                outbox=home / "outbox.sqlite3",
            ) as engine:
                for follower in crowd:
                    engine.add(follower)
                app.state.engine = engine
                yield

    app = FastAPI(title="copy platform (securetrade example)", lifespan=lifespan)
    app.add_middleware(
        GatewayMiddleware,
        keys=registry,
        routes=[Route("POST", "/signals", scopes=frozenset({SIGNALS_SCOPE}), model=LeaderSignal)],
        state=SharedState.sqlite(home / "gateway.sqlite3"),
        key_limit=Limit(20, 1.0),
        open_paths=["/health"],
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/signals")
    async def signals(
        request: Request,
        leader: GatewayPrincipal = Depends(require_scopes(SIGNALS_SCOPE)),  # noqa: B008
    ) -> dict[str, Any]:
        signal: LeaderSignal = validated_body(request)
        if signal.price is None:
            raise HTTPException(422, "a signal to copy carries the leader's fill price")
        event = LeaderEvent(
            f"{leader.key_id}:{signal.signal_id}",  # the leader's own id: redelivery-proof
            signal.symbol,
            Side(signal.side.value.upper()),
            signal.quantity,
            signal.price,
            int(signal.issued_at.timestamp() * 1000),
            venue=signal.venue,
        )
        report = await request.app.state.engine.copy(event)
        return {
            "event": event.id,
            "counts": report.counts,
            "complete": report.complete,
            "outcomes": [
                {"follower": o.follower_id, "status": o.status, "reason": o.reason}
                for o in report.outcomes
            ],
        }

    return app
