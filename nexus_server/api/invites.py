"""Invites: /channels/{id}/invites, /invites/{code}, /guilds/{id}/invites."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from nexus_protocol.requests import CreateInviteBody

from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["invites"])


@router.post("/channels/{channel_id}/invites")
async def create_invite(
    channel_id: str, body: CreateInviteBody, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    """An invite link; ``max_age`` seconds (0 = never expires), ``max_uses`` (0 = unlimited)."""
    return await relay.invites.do_create_invite(
        caller, snowflake_param(channel_id, "channel_id"), body
    )


@router.get("/channels/{channel_id}/invites")
async def channel_invites(channel_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.invites.list_for_channel(caller, snowflake_param(channel_id, "channel_id"))


@router.get("/guilds/{guild_id}/invites")
async def guild_invites(guild_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.invites.list_for_guild(caller, snowflake_param(guild_id, "guild_id"))


@router.get("/invites/{code}")
async def preview_invite(code: str, relay: RelayDep) -> dict[str, Any]:
    """What an invite leads to, without joining (no authentication needed)."""
    return await relay.invites.preview(code[:32])


@router.post("/invites/{code}")
async def accept_invite(code: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """Join the invite's community (as Discord's own client does)."""
    return await relay.invites.do_accept(caller, code[:32])


@router.delete("/invites/{code}")
async def revoke_invite(code: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.invites.do_revoke(caller, code[:32])
