"""Where the gateway is (/gateway, /gateway/bot) and the gateway socket itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket

from ..gateway.connection import GatewayConnection
from .deps import Caller, RelayDep, relay_of
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["gateway"])


@router.get("/gateway")
async def get_gateway(relay: RelayDep) -> dict[str, Any]:
    """No authentication needed: where to open the gateway WebSocket."""
    return {"url": relay.settings.gateway_url}


@router.get("/gateway/bot")
async def get_gateway_bot(caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return {
        "url": relay.settings.gateway_url,
        "shards": 1,
        "session_start_limit": {
            "total": 1000,
            "remaining": 1000,
            "reset_after": 86_400_000,
            "max_concurrency": 1,
        },
    }


@router.websocket("/gateway/ws")
async def gateway_socket(websocket: WebSocket) -> None:
    await GatewayConnection(websocket, relay_of(websocket)).serve()
