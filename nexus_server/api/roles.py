"""Roles and who holds them: /guilds/{id}/roles*, /guilds/{id}/members/{id}/roles/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from nexus_protocol.requests import PositionBody, RoleBody

from .deps import Caller, RelayDep, snowflake_param
from .guilds import AuditReason
from .strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["roles"])

MAX_ROLE_MOVES = 250


@router.post("/guilds/{guild_id}/roles")
async def create_role(
    guild_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
    body: RoleBody | None = None,
) -> dict[str, Any]:
    """A new role just above @everyone. Every field is optional (Discord's defaults)."""
    return await relay.roles.do_create_role(
        caller, snowflake_param(guild_id, "guild_id"), body or RoleBody(), reason
    )


@router.patch("/guilds/{guild_id}/roles")
async def reorder_roles(
    guild_id: str,
    body: Annotated[list[PositionBody], Body(max_length=MAX_ROLE_MOVES)],
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> list[dict[str, Any]]:
    """Move roles with ``[{id, position}]``; answers with every role."""
    return await relay.roles.do_reorder_roles(
        caller, snowflake_param(guild_id, "guild_id"), body, reason
    )


@router.patch("/guilds/{guild_id}/roles/{role_id}")
async def modify_role(
    guild_id: str,
    role_id: str,
    body: RoleBody,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> dict[str, Any]:
    return await relay.roles.do_modify_role(
        caller,
        snowflake_param(guild_id, "guild_id"),
        snowflake_param(role_id, "role_id"),
        body,
        reason,
    )


@router.delete("/guilds/{guild_id}/roles/{role_id}", status_code=204)
async def delete_role(
    guild_id: str, role_id: str, caller: Caller, relay: RelayDep, reason: AuditReason = None
) -> Response:
    await relay.roles.do_delete_role(
        caller, snowflake_param(guild_id, "guild_id"), snowflake_param(role_id, "role_id"), reason
    )
    return Response(status_code=204)


@router.put("/guilds/{guild_id}/members/{user_id}/roles/{role_id}", status_code=204)
async def add_member_role(
    guild_id: str,
    user_id: str,
    role_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    await relay.roles.do_add_member_role(
        caller,
        snowflake_param(guild_id, "guild_id"),
        snowflake_param(user_id, "user_id"),
        snowflake_param(role_id, "role_id"),
        reason,
    )
    return Response(status_code=204)


@router.delete("/guilds/{guild_id}/members/{user_id}/roles/{role_id}", status_code=204)
async def remove_member_role(
    guild_id: str,
    user_id: str,
    role_id: str,
    caller: Caller,
    relay: RelayDep,
    reason: AuditReason = None,
) -> Response:
    await relay.roles.do_remove_member_role(
        caller,
        snowflake_param(guild_id, "guild_id"),
        snowflake_param(user_id, "user_id"),
        snowflake_param(role_id, "role_id"),
        reason,
    )
    return Response(status_code=204)
