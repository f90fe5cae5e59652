"""Communities: /guilds/*."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from nexus_protocol.requests import CreateChannelBody, CreateGuildBody, ModifyGuildBody

from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["guilds"])

AuditReason = Annotated[str | None, Header(alias="X-Audit-Log-Reason", max_length=512)]


@router.post("/guilds", status_code=201)
async def create_guild(body: CreateGuildBody, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """Create a community with #general, a voice channel, and the caller as owner."""
    return await relay.guilds.do_create_guild(caller, body)


@router.get("/guilds/{guild_id}")
async def get_guild(
    guild_id: str, caller: Caller, relay: RelayDep, with_counts: bool = False
) -> dict[str, Any]:
    return await relay.guilds.get_guild(caller, snowflake_param(guild_id, "guild_id"), with_counts)


@router.patch("/guilds/{guild_id}")
async def modify_guild(
    guild_id: str,
    body: ModifyGuildBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    """Rename, change icon or description, or (owner only) transfer ownership."""
    return await relay.guilds.do_modify_guild(
        caller, snowflake_param(guild_id, "guild_id"), body, reason
    )


@router.delete("/guilds/{guild_id}", status_code=204)
async def delete_guild(guild_id: str, caller: Caller, relay: RelayDep) -> Response:
    await relay.guilds.do_delete_guild(caller, snowflake_param(guild_id, "guild_id"))
    return Response(status_code=204)


@router.get("/guilds/{guild_id}/channels")
async def list_channels(guild_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.channels.list_channels(caller, snowflake_param(guild_id, "guild_id"))


@router.post("/guilds/{guild_id}/channels", status_code=201)
async def create_channel(
    guild_id: str,
    body: CreateChannelBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    return await relay.channels.do_create_channel(
        caller, snowflake_param(guild_id, "guild_id"), body, reason
    )


@router.get("/guilds/{guild_id}/roles")
async def list_roles(guild_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.guilds.list_roles(caller, snowflake_param(guild_id, "guild_id"))
