"""DM channels (Discord's paths): /users/@me/channels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from nexus_protocol.e2ee import CreateDMBody

from .deps import Caller, RelayDep
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["dms"])


@router.post("/users/@me/channels")
async def open_dm(body: CreateDMBody, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """The DM with ``recipient_id``, created on first use. Allowed with anyone who shares
    a community with the caller (or already has a DM with them)."""
    return await relay.dms.do_open_dm(caller, body.recipient_id)


@router.get("/users/@me/channels")
async def list_dms(caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.dms.list_dms(caller)
