"""Channel administration: PATCH/DELETE /channels/{id}, overwrites, and reordering."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from nexus_protocol.requests import EditOverwriteBody, ModifyChannelBody, PositionBody

from .deps import Caller, RelayDep, snowflake_param
from .guilds import AuditReason
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["channels"])

MAX_CHANNEL_MOVES = 500


@router.patch("/channels/{channel_id}")
async def modify_channel(
    channel_id: str,
    body: ModifyChannelBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    """Rename, move, change topic, slow mode, NSFW, voice settings, or replace overwrites."""
    return await relay.channel_admin.do_modify_channel(
        caller, snowflake_param(channel_id, "channel_id"), body, reason
    )


@router.delete("/channels/{channel_id}")
async def delete_channel(
    channel_id: str, caller: Caller, relay: RelayDep, reason: AuditReason = None
) -> dict[str, Any]:
    """Delete a channel and answer with it; a category's children become uncategorised."""
    return await relay.channel_admin.do_delete_channel(
        caller, snowflake_param(channel_id, "channel_id"), reason
    )


@router.patch("/guilds/{guild_id}/channels", status_code=204)
async def reorder_channels(
    guild_id: str,
    body: Annotated[list[PositionBody], Body(max_length=MAX_CHANNEL_MOVES)],
    caller: Caller,
    relay: RelayDep,
) -> Response:
    await relay.channel_admin.do_reorder_channels(
        caller, snowflake_param(guild_id, "guild_id"), body
    )
    return Response(status_code=204)


@router.put("/channels/{channel_id}/permissions/{overwrite_id}", status_code=204)
async def edit_overwrite(
    channel_id: str,
    overwrite_id: str,
    body: EditOverwriteBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    await relay.channel_admin.do_edit_overwrite(
        caller,
        snowflake_param(channel_id, "channel_id"),
        snowflake_param(overwrite_id, "overwrite_id"),
        body,
        reason,
    )
    return Response(status_code=204)


@router.delete("/channels/{channel_id}/permissions/{overwrite_id}", status_code=204)
async def delete_overwrite(
    channel_id: str, overwrite_id: str, caller: Caller, relay: RelayDep, reason: AuditReason = None
) -> Response:
    await relay.channel_admin.do_delete_overwrite(
        caller,
        snowflake_param(channel_id, "channel_id"),
        snowflake_param(overwrite_id, "overwrite_id"),
        reason,
    )
    return Response(status_code=204)
