"""DM and group DM channels (Discord's paths): /users/@me/channels and
/channels/{id}/recipients; and the Nexus extensions for end-to-end encrypted groups:
/channels/{id}/membership (the signed log) and /channels/{id}/devices (the audience)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from nexus_protocol.e2ee import CreateDMBody, RecipientBody

from ..errors import InvalidForm
from .deps import Caller, RelayDep, snowflake_param
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["dms"])


@router.post("/users/@me/channels")
async def open_dm(body: CreateDMBody, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    """``recipient_id``: the DM with them, created on first use (allowed with anyone who
    shares a community with the caller, or already a DM). ``recipients``: a new group DM
    (up to 10 members with the caller), its creation signed in ``membership``."""
    if body.recipients is not None:
        return await relay.groups.do_create_group_dm(caller, body.recipients, body.membership)
    if body.recipient_id is None:
        raise InvalidForm.field("recipient_id", "BASE_TYPE_REQUIRED", "This field is required")
    return await relay.dms.do_open_dm(caller, body.recipient_id)


@router.get("/users/@me/channels")
async def list_dms(caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    return await relay.dms.list_dms(caller)


@router.put("/channels/{channel_id}/recipients/{user_id}", status_code=204)
async def add_recipient(
    channel_id: str, user_id: str, body: RecipientBody, caller: Caller, relay: RelayDep
) -> Response:
    """Any member adds someone to a group DM (signed ``add`` statement)."""
    await relay.groups.do_add_recipient(
        caller,
        snowflake_param(channel_id, "channel_id"),
        snowflake_param(user_id, "user_id"),
        body.membership,
    )
    return Response(status_code=204)


@router.delete("/channels/{channel_id}/recipients/{user_id}", status_code=204)
async def remove_recipient(
    channel_id: str, user_id: str, body: RecipientBody, caller: Caller, relay: RelayDep
) -> Response:
    """The owner removes a member; anyone leaves (signed ``remove`` statement)."""
    await relay.groups.do_remove_recipient(
        caller,
        snowflake_param(channel_id, "channel_id"),
        snowflake_param(user_id, "user_id"),
        body.membership,
    )
    return Response(status_code=204)


@router.get("/channels/{channel_id}/membership")
async def membership_log(channel_id: str, caller: Caller, relay: RelayDep) -> list[dict[str, Any]]:
    """A group DM's signed membership statements, oldest first."""
    return await relay.groups.membership_log(caller, snowflake_param(channel_id, "channel_id"))


@router.get("/channels/{channel_id}/devices")
async def audience_devices(
    channel_id: str, caller: Caller, relay: RelayDep
) -> list[dict[str, Any]]:
    """Every device of everyone who may read the channel: a DM's recipients, or the
    members who may VIEW a guild channel (computed by the permission service)."""
    return await relay.groups.audience_devices(caller, snowflake_param(channel_id, "channel_id"))
