"""Members, moderation and the audit log: /guilds/{id}/members, /bans, /audit-logs, and
leaving with DELETE /users/@me/guilds/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from nexus_protocol.requests import BanBody, ModifyCurrentMemberBody, ModifyMemberBody

from .deps import Caller, RelayDep, snowflake_param
from .guilds import AuditReason
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["members"])


def _optional_id(value: str | None, name: str) -> int | None:
    return snowflake_param(value, name) if value is not None else None


# Members -----------------------------------------------------------------------------


@router.get("/guilds/{guild_id}/members")
async def list_members(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1,
    after: str = "0",
) -> list[dict[str, Any]]:
    """Members ordered by user id, ``limit`` at a time after the user id ``after``."""
    return await relay.members.list_members(
        caller,
        snowflake_param(guild_id, "guild_id"),
        limit=limit,
        after=snowflake_param(after, "after"),
    )


@router.get("/guilds/{guild_id}/members/search")
async def search_members(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    query: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> list[dict[str, Any]]:
    """Members whose username, display name or nickname starts with ``query``."""
    return await relay.members.search_members(
        caller, snowflake_param(guild_id, "guild_id"), query, limit
    )


@router.patch("/guilds/{guild_id}/members/@me")
async def modify_current_member(
    guild_id: str,
    body: ModifyCurrentMemberBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    return await relay.members.do_modify_current_member(
        caller, snowflake_param(guild_id, "guild_id"), body, reason
    )


@router.get("/guilds/{guild_id}/members/{user_id}")
async def get_member(
    guild_id: str, user_id: str, caller: Caller, relay: RelayDep
) -> dict[str, Any]:
    return await relay.members.get_member(
        caller, snowflake_param(guild_id, "guild_id"), snowflake_param(user_id, "user_id")
    )


@router.patch("/guilds/{guild_id}/members/{user_id}")
async def modify_member(
    guild_id: str,
    user_id: str,
    body: ModifyMemberBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    """Nick (MANAGE_NICKNAMES), roles (MANAGE_ROLES, below the caller's highest role),
    mute (MUTE_MEMBERS), deaf (DEAFEN_MEMBERS), channel_id (MOVE_MEMBERS: move to
    that voice channel; null disconnects)."""
    guild, member = snowflake_param(guild_id, "guild_id"), snowflake_param(user_id, "user_id")
    if "channel_id" in body.model_fields_set:
        target = None if body.channel_id is None else int(body.channel_id)
        await relay.voice.do_move(caller, guild, member, target)
    return await relay.members.do_modify_member(caller, guild, member, body, reason)


@router.delete("/guilds/{guild_id}/members/{user_id}", status_code=204)
async def kick_member(
    guild_id: str, user_id: str, caller: Caller, relay: RelayDep, reason: AuditReason = None
) -> Response:
    await relay.moderation.do_kick(
        caller, snowflake_param(guild_id, "guild_id"), snowflake_param(user_id, "user_id"), reason
    )
    return Response(status_code=204)


@router.delete("/users/@me/guilds/{guild_id}", status_code=204)
async def leave_guild(guild_id: str, caller: Caller, relay: RelayDep) -> Response:
    await relay.members.do_leave_guild(caller, snowflake_param(guild_id, "guild_id"))
    return Response(status_code=204)


# Bans --------------------------------------------------------------------------------


@router.get("/guilds/{guild_id}/bans")
async def list_bans(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    before: str | None = None,
    after: str | None = None,
) -> list[dict[str, Any]]:
    return await relay.moderation.list_bans(
        caller,
        snowflake_param(guild_id, "guild_id"),
        limit=limit,
        before=_optional_id(before, "before"),
        after=_optional_id(after, "after"),
    )


@router.get("/guilds/{guild_id}/bans/{user_id}")
async def get_ban(guild_id: str, user_id: str, caller: Caller, relay: RelayDep) -> dict[str, Any]:
    return await relay.moderation.get_ban(
        caller, snowflake_param(guild_id, "guild_id"), snowflake_param(user_id, "user_id")
    )


@router.put("/guilds/{guild_id}/bans/{user_id}", status_code=204)
async def ban_member(
    guild_id: str,
    user_id: str,
    caller: Caller,
    relay: RelayDep,
    body: BanBody | None = None,
    reason: AuditReason = None,
) -> Response:
    """Ban a user (member or not), deleting their messages of the last
    ``delete_message_seconds`` in every channel."""
    await relay.moderation.do_ban(
        caller,
        snowflake_param(guild_id, "guild_id"),
        snowflake_param(user_id, "user_id"),
        body or BanBody(),
        reason,
    )
    return Response(status_code=204)


@router.delete("/guilds/{guild_id}/bans/{user_id}", status_code=204)
async def unban_member(
    guild_id: str, user_id: str, caller: Caller, relay: RelayDep, reason: AuditReason = None
) -> Response:
    await relay.moderation.do_unban(
        caller, snowflake_param(guild_id, "guild_id"), snowflake_param(user_id, "user_id"), reason
    )
    return Response(status_code=204)


# Audit log ---------------------------------------------------------------------------


@router.get("/guilds/{guild_id}/audit-logs")
async def audit_log(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    user_id: str | None = None,
    action_type: Annotated[int | None, Query(ge=1, le=255)] = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    return await relay.moderation.audit_log(
        caller,
        snowflake_param(guild_id, "guild_id"),
        user_id=_optional_id(user_id, "user_id"),
        action_type=action_type,
        before=_optional_id(before, "before"),
        after=_optional_id(after, "after"),
        limit=limit,
    )
